// One scenario under several configurations: the runs, the side-by-side table
// (every counter, every figure, ratios against the first configuration), and
// the JSON form. No Node APIs; the CLI parses configurations and writes files.
//
// Rows are generated from the fields of Counters and from the figure list, so a
// counter added to the model (or a cost figure from a cost hook) shows up as a
// new row without changes here.

import { type CostTable, DEFAULT_COST_TABLE, modelledCycles } from "../core/cost.js";
import { Counters, type CounterName, snakeCase } from "../core/counters.js";
import { anonMthpOrder } from "../core/geometry.js";
import { defaultConfig, type Machine } from "../core/machine.js";
import { type ReportRow, type RunOptions, Runner } from "../run/runner.js";
import type { Scenario } from "../scenario/types.js";
import { type Better, direction } from "./better.js";
import { type ByFunction, byFunction, type FunctionProfiler } from "./by-function.js";

export interface ConfigSpec {
  label: string;
  settings: [string, string][]; // as written: key=value pairs in order
  options: RunOptions;
  costFile?: { path: string; table: unknown }; // cost=FILE, parsed JSON
}

// Computes extra figures (e.g. modelled cycles) from a run's totals and the
// configuration's cost table. The default computes nothing; the cost model
// registers itself here (setCostHook) when it lands.
export type CostHook = (totals: Counters, cost: ConfigSpec["costFile"]) => Record<string, number>;
let costHook: CostHook = () => ({});
export function setCostHook(h: CostHook): void {
  costHook = h;
}
export function costFigures(totals: Counters, cost: ConfigSpec["costFile"]): Record<string, number> {
  return costHook(totals, cost);
}

export interface ConfigRun {
  config: ConfigSpec;
  rows: ReportRow[];
  totals: Counters;
  figures: Record<string, number>; // whole-run figures (peaks, finals, cost hook output)
  violations: string[];
  notes: string[]; // settings the machine did not take (not wired yet)
  machine: string; // the machine the run used (describeMachine())
  byFunction?: ByFunction; // --by-function, with the configuration's cost table
}

// A configuration's run by kernel function (--by-function), with its cost
// table (cost=FILE) or the default one.
export function configByFunction(prof: FunctionProfiler | null, config: ConfigSpec): { byFunction?: ByFunction } {
  if (prof === null) return {};
  prof.detach();
  return { byFunction: byFunction(prof, (config.costFile?.table as CostTable | undefined) ?? DEFAULT_COST_TABLE) };
}

// The machine a configuration ran on, in one line: architecture, CPUs, page
// size, paging levels, THP and mTHP policy, PT reclaim, arm64 features, the
// variants that differ from v6.17's, a memory limit and swap.
export function describeMachine(m: Machine): string {
  const c = m.config;
  const kb = (pages: number) => `${(pages * m.geo.pageSize) / 1024}K`;
  const mib = (pages: number) => `${(pages * m.geo.pageSize) / 2 ** 20} MiB`;
  const arm = m.arch.name === "arm64";
  const mthp = Object.entries(c.mthp).map(([order, pol]) => `${kb(2 ** Number(order))}${pol === "always" ? "" : `:${pol}`}`);
  const parts = [m.arch.name, `${c.cpus} CPUs`, `${kb(1)} ${arm ? "granule" : "pages"}`, `${m.geo.levels}-level paging`, `THP ${c.thp}`];
  parts.push(`mTHP ${mthp.length > 0 ? mthp.join("+") : "none"}`, `PT reclaim ${c.ptReclaim ? "on" : "off"}`);
  const onOff = (b: boolean) => (b ? "on" : "off");
  if (arm) parts.push(`tlbi_range ${onOff(c.arm64.tlbiRange)}`, `hafdbs ${onOff(c.arm64.hafdbs)}`, `bbml2 ${onOff(c.arm64.bbml2NoAbort)}`);
  const d = defaultConfig().variants as Record<string, string>;
  for (const [k, v] of Object.entries(c.variants)) if (d[k] !== v) parts.push(`${k}=${v}`);
  if (c.memoryPages > 0) parts.push(`memory ${mib(c.memoryPages)}`);
  if (c.swapPages > 0) parts.push(`swap ${mib(c.swapPages)}`);
  return parts.join(", ");
}

// The modelled cycles of each report step of a run (its cost table or the
// default one), and of the rest of the run after the last report (process
// exits, teardown): together they are the run's modelled cycles.
export function stepCycles(run: ConfigRun): { steps: number[]; rest: number } {
  const table = (run.config.costFile?.table as CostTable | undefined) ?? DEFAULT_COST_TABLE;
  const steps = run.rows.map((row) => modelledCycles(row.counters, table));
  const rest = modelledCycles(run.totals, table) - steps.reduce((a, b) => a + b, 0);
  return { steps, rest };
}

// What was compared: a scenario, or a trace described as one (its name, a
// description, and the machine the report's header shows).
export interface Subject {
  name: string;
  description: string;
  machine: Pick<Scenario["machine"], "arch" | "cpus" | "levels" | "thp" | "ptReclaim" | "seed">;
  // What the report steps are, for the charts' axis: by default the
  // scenario's or workload's operations ("operation (report step)").
  stepAxis?: string;
}

export interface Comparison {
  scenario: Subject;
  runs: ConfigRun[];
}

// Sum of a figure over the processes alive at a report.
export function sumFigure(row: ReportRow, key: "vmpte_kb" | "rss_anon_kb" | "rss_file_kb" | "anon_huge_kb" | "rss_shmem_kb"): number {
  let s = 0;
  for (const p of row.processes) s += p.figures[key];
  return s;
}

function runFigures(rows: ReportRow[]): Record<string, number> {
  const peak = (k: Parameters<typeof sumFigure>[1]) => rows.reduce((m, r) => Math.max(m, sumFigure(r, k)), 0);
  const last = rows.at(-1);
  return {
    peak_vmpte_kb: peak("vmpte_kb"),
    final_vmpte_kb: last ? sumFigure(last, "vmpte_kb") : 0,
    peak_rss_anon_kb: peak("rss_anon_kb"),
    peak_rss_file_kb: peak("rss_file_kb"),
    peak_anon_huge_kb: peak("anon_huge_kb"),
  };
}

// Requested settings the machine did not pick up, reported instead of silently ignored.
function unapplied(r: Runner, o: RunOptions): string[] {
  const notes: string[] = [];
  const cfg = r.m.config;
  if (o.arch !== undefined && r.m.arch.name !== o.arch) notes.push(`arch=${o.arch} is not wired into the machine yet (ran ${r.m.arch.name})`);
  if (o.thp !== undefined && cfg.thp !== o.thp) notes.push(`thp=${o.thp} was not applied (machine has ${cfg.thp})`);
  if (o.mthp !== undefined) {
    const want = Object.entries(o.mthp).map(([kb, pol]) => `${anonMthpOrder(Number(kb), r.m.geo.pageShift)}=${pol}`);
    const got = Object.entries(cfg.mthp).map(([order, pol]) => `${order}=${pol}`);
    if (want.sort().join() !== got.sort().join()) notes.push("mthp was not applied by the machine");
  }
  if (o.arm64 !== undefined)
    for (const [k, v] of Object.entries(o.arm64))
      if ((cfg.arm64 as unknown as Record<string, unknown>)[k] !== v) notes.push(`arm64 ${k}=${String(v)} was not applied`);
  return notes;
}

export function runConfig(sc: Scenario, config: ConfigSpec, base: RunOptions, onStep?: (done: number, total: number) => void): ConfigRun {
  const opts: RunOptions = { ...base, ...config.options, ...(onStep ? { onStep } : {}) };
  if (base.mthp && config.options.mthp === undefined) opts.mthp = base.mthp;
  const r = new Runner(sc, opts);
  const notes = unapplied(r, opts);
  const { totals, violations } = r.runToEnd();
  const figures = { ...runFigures(r.rows), ...costHook(totals, config.costFile) };
  return { config, rows: r.rows, totals, figures, violations, notes, machine: describeMachine(r.m), ...configByFunction(r.prof, config) };
}

export function compare(sc: Scenario, configs: ConfigSpec[], base: RunOptions, onStep?: (label: string) => (done: number, total: number) => void): Comparison {
  return { scenario: sc, runs: configs.map((c) => runConfig(sc, c, base, onStep?.(c.label))) };
}

// How an interruptible comparison stops (the command line's SIGINT): the
// runner's control (Runner.runToEndAsync()) and a description of why.
export interface StopControl {
  stop: () => boolean;
  pause: () => Promise<void>;
  why: () => string;
}

// compare(), stopping between two steps once ctl.stop() says so: the
// configuration then running keeps its figures so far, marked in its
// notes, and the configurations after it are not run (their labels in
// notRun).
export async function compareAsync(
  sc: Scenario,
  configs: ConfigSpec[],
  base: RunOptions,
  ctl: StopControl,
  onStep?: (label: string) => (done: number, total: number) => void,
): Promise<Comparison & { notRun: string[] }> {
  const runs: ConfigRun[] = [];
  const notRun: string[] = [];
  for (const config of configs) {
    if (ctl.stop()) {
      notRun.push(config.label);
      continue;
    }
    const cb = onStep?.(config.label);
    const opts: RunOptions = { ...base, ...config.options, ...(cb ? { onStep: cb } : {}) };
    if (base.mthp && config.options.mthp === undefined) opts.mthp = base.mthp;
    const r = new Runner(sc, opts);
    const notes = unapplied(r, opts);
    const { totals, violations, stoppedAt } = await r.runToEndAsync(ctl);
    if (stoppedAt !== null)
      notes.push(`interrupted (${ctl.why()}) after ${stoppedAt.done} of ${stoppedAt.total} steps: the figures are those so far, before any teardown`);
    const figures = { ...runFigures(r.rows), ...costHook(totals, config.costFile) };
    runs.push({ config, rows: r.rows, totals, figures, violations, notes, machine: describeMachine(r.m), ...configByFunction(r.prof, config) });
  }
  return { scenario: sc, runs, notRun };
}

// ---------------------------------------------------------------------------
// The side-by-side table

export interface TableRow {
  name: string; // snake_case counter or figure name
  kind: "counter" | "figure";
  values: number[]; // one per configuration
  ratios: (number | null)[]; // values[i] / values[0], null when values[0] is 0 (index 0 included: 1 or null)
  better: Better; // which direction is better (better.ts)
}

export function comparisonRows(c: Comparison, opts: { all?: boolean } = {}): TableRow[] {
  const rows: TableRow[] = [];
  const mk = (name: string, kind: TableRow["kind"], values: number[]): TableRow => ({
    name,
    kind,
    values,
    ratios: values.map((v) => (values[0] === 0 ? null : v / (values[0] as number))),
    better: direction(name).better,
  });
  const figNames = [...new Set(c.runs.flatMap((r) => Object.keys(r.figures)))];
  for (const f of figNames)
    rows.push(
      mk(
        f,
        "figure",
        c.runs.map((r) => r.figures[f] ?? 0),
      ),
    );
  for (const k of Object.keys(new Counters()) as CounterName[]) {
    const values = c.runs.map((r) => r.totals[k] ?? 0);
    if (opts.all || values.some((v) => v !== 0)) rows.push(mk(snakeCase(k), "counter", values));
  }
  return rows;
}

export function formatRatio(r: number | null, v: number): string {
  if (r === null) return v === 0 ? "=" : "new";
  return `${r.toFixed(r >= 100 ? 0 : r >= 10 ? 1 : 2)}x`;
}

export function formatComparison(c: Comparison, title: string): string {
  const rows = comparisonRows(c);
  const header = ["", ...c.runs.flatMap((r, i) => (i === 0 ? [r.config.label] : [r.config.label, `/${c.runs[0]?.config.label}`]))];
  const body = rows.map((row) => [row.name, ...row.values.flatMap((v, i) => (i === 0 ? [String(v)] : [String(v), formatRatio(row.ratios[i] ?? null, v)]))]);
  const w = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(w[i] as number) : x.padStart(w[i] as number))).join("  ");
  const figs = body.filter((_, i) => rows[i]?.kind === "figure");
  const ctrs = body.filter((_, i) => rows[i]?.kind === "counter");
  const out = [title, ""];
  for (const r of c.runs) out.push(`  ${r.config.label}: ${r.config.settings.map(([k, v]) => `${k}=${v}`).join(", ") || "(defaults)"}`);
  out.push("", line(header), w.map((n) => "-".repeat(n)).join("  "), ...figs.map(line), "", ...ctrs.map(line));
  for (const r of c.runs) {
    for (const n of r.notes) out.push(`note: ${r.config.label}: ${n}`);
    if (r.violations.length > 0) out.push(`INVARIANT VIOLATIONS (${r.config.label}):`, ...r.violations.slice(0, 20).map((v) => `  ${v}`));
  }
  return `${out.join("\n")}\n`;
}

export function comparisonJson(c: Comparison, meta: Record<string, unknown>): unknown {
  const rows = comparisonRows(c, { all: true });
  return {
    ...meta,
    scenario: c.scenario.name,
    seed: c.scenario.machine.seed,
    configs: c.runs.map((r, i) => ({
      label: r.config.label,
      settings: Object.fromEntries(r.config.settings),
      figures: r.figures,
      totals: Object.fromEntries(rows.filter((x) => x.kind === "counter").map((x) => [x.name, x.values[i]])),
      ratios: i === 0 ? undefined : Object.fromEntries(rows.map((x) => [x.name, x.ratios[i]])),
      reports: r.rows.map((row) => ({
        label: row.label,
        vmpte_kb: sumFigure(row, "vmpte_kb"),
        rss_anon_kb: sumFigure(row, "rss_anon_kb"),
        counters: Object.fromEntries(Object.entries(row.counters).map(([k, v]) => [snakeCase(k), v as number])),
      })),
      notes: r.notes,
      violations: r.violations,
    })),
  };
}
