// Charts of a comparison as Vega-Lite specs, rendered to SVG strings in the
// process (vega-lite -> vega -> View.toSVG() with no renderer: no DOM, no
// canvas, no network). The specs are plain data, so a web UI can render the
// same charts with vega-embed.

import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { snakeCase } from "../core/counters.js";
import type { ReportRow } from "../run/runner.js";
import { type Comparison, sumFigure } from "./compare.js";

export const CHART_TITLES = {
  cost: "Cost per operation by config",
  vmpte: "Page-table memory (VmPTE) over the report steps",
  tlb: "TLB flush operations per report step",
} as const;

// Counters shown in the cost chart, when non-zero in some run. A modelled
// cycles counter comes first when the counters gain one.
const COST_COUNTERS = ["cycles", "pteReads", "pteWrites", "pteAtomics", "walkSteps", "faults", "ptAlloc", "ptFree", "contFolds", "contUnfolds"];
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

const stepName = (i: number, r: ReportRow) => `${i + 1}. ${r.label}`;

function steps(c: Comparison): string[] {
  return (c.runs[0]?.rows ?? []).map((r, i) => stepName(i, r));
}

function counterData(c: Comparison, names: string[]): { data: Record<string, string | number>[]; counters: string[] } {
  const used = names.filter((n) => c.runs.some((r) => r.rows.some((row) => ((row.counters as unknown as Record<string, number>)[n] ?? 0) !== 0)));
  const data: Record<string, string | number>[] = [];
  for (const n of used)
    for (const r of c.runs)
      r.rows.forEach((row, i) => {
        data.push({
          counter: snakeCase(n),
          config: r.config.label,
          step: stepName(i, row),
          value: (row.counters as unknown as Record<string, number>)[n] ?? 0,
        });
      });
  return { data, counters: used.map(snakeCase) };
}

const AXIS_STEP = { labelAngle: -30, labelLimit: 180, title: "report step" };

function groupedBars(title: string, c: Comparison, names: string[], yTitle: string): TopLevelSpec {
  const { data, counters } = counterData(c, names);
  const configs = c.runs.map((r) => r.config.label);
  if (data.length === 0)
    return { title, data: { values: [{ t: "all zero" }] }, mark: { type: "text" }, encoding: { text: { field: "t" } }, width: 200, height: 40 } as TopLevelSpec;
  return {
    title,
    data: { values: data },
    facet: { row: { field: "counter", type: "nominal", sort: counters, title: null, header: { labelAngle: 0, labelAlign: "left" } } },
    spec: {
      width: { step: Math.max(8, Math.min(24, Math.floor(160 / configs.length))) },
      height: 110,
      mark: { type: "bar" },
      encoding: {
        x: { field: "step", type: "nominal", sort: steps(c), axis: AXIS_STEP },
        xOffset: { field: "config", type: "nominal", sort: configs },
        y: { field: "value", type: "quantitative", title: yTitle },
        color: { field: "config", type: "nominal", sort: configs, scale: { domain: configs }, legend: { title: "config" } },
      },
    },
    resolve: { scale: { y: "independent" } },
  } as TopLevelSpec;
}

export function costSpec(c: Comparison): TopLevelSpec {
  return groupedBars(CHART_TITLES.cost, c, COST_COUNTERS, "count in the step");
}

export function tlbSpec(c: Comparison): TopLevelSpec {
  return groupedBars(CHART_TITLES.tlb, c, TLB_COUNTERS, "operations in the step");
}

export function vmpteSpec(c: Comparison): TopLevelSpec {
  const configs = c.runs.map((r) => r.config.label);
  const data = c.runs.flatMap((r) => r.rows.map((row, i) => ({ config: r.config.label, step: stepName(i, row), vmpte_kb: sumFigure(row, "vmpte_kb") })));
  return {
    title: CHART_TITLES.vmpte,
    data: { values: data },
    width: Math.max(240, Math.min(900, 40 * steps(c).length)),
    height: 220,
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "step", type: "ordinal", sort: steps(c), axis: AXIS_STEP },
      y: { field: "vmpte_kb", type: "quantitative", title: "VmPTE (kB, all processes)" },
      color: { field: "config", type: "nominal", sort: configs, scale: { domain: configs }, legend: { title: "config" } },
      strokeDash: { field: "config", type: "nominal", sort: configs, scale: { domain: configs } },
    },
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
