// Replays a real program's trace (the event stream of src/trace) on the
// model: one mm per process, threads share it, fork copies it (dup_mmap),
// vfork borrows it until exec or exit, execve replaces it, the last task's
// exit tears it down (exit_mmap). Fault events become user accesses.
//
// What a trace does not show, and what the replayer does about it:
// - Mappings execve creates (program, interpreter, stack, vdso) are not in
//   the trace. A successful syscall or a fault at an address the model has no
//   VMA for creates an implicit VMA there: a private mapping of a placeholder
//   file `<exec:PID>` (read-write, so reads count as file pages and writes as
//   anon COW pages), merged with its neighbours. Counted as implicit_vmas.
// - perf prints faults on file mappings as `map@offset`; they are resolved
//   through the model's VMAs of that file. Two inferences stand in for what
//   the trace leaves out (counted in stats, listed by inferred()):
//   - perf trace prints mmap's fd, not the file, so the model names such a
//     file `<fdN:PID>`. A fault naming a path at an offset that exactly one
//     still unnamed `<fd…>` file of the process maps there names it: later
//     faults on that path resolve through it (inferredFdFiles). The binding
//     is per address space; fork copies it, execve drops it.
//   - Files execve mapped (the program, the ELF interpreter, the vDSO) have
//     no mmap in the trace. A fault on a path the process has no mapping of
//     maps that file where the model's own mmap() would (top-down below
//     mmap_base), a 2 MiB-aligned window of offsets around the fault (at
//     least 16 MiB from offset 0, so that a program's text and data are
//     contiguous as the kernel maps them), private and writable for the
//     data segment's COW; faults further in the file extend it or map
//     another window (inferredExecFiles, inferredExecVmas). The file is the
//     trace's path, so its page cache is shared between processes as the
//     program's is.
//   Faults that still find no mapping (a file mapped by another process's
//   fd, say) are counted as unresolved_faults and skipped.
// - strace has no fault lines: a touch policy stands in for them.
// No Node APIs.

import { type ArchName, makeArch } from "../core/arch/select.js";
import { checkContpte } from "../core/arch/arm64/contpte_check.js";
import { AccountingCache, checkAccounting, checkTlbs, TlbCache } from "../core/check.js";
import { Counters, diffCounters, snapshotCounters } from "../core/counters.js";
import { type AccessResult, userAccess } from "../core/arch/fault.js";
import { type Arm64Features, defaultConfig, type Machine, type MachineConfig, type Violation } from "../core/machine.js";
import { kswapdBalance, reclaimBlocker } from "../core/mm/kswapd.js";
import { freePages } from "../core/mm/page_alloc.js";
import { doMadvise, type Advice } from "../core/mm/madvise.js";
import { run } from "../core/sync.js";
import { doBrk, doMmap, doMunmap, exitMmap, getUnmappedArea, MmError } from "../core/mm/mmap.js";
import { doMremap } from "../core/mm/mremap.js";
import { doMprotect } from "../core/mm/mprotect.js";
import { dupMmap } from "../core/mm/fork.js";
import { type FileObj, type Mm, VM_MAYWRITE, VM_READ, VM_WRITE, Vma } from "../core/mm/types.js";
import { insertVma, mergeAround, rangeFree } from "../core/mm/vma.js";
import { mmFigures, type ReportRow } from "../run/runner.js";
import { FunctionProfiler, underRoot } from "../report/by-function.js";
import type { TraceEvent } from "../trace/events.js";
import { newMachine } from "../core/index.js";

export type TouchPolicy = { kind: "none" } | { kind: "writable" } | { kind: "first"; pages: number };

export interface ReplayOptions {
  cpus: number;
  thp: "never" | "madvise" | "always";
  ptReclaim: boolean;
  checkInvariants: boolean;
  arch: ArchName;
  // Faults replace the touch policy when the trace has them.
  touch: TouchPolicy;
  // false: the invariant checks recheck everything each time, without the
  // caches (the reference the cached checks are compared with in tests).
  cachedChecks?: boolean;
  // Machine settings beyond the defaults (validated by the caller):
  // historical variants, anon mTHP orders, arm64 features, a swap device
  // and a memory limit that kswapd keeps (0 or absent: none).
  variants?: Partial<MachineConfig["variants"]>;
  mthp?: MachineConfig["mthp"];
  arm64?: Partial<Arm64Features>;
  swapPages?: number;
  memoryPages?: number;
  // Track the whole system's peaks (sums over the live address spaces) after
  // every event, for `compare --trace`.
  systemPeaks?: boolean;
  // Attribute the counters to kernel functions (--by-function): Replayer.prof.
  byFunction?: boolean;
}

// The root frame of an event under --by-function.
const EVENT_ROOT: Record<TraceEvent["kind"], string> = {
  fault: "[user]",
  mmap: "sys_mmap",
  munmap: "sys_munmap",
  mprotect: "sys_mprotect",
  madvise: "sys_madvise",
  brk: "sys_brk",
  mremap: "sys_mremap",
  clone: "sys_clone",
  execve: "sys_execve",
  exit: "do_exit",
};

// The memory limit could not be kept: kswapd freed nothing more below the
// min watermark. `line` is the trace line whose event ran out of memory.
export class ReplayOutOfMemory extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

export function defaultReplayOptions(): ReplayOptions {
  return { cpus: 4, thp: "madvise", ptReclaim: true, checkInvariants: true, arch: "x86_64", touch: { kind: "none" } };
}

export interface ProcSummary {
  pid: number;
  comm: string;
  mmaps: number;
  faults: number;
  peakVmpteKb: number;
  peakRssAnonKb: number;
  peakRssFileKb: number;
  exited: boolean;
}

interface Proc {
  pid: number;
  mm: Mm;
  tids: Set<number>;
  summary: ProcSummary;
  // A vfork child runs on its parent's mm until it execs or exits.
  borrowed: boolean;
}

const ADVICE: Record<string, Advice> = {
  MADV_DONTNEED: "dontneed",
  MADV_DONTNEED_LOCKED: "dontneed",
  MADV_FREE: "free",
  MADV_HUGEPAGE: "hugepage",
  MADV_NOHUGEPAGE: "nohugepage",
  MADV_WILLNEED: "willneed",
  MADV_COLD: "cold",
  MADV_PAGEOUT: "pageout",
  MADV_COLLAPSE: "collapse",
};

const MMAP_BASE = 0x7f0000000000;
const MIB2 = 2 << 20;
// The first window of offsets an execve-mapped file gets (see the header).
const EXEC_FIRST_WINDOW = 16 << 20;

export class Replayer {
  readonly m: Machine;
  private procs = new Map<number, Proc>(); // by pid
  private tidProc = new Map<number, Proc>();
  private tidCpu = new Map<number, number>();
  private mmUsers = new Map<Mm, number>();
  readonly summaries: ProcSummary[] = [];
  readonly stats = {
    events: 0,
    syscalls: 0,
    faults: 0,
    touches: 0,
    skippedFailed: 0,
    implicitVmas: 0,
    inferredFdFiles: 0, // <fdN:PID> files named by a fault (see the header)
    inferredExecFiles: 0, // files execve mapped, placed by the model on a fault (per address space)
    inferredExecVmas: 0, // the VMAs placed for them
    inferredFaults: 0, // faults resolved only through an inference
    unresolvedFaults: 0,
    segv: 0, // accesses the model answered with a signal (SIGSEGV, or SIGBUS beyond a file's end)
    unsupported: 0,
    brkRefused: 0, // a break the traced kernel reached and the model's brk() refused (the replay diverges there)
    checksSkipped: 0, // checks after events that changed nothing they read
    kswapdRuns: 0, // times kswapd was woken under --memory-limit
  };
  private line = 0; // the trace line of the event being applied
  // Per "pid:fd": how many files were mapped through that descriptor.
  private fdGen = new Map<string, number>();
  // Per address space: paths named by faults -> the <fdN:PID> file mapped there.
  private fdNames = new WeakMap<Mm, Map<string, FileObj>>();
  // Per address space: files execve mapped that a fault placed.
  private execPlaced = new WeakMap<Mm, Set<FileObj>>();
  // What was inferred, by path: for inferred().
  private inferredPaths = { fd: new Map<string, number>(), exec: new Map<string, number>() };
  violations: Violation[] = [];
  private checkedSig = -1;
  private acct: AccountingCache | undefined;
  private tlbs: TlbCache | undefined;
  // --by-function: the counters by kernel function, null without it.
  readonly prof: FunctionProfiler | null;

  constructor(readonly opts: ReplayOptions) {
    const cfg = defaultConfig();
    cfg.cpus = opts.cpus;
    cfg.thp = opts.thp;
    cfg.ptReclaim = opts.ptReclaim;
    cfg.checkInvariants = opts.checkInvariants;
    if (opts.variants !== undefined) Object.assign(cfg.variants, opts.variants);
    if (opts.mthp !== undefined) cfg.mthp = opts.mthp;
    if (opts.arm64 !== undefined) cfg.arm64 = { ...cfg.arm64, ...opts.arm64 };
    cfg.swapPages = opts.swapPages ?? 0;
    cfg.memoryPages = opts.memoryPages ?? 0;
    this.m = newMachine(makeArch(opts.arch, 4, cfg.arm64), cfg);
    this.prof = opts.byFunction === true ? new FunctionProfiler(this.m).attach(this.m) : null;
    if (opts.cachedChecks !== false) {
      this.acct = new AccountingCache();
      this.tlbs = new TlbCache();
    }
  }

  private cpuOf(tid: number): number {
    let c = this.tidCpu.get(tid);
    if (c === undefined) {
      c = this.tidCpu.size % this.opts.cpus;
      this.tidCpu.set(tid, c);
    }
    return c;
  }

  private newProc(pid: number, mm: Mm, comm: string): Proc {
    const p: Proc = {
      pid,
      mm,
      tids: new Set([pid]),
      borrowed: false,
      summary: { pid, comm, mmaps: 0, faults: 0, peakVmpteKb: 0, peakRssAnonKb: 0, peakRssFileKb: 0, exited: false },
    };
    this.procs.set(pid, p);
    this.tidProc.set(pid, p);
    this.mmUsers.set(mm, (this.mmUsers.get(mm) ?? 0) + 1);
    this.summaries.push(p.summary);
    return p;
  }

  private proc(e: TraceEvent): Proc {
    const tid = e.tid ?? e.pid;
    let p = this.tidProc.get(tid) ?? this.procs.get(e.pid);
    if (p === undefined) {
      const mm = this.m.newMm(MMAP_BASE);
      p = this.newProc(e.pid, mm, e.comm ?? "");
    }
    if (!p.tids.has(tid)) {
      p.tids.add(tid);
      this.tidProc.set(tid, p);
    }
    if (e.comm !== undefined && p.summary.comm === "") p.summary.comm = e.comm;
    return p;
  }

  // Enter the kernel on the task's CPU with its mm.
  private enter(e: TraceEvent, p: Proc): number {
    const c = this.cpuOf(e.tid ?? e.pid);
    this.m.curCpu = c;
    this.m.arch.switchMm(this.m, c, p.mm);
    return c;
  }

  // An implicit VMA for a range execve created (see the header).
  private ensureMapped(p: Proc, start: number, len: number): void {
    const mm = p.mm;
    const s = start - (start % 4096);
    const end = Math.ceil((start + len) / 4096) * 4096;
    let a = s;
    while (a < end) {
      const v = mm.findVma(a);
      if (v !== null) {
        a = v.end;
        continue;
      }
      const i = mm.findVmaIndex(a);
      const next = mm.vmas[i];
      const gapEnd = Math.min(end, next === undefined ? end : next.start);
      const f = this.m.file(`<exec:${p.pid}>`, 0, false);
      insertVma(mm, new Vma(a, gapEnd, VM_READ | VM_WRITE | VM_MAYWRITE, f, a / 4096, 0));
      f.size = Math.max(f.size, gapEnd);
      mergeAround(this.m, mm, a, gapEnd);
      this.stats.implicitVmas++;
      a = gapEnd;
    }
  }

  private account(p: Proc): void {
    const mm = p.mm;
    const s = p.summary;
    s.peakVmpteKb = Math.max(s.peakVmpteKb, mm.pgtablesBytes / 1024);
    s.peakRssAnonKb = Math.max(s.peakRssAnonKb, mm.rssAnon * 4);
    s.peakRssFileKb = Math.max(s.peakRssFileKb, mm.rssFile * 4);
    if (this.opts.systemPeaks === true) this.notePeaks();
  }

  // The whole system's peaks (opts.systemPeaks): page-table memory and RSS
  // summed over the live address spaces, as after the event being applied.
  readonly peaks = { vmpteKb: 0, rssAnonKb: 0, rssFileKb: 0, anonHugeKb: 0 };
  private notePeaks(): void {
    const t = this.totals();
    const k = this.peaks;
    k.vmpteKb = Math.max(k.vmpteKb, t.vmpteKb);
    k.rssAnonKb = Math.max(k.rssAnonKb, t.rssAnonKb);
    k.rssFileKb = Math.max(k.rssFileKb, t.rssFileKb);
    k.anonHugeKb = Math.max(k.anonHugeKb, t.anonHugeKb);
  }
  totals(): { vmpteKb: number; rssAnonKb: number; rssFileKb: number; anonHugeKb: number } {
    const t = { vmpteKb: 0, rssAnonKb: 0, rssFileKb: 0, anonHugeKb: 0 };
    for (const mm of this.m.mms) {
      if (!mm.alive) continue;
      const f = mmFigures(this.m, mm);
      t.vmpteKb += f.vmpte_kb;
      t.rssAnonKb += f.rss_anon_kb;
      t.rssFileKb += f.rss_file_kb;
      t.anonHugeKb += f.anon_huge_kb;
    }
    return t;
  }

  // A report row, as `ptlab run` makes at a report step: each live
  // process's figures and the counters since the previous row.
  private lastReport = new Counters();
  report(label: string): ReportRow {
    const now = snapshotCounters(this.m.counters);
    const processes: ReportRow["processes"] = [];
    for (const p of this.procs.values())
      if (!p.borrowed && p.mm.alive) processes.push({ name: `${p.summary.comm}[${p.pid}]`, figures: mmFigures(this.m, p.mm) });
    const row: ReportRow = { label, processes, counters: diffCounters(this.lastReport, now) };
    this.lastReport = now;
    return row;
  }

  private access(p: Proc, c: number, addr: number, write: boolean): AccessResult {
    const vma = p.mm.findVma(addr);
    if (vma === null) this.ensureMapped(p, addr, 1);
    const v = p.mm.findVma(addr) as Vma;
    // A write the VMA does not allow cannot have happened as a write.
    const w = write && (v.flags & VM_WRITE) !== 0;
    const res = userAccess(this.m, c, p.mm, addr, w);
    if (res === "segv" || res === "sigbus") this.stats.segv++;
    if (this.m.config.memoryPages > 0) this.pressure();
    return res;
  }

  // kswapd under the memory limit, between accesses and after each event,
  // as Runner.pressure() does for scenarios (kswapd.ts).
  private pressure(): void {
    const m = this.m;
    if (freePages(m) >= m.watermarks.low) return;
    underRoot(this.prof, "kswapd", () => run(kswapdBalance(m)));
    this.stats.kswapdRuns++;
    if (freePages(m) < m.watermarks.min) {
      const why = reclaimBlocker(m, "no swap device (--swap)");
      throw new ReplayOutOfMemory(
        this.line,
        `out of memory: ${m.phys.allocated} of the ${m.config.memoryPages} pages of --memory-limit in use and kswapd freed nothing more (${why}); the kernel would OOM-kill a process here`,
      );
    }
  }

  // Releases a task; the mm goes when its last user does.
  private dropMm(p: Proc, c: number): void {
    const mm = p.mm;
    const users = (this.mmUsers.get(mm) ?? 1) - 1;
    this.mmUsers.set(mm, users);
    if (users > 0) return;
    this.account(p);
    this.m.curCpu = c;
    for (const cpu of this.m.cpus) if (cpu.loadedMm === mm) cpu.running = null;
    this.m.prof?.enter("exit_mmap");
    run(exitMmap(this.m, mm));
    this.m.prof?.exit();
    for (const cpu of this.m.cpus) if (cpu.loadedMm === mm) this.m.arch.switchMm(this.m, cpu.id, null);
    this.m.tables.free(mm.pgd);
    this.m.counters.ptFree++;
    mm.alive = false;
  }

  apply(e: TraceEvent): void {
    this.stats.events++;
    this.line = e.line;
    if (e.kind !== "fault" && e.kind !== "exit" && e.error !== undefined) {
      this.stats.skippedFailed++;
      return;
    }
    this.prof?.root(EVENT_ROOT[e.kind]);
    const p = this.proc(e);
    const c = this.enter(e, p);
    const m = this.m;
    try {
      switch (e.kind) {
        case "fault": {
          this.stats.faults++;
          p.summary.faults++;
          let addr = e.addr;
          if (addr === undefined && e.map !== undefined && e.mapOffset !== undefined) addr = this.resolveMapFault(p, e.map, e.mapOffset);
          if (addr === undefined) {
            this.stats.unresolvedFaults++;
            break;
          }
          const vma = p.mm.findVma(addr);
          // Read/write rule: the trace's own access type when it has one;
          // otherwise a write if the mapping is writable and anonymous (heap,
          // stack and anon mmaps are first touched by stores), a read if not.
          const write = e.write ?? (vma !== null && vma.file === null && (vma.flags & VM_WRITE) !== 0);
          this.access(p, c, addr, write);
          break;
        }
        case "mmap": {
          this.stats.syscalls++;
          p.summary.mmaps++;
          const anon = e.flags.includes("MAP_ANONYMOUS");
          const shared = e.flags.includes("MAP_SHARED") || e.flags.includes("MAP_SHARED_VALIDATE");
          const file = anon ? null : m.file(e.file ?? this.fdFileName(p.pid, e.fd ?? -1, e.flags.includes("MAP_FIXED")), e.offset + e.len, false);
          const addr = e.addr as number;
          const len = Math.ceil(e.len / 4096) * 4096;
          doMmap(m, p.mm, { len, prot: e.prot, shared, fixed: true, addr, file, pgoff: Math.floor(e.offset / 4096) });
          if (e.flags.includes("MAP_POPULATE")) for (let a = addr; a < addr + len; a += 4096) this.access(p, c, a, e.prot.write && !shared);
          else this.touchPolicy(p, c, addr, len, anon && !shared && e.prot.write);
          break;
        }
        case "munmap":
          this.stats.syscalls++;
          run(doMunmap(m, p.mm, e.addr, e.len));
          break;
        case "mprotect":
          this.stats.syscalls++;
          this.ensureMapped(p, e.addr, e.len);
          doMprotect(m, p.mm, e.addr, e.len, e.prot);
          break;
        case "madvise": {
          this.stats.syscalls++;
          const adv = ADVICE[e.advice];
          if (adv === undefined) {
            this.stats.unsupported++;
            break;
          }
          doMadvise(m, p.mm, e.addr, e.len, adv);
          break;
        }
        case "brk": {
          this.stats.syscalls++;
          const r = e.result as number;
          if (p.mm.startBrk === 0) {
            p.mm.startBrk = p.mm.brk = r; // the first brk(NULL) tells where the heap starts
          } else if (r !== p.mm.brk && doBrk(m, p.mm, r) !== r) this.stats.brkRefused++;
          break;
        }
        case "mremap": {
          this.stats.syscalls++;
          const na = e.newAddr as number;
          doMremap(m, p.mm, e.oldAddr, Math.ceil(e.oldLen / 4096) * 4096, Math.ceil(e.newLen / 4096) * 4096, true, na === e.oldAddr ? 0 : na);
          break;
        }
        case "clone": {
          this.stats.syscalls++;
          const child = e.child as number;
          if (e.thread) {
            p.tids.add(child);
            this.tidProc.set(child, p);
          } else if (e.vfork || e.sharesMm) {
            const q = this.newProc(child, p.mm, p.summary.comm);
            q.borrowed = true;
          } else {
            const mm = dupMmap(m, p.mm);
            const names = this.fdNames.get(p.mm);
            if (names !== undefined) this.fdNames.set(mm, new Map(names));
            const placed = this.execPlaced.get(p.mm);
            if (placed !== undefined) this.execPlaced.set(mm, new Set(placed));
            this.newProc(child, mm, p.summary.comm);
          }
          break;
        }
        case "execve": {
          this.stats.syscalls++;
          this.account(p);
          this.dropMm(p, c);
          p.borrowed = false;
          p.mm = m.newMm(MMAP_BASE);
          this.mmUsers.set(p.mm, 1);
          p.summary = {
            pid: p.pid,
            // strace names the file; perf trace shows the comm the exec gave the task.
            comm: e.path?.split("/").pop() ?? e.comm ?? p.summary.comm,
            mmaps: 0,
            faults: 0,
            peakVmpteKb: 0,
            peakRssAnonKb: 0,
            peakRssFileKb: 0,
            exited: false,
          };
          this.summaries.push(p.summary);
          break;
        }
        case "exit": {
          const tid = e.tid ?? e.pid;
          if (!e.final && !e.group) break; // the status line follows
          const gone = e.group ? [...p.tids] : [tid];
          for (const t of gone) {
            p.tids.delete(t);
            this.tidProc.delete(t);
          }
          if (p.tids.size === 0 && !p.summary.exited) {
            p.summary.exited = true;
            this.account(p);
            this.dropMm(p, c);
            this.procs.delete(p.pid);
          }
          break;
        }
      }
    } catch (err) {
      if (!(err instanceof MmError)) throw err;
      this.stats.unsupported++;
    }
    if (p.mm.alive) this.account(p);
    underRoot(this.prof, "rcu_do_batch", () => m.rcuGracePeriod());
    if (m.config.memoryPages > 0) this.pressure();
    // After a fault event only when the fault path recorded a violation (a livelock).
    if (this.opts.checkInvariants && (e.kind !== "fault" || m.violations.length > 0)) {
      // The checks read page tables, TLBs and struct page state; if nothing
      // that changes them happened since the last check, they would find
      // what they found then.
      const sig = stateSignature(m);
      if (sig !== this.checkedSig || m.violations.length > 0) {
        this.checkedSig = sig;
        const v = [
          ...m.violations,
          ...checkTlbs(m, undefined, this.tlbs),
          ...checkAccounting(m, this.acct),
          ...(m.arch.name === "arm64" ? checkContpte(m) : []),
        ];
        m.violations = [];
        if (v.length > 0) this.violations.push(...v.map((x) => ({ ...x, message: `line ${e.line}: ${x.message}` })));
      } else this.stats.checksSkipped++;
    } else if (m.violations.length > 0) {
      // Unchecked, a fault that never resolved is still reported.
      for (const x of m.violations) if (x.invariant === "livelock") this.violations.push({ ...x, message: `line ${e.line}: ${x.message}` });
      m.violations = [];
    }
  }

  // The model's name for a file perf trace shows only as an fd. A
  // descriptor is reused for the next file opened, so each mapping that is
  // not MAP_FIXED starts a new one (the dynamic loader maps a library whole
  // at an address of its choice, then its segments MAP_FIXED inside).
  private fdFileName(pid: number, fd: number, fixed: boolean): string {
    const key = `${pid}:${fd}`;
    const gen = (this.fdGen.get(key) ?? 0) + (fixed ? 0 : 1);
    this.fdGen.set(key, gen);
    return `<fd${fd}:${pid}#${gen}>`;
  }

  // The address of a `map@offset` fault: through the model's VMAs of the
  // file, or of the <fdN:PID> file the path names, or of the file as
  // execve would have mapped it (see the header); undefined if none fits.
  private resolveMapFault(p: Proc, path: string, off: number): number | undefined {
    const mm = p.mm;
    const at = (f: FileObj | undefined): number | undefined => {
      if (f === undefined) return undefined;
      const v = mm.vmas.find((x) => x.file === f && off >= x.pgoff * 4096 && off < x.pgoff * 4096 + (x.end - x.start));
      return v === undefined ? undefined : v.start + off - v.pgoff * 4096;
    };
    const file = this.m.files.get(path);
    const direct = at(file);
    if (direct !== undefined) {
      if (file !== undefined && this.execPlaced.get(mm)?.has(file) === true) this.stats.inferredFaults++;
      return direct;
    }
    // A file this address space maps under its name (by strace's path, or
    // placed below) is not looked for among the fd files.
    const mapsPath = file !== undefined && mm.vmas.some((v) => v.file === file);
    let names = this.fdNames.get(mm);
    const named = names?.get(path);
    if (named !== undefined) {
      const a = at(named);
      if (a !== undefined) this.stats.inferredFaults++;
      return a;
    }
    if (mapsPath) return this.placeExecWindow(mm, file, path, off);
    // An <fd…> file not named yet whose mapping holds the offset: if
    // exactly one, the fault names it.
    const taken = new Set(names?.values() ?? []);
    const cands = new Set<FileObj>();
    for (const v of mm.vmas) {
      const f = v.file;
      if (f === null || !f.name.startsWith("<fd") || taken.has(f)) continue;
      if (off >= v.pgoff * 4096 && off < v.pgoff * 4096 + (v.end - v.start)) cands.add(f);
    }
    if (cands.size === 1) {
      const f = [...cands][0] as FileObj;
      if (names === undefined) {
        names = new Map();
        this.fdNames.set(mm, names);
      }
      names.set(path, f);
      this.stats.inferredFdFiles++;
      this.inferredPaths.fd.set(path, (this.inferredPaths.fd.get(path) ?? 0) + 1);
      this.stats.inferredFaults++;
      return at(f);
    }
    if (cands.size > 1 || !path.startsWith("/")) return undefined;
    return this.placeExecWindow(mm, this.m.file(path, off + 4096, false), path, off);
  }

  // A file execve mapped: the window of offsets around `off`, placed (see
  // the header). Only a file placed before, or that no mapping shows, is.
  private placeExecWindow(mm: Mm, f: FileObj, path: string, off: number): number | undefined {
    let placed = this.execPlaced.get(mm);
    if (placed === undefined) {
      placed = new Set();
      this.execPlaced.set(mm, placed);
    }
    if (!placed.has(f)) {
      if (mm.vmas.some((v) => v.file === f)) return undefined;
      placed.add(f);
      this.stats.inferredExecFiles++;
      this.inferredPaths.exec.set(path, (this.inferredPaths.exec.get(path) ?? 0) + 1);
    }
    const lo = Math.floor(off / MIB2) * MIB2;
    const hi = Math.max(lo + MIB2, lo === 0 ? EXEC_FIRST_WINDOW : 0);
    // Right after the file's mapping that ends where this window starts, if
    // that range is free; else where mmap() would put it.
    const prev = mm.vmas.find((v) => v.file === f && v.pgoff * 4096 + (v.end - v.start) === lo);
    let addr: number;
    try {
      addr = prev !== undefined && rangeFree(mm, prev.end, prev.end + (hi - lo)) ? prev.end : getUnmappedArea(mm, hi - lo, 4096);
    } catch (err) {
      if (err instanceof MmError) return undefined;
      throw err;
    }
    f.size = Math.max(f.size, hi);
    insertVma(mm, new Vma(addr, addr + (hi - lo), VM_READ | VM_WRITE | VM_MAYWRITE, f, lo / 4096, 0));
    mergeAround(this.m, mm, addr, addr + (hi - lo));
    this.stats.inferredExecVmas++;
    this.stats.inferredFaults++;
    return addr + (off - lo);
  }

  // What the replay inferred that the trace does not show (see the header):
  // the paths that named an <fdN:PID> file and the files execve mapped
  // that faults placed, each with the number of address spaces it was
  // inferred in, most first.
  inferred(): { fdFiles: [string, number][]; execFiles: [string, number][] } {
    const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return { fdFiles: sorted(this.inferredPaths.fd), execFiles: sorted(this.inferredPaths.exec) };
  }

  private touchPolicy(p: Proc, c: number, addr: number, len: number, writableAnon: boolean): void {
    const t = this.opts.touch;
    if (t.kind === "none" || !writableAnon) return;
    const pages = t.kind === "writable" ? len / 4096 : Math.min(t.pages, len / 4096);
    let k = 0;
    while (k < pages) {
      const res = this.access(p, c, addr + k++ * 4096, true);
      if (res === "livelock") break; // the thread never gets past it (reported once)
    }
    this.stats.touches += k;
  }

  counters(): Counters {
    return snapshotCounters(this.m.counters);
  }
}

// Counts of everything that can change what the invariant checks read: entry
// stores and atomics, table and frame allocation, folio counters, TLB fills,
// hardware A/D updates, flushes, TLBIs and ASID rollovers, and the set of
// address spaces. Each only grows, so equal sums mean nothing happened.
function stateSignature(m: Machine): number {
  const c = m.counters;
  return (
    c.pteWrites +
    c.pteAtomics +
    c.folioAtomics +
    c.ptAlloc +
    c.ptFree +
    c.pagesAlloc +
    c.pagesFree +
    c.tlbMisses +
    c.hwAdUpdates +
    c.tlbFlushesPage +
    c.tlbFlushesFull +
    c.tlbiVale1is +
    c.tlbiVae1is +
    c.tlbiRvale1is +
    c.tlbiRvae1is +
    c.tlbiAside1is +
    c.tlbiVmalle1is +
    c.asidRollovers +
    m.mms.length
  );
}
