// Executes a scenario on the model: one mm per process, threads pinned to
// CPUs, steps as syscalls and user accesses. Emits report rows; raises
// ScenarioError (with the step's position) for runtime input errors such as an
// unknown region or an access that would SIGSEGV. No Node APIs.

import { checkContpte } from "../core/arch/arm64/contpte_check.js";
import { VA_BITS_CHOICES, vaBitsChoicesText } from "../core/arch/arm64/pgtable.js";
import { makeArch } from "../core/arch/select.js";
import { anonMthpOrder, anonMthpRange } from "../core/geometry.js";
import { checkAccounting, checkLeaks, checkPins, checkTlbs } from "../core/check.js";
import { type Counters, diffCounters, snapshotCounters } from "../core/counters.js";
import { userAccess } from "../core/arch/fault.js";
import {
  type Arm64Features,
  defaultConfig,
  type Machine,
  type MachineConfig,
  MODEL_VA_BITS,
  VARIANTS,
  type VariantName,
  type Violation,
} from "../core/machine.js";
import { doMadvise } from "../core/mm/madvise.js";
import { doBrk, doMmap, doMunmap, exitMmap, MmError } from "../core/mm/mmap.js";
import { doMremap } from "../core/mm/mremap.js";
import { doMprotect } from "../core/mm/mprotect.js";
import { dupMmap } from "../core/mm/fork.js";
import type { KGen } from "../core/mm/memory.js";
import { run } from "../core/sync.js";
import type { Mm } from "../core/mm/types.js";
import { kswapdBalance, reclaimBlocker } from "../core/mm/kswapd.js";
import { freePages } from "../core/mm/page_alloc.js";
import { migrateRange } from "../core/mm/migrate.js";
import { khugepagedScanMm } from "../core/mm/khugepaged.js";
import { reclaimRange } from "../core/mm/vmscan.js";
import { writebackFile } from "../core/mm/page_writeback.js";
import { type GupPin, gupFastPinRange, gupPinsForget, newGupPin, pinUserPages, unpinUserPages } from "../core/mm/gup.js";
import { FunctionProfiler, underRoot } from "../report/by-function.js";
import {
  type BrkStep,
  type ForkStep,
  type MachineSpec,
  type MigrateStep,
  type KhugepagedStep,
  type ReclaimStep,
  type Scenario,
  ScenarioError,
  type Step,
} from "../scenario/types.js";
import { newMachine } from "../core/index.js";

export interface Figures {
  vmpte_kb: number;
  rss_anon_kb: number;
  rss_file_kb: number;
  rss_shmem_kb: number;
  anon_huge_kb: number;
  vmswap_kb: number;
}

// An address space's figures as /proc/PID/status and smaps report them.
export function mmFigures(m: Machine, mm: Mm): Figures {
  const pageKb = m.geo.pageSize / 1024;
  return {
    vmpte_kb: mm.pgtablesBytes / 1024,
    rss_anon_kb: mm.rssAnon * pageKb,
    rss_file_kb: mm.rssFile * pageKb,
    rss_shmem_kb: mm.rssShmem * pageKb,
    anon_huge_kb: (mm.anonHugePmds * m.geo.pmdSize) / 1024,
    vmswap_kb: mm.swapEnts * pageKb,
  };
}

export interface ReportRow {
  label: string;
  processes: { name: string; figures: Figures }[];
  counters: Counters; // since the previous report
}

export class ViolationError extends Error {
  constructor(
    readonly violations: Violation[],
    readonly where: string,
  ) {
    super(`${violations.length} invariant violation(s) after ${where}: ${violations.map((v) => `[${v.invariant}] ${v.message}`).join("; ")}`);
  }
}

export interface Proc {
  name: string;
  mm: Mm;
  regions: Map<string, { start: number; len: number }>;
  threads: string[];
}

// Where the model takes addresses from when it mirrors a real process: the
// diff driver passes the kernel's choices.
export interface AddressOracle {
  mmap?(step: Step): number;
  mremap?(step: Step): number;
}

export interface RunOptions {
  checkInvariants?: boolean;
  variants?: Record<string, string>; // command-line overrides
  memoryBytes?: number; // command-line override of machine.memory
  ptReclaim?: boolean;
  zeroPage?: boolean;
  arch?: "x86_64" | "arm64"; // overrides the scenario's machine.arch
  arm64?: Partial<Arm64Features>; // overrides of the arm64 CPU features
  // Tests: called with the machine once it is built (to stand in for
  // hardware or kernel behaviour no scenario can produce).
  onMachine?: (m: Machine) => void;
  mthp?: Record<number, "always" | "madvise" | "inherit">; // replaces the scenario's mTHP sizes (KiB -> policy)
  thp?: "never" | "madvise" | "always";
  // Progress hook: called after every executed step (repeats unrolled) with the
  // number done and the total (see countSteps()).
  onStep?: (done: number, total: number) => void;
  // Told before and after each step runs (not `repeat` itself, its steps),
  // and with null around the teardown at the end: `ptlab run --events`
  // cuts the event stream by step with it.
  onExec?: (step: Step | null, phase: "before" | "after") => void;
  // Attribute the counters to kernel functions (--by-function): Runner.prof
  // holds them, up to the end of the steps (the totals' extent).
  byFunction?: boolean;
}

// The root frame of a step under --by-function: the syscall or the context
// that runs it.
const STEP_ROOT: Record<Step["op"], string> = {
  mmap: "sys_mmap",
  munmap: "sys_munmap",
  mprotect: "sys_mprotect",
  madvise: "sys_madvise",
  touch: "[user]",
  mremap: "sys_mremap",
  brk: "sys_brk",
  fork: "sys_clone",
  exit: "do_exit",
  exec: "sys_execve",
  report: "[report]",
  repeat: "[report]",
  reclaim: "reclaim_pages",
  migrate: "migrate_pages",
  khugepaged: "khugepaged",
  writeback: "do_writepages",
  pin: "pin_user_pages",
  unpin: "unpin_user_pages",
  dma: "[dma]",
  lockless: "[lockless]",
  oom_reap: "oom_reap_task",
  truncate: "do_truncate",
};

// Steps runAll() executes: every step once, a repeat's body `count` times.
export function countSteps(steps: Step[]): number {
  let n = 0;
  for (const s of steps) n += s.op === "repeat" ? s.count * countSteps(s.steps) : 1;
  return n;
}

export function machineConfig(spec: MachineSpec, file: string, opts: RunOptions = {}): MachineConfig {
  const cfg = defaultConfig();
  cfg.cpus = spec.cpus;
  cfg.levels = spec.levels;
  cfg.thp = spec.thp;
  cfg.thpUseZeroPage = spec.thpUseZeroPage;
  cfg.zeroPage = opts.zeroPage ?? true;
  cfg.ptReclaim = opts.ptReclaim ?? spec.ptReclaim;
  cfg.checkInvariants = opts.checkInvariants ?? true;
  cfg.nowaitAllocFails = spec.nowaitAllocFails ?? false;
  if (spec.pageCluster !== undefined) cfg.pageCluster = spec.pageCluster;
  if (opts.thp !== undefined) cfg.thp = opts.thp;
  if (spec.arm64 !== undefined) {
    const a = spec.arm64;
    cfg.arm64 = { granule: a.granule, vaBits: a.vaBits, hafdbs: a.hafdbs, tlbiRange: a.tlbiRange, bbml2NoAbort: a.bbml2NoAbort, asidBits: a.asidBits };
  }
  if (opts.arm64 !== undefined) cfg.arm64 = { ...cfg.arm64, ...opts.arm64 };
  const arch = opts.arch ?? spec.arch;
  const g = cfg.arm64.granule;
  if (arch === "x86_64" && g !== 4) throw new ScenarioError(file, 1, 1, `the ${g}K granule needs arch arm64 (x86-64 has 4K pages)`);
  if (arch === "arm64" && !VA_BITS_CHOICES[g].includes(cfg.arm64.vaBits))
    throw new ScenarioError(file, 1, 1, `arm64 with the ${g}K granule offers ${vaBitsChoicesText(g)}-bit VAs, not ${cfg.arm64.vaBits}`);
  cfg.mthp = mthpOrders(opts.mthp ?? spec.mthp ?? {}, arch === "arm64" ? g : 4, file);
  // The swap device holds whole pages of the granule.
  cfg.swapPages = Math.floor((spec.swapBytes ?? 0) / ((arch === "arm64" ? g : 4) * 1024));
  cfg.memoryPages = Math.floor((opts.memoryBytes ?? spec.memoryBytes ?? 0) / ((arch === "arm64" ? g : 4) * 1024));
  const bad = applyVariants(cfg, { ...spec.variants, ...(opts.variants ?? {}) });
  if (bad !== null) throw new ScenarioError(file, 1, 1, bad);
  return cfg;
}

// Selects the named variants in cfg; a message naming the first unknown
// name or value, or null.
export function applyVariants(cfg: MachineConfig, variants: Record<string, string>): string | null {
  for (const [k, v] of Object.entries(variants)) {
    if (!Object.hasOwn(VARIANTS, k)) return `unknown variant "${k}" (known: ${Object.keys(VARIANTS).join(", ")})`;
    const allowed = VARIANTS[k as VariantName] as readonly string[];
    if (!allowed.includes(v)) return `variant ${k}: unknown value "${v}" (expected one of: ${allowed.join(", ")})`;
    (cfg.variants as Record<string, string>)[k] = v;
  }
  return null;
}

// hugepages-<size>kB settings (KiB -> policy) to folio orders of the page size.
export function mthpOrders(sizes: Record<number, "always" | "madvise" | "inherit">, pageKb: number, file: string): MachineConfig["mthp"] {
  const out: MachineConfig["mthp"] = {};
  const shift = Math.log2(pageKb * 1024);
  for (const [k, pol] of Object.entries(sizes)) {
    const order = anonMthpOrder(Number(k), shift);
    if (order < 0)
      throw new ScenarioError(
        file,
        1,
        1,
        `mTHP size ${Number(k) >= 1024 ? `${Number(k) / 1024}M` : `${k}K`} does not exist with ${pageKb}K pages (sizes ${anonMthpRange(shift)})`,
      );
    out[order] = pol;
  }
  return out;
}

export const DEFAULT_MMAP_BASE = 0x7f0000000000;
export const DEFAULT_START_BRK = 0x555555560000;

// mmap_base and the start of the heap for a machine whose map window is
// smaller than x86-64's 47 bits (arm64 with 36-, 39- or 42-bit VAs): the
// same shape scaled down, mmap_base 1/128 of the window below its top and
// the heap at 2/3 of it (ELF_ET_DYN_BASE). Larger windows keep the x86-64
// addresses.
export function userLayout(m: Machine): { mmapBase: number; startBrk: number } {
  const w = m.arch.mapWindow;
  if (w >= DEFAULT_MMAP_BASE) return { mmapBase: DEFAULT_MMAP_BASE, startBrk: DEFAULT_START_BRK };
  return { mmapBase: w - w / 128, startBrk: Math.ceil((2 * w) / 3 / 65536) * 65536 };
}

export class Runner {
  readonly m: Machine;
  readonly procs = new Map<string, Proc>();
  // Regions ("process/region") a concurrent mremap resized under the
  // explorer: another thread's step may still name their old extent (see range()).
  readonly resized = new Set<string>();
  readonly threadCpu = new Map<string, number>();
  readonly threadProc = new Map<string, string>();
  readonly rows: ReportRow[] = [];
  // GUP pins held (pin steps), by name; exit and munmap leave them.
  readonly pins = new Map<string, GupPin>();
  private last: Counters;
  private reportNo = 0;
  // --by-function: the counters by kernel function, null without it.
  readonly prof: FunctionProfiler | null;

  constructor(
    readonly sc: Scenario,
    readonly opts: RunOptions = {},
    readonly oracle: AddressOracle = {},
  ) {
    const cfg = machineConfig(sc.machine, sc.file, opts);
    this.m = newMachine(makeArch(opts.arch ?? sc.machine.arch, sc.machine.levels, cfg.arm64), cfg);
    opts.onMachine?.(this.m);
    this.prof = opts.byFunction === true ? new FunctionProfiler(this.m).attach(this.m) : null;
    this.prof?.root("mm_alloc");
    for (const p of sc.processes) {
      const lay = userLayout(this.m);
      const mm = this.m.newMm(lay.mmapBase);
      mm.startBrk = mm.brk = lay.startBrk;
      mm.threads = p.threads.length;
      this.procs.set(p.name, { name: p.name, mm, regions: new Map(), threads: p.threads.map((t) => t.name) });
      for (const t of p.threads) {
        this.threadCpu.set(t.name, t.cpu);
        this.threadProc.set(t.name, p.name);
      }
    }
    this.last = snapshotCounters(this.m.counters);
  }

  err(step: Step, msg: string): ScenarioError {
    return new ScenarioError(this.sc.file, step.pos.line, step.pos.col, msg);
  }

  procOf(step: Step): Proc {
    const pn = this.threadProc.get(step.thread);
    const p = pn === undefined ? undefined : this.procs.get(pn);
    if (p === undefined || !p.mm.alive) throw this.err(step, `thread "${step.thread}" does not exist or its process has exited`);
    return p;
  }

  // The process a `reclaim`, `migrate` or `khugepaged` step works on;
  // reclaim needs a swap device, and khugepaged a THP mode that runs it.
  reclaimTarget(step: ReclaimStep | MigrateStep | KhugepagedStep): Proc {
    if (step.op === "reclaim" && this.m.swap === null) throw this.err(step, "reclaim needs a swap device (set machine.swap, e.g. swap: 64M)");
    if (step.op === "khugepaged" && this.m.config.thp === "never")
      throw this.err(step, "khugepaged does not run with thp: never (start_stop_khugepaged() stops it); set machine.thp to madvise or always");
    const p = step.process !== undefined ? this.procs.get(step.process) : this.procOf(step);
    if (p === undefined || !p.mm.alive) throw this.err(step, `process "${step.process}" does not exist or has exited`);
    return p;
  }

  // kswapd under machine.memory: woken when free memory is below the low
  // watermark, between accesses and steps (kswapd.ts); memory it cannot
  // free below the min watermark ends the run, where the kernel would
  // OOM-kill a process.
  pressure(step: Step): void {
    const m = this.m;
    if (m.config.memoryPages === 0 || freePages(m) >= m.watermarks.low) return;
    underRoot(this.prof, "kswapd", () => run(kswapdBalance(m)));
    if (freePages(m) < m.watermarks.min) {
      const why = reclaimBlocker(m);
      throw this.err(
        step,
        `out of memory: ${m.phys.allocated} of the ${m.config.memoryPages} pages of machine.memory in use and kswapd freed nothing more (${why}); the kernel would OOM-kill a process here`,
      );
    }
  }

  // machine.headroom, before the concurrent part: the rest of the system
  // takes what is free beyond the headroom above the low watermark (none
  // if the set-up left less), so the concurrent steps run with memory tight.
  applyHeadroom(): void {
    const m = this.m;
    const h = this.sc.machine.headroomBytes;
    if (h === undefined || m.config.memoryPages === 0) return;
    m.reservedPages = Math.max(0, freePages(m) - m.watermarks.low - Math.ceil(h / m.geo.pageSize));
  }

  // Enter the kernel on the thread's CPU with its mm loaded.
  enter(step: Step, p: Proc): number {
    const c = this.threadCpu.get(step.thread) as number;
    this.m.curCpu = c;
    this.m.arch.switchMm(this.m, c, p.mm);
    return c;
  }

  range(step: Step & { region: string; offset: number; length?: number }, p: Proc, base: number): [number, number] {
    const r = p.regions.get(step.region);
    if (r === undefined) throw this.err(step, `unknown region "${step.region}" in process ${p.name} (known: ${[...p.regions.keys()].join(", ") || "none"})`);
    const off = step.offset + base;
    const len = step.length ?? r.len - off;
    // Past the end of a region a concurrent mremap shrank: the program's
    // pointer still points there and the access or call meets whatever is
    // mapped there now (SIGSEGV, ENOMEM), as it would in the kernel.
    const shrunk = off + len > r.len && this.resized.has(`${p.name}/${step.region}`);
    if (off >= r.len && step.length === undefined && !shrunk)
      throw this.err(step, `offset ${off} is at or past the end of region "${step.region}" (${r.len} bytes)`);
    if (off < 0 || len <= 0 || (off + len > r.len && !shrunk))
      throw this.err(step, `range offset ${off} length ${len} is outside region "${step.region}" (${r.len} bytes)`);
    return [r.start + off, len];
  }

  // Runs all steps; returns the report rows.
  runAll(): ReportRow[] {
    if (this.opts.onStep) this.progress = { done: 0, total: countSteps(this.sc.steps), cb: this.opts.onStep };
    this.execSteps(this.sc.steps, 0);
    return this.rows;
  }

  private progress: { done: number; total: number; cb: (done: number, total: number) => void } | null = null;

  execSteps(steps: Step[], base: number): void {
    for (const s of steps) {
      if (s.op === "repeat") {
        for (let i = 0; i < s.count; i++) this.execSteps(s.steps, base + i * s.advance);
      } else {
        this.exec(s, base);
        if (this.progress) this.progress.cb(++this.progress.done, this.progress.total);
      }
    }
  }

  // execSteps() one step at a time: returns after each executed step
  // (repeats unrolled), for a driver that must stop between steps.
  *stepByStep(steps: Step[], base: number): Generator<void, void, void> {
    for (const s of steps) {
      if (s.op === "repeat") {
        for (let i = 0; i < s.count; i++) yield* this.stepByStep(s.steps, base + i * s.advance);
      } else {
        this.exec(s, base);
        if (this.progress) this.progress.cb(++this.progress.done, this.progress.total);
        yield;
      }
    }
  }

  exec(step: Step, base: number): void {
    const hook = this.opts.onExec;
    if (hook) hook(step, "before");
    try {
      this.execChecked(step, base);
    } finally {
      if (hook) hook(step, "after");
    }
  }

  private execChecked(step: Step, base: number): void {
    const m = this.m;
    this.prof?.root(STEP_ROOT[step.op]);
    try {
      this.execInner(step, base);
    } catch (e) {
      if (e instanceof MmError) throw this.err(step, `${step.op} failed: ${e.errno}: ${e.message}`);
      throw e;
    }
    // Every CPU passes a quiescent state between steps.
    underRoot(this.prof, "rcu_do_batch", () => m.rcuGracePeriod());
    this.pressure(step);
    if (m.config.checkInvariants && step.op !== "report") {
      const v = [
        ...m.violations,
        ...checkTlbs(m),
        ...checkAccounting(m),
        ...(m.arch.name === "arm64" ? checkContpte(m) : []),
        ...(this.pins.size > 0 ? checkPins(m, this.pins.values(), `after ${step.op}`) : []),
      ];
      m.violations = [];
      if (v.length > 0) throw new ViolationError(v, `${step.op} at ${this.sc.file}:${step.pos.line}:${step.pos.col}`);
    } else if (!m.config.checkInvariants && m.violations.length > 0) {
      // Unchecked runs still stop at a fault that never resolved: the thread
      // never got past it, so what follows would not be what the kernel does.
      const v = m.violations.filter((x) => x.invariant === "livelock");
      m.violations = [];
      if (v.length > 0) throw new ViolationError(v, `${step.op} at ${this.sc.file}:${step.pos.line}:${step.pos.col}`);
    }
  }

  private execInner(step: Step, base: number): void {
    const m = this.m;
    switch (step.op) {
      case "mmap": {
        const p = this.procOf(step);
        this.enter(step, p);
        if (step.offset % m.geo.pageSize !== 0)
          throw this.err(step, `mmap failed: EINVAL: offset ${step.offset} is not a multiple of the ${m.geo.pageSize / 1024}K page size`);
        const file = step.file !== undefined ? m.file(step.file, step.offset + step.size, false) : null;
        const shared = step.flags.includes("shared");
        const args = {
          len: step.size,
          prot: step.prot,
          shared,
          fixed: step.flags.includes("fixed"),
          addr: step.addr ?? 0,
          file,
          pgoff: step.offset / m.geo.pageSize,
        };
        if (args.addr !== 0 && args.addr + args.len > 2 ** MODEL_VA_BITS && m.arch.name === "arm64" && m.arch.taskSize > 2 ** MODEL_VA_BITS)
          throw this.err(step, `mmap at 0x${args.addr.toString(16)}: addresses above 2^${MODEL_VA_BITS} with 52-bit VAs are not modelled`);
        let addr: number;
        if (this.oracle.mmap) {
          addr = doMmap(m, p.mm, { ...args, fixed: true, addr: this.oracle.mmap(step) });
        } else addr = doMmap(m, p.mm, args);
        p.regions.set(step.region, { start: addr, len: step.size });
        this.pinForget(p.mm, addr, addr + step.size); // MAP_FIXED over a pinned range
        if (step.flags.includes("populate")) {
          const c = this.threadCpu.get(step.thread) as number;
          const write = step.prot.write && !shared;
          for (let a = addr; a < addr + step.size; a += m.geo.pageSize) if (userAccess(m, c, p.mm, a, write) === "livelock") break;
        }
        return;
      }
      case "munmap": {
        const p = this.procOf(step);
        this.enter(step, p);
        const [a, len] = this.range(step, p, base);
        this.pinForget(p.mm, a, a + len);
        run(doMunmap(m, p.mm, a, len));
        return;
      }
      case "mprotect": {
        const p = this.procOf(step);
        this.enter(step, p);
        const [a, len] = this.range(step, p, base);
        doMprotect(m, p.mm, a, len, step.prot);
        return;
      }
      case "madvise": {
        const p = this.procOf(step);
        this.enter(step, p);
        const [a, len] = this.range(step, p, base);
        if (step.advice === "dontneed" || step.advice === "free") this.pinForget(p.mm, a, a + len);
        doMadvise(m, p.mm, a, len, step.advice);
        return;
      }
      case "touch": {
        const p = this.procOf(step);
        const c = this.enter(step, p);
        const [a, len] = this.range(step, p, base);
        const stride = step.stride || m.geo.pageSize;
        for (let x = a; x < a + len; x += stride) {
          const res = userAccess(m, c, p.mm, x, step.write);
          if (m.config.memoryPages > 0) this.pressure(step);
          if (res === "segv" || res === "sigbus")
            throw this.err(step, `${res === "segv" ? "SIGSEGV" : "SIGBUS"}: ${step.write ? "write" : "read"} at 0x${x.toString(16)} in process ${p.name}`);
          // The thread never gets past this access (the violation is in m.violations).
          if (res === "livelock") break;
        }
        return;
      }
      case "mremap": {
        const p = this.procOf(step);
        this.enter(step, p);
        const r = p.regions.get(step.region);
        if (r === undefined) throw this.err(step, `unknown region "${step.region}"`);
        this.pinForget(p.mm, r.start, r.start + r.len);
        const hint = this.oracle.mremap ? this.oracle.mremap(step) : 0;
        const na = doMremap(m, p.mm, r.start, r.len, step.newSize, step.mayMove, hint === r.start ? 0 : hint);
        p.regions.delete(step.region);
        p.regions.set(step.newRegion ?? step.region, { start: na, len: step.newSize });
        return;
      }
      case "brk": {
        const p = this.procOf(step);
        this.enter(step, p);
        const want = p.mm.brk + step.delta;
        if (step.delta < 0) this.pinForget(p.mm, Math.floor(want / m.geo.pageSize) * m.geo.pageSize, p.mm.brk + m.geo.pageSize);
        if (doBrk(m, p.mm, want) !== want) {
          const hex = (x: number) => `0x${x.toString(16)}`;
          throw this.err(
            step,
            `brk failed: the kernel kept the break at ${hex(p.mm.brk)} (a new break lies between start_brk ${hex(p.mm.startBrk)} and TASK_SIZE ${hex(m.arch.taskSize)}, a page below the next mapping)`,
          );
        }
        this.bindHeap(step, p);
        return;
      }
      case "fork": {
        const p = this.procOf(step);
        this.enter(step, p);
        if (this.procs.has(step.child)) throw this.err(step, `process "${step.child}" already exists`);
        this.addChild(step, p, dupMmap(m, p.mm));
        return;
      }
      case "exit": {
        const p = this.procs.get(step.process);
        if (p === undefined || !p.mm.alive) throw this.err(step, `process "${step.process}" does not exist or has exited`);
        this.exitProcess(p);
        return;
      }
      case "exec": {
        // do_execve(): de_thread() leaves the caller alone, exec_mmap()
        // installs a new mm and drops the old one (mmput() -> exit_mmap()).
        const p = this.procOf(step);
        this.exitProcess(p);
        const lay = userLayout(m);
        const mm = m.newMm(lay.mmapBase);
        mm.startBrk = mm.brk = lay.startBrk;
        mm.threads = 1;
        for (const t of p.threads) if (t !== step.thread) this.threadProc.delete(t);
        p.threads = [step.thread];
        p.mm = mm;
        p.regions = new Map();
        return;
      }
      case "report":
        this.report(step.label);
        return;
      case "repeat":
        return;
      case "reclaim":
      case "khugepaged": {
        const p = this.reclaimTarget(step);
        const [a, len] = this.range(step, p, base);
        // kswapd and khugepaged run on the thread's CPU, lazily on whatever
        // mm is loaded.
        m.curCpu = this.threadCpu.get(step.thread) as number;
        if (step.op === "reclaim") run(reclaimRange(m, p.mm, a, a + len));
        else run(khugepagedScanMm(m, p.mm, a, a + len));
        return;
      }
      case "migrate": {
        const p = this.reclaimTarget(step);
        const [a, len] = this.range(step, p, base);
        // move_pages() of an address no VMA maps fails (-EFAULT): a
        // scenario error here; under the explorer a concurrent unmap may
        // legitimately win, and the actor then finds nothing.
        if (!p.mm.vmas.some((v) => v.start < a + len && v.end > a))
          throw this.err(step, `nothing is mapped in ${step.region}+${step.offset + base} (length ${len}) of process ${p.name}: no folio to migrate`);
        m.curCpu = this.threadCpu.get(step.thread) as number;
        run(migrateRange(m, p.mm, a, a + len));
        return;
      }
      case "writeback": {
        const f = m.files.get(step.file);
        if (f === undefined) throw this.err(step, `unknown file "${step.file}" (map it first)`);
        m.curCpu = this.threadCpu.get(step.thread) as number;
        run(writebackFile(m, f));
        return;
      }
      case "pin": {
        const p = this.procOf(step);
        this.enter(step, p);
        const [a, len] = this.range(step, p, base);
        if (this.pins.has(step.name)) throw this.err(step, `pin "${step.name}" is held already (unpin it first, or name this one)`);
        const nr = Math.ceil(len / m.geo.pageSize);
        // pin_user_pages_fast(): GUP-fast first, the slow path for the rest.
        const fast = step.fast ? run(gupFastPinRange(m, p.mm, a, nr, step.write)) : [];
        const rest = run(pinUserPages(m, p.mm, a + fast.length * m.geo.pageSize, nr - fast.length, step.write));
        if (typeof rest === "string") {
          unpinUserPages(m, newGupPin(p.mm, a, fast, step.write));
          throw this.err(step, `pin of ${step.region}+${step.offset + base} (length ${len}) in process ${p.name} failed: ${rest}`);
        }
        this.pins.set(step.name, newGupPin(p.mm, a, [...fast, ...rest], step.write));
        return;
      }
      case "unpin": {
        const pin = this.pinNamed(step, step.pin);
        unpinUserPages(m, pin);
        this.pins.delete(step.pin);
        return;
      }
      case "dma": {
        // The device's access itself touches no page table; under explore
        // its data is checked (ops.ts).
        this.dmaTarget(step);
        return;
      }
      case "lockless":
      case "oom_reap":
      case "truncate":
        throw this.err(step, `${step.op} runs only under \`ptlab explore\` (put the step in \`concurrent\`)`);
    }
  }

  pinNamed(step: Step, name: string): GupPin {
    const pin = this.pins.get(name);
    if (pin === undefined) throw this.err(step, `no pin named "${name}" is held (known: ${[...this.pins.keys()].join(", ") || "none"})`);
    return pin;
  }

  // A dma step's pin and page index.
  dmaTarget(step: Step & { op: "dma" }): [GupPin, number] {
    const pin = this.pinNamed(step, step.pin);
    const k = step.offset / this.m.geo.pageSize;
    if (!Number.isInteger(k) || k >= pin.pfns.length)
      throw this.err(step, `offset ${step.offset} is outside pin "${step.pin}" (${pin.pfns.length} pages of ${this.m.geo.pageSize / 1024}K)`);
    if (step.write && !pin.write) throw this.err(step, `pin "${step.pin}" is read-only (FOLL_WRITE not set): the device cannot write through it`);
    return [pin, k];
  }

  pinForget(mm: Mm, start: number, end: number): void {
    if (this.pins.size > 0) gupPinsForget(this.pins.values(), mm, start, end, this.m.geo.pageSize);
  }

  // A brk step's `region`: the heap from start_brk to the break, page aligned.
  bindHeap(step: BrkStep, p: Proc): void {
    if (step.region === undefined) return;
    const ps = this.m.geo.pageSize;
    const start = Math.ceil(p.mm.startBrk / ps) * ps;
    const len = Math.ceil(p.mm.brk / ps) * ps - start;
    if (len > 0) p.regions.set(step.region, { start, len });
    else p.regions.delete(step.region);
  }

  // The child of a fork step, with the parent's regions.
  addChild(step: ForkStep, p: Proc, mm: Mm): void {
    mm.threads = 1;
    const regions = new Map(p.regions);
    this.procs.set(step.child, { name: step.child, mm, regions, threads: [step.childThread] });
    this.threadCpu.set(step.childThread, step.cpu);
    this.threadProc.set(step.childThread, step.child);
  }

  // do_exit() -> exit_mm() -> mmput() -> exit_mmap(), on the CPU of the
  // process's first thread, which is lazy by then.
  exitProcess(p: Proc): void {
    run(this.exitProcessGen(p));
    underRoot(this.prof, "rcu_do_batch", () => this.m.rcuGracePeriod());
  }
  *exitProcessGen(p: Proc): KGen {
    const m = this.m;
    const c = this.threadCpu.get(p.threads[0] as string) ?? 0;
    m.curCpu = c;
    m.arch.switchMm(m, c, p.mm);
    for (const cpu of m.cpus) if (cpu.loadedMm === p.mm) cpu.running = null;
    m.prof?.enter("exit_mmap");
    yield* exitMmap(m, p.mm);
    m.prof?.exit();
    for (const cpu of m.cpus) if (cpu.loadedMm === p.mm) m.arch.switchMm(m, cpu.id, null);
    m.tables.free(p.mm.pgd);
    m.counters.ptFree++;
    p.mm.alive = false;
  }

  figures(mm: Mm): Figures {
    return mmFigures(this.m, mm);
  }

  report(label: string): ReportRow {
    this.reportNo++;
    const now = snapshotCounters(this.m.counters);
    const row: ReportRow = {
      label: label || `report ${this.reportNo}`,
      processes: [...this.procs.values()].filter((p) => p.mm.alive).map((p) => ({ name: p.name, figures: this.figures(p.mm) })),
      counters: diffCounters(this.last, now),
    };
    this.last = now;
    this.rows.push(row);
    return row;
  }

  // Tear down what is left and check for leaks.
  // Runs every step and the implicit teardown. Returns the counters as they
  // stood before the teardown (or when a violation stopped the run) and the
  // violations as printable lines.
  runToEnd(): { totals: Counters; violations: string[] } {
    try {
      this.runAll();
      this.prof?.detach();
      const totals = snapshotCounters(this.m.counters);
      return { totals, violations: this.finish().map((v) => `[${v.invariant}] ${v.message}`) };
    } catch (e) {
      if (!(e instanceof ViolationError)) throw e;
      this.prof?.detach();
      return { totals: snapshotCounters(this.m.counters), violations: e.violations.map((v) => `[${v.invariant}] ${v.message} (after ${e.where})`) };
    }
  }

  // runToEnd() for a driver that can be interrupted (SIGINT on the command
  // line): every `sliceMs` of steps it awaits ctl.pause() (the caller's way
  // to let its event loop run, so a signal handler can), and it stops
  // between two steps once ctl.stop() says so, without the teardown. The
  // totals are then the counters so far; `stoppedAt` the executed steps.
  async runToEndAsync(ctl: {
    stop: () => boolean;
    pause: () => Promise<void>;
    sliceMs?: number;
  }): Promise<{ totals: Counters; violations: string[]; stoppedAt: { done: number; total: number } | null }> {
    const slice = ctl.sliceMs ?? 50;
    const total = countSteps(this.sc.steps);
    let done = 0;
    try {
      if (this.opts.onStep) this.progress = { done: 0, total, cb: this.opts.onStep };
      let t = Date.now();
      for (const _ of this.stepByStep(this.sc.steps, 0)) {
        done++;
        if (Date.now() - t >= slice) {
          await ctl.pause();
          t = Date.now();
        }
        if (ctl.stop() && done < total) {
          this.prof?.detach();
          return { totals: snapshotCounters(this.m.counters), violations: [], stoppedAt: { done, total } };
        }
      }
      this.prof?.detach();
      const totals = snapshotCounters(this.m.counters);
      return { totals, violations: this.finish().map((v) => `[${v.invariant}] ${v.message}`), stoppedAt: null };
    } catch (e) {
      if (!(e instanceof ViolationError)) throw e;
      this.prof?.detach();
      return {
        totals: snapshotCounters(this.m.counters),
        violations: e.violations.map((v) => `[${v.invariant}] ${v.message} (after ${e.where})`),
        stoppedAt: null,
      };
    }
  }

  finish(): Violation[] {
    const hook = this.opts.onExec;
    if (hook) hook(null, "before");
    try {
      for (const p of this.procs.values()) if (p.mm.alive) this.exitProcess(p);
      // The driver releases what is still pinned (its file closed at exit).
      for (const pin of this.pins.values()) unpinUserPages(this.m, pin);
      this.pins.clear();
    } finally {
      if (hook) hook(null, "after");
    }
    return this.m.config.checkInvariants ? checkLeaks(this.m) : [];
  }
}
