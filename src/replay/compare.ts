// `ptlab compare --trace`: one real program's trace replayed under several
// configurations, in the form `compare` gives a scenario (report rows at
// every tenth of the trace, whole-run totals, figures, modelled cycles), so
// the same table, JSON and HTML report serve both. No Node APIs: the caller
// parses the trace.

import { defaultConfig } from "../core/machine.js";
import {
  type ConfigRun,
  type ConfigSpec,
  type Comparison,
  configByFunction,
  costFigures,
  describeMachine,
  type StopControl,
  type Subject,
} from "../report/compare.js";
import { applyVariants, mthpOrders, type ReportRow } from "../run/runner.js";
import type { TraceEvent } from "../trace/events.js";
import { defaultReplayOptions, type ReplayOptions, Replayer } from "./replay.js";

// The replay options a configuration asks for, or why it cannot apply to a
// trace (one line).
export function traceOptions(config: ConfigSpec, checkInvariants: boolean): ReplayOptions | string {
  const o = config.options;
  const base = defaultReplayOptions();
  if (o.arm64?.granule !== undefined && o.arm64.granule !== 4)
    return `--config "${config.label}": granule=${o.arm64.granule}K: a trace replays at the 4K pages it was recorded with`;
  const cfg = defaultConfig();
  const bad = applyVariants(cfg, o.variants ?? {});
  if (bad !== null) return `--config "${config.label}": ${bad}`;
  const arm64 = { ...(o.arm64 ?? {}) };
  delete arm64.granule;
  return {
    ...base,
    checkInvariants,
    arch: o.arch ?? base.arch,
    thp: o.thp ?? base.thp,
    ptReclaim: o.ptReclaim ?? base.ptReclaim,
    variants: cfg.variants,
    ...(o.mthp !== undefined ? { mthp: mthpOrders(o.mthp, 4, config.label) } : {}),
    ...(Object.keys(arm64).length > 0 ? { arm64 } : {}),
    systemPeaks: true,
  };
}

const REPORTS = 10;

export function replayConfig(
  events: readonly TraceEvent[],
  config: ConfigSpec,
  opts: ReplayOptions,
  onStep?: (done: number, total: number) => void,
): ConfigRun {
  const run = replayRun(events, config, opts, onStep);
  for (let i = 0; i < events.length; i++) run.step(i);
  return run.end(null);
}

// One configuration's replay, event by event (step(i)), then end(): the
// figures, with `stopped` (why the replay stopped before the last event)
// in its notes.
function replayRun(events: readonly TraceEvent[], config: ConfigSpec, opts: ReplayOptions, onStep?: (done: number, total: number) => void) {
  const r = new Replayer(opts);
  const n = events.length;
  const rows: ReportRow[] = [];
  let next = 1;
  const step = (i: number) => {
    r.apply(events[i] as TraceEvent);
    onStep?.(i + 1, n);
    // Rows at every tenth of the events (the last after the whole trace).
    while (next <= REPORTS && i + 1 >= Math.ceil((n * next) / REPORTS)) {
      rows.push(r.report(`${next * 10}% of the trace (${i + 1} events)`));
      next++;
    }
  };
  const end = (stopped: string | null): ConfigRun => {
    if (rows.length === 0 || stopped !== null) rows.push(r.report(stopped !== null ? `interrupted (${stopped})` : "end of the trace (no events)"));
    const totals = r.counters();
    const fin = r.totals();
    const figures = {
      peak_vmpte_kb: r.peaks.vmpteKb,
      final_vmpte_kb: fin.vmpteKb,
      peak_rss_anon_kb: r.peaks.rssAnonKb,
      peak_rss_file_kb: r.peaks.rssFileKb,
      peak_anon_huge_kb: r.peaks.anonHugeKb,
      ...costFigures(totals, config.costFile),
    };
    const notes: string[] = [];
    if (r.stats.unsupported > 0) notes.push(`${r.stats.unsupported} trace events the model does not support were skipped`);
    if (stopped !== null) notes.push(`interrupted (${stopped}): the figures are those so far`);
    return {
      config,
      rows,
      totals,
      figures,
      violations: r.violations.map((v) => `[${v.invariant}] ${v.message}`),
      notes,
      machine: describeMachine(r.m),
      ...configByFunction(r.prof, config),
    };
  };
  return { step, end };
}

export function compareTrace(
  events: readonly TraceEvent[],
  subject: Subject,
  runs: { config: ConfigSpec; opts: ReplayOptions }[],
  onStep?: (label: string) => (done: number, total: number) => void,
): Comparison {
  return { scenario: subject, runs: runs.map(({ config, opts }) => replayConfig(events, config, opts, onStep?.(config.label))) };
}

// compareTrace() that stops between two events once ctl.stop() says so
// (awaiting ctl.pause() every 50 ms so that the caller can notice a
// signal); the configurations after the one it stopped in are not run.
export async function compareTraceAsync(
  events: readonly TraceEvent[],
  subject: Subject,
  runs: { config: ConfigSpec; opts: ReplayOptions }[],
  ctl: StopControl,
  onStep?: (label: string) => (done: number, total: number) => void,
): Promise<Comparison & { notRun: string[] }> {
  const out: ConfigRun[] = [];
  const notRun: string[] = [];
  for (const { config, opts } of runs) {
    if (ctl.stop()) {
      notRun.push(config.label);
      continue;
    }
    const run = replayRun(events, config, opts, onStep?.(config.label));
    let t = Date.now();
    let stopped: string | null = null;
    for (let i = 0; i < events.length; i++) {
      run.step(i);
      if (Date.now() - t >= 50) {
        await ctl.pause();
        t = Date.now();
      }
      if (ctl.stop() && i + 1 < events.length) {
        stopped = `${ctl.why()} after ${i + 1} of ${events.length} events`;
        break;
      }
    }
    out.push(run.end(stopped));
  }
  return { scenario: subject, runs: out, notRun };
}
