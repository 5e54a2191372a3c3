// Charts of a comparison as Vega-Lite specs, rendered to SVG strings in the
// process (vega-lite -> vega -> View.toSVG() with no renderer: no DOM, no
// canvas, no network). The specs are plain data, so a web UI can render the
// same charts with vega-embed.
//
// Widths are bounded (MAX_WIDTH for the plot, the legend above it) so a
// chart fits a 1280 px page at its own size; the page scales it down to
// narrower windows. Numbers carry thousands separators.

import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { type CostTable, DEFAULT_COST_TABLE } from "../core/cost.js";
import { type CounterName, snakeCase } from "../core/counters.js";
import type { ReportRow } from "../run/runner.js";
import { type Comparison, stepCycles, sumFigure } from "./compare.js";

export const CHART_TITLES = {
  cost: "Modelled cycles per operation by config, and the counts behind them",
  vmpte: "Page-table memory (VmPTE) over the report steps",
  tlb: "TLB flush operations per report step",
} as const;

// Counters shown under the cycles: those the cost tables weight, the
// COST_ROWS that cost the most over all configurations first.
const COST_ROWS = 8;
const TLB_COUNTERS = [
  "tlbFlushRequests",
  "tlbFlushesPage",
  "tlbFlushesFull",
  "ipis",
  "tlbiVale1is",
  "tlbiVae1is",
  "tlbiRvale1is",
  "tlbiRvae1is",
  "tlbiAside1is",
  "tlbiVmalle1is",
  "contBlockTlbis",
  "dsb",
];

// The plot's width: about 16 px a bar and a gap between steps, at most
// MAX_WIDTH (the axis, the row labels and the legend's margin come on top).
const MAX_WIDTH = 760;
const MIN_WIDTH = 240;
const LEGEND = { title: "config", orient: "top", direction: "horizontal", labelLimit: 200 } as const;
// d3-format: integers with thousands separators; the ticks are integers
// (every value charted is a count, a sum of counts or kB).
const NUM = { format: ",d", tickMinStep: 1 } as const;
export const REST = "after the last report";

const stepName = (i: number, r: ReportRow) => `${i + 1}. ${r.label}`;

function steps(c: Comparison): string[] {
  return (c.runs[0]?.rows ?? []).map((r, i) => stepName(i, r));
}
const labels = (c: Comparison) => c.runs.map((r) => r.config.label);
const stepAxis = (c: Comparison) => ({ labelAngle: -30, labelLimit: 280, title: c.scenario.stepAxis ?? "operation (report step)" });
const colour = (c: Comparison) => ({ field: "config", type: "nominal", sort: labels(c), scale: { domain: labels(c) }, legend: LEGEND }) as const;

function barWidth(c: Comparison, groups: number): number {
  return Math.max(MIN_WIDTH, Math.min(MAX_WIDTH, groups * (16 * c.runs.length + 8)));
}

const get = (row: ReportRow, n: string) => (row.counters as unknown as Record<string, number>)[n] ?? 0;

function counterData(c: Comparison, names: string[]): { data: Record<string, string | number>[]; counters: string[] } {
  const used = names.filter((n) => c.runs.some((r) => r.rows.some((row) => get(row, n) !== 0)));
  const data: Record<string, string | number>[] = [];
  for (const n of used)
    for (const r of c.runs)
      r.rows.forEach((row, i) => {
        data.push({ counter: snakeCase(n), config: r.config.label, step: stepName(i, row), value: get(row, n) });
      });
  return { data, counters: used.map(snakeCase) };
}

// One row of bars per counter, each on its own scale.
function counterRows(c: Comparison, names: string[], yTitle: string, height: number): Record<string, unknown> | null {
  const { data, counters } = counterData(c, names);
  if (data.length === 0) return null;
  return {
    data: { values: data },
    facet: { row: { field: "counter", type: "nominal", sort: counters, title: null, header: { labelAngle: 0, labelAlign: "left", labelLimit: 140 } } },
    spec: {
      width: barWidth(c, steps(c).length),
      height,
      mark: { type: "bar" },
      encoding: {
        x: { field: "step", type: "nominal", sort: steps(c), axis: stepAxis(c) },
        xOffset: { field: "config", type: "nominal", sort: labels(c) },
        y: { field: "value", type: "quantitative", title: yTitle, axis: NUM },
        color: colour(c),
      },
    },
    resolve: { scale: { y: "independent" } },
  };
}

const allZero = (title: string): TopLevelSpec =>
  ({ title, data: { values: [{ t: "all zero" }] }, mark: { type: "text" }, encoding: { text: { field: "t" } }, width: 200, height: 40 }) as TopLevelSpec;

// The modelled cycles of each report step (and of the rest of the run after
// the last report, where that is not zero) per configuration.
export function cyclesData(c: Comparison): { data: { config: string; step: string; cycles: number }[]; steps: string[] } {
  const names = steps(c);
  const per = c.runs.map((r) => ({ label: r.config.label, ...stepCycles(r) }));
  const withRest = per.some((p) => p.rest !== 0);
  const all = withRest ? [...names, `${names.length + 1}. ${REST}`] : names;
  const data = per.flatMap((p) => all.map((step, i) => ({ config: p.label, step, cycles: i < names.length ? (p.steps[i] ?? 0) : p.rest })));
  return { data, steps: all };
}

// The counters the configurations' cost tables weight, by the cycles they
// add up to over all configurations, most first.
export function costCounters(c: Comparison): CounterName[] {
  const cycles = new Map<CounterName, number>();
  for (const r of c.runs) {
    const t = (r.config.costFile?.table as CostTable | undefined) ?? DEFAULT_COST_TABLE;
    for (const [k, w] of Object.entries(t.cycles) as [CounterName, number][]) cycles.set(k, (cycles.get(k) ?? 0) + w * (r.totals[k] ?? 0));
  }
  return [...cycles]
    .filter(([, v]) => v !== 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, COST_ROWS)
    .map(([k]) => k);
}

export function costSpec(c: Comparison): TopLevelSpec {
  const { data, steps: xs } = cyclesData(c);
  if (data.length === 0) return allZero(CHART_TITLES.cost);
  const cycles = {
    data: { values: data },
    width: barWidth(c, xs.length),
    height: 180,
    mark: { type: "bar" },
    encoding: {
      x: { field: "step", type: "nominal", sort: xs, axis: stepAxis(c) },
      xOffset: { field: "config", type: "nominal", sort: labels(c) },
      y: { field: "cycles", type: "quantitative", title: "modelled cycles", axis: NUM },
      color: colour(c),
    },
  };
  const counts = counterRows(c, costCounters(c), "count", 80);
  return {
    title: CHART_TITLES.cost,
    vconcat: counts === null ? [cycles] : [cycles, counts],
    spacing: 30,
    resolve: { scale: { color: "shared" } },
  } as TopLevelSpec;
}

export function tlbSpec(c: Comparison): TopLevelSpec {
  const rows = counterRows(c, TLB_COUNTERS, "operations in the step", 90);
  return rows === null ? allZero(CHART_TITLES.tlb) : ({ title: CHART_TITLES.tlb, ...rows } as TopLevelSpec);
}

// Configurations whose VmPTE is the same at every report step, in groups of
// two or more (in configuration order): their lines lie on each other.
export function coincidingLines(c: Comparison): string[][] {
  const series = c.runs.map((r) => r.rows.map((row) => sumFigure(row, "vmpte_kb")).join(","));
  const groups: string[][] = [];
  const done = new Set<number>();
  series.forEach((s, i) => {
    if (done.has(i)) return;
    const g = series.flatMap((t, j) => (t === s ? [j] : []));
    for (const j of g) done.add(j);
    if (g.length > 1) groups.push(g.map((j) => c.runs[j]?.config.label ?? ""));
  });
  return groups;
}

// Lines that coincide stay visible: the first configuration's is the widest
// and each later one narrower, drawn on top (the data is in configuration
// order), with its own dash pattern and an outlined point shape.
const DASHES = [
  [1, 0],
  [8, 4],
  [2, 3],
  [12, 3, 2, 3],
  [6, 2, 2, 2, 2, 2],
  [3, 6],
];
const SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "wedge", "stroke"];

export function vmpteSpec(c: Comparison): TopLevelSpec {
  const configs = labels(c);
  const n = configs.length;
  const widths = configs.map((_, i) => (n === 1 ? 2 : 1.5 + (5 * (n - 1 - i)) / (n - 1)));
  const sizes = configs.map((_, i) => (n === 1 ? 50 : 30 + (150 * (n - 1 - i)) / (n - 1)));
  // "line" repeats "config" for the channels that have no legend (a legend
  // merges the channels of one field).
  const data = c.runs.flatMap((r) =>
    r.rows.map((row, i) => ({ config: r.config.label, line: r.config.label, step: stepName(i, row), vmpte_kb: sumFigure(row, "vmpte_kb") })),
  );
  const by = (range: unknown[], field = "line") => ({ field, type: "nominal", sort: configs, scale: { domain: configs, range }, legend: null });
  return {
    title: CHART_TITLES.vmpte,
    data: { values: data },
    width: Math.max(MIN_WIDTH, Math.min(MAX_WIDTH, 60 * steps(c).length)),
    height: 220,
    encoding: {
      x: { field: "step", type: "ordinal", sort: steps(c), axis: stepAxis(c) },
      y: { field: "vmpte_kb", type: "quantitative", title: "VmPTE (kB, all processes)", axis: NUM },
      color: colour(c),
    },
    layer: [
      {
        mark: { type: "line" },
        encoding: {
          strokeDash: by(configs.map((_, i) => DASHES[i % DASHES.length])),
          strokeWidth: by(widths),
        },
      },
      {
        mark: { type: "point", filled: false, strokeWidth: 1.5 },
        encoding: {
          shape: {
            ...by(
              configs.map((_, i) => SHAPES[i % SHAPES.length]),
              "config",
            ),
            legend: LEGEND,
          },
          size: by(sizes),
        },
      },
    ],
  } as TopLevelSpec;
}

/** Renders a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: "none", logLevel: vega.Error });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function renderCharts(c: Comparison): Promise<{ title: string; spec: TopLevelSpec; svg: string }[]> {
  const out = [];
  for (const spec of [costSpec(c), vmpteSpec(c), tlbSpec(c)]) out.push({ title: String(spec.title), spec, svg: await renderSvg(spec) });
  return out;
}
