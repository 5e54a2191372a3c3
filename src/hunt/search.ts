// One hunt case: load the generated scenario text as `ptlab explore` would,
// explore its concurrent steps with a fixed budget (a short exhaustive
// search at one preemption, then PCT and uniform random samples), and
// record what the executions covered. The budget is a number of executions,
// not a time, so a case's result does not depend on the machine.
// No Node APIs.

import { Counters } from "../core/counters.js";
import { VARIANTS, type VariantName } from "../core/machine.js";
import { siteTable } from "../core/sync.js";
import { type Execution, HAZARDS } from "../explore/execution.js";
import { type AnchorBase, type ExploreConfig, explore, fnv1a, type Mode } from "../explore/explore.js";
import { Runner, ViolationError } from "../run/runner.js";
import { parseScenario } from "../scenario/load.js";
import { type Scenario, ScenarioError } from "../scenario/types.js";

export interface Budget {
  exhaustive: number; // executions of the preemption-bounded DFS (bound 1)
  pct: number;
  random: number;
  // Scheduling decisions over all the case's executions, each weighted by
  // the PTE table size over 512 (the invariant checks after every decision
  // scan the live tables): a case with big tables or long steps stops
  // early instead of costing a hundred times the median case.
  work: number;
}

// Small: given the right case, the search finds each catalogue bug within
// about 20 executions, so more cases per second beat deeper search of each
// (bench:hunt found 2 of 12 variants with 210 executions a case, 4 with 40);
// a case that reaches a selected variant's code gets three times the sampling.
export const DEFAULT_BUDGET: Budget = { exhaustive: 24, pct: 12, random: 4, work: 7600 };

export type Outcome =
  | { kind: "clean" }
  | { kind: "invalid"; message: string } // the generated case does not load or its set-up fails
  | { kind: "violation"; invariant: string; message: string; schedule: number[]; mode: Mode; seed: number; preemptions: number }
  | { kind: "setup-violation"; invariant: string; message: string } // a sequential step broke an invariant
  | { kind: "model-bug"; message: string };

export interface CaseResult {
  outcome: Outcome;
  features: number[]; // sorted
  executions: number;
  // Executions in which the code of a selected historical variant ran
  // during the concurrent part, and those in which it ran while another
  // thread still had steps to take (where a race with the changed code can
  // be).
  consulted: number;
  raced: number;
  // The code of a selected variant ran at all: in the sequential set-up or
  // in some execution (a step nearer the race than a case that never ran it).
  reached: boolean;
}

// ---- coverage features ------------------------------------------------------------
// Numbers in disjoint ranges: an interleaving site a thread resumed at, a
// pair of sites where one thread preempted another, a counter of kernel work
// reaching a power-of-two bucket, an outcome (a thread's step failing with an
// errno or SIGSEGV, a violation), a near miss (Execution.onHazard: a check
// that held only because a flush or a lock holder still owed the work) at
// the running thread's site.

const F_SITE = 0x1000000;
const F_PAIR = 0x2000000;
const F_COUNTER = 0x3000000;
const F_OUTCOME = 0x4000000;
const F_STATE = 0x5000000;
const F_VARIANT = 0x6000000;
const F_HAZARD = 0x7000000;
const STATE_NAMES = ["pte-lock", "mmap-write", "rcu-reader", "irqs-off", "rcu-pending", "lockless-read", "zap", "lazy-free", "calls>1"];
const COUNTER_NAMES = Object.keys(new Counters()) as (keyof Counters)[];
const VARIANT_NAMES = Object.keys(VARIANTS) as VariantName[];
// An outcome's id is a hash of its name, not the order this thread met
// it in: each worker thread has its own table, and coverage merged from
// workers must not depend on which worker saw what first.
const outcomeNames = new Map<number, string>();
function outcomeId(s: string): number {
  const id = fnv1a(s) & 0xffffff;
  outcomeNames.set(id, s);
  return id;
}

// The outcomes this thread has named, for a thread that names another's features.
export function outcomeTable(): [number, string][] {
  return [...outcomeNames];
}
export function learnOutcomes(t: [number, string][]): void {
  for (const [id, name] of t) outcomeNames.set(id, name);
}

// A feature's name; `sites` is the site table of the thread that recorded
// it (siteTable() there), this thread's by default.
export function featureName(f: number, sites: readonly string[] = siteTable()): string {
  const kind = f & 0xff000000;
  const v = f & 0xffffff;
  const siteName = (id: number) => sites[id] ?? `site ${id}`;
  if (kind === F_SITE) return `site ${siteName(v)}`;
  if (kind === F_PAIR) return `preempt ${siteName(v >>> 12)} -> ${siteName(v & 0xfff)}`;
  if (kind === F_COUNTER) return `counter ${COUNTER_NAMES[v >>> 5] ?? "?"} >= ${v & 31 ? 2 ** ((v & 31) - 1) : 0}`;
  if (kind === F_OUTCOME) return `outcome ${outcomeNames.get(v) ?? `#${v.toString(16)}`}`;
  if (kind === F_VARIANT) {
    const mask = v & 0xfff;
    const on = STATE_NAMES.filter((_, i) => mask & (1 << i));
    return `variant ${VARIANT_NAMES[v >>> 12] ?? "?"} consulted with {${on.join(", ")}}`;
  }
  if (kind === F_HAZARD) return `near miss: ${HAZARDS[(v >>> 12) - 1] ?? "?"} at ${siteName(v & 0xfff)}`;
  if (kind === F_STATE) {
    const mask = v >>> 12;
    const on = STATE_NAMES.filter((_, i) => mask & (1 << i));
    return `state ${siteName(v & 0xfff)} with {${on.join(", ")}}`;
  }
  return `feature ${f}`;
}

// Directed search (as AFLGo and patch-directed fuzzers aim at changed
// code): variant code asks variantIs() (src/core/variant.ts) where its logic
// departs, and Machine.variantHook hears each question during the
// concurrent part. A question about the selected value or the v6.17 one is
// a visit to the changed code (a question about a third value is another
// change's); it is recorded with what else was going on.
interface Directed {
  keys: Map<VariantName, [string, string]>; // selected, non-default: [selected, default]
  consulted: number;
  raced: number;
  setup: boolean; // consulted by the set-up's steps
  anchors: number[]; // this execution's decisions whose chosen thread then ran the changed code beside another thread
  // For each anchor: the thread and the step it was in, and the decision
  // at which that thread began a later step (-1 until it does).
  anchorStep: { t: number; step: number; end: number }[];
  // The first executions that raced the changed code (the anchored stage's bases).
  bases: AnchorBase[];
}

const BASES = 8; // executions of the sweep kept as bases for the anchored stage

function watchVariants(x: Execution, d: Directed, feats: Set<number>): void {
  let seen = false;
  let raced = false;
  x.m.variantHook = (key, value) => {
    const w = d.keys.get(key);
    if (w === undefined || (value !== w[0] && value !== w[1])) return;
    feats.add(F_VARIANT + ((VARIANT_NAMES.indexOf(key) << 12) | (x.stateMask() & 0xfff)));
    if (!seen) {
      seen = true;
      d.consulted++;
    }
    if (x.othersPending()) {
      const at = x.decisions.length - 1;
      if (at >= 0 && d.anchors[d.anchors.length - 1] !== at) {
        d.anchors.push(at);
        const t = (x.decisions[at] as { chosen: number }).chosen;
        const th = x.threads[t];
        d.anchorStep.push({ t, step: th !== undefined ? th.stepNo : Number.MAX_SAFE_INTEGER, end: -1 });
      }
    }
    if (!raced && x.othersPending()) {
      raced = true;
      d.raced++;
    }
  };
}

function instrument(cfg: ExploreConfig, feats: Set<number>, work: { n: number; per: number }, d: Directed): ExploreConfig {
  return {
    ...cfg,
    onStart: (x: Execution) => {
      d.anchors = [];
      d.anchorStep = [];
      if (d.keys.size > 0) watchVariants(x, d, feats);
      x.onHazard = (h, site) => feats.add(F_HAZARD + ((h << 12) | (site & 0xfff)));
      x.onDecide = (c, cur) => {
        work.n += work.per;
        for (const a of d.anchorStep) if (a.end === -1 && a.t === c && (x.threads[c] as { stepNo: number }).stepNo > a.step) a.end = x.decisions.length - 1;
        const n = x.threads.length;
        const sc = c < n ? (x.threads[c] as { site: number }).site : 0;
        feats.add(F_SITE + sc);
        feats.add(F_STATE + ((x.stateMask() << 12) | (sc & 0xfff)));
        if (cur >= 0 && cur !== c) {
          const su = cur < n ? (x.threads[cur] as { site: number }).site : 0;
          feats.add(F_PAIR + (((su & 0xfff) << 12) | (sc & 0xfff)));
        }
      };
    },
    onEnd: (x: Execution) => {
      if (d.bases.length < BASES && d.anchors.length > 0)
        d.bases.push({
          schedule: x.decisions.map((c) => c.chosen),
          cands: x.decisions.map((c) => c.cands),
          anchors: d.anchors.slice(),
          ends: d.anchorStep.map((a) => a.end),
        });
      const cs = x.m.counters as unknown as Record<string, number>;
      for (let i = 0; i < COUNTER_NAMES.length; i++) {
        const v = cs[COUNTER_NAMES[i] as string] as number;
        if (v > 0) feats.add(F_COUNTER + (i << 5) + Math.min(31, 1 + Math.floor(Math.log2(v))));
      }
      for (const t of x.threads) if (t.killed !== null) feats.add(F_OUTCOME + outcomeId(t.killed.replace(/ at 0x.*| \(.*/s, "").split(":")[0] as string));
      if (x.violation !== null) feats.add(F_OUTCOME + outcomeId(`violation ${x.violation.invariant}`));
    },
  };
}

export function loadCase(text: string, file: string): Scenario {
  return parseScenario(text, file);
}

// The configuration `ptlab explore FILE` would use for a scenario file with
// no options: the replay tokens hunt prints must be accepted there.
export function defaultConfig(sc: Scenario): ExploreConfig {
  return {
    sc,
    run: { variants: {} },
    mode: "exhaustive",
    preemptions: sc.explore?.preemptions ?? 2,
    maxSteps: sc.explore?.maxSteps ?? 5000,
    executions: 0,
    seed: sc.machine.seed,
    pctDepth: 3,
    shard: { index: 0, count: 1, sub: 0, subs: 1 },
    shrink: false,
    ignore: [...(sc.explore?.ignore ?? [])],
    stateCache: false,
    sleepSets: false,
  };
}

// Explores one case. shouldStop: the campaign's deadline or an interrupt.
export function runCase(sc: Scenario, budget: Budget, seed: number, shouldStop?: () => boolean): CaseResult {
  const feats = new Set<number>();
  let executions = 0;
  const base = defaultConfig(sc);
  const gran = sc.machine.arch === "arm64" ? (sc.machine.arm64?.granule ?? 4) : 4;
  const work = { n: 0, per: (gran * 1024) / 8 / 512 };
  // Hunting a change, a case whose schedules reach its code beside another
  // thread gets three times the sampling after the exhaustive phase.
  let boost = 1;
  const overBudget = () => work.n > budget.work * boost;
  const d: Directed = { keys: new Map(), consulted: 0, raced: 0, setup: false, anchors: [], anchorStep: [], bases: [] };
  for (const [k, v] of Object.entries(sc.machine.variants ?? {}))
    if (k in VARIANTS && VARIANTS[k as VariantName][0] !== v) d.keys.set(k as VariantName, [v, VARIANTS[k as VariantName][0]]);
  const plan: { mode: Mode; n: number; preemptions: number; pctDepth: number; seed: number }[] = [
    { mode: "sweep", n: budget.exhaustive, preemptions: 1, pctDepth: 3, seed },
    // Hunting a change whose code raced another thread: two preemptions at it.
    { mode: "anchored", n: 2 * budget.pct, preemptions: 2, pctDepth: 3, seed },
    { mode: "pct", n: budget.pct >> 1, preemptions: 0, pctDepth: 2, seed: seed + 1 },
    { mode: "pct", n: budget.pct - (budget.pct >> 1), preemptions: 0, pctDepth: 3, seed: seed + 2 },
    { mode: "random", n: budget.random, preemptions: 0, pctDepth: 3, seed: seed + 3 },
  ];
  const done = (outcome: Outcome): CaseResult => ({
    outcome,
    features: [...feats].sort((a, b) => a - b),
    executions,
    consulted: d.consulted,
    raced: d.raced,
    reached: d.setup || d.consulted > 0,
  });
  // The set-up is sequential and the same in every execution: check it once
  // here, then run it unchecked under the explorer.
  try {
    const setup = new Runner(sc, base.run);
    if (d.keys.size > 0)
      setup.m.variantHook = (key, value) => {
        const w = d.keys.get(key);
        if (w !== undefined && (value === w[0] || value === w[1])) d.setup = true;
      };
    setup.execSteps(sc.steps, 0);
    setup.m.release();
  } catch (e) {
    return done(setupFailure(e));
  }
  for (const st of plan) {
    if (st.n <= 0) continue;
    if (st.mode === "anchored" && d.bases.length === 0) continue;
    const cfg = instrument(
      {
        ...base,
        uncheckedSetup: true,
        recycle: true,
        mode: st.mode,
        executions: st.n * (st.mode === "sweep" ? 1 : boost),
        preemptions: st.preemptions,
        pctDepth: st.pctDepth,
        seed: st.seed,
        ...(st.mode === "anchored" ? { anchored: d.bases.slice(), anchorsOf: () => d.anchors } : {}),
      },
      feats,
      work,
      d,
    );
    cfg.shouldStop = shouldStop !== undefined ? () => shouldStop() || overBudget() : overBudget;
    let res: ReturnType<typeof explore>;
    try {
      res = explore(cfg);
    } catch (e) {
      return done(setupFailure(e));
    }
    executions += res.executions;
    const cx = res.counterexample;
    if (cx !== null)
      return done({
        kind: "violation",
        invariant: cx.invariant,
        message: cx.message,
        schedule: cx.schedule,
        mode: st.mode,
        seed: st.seed,
        preemptions: st.preemptions,
      });
    if (res.stopped || overBudget()) break;
    // Hunting a change: where its code never ran concurrently with another
    // call, no schedule of this case races it.
    if (st.mode === "sweep" && d.keys.size > 0 && d.raced === 0) break;
    if (st.mode === "sweep" && d.raced > 0) boost = 3;
  }
  return done({ kind: "clean" });
}

function setupFailure(e: unknown): Outcome {
  if (e instanceof ScenarioError) return { kind: "invalid", message: e.format() };
  if (e instanceof ViolationError) {
    const v = e.violations[0] as { invariant: string; message: string };
    return { kind: "setup-violation", invariant: v.invariant, message: `${e.where}: ${v.message}` };
  }
  return { kind: "model-bug", message: modelBugText(e) };
}

export function modelBugText(e: unknown): string {
  if (e instanceof Error) {
    const frame = (e.stack ?? "").split("\n").find((l) => l.trim().startsWith("at ")) ?? "";
    return `${e.name}: ${e.message}${frame ? ` (${frame.trim()})` : ""}`;
  }
  return String(e);
}
