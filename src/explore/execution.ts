// One execution of a concurrency scenario under a schedule: the model's
// kernel paths run as generators (one per modelled thread); every yield and
// every nested point is a decision point where the chooser picks which
// thread runs next. Implements the Interleaver the kernel paths call for
// locks, RCU, IRQs and IPIs. Invariants are checked after every step.
// No Node APIs.

import { EV_LOCK, EV_VIOLATION, type LockEvent } from "../core/events.js";
import type { RecordedEvent, Recorder } from "../core/record.js";
import { checkContpte } from "../core/arch/arm64/contpte_check.js";
import { TLB_D, TLB_W } from "../core/hw/tlb.js";
import { KSWAPD_NAME } from "./kswapd.js";
import { S_WALK, speculativeFill, speculativeFillChanges } from "../core/hw/walker.js";
import { checkAccounting, checkMappedBeyondEof, checkPins, checkTlbs, checkWritableInVma, scanPresentPtes, pteTableSlots } from "../core/check.js";
import { PG_ANON, PG_DIRTY, PG_FREE, PG_ZERO } from "../core/mm/physmem.js";
import { type BalanceStat, reclaimBlocker } from "../core/mm/kswapd.js";
import { freePages } from "../core/mm/page_alloc.js";
import { swapKey } from "../core/mm/swap.js";
import type { Cpu, Machine, Violation } from "../core/machine.js";
import type { KGen } from "../core/mm/memory.js";
import { TBL_FREE, TBL_LIVE, type TableAccessCheck } from "../core/mm/pgtable.js";
import type { GupPin } from "../core/mm/gup.js";
import type { FileObj, Mm } from "../core/mm/types.js";
import { idxAt } from "../core/geometry.js";
import {
  type Interleaver,
  isSpinSite,
  LK_ANON_VMA,
  LK_FOLIO,
  LK_IMMAP,
  LK_INODE,
  LK_MMAP,
  LK_PMD,
  LK_PTL,
  LOCK_NAMES,
  lockKey,
  siteName,
} from "../core/sync.js";
import { type Footprint, loc, mix53, newFootprint, Tracker } from "./track.js";
import type { Speculation } from "./speculate.js";

// A range being zapped: start, end, and the pages stored to meanwhile.
export type ZapRange = [number, number, Set<number>];

// Choices of a speculative fill (speculate.ts): SPEC_BASE + cpu * slots + k
// for candidate k on that CPU, after every thread id and the RCU agent's.
// Near misses (Execution.onHazard): a check passed only for a reason a
// changed kernel path may lose. Numbered from 1; HAZARDS[h - 1] names h.
export const HAZARDS = [
  "cow copy of a page another CPU caches read-only",
  "cow copy of a page another CPU caches while its thread is in the kernel",
  "stale TLB entry at a call's return, its PTE under another thread's lock",
  "stale TLB entry at a call's return, reclaim's deferred flush owes it",
  "stale TLB entry at a call's return, another thread's mmu_gather owes it",
  "dirty bit mapped only by a table under another thread's PTE lock",
] as const;
const HZ_COW_SOURCE_CACHED = 1;
const HZ_COW_SOURCE_IN_KERNEL = 2;
const HZ_STALE_LOCKED = 3;
const HZ_STALE_RECLAIM = 4;
const HZ_STALE_GATHER = 5;
const HZ_DIRTY_ELSEWHERE = 6;

export const SPEC_BASE = 1000;
export const isSpec = (id: number): boolean => id >= SPEC_BASE;

const SETUP = 1; // the set-up's data (stamps of threads' stores are larger)
// Two stamps a page, one per half, packed as lo + hi * HALF (stamps stay
// below 2^26); WILD: a half the page's expectation does not constrain.
const HALF = 2 ** 26;
const WILD = HALF - 1;
const pack = (lo: number, hi: number): number => lo + hi * HALF;
const unpack = (c: number): [number, number] => [c % HALF, Math.floor(c / HALF)];
const withHalf = (c: number, half: number, stamp: number): number => (half === 0 ? c - (c % HALF) + stamp : (c % HALF) + stamp * HALF);

export interface XThread {
  id: number;
  name: string;
  cpu: number;
  gen: KGen<unknown> | null; // null for the RCU agent
  done: boolean;
  site: number; // where it stopped: what its next step starts with
  want: number; // lock key it waits for, -1 none
  wantWrite: boolean;
  rcu: number; // rcu_read_lock() depth
  irqOff: boolean;
  onStack: boolean;
  syscalls: number; // > 0 while inside a syscall or fault
  watch: Watch | null;
  killed: string | null; // SIGSEGV and the like: the thread stopped early
  asleep: boolean; // kswapd on kswapd_wait: runs again only when woken
  spinning: boolean; // stopped at a spin site and nobody moved since
  op: string; // the step of the scenario it is running, for traces
  stores: number; // user stores so far (their stamps)
  ownMoves: number; // steps it has taken, and times it went on from a point() of its plain function
  stepNo: number; // scenario steps it has begun (its current step's number + 1)
  // Checked mode: the page tables it obtained in its current step of the
  // scenario (slot -> generation), see TableStore.checkAccess().
  tables: Map<number, number>;
  enterSeq: number; // Machine.batchSeq when its current syscall began
  ptlTaken: Set<number>; // PTE tables whose lock it took in its current syscall
}

interface Watch {
  e: Float64Array;
  i: number;
  slot: number;
  pfn: number;
  seen: Set<number>; // ptep_get() of the entry at every moment of the read, access flag ignored
  dangling: boolean;
  locs: Footprint; // sleep sets: what reading the entry at each moment reads
}

export interface Decision {
  cands: number[]; // enabled thread ids, ascending
  cur: number; // thread that was running (or -1)
  chosen: number;
  fp?: Footprint; // sleep sets: what the chosen thread's transition read and wrote
}

// What the chooser sees at a decision point.
export type Chooser = (d: number, cands: number[], cur: number) => number;

export interface StepRecord {
  thread: number;
  op: string;
  cpu: number;
  site: number;
  depth: number; // nesting: > 0 when run inside another thread's plain function
  before: Snapshot | null;
  after: Snapshot | null;
  // What happened during the step, in order (record.ts), when recorded.
  events: RecordedEvent[];
  start: number; // the recorder's seq when the step began (-1: not recorded)
}

export interface Snapshot {
  ptes: Map<string, string>;
  tlbs: Map<string, string>;
  locks: Map<string, string>;
}

export class Deviation extends Error {}

export class Execution implements Interleaver, TableAccessCheck {
  readonly threads: XThread[] = [];
  readonly rcuAgent: XThread;
  // The hardware agent of speculative fills (its CPU is the one that walks).
  private readonly hw: XThread;
  // Speculative fills offered (null: none) and made so far.
  spec: Speculation | null = null;
  specUsed = 0;
  readonly decisions: Decision[] = [];
  readonly steps: StepRecord[] = [];
  violation: (Violation & { step: number }) | null = null;
  infeasible = false; // the forced schedule named a thread that could not run
  truncated = false; // hit maxSteps
  private lockW = new Map<number, number>(); // key -> writer thread id
  private lockR = new Map<number, number>(); // key -> reader count
  private stack: XThread[] = [];
  private last = -1; // thread that ran last
  stepCount = 0;
  dirtyBefore: Map<number, number> = new Map();
  // Frames of dirtyBefore carried over (under a PTE lock) while a
  // MADV_FREE was in flight: the lazy free may have cleaned them under that
  // lock, which the check sees only when the lock is dropped, perhaps after
  // the MADV_FREE has returned.
  carriedFreeing: Set<number> = new Set();
  // PTE tables of dying processes (exit, the OOM reaper): slot -> the
  // table's generation then (a slot freed and reused maps another mm).
  private dyingTables = new Map<number, number>();

  dying(mm: Mm): void {
    const T = this.m.tables;
    for (const s of pteTableSlots(this.m, mm)) this.dyingTables.set(s, T.gen[s] as number);
  }

  constructor(
    readonly m: Machine,
    private readonly chooser: Chooser,
    private readonly maxSteps: number,
    private readonly record: boolean,
    private readonly snap: ((m: Machine, x: Execution) => Snapshot) | null,
  ) {
    this.rcuAgent = this.mkThread("rcu", -1, null);
    this.hw = this.mkThread("hw", 0, null);
  }

  private mkThread(name: string, cpu: number, gen: KGen<unknown> | null): XThread {
    return {
      id: -1,
      name,
      cpu,
      gen,
      done: false,
      site: 0,
      want: -1,
      wantWrite: false,
      rcu: 0,
      irqOff: false,
      onStack: false,
      syscalls: 0,
      watch: null,
      killed: null,
      asleep: false,
      spinning: false,
      op: "",
      stores: 0,
      ownMoves: 0,
      stepNo: 0,
      tables: new Map(),
      enterSeq: 0,
      ptlTaken: new Set(),
    };
  }

  addThread(name: string, cpu: number, gen: KGen<unknown>): XThread {
    const t = this.mkThread(name, cpu, gen);
    t.id = this.threads.length;
    this.threads.push(t);
    this.rcuAgent.id = this.threads.length;
    return t;
  }

  // ---- kswapd (kswapd.ts) ----------------------------------------------------

  // The kswapd thread under a memory limit (null without one).
  kswapd: XThread | null = null;
  private kswapdFailures = 0; // pgdat->kswapd_failures
  private kswapdWaker = ""; // the allocation that woke it last

  addKswapd(name: string, cpu: number, body: (self: () => XThread) => KGen<unknown>): XThread {
    let self: XThread | null = null;
    self = this.addThread(
      name,
      cpu,
      body(() => self as XThread),
    );
    self.asleep = true;
    self.op = "kswapd_try_to_sleep";
    this.kswapd = self;
    return self;
  }

  // wakeup_kswapd() (mm/vmscan.c) from the allocator's slow path
  // (__alloc_pages_slowpath() -> wake_all_kswapds(), mm/page_alloc.c): an
  // allocation left free memory below the low watermark. A running kswapd
  // is not on its waitqueue; a hopeless node (MAX_RECLAIM_RETRIES balances
  // that freed nothing) is left to direct reclaim, which the model lacks:
  // below the min watermark that allocation cannot make progress.
  wakeupKswapd(): void {
    const k = this.kswapd as XThread;
    const m = this.m;
    const free = freePages(m);
    if (free >= m.watermarks.low) return;
    this.fpAdd(FP_W, X_KSWAPD, 0);
    if (!k.asleep) return;
    const t = this.stack.length > 0 ? this.current : null;
    const who = t === null ? "an allocation" : `${t.name}'s allocation (${t.op})`;
    if (this.kswapdFailures >= MAX_RECLAIM_RETRIES) {
      if (free < m.watermarks.min) this.outOfMemory(t ?? k, `${who} below the min watermark; kswapd gave up (${MAX_RECLAIM_RETRIES} balances freed nothing)`);
      return;
    }
    this.kswapdWaker = who;
    k.asleep = false;
  }

  // balance_pgdat() returned: prepare_kswapd_sleep() holds when free memory
  // is above the high watermark or the balance freed nothing (then, below
  // the min watermark, the allocation that woke kswapd cannot make
  // progress: out of memory, where the kernel would OOM-kill a process).
  kswapdBalanced(t: XThread, stat: BalanceStat): void {
    const m = this.m;
    this.fpAdd(FP_W, X_KSWAPD, 0);
    this.kswapdFailures = stat.reclaimed > 0 ? 0 : this.kswapdFailures + 1;
    const free = freePages(m);
    if (free >= m.watermarks.high) t.asleep = true;
    else if (stat.reclaimed === 0) {
      if (free < m.watermarks.min) this.outOfMemory(t, `kswapd, woken by ${this.kswapdWaker}, freed nothing more`);
      t.asleep = true;
    }
    t.op = "kswapd_try_to_sleep";
  }

  private outOfMemory(t: XThread, why: string): void {
    const m = this.m;
    const what = reclaimBlocker(m);
    this.fail({
      invariant: "out-of-memory",
      cpu: t.cpu,
      message: `out of memory: ${m.phys.allocated + m.reservedPages} of the ${m.config.memoryPages} pages of machine.memory in use${m.reservedPages > 0 ? ` (${m.reservedPages} by the rest of the system, machine.headroom)` : ""}, ${why} (${what}); the kernel would OOM-kill a process here`,
    });
  }

  get current(): XThread {
    return this.stack[this.stack.length - 1] as XThread;
  }

  // ---- Interleaver -------------------------------------------------------

  // A thread going on from a point() of its plain function is no step
  // (stepCount), but it is progress: a retrying thread interleaved with it
  // is not alone (a fault waiting on a swap-in beside a contpte unfold).
  othersSteps(): number {
    return this.stepCount + this.pointMoves - this.current.ownMoves;
  }
  private pointMoves = 0;

  lock(kind: number, id: number, write: boolean, site: number): number {
    const t = this.current;
    t.want = lockKey(kind, id);
    t.wantWrite = write;
    return site;
  }
  unlock(kind: number, id: number): void {
    const key = lockKey(kind, id);
    if ((this.m.evMask & EV_LOCK) !== 0) this.lockEvent("release", key);
    if (kind === LK_PTL) this.current.ptlTaken.add(id);
    if (this.lockW.get(key) === this.current.id) {
      this.lockW.delete(key);
      this.fpAdd(FP_W, X_LOCK_W, key);
    } else {
      this.fpAdd(FP_I, X_LOCK_R, key);
      const r = (this.lockR.get(key) ?? 0) - 1;
      if (r < 0) throw new Error(`model bug: ${this.current.name} releases ${LOCK_NAMES[kind]} ${id} it does not hold`);
      if (r === 0) this.lockR.delete(key);
      else this.lockR.set(key, r);
    }
  }
  downgrade(kind: number, id: number): void {
    const key = lockKey(kind, id);
    if (this.lockW.get(key) !== this.current.id) throw new Error("model bug: downgrade of a lock not held for writing");
    if ((this.m.evMask & EV_LOCK) !== 0) this.lockEvent("downgrade", key);
    this.lockW.delete(key);
    this.lockR.set(key, (this.lockR.get(key) ?? 0) + 1);
    this.fpAdd(FP_W, X_LOCK_W, key);
    this.fpAdd(FP_I, X_LOCK_R, key);
  }
  trylock(kind: number, id: number): boolean {
    const key = lockKey(kind, id);
    const free = !this.lockW.has(key) && !this.lockR.has(key);
    this.tracker?.note(free ? 1 : 2);
    this.fpAdd(FP_W, X_LOCK_W, key);
    this.fpAdd(FP_R, X_LOCK_R, key);
    if (free) this.lockW.set(key, this.current.id);
    if ((this.m.evMask & EV_LOCK) !== 0) this.lockEvent(free ? "take" : "trylock-failed", key);
    return free;
  }
  trylockRead(kind: number, id: number): boolean {
    const key = lockKey(kind, id);
    let free = !this.lockW.has(key);
    if (free) for (const t of this.threads) if (t.want === key && t.wantWrite && !t.done) free = false;
    this.tracker?.note(free ? 1 : 2);
    this.fpAdd(FP_R, X_LOCK_W, key);
    if (free) {
      this.fpAdd(FP_I, X_LOCK_R, key);
      this.lockR.set(key, (this.lockR.get(key) ?? 0) + 1);
    }
    if ((this.m.evMask & EV_LOCK) !== 0) this.lockEvent(free ? "take-read" : "trylock-failed", key);
    return free;
  }
  point(site: number): void {
    const t = this.current;
    const saved = t.site;
    t.site = site;
    this.tracker?.suspend();
    this.quiet++;
    for (;;) {
      if (this.violation !== null || this.infeasible) break;
      const cands = this.enabled();
      cands.push(t.id);
      cands.sort((a, b) => a - b);
      this.addSpec(cands);
      const c = this.decide(cands, cands.includes(this.last) ? this.last : t.id);
      if (c < 0) break;
      if (c === t.id) {
        this.last = t.id;
        this.pointMoves++;
        t.ownMoves++;
        this.progress(t);
        break;
      }
      if (isSpec(c)) this.specStep(c);
      else this.step(this.byId(c));
    }
    this.quiet--;
    this.tracker?.leave();
    t.site = saved;
  }

  // t moved on: threads spinning on a retry may try again.
  private progress(t: XThread): void {
    if (t.spinning) return;
    this.movedAt++;
    for (const u of this.threads) if (u !== t) u.spinning = false;
  }
  private movedAt = 0; // counts steps that were not a retry
  private unspunAt = -1;
  checking(on: boolean): void {
    this.quiet += on ? 1 : -1;
    if (on) this.tracker?.suspend();
    else this.tracker?.leave();
  }
  private quiet = 0; // > 0 while explorer code (a check, a nested decision) runs inside a thread's step
  // Read-side sections and IRQs-off regions hold off grace periods (and
  // IRQs-off ones IPIs): counted, so that two threads' entries commute.
  rcuReadLock(): void {
    this.current.rcu++;
    this.fpAdd(FP_I, X_READERS, 0);
  }
  rcuReadUnlock(): void {
    this.current.rcu--;
    this.fpAdd(FP_I, X_READERS, 0);
  }
  irqDisable(): void {
    this.current.irqOff = true;
    this.fpAdd(FP_I, X_READERS, 0);
    this.fpAdd(FP_I, X_IRQS, 0);
  }
  irqEnable(): void {
    this.current.irqOff = false;
    this.fpAdd(FP_I, X_READERS, 0);
    this.fpAdd(FP_I, X_IRQS, 0);
  }
  ipiSync(site: number): void {
    const t = this.current;
    const saved = t.site;
    t.site = site;
    this.fpAdd(FP_R, X_IRQS, 0);
    const before = this.decisions.length;
    this.tracker?.suspend();
    this.quiet++;
    for (;;) {
      if (this.violation !== null || this.infeasible) break;
      const holders = this.threads.filter((u) => u.irqOff && u !== t);
      if (holders.length === 0) break;
      // The IPI cannot be taken until those CPUs enable interrupts.
      const cands = holders.filter((u) => !u.onStack && this.canRun(u)).map((u) => u.id);
      if (cands.length === 0) {
        this.fail({ invariant: "deadlock", message: `${t.name} waits for an IPI that a CPU with interrupts disabled can never take` });
        break;
      }
      const c = this.decide(cands, t.id);
      if (c < 0) break;
      this.step(this.byId(c));
    }
    this.quiet--;
    this.tracker?.leave();
    t.site = saved;
    // The caller goes on inside the last holder's transition: no footprint
    // names that, so it depends on everything.
    if (this.decisions.length > before && this.fp !== null) this.fp.global = true;
  }
  watch(ev: Float64Array, i: number, slot: number): void {
    const t = this.current;
    this.tracker?.suspend();
    // The explorer reads the entry itself (observe()), not as the reader.
    const e = this.m.tables.unchecked(ev);
    t.watch = { e, i, slot, pfn: this.m.tables.pfn[slot] as number, seen: new Set(), dangling: false, locs: newFootprint() };
    if (this.fp !== null && this.tracker !== null) t.watch.locs.r.add(this.tracker.locOfElement(e, i));
    if (this.m.tables.state[slot] === TBL_FREE)
      this.fail({ invariant: "walk-freed-table", cpu: t.cpu, message: `${t.name} on CPU${t.cpu} maps PTE table pfn ${t.watch.pfn}, which is already free` });
    this.observe();
    this.tracker?.leave();
  }

  // ---- TableAccessCheck (checked page-table access) --------------------------

  // Installs the checked accessors on the machine's tables (the invariant
  // checks are on): pt-out-of-bounds and pt-use-after-free.
  checkTables(): void {
    this.m.tables.checkAccess(this);
  }
  isLiveRoot(slot: number): boolean {
    for (const mm of this.m.mms) if (mm.alive && mm.pgd === slot) return true;
    return false;
  }
  held(): Map<number, number> | null {
    if (this.quiet > 0 || this.inKernel === null) return null;
    return this.inKernel.tables;
  }
  private inKernel: XThread | null = null; // whose generator code runs (not the explorer's)
  // Names the kernel function by the site the thread last stopped at (the
  // access is in that function or one it calls before its next point), then
  // stops the thread: the bad access is not made.
  bad(invariant: "pt-out-of-bounds" | "pt-use-after-free", message: string): boolean {
    if (this.ignore.has(invariant) || this.halted) return false;
    const t = this.current;
    const at = siteName(t.site);
    const fn = t.site === 0 ? t.op : at.split(": ")[0];
    this.fail({ invariant, cpu: t.cpu, message: `${fn}: ${t.name} on CPU${t.cpu} ${message} (${t.op === "" ? "" : `${t.op}; `}last point: ${at})` });
    throw new Deviation(`${invariant} in ${fn}`);
  }

  // ---- scheduling ----------------------------------------------------------

  private byId(id: number): XThread {
    return id === this.rcuAgent.id ? this.rcuAgent : (this.threads[id] as XThread);
  }

  // Another thread of t's CPU pins it (pinsCpu()).
  private cpuHeld(t: XThread): boolean {
    for (const u of this.threads) if (u !== t && u.cpu === t.cpu && this.pinsCpu(u)) return true;
    return false;
  }

  private canRun(t: XThread): boolean {
    if (t.done || t.onStack || t.spinning || t.asleep) return false;
    if (t.want < 0) return true;
    if (this.lockW.has(t.want)) return false;
    return !t.wantWrite || !this.lockR.has(t.want);
  }

  // A thread that cannot lose its CPU: holding or spinning for a spinlock
  // (the PTE lock: preemption is off), with IRQs off, or in the middle of a
  // hardware walk or a lockless read. No other thread of that CPU runs until
  // it leaves that section, as on a kernel where only sleeping locks and
  // preemptible code give the CPU away. (Two threads of a scenario may share
  // a CPU; without this the explorer switched between them anywhere and
  // found what no CPU can do.)
  private pinsCpu(t: XThread): boolean {
    if (t.done || t.killed !== null) return false;
    if (t.irqOff || t.watch !== null || t.site === S_WALK) return true;
    if (t.want >= 0 && Math.floor(t.want / 2 ** 32) === LK_PTL) return true;
    for (const [k, id] of this.lockW) if (id === t.id && Math.floor(k / 2 ** 32) === LK_PTL) return true;
    return false;
  }

  // Enabled threads not on the stack (ascending ids), the RCU agent last.
  private enabled(): number[] {
    const out: number[] = [];
    for (const t of this.threads) if (this.canRun(t) && !this.cpuHeld(t)) out.push(t.id);
    // A grace period can end when no CPU is inside a read-side section (an
    // IRQs-off region is one too, since the RCU flavours were consolidated).
    if (this.m.rcuPending.length > 0 && !this.threads.some((t) => t.rcu > 0 || t.irqOff)) out.push(this.rcuAgent.id);
    return out;
  }

  // ptlab hunt: each decision's chosen thread and the thread that was
  // running (coverage of interleaving sites and preemption pairs).
  onDecide: ((chosen: number, cur: number) => void) | null = null;
  // ptlab hunt: a near miss, where a check held only for a reason a changed
  // kernel path may lose (HAZARDS: a stale TLB entry excused by a flush
  // still owed, a dirty bit carried by a PTE-lock holder, a COW copy of a
  // page another CPU still translates), with the running thread's site.
  onHazard: ((hazard: number, site: number) => void) | null = null;
  private hazard(h: number): void {
    if (this.onHazard !== null) this.onHazard(h, this.stack.length > 0 ? this.current.site : 0);
  }

  // Set by a chooser that has seen enough (a shard's key decided against
  // it): no further decisions; the execution unwinds and is discarded.
  halted = false;

  private decide(cands: number[], cur: number): number {
    if (this.halted) return -1;
    // The step bound holds inside a step too: nested points (point(),
    // ipiSync()) step other threads, and two of them can keep each other
    // going there forever (a fault retrying beside kswapd clearing young
    // bits, which hunt met: 300,000 decisions and a heap out of memory).
    // The execution is cut off; what its threads do while they unwind is
    // not checked (fail()).
    if (this.stepCount >= this.maxSteps) {
      this.truncated = true;
      return -1;
    }
    this.closeFootprint();
    const d = this.decisions.length;
    this.observe();
    // A nested point comes in the middle of a step: hash what it stored so far.
    this.tracker?.rescan();
    if (this.stateHook !== null && this.tracker !== null && this.stateHook(this.stateKey(this.tracker), cur, d, this.preempted)) {
      this.halted = true;
      this.pruned = true;
      return -1;
    }
    const c = this.chooser(d, cands, cur);
    if (c < 0 && this.halted) {
      this.sleepBlocked = true;
      return -1;
    }
    if (c < 0 || !cands.includes(c)) {
      this.infeasible = true;
      return -1;
    }
    this.decisions.push({ cands, cur, chosen: c });
    // A speculative fill is hardware beside the schedule: no preemption.
    if (cur >= 0 && c !== cur && cands.includes(cur) && !isSpec(c)) this.preempted++;
    if (this.onDecide !== null) this.onDecide(c, cur);
    this.openFootprint(c);
    return c;
  }

  // ---- footprints (sleep sets, explore.ts) ------------------------------------------
  // With `por` on, each decision's transition (the chosen thread running
  // until the next decision) records what it read and wrote: the model's
  // state through the tracker, the explorer's own (locks, RCU readers, user
  // data) here.

  por = false;
  private fp: Footprint | null = null;
  sleepBlocked = false; // every enabled thread was asleep: the execution ends

  private openFootprint(c: number): void {
    if (!this.por) return;
    this.fp = newFootprint();
    if (this.tracker !== null) this.tracker.fp = this.fp;
    // A lockless reader's state changes with the entry it watches at every
    // moment, so its transitions read that entry.
    const w = this.byId(c).watch;
    if (w !== null) for (const l of w.locs.r) this.fp.r.add(l);
  }

  // The running transition ends (a decision point, or the execution's end).
  closeFootprint(): void {
    if (this.fp === null) return;
    const last = this.decisions[this.decisions.length - 1] as Decision;
    const w = this.byId(last.chosen).watch;
    if (w !== null) for (const l of w.locs.r) this.fp.r.add(l);
    last.fp = this.fp;
    this.fp = null;
    if (this.tracker !== null) this.tracker.fp = null;
  }

  private fpAdd(kind: number, what: number, a: number, b = 0): void {
    const f = this.fp;
    if (f === null) return;
    const l = loc(X_ID, mix53(mix53(what, a), b) % 4294967296);
    (kind === FP_R ? f.r : kind === FP_W ? f.w : f.i).add(l);
  }

  // ---- state cache -----------------------------------------------------------
  // With the cache on, a Tracker hashes the model's shared state and what
  // each thread read (track.ts). With the explorer's own state (locks, user
  // data, each thread's scheduling fields) that names the whole state: two
  // schedules reaching the same key have the same future.

  private tracker: Tracker | null = null;
  preempted = 0; // preemptions so far
  pruned = false; // stopped at a state the hook had seen
  // Asked at every decision; true: stop here, the subtree is covered.
  stateHook: ((key: number, cur: number, d: number, preempted: number) => boolean) | null = null;

  enableTracking(roots: object[], skip: object[], hashing: boolean): void {
    this.tracker = new Tracker(roots, new Set<object>([...skip, this]), this.threads.length);
    this.tracker.hashing = hashing;
    this.tracked = { roots, skip: new Set<object>([...skip, this]) };
  }
  // What the tracker covers (tests walk it).
  tracked: { roots: object[]; skip: Set<object> } | null = null;

  // Tests: the execution ran to its end (no halt, cut-off or violation).
  ranToEnd(): boolean {
    return !this.halted && !this.truncated && !this.infeasible && this.violation === null;
  }
  // The explorer's part of the state key (locks, user data, and unless
  // `reads` is false what each thread read), for tests that compare the
  // model's part structurally. Read hashes include the ids of objects read,
  // which follow creation order: two orders of independent transitions that
  // create objects give them different ids.
  explorerKey(reads = true): number {
    return this.ownKey(this.tracker as Tracker, 0, reads);
  }

  private stateKey(tr: Tracker): number {
    return this.ownKey(tr, mix53(tr.h1, tr.h2), true);
  }

  private ownKey(tr: Tracker, h: number, reads: boolean): number {
    h = mix53(h, this.stepCount);
    if (this.kswapd !== null) h = mix53(h, 11 + this.kswapdFailures);
    h = mix53(h, this.unspunAt === this.movedAt ? 1 : 2);
    // The fills left (a state reached with fewer has a smaller future), and
    // where a fill would be offered again (addSpec()).
    if (this.spec !== null) {
      h = mix53(h, 3 + this.specUsed);
      for (const x of this.specPrev) h = mix53(h, Number.isNaN(x) ? 1 : x);
    }
    for (const t of this.stack) h = mix53(h, 1000 + t.id);
    for (const t of this.threads) {
      if (reads) {
        h = mix53(h, tr.hist[2 * t.id] as number);
        h = mix53(h, tr.hist[2 * t.id + 1] as number);
      }
      h = mix53(
        h,
        (t.done ? 1 : 0) |
          (t.wantWrite ? 2 : 0) |
          (t.irqOff ? 4 : 0) |
          (t.onStack ? 8 : 0) |
          (t.spinning ? 16 : 0) |
          (t.killed !== null ? 32 : 0) |
          (t.asleep ? 64 : 0),
      );
      h = mix53(h, t.site);
      h = mix53(h, t.want);
      h = mix53(h, t.rcu * 65536 + t.syscalls);
      h = mix53(h, t.stores);
      const w = t.watch;
      if (w !== null) {
        h = mix53(h, w.slot * 65536 + w.i);
        h = mix53(h, w.pfn * 2 + (w.dangling ? 1 : 0));
        h = mix53(
          h,
          unordered(w.seen, (v) => mix53(1, v)),
        );
      }
    }
    // The explorer's own maps, whatever order their entries came in (two
    // orders of independent transitions reach one state).
    h = mix53(
      h,
      unordered(this.lockW, ([k, v]) => mix53(mix53(2, k), v + 7)),
    );
    h = mix53(
      h,
      unordered(this.lockR, ([k, v]) => mix53(mix53(3, k), -v)),
    );
    h = mix53(
      h,
      unordered(this.content, ([k, v]) => mix53(mix53(4, k), v)),
    );
    h = mix53(
      h,
      unordered(this.expected, ([mm, e]) =>
        mix53(
          5e6 + mm,
          unordered(e, ([k, v]) => mix53(mix53(5, k), v)),
        ),
      ),
    );
    h = mix53(
      h,
      unordered(this.zaps, ([mm, z]) =>
        mix53(
          6e6 + mm,
          unordered(z, ([a, b]) => mix53(mix53(6, a), b)),
        ),
      ),
    );
    h = mix53(
      h,
      unordered(this.pinWatch, ([t, w]) =>
        mix53(
          9e6 + t * 1e4 + w.mm,
          unordered(w.ranges, ([a, b]) => mix53(mix53(9, a), b)),
        ),
      ),
    );
    h = mix53(
      h,
      unordered(this.dirtyBefore, ([pfn, slot]) => mix53(7, pfn * 65536 + slot + (this.carriedFreeing.has(pfn) ? 2 ** 40 : 0))),
    );
    h = mix53(
      h,
      unordered(this.dyingTables, ([slot, gen]) => mix53(8, slot * 65536 + gen)),
    );
    return h;
  }

  // Lockless readers: remember what ptep_get() would return now.
  private observe(): void {
    const A = this.m.arch;
    for (const t of this.threads) {
      const w = t.watch;
      if (w === null) continue;
      const rec = this.por && this.tracker !== null;
      if (rec) this.tracker?.recordInto(w.locs);
      const T = this.m.tables;
      if (T.state[w.slot] === TBL_FREE || T.pfn[w.slot] !== w.pfn) w.dangling = true;
      else w.seen.add(A.pteMkold(A.ptepGet(this.m, w.e, w.i)));
      if (rec) this.tracker?.endRecord();
    }
  }

  ignore: ReadonlySet<string> = new Set();
  fail(v: Violation): void {
    // After a halt or a cut-off the execution only unwinds: its schedule ends before this.
    if (this.ignore.has(v.invariant) || this.halted || this.truncated) return;
    if (this.violation === null) {
      this.violation = { ...v, step: this.stepCount };
      const b = this.m.events;
      if (b !== null && (b.mask & EV_VIOLATION) !== 0) b.emit({ kind: "violation", cpu: v.cpu ?? this.m.curCpu, invariant: v.invariant, message: v.message });
    }
  }

  // The recorder of a counterexample replayed for display (record.ts).
  recorder: Recorder | null = null;
  // A step's record when recording (a replay for display), the state before it.
  private beginRecord(thread: number, op: string, cpu: number, site: number): StepRecord | null {
    if (!this.record) return null;
    return {
      thread,
      op,
      cpu,
      site,
      depth: this.stack.length,
      before: this.snap ? this.snap(this.m, this) : null,
      after: null,
      events: [],
      start: this.recorder?.next ?? -1,
    };
  }
  private lockEvent(op: LockEvent["op"], key: number): void {
    const b = this.m.events;
    if (b !== null && (b.mask & EV_LOCK) !== 0) b.emit({ kind: "lock", cpu: this.m.curCpu, op, lock: Math.floor(key / 2 ** 32), id: key % 2 ** 32 });
  }

  // Runs the execution to the end, a violation, or the step bound.
  run(): void {
    for (;;) {
      if (this.violation !== null || this.infeasible) return;
      let cands = this.enabled();
      if (cands.length === 0 && this.threads.some((t) => t.spinning)) {
        // Only retry loops are left: let them look again. If they already
        // did since anything else moved, nothing can ever change: livelock.
        if (this.unspunAt === this.movedAt) {
          const who = this.threads.filter((t) => t.spinning);
          this.fail({ invariant: "livelock", message: `${who.map((t) => `${t.name} retries at ${siteName(t.site)}`).join("; ")}, and nothing else can run` });
          return;
        }
        this.unspunAt = this.movedAt;
        for (const t of this.threads) t.spinning = false;
        cands = this.enabled();
      }
      if (cands.length === 0) {
        // A sleeping kswapd waits for an allocation, not for a thread.
        const stuck = this.threads.filter((t) => !t.done && !t.asleep);
        if (stuck.length > 0)
          this.fail({ invariant: "deadlock", message: `no thread can run: ${stuck.map((t) => `${t.name} waits at ${siteName(t.site)}`).join("; ")}` });
        return;
      }
      const cur = this.last >= 0 && cands.includes(this.last) ? this.last : -1;
      this.addSpec(cands);
      const c = this.decide(cands, cur);
      if (c < 0) return;
      if (isSpec(c)) this.specStep(c);
      else this.step(this.byId(c));
      if (this.stepCount >= this.maxSteps) {
        this.truncated = true;
        return;
      }
    }
  }

  private step(t: XThread): void {
    const m = this.m;
    this.stepCount++;
    t.ownMoves++;
    if (t.watch?.dangling && !this.ignore.has("walk-freed-table")) {
      this.fail({
        invariant: "walk-freed-table",
        cpu: t.cpu,
        message: `${t.name} on CPU${t.cpu} loads from PTE table pfn ${t.watch.pfn}, which was freed while it walked it (${siteName(t.site)})`,
      });
      return;
    }
    const rec = this.beginRecord(t.id, t.op, t.cpu, t.site);
    const outerEvents = this.recorder?.target ?? null;
    if (this.recorder !== null && rec !== null) this.recorder.target = rec.events;
    if (t.want >= 0) {
      if ((m.evMask & EV_LOCK) !== 0) this.lockEvent(t.wantWrite ? "take" : "take-read", t.want);
      if (t.wantWrite) {
        this.lockW.set(t.want, t.id);
        this.fpAdd(FP_W, X_LOCK_W, t.want);
        this.fpAdd(FP_R, X_LOCK_R, t.want);
      } else {
        this.lockR.set(t.want, (this.lockR.get(t.want) ?? 0) + 1);
        this.fpAdd(FP_R, X_LOCK_W, t.want);
        this.fpAdd(FP_I, X_LOCK_R, t.want);
      }
      t.want = -1;
    }
    if (t === this.rcuAgent) {
      this.fpAdd(FP_R, X_READERS, 0);
      this.tracker?.agent();
      m.rcuGracePeriod();
      this.tracker?.leave();
    } else {
      const savedCpu = m.curCpu;
      m.curCpu = t.cpu;
      t.onStack = true;
      this.stack.push(t);
      let r: IteratorResult<number, unknown>;
      this.tracker?.enter(t.id);
      const quiet = this.quiet;
      const inKernel = this.inKernel;
      this.quiet = 0;
      this.inKernel = t;
      try {
        r = (t.gen as KGen<unknown>).next();
      } catch (e) {
        if (!(e instanceof Deviation)) throw e;
        r = { done: true, value: undefined };
        t.killed = e.message;
      } finally {
        this.quiet = quiet;
        this.inKernel = inKernel;
        this.tracker?.leave();
        this.stack.pop();
        t.onStack = false;
        m.curCpu = savedCpu;
      }
      if (r.done) t.done = true;
      else {
        t.site = r.value;
        t.spinning = isSpinSite(r.value);
      }
    }
    this.progress(t);
    this.last = t.id;
    this.tracker?.rescan();
    if (rec !== null) {
      rec.after = this.snap ? this.snap(m, this) : null;
      this.steps.push(rec);
    }
    this.check(t);
    if (this.recorder !== null && outerEvents !== null) this.recorder.target = outerEvents;
  }

  // ---- speculative fills (speculate.ts) ---------------------------------------
  // The choices at a decision: each candidate page on each CPU with its mm
  // loaded where a walk would change something (a TLB or walk-cache entry,
  // an Access flag), while the budget lasts and a thread still has steps (a
  // fill after the last kernel step could only cache what the tables say).
  // Appended after the threads' ids (ascending), so the search tries them
  // last.
  //
  // Reduction: a fill that sets no Access flag writes only CPU c's TLB and
  // walk cache, and reads the page's table path and c's entries for it.
  // While none of those change and c's TLB sees no invalidation, a fill
  // made later reaches the state an earlier one reaches (what runs in
  // between does not look at c's TLB except through c's own accesses,
  // which would fill the same entries). So it is offered at the first
  // decision of each such stretch only (specSig()). A fill that would set
  // AF is offered at every decision: kernel code reads the flag.
  private specPrev: number[] = [];

  private addSpec(cands: number[]): void {
    const s = this.spec;
    if (s === null || this.specUsed >= s.budget) return;
    if (!this.threads.some((t) => !t.done)) return;
    const m = this.m;
    this.tracker?.suspend();
    const at: ({ mm: Mm; vpn: number } | null)[] = [];
    const seen = new Set<string>();
    for (let k = 0; k < s.slots; k++) {
      const r = s.resolve(k);
      const key = r === null ? "" : `${r.mm.id}:${r.vpn}`;
      at.push(r === null || seen.has(key) ? null : r);
      seen.add(key);
    }
    for (let c = 0; c < m.cpus.length; c++) {
      const lm = m.cpus[c]?.loadedMm ?? null;
      for (let k = 0; k < s.slots; k++) {
        const r = at[k] ?? null;
        const i = c * s.slots + k;
        if (lm === null || r === null || r.mm !== lm) {
          this.specPrev[i] = Number.NaN;
          continue;
        }
        const sig = this.specSig(c, r.mm, r.vpn);
        const prev = this.specPrev[i];
        this.specPrev[i] = sig;
        if ((sig !== prev || this.specOld) && speculativeFillChanges(m, c, r.mm, r.vpn)) cands.push(SPEC_BASE + i);
      }
    }
    this.tracker?.leave();
  }

  // What a fill of vpn by CPU c reads, hashed: the entries on the page's
  // table path in memory, c's ASID, its TLB entries and deepest walk-cache
  // entry for the page, and its invalidation count. specOld: the leaf is
  // valid and old (the fill would set AF).
  private specOld = false;
  private specSig(c: number, mm: Mm, vpn: number): number {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    const cpu = m.cpus[c] as Cpu;
    const tlb = cpu.tlb;
    let h = mix53(mix53(mix53(1, mm.id), vpn), cpu.asid);
    h = mix53(h, tlb.inval);
    this.specOld = false;
    let slot = mm.pgd;
    for (let level = A.levels - 1; level >= 0; level--) {
      const v = T.get(slot * T.ptrs + idxAt(m.geo, vpn, level));
      h = mix53(h, v % 2 ** 52);
      h = mix53(h, Math.floor(v / 2 ** 52));
      if (v === 0) break;
      if (level > 0 && A.entryIsTable(v)) {
        slot = T.slotOfPfn(A.ptePfn(v));
        if (slot < 0) break;
        continue;
      }
      this.specOld = A.leafPerm(v) >= 0 && !A.pteYoung(v);
      break;
    }
    const i = tlb.lookup(vpn, cpu.asid);
    h = mix53(h, i < 0 ? -1 : (tlb.pfn[i] as number) * 256 + (tlb.perm[i] as number));
    const hh = tlb.lookupHuge(vpn, cpu.asid);
    h = mix53(h, hh < 0 ? -1 : ((tlb.hpfn[hh] as number) * 256 + (tlb.hperm[hh] as number)) * 64 + (tlb.hshift[hh] as number));
    const p = tlb.lookupPsc(vpn, cpu.asid);
    h = mix53(h, p < 0 ? -1 : (tlb.ptbl[p] as number) * 8 + (tlb.plevel[p] as number));
    return h;
  }

  // A speculative fill as one step of the hardware agent: the walk, then
  // the checks as after any step. The running thread stays the running one.
  private specStep(id: number): void {
    const m = this.m;
    const s = this.spec as Speculation;
    const c = Math.floor((id - SPEC_BASE) / s.slots);
    const k = (id - SPEC_BASE) % s.slots;
    const r = s.resolve(k);
    if (r === null) throw new Error("model bug: a speculative fill chosen for a page that is gone");
    const hw = this.hw;
    hw.cpu = c;
    hw.site = s.site;
    hw.op = s.describe(k);
    this.stepCount++;
    this.specUsed++;
    // Every candidate is offered again: a second fill in the stretch of the
    // first must follow it somewhere (the other order skips it as well).
    this.specPrev.fill(Number.NaN);
    const rec = this.beginRecord(id, hw.op, c, hw.site);
    const outerEvents = this.recorder?.target ?? null;
    if (this.recorder !== null && rec !== null) this.recorder.target = rec.events;
    this.tracker?.agent();
    speculativeFill(m, c, r.mm, r.vpn);
    this.tracker?.leave();
    this.progress(hw);
    this.tracker?.rescan();
    if (rec !== null) {
      rec.after = this.snap ? this.snap(m, this) : null;
      this.steps.push(rec);
    }
    this.check(hw);
    if (this.recorder !== null && outerEvents !== null) this.recorder.target = outerEvents;
  }

  // ---- user data -------------------------------------------------------------
  // What user stores wrote: a stamp per half of each frame (0: never written
  // during the exploration), who wrote each stamp, and per address space the
  // stamps each private page should show (its own last stores, or what it
  // inherited at fork). Shared mappings and ranges being zapped are not
  // constrained. Two halves, not one stamp a page: a store lost under a
  // later store to the same page (a page copied while another CPU still
  // wrote the old one) shows in the half the later store did not cover.
  // Both halves of a page are packed in one number (pack()).

  private content = new Map<number, number>();
  // Stamps name their thread and its store count, so that two threads'
  // stores to different pages commute.
  // Stamp 0: zeroes (a page nobody wrote); SETUP: what the sequential
  // set-up left in the anon pages it mapped or swapped out (seedSetup()).
  private writers = new Map<number, string>([
    [0, "nobody (zeroes)"],
    [SETUP, "(set-up)"],
  ]);

  // Before the first step: every anon page the set-up left mapped, and every
  // swap slot in use, holds the set-up's data, not zeroes, so that a page a
  // MADV_DONTNEED should have replaced is told from a fresh one.
  seedSetup(): void {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    const phys = m.phys;
    for (let slot = 0; slot < T.state.length; slot++) {
      const lvl = T.level[slot] as number;
      if (T.state[slot] !== TBL_LIVE || lvl > 1) continue;
      const e = T.chunkOf(slot);
      const b = T.base(slot);
      for (let i = 0; i < T.ptrs; i++) {
        const v = e[b + i] as number;
        if (v === 0 || !A.ptePresent(v) || (lvl === 1 && !A.entryIsLeaf(v))) continue;
        const pfn = A.ptePfn(v);
        if (((phys.flags[phys.folioHead(pfn)] as number) & (PG_ANON | PG_ZERO | PG_FREE)) !== PG_ANON) continue;
        const nr = lvl === 1 ? m.geo.pmdNr : 1;
        for (let k = 0; k < nr; k++) this.content.set(pfn + k, pack(SETUP, SETUP));
      }
    }
    const sw = m.swap;
    if (sw !== null) for (let s = 1; s <= sw.pages; s++) if (sw.allocated(s)) this.content.set(swapKey(s), pack(SETUP, SETUP));
  }
  private expected = new Map<number, Map<number, number>>(); // mm id -> vpn -> stamp

  // The lost-dirty check forgets the folio's pages: the dirty bits it saw
  // (some still carried over a PTE lock another thread holds, which may map
  // the page clean) ended in a write, as folio_mkclean() meant them to.
  folioWritten(head: number, nr: number): void {
    this.fpAdd(FP_W, X_DIRTY_SEEN, head);
    for (let k = 0; k < nr; k++) {
      this.dirtyBefore.delete(head + k);
      this.carriedFreeing.delete(head + k);
    }
  }
  // The allocator handed these frames out again: zeroed (anon pages are
  // cleared, others filled by the copy or read that follows), so what the
  // oracle knew of an earlier life of the frame goes.
  zeroed(pfn: number, nr: number): void {
    for (let k = pfn; k < pfn + nr; k++) if (this.content.delete(k)) this.fpAdd(FP_W, X_CONTENT, k);
  }
  // The lost-write hazard of a COW copy (cow-copy-writable): the old page
  // is read-only in mm's tables, but another CPU that runs a thread of mm
  // in user mode still holds a writable, dirty translation to it (a flush
  // still deferred: fork's until the end of dup_mmap(), which is why fork
  // write-locks each VMA). A store through it after the copy never reaches
  // the copy mm will map. Threads inside a system call or fault cannot
  // store before they return; the faulting CPU's own entry is gone.
  cowCopy(mm: Mm, addr: number, pfn: number): void {
    if (this.ignore.has("cow-copy-writable") || this.violation !== null) return;
    const m = this.m;
    const A = m.arch;
    const vpn = Math.floor(addr / m.geo.pageSize);
    const me = this.current;
    for (const cpu of m.cpus) {
      const c = cpu.id;
      if (c === me.cpu || cpu.running !== mm) continue;
      const user = this.threads.find((u) => u.cpu === c && !u.done && u.syscalls === 0 && !u.asleep && u.gen !== null && u.name !== KSWAPD_NAME);
      if (user === undefined) {
        if (this.onHazard !== null && cpu.tlb.lookup(vpn, cpu.asid) >= 0) this.hazard(HZ_COW_SOURCE_IN_KERNEL);
        continue;
      }
      const t = cpu.tlb;
      let hit = false;
      for (let i = 0; i < t.tag.length && !hit; i++) {
        const key = t.tag[i] as number;
        if (key === 0 || t.vpnOfKey(key) !== vpn || t.pfn[i] !== pfn) continue;
        hit = ((t.perm[i] as number) & (TLB_W | TLB_D)) === (TLB_W | TLB_D) && A.asidReachable(m, c, t.asidOfKey(key)) === mm;
        if (!hit) this.hazard(HZ_COW_SOURCE_CACHED);
      }
      for (let h = 0; h < t.htag.length && !hit; h++) {
        const key = t.htag[h] as number;
        if (key === 0) continue;
        const first = t.hugeFirst(h);
        if (vpn < first || vpn >= first + (t.hpages[h] as number) || (t.hpfn[h] as number) + (vpn - first) !== pfn) continue;
        hit = ((t.hperm[h] as number) & (TLB_W | TLB_D)) === (TLB_W | TLB_D) && A.asidReachable(m, c, t.asidOfKey(key)) === mm;
      }
      if (hit) {
        this.fail({
          invariant: "cow-copy-writable",
          cpu: me.cpu,
          addr: vpn * m.geo.pageSize,
          message: `${me.name}'s wp_page_copy() copies pfn ${pfn} (0x${(vpn * m.geo.pageSize).toString(16)}, mm${mm.id}), which CPU${c}, running ${user.name} in user mode, can still store to through a writable TLB entry: a store after the copy is lost`,
        });
        return;
      }
    }
  }
  copyPage(src: number, dst: number): void {
    this.fpAdd(FP_R, X_CONTENT, src);
    this.fpAdd(FP_W, X_CONTENT, dst);
    const v = this.content.get(src);
    if (v === undefined) this.content.delete(dst);
    else this.content.set(dst, v);
  }

  private expect(mm: Mm): Map<number, number> {
    let e = this.expected.get(mm.id);
    if (e === undefined) {
      e = new Map();
      this.expected.set(mm.id, e);
    }
    return e;
  }

  // half: which half of the page the store wrote (0 or 1).
  userStore(t: XThread, mm: Mm, vpn: number, pfn: number, isPrivate: boolean, half: number): void {
    const stamp = (t.id + 1) * 1048576 + ++t.stores;
    this.writers.set(stamp, `${t.name} (mm${mm.id})`);
    this.content.set(pfn, withHalf(this.content.get(pfn) ?? 0, half, stamp));
    this.fpAdd(FP_W, X_CONTENT, pfn);
    this.fpAdd(FP_R, X_ZAPS, mm.id);
    // A store racing a zap of its page may be discarded with the page.
    const addr = vpn * this.m.geo.pageSize;
    let zapping = false;
    for (const z of this.zaps.get(mm.id) ?? [])
      if (addr >= z[0] && addr < z[1]) {
        zapping = true;
        z[2].add(vpn);
      }
    if (zapping || isPrivate) this.expectWrite(mm.id, vpn);
    if (zapping) this.expected.get(mm.id)?.delete(vpn);
    else if (isPrivate) {
      const e = this.expect(mm);
      e.set(vpn, withHalf(e.get(vpn) ?? pack(WILD, WILD), half, stamp));
    }
  }

  // Who wrote a packed pair of stamps.
  private wrote(c: number): string {
    const [lo, hi] = unpack(c);
    const name = (x: number) => (x === WILD ? "anything" : (this.writers.get(x) ?? "nobody"));
    return lo === hi ? name(lo) : `${name(lo)} in its first half and ${name(hi)} in its second`;
  }
  // Whether a frame's stamps are what the page should show (an unconstrained
  // half matches anything).
  private matches(got: number, want: number): boolean {
    if (got === want) return true;
    const [wl, wh] = unpack(want);
    const [gl, gh] = unpack(got);
    return (wl === WILD || wl === gl) && (wh === WILD || wh === gh);
  }

  // One page's expected stamp changes; the map's key set counts as changed
  // (commutatively) for whoever copies it at fork.
  private expectWrite(mm: number, vpn: number): void {
    this.fpAdd(FP_W, X_EXPECT, mm, vpn);
    this.fpAdd(FP_I, X_EXPECT_ALL, mm);
  }

  // mm id -> ranges being zapped, with the pages stored to meanwhile
  private zaps = new Map<number, ZapRange[]>();
  // Threads in a pin step -> the ranges of their mm that zaps were in
  // flight on or began on since the step began.
  private pinWatch = new Map<number, { mm: number; ranges: [number, number][] }>();
  private truncating = new Map<number, number>(); // file id -> truncations in flight

  // ftruncate() from its i_size write to its return: the file's pages beyond
  // the new end may still be mapped (invariant 11 waits for the return).
  truncBegin(f: FileObj): void {
    this.fpAdd(FP_I, X_TRUNC, f.id);
    this.truncating.set(f.id, (this.truncating.get(f.id) ?? 0) + 1);
  }
  truncEnd(f: FileObj): void {
    this.fpAdd(FP_I, X_TRUNC, f.id);
    const n = (this.truncating.get(f.id) ?? 0) - 1;
    if (n > 0) this.truncating.set(f.id, n);
    else this.truncating.delete(f.id);
  }

  // munmap/MADV_DONTNEED/MADV_FREE: from their start to their return, what
  // the range shows is not constrained, nor are stores into it.
  // Returns the zap's own record: zapEnd() must end this zap, not another
  // of the same range (a MADV_FREE beside a MADV_DONTNEED of one page).
  zapBegin(mm: Mm, start: number, end: number): ZapRange {
    this.fpAdd(FP_W, X_ZAPS, mm.id);
    this.forget(mm, start, end);
    let z = this.zaps.get(mm.id);
    if (z === undefined) {
      z = [];
      this.zaps.set(mm.id, z);
    }
    const zr: ZapRange = [start, end, new Set()];
    z.push(zr);
    for (const w of this.pinWatch.values()) if (w.mm === mm.id) w.ranges.push([start, end]);
    return zr;
  }
  // A pin step from its start to its return: a page that a zap of the
  // process discarded meanwhile (begun, or in flight, while GUP walked to
  // it) is not held to the pin. GUP-fast can grab and re-check a page just
  // before a MADV_DONTNEED clears its entry, and return after that zap has
  // returned: the program dropped what it was pinning, and the pin keeps
  // the old page (as pin_user_pages_fast() does).
  pinBegin(t: XThread, mm: Mm): void {
    this.fpAdd(FP_R, X_ZAPS, mm.id);
    this.pinWatch.set(t.id, { mm: mm.id, ranges: (this.zaps.get(mm.id) ?? []).map((z): [number, number] => [z[0], z[1]]) });
  }
  // (A zap in flight now was in flight at the start or began since.)
  pinDiscarded(t: XThread, mm: Mm, addr: number): boolean {
    this.fpAdd(FP_R, X_ZAPS, mm.id);
    const w = this.pinWatch.get(t.id);
    return w?.ranges.some((z) => addr >= z[0] && addr < z[1]) === true;
  }
  pinEnd(t: XThread): void {
    this.pinWatch.delete(t.id);
  }
  // Is addr of mm in a range being zapped (a pin taken now is discarded
  // with it, so pin-coherence does not hold it to the page)?
  zapping(mm: Mm, addr: number): boolean {
    this.fpAdd(FP_R, X_ZAPS, mm.id);
    return (this.zaps.get(mm.id) ?? []).some((z) => addr >= z[0] && addr < z[1]);
  }
  // zeroFill: a MADV_DONTNEED that returned 0. Its private anonymous pages
  // read as zeroes from now on (madvise(2): zero-fill-on-demand), except
  // those a store raced (the store may or may not have survived the zap).
  // What a load would read now is checked at once too (a zap that skipped
  // a mapping is seen without a later read of the page).
  zapEnd(mm: Mm, zr: ZapRange, zeroFill = false, t: XThread | null = null): void {
    this.fpAdd(FP_W, X_ZAPS, mm.id);
    const z = this.zaps.get(mm.id);
    const i = z?.indexOf(zr) ?? -1;
    if (z === undefined || i < 0) return;
    const [start, end, stored] = zr;
    z.splice(i, 1);
    if (!zeroFill) return;
    const ps = this.m.geo.pageSize;
    for (const vma of mm.vmas) {
      if (vma.file !== null || vma.isShared || vma.end <= start || vma.start >= end) continue;
      const hi = Math.min(end, vma.end) / ps;
      for (let vpn = Math.max(start, vma.start) / ps; vpn < hi; vpn++) {
        if (stored.has(vpn)) continue;
        this.expectWrite(mm.id, vpn);
        this.expect(mm).set(vpn, 0);
        const pfn = this.mappedPfn(mm, vpn);
        this.fpAdd(FP_R, X_CONTENT, pfn);
        const got = pfn < 0 ? 0 : (this.content.get(pfn) ?? 0);
        if (got !== 0 && this.violation === null)
          this.fail({
            invariant: "read-not-last-write",
            cpu: t?.cpu,
            addr: vpn * ps,
            message: `MADV_DONTNEED returned${t === null ? "" : ` on ${t.name}`} with 0x${(vpn * ps).toString(16)} (mm${mm.id}) still mapping pfn ${pfn}, which holds the store of ${this.wrote(got)}: a load would not see zeroes`,
          });
      }
    }
  }

  // The frame a present entry maps vpn to in mm's tables (a huge leaf's
  // page included), -1 if none.
  private mappedPfn(mm: Mm, vpn: number): number {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    let slot = mm.pgd;
    for (let level = A.levels - 1; level >= 0; level--) {
      const v = T.get(slot * T.ptrs + idxAt(m.geo, vpn, level));
      if (v === 0 || !A.ptePresent(v)) return -1;
      if (level === 0 || A.entryIsLeaf(v)) return A.ptePfn(v) + (level === 0 ? 0 : vpn % (m.geo.span[level] as number));
      slot = T.slotOfPfn(A.ptePfn(v));
    }
    return -1;
  }

  // A device access through a GUP pin (the `dma` step) to page pfn, which
  // the pinning process maps at vpn while `coherent` (pin-coherence): a
  // write stamps the page and, through a coherent R/W pin, is what the
  // process must read next; a read must see what the process last stored.
  dmaAccess(t: XThread, mm: Mm, vpn: number, pfn: number, write: boolean, coherent: boolean): void {
    if (write) {
      const stamp = (t.id + 1) * 1048576 + ++t.stores;
      this.writers.set(stamp, `${t.name} (DMA)`);
      this.content.set(pfn, pack(stamp, stamp));
      this.fpAdd(FP_W, X_CONTENT, pfn);
      this.expectWrite(mm.id, vpn);
      if (!coherent) {
        // The process gave the page up (or the device writes a page it no
        // longer maps there): what it reads there is not constrained.
        this.expected.get(mm.id)?.delete(vpn);
        return;
      }
      this.fpAdd(FP_R, X_ZAPS, mm.id);
      const zapping = (this.zaps.get(mm.id) ?? []).some((z) => vpn * this.m.geo.pageSize >= z[0] && vpn * this.m.geo.pageSize < z[1]);
      if (zapping) this.expected.get(mm.id)?.delete(vpn);
      else this.expect(mm).set(vpn, pack(stamp, stamp));
      return;
    }
    this.fpAdd(FP_R, X_CONTENT, pfn);
    if (!coherent) return;
    this.fpAdd(FP_R, X_EXPECT, mm.id, vpn);
    const want = this.expected.get(mm.id)?.get(vpn);
    const got = this.content.get(pfn) ?? 0;
    if (want === undefined || this.matches(got, want)) return;
    this.fail({
      invariant: "pin-coherence",
      cpu: t.cpu,
      addr: vpn * this.m.geo.pageSize,
      message: `a device reads pfn ${pfn} through mm${mm.id}'s pin of 0x${(vpn * this.m.geo.pageSize).toString(16)} and sees the store of ${this.wrote(got)}, not the process's last store (${this.wrote(want)})`,
    });
  }

  // "A read must see the last write to the page it should map."
  userLoad(t: XThread, mm: Mm, vpn: number, pfn: number): void {
    this.fpAdd(FP_R, X_EXPECT, mm.id, vpn);
    this.fpAdd(FP_R, X_CONTENT, pfn);
    const want = this.expected.get(mm.id)?.get(vpn);
    if (want === undefined) return;
    const got = this.content.get(pfn) ?? 0;
    if (this.matches(got, want)) return;
    if (want === 0) {
      this.fail({
        invariant: "read-not-last-write",
        cpu: t.cpu,
        addr: vpn * this.m.geo.pageSize,
        message: `${t.name} (mm${mm.id}) reads 0x${(vpn * this.m.geo.pageSize).toString(16)} through pfn ${pfn} and sees the store of ${this.wrote(got)}, not zeroes: MADV_DONTNEED returned, and nothing stored there since`,
      });
      return;
    }
    this.fail({
      invariant: "read-not-last-write",
      cpu: t.cpu,
      addr: vpn * this.m.geo.pageSize,
      message: `${t.name} (mm${mm.id}) reads 0x${(vpn * this.m.geo.pageSize).toString(16)} through pfn ${pfn} and sees the store of ${this.wrote(got)}, not its own last stores (${this.wrote(want)})`,
    });
  }

  // munmap/MADV_DONTNEED/MADV_FREE/mprotect start: what the range shows
  // during and after them is not constrained.
  forget(mm: Mm, start: number, end: number): void {
    const e = this.expected.get(mm.id);
    if (e === undefined) return;
    const ps = this.m.geo.pageSize;
    for (const vpn of [...e.keys()])
      if (vpn * ps >= start && vpn * ps < end) {
        this.expectWrite(mm.id, vpn);
        e.delete(vpn);
      }
  }

  // fork: the child expects what the parent expects.
  inherit(parent: Mm, child: Mm): void {
    this.fpAdd(FP_R, X_EXPECT_ALL, parent.id);
    const e = this.expected.get(parent.id);
    if (e === undefined) return;
    for (const vpn of e.keys()) this.expectWrite(child.id, vpn);
    this.expected.set(child.id, new Map(e));
  }

  // ---- invariants ------------------------------------------------------------

  private check(t: XThread): void {
    const m = this.m;
    if (m.violations.length > 0) {
      const vs = m.violations;
      m.violations = [];
      for (const v of vs) this.fail(v);
      if (this.violation !== null) return;
    }
    if (m.arch.name === "arm64" && !this.ignore.has("contpte-block")) {
      for (const v of checkContpte(m, (slot) => this.lockW.has(lockKey(LK_PTL, slot)) || m.unreachableTables.includes(slot))) this.fail(v);
      if (this.violation !== null) return;
    }
    const locked = (slot: number) => this.lockW.has(lockKey(LK_PTL, slot)) || m.unreachableTables.includes(slot);
    const scan = scanPresentPtes(m, locked);
    for (const v of scan.freed) this.fail(v);
    for (const v of checkWritableInVma(m, locked, (mm) => this.lockW.has(lockKey(LK_MMAP, mm.id)))) this.fail(v);
    if (!this.ignore.has("mapped-beyond-eof")) for (const v of checkMappedBeyondEof(m, (f) => this.truncating.has(f.id))) this.fail(v);
    if (this.violation !== null) return;
    // Invariant 4: a frame that stopped being mapped dirty has a dirty folio.
    // Inside a PTE-lock section the information may sit in the holder's
    // local variables (contpte_convert()), so locked tables carry over.
    const dirty = scan.dirty;
    const freeing = this.lazyFreeing > 0 || this.lazyFreeEnded;
    this.lazyFreeEnded = false;
    const carried = new Set<number>();
    for (const [pfn, slot] of this.dirtyBefore) {
      const freeingHere = freeing || this.carriedFreeing.has(pfn);
      if (locked(slot)) {
        dirty.set(pfn, slot);
        if (freeingHere) carried.add(pfn);
        continue;
      }
      if (dirty.has(pfn)) continue;
      // dirtyBefore names one of the tables mapping the page dirty: another
      // (a fork's parent) may be under its PTE lock now, left out of `dirty`.
      // (Not when the table is a dying process's: its anon entries need no
      // other home, decided below.)
      const dyingSlot = this.dyingTables.get(slot) === m.tables.gen[slot];
      // Whether the dirty bit was lost depends on the folio's flags and on
      // who else maps the page now: this transition reads them.
      const rec = this.fp !== null && this.tracker !== null;
      if (rec) this.tracker?.recordInto(this.fp as Footprint);
      const phys = m.phys;
      const head = phys.folioHead(pfn);
      const hf = phys.flags[head] as number;
      // One mm's entry of an anon page another mm maps carries nothing the
      // other's lacks: such a page is COW-shared, read-only in both, so no
      // write can have happened since the share, and fork copied the
      // dirtiness from before it into both entries (copy_present_ptes()
      // keeps a private entry's dirty bit). A bit only one of them had
      // reflects no write: arm64 v6.17's pte_mkwrite() in fork (see below),
      // or a move_ptes() batch, whose set_ptes() gives every entry the
      // dirty bit gathered over the batch. A locked table of the other mm
      // is followed only where it maps the page dirty.
      const sharedAnon = (hf & PG_ANON) !== 0 && (hf & PG_DIRTY) === 0 && !phys.isFree(pfn) && this.mappedInOtherMm(pfn, slot);
      const other = dyingSlot ? -1 : this.lockedTableMapping(pfn, sharedAnon);
      if (other >= 0) {
        if (rec) this.tracker?.endRecord();
        dirty.set(pfn, other);
        if (freeingHere) carried.add(pfn);
        this.hazard(HZ_DIRTY_ELSEWHERE);
        continue;
      }
      // An anon page that nobody maps any more has no reader: zap of a
      // lazily freed page drops its dirty bit with the mapping
      // (zap_present_folio_ptes(), mm/memory.c, marks only non-anon folios
      // dirty), and the page waits in the gather to be freed.
      const unmappedAnon = (hf & PG_ANON) !== 0 && (phys.mapcount[pfn] as number) <= 0 && phys.entireMapcount(head) <= 0;
      // Nor has a dying process's view of an anon page (exit_mmap() and the
      // OOM reaper zap it, dropping its dirty bits the same way). Another
      // process mapping the folio keeps its own entry, checked on its own:
      // fork write-protects both entries with pte_wrprotect(), which keeps
      // dirtiness (copy_present_ptes()). A dirty bit only the dying process
      // held reflects no write the others made: on arm64 v6.17,
      // copy_present_ptes()' pte_mkwrite() of a batch makes a clean
      // writable entry dirty (pte_mkwrite_novma() clears PTE_RDONLY; fixed
      // by 143937ca51cc), so a child can map a lazily freed page dirty.
      const dyingAnon = (hf & PG_ANON) !== 0 && dyingSlot;
      if (dyingSlot && !dyingAnon) {
        const o = this.lockedTableMapping(pfn);
        if (o >= 0) {
          if (rec) this.tracker?.endRecord();
          dirty.set(pfn, o);
          if (freeingHere) carried.add(pfn);
          continue;
        }
      }
      const lost = !phys.isFree(pfn) && !unmappedAnon && !dyingAnon && !sharedAnon && !((hf & PG_ANON) !== 0 && freeingHere) && (hf & PG_DIRTY) === 0;
      if (rec) this.tracker?.endRecord();
      if (lost)
        this.fail({
          invariant: "lost-dirty",
          cpu: t.cpu,
          message: `${t.name}: pfn ${pfn} was mapped dirty and no longer is, but its folio is not dirty (${siteName(t.site)})`,
        });
    }
    this.dirtyBefore = dirty;
    this.carriedFreeing = carried;
    if (this.violation !== null) return;
    if (this.threads.every((u) => u.syscalls === 0)) for (const v of checkAccounting(m)) this.fail(v);
  }

  // Whether an mm other than the one whose page tables hold `slot` maps pfn:
  // the page's mappings (its mapcount, which counts an entry another thread
  // has cleared for a moment under its PTE lock) outnumber that mm's present
  // entries of it. Only on the way to a lost-dirty report.
  private mappedInOtherMm(pfn: number, slot: number): boolean {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    const phys = m.phys;
    let mine = 0;
    for (const mm of m.mms) {
      if (!mm.alive) continue;
      const slots = pteTableSlots(m, mm);
      if (!slots.includes(slot)) continue;
      for (const s of slots) {
        const e = T.unchecked(T.chunkOf(s));
        const base = T.base(s);
        for (let i = base; i < base + T.ptrs; i++) {
          const v = e[i] as number;
          if (v !== 0 && A.ptePresent(v) && A.ptePfn(v) === pfn) mine++;
        }
      }
      break;
    }
    return (phys.mapcount[pfn] as number) + phys.entireMapcount(phys.folioHead(pfn)) > mine;
  }

  // A PTE table under a PTE lock (or unreachable) that maps pfn (dirty, if
  // dirtyOnly), or -1. Only on the way to a lost-dirty report: the locked
  // tables are few.
  private lockedTableMapping(pfn: number, dirtyOnly = false): number {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    const slots = [...m.unreachableTables];
    for (const k of this.lockW.keys()) if (Math.floor(k / 2 ** 32) === LK_PTL) slots.push(k % 2 ** 32);
    for (const slot of slots) {
      if (slot < 0 || T.level[slot] !== 0 || T.state[slot] === TBL_FREE) continue;
      const e = T.unchecked(T.chunkOf(slot));
      const base = T.base(slot);
      for (let i = base; i < base + T.ptrs; i++) {
        const v = e[i] as number;
        if (v !== 0 && A.ptePresent(v) && A.ptePfn(v) === pfn && (!dirtyOnly || A.pteDirty(v))) return slot;
      }
    }
    return -1;
  }

  // Invariant 2, when a syscall that removed or downgraded mappings returns:
  // no TLB entry for its range grants what the page tables no longer do.
  sysReturn(t: XThread, name: string, mm: Mm, start: number, end: number): void {
    t.syscalls--;
    if (this.ignore.has("stale-tlb-after-return")) return;
    // The check's outcome depends on every TLB: part of this transition.
    if (this.fp !== null) this.tracker?.recordInto(this.fp);
    else this.tracker?.suspend();
    // An entry whose PTE another thread is changing under its PTE lock
    // (wp_page_copy()'s ptep_clear_flush(), a split) is that thread's to
    // flush before it unlocks, not this call's. Entries reclaim unmapped
    // after the syscall began, with their flush still deferred, are not the
    // syscall's to have flushed either.
    // Entries pending since before the call are the call's only if it took
    // the lock of the PTE table mapping them: that is where v6.17 calls
    // flush_tlb_batched_pending() (zap, change_pte_range(), MADV_FREE/COLD,
    // move_ptes()). A call that failed first (madvise(MADV_FREE) of a file
    // mapping) or had nothing to change (mprotect to the same protection)
    // never got there and revoked nothing.
    const later = (a: number) => {
      let before = false;
      for (const u of this.m.ubcs)
        for (let k = 0; k < u.pending.length; k += 4)
          if (u.pending[k] === mm.id && a >= (u.pending[k + 1] as number) && a < (u.pending[k + 2] as number)) {
            if ((u.pending[k + 3] as number) > t.enterSeq) return true;
            before = true;
          }
      if (!before) return false;
      const slot = this.pteSlotOf(mm, a);
      return slot >= 0 && !t.ptlTaken.has(slot);
    };
    // Likewise an entry another thread's mmu_gather still owes a flush for
    // (munmap() or brk() between clearing the PTE and tlb_finish_mmu()):
    // that call flushes it before it returns. This call is held to it only
    // if it took the lock of the table mapping it, where it could have seen
    // the cleared entry and, its own gather nested with the other, must
    // flush it itself (tlb_finish_mmu(), 99baac21e458); a call that never
    // got there (MADV_PAGEOUT of a range munmap() already detached:
    // -ENOMEM) revoked nothing. The pending count is other threads' once
    // this call's own gather has finished.
    const owedByOther = (a: number) => {
      if (mm.tlbFlushPending === 0) return false;
      const slot = this.pteSlotOf(mm, a);
      return slot < 0 || !t.ptlTaken.has(slot);
    };
    // A walk cache pointing to a table still waiting in another thread's
    // mmu_gather (PT reclaim under MADV_DONTNEED, free_pgtables() of a
    // munmap): a call that changed no page table (an mremap() to the same
    // size, a munmap() of nothing: no PTE lock taken) is not held to it; the
    // owner's return is. A call that did work is: its gather, nested with
    // the other, must flush everything, walk caches included
    // (tlb_finish_mmu(), 7a30df49f63a and 99baac21e458).
    this.quiet++;
    const v = checkTlbs(this.m, mm).filter((x) => {
      if (x.addr === undefined) return x.gathered === undefined || t.ptlTaken.size > 0;
      if (x.addr < start || x.addr >= end) return false;
      // Excused: a near miss (hunt's coverage) of a path that owes the flush.
      const why = this.pteLockedByOther(mm, x.addr, t) ? HZ_STALE_LOCKED : later(x.addr) ? HZ_STALE_RECLAIM : owedByOther(x.addr) ? HZ_STALE_GATHER : 0;
      if (why !== 0) this.hazard(why);
      return why === 0;
    });
    this.quiet--;
    if (this.fp !== null) this.tracker?.endRecord();
    else this.tracker?.leave();
    for (const first of v) this.fail({ ...first, invariant: "stale-tlb-after-return", message: `when ${name} on ${t.name} returned: ${first.message}` });
  }

  // Also a PMD that is empty or a huge leaf under another thread's PMD
  // lock: a huge-PMD path between clearing the PMD and the flush it owes
  // before unlocking (do_huge_zero_wp_pmd()'s pmdp_huge_clear_flush(), a
  // split's pmdp_invalidate()). A PMD pointing to a PTE table is the PTE
  // lock's business.
  private pteLockedByOther(mm: Mm, addr: number, t: XThread): boolean {
    const pmdTable = this.tableSlotOf(mm, addr, 1);
    if (pmdTable >= 0) {
      const m = this.m;
      const pmd = m.tables.get(pmdTable * m.tables.ptrs + idxAt(m.geo, Math.floor(addr / m.geo.pageSize), 1));
      const w = this.lockW.get(lockKey(LK_PMD, pmdTable));
      if (w !== undefined && w !== t.id && (pmd === 0 || !m.arch.entryIsTable(pmd))) return true;
    }
    const slot = this.pteSlotOf(mm, addr);
    if (slot < 0) return false;
    const w = this.lockW.get(lockKey(LK_PTL, slot));
    return w !== undefined && w !== t.id;
  }

  // The PTE table mapping addr in mm, -1 if none.
  private pteSlotOf(mm: Mm, addr: number): number {
    return this.tableSlotOf(mm, addr, 0);
  }

  // The table of level `at` (0: PTE, 1: PMD) on addr's path in mm, -1 if none.
  private tableSlotOf(mm: Mm, addr: number, at: number): number {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    const vpn = Math.floor(addr / m.geo.pageSize);
    let slot = mm.pgd;
    for (let level = A.levels - 1; level > at; level--) {
      const v = T.get(slot * T.ptrs + idxAt(m.geo, vpn, level));
      if (v === 0 || !A.entryIsTable(v)) return -1;
      slot = T.slotOfPfn(A.ptePfn(v));
    }
    return slot;
  }

  // ptlab hunt's coverage: which of the situations invariants are about hold
  // at a decision (a table locked, mmap_lock write-held, an RCU reader or an
  // IRQs-off section, tables waiting for a grace period, a lockless read in
  // progress, a zap in flight, a MADV_FREE in flight, a thread in a fault or call).
  // Whether a thread other than the one running kernel code has steps left:
  // whether a schedule can put them beside what the running code does now.
  // A grace period that can end (RCU callbacks queued) counts: a deferred
  // free is a party a schedule can put beside the running code.
  othersPending(): boolean {
    for (const t of this.threads) if (t !== this.inKernel && t.gen !== null && !t.done) return true;
    return this.m.rcuPending.length > 0;
  }

  stateMask(): number {
    let k = 0;
    for (const key of this.lockW.keys()) k |= key < lockKey(LK_MMAP + 1, 0) ? 2 : 1;
    let rcu = false;
    let irq = false;
    let watch = false;
    let inCall = 0;
    for (const t of this.threads) {
      rcu ||= t.rcu > 0;
      irq ||= t.irqOff;
      watch ||= t.watch !== null;
      if (t.syscalls > 0) inCall++;
    }
    if (rcu) k |= 4;
    if (irq) k |= 8;
    if (this.m.rcuPending.length > 0) k |= 16;
    if (watch) k |= 32;
    for (const z of this.zaps.values()) if (z.length > 0) k |= 64;
    if (this.lazyFreeing > 0) k |= 128;
    if (inCall > 1) k |= 256;
    return k;
  }

  // MADV_FREE calls in flight: a lazily freed anon page that one of them
  // cleans again (a second MADV_FREE after a write) loses its dirty bit by
  // design (madvise_free_pte_range(), mm/madvise.c).
  lazyFreeing = 0;
  lazyFreeEnded = false; // one returned during the step being checked

  sysEnter(t: XThread): void {
    t.syscalls++;
    t.enterSeq = this.m.batchSeq;
    t.ptlTaken.clear();
  }
  sysLeave(t: XThread): void {
    t.syscalls--;
  }

  // Invariant 9: the reader's result matches ptep_get() at one moment of its
  // read (the access flag is a hint and may be gathered from any moment).
  locklessResult(t: XThread, addr: number, v: number): void {
    const w = t.watch;
    t.watch = null;
    if (w === null) return;
    const A = this.m.arch;
    this.tracker?.suspend();
    this.observe();
    this.tracker?.leave();
    if (w.seen.has(A.pteMkold(v))) return;
    const seen = [...w.seen].map((x) => A.describeEntry(x)).join(" | ");
    this.fail({
      invariant: "lockless-snapshot",
      cpu: t.cpu,
      addr,
      message: `${t.name}: ptep_get_lockless() for 0x${addr.toString(16)} returned ${A.describeEntry(v)}, which the entry never was during the read (it was: ${seen})`,
    });
  }

  // After the last thread finished: pending grace periods end, then every
  // TLB entry must agree with the page tables, and the pins still held
  // with the pages they pinned (what the sequential runner checks after
  // each step: a race that broke a pin shows without a later store).
  finish(pins: Iterable<GupPin> = []): void {
    if (this.violation !== null || this.infeasible || this.truncated || this.halted) return;
    this.m.rcuGracePeriod();
    for (const v of this.m.violations) this.fail(v);
    this.m.violations = [];
    for (const v of checkTlbs(this.m)) this.fail({ ...v, invariant: "stale-tlb-after-return" });
    for (const v of checkAccounting(this.m)) this.fail(v);
    for (const v of checkPins(this.m, pins, "at the end")) this.fail(v);
  }

  lockHolders(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [k, w] of this.lockW) out.set(lockName(k), `held by ${this.byId(w).name}`);
    for (const [k, r] of this.lockR) out.set(lockName(k), `read-held ×${r}`);
    return out;
  }
}

// An order-independent hash of a collection: the sum of its items' hashes.
function unordered<T>(xs: Iterable<T>, f: (x: T) => number): number {
  let acc = 0;
  for (const x of xs) acc = (acc + f(x)) % 2 ** 53;
  return acc;
}

// Footprint locations of the explorer's own state (one pseudo-object).
const X_ID = 2 ** 21 - 1;
const X_LOCK_W = 1; // a lock's writer
const X_LOCK_R = 2; // its reader count
const X_READERS = 3; // CPUs in RCU read-side or IRQs-off sections (grace periods wait)
const X_IRQS = 4; // CPUs with IRQs off (IPIs wait)
const X_CONTENT = 5; // a frame's stamp
const X_EXPECT = 6; // a page's expected stamp
const X_EXPECT_ALL = 7; // an mm's expected stamps as a whole
const X_ZAPS = 8; // an mm's ranges being zapped
const X_TRUNC = 9; // a file's truncations in flight
const X_DIRTY_SEEN = 10; // the lost-dirty check's view of a folio's pages
const X_KSWAPD = 11; // kswapd's waitqueue and its failure count
const MAX_RECLAIM_RETRIES = 16; // mm/internal.h
const FP_R = 0;
const FP_W = 1;
const FP_I = 2;

export function lockName(key: number): string {
  const kind = Math.floor(key / lockKey(1, 0));
  const id = key % lockKey(1, 0);
  return `${LOCK_NAMES[kind]}(${kind === 0 ? `mm${id}` : kind === LK_IMMAP || kind === LK_INODE ? `file ${id}` : kind === LK_FOLIO ? `pfn ${id}` : kind === LK_ANON_VMA ? `anon_vma ${id}` : `table ${id}`})`;
}
