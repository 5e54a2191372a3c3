// Counterexamples for the web view: the JSON `ptlab explore --json FILE`
// writes, or a replay token (as `--replay` takes it, or as a hunt finding's
// `# token:` comment carries it) replayed in the browser on the editor's
// scenario, which also gives the state after every step. No Node or DOM APIs.

import { lockName } from "../explore/execution.js";
import { lockKey } from "../core/sync.js";
import { type Counterexample, configKey, describe, type ExploreConfig, parseToken, replay, scenarioConfig, TokenError } from "../explore/explore.js";
import { parseScenario } from "../scenario/load.js";
import { type Scenario, ScenarioError } from "../scenario/types.js";

/** Bad input: a message the view shows as it is. */
export class CxError extends Error {}

/** A counterexample opened in the view, and what came with it. */
export interface CxDoc {
  scenario: string | null; // the file it was explored from (JSON only)
  // Why the JSON's own scenario (scenario_text) could not be replayed, or null.
  replayNote?: string;
  variants: string;
  cx: Counterexample;
  // Page-table entries, TLB entries and locks after each trace step (a
  // replay), or null (JSON without the scenario).
  states: { ptes: [string, string][]; tlbs: [string, string][]; locks: [string, string][] }[] | null;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

// The trace steps' fields the view reads, checked so that a wrong file gets
// a message instead of a broken page.
function checkCx(v: unknown, where: string): Counterexample {
  if (!isObj(v)) throw new CxError(`${where} is not an object`);
  for (const k of ["invariant", "message", "token"]) if (typeof v[k] !== "string") throw new CxError(`${where}.${k} is missing or not a string`);
  if (!Array.isArray(v.threads) || !v.threads.every((t) => typeof t === "string")) throw new CxError(`${where}.threads is not a list of names`);
  if (!Array.isArray(v.trace)) throw new CxError(`${where}.trace is not a list`);
  v.trace.forEach((s: unknown, i: number) => {
    const w = `${where}.trace[${i}]`;
    if (!isObj(s)) throw new CxError(`${w} is not an object`);
    for (const k of ["thread", "op", "site"]) if (typeof s[k] !== "string") throw new CxError(`${w}.${k} is missing or not a string`);
    for (const k of ["n", "cpu", "depth"]) if (typeof s[k] !== "number") throw new CxError(`${w}.${k} is missing or not a number`);
    if (!Array.isArray(s.changes) || !s.changes.every((c) => typeof c === "string")) throw new CxError(`${w}.changes is not a list of strings`);
    // Files written before the event stream have neither.
    if (s.explained !== undefined && (!Array.isArray(s.explained) || !s.explained.every((c) => typeof c === "string")))
      throw new CxError(`${w}.explained is not a list of strings`);
    if (s.events !== undefined && !Array.isArray(s.events)) throw new CxError(`${w}.events is not a list`);
  });
  return v as unknown as Counterexample;
}

// `ptlab explore --json` output: its counterexample (or, for a replay that
// broke nothing, the replayed schedule).
export function parseCxJson(text: string): CxDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CxError(`not JSON: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw new CxError("expected the JSON object `ptlab explore --json FILE` writes");
  const scenario = typeof doc.scenario === "string" ? doc.scenario : null;
  const variants = typeof doc.variants === "string" ? doc.variants : "";
  if (doc.counterexample !== undefined && doc.counterexample !== null)
    return { scenario, variants, cx: checkCx(doc.counterexample, "counterexample"), states: null };
  if (doc.replayed !== undefined) return { scenario, variants, cx: checkCx(doc.replayed, "replayed"), states: null };
  if (doc.counterexample === null) throw new CxError(`this exploration found no counterexample (${String(doc.executions)} executions)`);
  if ("trace" in doc) return { scenario, variants, cx: checkCx(doc, "counterexample"), states: null };
  throw new CxError("expected `counterexample` (the JSON `ptlab explore --json FILE` writes)");
}

// `ptlab explore --json` output opened on its own: with the scenario's text
// inside (scenario_text), the token is replayed on it for the state at each
// step; a replay that fails (a token made with --arch or --max-steps, or an
// older file without the text) leaves the trace alone, with the reason.
export function openCxJson(text: string): CxDoc {
  const doc = parseCxJson(text);
  const raw = JSON.parse(text) as { scenario_text?: unknown };
  if (typeof raw.scenario_text !== "string") return { ...doc, replayNote: "the file does not carry its scenario: open it in the editor and replay" };
  try {
    return { ...replayToken(parseScenario(raw.scenario_text, doc.scenario ?? "scenario.yaml"), doc.cx.token), scenario: doc.scenario };
  } catch (e) {
    if (e instanceof CxError || e instanceof ScenarioError)
      return { ...doc, replayNote: `its scenario could not be replayed: ${e instanceof ScenarioError ? e.format() : e.message}` };
    throw e;
  }
}

// A hunt finding's `# token: v1....` comment.
export function tokenInText(text: string): string | null {
  return /^#\s*token:\s*(v1\.\S+)\s*$/m.exec(text)?.[1] ?? null;
}

// The configuration `ptlab explore FILE --replay TOKEN` (with or without
// --historical) would run: the token's variants, the scenario's explore keys.
function configFor(sc: Scenario, tok: ReturnType<typeof parseToken>): ExploreConfig {
  if (sc.concurrent === undefined || sc.concurrent.length === 0) throw new CxError("the editor's scenario has no `concurrent` steps to replay a schedule of");
  const base = scenarioConfig(sc, false);
  const tries: ExploreConfig[] = [{ ...base, run: { variants: tok.variants } }];
  if (sc.explore?.arch !== undefined) tries.push({ ...base, run: { variants: tok.variants, arch: sc.explore.arch } });
  const hit = tries.find((c) => configKey(c) === tok.key);
  if (hit === undefined)
    throw new CxError(
      `the token was made for another scenario, another version of this one, or other options (token ${tok.key}, editor's scenario ${configKey(tries[0] as ExploreConfig)}); only the default --max-steps and --speculate replay here`,
    );
  return hit;
}

// Replays a token on a scenario: the counterexample as `ptlab explore
// --replay` prints it, and the state after each step.
export function replayToken(sc: Scenario, token: string): CxDoc {
  let tok: ReturnType<typeof parseToken>;
  try {
    tok = parseToken(token.trim());
  } catch (e) {
    if (e instanceof TokenError) throw new CxError(e.message);
    throw e;
  }
  const cfg = configFor(sc, tok);
  const cx = describe(cfg, tok.schedule, false, tok.schedule.length);
  const x = replay(cfg, tok.schedule, true);
  const entries = (m: Map<string, string> | undefined) => (m === undefined ? [] : [...m.entries()]);
  const states = x.steps.map((s) => {
    const at = s.after ?? s.before;
    return { ptes: entries(at?.ptes), tlbs: entries(at?.tlbs), locks: entries(at?.locks) };
  });
  if (states.length !== cx.trace.length) throw new Error(`model bug: two replays of one schedule took ${states.length} and ${cx.trace.length} steps`);
  const variants = Object.entries(tok.variants)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  return { scenario: sc.file, variants, cx, states };
}

// The lanes of a swimlane view: threads in the order the counterexample
// names them, then the RCU agent and the hardware (speculative fills) when
// they take steps.
export function lanes(cx: Counterexample): string[] {
  const used = new Set(cx.trace.map((s) => s.thread));
  const out = cx.threads.filter((t) => used.has(t) || !["rcu", "hw"].includes(t));
  for (const t of used) if (!out.includes(t)) out.push(t);
  return out;
}

// The locks each lane holds after each step, from the steps' lock events
// (events.ts): the view draws them as spans down the lanes. A file from
// before the event stream has none.
export function lockSpans(cx: Counterexample): Map<string, string[]>[] {
  const held = new Map<string, string[]>();
  const out: Map<string, string[]>[] = [];
  for (const s of cx.trace) {
    for (const e of s.events ?? []) {
      if (e.kind !== "lock") continue;
      const name = lockName(lockKey(e.lock, e.id));
      const mine = held.get(s.thread) ?? [];
      if (e.op === "take") mine.push(name);
      else if (e.op === "take-read") mine.push(`${name} (read)`);
      else if (e.op === "downgrade") {
        const i = mine.indexOf(name);
        if (i >= 0) mine[i] = `${name} (read)`;
      } else if (e.op === "release") {
        const i = mine.findIndex((x) => x === name || x === `${name} (read)`);
        if (i >= 0) mine.splice(i, 1);
      }
      held.set(s.thread, mine);
    }
    out.push(new Map([...held].filter(([, v]) => v.length > 0).map(([k, v]) => [k, [...v]])));
  }
  return out;
}

// Cross-lane effects of each step, for arrows into the lanes they reach:
// an IPI sent to a CPU where a lane's thread runs, and TLB entries a step
// of one thread made another CPU drop (a broadcast TLBI completing, an IPI's
// flush). By step, lane -> lines.
export function crossLane(cx: Counterexample): Map<string, string[]>[] {
  const cpuOf = new Map<string, number>();
  for (const s of cx.trace) if (!cpuOf.has(s.thread)) cpuOf.set(s.thread, s.cpu);
  return cx.trace.map((s) => {
    const out = new Map<string, string[]>();
    const add = (cpu: number, line: string) => {
      for (const [lane, c] of cpuOf) {
        if (c !== cpu || lane === s.thread) continue;
        const l = out.get(lane) ?? [];
        if (!l.includes(line)) l.push(line);
        out.set(lane, l);
      }
    };
    for (const e of s.events ?? []) {
      if (e.kind === "flush" && e.to >= 0) add(e.to, `◀ ${e.op} from ${s.thread} (CPU${e.cpu})`);
      else if (e.kind === "tlb-drop" && e.cpu !== s.cpu) add(e.cpu, `◀ CPU${e.cpu} drops TLB entries: ${s.thread}'s flush`);
    }
    return out;
  });
}

// What the violation names: addresses (0x...) and frames ("pfn 5"); the
// view highlights the changes and state entries that mention them.
export function addressesIn(message: string): string[] {
  return [...new Set([...(message.match(/0x[0-9a-f]+/gi) ?? []), ...(message.match(/\bpfn[ =]\d+/g) ?? [])])];
}

// Whether a line mentions one of those (0x1000 is not 0x10000, pfn 5 not pfn 50).
export function mentions(line: string, marks: string[]): boolean {
  return marks.some((a) => {
    if (a.startsWith("pfn")) return new RegExp(`\\bpfn[ =]${a.slice(4)}(?![0-9])`).test(line);
    const i = line.toLowerCase().indexOf(a.toLowerCase());
    return i >= 0 && !/[0-9a-f]/i.test(line.charAt(i + a.length));
  });
}
