// The benchmarks of `ptlab calibrate`, on the model: each one the same
// sequence the host helper times (native/ptlab-host.c, calib_main()), run
// as a scenario on a fresh model, with the counters of the timed operation
// per page as the features of the fit. Deterministic: the model's counts do
// not depend on the machine. No Node APIs.

import { DEFAULT_COST_TABLE } from "../core/cost.js";
import type { CounterName } from "../core/counters.js";
import { Runner } from "../run/runner.js";
import { parseScenario } from "../scenario/load.js";

export const CALIB_OPS = ["fault", "read", "mprotect_ro", "mprotect_rw", "dontneed", "free", "pageout", "swapin", "fork_exit", "munmap"] as const;
export type CalibOp = (typeof CALIB_OPS)[number];
// 4k: MADV_NOHUGEPAGE; thp: MADV_HUGEPAGE under the host's THP settings
// (PMD-sized folios); "64k" and the other mTHP sizes below 2M: MADV_HUGEPAGE
// with that size alone enabled ("madvise"), every other size never.
export type CalibMode = "4k" | "thp" | `${number}k`;
export const MTHP_MODES = ["16k", "32k", "64k", "128k", "256k", "512k", "1024k"] as const;
export function isMthpMode(m: CalibMode): boolean {
  return (MTHP_MODES as readonly string[]).includes(m);
}
export const SWAP_OPS: readonly CalibOp[] = ["pageout", "swapin"];

// The primitives the fit weighs: the cost table's counters, the swap I/O
// the default table leaves out (pswpout, pswpin: compression on zram, a
// disk write or read elsewhere), and "calls", one per system call the
// benchmark times (a per-call cost: entry, VMA lookup, locking), which the
// model has no counter for.
export const CALLS = "calls";
export const FEATURES: readonly string[] = [...Object.keys(DEFAULT_COST_TABLE.cycles), "pswpout", "pswpin", CALLS];

// What the host does that the model must copy.
export interface HostTraits {
  thp: "always" | "madvise" | "never";
  zeroPage: boolean; // a read fault maps the zero page
  hugeZeroPage: boolean; // a read fault of a THP-eligible PMD maps the huge zero page
  ptReclaim: boolean;
}

export interface CalibSpec {
  op: CalibOp;
  mode: CalibMode;
  bytes: number;
}

export function specName(s: CalibSpec): string {
  return `${s.op} ${s.mode} ${s.bytes / 2 ** 20}M`;
}

// Set-up before the timed operation (untimed on the host too), and the
// operation itself.
function stepsOf(op: CalibOp): { setup: string[]; timed: string[] } {
  const touch = "touch: { region: A }";
  switch (op) {
    case "fault":
      return { setup: [], timed: [touch] };
    case "read":
      return { setup: [], timed: ["read: { region: A }"] };
    case "mprotect_ro":
      return { setup: [touch], timed: ["mprotect: { region: A, prot: r }"] };
    case "mprotect_rw":
      return { setup: [touch, "mprotect: { region: A, prot: r }"], timed: ["mprotect: { region: A, prot: rw }"] };
    case "dontneed":
    case "free":
    case "pageout":
      return { setup: [touch], timed: [`madvise: { region: A, advice: ${op} }`] };
    case "swapin":
      return { setup: [touch, "madvise: { region: A, advice: pageout }"], timed: [touch] };
    case "fork_exit":
      return { setup: [touch], timed: ["fork: { child: c, cpu: 1 }", "exit: { process: c }"] };
    case "munmap":
      return { setup: [touch], timed: ["munmap: { region: A }"] };
  }
}

// System calls the timed part makes (fork and the child's exit: two).
function callsOf(op: CalibOp): number {
  if (op === "fault" || op === "read" || op === "swapin") return 0;
  return op === "fork_exit" ? 2 : 1;
}

// The model's counts per page of each feature for one benchmark.
export function modelCounts(s: CalibSpec, host: HostTraits): number[] {
  const { setup, timed } = stepsOf(s.op);
  const swap = SWAP_OPS.includes(s.op) ? `, swap: ${s.bytes + 2 ** 21}` : "";
  // An mTHP mode: that size alone, "madvise" (the PMD size follows the
  // top-level setting, never here).
  const mt = isMthpMode(s.mode);
  const thp = mt ? "never" : host.thp;
  const mthp = mt ? `, mthp: { ${s.mode.toUpperCase()}: madvise }` : "";
  const text = [
    "name: calibrate",
    `machine: { arch: x86_64, cpus: 2, thp: ${thp}, thp_use_zero_page: ${host.hugeZeroPage}, pt_reclaim: ${host.ptReclaim}${swap}${mthp} }`,
    "processes:",
    "  - { name: p, threads: [{ name: t0, cpu: 0 }] }",
    "steps:",
    `  - mmap: { region: A, size: ${s.bytes}, addr: 0x7e0000000000 }`,
    `  - madvise: { region: A, advice: ${s.mode === "4k" ? "nohugepage" : "hugepage"} }`,
    ...setup.map((x) => `  - ${x}`),
    "  - report: setup",
    ...timed.map((x) => `  - ${x}`),
    "  - report: timed",
  ].join("\n");
  const r = new Runner(parseScenario(`${text}\n`, "<calibrate>"), { checkInvariants: false, zeroPage: host.zeroPage });
  r.runAll();
  const row = r.rows.find((x) => x.label === "timed");
  if (row === undefined) throw new Error("model bug: calibrate scenario lost its report");
  const pages = s.bytes / 4096;
  const c = row.counters as unknown as Record<CounterName, number>;
  return FEATURES.map((f) => (f === CALLS ? callsOf(s.op) : (c[f as CounterName] ?? 0)) / pages);
}
