// Benchmark of the model's core paths against the host kernel: ns per 4 KiB
// page for fault / mprotect / fork+exit / MADV_DONTNEED / munmap of one
// anonymous private region (THP "never"), plus model bytes per populated PTE;
// then the actors: MADV_COLLAPSE of written pages, and MADV_PAGEOUT with the
// swap-in faults after it (host figures only when the host has swap active).
//
//   node dist/bench/core.js [--size MiB] [--reps n] [--checks-size MiB] [--no-host]
//
// Each repetition replays the host helper's sequence (native/ptlab-host.c,
// bench_main) on a fresh model: mmap; touch; mprotect R; mprotect RW;
// fork + child exit; touch; madvise DONTNEED; touch; munmap. Only the named
// operations are timed; the median over repetitions is reported.

import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type ActorBenchOp, BENCH_OPS, type BenchOp, ensureHelperBuilt, isHelperSkip, runHostActorsBench, runHostBench } from "../src/host/helper.js";
import { readFileSync } from "node:fs";
import { Runner, type RunOptions } from "../src/run/runner.js";
import { parseTraceFile } from "../src/trace/open.js";
import { defaultReplayOptions, Replayer } from "../src/replay/replay.js";
import type { Prot, Scenario, Step } from "../src/scenario/types.js";

const MiB = 1024 * 1024;
const PAGE = 4096;
const RW: Prot = { read: true, write: true, exec: false };
const RO: Prot = { read: true, write: false, exec: false };
const pos = { line: 1, col: 1 };

const { values: args } = benchArgs(
  {
    options: {
      size: { type: "string", default: "1024" },
      reps: { type: "string", default: "3" },
      // Checks-on runs scan every table after each step; 1 GiB fits the time budget.
      "checks-size": { type: "string" },
      "no-host": { type: "boolean", default: false },
      // internal: print the arm64 rows as JSON (run in a child process so the
      // generic code's call sites see one architecture, as in a real run).
      "arm64-rows": { type: "boolean", default: false },
      "replay-row": { type: "boolean", default: false },
      "replay-no-check": { type: "boolean", default: false },
    },
  },
  "node dist/bench/core.js [--size MiB] [--reps N] [--checks-size MiB] [--no-host]",
);
const size = Number(args.size) * MiB;
const reps = Number(args.reps);
const checksSize = Number(args["checks-size"] ?? args.size) * MiB;
if (!(size >= PAGE && size % PAGE === 0 && checksSize >= PAGE && checksSize % PAGE === 0 && Number.isInteger(reps) && reps >= 1)) {
  console.error("usage: core.js [--size MiB] [--reps n] [--checks-size MiB] [--no-host]");
  process.exit(2);
}

// A real gc even without --expose-gc on the command line.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const scenario: Scenario = {
  file: "<bench>",
  name: "bench-core",
  description: "",
  machine: { arch: "x86_64", cpus: 2, levels: 4, thp: "never", thpUseZeroPage: true, ptReclaim: true, variants: {}, seed: 1 },
  processes: [{ name: "p0", threads: [{ name: "t0", cpu: 0 }] }],
  steps: [],
};

const base = { pos, thread: "t0" };
const region = { ...base, region: "A", offset: 0 };
const mmapA = (bytes: number): Step => ({ ...base, op: "mmap", region: "A", size: bytes, prot: RW, flags: ["private", "anonymous"], offset: 0 });
const touchA: Step = { ...region, op: "touch", write: true, stride: PAGE };
const mprotectA = (prot: Prot): Step => ({ ...region, op: "mprotect", prot });
const dontneedA: Step = { ...region, op: "madvise", advice: "dontneed" };
const munmapA: Step = { ...region, op: "munmap" };
const forkC1: Step = { ...base, op: "fork", child: "c1", childThread: "c1.t0", cpu: 1 };
const exitC1: Step = { ...base, op: "exit", process: "c1" };

function timed(r: Runner, ...steps: Step[]): number {
  const t0 = process.hrtime.bigint();
  for (const s of steps) r.exec(s, 0);
  return Number(process.hrtime.bigint() - t0);
}

// One repetition: ns per page of each op.
function modelRep(bytes: number, checkInvariants: boolean, opts: RunOptions = {}): Record<BenchOp, number> {
  const pages = bytes / PAGE;
  const r = new Runner(scenario, { checkInvariants, ...opts });
  const p0 = r.procs.get("p0")?.mm;
  r.exec(mmapA(bytes), 0);
  const fault = timed(r, touchA);
  const mprotect_ro = timed(r, mprotectA(RO));
  const mprotect_rw = timed(r, mprotectA(RW));
  const fork_exit = timed(r, forkC1, exitC1);
  r.exec(touchA, 0); // untimed: write faults on the pages fork write-protected
  const dontneed = timed(r, dontneedA);
  r.exec(touchA, 0); // untimed: repopulate
  const munmap = timed(r, munmapA);
  const t = { fault, mprotect_ro, mprotect_rw, fork_exit, dontneed, munmap };
  if (p0?.rssAnon !== 0) throw new Error("bench: model region not torn down by munmap");
  for (const op of BENCH_OPS) t[op] /= pages;
  return t;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? (s[h] as number) : ((s[h - 1] as number) + (s[h] as number)) / 2;
};

function modelBench(bytes: number, n: number, checks: boolean, opts: RunOptions = {}): Record<BenchOp, number> {
  const runs = Array.from({ length: n }, () => modelRep(bytes, checks, opts));
  return Object.fromEntries(BENCH_OPS.map((op) => [op, median(runs.map((x) => x[op]))])) as Record<BenchOp, number>;
}

// Bytes of model memory (JS heap + typed-array backing stores) per populated
// PTE. Run first, on a clean heap: backing stores are released after a gc
// only once the event loop turns.
async function bytesPerPte(bytes: number): Promise<number> {
  const used = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((res) => setTimeout(res, 20));
    }
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = await used();
  const r = new Runner(scenario, { checkInvariants: false });
  r.exec(mmapA(bytes), 0);
  r.exec(touchA, 0);
  const after = await used();
  if (r.procs.get("p0")?.mm.rssAnon !== bytes / PAGE) throw new Error("bench: region not fully populated");
  return (after - before) / (bytes / PAGE);
}

if (args["replay-row"]) {
  try {
    let peak = process.memoryUsage().rss;
    const t1 = performance.now();
    const { events } = await parseTraceFile("../shared/traces/gcc-python.perftrace.gz", { lenient: false, reorder: 0.05 });
    const rp = new Replayer({ ...defaultReplayOptions(), checkInvariants: !args["replay-no-check"] });
    let n = 0;
    for await (const e of events) {
      rp.apply(e);
      if (++n % 4096 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    }
    const dt = (performance.now() - t1) / 1000;
    peak = Math.max(peak, process.memoryUsage().rss);
    process.stdout.write(JSON.stringify({ n, dt, peak }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ n: 0, dt: 0, peak: 0, error: (e as Error).message }));
  }
  process.exit(0);
}

if (args["arm64-rows"]) {
  // arm64: 4K folios, and 64K mTHP folios mapped as contpte blocks.
  const ARM4K: RunOptions = { arch: "arm64" };
  const ARM64K: RunOptions = { arch: "arm64", mthp: { 64: "always" } };
  modelRep(size, false, ARM4K);
  modelRep(size, false, ARM64K);
  const a4 = modelBench(size, reps, false, ARM4K);
  const a64 = modelBench(size, reps, false, ARM64K);
  process.stdout.write(JSON.stringify({ a4, a64 }));
  process.exit(0);
}

const cpu = cpus();
console.log(`machine: ${cpu[0]?.model ?? "unknown"}, ${cpu.length} cores; node ${process.version}`);
console.log(`region: ${size / MiB} MiB anonymous private, 4K pages (THP never), ${size / PAGE} pages; median of ${reps} reps`);

const perPte = await bytesPerPte(size);
// Warm up the JIT (one untimed full-size rep): the first reps are up to 3x slower.
modelRep(size, false);
modelRep(Math.min(checksSize, 64 * MiB), true);

const t0 = Date.now();
const off = modelBench(size, reps, false);
const tOff = Date.now();
const on = modelBench(checksSize, 1, true);
const tOn = Date.now();
const { a4, a64 } = JSON.parse(
  execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--arm64-rows", "--size", String(size / MiB), "--reps", String(reps)], { encoding: "utf8" }),
) as { a4: Record<BenchOp, number>; a64: Record<BenchOp, number> };

let host: Record<BenchOp, number> | undefined;
if (args["no-host"]) console.log("host: skipped (--no-host)");
else {
  const h = await ensureHelperBuilt();
  if (isHelperSkip(h)) console.log(`host: skipped (${h.skip})`);
  else host = await runHostBench(size, reps, h);
}
const tHost = Date.now();

const checksHdr = checksSize === size ? "checks on" : `checks on @${checksSize / MiB}M`;
const head = ["op", "model ns/pg", "host ns/pg", "model/host", `${checksHdr} ns/pg`, "checks/host", "arm64 4K", "/host", "arm64 64K", "/host"];
const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
const rows = BENCH_OPS.map((op) => {
  const h = host?.[op];
  const r = (x: number) => f(h === undefined ? h : x / h, 2);
  return [op, f(off[op]), f(h), r(off[op]), f(on[op]), r(on[op]), f(a4[op]), r(a4[op]), f(a64[op]), r(a64[op])];
});
const w = head.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] as string).length)));
const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number))).join("  ");
console.log();
console.log(line(head));
for (const r of rows) console.log(line(r));
console.log();
console.log(`model memory per populated PTE: ${perPte.toFixed(1)} bytes (heapUsed + arrayBuffers delta after gc, / ${size / PAGE} PTEs)`);
const s = (a: number, b: number) => `${((b - a) / 1000).toFixed(1)} s`;
console.log(`time: model checks off ${s(t0, tOff)}, checks on ${s(tOff, tOn)}, host ${host ? s(tOn, tHost) : "-"}`);

// Replay row: the perf-trace recording of a gcc compile and a python run,
// invariant checks on after every event, measured in a fresh process (as
// `ptlab replay` runs it: cold JIT, its own heap), startup excluded; then
// with checks off, for what the checks cost.
const TRACE = "../shared/traces/gcc-python.perftrace.gz";
try {
  const replayRow = (extra: string[]) => {
    const r = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--replay-row", ...extra], { encoding: "utf8" })) as {
      n: number;
      dt: number;
      peak: number;
      error?: string;
    };
    if (r.error !== undefined) throw new Error(r.error);
    return r;
  };
  const r = replayRow([]);
  const off = replayRow(["--replay-no-check"]);
  console.log(
    `replay ${TRACE}: ${r.n} events in ${r.dt.toFixed(2)} s (${Math.round(r.n / r.dt)} events/s, checks on, fresh process; target < 1 s; ${off.dt.toFixed(2)} s with checks off), peak RSS ${(r.peak / MiB).toFixed(0)} MiB`,
  );
} catch (e) {
  console.log(`replay: skipped (${(e as Error).message})`);
}

// The actors' rows, measured last so they cannot disturb the rows above:
// MADV_COLLAPSE of written 4K pages of a PMD-aligned region; MADV_PAGEOUT of
// written pages and the write faults that bring them back (the host needs
// active swap for those; its helper mirrors this sequence, bench_actors_main).
const ACTOR_OPS: ActorBenchOp[] = ["collapse", "pageout", "swapin"];
function modelActorsRep(bytes: number): Record<ActorBenchOp, number> {
  const pmd = 2 * MiB;
  const len = Math.floor(bytes / pmd) * pmd;
  const pages = len / PAGE;
  const sc: Scenario = { ...scenario, machine: { ...scenario.machine, swapBytes: len + MiB } };
  const r = new Runner(sc, { checkInvariants: false });
  const at: Step = { ...base, op: "mmap", region: "A", size: len, prot: RW, flags: ["private", "anonymous"], offset: 0, addr: 0x7e0000000000 };
  r.exec(at, 0);
  r.exec(touchA, 0);
  const collapse = timed(r, { ...region, op: "madvise", advice: "collapse" });
  if (r.m.counters.thpCollapses !== len / pmd) throw new Error("bench: the model collapsed nothing");
  r.exec(munmapA, 0);
  r.exec(mmapA(len), 0);
  r.exec(touchA, 0);
  const pageout = timed(r, { ...region, op: "madvise", advice: "pageout" });
  if (r.m.counters.pswpout !== pages) throw new Error("bench: the model swapped out only part of the region");
  const swapin = timed(r, touchA);
  r.exec(munmapA, 0);
  return { collapse: collapse / pages, pageout: pageout / pages, swapin: swapin / pages };
}
{
  const runs = Array.from({ length: reps }, () => modelActorsRep(size));
  const model = Object.fromEntries(ACTOR_OPS.map((op) => [op, median(runs.map((x) => x[op]))])) as Record<ActorBenchOp, number>;
  let swapOn = false;
  try {
    swapOn = readFileSync("/proc/swaps", "utf8").trim().split("\n").length > 1;
  } catch {
    swapOn = false;
  }
  let hostA: Partial<Record<ActorBenchOp, number>> = {};
  let note = "";
  if (args["no-host"]) note = "host: skipped (--no-host)";
  else {
    const h = await ensureHelperBuilt();
    if (isHelperSkip(h)) note = `host: skipped (${h.skip})`;
    else {
      hostA = await runHostActorsBench(Math.max(size, 2 * MiB), reps, swapOn, h);
      if (!swapOn) note = "host pageout/swapin: skipped (no swap active on the host; enable one, e.g. a zram device, to measure them)";
    }
  }
  const head2 = ["actor op", "model ns/pg", "host ns/pg", "model/host"];
  const rows2 = ACTOR_OPS.map((op) => {
    const h = hostA[op];
    return [op, f(model[op]), Number.isNaN(h) ? "failed" : f(h), f(h === undefined || Number.isNaN(h) ? undefined : model[op] / h, 2)];
  });
  const w2 = head2.map((c, i) => Math.max(c.length, ...rows2.map((r) => (r[i] as string).length)));
  const line2 = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w2[i] as number) : c.padStart(w2[i] as number))).join("  ");
  console.log();
  console.log(line2(head2));
  for (const r of rows2) console.log(line2(r));
  if (note !== "") console.log(note);
}
