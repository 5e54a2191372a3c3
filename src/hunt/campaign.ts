// A hunt campaign: rounds of generated cases, a corpus of the cases that
// reached something new, and generation biased toward them (half of each
// round mutates a corpus entry's choice sequence, as syzkaller and AFL
// mutate their corpus). A round's cases are generated from the corpus as it
// stood when the round began and absorbed in case order, so the cases run,
// the corpus and the findings depend on the seed and the number of cases,
// not on how many workers ran them or how fast. No Node APIs.

import { fnv1a } from "../explore/explore.js";
import { rng } from "../workloads/builder.js";
import { type Case, caseYaml } from "./case.js";
import { Choices, type GenOptions, generate, KINDS, LATE_KINDS, mutate } from "./generate.js";
import { outcomeKey } from "./minimize.js";
import type { CaseResult } from "./search.js";

export const ROUND = 16; // cases per round

export interface CaseSpec {
  id: number;
  name: string;
  words: number[];
  parent: number | null; // corpus entry it mutates
  case: Case;
  yaml: string;
}

interface Entry {
  id: number;
  words: number[];
  gain: number; // features it added
  raced: boolean; // a selected variant's code ran while another thread had steps left
  reached: boolean; // it ran at all (in the set-up, or with no other thread left)
  concurrentWords: number[]; // Case.concurrentWords
}

export interface Absorbed {
  gain: number;
  minimize: boolean; // a finding worth minimising (not one of many alike)
}

export class Campaign {
  readonly coverage = new Set<number>();
  readonly corpus: Entry[] = [];
  nextId = 0;
  cases = 0;
  invalid = 0;
  executions = 0;
  violations = 0; // cases that broke something
  raced = 0; // cases that ran a selected variant's code while another thread had steps left
  reached = 0; // cases that ran it at all
  // Of the raced and the reached cases, those generated fresh (not mutated from the corpus).
  private racedFresh = 0;
  private reachedFresh = 0;
  private alike = new Map<string, number>();
  private racedKinds = new Map<string, number>(); // kind -> raced cases using it
  // feature -> [yes, drawn] over the cases that reached the variant's code,
  // a case that raced it counting three times.
  private reachedFeatures: Record<string, [number, number]> = {};

  constructor(
    readonly seed: number,
    readonly shard: { index: number; count: number },
    readonly gen: GenOptions,
  ) {}

  // The next round's cases.
  round(): CaseSpec[] {
    const out: CaseSpec[] = [];
    // Adaptive swarm: kinds of step that the cases reaching the variant's
    // code used are drawn more often, the others less (never never).
    const gen: GenOptions = { ...this.gen };
    if (this.racedFresh > 0) {
      const odds: Record<string, number> = {};
      // Never far below the default 0.55: the kinds that race a change's
      // code are often not those that reach it.
      for (const k of [...KINDS, ...LATE_KINDS]) odds[k] = 0.4 + (0.5 * ((this.racedKinds.get(k) ?? 0) + 1)) / (this.racedFresh + 2);
      gen.kindOdds = odds;
    }
    // The configuration (machine, mappings, set-up) leans toward that of
    // cases that ran the code at all, before any raced it: a step nearer.
    if (this.reachedFresh > 0) gen.featureStats = this.reachedFeatures;
    for (let k = 0; k < ROUND; k++) {
      const id = this.nextId++;
      const rnd = rng(fnv1a(`${this.seed}:${this.shard.index}/${this.shard.count}:${id}`));
      let words: number[] = [];
      let parent: number | null = null;
      if (this.corpus.length > 0 && rnd() < 0.5) {
        const e = this.pick(rnd);
        const other = this.corpus[Math.floor(rnd() * this.corpus.length)] as Entry;
        words = mutate(e.words, other.words, rnd, e.raced ? e.concurrentWords : []);
        parent = e.id;
      }
      const ch = new Choices(words, rng(Math.floor(rnd() * 4294967296)));
      const name = `hunt-${this.seed}-${this.shard.index}-${id}`;
      const c = generate(ch, name, gen);
      out.push({ id, name, words: ch.used(), parent, case: c, yaml: caseYaml(c) });
    }
    return out;
  }

  // Corpus entries that added more are mutated more often; recent ones too.
  private pick(rnd: () => number): Entry {
    let total = 0;
    for (let i = 0; i < this.corpus.length; i++) total += weight(this.corpus[i] as Entry, i, this.corpus.length);
    let r = rnd() * total;
    for (let i = 0; i < this.corpus.length; i++) {
      r -= weight(this.corpus[i] as Entry, i, this.corpus.length);
      if (r < 0) return this.corpus[i] as Entry;
    }
    return this.corpus[this.corpus.length - 1] as Entry;
  }

  // A case's result, in case order.
  absorb(spec: CaseSpec, res: CaseResult): Absorbed {
    this.cases++;
    this.executions += res.executions;
    if (res.outcome.kind === "invalid") {
      this.invalid++;
      return { gain: 0, minimize: false };
    }
    let gain = 0;
    for (const f of res.features)
      if (!this.coverage.has(f)) {
        this.coverage.add(f);
        gain++;
      }
    // Hunting a change, a case that raced its code is kept even when it
    // added nothing new: its neighbours are where the change can break.
    const raced = res.raced > 0;
    const reached = raced || res.reached;
    if (gain > 0 || reached) this.corpus.push({ id: spec.id, words: spec.words, gain, raced, reached, concurrentWords: spec.case.concurrentWords ?? [] });
    // The odds are learned from fresh cases only: a mutated case inherits
    // most of its parent's choices, and counting it again would let the
    // first lucky case's incidental features crowd out the others (the
    // corpus already breeds from it).
    const fresh = spec.parent === null;
    if (raced) {
      this.raced++;
      if (fresh) {
        this.racedFresh++;
        for (const k of spec.case.kinds ?? []) this.racedKinds.set(k, (this.racedKinds.get(k) ?? 0) + 1);
      }
    }
    if (reached) this.reached++;
    if (reached && fresh) {
      this.reachedFresh++;
      const w = raced ? 3 : 1;
      const f = spec.case.features;
      if (f !== undefined)
        for (const n of f.drawn) {
          const st = (this.reachedFeatures[n] ??= [0, 0]);
          st[1] += w;
          if (f.on.includes(n)) st[0] += w;
        }
    }
    const key = outcomeKey(res.outcome);
    if (key === null) return { gain, minimize: false };
    this.violations++;
    // Minimise the first few of each kind of outcome on each architecture.
    const k = `${key}:${spec.case.machine.arch}`;
    const n = this.alike.get(k) ?? 0;
    this.alike.set(k, n + 1);
    return { gain, minimize: n < 3 };
  }
}

function weight(e: Entry, i: number, n: number): number {
  return Math.log2(2 + e.gain) * (1 + i / n) * (e.raced ? 8 : e.reached ? 3 : 1);
}
