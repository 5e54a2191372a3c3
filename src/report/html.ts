// The self-contained HTML report of a comparison: configuration, seed, ptlab
// version, the side-by-side table and inline SVG charts. No scripts, fonts,
// stylesheets or images are loaded from anywhere; nothing depends on the
// time or the host, so the same inputs give a byte-identical file. The charts
// scale down to the window (their SVG keeps its viewBox).

import { direction, verdict } from "./better.js";
import { coincidingLines, REST, renderCharts } from "./charts.js";
import { type Comparison, comparisonRows, formatRatio } from "./compare.js";

export interface ReportMeta {
  version: string; // ptlab version (package.json)
  title: string; // e.g. "workload page_fault1" or the scenario file
  params?: string; // workload parameters, "k=v k=v"
  command?: string; // the command line that produced the report
  date?: string; // only when the caller passes one
}

/** A number with thousands separators (1,234,567), whatever the locale. */
export function groupDigits(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const [int, frac] = (
    Number.isInteger(v)
      ? String(Math.abs(v))
      : Math.abs(v)
          .toFixed(2)
          .replace(/\.?0+$/, "")
  ).split(".") as [string, string?];
  return `${v < 0 ? "-" : ""}${int.replace(/\B(?=(\d{3})+$)/g, ",")}${frac !== undefined ? `.${frac}` : ""}`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

const CSS = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.ratio { color: #666; } td.worse { color: #a40000; } td.better { color: #006400; } td.neutral { color: #666; font-style: italic; }
td.dir { color: #666; font-size: 0.9em; text-align: left; }
tr.figure td:first-child { font-weight: 600; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; } dt { font-weight: 600; } dd { margin: 0; }
figure { margin: 1em 0; overflow-x: auto; } figcaption { margin-bottom: 0.5em; max-width: 60em; }
figure svg { max-width: 100%; height: auto; } .wide { overflow-x: auto; }
.note { color: #8a5300; } .bad { color: #a40000; }
code { font-size: 0.95em; }
`;

export async function renderReport(c: Comparison, meta: ReportMeta): Promise<string> {
  const e = escapeHtml;
  const rows = comparisonRows(c);
  const runs = c.runs;
  const first = runs[0]?.config.label ?? "";
  const out: string[] = [];
  out.push("<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', `<title>ptlab report: ${e(meta.title)}</title>`);
  out.push(`<style>${CSS}</style>`, "</head>", "<body>");
  out.push(`<h1>ptlab report: ${e(meta.title)}</h1>`);
  out.push("<dl>");
  const dd = (k: string, v: string) => out.push(`<dt>${e(k)}</dt><dd>${v}</dd>`);
  dd("scenario", `<code>${e(c.scenario.name)}</code> — ${e(c.scenario.description)}`);
  if (meta.params !== undefined) dd("parameters", `<code>${e(meta.params || "(none)")}</code>`);
  const machines = [...new Set(runs.map((r) => r.machine))];
  dd("machine", machines.length === 1 ? e(machines[0] as string) : "per configuration, below (they differ)");
  dd("seed", String(c.scenario.machine.seed));
  dd("ptlab version", e(meta.version));
  if (meta.command !== undefined) dd("command", `<code>${e(meta.command)}</code>`);
  if (meta.date !== undefined) dd("date", e(meta.date));
  out.push("</dl>");

  out.push(
    "<h2>Configurations</h2>",
    '<div class="wide"><table>',
    '<tr><th>label</th><th style="text-align:left">settings</th><th style="text-align:left">machine</th></tr>',
  );
  for (const r of runs)
    out.push(
      `<tr><td>${e(r.config.label)}</td><td style="text-align:left"><code>${e(r.config.settings.map(([k, v]) => `${k}=${v}`).join(", ") || "(defaults)")}</code></td><td style="text-align:left">${e(r.machine)}</td></tr>`,
    );
  out.push("</table></div>");
  for (const r of runs) for (const n of r.notes) out.push(`<p class="note">note: ${e(r.config.label)}: ${e(n)}</p>`);
  for (const r of runs)
    if (r.violations.length > 0)
      out.push(`<p class="bad">invariant violations in ${e(r.config.label)}:</p><ul>${r.violations.map((v) => `<li>${e(v)}</li>`).join("")}</ul>`);

  out.push(
    "<h2>Comparison</h2>",
    "<p>Whole-run totals per configuration; ratios are against the first configuration. The <i>better</i> column says which " +
      "direction is better for the row: a ratio is green where the configuration did better than the first, red where it did " +
      "worse, grey and italic where neither direction is better on its own (the reasons are below the table).</p>",
    '<div class="wide"><table>',
  );
  out.push(
    `<tr><th></th><th class="dir">better</th>${runs.map((r, i) => `<th>${e(r.config.label)}</th>${i > 0 ? `<th>/${e(first)}</th>` : ""}`).join("")}</tr>`,
  );
  for (const row of rows) {
    const cells = row.values.map((v, i) => {
      if (i === 0) return `<td>${groupDigits(v)}</td>`;
      const ratio = row.ratios[i] ?? null;
      const how = verdict(row.better, ratio, v);
      const cls = how === "same" ? "ratio" : `ratio ${how}`;
      return `<td>${groupDigits(v)}</td><td class="${cls}">${e(formatRatio(ratio, v))}</td>`;
    });
    out.push(`<tr class="${row.kind}"><td>${e(row.name)}</td><td class="dir" title="${e(direction(row.name).why)}">${row.better}</td>${cells.join("")}</tr>`);
  }
  out.push("</table></div>");
  out.push("<details><summary>Why each direction</summary><dl>");
  for (const row of rows) out.push(`<dt>${e(row.name)}</dt><dd>${row.better}: ${e(direction(row.name).why)}</dd>`);
  out.push("</dl></details>");

  out.push("<h2>Charts</h2>");
  const charts = await renderCharts(c);
  const list = (g: string[]) => `${g.slice(0, -1).map(e).join(", ")} and ${e(g.at(-1) as string)}`;
  const coincide = coincidingLines(c).map((g) => `${list(g)} coincide at every step`);
  const captions = [
    "Top: the modelled cycles (the counters weighted by the default cost table of docs/cost-table.md, or by the configuration's " +
      `<code>cost=FILE</code>) of each operation, that is each report step, and of the rest of the run ("${REST}": the process exits), ` +
      "where that is not zero; a configuration's bars add up to its modelled_cycles above. Below: the counts of the primitives " +
      "that cost the most, each on its own scale.",
    "VmPTE summed over the live processes at each report step. Each configuration has its own colour, dash pattern and point " +
      "shape; the first is drawn widest and later ones narrower on top, so lines that coincide stay visible." +
      (coincide.length > 0 ? ` <b>${coincide.join("; ")}.</b>` : ""),
    "TLB maintenance per report step: flush requests, INVLPGs and full flushes per CPU and IPIs on x86-64, TLBI instructions and DSBs on arm64.",
  ];
  charts.forEach((ch, i) => {
    out.push(`<figure><figcaption>${captions[i] ?? ""}</figcaption>`, ch.svg, "</figure>");
  });

  out.push(
    "<h2>Report steps</h2>",
    '<div class="wide"><table>',
    `<tr><th>step</th>${runs.map((r) => `<th>VmPTE kB (${e(r.config.label)})</th>`).join("")}</tr>`,
  );
  const n = runs[0]?.rows.length ?? 0;
  for (let i = 0; i < n; i++) {
    const label = runs[0]?.rows[i]?.label ?? "";
    out.push(
      `<tr><td>${i + 1}. ${e(label)}</td>${runs.map((r) => `<td>${groupDigits((r.rows[i]?.processes ?? []).reduce((s, p) => s + p.figures.vmpte_kb, 0))}</td>`).join("")}</tr>`,
    );
  }
  out.push("</table></div>", "</body>", "</html>", "");
  return out.join("\n");
}
