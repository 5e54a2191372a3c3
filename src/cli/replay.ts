// ptlab replay: a real program's trace (strace -f or perf trace, optionally
// gzipped) replayed on the model; prints the counters and a per-process summary.

import { defaultReplayOptions, Replayer, type TouchPolicy } from "../replay/replay.js";
import { TraceError } from "../trace/errors.js";
import { parseTraceFile } from "../trace/open.js";
import { countersJson, formatTotals } from "./format.js";

export interface ReplayCliOptions {
  json?: boolean;
  lenient?: boolean;
  check: boolean;
  cpus: number;
  touch: TouchPolicy;
  arch: string;
}

export function parseTouch(v: string): TouchPolicy {
  if (v === "none") return { kind: "none" };
  if (v === "writable") return { kind: "writable" };
  const m = /^first:(\d+)$/.exec(v);
  if (m) return { kind: "first", pages: Number(m[1]) };
  throw new Error(`expected none, writable or first:N, got "${v}"`);
}

export async function cmdReplay(file: string, o: ReplayCliOptions): Promise<number> {
  if (o.arch !== "x86_64" && o.arch !== "arm64") throw new TraceError(file, 1, 1, `--arch ${o.arch}: expected x86_64 or arm64`, "usage");
  const { format, events, opened } = await parseTraceFile(file, { lenient: o.lenient === true, reorder: file.includes("perf") ? 0.05 : 0 });
  const r = new Replayer({ ...defaultReplayOptions(), cpus: o.cpus, checkInvariants: o.check, touch: o.touch, arch: o.arch });
  for await (const e of events) r.apply(e);
  const totals = r.counters();
  const procs = [...r.summaries].sort((a, b) => b.peakVmpteKb - a.peakVmpteKb || a.pid - b.pid);
  const violations = r.violations.map((v) => `[${v.invariant}] ${v.message}`);
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify({ file, format, stats: r.stats, parse: events.stats, damaged: opened.damage?.format() ?? null, totals: countersJson(totals), processes: procs, violations }, null, 2)}\n`,
    );
  } else {
    const out = [`ptlab replay ${file} (${format}, ${o.arch}, ${o.cpus} CPUs, touch policy ${o.touch.kind})`, ""];
    out.push(
      Object.entries(r.stats)
        .map(([k, v]) => `${k}=${v}`)
        .join(" "),
    );
    if (events.stats.skipped > 0) out.push(`skipped malformed lines: ${events.stats.skipped}`);
    if (opened.damage !== null) out.push(`trace ends early (--lenient replayed what came before): ${opened.damage.format()}`);
    out.push("", formatTotals(totals), "pid     comm              mmaps  faults  peak_vmpte_kb  peak_rss_anon_kb  peak_rss_file_kb");
    for (const p of procs.slice(0, 30))
      out.push(
        `${String(p.pid).padEnd(7)} ${p.comm.slice(0, 16).padEnd(16)} ${String(p.mmaps).padStart(6)} ${String(p.faults).padStart(7)} ${String(p.peakVmpteKb).padStart(14)} ${String(p.peakRssAnonKb).padStart(17)} ${String(p.peakRssFileKb).padStart(17)}`,
      );
    if (procs.length > 30) out.push(`... ${procs.length - 30} more`);
    if (violations.length > 0) out.push("INVARIANT VIOLATIONS:", ...violations.slice(0, 50).map((v) => `  ${v}`));
    process.stdout.write(`${out.join("\n")}\n`);
  }
  return violations.length > 0 ? 1 : 0;
}
