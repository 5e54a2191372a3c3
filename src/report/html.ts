// The self-contained HTML report of a comparison: configuration, seed, ptlab
// version, the side-by-side table and inline SVG charts. No scripts, fonts,
// stylesheets or images are loaded from anywhere; nothing depends on the
// time or the host, so the same inputs give a byte-identical file.

import { renderCharts } from "./charts.js";
import { type Comparison, comparisonRows, formatRatio } from "./compare.js";

export interface ReportMeta {
  version: string; // ptlab version (package.json)
  title: string; // e.g. "workload page_fault1" or the scenario file
  params?: string; // workload parameters, "k=v k=v"
  command?: string; // the command line that produced the report
  date?: string; // only when the caller passes one
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
td.ratio { color: #666; } td.up { color: #a40000; } td.down { color: #006400; }
tr.figure td:first-child { font-weight: 600; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; } dt { font-weight: 600; } dd { margin: 0; }
figure { margin: 1em 0; overflow-x: auto; } figcaption { font-weight: 600; margin-bottom: 0.5em; }
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
  const m = c.scenario.machine;
  dd("machine", e(`${m.arch}, ${m.cpus} CPUs, ${m.levels}-level paging, THP ${m.thp}, PT reclaim ${m.ptReclaim ? "on" : "off"}`));
  dd("seed", String(m.seed));
  dd("ptlab version", e(meta.version));
  if (meta.command !== undefined) dd("command", `<code>${e(meta.command)}</code>`);
  if (meta.date !== undefined) dd("date", e(meta.date));
  out.push("</dl>");

  out.push("<h2>Configurations</h2>", "<table>", "<tr><th>label</th><th>settings</th></tr>");
  for (const r of runs)
    out.push(
      `<tr><td>${e(r.config.label)}</td><td style="text-align:left"><code>${e(r.config.settings.map(([k, v]) => `${k}=${v}`).join(", ") || "(defaults)")}</code></td></tr>`,
    );
  out.push("</table>");
  for (const r of runs) for (const n of r.notes) out.push(`<p class="note">note: ${e(r.config.label)}: ${e(n)}</p>`);
  for (const r of runs)
    if (r.violations.length > 0)
      out.push(`<p class="bad">invariant violations in ${e(r.config.label)}:</p><ul>${r.violations.map((v) => `<li>${e(v)}</li>`).join("")}</ul>`);

  out.push("<h2>Comparison</h2>", "<p>Whole-run totals per configuration; ratios are against the first configuration.</p>", "<table>");
  out.push(`<tr><th></th>${runs.map((r, i) => `<th>${e(r.config.label)}</th>${i > 0 ? `<th>/${e(first)}</th>` : ""}`).join("")}</tr>`);
  for (const row of rows) {
    const cells = row.values.map((v, i) => {
      if (i === 0) return `<td>${v}</td>`;
      const ratio = row.ratios[i] ?? null;
      const cls = ratio === null ? "ratio" : ratio > 1.0005 ? "ratio up" : ratio < 0.9995 ? "ratio down" : "ratio";
      return `<td>${v}</td><td class="${cls}">${e(formatRatio(ratio, v))}</td>`;
    });
    out.push(`<tr class="${row.kind}"><td>${e(row.name)}</td>${cells.join("")}</tr>`);
  }
  out.push("</table>");

  out.push("<h2>Charts</h2>");
  for (const ch of await renderCharts(c)) out.push(`<figure><figcaption>${e(ch.title)}</figcaption>`, ch.svg, "</figure>");

  out.push("<h2>Report steps</h2>", "<table>", `<tr><th>step</th>${runs.map((r) => `<th>VmPTE kB (${e(r.config.label)})</th>`).join("")}</tr>`);
  const n = runs[0]?.rows.length ?? 0;
  for (let i = 0; i < n; i++) {
    const label = runs[0]?.rows[i]?.label ?? "";
    out.push(
      `<tr><td>${i + 1}. ${e(label)}</td>${runs.map((r) => `<td>${(r.rows[i]?.processes ?? []).reduce((s, p) => s + p.figures.vmpte_kb, 0)}</td>`).join("")}</tr>`,
    );
  }
  out.push("</table>", "</body>", "</html>", "");
  return out.join("\n");
}
