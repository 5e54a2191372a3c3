// `ptlab litmus FILE|DIR...`: runs herd AArch64-VMSA litmus tests on the
// litmus machine (src/litmus) and prints each test's final states and
// verdict; with --kinds, compares every verdict with the recorded one and
// prints a table and a summary line. Exit codes: 0; 1 when a verdict
// disagrees with --kinds; 2 for bad input (one `file:line:col:` line).

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { showFinal } from "../litmus/explore.js";
import { formatTable, parseKinds, type Row, runOne, summarise, summaryLine } from "../litmus/kinds.js";
import { LitmusError } from "../litmus/types.js";
import { UsageError } from "./explore.js";

export interface LitmusOpts {
  kinds?: string;
  time?: boolean;
}

function readInput(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new LitmusError(file, 1, 1, `expected a readable file: ${(e as Error).message}`);
  }
}

// Files in argument order; a directory contributes its *.litmus files, sorted.
function expand(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      throw new UsageError(`${p}: no such file or directory`);
    }
    if (!isDir) out.push(p);
    else
      for (const f of readdirSync(p)
        .filter((f) => f.endsWith(".litmus"))
        .sort())
        out.push(join(p, f));
  }
  return out;
}

function describeRow(r: Row, withTime: boolean): string {
  const lines: string[] = [];
  if (r.unsupported !== null) return `Test ${r.name}: unsupported: ${r.unsupported}\n`;
  const t = r.test!;
  const res = r.checked!.result;
  lines.push(`Test ${t.name} ${r.checked!.outside === null ? res.verdict : "outside the model"}`);
  if (r.checked!.outside !== null) lines.push(`Outside the model: ${r.checked!.outside} (the SC machine says ${res.verdict})`);
  const shown = [...new Set(res.finals.map((s) => showFinal(t, s)))].sort();
  lines.push(`States ${shown.length}`);
  for (const s of shown) lines.push(s);
  lines.push(
    `Witnesses Positive: ${res.positive} Negative: ${res.finals.length - res.positive} (of ${res.finals.length} final states, ${res.states} states searched)`,
  );
  if (r.recorded !== null) lines.push(`Recorded ${r.recorded}: ${r.outcome}`);
  if (withTime) lines.push(`Time ${t.name} ${(r.ms / 1000).toFixed(4)}`);
  return `${lines.join("\n")}\n`;
}

export function cmdLitmus(paths: string[], o: LitmusOpts): number {
  const kinds = o.kinds === undefined ? null : parseKinds(readInput(o.kinds), o.kinds);
  const rows: Row[] = [];
  for (const f of expand(paths)) rows.push(runOne(readInput(f), f, kinds, () => performance.now()));
  const withTime = o.time === true;
  if (kinds === null) {
    process.stdout.write(rows.map((r) => describeRow(r, withTime)).join("\n"));
    return 0;
  }
  const s = summarise(rows);
  process.stdout.write(`${formatTable(rows, withTime)}\n\n${summaryLine(s)}\n`);
  if (withTime) {
    const total = rows.reduce((a, r) => a + r.ms, 0);
    process.stdout.write(`time: ${total.toFixed(0)} ms in all, ${(total / Math.max(1, rows.length)).toFixed(1)} ms per test on average\n`);
  }
  return s.disagree > 0 ? 1 : 0;
}
