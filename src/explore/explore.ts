// ptlab explore: exhaustive (preemption-bounded DFS over schedules),
// random and PCT exploration of a scenario's concurrent steps, shrinking of
// counterexamples, and replay tokens. Stateless model checking: every
// execution rebuilds the machine from the scenario and replays a schedule
// (the thread chosen at each decision point). No Node APIs.

import type { ModelEvent } from "../core/events.js";
import { type ExplainContext, explainEvents } from "./explain.js";
import { traceLines } from "./trace-text.js";
import { Recorder } from "../core/record.js";
import { asidAllocatorOf } from "../core/arch/arm64/context.js";
import { dirtyMappedFrames } from "../core/check.js";
import { rng } from "../workloads/builder.js";
import { siteName } from "../core/sync.js";
import { Runner, type RunOptions } from "../run/runner.js";
import { type Scenario, ScenarioError, type Step } from "../scenario/types.js";
import { Execution, isSpec, type Snapshot, type XThread } from "./execution.js";
import { conflicts, type Footprint, mix53 } from "./track.js";
import { describeStep, threadBody } from "./ops.js";
import { snapshot } from "./snapshot.js";
// Last: its interleaving site is numbered after every kernel one.
import { speculation } from "./speculate.js";
// After speculate.ts, for the same reason.
import { KSWAPD_NAME, kswapdCpu, kswapdThread } from "./kswapd.js";

// "sweep" (ptlab hunt): one preemption, its points spread over the
// execution (not a CLI mode: exhaustive at bound 1 covers the same space).
// "anchored" (ptlab hunt, hunting a change): two preemptions around where
// the changed code ran in executions that raced it (ExploreConfig.anchored).
export type Mode = "exhaustive" | "random" | "pct" | "sweep" | "anchored";

export interface ExploreConfig {
  sc: Scenario;
  run: RunOptions; // arch, variants and the like, as for ptlab run
  mode: Mode;
  preemptions: number;
  maxSteps: number;
  executions: number; // random/pct: how many; exhaustive: a cap (0 = none)
  seed: number;
  pctDepth: number;
  // This run's part of the space: shard index/count, split further into
  // sub-shards by worker (results do not depend on the worker count).
  shard: { index: number; count: number; sub?: number; subs?: number };
  shrink: boolean;
  // Exhaustive mode: cut an execution where it reaches a state whose bounded
  // subtree was already explored (track.ts; default off).
  stateCache?: boolean;
  // Exhaustive mode without a preemption bound: sleep sets (partial-order
  // reduction; default off).
  sleepSets?: boolean;
  // Tests: each owned execution that ran to its end, to read its final
  // state (turns tracking on, so that tests can walk what it covers).
  onFinal?: (x: Execution) => void;
  // Tests: each cut, with the decisions that led here and to the state met before.
  onPrune?: (now: number[], before: number[]) => void;
  ignore?: string[]; // invariants not checked
  onProgress?: (p: Progress) => void;
  shouldStop?: () => boolean;
  // ptlab hunt: every execution before it runs (to hook coverage) and
  // after it ended.
  onStart?: (x: Execution) => void;
  onEnd?: (x: Execution) => void;
  // Anchored mode: executions that raced the code the search is aimed at
  // (see AnchorBase), and after each run the decisions of that run whose
  // chosen thread ran that code (for where to switch back first).
  anchored?: AnchorBase[];
  anchorsOf?: () => number[];
  // The set-up steps were checked once already (they are sequential and
  // the same in every execution): run them without invariant checks.
  uncheckedSetup?: boolean;
  // Speculative TLB fills per execution (speculate.ts; default 0: none).
  speculate?: number;
  // Each execution's machine goes back to the array pool when it ends
  // (Machine.release()): for callers that keep nothing of it but its
  // decisions, violation and counters (hunt; not with onFinal).
  recycle?: boolean;
}

export interface Progress {
  executions: number;
  steps: number;
}

export interface ExploreResult {
  mode: Mode;
  executions: number; // owned by this shard and run to completion or violation
  steps: number;
  truncated: number; // executions cut off at maxSteps
  pruned: number; // executions cut short at a state already explored
  sleepBlocked: number; // executions ended because every enabled thread was asleep
  states: number; // distinct states the cache holds
  complete: boolean; // exhaustive: the whole bounded space (of this shard) was explored
  stopped: boolean; // shouldStop() said so
  counterexample: Counterexample | null;
  // The first failing execution's rank in DFS or sampling order (for merging shards).
  rank: number[] | null;
}

export interface TraceStep {
  n: number;
  thread: string;
  op: string; // the scenario step the thread is in
  cpu: number;
  site: string;
  depth: number;
  changes: string[]; // the state before and after, compared (page tables, TLBs, locks)
  start: number; // seq of the step's beginning among all events (-1: not recorded)
  events: (ModelEvent & { seq: number })[]; // what happened inside the step, in order
  explained: string[]; // those events as lines (explain.ts), for views that show a step at a time
}

export interface Counterexample {
  invariant: string;
  message: string;
  schedule: number[]; // thread id chosen at each decision point
  threads: string[]; // names by id (the RCU agent last)
  token: string;
  shrunk: boolean; // false if the shrink budget ran out
  original: number; // decisions before shrinking
  trace: TraceStep[];
  // The trace as a timeline of lines (trace-text.ts): steps, and the events
  // inside them in the order they happened (a step that other threads ran
  // inside of is continued after theirs).
  text: string[];
}

// The exhaustive search a catalogue scenario asks for (its explore: keys),
// under its historical variant or the v6.17 code.
export function scenarioConfig(sc: Scenario, historical: boolean, over: Partial<ExploreConfig> = {}): ExploreConfig {
  const x = sc.explore;
  return {
    sc,
    run: { variants: historical ? { ...(x?.variant ?? {}) } : {}, ...(historical && x?.arch !== undefined ? { arch: x.arch } : {}) },
    mode: "exhaustive",
    preemptions: x?.preemptions ?? 2,
    maxSteps: x?.maxSteps ?? 5000,
    executions: 0,
    seed: sc.machine.seed,
    pctDepth: 3,
    shard: { index: 0, count: 1 },
    shrink: false,
    ignore: x?.ignore ?? [],
    speculate: x?.speculate ?? 0,
    ...over,
  };
}

// ---- running one execution ---------------------------------------------------

export function threadsOf(sc: Scenario): { name: string; steps: Step[] }[] {
  const out: { name: string; steps: Step[] }[] = [];
  for (const s of sc.concurrent ?? []) {
    let t = out.find((x) => x.name === s.thread);
    if (t === undefined) {
      t = { name: s.thread, steps: [] };
      out.push(t);
    }
    t.steps.push(s);
  }
  return out;
}

// onReady: called once the set-up steps ran, before the concurrent part.
export function runOnce(
  cfg: ExploreConfig,
  chooser: (d: number, cands: number[], cur: number) => number,
  record: boolean,
  onReady?: (x: Execution) => void,
  tracking = false,
  hashing = true, // with tracking: state keys too, not only footprints
): Execution {
  const sc = cfg.sc;
  const r = new Runner(sc, cfg.run);
  const m = r.m;
  if (cfg.uncheckedSetup === true) {
    const checked = m.config.checkInvariants;
    m.config.checkInvariants = false;
    r.execSteps(sc.steps, 0);
    m.config.checkInvariants = checked;
  } else r.execSteps(sc.steps, 0);
  m.rcuGracePeriod();
  r.applyHeadroom();
  const x = new Execution(m, chooser, cfg.maxSteps, record, record ? snapshot : null);
  if (cfg.ignore && cfg.ignore.length > 0) x.ignore = new Set(cfg.ignore);
  if ((cfg.speculate ?? 0) > 0) x.spec = speculation(sc, r, cfg.speculate as number);
  x.dirtyBefore = dirtyMappedFrames(m);
  x.seedSetup();
  m.il = x;
  // Under a memory limit kswapd is a thread of its own, woken by allocations.
  if (m.config.memoryPages > 0) {
    m.phys.onAlloc = (pfn, nr) => {
      x.zeroed(pfn, nr);
      x.wakeupKswapd();
    };
  } else m.phys.onAlloc = (pfn, nr) => x.zeroed(pfn, nr);
  // Invariant 10 costs the explorer about a quarter of its speed; ignoring
  // both of its names leaves the plain accessors in place.
  if (m.config.checkInvariants && !(x.ignore.has("pt-out-of-bounds") && x.ignore.has("pt-use-after-free"))) x.checkTables();
  // A replay for display records what happens inside each step.
  if (record) x.recorder = new Recorder(m);
  for (const t of threadsOf(sc)) {
    const cpu = r.threadCpu.get(t.name);
    if (cpu === undefined) {
      const s = t.steps[0] as Step;
      throw new ScenarioError(sc.file, s.pos.line, s.pos.col, `thread "${t.name}" does not exist`);
    }
    let self: XThread | null = null;
    self = x.addThread(
      t.name,
      cpu,
      threadBody(x, r, t.steps, () => self as XThread),
    );
    self.op = describeStep(t.steps[0] as Step);
  }
  // After the scenario's threads: their ids do not move.
  if (m.config.memoryPages > 0) x.addKswapd(KSWAPD_NAME, kswapdCpu(r), (self) => kswapdThread(x, r, self));
  // The ASID allocator lives beside the machine (a WeakMap in context.ts).
  if (tracking) x.enableTracking(m.arch.name === "arm64" ? [r, asidAllocatorOf(m)] : [r], [sc, r.opts, r.oracle, r.rows, m.config, m.geo, m.arch], hashing);
  onReady?.(x);
  cfg.onStart?.(x);
  try {
    x.run();
    x.finish(r.pins.values());
  } finally {
    m.il = null;
    m.phys.onAlloc = null;
  }
  x.closeFootprint();
  cfg.onEnd?.(x);
  // Nothing reads the machine of an execution past this point unless it
  // was recorded (a counterexample's replay) or handed to onFinal.
  if (cfg.recycle === true && !record && cfg.onFinal === undefined) m.release();
  return x;
}

// Order in which DFS tries a decision's alternatives: the running thread
// first (no preemption), then the others by id.
function order(cands: number[], cur: number): number[] {
  if (cur >= 0 && cands.includes(cur)) return [cur, ...cands.filter((c) => c !== cur)];
  return cands;
}

const defaultChoice = (cands: number[], cur: number): number => (cur >= 0 && cands.includes(cur) ? cur : (cands[0] as number));

// ---- exploration ----------------------------------------------------------------

const FRONTIER = 12; // branching decisions that decide a shard

// Index of the decision that completes the shard key (backtracking above it
// stays inside the subtree the key names).
function frontierIndex(x: Execution): number {
  let b = 0;
  for (let i = 0; i < x.decisions.length; i++) if ((x.decisions[i] as { cands: number[] }).cands.length > 1 && ++b === FRONTIER) return i;
  return x.decisions.length;
}

export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function explore(cfg: ExploreConfig): ExploreResult {
  if (!cfg.sc.concurrent || cfg.sc.concurrent.length === 0) throw new ScenarioError(cfg.sc.file, 1, 1, "the scenario has no `concurrent` steps to explore");
  const res: ExploreResult = {
    mode: cfg.mode,
    executions: 0,
    steps: 0,
    truncated: 0,
    pruned: 0,
    sleepBlocked: 0,
    states: 0,
    complete: false,
    stopped: false,
    counterexample: null,
    rank: null,
  };
  let failing: Execution | null = null;
  const tick = (x: Execution) => {
    res.executions++;
    res.steps += x.stepCount;
    if (x.truncated) res.truncated++;
    if (cfg.onProgress && res.executions % 64 === 0) cfg.onProgress({ executions: res.executions, steps: res.steps });
  };
  if (cfg.mode === "exhaustive") {
    const cache = cfg.stateCache === true ? new StateCache(cfg.preemptions, cfg.onPrune) : null;
    const sleep = cfg.sleepSets === true ? new SleepSets() : null;
    if (sleep !== null && cfg.preemptions !== Number.POSITIVE_INFINITY)
      throw new ScenarioError(cfg.sc.file, 1, 1, "sleep sets need --preemptions unbounded (with a preemption bound they can miss schedules)");
    // A fill's footprint is not recorded, and sleep-set masks have a bit per thread.
    if (sleep !== null && (cfg.speculate ?? 0) > 0)
      throw new ScenarioError(cfg.sc.file, 1, 1, "sleep sets do not combine with speculative fills (explore.speculate)");
    const onFinal = cfg.onFinal;
    let prefix: number[] = [];
    for (;;) {
      if (cfg.shouldStop?.()) {
        res.stopped = true;
        break;
      }
      if (cfg.executions > 0 && res.executions >= cfg.executions) break;
      const p = prefix;
      // The shard key is known at the FRONTIER-th branching decision; an
      // execution in a subtree another shard owns stops right there.
      let ex: Execution | null = null;
      let owned = true;
      let keyed = cfg.shard.count === 1 && (cfg.shard.subs ?? 1) === 1;
      let branching = 0;
      const key: number[] = [];
      const x = runOnce(
        cfg,
        (d, cands, cur) => {
          let c: number;
          if (d < p.length) c = p[d] as number;
          else if (sleep !== null && ex !== null) {
            // Only threads not asleep here; none: this execution only
            // repeats others (sleep-set blocked).
            const awake = sleep.awake(d, cands, ex);
            if (awake.length === 0) {
              ex.halted = true;
              return -1;
            }
            c = defaultChoice(awake, cur);
          } else c = defaultChoice(cands, cur);
          if (!keyed) {
            key.push(c);
            if (cands.length > 1 && ++branching === FRONTIER) {
              keyed = true;
              owned = owns(cfg, fnv1a(key.join(",")));
              if (!owned && ex !== null) ex.halted = true;
            }
          }
          return c;
        },
        false,
        (e) => {
          ex = e;
          e.por = sleep !== null;
          // Only states past the forced prefix are new; only owned subtrees
          // are explored to the end by this shard.
          if (cache !== null)
            e.stateHook = (k, cur, d, used) => keyed && owned && d >= p.length && cache.seen(k, cur, used, e, sleep === null ? 0 : sleep.mask(d, e));
        },
        cache !== null || sleep !== null || onFinal !== undefined,
        cache !== null,
      );
      if (onFinal !== undefined && owned && x.ranToEnd()) onFinal(x);
      if (x.pruned) res.pruned++;
      if (x.sleepBlocked) res.sleepBlocked++;
      // An execution shorter than the frontier is keyed by all its decisions.
      if (!keyed) owned = owns(cfg, fnv1a(key.join(",")));
      // Backtracking below the frontier only makes sense inside an owned subtree.
      let limit = x.decisions.length;
      if (owned) {
        tick(x);
        if (x.violation !== null) {
          failing = x;
          res.rank = x.decisions.map((d) => order(d.cands, d.cur).indexOf(d.chosen));
          break;
        }
      } else limit = Math.min(limit, frontierIndex(x) + 1);
      if (cache !== null) res.states = cache.size;
      const next = backtrack(x, limit, cfg.preemptions, sleep);
      if (next === null) {
        res.complete = true;
        break;
      }
      sleep?.branch(x, next.length - 1);
      prefix = next;
    }
  } else if (cfg.mode === "sweep") {
    // The schedule without preemption, then one preemption at each of its
    // branching decisions, in an order that spreads them over the
    // execution (bit-reversed), each to every other thread that could run
    // there. A capped DFS backtracks from the end and, on a budget, only
    // ever moves the last few decisions; this samples the whole length.
    const x0 = runOnce(cfg, (_d, cands, cur) => defaultChoice(cands, cur), false);
    tick(x0);
    if (x0.violation !== null) {
      failing = x0;
      res.rank = [0];
    } else {
      const at: number[] = [];
      x0.decisions.forEach((d, i) => {
        if (d.cands.length > 1) at.push(i);
      });
      const alts: [number, number][] = [];
      for (const j of bitReversed(at.length)) {
        const i = at[j] as number;
        const d = x0.decisions[i] as { cands: number[]; chosen: number };
        for (const a of d.cands) if (a !== d.chosen) alts.push([i, a]);
      }
      const base = x0.decisions.map((d) => d.chosen);
      let k = 0;
      for (; k < alts.length && (cfg.executions === 0 || res.executions < cfg.executions); k++) {
        if (cfg.shouldStop?.()) {
          res.stopped = true;
          break;
        }
        if (!owns(cfg, k)) continue;
        const [i, a] = alts[k] as [number, number];
        const x = runOnce(cfg, (d, cands, cur) => (d < i ? (base[d] as number) : d === i ? a : defaultChoice(cands, cur)), false);
        tick(x);
        if (x.violation !== null) {
          failing = x;
          res.rank = [k + 1];
          break;
        }
      }
      if (!res.stopped && failing === null && k >= alts.length) res.complete = true;
    }
  } else if (cfg.mode === "anchored") {
    const r = anchored(cfg, tick);
    failing = r.failing;
    res.rank = r.rank;
    res.stopped = r.stopped;
    res.complete = r.complete;
  } else {
    // PCT's change points fall within the length of an execution (its k,
    // Burckhardt et al.): measured once on the schedule without
    // preemption, the same for every shard.
    const horizon = cfg.mode === "pct" ? Math.max(1, runOnce(cfg, (_d, cands, cur) => defaultChoice(cands, cur), false).decisions.length) : cfg.maxSteps;
    for (let k = 0; cfg.executions === 0 || k < cfg.executions; k++) {
      if (cfg.shouldStop?.()) {
        res.stopped = true;
        break;
      }
      if (!owns(cfg, k)) continue;
      const rnd = rng(fnv1a(`${cfg.seed}:${k}`));
      const chooser = cfg.mode === "random" ? randomChooser(rnd) : pctChooser(rnd, cfg.pctDepth, horizon);
      const x = runOnce(cfg, chooser, false);
      tick(x);
      if (x.violation !== null) {
        failing = x;
        res.rank = [k];
        break;
      }
    }
    if (!res.stopped && failing === null) res.complete = true;
  }
  if (failing !== null) res.counterexample = counterexample(cfg, failing);
  return res;
}

// States whose subtree the DFS explored, with the preemption budget left
// when it got there. DFS finishes a state's subtree before it backtracks
// above it, so a state met again on another path with no more budget needs
// nothing explored. The budget is per `cur` (the thread whose continuing is
// free): from the same state with another `cur`, only the first decision
// costs differently, by at most one preemption.
class StateCache {
  private map = new Map<number, number>();
  private masks = new Map<number, number>(); // sleep set the state was explored with
  private prefixes = new Map<number, number[]>();
  constructor(
    private readonly bound: number,
    private readonly onPrune?: (now: number[], before: number[]) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  // asleep: a bit per thread asleep here. With sleep sets a state explored
  // with sleep set Z covers the current visit only if Z is a subset of the
  // current one (Godefroid 1996, ch. 6).
  seen(key: number, cur: number, used: number, x: Execution, asleep: number): boolean {
    const left = this.bound - used;
    for (const c of this.curs) {
      const kc = mix53(key, c + 2);
      const r = this.map.get(kc);
      if (r !== undefined && r >= (c === cur ? left : left + 1) && ((this.masks.get(kc) as number) & ~asleep) === 0) {
        this.onPrune?.(
          x.decisions.map((d) => d.chosen),
          this.prefixes.get(kc) as number[],
        );
        return true;
      }
    }
    if (!this.curs.includes(cur)) this.curs.push(cur);
    const k = mix53(key, cur + 2);
    const r = this.map.get(k);
    if (r === undefined || r < left || ((this.masks.get(k) as number) & ~asleep) !== 0) {
      this.map.set(k, left);
      this.masks.set(k, asleep);
      if (this.onPrune)
        this.prefixes.set(
          k,
          x.decisions.map((d) => d.chosen),
        );
    }
    return false;
  }
  private curs: number[] = []; // every `cur` a key was stored under
}

// Sleep sets (Godefroid 1996): at each decision of the current DFS path, the
// threads whose next transition need not be started there, with the
// footprint it had when it was explored (track.ts). A thread explored at a
// decision, or asleep there, stays asleep in the next decision while the
// transition taken in between is independent of its own: both orders lead
// to the same state, and the other order was or will be explored. Sound
// without a preemption bound; with one, the order that was explored may
// need more preemptions than the bound allows (Coons et al., OOPSLA 2013).
interface Sleeper {
  t: number;
  fp: Footprint;
}

class SleepSets {
  private sleep: Sleeper[][] = []; // per decision on the current path
  private done: Sleeper[][] = []; // alternatives explored there before the current one

  // The sleep set at decision d of the running execution (computed once per
  // path: replays of a prefix take the same transitions).
  private at(d: number, x: Execution): Sleeper[] {
    for (let k = this.sleep.length; k <= d; k++) {
      if (k === 0) {
        this.sleep.push([]);
        this.done.push([]);
        continue;
      }
      const prev = x.decisions[k - 1] as { chosen: number; fp?: Footprint };
      const fp = prev.fp as Footprint;
      const z: Sleeper[] = [];
      for (const s of [...(this.sleep[k - 1] as Sleeper[]), ...(this.done[k - 1] as Sleeper[])]) if (s.t !== prev.chosen && !conflicts(s.fp, fp)) z.push(s);
      this.sleep.push(z);
      this.done.push([]);
    }
    return this.sleep[d] as Sleeper[];
  }

  awake(d: number, cands: number[], x: Execution): number[] {
    const z = this.at(d, x);
    return cands.filter((c) => !z.some((s) => s.t === c));
  }

  mask(d: number, x: Execution): number {
    let m = 0;
    for (const s of this.at(d, x)) m |= 1 << s.t;
    return m;
  }

  isAsleep(d: number, t: number): boolean {
    return (this.sleep[d] ?? []).some((s) => s.t === t);
  }

  // The DFS leaves decision i's current alternative for another: it is done
  // there, and everything below is forgotten.
  branch(x: Execution, i: number): void {
    const d = x.decisions[i] as { chosen: number; fp?: Footprint };
    (this.done[i] as Sleeper[]).push({ t: d.chosen, fp: d.fp as Footprint });
    this.sleep.length = i + 1;
    this.done.length = i + 1;
  }
}

function owns(cfg: ExploreConfig, h: number): boolean {
  const { index, count, sub = 0, subs = 1 } = cfg.shard;
  return h % count === index && Math.floor(h / count) % subs === sub;
}

// Lexicographic order of ranks: the first failing execution in DFS or
// sampling order wins when shards are merged.
export function rankLess(a: number[], b: number[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) < (b[i] as number);
  return a.length < b.length;
}

// Next DFS prefix: the deepest decision (below limit) with an untried
// alternative that keeps the preemption count within the bound.
function backtrack(x: Execution, limit: number, bound: number, sleep: SleepSets | null): number[] | null {
  const ds = x.decisions;
  const pre: number[] = [0];
  for (let i = 0; i < ds.length; i++) {
    const d = ds[i] as { cands: number[]; cur: number; chosen: number };
    const isPre = d.cur >= 0 && d.cands.includes(d.cur) && d.chosen !== d.cur && !isSpec(d.chosen) ? 1 : 0;
    pre.push((pre[i] as number) + isPre);
  }
  for (let i = Math.min(limit, ds.length) - 1; i >= 0; i--) {
    const d = ds[i] as { cands: number[]; cur: number; chosen: number };
    const ord = order(d.cands, d.cur);
    for (let j = ord.indexOf(d.chosen) + 1; j < ord.length; j++) {
      const a = ord[j] as number;
      if (sleep?.isAsleep(i, a)) continue;
      const isPre = d.cur >= 0 && d.cands.includes(d.cur) && a !== d.cur && !isSpec(a) ? 1 : 0;
      if ((pre[i] as number) + isPre <= bound) return [...ds.slice(0, i).map((e) => e.chosen), a];
    }
  }
  return null;
}

// 0 .. n-1 in bit-reversed order of their binary digits (0, n/2, n/4,
// 3n/4, ...): each prefix of it is spread over the whole range.
// Directed search at the code a change touched (as directed fuzzers aim at
// changed lines). A race with that code takes two preemptions, beyond a
// sweep at bound 1 and rare under PCT, in one of two shapes:
// - the thread running it stops inside its window (after it read an
//   entry, before it checks it again) while another thread changes what it
//   read, then runs on while the other is half way through: for each
//   anchor (a decision that let the changed code run beside another
//   thread) and the next few decisions of the same thread, switch to each
//   other thread there, and from that run switch back at each later
//   decision (first where the other thread itself ran changed code, then
//   the rest spread over the run);
// - the other thread was stopped inside its own window (the sweep's one
//   preemption) and the changed code runs through it, and the stopped
//   thread must finish before the changed code's thread goes on to its
//   next step (a pin taken in fork's window, then a store after fork):
//   at that next step's first decision, switch to each other thread.
// Each base is an execution of the sweep that raced the code (its
// preemption may or may not fall inside the other thread's window, so
// several are kept); the groups of all bases take turns, the cheap second
// shape first, so that a small budget reaches every base.
export interface AnchorBase {
  schedule: number[]; // the thread chosen at each decision
  cands: number[][]; // the threads that could run there
  anchors: number[]; // decisions whose chosen thread then ran the changed code beside another
  ends: number[]; // for each anchor, the decision at which that thread began its next step, -1 none
}
const ANCHOR_REACH = 4; // decisions of the anchored thread after the anchor that also start a group
const ANCHOR_BEFORE = 2; // and before it
const ANCHORS = 4; // anchors used per base (the first ones)

function anchored(cfg: ExploreConfig, tick: (x: Execution) => void): { failing: Execution | null; rank: number[] | null; stopped: boolean; complete: boolean } {
  const out = { failing: null as Execution | null, rank: null as number[] | null, stopped: false, complete: false };
  const bases = cfg.anchored ?? [];
  // A group: preempt at decision i of base b to thread a; then each switch back to t.
  interface Group {
    b: number;
    i: number;
    a: number;
    t: number;
    backs: number[] | null; // null: the first run (no switch back) is next
    next: number;
    id: number; // its rank among all groups (shards, counterexample ranks)
  }
  const ends: Group[][] = [];
  const starts: Group[][] = [];
  // Bases often share their schedule up to a group's decision (the same
  // anchor reached before their preemptions differ): such a group is the
  // same executions, kept once.
  const seenEnds = new Set<string>();
  const seenStarts = new Set<string>();
  for (const [b, base] of bases.entries()) {
    const e: Group[] = [];
    const g: Group[] = [];
    const add = (into: Group[], i: number) => {
      const seen = into === e ? seenEnds : seenStarts;
      const cands = base.cands[i];
      if (cands === undefined || cands.length < 2) return;
      const t = base.schedule[i] as number;
      const prefix = base.schedule.slice(0, i).join(",");
      for (const a of cands) {
        const key = `${prefix}|${a}`;
        if (a === t || seen.has(key)) continue;
        seen.add(key);
        into.push({ b, i, a, t, backs: null, next: 0, id: 0 });
      }
    };
    for (const [k, c] of base.anchors.slice(0, ANCHORS).entries()) {
      const end = base.ends[k] ?? -1;
      if (end >= 0) add(e, end);
      const t = base.schedule[c];
      let n = 0;
      for (let i = c; i < base.schedule.length && n <= ANCHOR_REACH; i++) {
        if (base.schedule[i] !== t) continue;
        n++;
        add(g, i);
      }
      // The window may open before the changed code: the read that a
      // re-check (the code a change touched) re-checks.
      n = 0;
      for (let i = c - 1; i >= 0 && n < ANCHOR_BEFORE; i--) {
        if (base.schedule[i] !== t) continue;
        n++;
        add(g, i);
      }
    }
    ends.push(e);
    starts.push(g);
  }
  // Phases: every base's step-end groups (one run each), then each base's
  // anchor groups, which take turns among themselves (first runs, then the
  // switches back).
  const phases: Group[][] = [ends.flat(), ...starts];
  let n = 0;
  let id = 0;
  for (const groups of phases) for (const g of groups) g.id = id++;
  for (const [p, groups] of phases.entries()) {
    let live = groups.length;
    while (live > 0) {
      live = 0;
      for (const g of groups) {
        if (g.backs !== null && g.next >= g.backs.length) continue;
        if (cfg.executions > 0 && n >= cfg.executions) return out;
        if (cfg.shouldStop?.()) return { ...out, stopped: true };
        live++;
        const gi = g.id;
        if (!owns(cfg, gi)) {
          g.backs = [];
          continue;
        }
        const base = (bases[g.b] as AnchorBase).schedule;
        const pre = (d: number, cands: number[], cur: number) => (d < g.i ? (base[d] as number) : d === g.i ? g.a : defaultChoice(cands, cur));
        if (g.backs === null) {
          const x = runOnce(cfg, pre, false);
          tick(x);
          n++;
          if (x.violation !== null) return { ...out, failing: x, rank: [gi, 0] };
          if (p === 0) {
            g.backs = [];
            continue;
          }
          const js: number[] = [];
          x.decisions.forEach((d, j) => {
            if (j > g.i && d.chosen !== g.t && d.cands.includes(g.t)) js.push(j);
          });
          // First the decisions right after the other thread ran changed code.
          const hot = new Set<number>();
          for (const c of cfg.anchorsOf?.() ?? []) {
            const j = js.find((j) => j > c);
            if (c > g.i && j !== undefined) hot.add(j);
          }
          g.backs = [
            ...js.filter((j) => hot.has(j)),
            ...bitReversed(js.length)
              .map((k) => js[k] as number)
              .filter((j) => !hot.has(j)),
          ];
          continue;
        }
        const j = g.backs[g.next++] as number;
        const x = runOnce(cfg, (d, cands, cur) => (d === j ? g.t : pre(d, cands, cur)), false);
        tick(x);
        n++;
        if (x.violation !== null) return { ...out, failing: x, rank: [gi, g.next] };
      }
    }
  }
  return { ...out, complete: true };
}

function bitReversed(n: number): number[] {
  let bits = 0;
  while (1 << bits < n) bits++;
  const out: number[] = [];
  for (let i = 0; i < 1 << bits; i++) {
    let r = 0;
    for (let b = 0; b < bits; b++) if (i & (1 << b)) r |= 1 << (bits - 1 - b);
    if (r < n) out.push(r);
  }
  return out;
}

function randomChooser(rnd: () => number) {
  return (_d: number, cands: number[]) => cands[Math.floor(rnd() * cands.length)] as number;
}

// PCT (Burckhardt et al., ASPLOS 2010): random thread priorities, the highest
// enabled runs; at depth-1 random decision indices the running thread drops
// below every other.
function pctChooser(rnd: () => number, depth: number, horizon: number) {
  const prio = new Map<number, number>();
  const change = new Set<number>();
  for (let i = 0; i < depth - 1; i++) change.add(Math.floor(rnd() * Math.min(horizon, 400)));
  let low = 0;
  return (d: number, cands: number[]) => {
    for (const c of cands) if (!prio.has(c)) prio.set(c, 1 + rnd());
    let best = cands[0] as number;
    for (const c of cands) if ((prio.get(c) as number) > (prio.get(best) as number)) best = c;
    if (change.has(d)) {
      prio.set(best, --low);
      best = cands[0] as number;
      for (const c of cands) if ((prio.get(c) as number) > (prio.get(best) as number)) best = c;
    }
    return best;
  };
}

// ---- counterexamples -------------------------------------------------------------

// Strict replay: exactly these choices; a run that needs more decisions, or
// names a thread that cannot run, has no counterexample.
export function replay(cfg: ExploreConfig, schedule: number[], record: boolean): Execution {
  return runOnce(cfg, (d, cands) => (d < schedule.length && cands.includes(schedule[d] as number) ? (schedule[d] as number) : -1), record);
}

function failsWith(cfg: ExploreConfig, schedule: number[], invariant: string): number[] | null {
  const x = replay(cfg, schedule, false);
  if (x.violation === null || x.violation.invariant !== invariant) return null;
  return x.decisions.map((d) => d.chosen);
}

const SHRINK_BUDGET = 20000;

// Delta debugging over the schedule: drop chunks, then single decisions,
// while the same invariant still breaks. The result is 1-minimal: removing
// any one decision leaves a schedule that cannot run or breaks nothing.
export function shrink(cfg: ExploreConfig, schedule: number[], invariant: string): { schedule: number[]; complete: boolean } {
  let cur = failsWith(cfg, schedule, invariant) ?? schedule;
  let budget = SHRINK_BUDGET;
  for (let size = Math.max(1, cur.length >> 1); size >= 1; size = size === 1 ? 0 : size >> 1) {
    let i = 0;
    while (i + size <= cur.length) {
      if (--budget < 0) return { schedule: cur, complete: false };
      const cand = [...cur.slice(0, i), ...cur.slice(i + size)];
      const r = failsWith(cfg, cand, invariant);
      if (r !== null && r.length < cur.length) {
        cur = r;
        if (size > 1) size = Math.min(size, Math.max(1, cur.length >> 1));
      } else i++;
    }
  }
  // A last pass of single deletions after the chunked ones changed things.
  for (let again = true; again; ) {
    again = false;
    for (let i = 0; i < cur.length; i++) {
      if (--budget < 0) return { schedule: cur, complete: false };
      const r = failsWith(cfg, [...cur.slice(0, i), ...cur.slice(i + 1)], invariant);
      if (r !== null && r.length < cur.length) {
        cur = r;
        again = true;
        break;
      }
    }
  }
  return { schedule: cur, complete: true };
}

export function counterexample(cfg: ExploreConfig, x: Execution): Counterexample {
  const v = x.violation as NonNullable<Execution["violation"]>;
  const original = x.decisions.map((d) => d.chosen);
  const s = cfg.shrink ? shrink(cfg, original, v.invariant) : { schedule: original, complete: false };
  return describe(cfg, s.schedule, s.complete, original.length);
}

// describe()'s invariant when the schedule breaks none (a replay token
// whose schedule no longer fails).
export const NO_VIOLATION = "(none)";

// Replays a schedule with state recording and renders the steps.
export function describe(cfg: ExploreConfig, schedule: number[], shrunk: boolean, original: number): Counterexample {
  const x = replay(cfg, schedule, true);
  x.recorder?.stop();
  const names = [...x.threads.map((t) => t.name), "rcu"];
  const v = x.violation;
  const A = x.m.arch;
  const ctx: ExplainContext = {
    describeEntry: (e) => A.describeEntry(e),
    entryIsTable: (e) => A.entryIsTable(e),
    ptePfn: (e) => A.ptePfn(e),
    levels: A.levels,
  };
  const trace: TraceStep[] = x.steps.map((st, n) => {
    const events = st.events.map((r) => ({ ...r.ev, seq: r.seq }));
    return {
      n: n + 1,
      thread: isSpec(st.thread) ? "hw" : (names[st.thread] as string),
      op: st.op,
      cpu: st.cpu,
      site: siteName(st.site),
      depth: st.depth,
      changes: diff(st.before, st.after),
      start: st.start,
      events,
      explained: [],
    };
  });
  // A step that others ran inside of says where: its events before them,
  // a line naming them, its events after.
  for (const s of trace) {
    const inner = trace.filter((t) => t.depth > s.depth && t.start > s.start && s.events.some((e) => e.seq > t.start));
    if (inner.length === 0 || s.events.length === 0) {
      s.explained = explainEvents(s.events, ctx);
      continue;
    }
    const cut = Math.min(...inner.map((t) => t.start));
    const ns = inner.map((t) => t.n);
    const who = [...new Set(inner.map((t) => t.thread))].join(", ");
    s.explained = [
      ...explainEvents(
        s.events.filter((e) => e.seq < cut),
        ctx,
      ),
      `... here steps ${Math.min(...ns)}-${Math.max(...ns)} (${who}) ran inside this one ...`,
      ...explainEvents(
        s.events.filter((e) => e.seq >= cut),
        ctx,
      ),
    ];
  }
  return {
    invariant: v?.invariant ?? NO_VIOLATION,
    message: v?.message ?? "the schedule no longer breaks an invariant",
    schedule,
    threads: names,
    token: makeToken(cfg, schedule),
    shrunk,
    original,
    trace,
    text: traceLines(trace, ctx),
  };
}

function diff(a: Snapshot | null, b: Snapshot | null): string[] {
  if (a === null || b === null) return [];
  const out: string[] = [];
  const part = (label: string, x: Map<string, string>, y: Map<string, string>) => {
    for (const [k, v] of y) {
      const o = x.get(k);
      if (o === undefined) out.push(`${label} ${k}: + ${v}`);
      else if (o !== v) out.push(`${label} ${k}: ${o} -> ${v}`);
    }
    for (const [k, o] of x) if (!y.has(k)) out.push(`${label} ${k}: - ${o}`);
  };
  part("pte", a.ptes, b.ptes);
  part("tlb", a.tlbs, b.tlbs);
  part("lock", a.locks, b.locks);
  return out;
}

// ---- replay tokens ------------------------------------------------------------------

// v1.<hash of scenario and options>.<variant overrides>.<schedule, run-length coded>
export function configKey(cfg: ExploreConfig): string {
  const sc = { ...cfg.sc, file: "" };
  const opts = { ...cfg.run, onStep: undefined };
  // Speculative fills change what a schedule's numbers mean; without them
  // the key is what it was before they existed.
  const spec = cfg.speculate ?? 0;
  return fnv1a(JSON.stringify(spec > 0 || (cfg.sc.explore?.speculate ?? 0) > 0 ? [sc, opts, cfg.maxSteps, spec] : [sc, opts, cfg.maxSteps]))
    .toString(16)
    .padStart(8, "0");
}

export function makeToken(cfg: ExploreConfig, schedule: number[]): string {
  const vars = Object.entries(cfg.run.variants ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const runs: string[] = [];
  for (let i = 0; i < schedule.length; ) {
    let j = i;
    while (j < schedule.length && schedule[j] === schedule[i]) j++;
    runs.push(j - i > 1 ? `${schedule[i]}*${j - i}` : `${schedule[i]}`);
    i = j;
  }
  return `v1.${configKey(cfg)}.${vars}.${runs.join("-")}`;
}

export class TokenError extends Error {}

export function parseToken(token: string): { key: string; variants: Record<string, string>; schedule: number[] } {
  const parts = token.split(".");
  const sched = parts[parts.length - 1] ?? "";
  const vars = parts.slice(2, -1).join(".");
  if (parts.length < 4 || parts[0] !== "v1" || !/^[0-9a-f]{8}$/.test(parts[1] ?? "") || !/^\d+(\*\d+)?(-\d+(\*\d+)?)*$/.test(sched))
    throw new TokenError(`malformed replay token "${token}" (expected v1.<hash>.<variants>.<schedule>)`);
  const m = [token, parts[1], vars, sched];
  const variants: Record<string, string> = {};
  if (m[2]) {
    for (const kv of (m[2] as string).split(",")) {
      const [k, v] = kv.split("=");
      if (!k || v === undefined) throw new TokenError(`malformed variant "${kv}" in replay token`);
      variants[k] = v;
    }
  }
  const schedule: number[] = [];
  for (const run of (m[3] as string).split("-")) {
    const [id, n] = run.split("*");
    for (let i = 0; i < (n === undefined ? 1 : Number(n)); i++) schedule.push(Number(id));
  }
  return { key: m[1] as string, variants, schedule };
}
