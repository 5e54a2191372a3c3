// ptlab replay: a real program's trace (strace -f or perf trace, optionally
// gzipped) replayed on the model; prints the counters and a per-process summary.

import { defaultConfig } from "../core/machine.js";
import { defaultReplayOptions, ReplayOutOfMemory, Replayer, type TouchPolicy } from "../replay/replay.js";
import { applyVariants, mthpOrders } from "../run/runner.js";
import { ScenarioError } from "../scenario/types.js";
import { UsageError } from "./explore.js";
import { TraceError } from "../trace/errors.js";
import { parseTraceFile } from "../trace/open.js";
import { countersJson, formatTotals } from "./format.js";
import { onInterrupt } from "./interrupt.js";
import { createProgress } from "./progress.js";
import { byFunction, byFunctionJson, foldedStacks, formatByFunction } from "../report/by-function.js";
import { type ByFunctionCliOptions, wantsProfile, writeFolded } from "./by-function.js";

export interface ReplayCliOptions extends ByFunctionCliOptions {
  json?: boolean;
  progress?: boolean;
  lenient?: boolean;
  check: boolean;
  cpus: number;
  touch: TouchPolicy;
  arch: string;
  variant?: Record<string, string>;
  ptReclaim?: boolean;
  thp?: "never" | "madvise" | "always";
  mthp?: Record<number, "always">;
  arm64?: Record<string, boolean>;
  memoryLimit?: number; // bytes
  swap?: number; // bytes
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
  const early = o.folded !== undefined ? writeFolded(o.folded, "") : null;
  if (early !== null) throw new UsageError(early);
  const { format, events, opened } = await parseTraceFile(file, { lenient: o.lenient === true, reorder: file.includes("perf") ? 0.05 : 0 });
  const cfg = defaultConfig();
  const bad = applyVariants(cfg, o.variant ?? {});
  if (bad !== null) throw new UsageError(`--variant: ${bad}`);
  let mthp = cfg.mthp;
  try {
    if (o.mthp !== undefined) mthp = mthpOrders(o.mthp, 4, file);
  } catch (e) {
    if (e instanceof ScenarioError) throw new UsageError(`--mthp: ${e.message}`);
    throw e;
  }
  const base = defaultReplayOptions();
  const r = new Replayer({
    ...base,
    cpus: o.cpus,
    checkInvariants: o.check,
    touch: o.touch,
    arch: o.arch,
    thp: o.thp ?? base.thp,
    ptReclaim: o.ptReclaim ?? base.ptReclaim,
    variants: cfg.variants,
    mthp,
    ...(o.arm64 !== undefined ? { arm64: o.arm64 } : {}),
    swapPages: Math.floor((o.swap ?? 0) / 4096),
    memoryPages: Math.floor((o.memoryLimit ?? 0) / 4096),
    ...(wantsProfile(o) ? { byFunction: true } : {}),
  });
  // SIGINT/SIGTERM: stop between two events and print what was replayed.
  const intr = onInterrupt("replay");
  // Progress by the bytes of the file read (a gzip file's compressed
  // bytes), once the replay has taken 2 s.
  const progress = createProgress({ enabled: o.progress !== false });
  const tick = progress.run(`replay ${file.split("/").pop() ?? file}`, "bytes", 0);
  const t0 = Date.now();
  let applied = 0;
  let stopped: string | null = null;
  try {
    let t = Date.now();
    for await (const e of events) {
      r.apply(e);
      applied++;
      if (Date.now() - t >= 50) {
        const at = opened.position();
        if (Date.now() - t0 >= 2000) tick(at.read, at.size);
        await intr.pause();
        t = Date.now();
      }
      if (intr.stop()) {
        stopped = `${intr.signal()} after ${applied} events (trace line ${e.line})`;
        break;
      }
    }
  } catch (e) {
    if (e instanceof ReplayOutOfMemory) throw new TraceError(file, e.line, 1, e.message, "oom");
    throw e;
  } finally {
    progress.stop();
    intr.dispose();
  }
  const totals = r.counters();
  const inferred = r.inferred();
  const procs = [...r.summaries].sort((a, b) => b.peakVmpteKb - a.peakVmpteKb || a.pid - b.pid);
  const violations = r.violations.map((v) => `[${v.invariant}] ${v.message}`);
  r.prof?.detach();
  const byFn = r.prof !== null ? byFunction(r.prof) : null;
  if (o.folded !== undefined && byFn !== null) {
    const bad = writeFolded(o.folded, foldedStacks(byFn));
    if (bad !== null) throw new UsageError(bad);
  }
  if (o.json) {
    const extra = o.byFunction === true && byFn !== null ? { by_function: byFunctionJson(byFn) } : {};
    process.stdout.write(
      `${JSON.stringify({ file, format, ...(stopped !== null ? { interrupted: stopped } : {}), stats: r.stats, inferred: { fd_files: Object.fromEntries(inferred.fdFiles), exec_files: Object.fromEntries(inferred.execFiles) }, parse: events.stats, damaged: opened.damage?.format() ?? null, totals: countersJson(totals), processes: procs, violations, ...extra }, null, 2)}\n`,
    );
  } else {
    const opts = [`${o.arch}`, `${o.cpus} CPUs`, `touch policy ${o.touch.kind}`];
    const changed = Object.entries(o.variant ?? {}).map(([k, v]) => `${k}=${v}`);
    if (changed.length > 0) opts.push(`variants ${changed.join(",")}`);
    if (o.memoryLimit !== undefined) opts.push(`memory ${o.memoryLimit / 1048576}M, swap ${(o.swap ?? 0) / 1048576}M`);
    const out = [`ptlab replay ${file} (${format}, ${opts.join(", ")})`, ""];
    out.push(
      Object.entries(r.stats)
        .map(([k, v]) => `${k}=${v}`)
        .join(" "),
    );
    if (events.stats.skipped > 0) out.push(`skipped malformed lines: ${events.stats.skipped}`);
    // What the trace does not show and the replay inferred (src/replay/replay.ts).
    const list = (x: [string, number][]) =>
      `${x
        .slice(0, 8)
        .map(([p, n]) => `${p.split("/").pop()}${n > 1 ? ` (${n})` : ""}`)
        .join(", ")}${x.length > 8 ? `, ... ${x.length - 8} more` : ""}`;
    if (inferred.fdFiles.length > 0) out.push(`inferred: ${r.stats.inferredFdFiles} fd mappings named by the faults on them: ${list(inferred.fdFiles)}`);
    if (inferred.execFiles.length > 0)
      out.push(
        `inferred: ${r.stats.inferredExecFiles} files execve mapped, placed by the model where faults reached them (${r.stats.inferredExecVmas} VMAs): ${list(inferred.execFiles)}`,
      );
    if (r.stats.inferredFaults > 0 || r.stats.unresolvedFaults > 0)
      out.push(`faults resolved through an inference: ${r.stats.inferredFaults}; unresolved (skipped): ${r.stats.unresolvedFaults} of ${r.stats.faults}`);
    if (opened.damage !== null) out.push(`trace ends early (--lenient replayed what came before): ${opened.damage.format()}`);
    out.push("", formatTotals(totals), "pid     comm              mmaps  faults  peak_vmpte_kb  peak_rss_anon_kb  peak_rss_file_kb");
    for (const p of procs.slice(0, 30))
      out.push(
        `${String(p.pid).padEnd(7)} ${p.comm.slice(0, 16).padEnd(16)} ${String(p.mmaps).padStart(6)} ${String(p.faults).padStart(7)} ${String(p.peakVmpteKb).padStart(14)} ${String(p.peakRssAnonKb).padStart(17)} ${String(p.peakRssFileKb).padStart(17)}`,
      );
    if (procs.length > 30) out.push(`... ${procs.length - 30} more`);
    if (o.byFunction === true && byFn !== null) out.push("", formatByFunction(byFn, "by kernel function (whole trace)"));
    if (violations.length > 0) out.push("INVARIANT VIOLATIONS:", ...violations.slice(0, 50).map((v) => `  ${v}`));
    if (stopped !== null) out.push(`INTERRUPTED by ${stopped}: the figures are those so far`);
    process.stdout.write(`${out.join("\n")}\n`);
  }
  return stopped !== null ? 130 : violations.length > 0 ? 1 : 0;
}
