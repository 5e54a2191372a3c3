// Minimising a hunt finding twice: first the scenario, by delta debugging
// over its parts (concurrent steps, set-up steps, machine features, unused
// threads, range lengths and mapping sizes) while the same invariant still
// breaks under the case's search budget; then the schedule, with the
// explorer's own shrink(). The result is a short scenario a person can read
// and keep, with `explore.preemptions` set to what the shrunk schedule
// needs and a replay token that `ptlab explore FILE --replay TOKEN` accepts.
// Every check is a fixed number of executions, so minimisation is
// deterministic. No Node APIs.

import type { Execution } from "../explore/execution.js";
import { describe, makeToken, replay, shrink } from "../explore/explore.js";
import { MAX_PREEMPTIONS } from "../scenario/schema.js";
import { type Case, caseYaml, cloneCase, type StepDoc } from "./case.js";
import { type Budget, defaultConfig, loadCase, type Outcome, runCase } from "./search.js";

export type FindingKind = "violation" | "setup-violation" | "model-bug";

export interface Finding {
  kind: FindingKind;
  invariant: string; // "model-bug" for a ptlab exception
  message: string;
  signature: string; // findings with one signature are one bug
  fixedToo: boolean | null; // with variants: the same scenario breaks the same way on v6.17 (null: no variants)
  yaml: string; // the minimised scenario
  schedule: number[] | null;
  token: string | null;
  // The minimised schedule told as `explore --replay` prints it: the steps
  // and what happened inside them (explore/trace-text.ts).
  timeline: string[] | null;
  checks: number; // scenario variants tried while minimising
  complete: boolean; // false: stopped by the check or time limit
  before: { steps: number; concurrent: number };
  after: { steps: number; concurrent: number };
}

export function outcomeKey(o: Outcome): string | null {
  if (o.kind === "violation" || o.kind === "setup-violation") return `${o.kind}:${o.invariant}`;
  // A ptlab exception: same class and message, numbers aside.
  if (o.kind === "model-bug") return `model-bug:${o.message.replace(/ \(at .*\)$/, "").replace(/0x[0-9a-f]+|\d+/g, "#")}`;
  return null;
}

function tryCase(c: Case, budget: Budget, seed: number): Outcome {
  try {
    return runCase(loadCase(caseYaml(c), `${c.name}.yaml`), budget, seed).outcome;
  } catch {
    return { kind: "invalid", message: "does not load" };
  }
}

const MAX_CHECKS = 120;

function threadsOfStep(s: StepDoc): string[] {
  const out: string[] = [];
  if (typeof s.args.thread === "string") out.push(s.args.thread);
  if (s.op === "fork") out.push(`${s.args.child as string}.t0`);
  return out;
}

// Scenario-level candidates, smallest change last within each pass.
function* candidates(c: Case): Generator<Case> {
  for (let i = c.concurrent.length - 1; i >= 0 && c.concurrent.length > 1; i--) {
    const d = cloneCase(c);
    d.concurrent.splice(i, 1);
    yield d;
  }
  for (let i = c.steps.length - 1; i >= 0; i--) {
    const d = cloneCase(c);
    d.steps.splice(i, 1);
    yield d;
  }
  // Each returns false when the case already has the simpler setting.
  const simpler: ((d: Case) => boolean)[] = [
    (d) => setIf(d.machine.mthp.length > 0, () => (d.machine.mthp = [])),
    (d) => setIf(d.machine.mthp.length > 1, () => (d.machine.mthp = d.machine.mthp.slice(0, 1))),
    (d) => setIf(d.machine.nowaitAllocFails, () => (d.machine.nowaitAllocFails = false)),
    (d) =>
      setIf(d.machine.memory !== undefined, () => {
        delete d.machine.memory;
        delete d.machine.headroom;
      }),
    (d) => setIf(!d.machine.ptReclaim, () => (d.machine.ptReclaim = true)),
    (d) => setIf(!d.machine.thpUseZeroPage, () => (d.machine.thpUseZeroPage = true)),
    (d) => setIf(d.machine.thp !== "never", () => (d.machine.thp = "never")),
    (d) => setIf(d.machine.arm64?.hafdbs === false, () => ((d.machine.arm64 as { hafdbs: boolean }).hafdbs = true)),
    (d) => setIf(d.machine.arm64?.tlbiRange === false, () => ((d.machine.arm64 as { tlbiRange: boolean }).tlbiRange = true)),
    (d) => setIf(d.machine.arm64?.bbml2NoAbort === true, () => ((d.machine.arm64 as { bbml2NoAbort: boolean }).bbml2NoAbort = false)),
  ];

  for (const f of simpler) {
    const d = cloneCase(c);
    if (f(d)) yield d;
  }
  // Threads no step names, and their CPUs.
  const used = new Set<string>();
  for (const s of [...c.steps, ...c.concurrent]) for (const t of threadsOfStep(s)) used.add(t);
  for (let pi = 0; pi < c.processes.length; pi++) {
    const p = c.processes[pi] as Case["processes"][number];
    for (let ti = p.threads.length - 1; ti >= 0; ti--) {
      const t = p.threads[ti] as { name: string; cpu: number };
      if (used.has(t.name) || (p.threads.length === 1 && c.processes.length === 1)) continue;
      const d = cloneCase(c);
      const dp = d.processes[pi] as Case["processes"][number];
      dp.threads.splice(ti, 1);
      if (dp.threads.length === 0) d.processes.splice(pi, 1);
      renumberCpus(d);
      yield d;
    }
  }
  // Shorter ranges and smaller mappings.
  for (const list of ["concurrent", "steps"] as const) {
    for (let i = 0; i < c[list].length; i++) {
      const s = c[list][i] as StepDoc;
      for (const key of ["length", "size", "offset"] as const) {
        const v = s.args[key];
        if (typeof v !== "number" || v <= 4096) continue;
        for (const nv of key === "offset" ? [0, v / 2] : [4096, v / 2]) {
          if (nv % 4096 !== 0 || nv === v) continue;
          const d = cloneCase(c);
          const ds = d[list][i] as StepDoc;
          if (nv === 0) delete ds.args[key];
          else ds.args[key] = nv;
          yield d;
        }
      }
    }
  }
}

function setIf(cond: boolean, f: () => unknown): boolean {
  if (cond) f();
  return cond;
}

// CPUs 0..n-1 in order of first use; fork steps keep pointing at a CPU that exists.
function renumberCpus(d: Case): void {
  const map = new Map<number, number>();
  for (const p of d.processes) for (const t of p.threads) if (!map.has(t.cpu)) map.set(t.cpu, map.size);
  for (const p of d.processes) for (const t of p.threads) t.cpu = map.get(t.cpu) as number;
  d.machine.cpus = Math.max(1, map.size);
  for (const s of [...d.steps, ...d.concurrent])
    if (s.op === "fork" && typeof s.args.cpu === "number") s.args.cpu = map.get(s.args.cpu) ?? Math.min(s.args.cpu, d.machine.cpus - 1);
}

export function signatureOf(kind: FindingKind, invariant: string, c: Case): string {
  const ops = [...new Set(c.concurrent.map((s) => (s.op === "madvise" ? `madvise(${s.args.advice as string})` : s.op)))].sort();
  return `${kind}:${invariant}:${c.machine.arch}:${ops.join("+")}`;
}

// shouldStop: an interrupt, or the campaign's limit on minimising time
// (then the scenario is less small, and `complete` says so).
export function minimize(c0: Case, found: Outcome, budget: Budget, seed: number, shouldStop?: () => boolean): Finding {
  const key = outcomeKey(found) as string;
  let cur = cloneCase(c0);
  let checks = 0;
  let complete = true;
  for (let changed = true; changed && checks < MAX_CHECKS; ) {
    changed = false;
    for (const d of candidates(cur)) {
      if (shouldStop?.()) {
        complete = false;
        break;
      }
      if (checks >= MAX_CHECKS) {
        complete = false;
        break;
      }
      checks++;
      const o = tryCase(d, budget, seed);
      if (outcomeKey(o) === key) {
        cur = d;
        changed = true;
        break;
      }
    }
  }
  const kind: FindingKind = found.kind === "violation" ? "violation" : found.kind === "setup-violation" ? "setup-violation" : "model-bug";
  const invariant = found.kind === "violation" || found.kind === "setup-violation" ? found.invariant : "model-bug";
  let o = tryCase(cur, budget, seed);
  if (outcomeKey(o) !== key) {
    // Cannot happen with deterministic checks; keep the original then.
    cur = cloneCase(c0);
    o = found;
  }
  const message = o.kind === "violation" || o.kind === "setup-violation" || o.kind === "model-bug" ? o.message : "";
  // The description is part of the scenario a replay token covers: set it first.
  cur.description = `Found by ptlab hunt: ${invariant} (${kind}). ${message}`.slice(0, 600);
  let schedule: number[] | null = null;
  let token: string | null = null;
  let timeline: string[] | null = null;
  if (o.kind === "violation") {
    const sc = loadCase(caseYaml(cur), `${cur.name}.yaml`);
    const cfg = defaultConfig(sc);
    const s = shrink(cfg, o.schedule, o.invariant).schedule;
    // The bound `ptlab explore FILE` needs to reach this schedule.
    const x: Execution = replay(cfg, s, false);
    let pre = 0;
    for (const d of x.decisions) if (d.cur >= 0 && d.cands.includes(d.cur) && d.chosen !== d.cur) pre++;
    // A random or PCT schedule can preempt more often than a scenario's
    // bound may say: the replay token still reaches it.
    cur.preemptions = Math.min(pre, MAX_PREEMPTIONS);
    if (pre > MAX_PREEMPTIONS)
      cur.description =
        `${cur.description} Its schedule preempts ${pre} times, more than explore.preemptions allows (${MAX_PREEMPTIONS}): replay it with the token.`.slice(
          0,
          700,
        );
    const fin = loadCase(caseYaml(cur), `${cur.name}.yaml`);
    schedule = s;
    token = makeToken(defaultConfig(fin), s);
    timeline = describe(defaultConfig(fin), s, true, s.length).text;
  }
  // With a historical variant selected: does the v6.17 code break too? If
  // not, the finding belongs to the variant's code path.
  // The schedule found is tried first: a search of v6.17 with the case's
  // budget samples differently (no boost for reaching the variant's code)
  // and can miss a schedule that never ran the variant's code at all.
  let fixedToo: boolean | null = null;
  if (Object.keys(cur.machine.variants).length > 0) {
    const d = cloneCase(cur);
    d.machine.variants = {};
    if (schedule !== null) {
      try {
        const x = replay(defaultConfig(loadCase(caseYaml(d), `${d.name}.yaml`)), schedule, false);
        fixedToo = x.violation !== null && x.violation.invariant === invariant;
      } catch {
        fixedToo = false;
      }
    }
    if (fixedToo !== true) fixedToo = outcomeKey(tryCase(d, budget, seed)) === key;
  }
  return {
    kind,
    invariant,
    message,
    fixedToo,
    signature: signatureOf(kind, invariant, cur),
    yaml: caseYaml(cur),
    schedule,
    token,
    timeline,
    checks,
    complete,
    before: { steps: c0.steps.length, concurrent: c0.concurrent.length },
    after: { steps: cur.steps.length, concurrent: cur.concurrent.length },
  };
}
