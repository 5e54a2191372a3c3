// `ptlab explore FILE`: runs the scenario's concurrent steps under every
// schedule within a preemption bound (or random / PCT samples), in worker
// threads, and prints a shrunk counterexample with a replay token.

import { readFileSync, writeFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { InvalidArgumentError } from "commander";
import { INVARIANTS, isInvariant } from "../core/invariants.js";
import { type Counterexample, configKey, describe, type ExploreConfig, type Mode, NO_VIOLATION, parseToken, rankLess, TokenError } from "../explore/explore.js";
import { ScenarioError } from "../scenario/types.js";
import { loadScenario, resolveScenario } from "./load.js";

// A bad option value found after parsing: one line on stderr, exit code 2.
export class UsageError extends Error {}

export interface ExploreOpts {
  mode: Mode;
  preemptions?: number;
  maxSteps?: number;
  executions?: number;
  seed?: number;
  pctDepth: number;
  shard?: { index: number; count: number };
  workers: number;
  historical?: boolean;
  variant?: Record<string, string>;
  arch?: "x86_64" | "arm64";
  json?: string | true; // a file, or true: the JSON on stdout instead of the text
  replay?: string;
  shrink: boolean;
  progress: boolean;
  ignore?: string[];
  stateCache?: boolean;
  sleepSets?: boolean;
  speculate?: number;
}

// What a worker needs to rebuild the configuration.
export interface ExploreJob {
  file: string;
  opts: ExploreOpts;
  sub: number;
  subs: number;
  stop: SharedArrayBuffer;
  // Shrink this counterexample instead of exploring.
  shrink?: { schedule: number[]; invariant: string };
}

export function exploreConfig(job: { file: string; opts: ExploreOpts; sub: number; subs: number }, sc = loadScenario(job.file)): ExploreConfig {
  const o = job.opts;
  if (!sc.concurrent || sc.concurrent.length === 0)
    throw new ScenarioError(sc.file, 1, 1, "the scenario has no `concurrent` steps to explore (see docs/explore.md)");
  const variants = { ...(o.historical ? (sc.explore?.variant ?? {}) : {}), ...(o.variant ?? {}) };
  return {
    sc,
    run: { variants, ...(o.arch !== undefined ? { arch: o.arch } : o.historical && sc.explore?.arch !== undefined ? { arch: sc.explore.arch } : {}) },
    mode: o.mode,
    // Sleep sets are sound only without a preemption bound (explore.ts).
    preemptions: o.preemptions ?? (o.sleepSets === true ? Number.POSITIVE_INFINITY : (sc.explore?.preemptions ?? 2)),
    maxSteps: o.maxSteps ?? sc.explore?.maxSteps ?? 5000,
    executions: o.executions ?? (o.mode === "exhaustive" ? 0 : 1000),
    seed: o.seed ?? sc.machine.seed,
    pctDepth: o.pctDepth,
    shard: { ...(o.shard ?? { index: 0, count: 1 }), sub: job.sub, subs: job.subs },
    shrink: o.shrink,
    ignore: [...(sc.explore?.ignore ?? []), ...(o.ignore ?? [])],
    stateCache: o.stateCache === true,
    sleepSets: o.sleepSets === true,
    speculate: o.speculate ?? sc.explore?.speculate ?? 0,
  };
}

export function parseShard(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const max = 2 ** 31 - 1;
  if (!m || Number(m[2]) < 1 || Number(m[2]) > max || Number(m[1]) >= Number(m[2]))
    throw new InvalidArgumentError(`expected I/N with 0 <= I < N <= ${max}, e.g. 0/4, got "${v}"`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

// --ignore: a known invariant's name (repeatable).
export function collectInvariant(v: string, prev: string[] = []): string[] {
  if (!isInvariant(v)) throw new InvalidArgumentError(`unknown invariant "${v}" (known: ${INVARIANTS.join(", ")})`);
  return [...prev, v];
}

export function parseMode(v: string): Mode {
  if (v === "exhaustive" || v === "random" || v === "pct") return v;
  throw new InvalidArgumentError(`expected exhaustive, random or pct, got "${v}"`);
}

// A replay token's schedule ("0*10-1*7": runs of thread ids) holds one
// decision per step, and no execution runs more than 1,000,000 steps (the
// --max-steps ceiling): a longer schedule is refused from its run lengths,
// before parseToken() expands it (a "0*100000000000" would take gigabytes).
export const MAX_TOKEN_DECISIONS = 1_000_000;
export function tokenDecisions(token: string): number {
  const sched = token.slice(token.lastIndexOf(".") + 1);
  let n = 0;
  for (const run of sched.split("-")) {
    const star = run.indexOf("*");
    n += star < 0 ? 1 : Number(run.slice(star + 1));
  }
  return n;
}

// What a search covered (one worker's, or all of them together).
interface Coverage {
  executions: number;
  steps: number;
  truncated: number;
  pruned: number;
  sleepBlocked: number;
  states: number;
  complete: boolean;
  stopped: boolean;
}

interface WorkerResult extends Coverage {
  sub: number;
  rank: number[] | null;
  schedule: number[] | null;
  invariant: string | null;
}

export async function cmdExplore(file: string, o: ExploreOpts): Promise<number> {
  if (o.sleepSets === true && o.preemptions !== undefined && o.preemptions !== Number.POSITIVE_INFINITY)
    throw new UsageError("--sleep-sets needs --preemptions unbounded: with a preemption bound, sleep sets can miss schedules (docs/explore.md)");
  if (o.sleepSets === true && o.mode !== "exhaustive") throw new UsageError("--sleep-sets applies to --mode exhaustive only");
  const sc = loadScenario(file);
  const cfg = exploreConfig({ file, opts: o, sub: 0, subs: 1 }, sc);
  if (o.sleepSets === true && (cfg.speculate ?? 0) > 0)
    throw new UsageError("--sleep-sets does not combine with speculative fills (--speculate, explore.speculate): a fill's footprint is not recorded");
  const header = `ptlab explore ${file}: ${sc.name} (${cfg.run.arch ?? sc.machine.arch}, ${sc.machine.cpus} CPUs)`;
  // What runs: the scenario's machine.variants under the command line's.
  const vars = Object.entries({ ...(sc.machine.variants ?? {}), ...(cfg.run.variants ?? {}) })
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  // --json FILE is written at the end: a path that cannot be written
  // fails now, not after the search.
  if (typeof o.json === "string") writeJson(o.json, "");
  if (o.replay !== undefined) {
    const n = tokenDecisions(o.replay);
    if (!(n <= MAX_TOKEN_DECISIONS))
      throw new UsageError(`--replay: the token's schedule has ${n} decisions, more than any execution takes (at most ${MAX_TOKEN_DECISIONS} steps)`);
    let tok: ReturnType<typeof parseToken>;
    try {
      tok = parseToken(o.replay);
    } catch (e) {
      if (e instanceof TokenError) throw new UsageError(`--replay: ${e.message}`);
      throw e;
    }
    const rcfg: ExploreConfig = { ...cfg, run: { ...cfg.run, variants: tok.variants } };
    if (configKey(rcfg) !== tok.key)
      throw new UsageError(
        `--replay: the token was made for another version of this scenario or other options (token ${tok.key}, this run ${configKey(rcfg)})`,
      );
    const cx = describe(rcfg, tok.schedule, false, tok.schedule.length);
    return output(
      o,
      header,
      Object.entries(tok.variants)
        .map(([k, v]) => `${k}=${v}`)
        .join(", "),
      file,
      cx,
      null,
    );
  }

  const subs = Math.max(1, o.workers);
  const stop = new SharedArrayBuffer(4);
  const flag = new Int32Array(stop);
  // SIGINT or SIGTERM: the workers stop at their next execution; a shrink
  // is abandoned and the counterexample printed as found.
  let interrupted = false;
  let shrinker: Worker | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!interrupted) process.stderr.write(`\nptlab explore: stopping (${sig === "SIGINT" ? "Ctrl-C" : sig})...\n`);
    interrupted = true;
    Atomics.store(flag, 0, 1);
    void shrinker?.terminate();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const t0 = Date.now();
  const prog = new Map<number, { executions: number; steps: number }>();
  let lastPrint = 0;
  const showProgress = () => {
    if (!o.progress) return;
    const now = Date.now();
    if (now - lastPrint < 1000) return;
    lastPrint = now;
    let e = 0;
    let s = 0;
    for (const p of prog.values()) {
      e += p.executions;
      s += p.steps;
    }
    const secs = (now - t0) / 1000;
    process.stderr.write(`explore: ${e} executions, ${s} steps, ${(e / secs).toFixed(0)} executions/s, ${secs.toFixed(1)} s\n`);
  };
  const results = await Promise.all(
    Array.from({ length: subs }, (_, sub) => {
      const job: ExploreJob = { file, opts: o, sub, subs, stop };
      return new Promise<WorkerResult>((resolve, reject) => {
        const w = new Worker(new URL("./explore-worker.js", import.meta.url), { workerData: job });
        w.on("message", (msg: { kind: string } & WorkerResult & { executions: number; steps: number }) => {
          if (msg.kind === "error") {
            const e = msg as unknown as { file: string; line: number; col: number; message: string };
            reject(new ScenarioError(e.file, e.line, e.col, e.message));
          } else if (msg.kind === "progress") {
            prog.set(msg.sub, { executions: msg.executions, steps: msg.steps });
            showProgress();
          } else resolve(msg);
        });
        w.on("error", reject);
        w.on("exit", (code) => {
          if (code !== 0) reject(new Error(`explore worker ${sub} exited with code ${code}`));
        });
      });
    }),
  );
  const total = { executions: 0, steps: 0, truncated: 0, pruned: 0, sleepBlocked: 0, states: 0 };
  let best: WorkerResult | null = null;
  for (const r of results) {
    total.executions += r.executions;
    total.steps += r.steps;
    total.truncated += r.truncated;
    total.pruned += r.pruned;
    total.sleepBlocked += r.sleepBlocked;
    total.states += r.states;
    if (r.rank !== null && (best === null || rankLess(r.rank, best.rank as number[]))) best = r;
  }
  const stopped = interrupted || results.some((r) => r.stopped);
  const complete = results.every((r) => r.complete);
  const secs = (Date.now() - t0) / 1000;
  if (o.progress)
    process.stderr.write(
      `explore: ${total.executions} executions, ${total.steps} steps in ${secs.toFixed(2)} s (${(total.executions / Math.max(secs, 1e-3)).toFixed(0)} executions/s)\n`,
    );
  let cx: Counterexample | null = null;
  let unshrunk: string | null = null;
  if (best !== null) {
    const sched = best.schedule as number[];
    let s: { schedule: number[]; complete: boolean } | null = { schedule: sched, complete: false };
    if (!o.shrink) unshrunk = "";
    else if (interrupted) unshrunk = "interrupted before shrinking";
    else {
      const w = new Worker(new URL("./explore-worker.js", import.meta.url), {
        workerData: { file, opts: o, sub: 0, subs: 1, stop, shrink: { schedule: sched, invariant: best.invariant as string } } satisfies ExploreJob,
      });
      shrinker = w;
      if (o.progress) process.stderr.write(`explore: shrinking the counterexample (${sched.length} decisions; Ctrl-C prints it as found)...\n`);
      s = await new Promise<{ schedule: number[]; complete: boolean } | null>((resolve, reject) => {
        w.on("message", (msg: { schedule: number[]; complete: boolean }) => resolve(msg));
        w.on("error", reject);
        // After the result (already settled), or terminated by a signal.
        w.on("exit", (code) => (interrupted ? resolve(null) : reject(new Error(`model bug: the shrink worker exited with code ${code} and no result`))));
      });
      shrinker = null;
      if (s === null) unshrunk = "shrinking interrupted";
    }
    if (s === null) s = { schedule: sched, complete: false };
    cx = describe(cfg, s.schedule, s.complete, sched.length);
  }
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  return output(o, header, vars, file, cx, { ...total, complete, stopped: stopped || interrupted, cfg, unshrunk });
}

function writeJson(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (e) {
    throw new UsageError(`--json: cannot write "${path}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

function output(
  o: ExploreOpts,
  header: string,
  vars: string,
  file: string,
  cx: Counterexample | null,
  run: (Coverage & { cfg: ExploreConfig; unshrunk?: string | null }) | null,
): number {
  const lines: string[] = [header, `variants: ${vars || "none (v6.17)"}`];
  if (run !== null) {
    const c = run.cfg;
    const bound =
      c.mode === "exhaustive"
        ? c.preemptions === Number.POSITIVE_INFINITY
          ? "exhaustive, no preemption bound"
          : `exhaustive, at most ${c.preemptions} preemption${c.preemptions === 1 ? "" : "s"}`
        : `${c.mode}, ${c.executions} executions, seed ${c.seed}`;
    lines.push(
      `mode: ${bound}, ${c.maxSteps} steps per execution${(c.speculate ?? 0) > 0 ? `, up to ${c.speculate} speculative TLB fill${c.speculate === 1 ? "" : "s"}` : ""}${c.shard.count > 1 ? `, shard ${c.shard.index}/${c.shard.count}` : ""}`,
    );
    if (cx === null) {
      const what = run.stopped
        ? "stopped by a signal (Ctrl-C, SIGTERM) before the space was covered"
        : run.complete
          ? c.mode === "exhaustive"
            ? c.preemptions === Number.POSITIVE_INFINITY
              ? "every schedule within the step bound"
              : "the whole bounded space"
            : "all samples"
          : "the execution cap was reached";
      lines.push(`explored ${run.executions} executions (${run.steps} steps): ${what}; no invariant broken`);
      if (c.stateCache === true)
        lines.push(
          `state cache: ${run.pruned} executions stopped at a state already explored (${run.states} states cached; the counts depend on --workers and --shard)`,
        );
      if (c.sleepSets === true)
        lines.push(`sleep sets: ${run.sleepBlocked} executions ended where every thread that could run was asleep (their schedules are covered by others)`);
      if (run.truncated > 0) lines.push(`note: ${run.truncated} executions were cut off at the step bound (raise explore.max_steps)`);
    }
  }
  // A replayed schedule that breaks nothing is shown, not reported.
  const broke = cx !== null && cx.invariant !== NO_VIOLATION;
  if (cx !== null) {
    lines.push(broke ? `COUNTEREXAMPLE [${cx.invariant}] ${cx.message}` : "REPLAY: this schedule breaks no invariant; its steps:");
    if (run !== null)
      lines.push(
        cx.shrunk
          ? `shrunk from ${cx.original} to ${cx.schedule.length} decisions; removing any one of them breaks nothing`
          : `${cx.schedule.length} decisions (not shrunk${run.unshrunk ? `: ${run.unshrunk}` : ""})`,
      );
    lines.push(`threads: ${cx.threads.slice(0, -1).join(", ")}`);
    lines.push(...cx.text);
    lines.push(`replay: ptlab explore ${file} --replay ${cx.token}`);
  }
  if (o.json !== true) process.stdout.write(`${lines.join("\n")}\n`);
  if (o.json !== undefined) {
    const doc = {
      scenario: file,
      // The scenario itself, so that the web view (docs/ui.md) can replay
      // the token and show the state at each step from this file alone.
      scenario_text: readFileSync(resolveScenario(file), "utf8"),
      variants: vars,
      mode: run?.cfg.mode ?? "replay",
      executions: run?.executions ?? 1,
      complete: run?.complete ?? true,
      interrupted: run?.stopped === true,
      counterexample: broke ? cx : null,
      ...(cx !== null && !broke ? { replayed: cx } : {}),
    };
    const text = `${JSON.stringify(doc, null, 2)}\n`;
    if (o.json === true) process.stdout.write(text);
    else writeJson(o.json, text);
  }
  // 130: interrupted (the usual code after SIGINT), so scripts do not take
  // a partial run for a clean one, nor an unfinished one for a finished one
  // (hunt does the same): the counterexample found so far is printed above.
  return run?.stopped ? 130 : broke ? 1 : 0;
}
