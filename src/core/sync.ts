// Interleaving points, locks, RCU and IRQ state as kernel paths see them when
// the concurrency explorer runs the model. Sequential runs never install an
// Interleaver (m.il === null): every call here sits
// behind an `if (il)` test, so the fast path pays one branch per point.
//
// Two kinds of points:
// - A generator yield (`yield site`): the kernel path stops and the explorer
//   may run any other thread before resuming it. Lock acquisition is a yield
//   whose site was returned by il.lock(): the thread is enabled again only
//   when the lock is free.
// - A nested point (il.point(site)) inside a plain function (arch helpers
//   such as contpte_convert()): the explorer may run other threads' next
//   steps right there, then the function carries on. Threads already on the
//   call stack cannot be resumed from it.

import type { Mm } from "./mm/types.js";

// Lock classes (the id is the mm id, or the table slot the lock lives in).
export const LK_MMAP = 0; // mm->mmap_lock, a reader/writer semaphore
export const LK_PTL = 1; // split PTE lock of a PTE table (ptlock_ptr())
export const LK_PMD = 2; // PMD lock of a PMD table (pmd_lockptr())
export const LK_IMMAP = 3; // mapping->i_mmap_rwsem of a file (the id is the file id)
// PG_locked of a page-cache folio (folio_lock(), a sleeping bit lock taken
// exclusively); the id is the head frame number. Whoever waits for it or
// holds it also holds a folio reference, so the frame cannot be freed and
// reused under the same id meanwhile.
export const LK_FOLIO = 4;
export const LK_INODE = 5; // inode->i_rwsem of a file (inode_lock(); the id is the file id)
export const LK_ANON_VMA = 6; // anon_vma->root->rwsem (the id is the root anon_vma)

export const LOCK_NAMES = ["mmap_lock", "ptl", "pmd_lock", "i_mmap_rwsem", "folio_lock", "i_rwsem", "anon_vma_lock"];

// One number per lock: class and id.
export const lockKey = (kind: number, id: number): number => kind * 2 ** 32 + id;

export interface Interleaver {
  // Records that the running thread wants a lock; the kernel path then
  // yields the returned site and continues once it holds the lock.
  lock(kind: number, id: number, write: boolean, site: number): number;
  unlock(kind: number, id: number): void;
  // mmap_write_downgrade()
  downgrade(kind: number, id: number): void;
  // A nested interleaving point inside a plain function.
  point(site: number): void;
  rcuReadLock(): void;
  rcuReadUnlock(): void;
  irqDisable(): void;
  irqEnable(): void;
  // Try-lock (spin_trylock()): true if the lock was free and is now held.
  trylock(kind: number, id: number): boolean;
  // down_read_trylock(): true if no writer holds or waits for the lock and
  // the caller now holds it for reading.
  trylockRead(kind: number, id: number): boolean;
  // A synchronous IPI to every CPU (smp_call_function(..., wait=1)), as a
  // nested point: the caller continues once no other CPU runs with
  // interrupts disabled.
  ipiSync(site: number): void;
  // An invariant check inside a kernel path starts (true) or ends: it only
  // reads the model.
  checking(on: boolean): void;
  // The page-table entry a lockless reader is about to read from, so the
  // explorer can record the block's state at every moment of the read.
  // wp_page_copy() and friends copied a page's contents (the explorer tracks
  // what user stores wrote, to check what loads see).
  copyPage(src: number, dst: number): void;
  // wp_page_copy() is about to copy page pfn, which mm maps read-only at
  // addr: no other CPU running mm's user code may still write it through
  // its TLB (a store after the copy would be lost).
  cowCopy(mm: Mm, addr: number, pfn: number): void;
  // Writeback wrote the folio (folio_clear_dirty_for_io() and the write):
  // the dirty bits its entries had were consumed, not lost.
  folioWritten(head: number, nr: number): void;
  // The reader's result is checked when it finishes (invariant 9).
  watch(e: Float64Array, i: number, slot: number): void;
  // Steps every thread but the running one (and the RCU agent) has taken so
  // far: a retry loop that sees it unchanged ran with nothing else moving.
  othersSteps(): number;
}

// Interleaving sites: a number per place a kernel path can be interrupted,
// named after the kernel function it models, for counterexample traces.
// A spin site is a retry loop's yield: the thread waits for someone else to
// change something, so the explorer runs it again only after another thread
// made progress (CHESS-style fairness; otherwise a retry loop is infinite).
const siteNames: string[] = ["(begin)"];
const spinSites = new Set<number>();
export function site(fn: string, what: string, spin = false): number {
  siteNames.push(`${fn}: ${what}`);
  if (spin) spinSites.add(siteNames.length - 1);
  return siteNames.length - 1;
}
export function isSpinSite(id: number): boolean {
  return spinSites.has(id);
}
export function siteName(id: number): string {
  return siteNames[id] ?? `site ${id}`;
}
// The names by id in this thread: ids follow the order the modules
// registered their sites in, which differs between threads whose entry
// modules differ (a worker's features are named with the worker's table).
export function siteTable(): readonly string[] {
  return siteNames;
}

// Runs a kernel path (a generator of interleaving sites) to completion, as
// a sequential run does: every yield is passed straight through.
export function run<T>(g: Generator<number, T, void>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

// The wait for a PTE table's lock in pte_offset_map_lock() and its kin
// (mm/pgtable-generic.c): since v6.5, __pte_offset_map() holds
// rcu_read_lock() from reading the PMD until pte_unmap(), so a table PT
// reclaim freed meanwhile (RCU-deferred, mm/pt_reclaim.c) is not reused
// before the path, once it holds the lock, sees the PMD changed. The
// read-side section is modelled from the PMD read to the lock; with the lock
// held the caller re-checks the PMD (pmd_same()).
export function* pteLockMapped(il: Interleaver, slot: number, at: number): Generator<number, void, void> {
  il.rcuReadLock();
  yield il.lock(LK_PTL, slot, true, at);
  il.rcuReadUnlock();
}
