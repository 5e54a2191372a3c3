// Stepping through a scenario run for the web view: the steps as `ptlab run`
// executes them (Runner.exec(), repeats unrolled), one at a time, then the
// implicit teardown. Going back replays from the start: the model is
// deterministic, and a replay is cheaper to get right than undo.
// No Node or DOM APIs.

import { modelledCycles } from "../core/cost.js";
import { Runner, ViolationError } from "../run/runner.js";
import { type Scenario, ScenarioError, type Step } from "../scenario/types.js";
import { editorError, type EditorError } from "./validate.js";

// A repeat whose unrolled body has more steps than this is one stepping
// unit: a scenario may repeat 10^7 times, and nobody steps through that.
export const MAX_UNROLLED = 2000;

/** One unit of stepping: a step (a repeat's iteration `iter`), a whole long repeat, or the teardown. */
export interface StepItem {
  kind: "step" | "repeat" | "teardown";
  step: Step | null;
  base: number; // a repeat iteration's offset (Step.advance * iter)
  label: string;
  line: number; // of the step in the scenario, 0 for the teardown
}

/** Why a run stopped early: an input error at a step, or invariant violations. */
export interface StopReason {
  kind: "error" | "violation";
  text: string;
  error?: EditorError;
  violations?: { invariant: string; message: string }[];
}

// One line per step: its op, thread and scalar arguments (sizes in hex),
// protections as letters, and a repeat iteration's offset.
function describeStep(s: Step, base: number): string {
  const { op, pos: _pos, thread, ...rest } = s as Step & Record<string, unknown>;
  const args = Object.entries(rest)
    .filter(([k, v]) => v !== undefined && (typeof v !== "object" || k === "prot"))
    .map(([k, v]) => {
      if (k === "prot") {
        const p = v as { read: boolean; write: boolean; exec: boolean };
        return `prot=${p.read ? "r" : ""}${p.write ? "w" : ""}${p.exec ? "x" : ""}${p.read || p.write || p.exec ? "" : "none"}`;
      }
      return `${k}=${typeof v === "number" && v >= 4096 && v % 4096 === 0 ? `0x${v.toString(16)}` : String(v)}`;
    });
  return `${op} (${thread})${args.length > 0 ? ` ${args.join(" ")}` : ""}${base !== 0 ? ` [repeat +0x${base.toString(16)}]` : ""}`;
}

// Steps in execution order, as Runner.execSteps() runs them.
export function flattenSteps(steps: Step[], base = 0, out: StepItem[] = []): StepItem[] {
  for (const s of steps) {
    if (s.op !== "repeat") {
      out.push({ kind: "step", step: s, base, label: describeStep(s, base), line: s.pos.line });
      continue;
    }
    if (s.count * countUnits(s.steps) > MAX_UNROLLED) {
      out.push({ kind: "repeat", step: s, base, label: `repeat ×${s.count} (${s.steps.length} steps each, run whole)`, line: s.pos.line });
      continue;
    }
    for (let i = 0; i < s.count; i++) flattenSteps(s.steps, base + i * s.advance, out);
  }
  return out;
}

function countUnits(steps: Step[]): number {
  let n = 0;
  for (const s of steps) n += s.op === "repeat" ? s.count * countUnits(s.steps) : 1;
  return n;
}

/** Figures after a step (point k: after k steps), for the run's timeline. */
export interface TimelinePoint {
  vmpteKb: number; // VmPTE summed over live processes
  rssKb: number; // RssAnon + RssFile + RssShmem, summed
  tlbFlushes: number; // so far: x86 INVLPGs and full flushes (per CPU), arm64 TLBI instructions (broadcast)
  ipis: number;
  cycles: number; // modelled cycles so far (the default cost table)
}

export class StepSession {
  readonly items: StepItem[];
  runner: Runner;
  // Items executed so far (the next one to run is items[done]).
  done = 0;
  stopped: StopReason | null = null;
  // timeline[k]: the figures after k items.
  timeline: TimelinePoint[] = [];

  constructor(readonly sc: Scenario) {
    this.items = [...flattenSteps(sc.steps), { kind: "teardown", step: null, base: 0, label: "exit every process (implicit teardown, leak check)", line: 0 }];
    this.runner = new Runner(sc);
    this.timeline.push(this.point());
  }

  private point(): TimelinePoint {
    const r = this.runner;
    const c = r.m.counters;
    let vmpteKb = 0;
    let rssKb = 0;
    for (const p of r.procs.values()) {
      if (!p.mm.alive) continue;
      const f = r.figures(p.mm);
      vmpteKb += f.vmpte_kb;
      rssKb += f.rss_anon_kb + f.rss_file_kb + f.rss_shmem_kb;
    }
    return {
      vmpteKb,
      rssKb,
      tlbFlushes: c.tlbFlushesPage + c.tlbFlushesFull + c.tlbiVale1is + c.tlbiVae1is + c.tlbiRvale1is + c.tlbiRvae1is + c.tlbiAside1is + c.tlbiVmalle1is,
      ipis: c.ipis,
      cycles: modelledCycles(c),
    };
  }

  get atEnd(): boolean {
    return this.done >= this.items.length || this.stopped !== null;
  }

  // Runs the next item; false when there is none or the run has stopped.
  forward(): boolean {
    if (this.atEnd) return false;
    const it = this.items[this.done] as StepItem;
    try {
      if (it.kind === "teardown") {
        const v = this.runner.finish();
        if (v.length > 0) this.stop({ kind: "violation", text: v.map((x) => `[${x.invariant}] ${x.message}`).join("\n"), violations: v });
      } else if (it.kind === "repeat") this.runner.execSteps([it.step as Step], it.base);
      else this.runner.exec(it.step as Step, it.base);
    } catch (e) {
      if (e instanceof ViolationError) {
        this.stop({
          kind: "violation",
          text: e.violations.map((x) => `[${x.invariant}] ${x.message} (after ${e.where})`).join("\n"),
          violations: e.violations.map((x) => ({ invariant: x.invariant, message: x.message })),
        });
      } else if (e instanceof ScenarioError) this.stop({ kind: "error", text: e.format(), error: editorError(e) });
      else throw e;
    }
    this.done++;
    this.timeline.push(this.point());
    return true;
  }

  private stop(r: StopReason): void {
    this.stopped = r;
  }

  // Brings the run to `n` items done (or as far as it gets): forward from
  // here, or a fresh run from the start.
  goto(n: number): void {
    const target = Math.max(0, Math.min(n, this.items.length));
    if (target < this.done) this.restart();
    while (this.done < target && this.forward());
  }

  back(): void {
    this.goto(this.done - 1);
  }

  // Up to and including the next `report` step (or the end).
  toNextReport(): void {
    while (this.forward()) {
      const it = this.items[this.done - 1] as StepItem;
      if (it.step?.op === "report") return;
    }
  }

  private restart(): void {
    this.runner.m.release();
    this.runner = new Runner(this.sc);
    this.done = 0;
    this.stopped = null;
    this.timeline = [this.point()];
  }
}
