// Text and JSON rendering of run results (Node-free, so a web UI can reuse it).

import { type Counters, snakeCase } from "../core/counters.js";
import type { ReportRow } from "../run/runner.js";

const FIG_COLS = ["vmpte_kb", "rss_anon_kb", "rss_file_kb", "rss_shmem_kb", "anon_huge_kb", "vmswap_kb"] as const;

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number))).join("  ");
  return [line(header), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

export function countersJson(c: Counters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c)) out[snakeCase(k)] = v as number;
  return out;
}

export function formatRows(title: string, rows: ReportRow[]): string {
  const out: string[] = [title, ""];
  for (const r of rows) {
    out.push(`== ${r.label}`);
    out.push(
      table(
        ["process", ...FIG_COLS],
        r.processes.map((p) => [p.name, ...FIG_COLS.map((k) => String(p.figures[k]))]),
      ),
    );
    const nz = Object.entries(countersJson(r.counters)).filter(([, v]) => v !== 0);
    if (nz.length > 0) {
      out.push("");
      out.push(
        table(
          ["counter (since previous report)", "value"],
          nz.map(([k, v]) => [k, String(v)]),
        ),
      );
    }
    out.push("");
  }
  return out.join("\n");
}

export function rowsJson(rows: ReportRow[]): unknown {
  return rows.map((r) => ({
    label: r.label,
    processes: r.processes.map((p) => ({ name: p.name, ...p.figures })),
    counters: countersJson(r.counters),
  }));
}

export function formatTotals(c: Counters): string {
  const nz = Object.entries(countersJson(c)).filter(([, v]) => v !== 0);
  return `== total (whole run, before the implicit teardown)\n${table(
    ["counter", "value"],
    nz.map(([k, v]) => [k, String(v)]),
  )}\n`;
}
