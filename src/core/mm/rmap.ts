// Reverse mapping: models mm/rmap.c (folio_add_new_anon_rmap()'s
// folio->mapping/index, rmap_walk_anon() over the anon_vma chain,
// rmap_walk_file() over the file's mappings, page_vma_mapped_walk(),
// folio_referenced_one(), try_to_unmap_one() with the deferred TLB flush:
// should_defer_flush(), set_tlb_ubc_flush_pending(), try_to_unmap_flush(),
// try_to_unmap_flush_dirty(), flush_tlb_batched_pending()) and the folio split
// reclaim needs (split_folio_to_list(), mm/huge_memory.c).
//
// Simplified: anon_vma is a tree of ids (Machine.anonVmaParent) and the walk
// visits every live mm's VMAs whose anon_vma descends from the folio's (the
// kernel keeps that set as the anon_vma's interval tree); a file's mappings
// are found by scanning the mms for VMAs of the file. The split does not go
// through migration entries: it holds every PTE lock that maps the folio
// from unmap to remap, so nobody sees the folio half split. No Node APIs.

import type { Machine } from "../machine.js";
import { MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE } from "../arch/arch.js";
import { variantIs, variantOf } from "../variant.js";
import { type Interleaver, LK_ANON_VMA, LK_IMMAP, LK_PMD, LK_PTL, pteLockMapped, site } from "../sync.js";
import { pmdReadLocked, setPmdMigrationEntry, splitHugePmd } from "./huge_memory.js";
import { folioPteBatch, type KGen } from "./memory.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SHMEM, PG_SWAPBACKED } from "./physmem.js";
import type { FileObj, Mm, Vma } from "./types.js";
import { pmdOffset } from "./walk.js";

const S_RMAP_LOCK = site("page_vma_mapped_walk", "take the PTE lock");
const S_RMAP_PMD_LOCK = site("page_vma_mapped_walk", "take the PMD lock of a huge PMD");
const S_TTU_PTE = site("try_to_unmap_one", "PTE cleared, flush deferred");
const S_TTM_PTE = site("try_to_migrate_one", "migration entries set, flush batched");
const S_REF_PTE = site("folio_referenced_one", "young cleared");
const S_SPLIT_LOCK = site("unmap_folio", "take the PTE lock of a table mapping the folio");
const S_SPLIT_PMD_LOCK = site("unmap_folio", "take the PMD lock of a huge PMD");

// folio_add_new_anon_rmap() / __folio_set_anon(): folio->mapping is the
// VMA's anon_vma (its root's when the folio may be shared: a swap-cache folio
// mapped after fork), folio->index the linear page index of its first page.
export function folioSetAnonRmap(m: Machine, head: number, vma: Vma, addr: number, exclusive = true): void {
  m.phys.aux[head] = exclusive ? vma.anonVma : anonVmaRoot(m, vma.anonVma);
  m.phys.setIndex(head, vma.pgoffOf(addr, m.geo.pageSize));
}

// anon_vma->root: the locks of an anon_vma tree are its root's.
export function anonVmaRoot(m: Machine, av: number): number {
  while ((m.anonVmaParent[av] as number) !== 0) av = m.anonVmaParent[av] as number;
  return av;
}

// A page-cache folio: the file and the page offset.
export function folioSetFileRmap(m: Machine, head: number, f: FileObj, pgoff: number): void {
  m.phys.aux[head] = f.id;
  m.phys.setIndex(head, pgoff);
}

// Is anon_vma `av` (a VMA's) on a chain that includes `root` (the folio's)?
function chainHas(m: Machine, av: number, root: number): boolean {
  while (av !== 0) {
    if (av === root) return true;
    av = m.anonVmaParent[av] as number;
  }
  return false;
}

export interface RmapHit {
  mm: Mm;
  vma: Vma;
  addr: number; // vma_address() of the folio's first page (may lie below vma.start)
}

// rmap_walk(): the VMAs that may map the folio, with the address its first
// page has in each (vma_address()).
export function rmapWalk(m: Machine, head: number): RmapHit[] {
  const phys = m.phys;
  const PS = m.geo.pageSize;
  const nr = 1 << (phys.order[head] as number);
  const anon = ((phys.flags[head] as number) & PG_ANON) !== 0;
  const mapping = phys.aux[head] as number;
  const index = phys.index(head);
  let file: FileObj | null = null;
  if (!anon) for (const f of m.files.values()) if (f.id === mapping) file = f;
  const out: RmapHit[] = [];
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    for (const vma of mm.rmapVmas()) {
      if (anon ? vma.anonVma === 0 || !chainHas(m, vma.anonVma, mapping) : vma.file !== file || file === null) continue;
      const addr = vma.start + (index - vma.pgoff) * PS;
      if (addr + nr * PS <= vma.start || addr >= vma.end) continue;
      out.push({ mm, vma, addr });
    }
  }
  return out;
}

const S_RMAP_WALK = site("rmap_walk", "anon_vma_lock_read() / i_mmap_lock_read()");

// rmap_walk_anon() and rmap_walk_file() hold the folio's anon_vma root lock
// or its file's i_mmap_rwsem (for reading) across the walk: free_pgtables()
// unlinks a VMA under the same lock for writing before it frees the VMA's
// page tables (unlink_anon_vmas(), unlink_file_vma_batch_final()), so the
// tables the walk finds stay allocated until it is done. Returns the lock
// taken ([kind, id]) for rmapUnlock(); nothing when not interleaving.
export function* rmapLock(m: Machine, head: number, write: boolean): KGen<[number, number] | null> {
  const il = m.il;
  if (il === null) return null;
  const phys = m.phys;
  let lk: [number, number];
  if (((phys.flags[head] as number) & PG_ANON) !== 0) {
    lk = [LK_ANON_VMA, anonVmaRoot(m, phys.aux[head] as number)];
  } else lk = [LK_IMMAP, phys.aux[head] as number];
  yield il.lock(lk[0], lk[1], write, S_RMAP_WALK);
  return lk;
}

export function rmapUnlock(m: Machine, lk: [number, number] | null): void {
  if (lk !== null) m.il?.unlock(lk[0], lk[1]);
}

// One PTE of page_vma_mapped_walk(): table chunk e, index i, address a, page k of the folio.
type PteVisit = (e: Float64Array, i: number, a: number, k: number) => void;

// page_vma_mapped_walk() over one VMA: visits, under each PTE table's lock,
// the present PTEs that map pages of the folio; a PMD mapping of it is
// passed to onPmd (pmd entry index) instead. With migration (PVMW_MIGRATION)
// it visits the migration entries that name pages of the folio instead, a
// PMD migration entry naming the folio through onPmd (check_pmd() of
// pmd_to_swp_entry()), and skips PMD leaves. lockPmd: onPmd runs under the
// PMD lock (pmd_lock(), taken with an interleaving point only when another
// thread holds it) with the entry read again; one that changed meanwhile
// (split: "handle on pte level") is looked at again. Without lockPmd the
// visit is one step of its own, as before.
export function* pageVmaMappedWalk(
  m: Machine,
  h: RmapHit,
  head: number,
  onPte: PteVisit,
  onPmd: ((pmdIdx: number, a: number) => void) | null,
  nr = 1 << (m.phys.order[head] as number),
  migration = false,
  lockPmd = false,
): KGen<boolean> {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const PS = G.pageSize;
  const il = m.il;
  let found = false;
  let k = 0;
  while (k < nr) {
    const a = h.addr + k * PS;
    if (a < h.vma.start || a >= h.vma.end) {
      k++;
      continue;
    }
    const pmdIdx = pmdOffset(m, h.mm, a, false);
    // The pages of the folio under this PMD entry.
    const next = Math.min(nr, k + (G.pmdSize - (a % G.pmdSize)) / PS);
    if (pmdIdx < 0) {
      k = next;
      continue;
    }
    let pmdv = T.get(pmdIdx);
    // A huge PMD is read again under the PMD lock: a splitter holds it from
    // pmdp_invalidate() until the PTE table is in.
    if (il !== null && pmdv !== 0 && A.pmdLeafInvalid(pmdv)) pmdv = yield* pmdReadLocked(m, pmdIdx, S_RMAP_PMD_LOCK);
    // A PMD that maps the folio whole: a huge leaf, or (looking for
    // migration entries) a PMD migration entry.
    const migPmd = migration && pmdv !== 0 && A.isMigrationPmd(pmdv);
    if (migPmd || (pmdv !== 0 && A.entryIsLeaf(pmdv))) {
      if ((migPmd ? A.migrationPfn(pmdv) : A.ptePfn(pmdv)) === head && onPmd !== null && migPmd === migration) {
        if (lockPmd && il !== null && !(yield* pmdLockSame(m, il, pmdIdx, pmdv))) continue;
        onPmd(pmdIdx, a - (a % G.pmdSize));
        if (lockPmd && il !== null) il.unlock(LK_PMD, Math.floor(pmdIdx / G.ptrs));
        found = true;
      }
      k = next;
      continue;
    }
    if (pmdv === 0 || !A.entryIsTable(pmdv)) {
      k = next;
      continue;
    }
    const slot = T.slotOfPfn(A.ptePfn(pmdv));
    if (il) {
      yield* pteLockMapped(il, slot, S_RMAP_LOCK);
      if (T.get(pmdIdx) !== pmdv) {
        il.unlock(LK_PTL, slot);
        k = next;
        continue;
      }
    }
    const e = T.chunkOf(slot);
    for (; k < next; k++) {
      const b = h.addr + k * PS;
      if (b < h.vma.start || b >= h.vma.end) continue;
      const i = T.base(slot) + ((b / PS) & G.ptrsMask);
      const v = e[i] as number;
      if (migration) {
        if (!A.isMigrationPte(v) || A.migrationPfn(v) !== head + k) continue;
      } else if (v === 0 || !A.ptePresent(v) || A.pteSpecial(v) || A.ptePfn(v) !== head + k) continue;
      found = true;
      onPte(e, i, b, k);
    }
    if (il) il.unlock(LK_PTL, slot);
  }
  return found;
}

// pmd_lock() for page_vma_mapped_walk()'s PMD visit: true, holding the lock,
// when the entry is still the one read without it; else the lock is dropped.
function* pmdLockSame(m: Machine, il: Interleaver, pmdIdx: number, pmdv: number): KGen<boolean> {
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (!il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_RMAP_PMD_LOCK);
  if (m.tables.get(pmdIdx) === pmdv) return true;
  il.unlock(LK_PMD, pmdSlot);
  return false;
}

// folio_referenced(): how many mappings had the access flag set; each is
// cleared with ptep_clear_flush_young() (pmdp_clear_flush_young() for a PMD
// mapping), which on arm64 clears a whole contpte block and issues its TLBI
// without a DSB, and on x86 does not flush at all.
export function* folioReferenced(m: Machine, head: number): KGen<number> {
  let referenced = 0;
  const lk = yield* rmapLock(m, head, false);
  try {
    yield* folioReferencedLocked(m, head, (n) => {
      referenced += n;
    });
  } finally {
    rmapUnlock(m, lk);
  }
  return referenced;
}

function* folioReferencedLocked(m: Machine, head: number, count: (n: number) => void): KGen {
  const A = m.arch;
  const G = m.geo;
  let referenced = 0;
  for (const h of rmapWalk(m, head)) {
    yield* pageVmaMappedWalk(
      m,
      h,
      head,
      (e, i, a) => {
        if (A.ptepClearFlushYoung(m, h.mm, a, e, i)) referenced++;
      },
      (pmdIdx, a) => {
        const v = m.tables.get(pmdIdx);
        m.counters.pteAtomics++;
        if (!A.pteYoung(v)) return;
        m.tables.set(pmdIdx, A.pteMkold(v));
        A.flushTlbRange(m, h.mm, a, a + G.pmdSize, G.pmdShift, false);
        referenced++;
      },
    );
    if (m.il) yield S_REF_PTE;
  }
  count(referenced);
}

// struct tlbflush_unmap_batch (current->tlb_ubc): the reclaiming task's
// deferred flush.
export class TlbUbc {
  arch: Uint8Array; // struct arch_tlbflush_unmap_batch
  flushRequired = false;
  writable = false; // a dirty PTE was cleared: flush before writing the folio out
  // What is pending, for the explorer's checks: mm id, start, end, and the
  // machine's sequence number when it was batched.
  pending: number[] = [];
  constructor(m: Machine) {
    this.arch = new Uint8Array(m.cpus.length);
  }
}

// should_defer_flush(): TTU_BATCH_FLUSH and the architecture agrees.
export function shouldDeferFlush(m: Machine, mm: Mm, ubc: TlbUbc | null): boolean {
  return ubc !== null && m.arch.tlbbatchShouldDefer(m, mm);
}

// set_tlb_ubc_flush_pending(): the cleared entry's flush joins the batch and
// the mm records a pending batched flush (mm->tlb_flush_batched).
export function setTlbUbcFlushPending(m: Machine, ubc: TlbUbc, mm: Mm, pteval: number, start: number, end: number): void {
  const A = m.arch;
  if (!A.ptePresent(pteval)) return; // pte_accessible()
  A.tlbbatchAddPending(m, ubc.arch, mm, start, end);
  ubc.flushRequired = true;
  mm.tlbBatchPending++;
  if (A.pteDirty(pteval)) ubc.writable = true;
  ubc.pending.push(mm.id, start, end, ++m.batchSeq);
  m.ubcs.add(ubc);
}

// try_to_unmap_flush()
export function tryToUnmapFlush(m: Machine, ubc: TlbUbc): void {
  if (!ubc.flushRequired) return;
  m.counters.tlbBatchFlushes++;
  m.arch.tlbbatchFlush(m, ubc.arch);
  ubc.flushRequired = false;
  ubc.writable = false;
  ubc.pending = [];
  m.ubcs.delete(ubc);
}

// try_to_unmap_flush_dirty(): flush only if a dirty entry was cleared, as a
// writable TLB entry could still dirty the folio being written out.
export function tryToUnmapFlushDirty(m: Machine, ubc: TlbUbc): void {
  if (ubc.writable) tryToUnmapFlush(m, ubc);
}

// flush_tlb_batched_pending(): called with a PTE lock held by code that is
// about to change or rely on PTEs reclaim may have cleared with its flush
// still deferred; flushes the whole mm if any batched flush is pending. The
// "none" variant (before 3ea277194daa) has no such call.
export function flushTlbBatchedPending(m: Machine, mm: Mm): void {
  const pending = mm.tlbBatchPending;
  if (pending === mm.tlbBatchFlushed) return;
  // Before 3ea277194daa (tlb_batch_pending=none) the callers did not look.
  if (!variantIs(m, "tlb_batch_pending", "fixed")) return;
  m.counters.tlbBatchedPendingFlushes++;
  m.arch.flushTlbMm(m, mm);
  mm.tlbBatchFlushed = pending;
}

// folio_mapcount() as the MADV_FREE checks compare it with the reference
// count: one per PMD mapping and one per PTE, each holding a reference.
function mappingRefs(m: Machine, head: number): number {
  const phys = m.phys;
  const nr = 1 << (phys.order[head] as number);
  let n = phys.entireMapcount(head);
  for (let k = 0; k < nr; k++) n += phys.mapcount[head + k] as number;
  return n;
}

// Is the folio perhaps mapped by more than one mm (folio_maybe_mapped_shared(),
// include/linux/mm.h)? Approximated per page: some page mapped twice, or a
// PMD mapping besides PTE ones.
export function folioMaybeMappedShared(m: Machine, head: number): boolean {
  const phys = m.phys;
  const nr = 1 << (phys.order[head] as number);
  const entire = phys.entireMapcount(head);
  if (entire > 1) return true;
  for (let k = 0; k < nr; k++) if ((phys.mapcount[head + k] as number) + entire > 1) return true;
  return false;
}

// The folio's mappings: PTE mapcounts plus PMD mappings (folio_mapcount()).
export function folioMapcount(m: Machine, head: number): number {
  const phys = m.phys;
  const nr = 1 << (phys.order[head] as number);
  let n = phys.entireMapcount(head) * nr;
  for (let k = 0; k < nr; k++) n += phys.mapcount[head + k] as number;
  return n;
}

// try_to_unmap() with TTU_BATCH_FLUSH (ubc non-null) or without: every PTE
// mapping the folio is cleared; a page of an anon folio in the swap cache
// gets a swap entry for its own slot of the folio's run (exclusive if the
// page was AnonExclusive), file folios none. A PMD mapping of an anon THP
// is split first (TTU_SPLIT_HUGE_PMD: split_huge_pmd_locked(), then the
// walk restarts over the PTEs).
// A lazily freed anon folio (MADV_FREE, not swap-backed) of any order is
// discarded instead, or remapped if written since (tryToUnmapLazyfree()).
// Returns whether the folio is no longer mapped.
export function* tryToUnmap(m: Machine, head: number, ubc: TlbUbc | null): KGen<boolean> {
  const phys = m.phys;
  const f = phys.flags[head] as number;
  const anon = (f & PG_ANON) !== 0;
  const lazyfree = anon && (f & PG_SWAPBACKED) === 0;
  const swap = m.swap;
  const slot = anon && !lazyfree && swap !== null ? (swap.slotOf.get(head) ?? -1) : -1;
  if (anon && !lazyfree && slot < 0) return false; // not in the swap cache: nowhere to point the PTE
  const lk = yield* rmapLock(m, head, false);
  try {
    if (lazyfree) yield* tryToUnmapLazyfree(m, head, ubc);
    else yield* tryToUnmapLocked(m, head, ubc, slot);
  } finally {
    rmapUnlock(m, lk);
  }
  return folioMapcount(m, head) === 0;
}

// try_to_unmap_one() for a lazily freed anon folio (mm/rmap.c, v6.17): a
// run of the folio's entries is cleared at once (get_and_clear_ptes(); how
// long a run: the lazyfree_batch variant), the flush deferred or done, a
// dirty entry dirties the folio. Then the MADV_FREE check: if only the
// caller's reference and the mappings' remain and the folio is clean, the
// pages are dropped (discard:); else someone wrote it (or holds it) since
// MADV_FREE: the run is set back as it was (set_ptes() of the value
// cleared), the folio becomes swap-backed again and the walk stops
// (walk_abort).
function* tryToUnmapLazyfree(m: Machine, head: number, ubc: TlbUbc | null): KGen {
  const A = m.arch;
  const phys = m.phys;
  const G = m.geo;
  const PS = G.pageSize;
  const order = phys.order[head] as number;
  const nrFolio = 1 << order;
  let abort = false;
  for (const h of rmapWalk(m, head)) {
    const mm = h.mm;
    const vma = h.vma;
    // walk_done: the rest of this VMA's walk is skipped.
    let done = false;
    if (order === G.pmdOrder) yield* lazyfreePmd(m, h, head);
    yield* pageVmaMappedWalk(
      m,
      h,
      head,
      (e, i, a, k) => {
        if (abort || done) return;
        const pfn = head + k;
        const first = A.ptepGet(m, e, i);
        let nr = 1;
        const how = order > 0 ? variantOf(m, "lazyfree_batch") : "none";
        if (how === "respect-write" || how === "ignore-write") {
          // folio_unmap_pte_batch(): within the VMA and this PTE table;
          // FPB_RESPECT_WRITE since 29f40594a281, as the run may be set back.
          const end = Math.min(a - (a % G.pmdSize) + G.pmdSize, vma.end);
          nr = folioPteBatch(m, e, i, first, pfn, head, order, (end - a) / PS, false, how === "respect-write");
        } else if (how === "whole-folio" && pfn === head) {
          // can_batch_unmap_folio_ptes(): the whole folio from its first page, or nothing.
          if (folioPteBatch(m, e, i, first, pfn, head, order, nrFolio, false, false) === nrFolio) nr = nrFolio;
        }
        const pteval = A.getAndClearFullPtes(m, mm, a, e, i, nr, false);
        if (shouldDeferFlush(m, mm, ubc)) setTlbUbcFlushPending(m, ubc as TlbUbc, mm, pteval, a, a + nr * PS);
        else A.flushTlbRange(m, mm, a, a + nr * PS, G.pageShift, false);
        if (A.pteDirty(pteval)) phys.flags[head] = (phys.flags[head] as number) | PG_DIRTY;
        // The MADV_FREE check (6c8e2a256915): written since, or held by
        // someone besides the isolation and the mappings (a GUP reference).
        const hf = phys.flags[head] as number;
        const extraRef = phys.ref[head] !== 1 + mappingRefs(m, head);
        if ((hf & PG_DIRTY) !== 0 || extraRef) {
          A.setPtes(m, mm, a, e, i, pteval, nr);
          if (hf & PG_DIRTY) phys.flags[head] = hf | PG_SWAPBACKED;
          abort = true;
          return;
        }
        mm.rssAnon -= nr;
        for (let j = 0; j < nr; j++) phys.mapcount[pfn + j] = (phys.mapcount[pfn + j] as number) - 1; // folio_remove_rmap_ptes()
        phys.ref[head] = (phys.ref[head] as number) - nr; // folio_put_refs()
        m.counters.folioAtomics += 2;
        if (nr === nrFolio) done = true; // the whole folio at once: walk_done
      },
      null,
    );
    if (m.il) yield S_TTU_PTE;
    if (abort) break;
  }
}

// One PMD mapping of a lazily freed THP (try_to_unmap_one() with
// TTU_SPLIT_HUGE_PMD): split_huge_pmd_locked(), then the PTE path drops or
// remaps the pages. The source of v6.12 on also tries
// unmap_huge_pmd_locked() first, which would drop a clean THP whole with its
// deposited table; the 6.18 host never did so in our measurements (a clean
// lazily freed THP under MADV_PAGEOUT: thp_split_pmd +1, pglazyfreed +512,
// VmPTE unchanged, kpageflags clean and not swap-backed), so the model
// follows the host (scenarios/diff/swap-free-pageout-thp.yaml).
// try_to_unmap_one()'s TTU_SPLIT_HUGE_PMD for a swap-backed THP is the same
// split (shrink_folio_list() asks for it for any PMD-mappable folio).
function* lazyfreePmd(m: Machine, h: RmapHit, head: number): KGen {
  const A = m.arch;
  const G = m.geo;
  if (h.addr % G.pmdSize !== 0 || h.addr < h.vma.start || h.addr + G.pmdSize > h.vma.end) return;
  const pi = pmdOffset(m, h.mm, h.addr, false);
  if (pi < 0) return;
  const v = m.tables.get(pi);
  if (v !== 0 && A.entryIsLeaf(v) && A.ptePfn(v) === head) yield* splitHugePmd(m, h.mm, h.vma, pi, h.addr);
}

function* tryToUnmapLocked(m: Machine, head: number, ubc: TlbUbc | null, slot: number): KGen {
  const A = m.arch;
  const phys = m.phys;
  const hflags = phys.flags[head] as number;
  const anon = (hflags & PG_ANON) !== 0;
  const swap = m.swap;
  const pmdThp = anon && (phys.order[head] as number) === m.geo.pmdOrder;
  let abort = false;
  for (const h of rmapWalk(m, head)) {
    const mm = h.mm;
    if (pmdThp) yield* lazyfreePmd(m, h, head);
    yield* pageVmaMappedWalk(
      m,
      h,
      head,
      (e, i, a, k) => {
        if (abort) return;
        const pfn = head + k;
        const anonExclusive = anon && ((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0;
        // Nuke the entry; the flush may be deferred (a CPU may still write
        // through a cached entry until then: a clean one must fault to set
        // the dirty bit, and that walk finds the entry gone).
        const pteval = A.getAndClearFullPtes(m, mm, a, e, i, 1, false);
        if (shouldDeferFlush(m, mm, ubc)) setTlbUbcFlushPending(m, ubc as TlbUbc, mm, pteval, a, a + m.geo.pageSize);
        else A.flushTlbRange(m, mm, a, a + m.geo.pageSize, m.geo.pageShift, false);
        if (A.pteDirty(pteval)) phys.flags[head] = (phys.flags[head] as number) | PG_DIRTY;
        if (anon) {
          // folio_try_share_anon_rmap_pte() fails (-EBUSY) for a page a GUP
          // pin may hold (folio_maybe_dma_pinned()): the entry is set back
          // (the kernel duplicated the swap entry first and frees it
          // again), the walk stops, the folio stays mapped and in memory.
          if (anonExclusive && phys.folioMaybeDmaPinned(head)) {
            A.setPtes(m, mm, a, e, i, pteval, 1); // set_pte_at()
            abort = true;
            return;
          }
          // page_swap_entry(): the page's own slot in the folio's run.
          (swap as NonNullable<typeof swap>).duplicate(slot + k); // swap_duplicate()
          if (anonExclusive) phys.flags[pfn] = (phys.flags[pfn] as number) & ~PG_ANON_EXCLUSIVE;
          mm.rssAnon--;
          mm.swapEnts++;
          e[i] = A.mkSwapPte(slot + k, anonExclusive); // set_pte_at() of a non-present entry
          m.counters.pteWrites++;
        } else if (hflags & PG_SHMEM) mm.rssShmem--;
        else mm.rssFile--;
        // folio_remove_rmap_pte() and folio_put()
        phys.mapcount[pfn] = (phys.mapcount[pfn] as number) - 1;
        phys.ref[head] = (phys.ref[head] as number) - 1;
        m.counters.folioAtomics += 2;
      },
      null,
    );
    if (m.il) yield S_TTU_PTE;
    if (abort) break;
  }
}

// try_to_migrate() (mm/rmap.c, v6.17) of a PTE-mapped folio with
// TTU_BATCH_FLUSH: try_to_migrate_one() replaces every present PTE that maps
// a page of it with a migration entry that records the page's exclusivity
// (writable, readable-exclusive or readable) and the access and dirty bits;
// a dirty entry dirties the folio; the flush joins the caller's batch. The
// page's AnonExclusive flag moves into the entry
// (folio_try_share_anon_rmap_pte()), which refuses (-EBUSY) a page a GUP
// pin may hold: the entry is set back and the walk stops, so the folio stays
// mapped and the migration fails its reference check. The mapcounts and
// references of the cleared PTEs are dropped (folio_remove_rmap_pte(),
// folio_put()); RSS counts the entries still. A PMD mapping of a THP gets
// a PMD migration entry instead (set_pmd_migration_entry(), under the PMD
// lock, with its own flush), or stops the walk the same way when pinned.
export function* tryToMigrate(m: Machine, head: number, ubc: TlbUbc): KGen {
  const lk = yield* rmapLock(m, head, false);
  try {
    const A = m.arch;
    const phys = m.phys;
    const anon = ((phys.flags[head] as number) & PG_ANON) !== 0;
    let abort = false;
    m.migrating.add(head);
    for (const h of rmapWalk(m, head)) {
      const mm = h.mm;
      yield* pageVmaMappedWalk(
        m,
        h,
        head,
        (e, i, a, k) => {
          if (abort) return;
          const pfn = head + k;
          const pteval = A.getAndClearFullPtes(m, mm, a, e, i, 1, false);
          if (shouldDeferFlush(m, mm, ubc)) setTlbUbcFlushPending(m, ubc, mm, pteval, a, a + m.geo.pageSize);
          else A.flushTlbRange(m, mm, a, a + m.geo.pageSize, m.geo.pageShift, false);
          if (A.pteDirty(pteval)) phys.flags[head] = (phys.flags[head] as number) | PG_DIRTY;
          const anonExclusive = anon && ((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0;
          if (anonExclusive && phys.folioMaybeDmaPinned(head)) {
            A.setPtes(m, mm, a, e, i, pteval, 1); // set_pte_at()
            abort = true;
            return;
          }
          let kind = MIG_READ;
          if (A.pteWrite(pteval)) kind = MIG_WRITE;
          else if (anonExclusive) kind = MIG_READ_EXCLUSIVE;
          if (anonExclusive) phys.flags[pfn] = (phys.flags[pfn] as number) & ~PG_ANON_EXCLUSIVE;
          e[i] = A.mkMigrationPte(pfn, kind, A.pteYoung(pteval), A.pteDirty(pteval)); // set_pte_at()
          m.counters.pteWrites++;
          phys.mapcount[pfn] = (phys.mapcount[pfn] as number) - 1;
          phys.ref[head] = (phys.ref[head] as number) - 1;
          m.counters.folioAtomics += 2;
        },
        (pmdIdx, haddr) => {
          if (!abort && !setPmdMigrationEntry(m, mm, pmdIdx, haddr)) abort = true;
        },
        1 << (phys.order[head] as number),
        false,
        true,
      );
      if (m.il) yield S_TTM_PTE;
      if (abort) break;
    }
  } finally {
    rmapUnlock(m, lk);
  }
}

// split_folio_to_list() for a large anon folio (__folio_split(),
// mm/huge_memory.c, v6.17). The caller holds one reference (isolation);
// fails (false, -EAGAIN) when someone else holds an extra one: checked
// first without the PTE locks (can_split_folio(), racy), and again once the
// entries are cleared (folio_ref_freeze()), which a concurrent zap still
// holding the reference of a PTE it cleared makes fail.
// In the kernel's order:
//  1. unmap_folio(): PMD mappings are split to PTEs (TTU_SPLIT_HUGE_PMD),
//     then try_to_migrate() clears every PTE mapping the folio
//     (try_to_migrate_one(): a dirty entry dirties the folio, the flush is
//     batched with TTU_BATCH_FLUSH and done once by try_to_unmap_flush());
//     on arm64 the first clear in a contpte block unfolds it (break before
//     make, with its own TLBI);
//  2. __split_folio_to_order(): the folio becomes order-0 folios that keep
//     their mapping, index, flags and mapcounts; unmapped pages are freed;
//  3. remap_page() -> remove_migration_ptes(): each entry is set again with
//     set_pte_at() (set_ptes(), nr = 1) from what was cleared: write, young
//     and dirty kept, no CONT (the folios are small now, so nothing refolds).
// Simplified: no migration entries. The kernel leaves a migration entry in
// each PTE between 1 and 3, which makes every other party wait for the split
// (migration_entry_wait(), or a non-present entry for lockless readers);
// the model instead holds the PTE lock of every table that maps the folio
// from 1 to 3, so others wait on the PTL and a lockless reader or the
// hardware walker sees pte_none meanwhile. The rmap is not taken off and put
// back (folio_remove_rmap_pte() / folio_add_anon_rmap_pte() cancel out), and
// AnonExclusive stays on the page. The locks are taken in rmap walk order,
// one table after another, and a busy one makes the split let go of those it
// holds and start again (no lock order the kernel does not have).
export function* splitFolio(m: Machine, head: number): KGen<boolean> {
  if ((m.phys.order[head] as number) === 0) return true;
  // __folio_split(): anon_vma_lock_write() of an anon folio's root,
  // i_mmap_lock_read() of a file folio's mapping, across the whole split.
  const lk = yield* rmapLock(m, head, ((m.phys.flags[head] as number) & PG_ANON) !== 0);
  try {
    return yield* splitFolioLocked(m, head);
  } finally {
    rmapUnlock(m, lk);
  }
}

function* splitFolioLocked(m: Machine, head: number): KGen<boolean> {
  const A = m.arch;
  const phys = m.phys;
  const G = m.geo;
  const T = m.tables;
  const PS = G.pageSize;
  const il = m.il;
  const order = phys.order[head] as number;
  if (order === 0) return true;
  const nr = 1 << order;
  // can_split_folio(): the references are the mappings' (a PMD mapping
  // holds one, as it counts once in folio_mapcount()) and the caller's.
  // A folio in the swap cache (kept by reclaim after its swap-out) holds
  // the cache's reference too, and each page keeps its slot once split.
  const swap = m.swap;
  const swapSlot = swap !== null ? (swap.slotOf.get(head) ?? -1) : -1;
  const cacheRef = swapSlot >= 0 ? 1 : 0;
  let maps = phys.entireMapcount(head);
  for (let k = 0; k < nr; k++) maps += phys.mapcount[head + k] as number;
  if ((phys.ref[head] as number) !== maps + 1 + cacheRef) return false;
  const hits = rmapWalk(m, head);
  // PMD mappings first (split_huge_pmd_address() via TTU_SPLIT_HUGE_PMD).
  for (const h of hits) {
    for (let a = h.addr; a < h.addr + nr * PS; a += G.pmdSize) {
      if (a < h.vma.start || a >= h.vma.end) continue;
      const pi = pmdOffset(m, h.mm, a, false);
      if (pi < 0) continue;
      const v = T.get(pi);
      if (v !== 0 && A.entryIsLeaf(v) && A.ptePfn(v) === head) yield* splitHugePmd(m, h.mm, h.vma, pi, a - (a % G.pmdSize));
    }
  }
  // The PTE tables that map the folio, each locked and held until
  // remap_page() is done. The kernel never holds two at once
  // (page_vma_mapped_walk() takes one table's lock at a time; the migration
  // entries keep the folio's entries out of others' hands meanwhile).
  // Holding them together, the model must not wait for a second lock while
  // holding the first: fork's
  // copy_pte_range() holds the parent's table and waits for the child's, an
  // ABBA the kernel does not have. So a busy second lock makes it let go of
  // all, wait for that one, and start again.
  const held: number[] = []; // slots
  const heldPmd: number[] = []; // the PMD entry index of each
  for (;;) {
    let busy = -1;
    let busyPmd = -1;
    tables: for (const h of hits) {
      for (let k = 0; k < nr; ) {
        const a = h.addr + k * PS;
        const next = Math.min(nr, k + (G.pmdSize - (a % G.pmdSize)) / PS);
        if (a + (next - k) * PS <= h.vma.start || a >= h.vma.end) {
          k = next;
          continue;
        }
        const pi = pmdOffset(m, h.mm, Math.max(a, h.vma.start), false);
        k = next;
        if (pi < 0) continue;
        let pmdv = T.get(pi);
        if (il !== null && pmdv !== 0 && A.pmdLeafInvalid(pmdv)) {
          // A huge PMD being split: its lock is waited for holding nothing.
          if (held.length > 0) {
            busyPmd = pi;
            break tables;
          }
          pmdv = yield* pmdReadLocked(m, pi, S_SPLIT_PMD_LOCK);
        }
        if (pmdv === 0 || !A.entryIsTable(pmdv)) continue;
        const slot = T.slotOfPfn(A.ptePfn(pmdv));
        if (held.includes(slot)) continue;
        if (il) {
          if (held.length === 0) yield* pteLockMapped(il, slot, S_SPLIT_LOCK);
          else if (!il.trylock(LK_PTL, slot)) {
            busy = slot;
            break tables;
          }
          if (T.get(pi) !== pmdv) {
            il.unlock(LK_PTL, slot);
            continue;
          }
        }
        held.push(slot);
        heldPmd.push(pi);
      }
    }
    if ((busy < 0 && busyPmd < 0) || il === null) break;
    for (const slot of held) il.unlock(LK_PTL, slot);
    held.length = 0;
    heldPmd.length = 0;
    if (busyPmd >= 0) yield* pmdReadLocked(m, busyPmd, S_SPLIT_PMD_LOCK);
    else {
      yield il.lock(LK_PTL, busy, true, S_SPLIT_LOCK);
      il.unlock(LK_PTL, busy);
    }
  }
  // The entries mapping the folio in the held tables: table chunk, index,
  // mm and address of each, and what was cleared (the migration entry's
  // information).
  const where: { e: Float64Array; i: number; mm: Mm; a: number; v: number }[] = [];
  for (const h of hits) {
    for (let k = 0; k < nr; k++) {
      const a = h.addr + k * PS;
      if (a < h.vma.start || a >= h.vma.end) continue;
      const pi = pmdOffset(m, h.mm, a, false);
      if (pi < 0 || !heldPmd.includes(pi)) continue;
      const pmdv = T.get(pi);
      if (pmdv === 0 || !A.entryIsTable(pmdv)) continue;
      const slot = T.slotOfPfn(A.ptePfn(pmdv));
      const e = T.chunkOf(slot);
      const i = T.base(slot) + ((a / PS) & G.ptrsMask);
      const v = e[i] as number;
      if (v === 0 || !A.ptePresent(v) || A.pteSpecial(v) || A.ptePfn(v) !== head + k) continue;
      where.push({ e, i, mm: h.mm, a, v: 0 });
    }
  }
  // unmap_folio(): try_to_migrate_one() for each, then try_to_unmap_flush().
  const ubc = new TlbUbc(m);
  for (const w of where) {
    const v = A.ptepGetAndClearFull(m, w.mm, w.a, w.e, w.i, false);
    if (shouldDeferFlush(m, w.mm, ubc)) setTlbUbcFlushPending(m, ubc, w.mm, v, w.a, w.a + PS);
    else A.flushTlbPage(m, w.mm, w.a);
    if (A.pteDirty(v)) phys.flags[head] = (phys.flags[head] as number) | PG_DIRTY;
    w.v = v;
  }
  tryToUnmapFlush(m, ubc);
  // folio_ref_freeze(folio, 1 + extra_pins): the check above was racy. A
  // zap that cleared a PTE of the folio meanwhile has dropped its mapcount
  // but keeps the PTE's reference in its mmu_gather until after its TLB
  // flush (tlb_batch_pages_flush()), and lockless readers may hold one too.
  // The model's cleared entries keep their mapcount and reference, so the
  // references left after unmap_folio() are ref - where.length, and the
  // caller's must be the only one; else -EAGAIN: remap_page() puts the
  // entries back and the folio stays whole.
  if ((phys.ref[head] as number) - where.length !== 1 + cacheRef) {
    for (const w of where) A.setPtes(m, w.mm, w.a, w.e, w.i, w.v, 1);
    if (il) for (const slot of held) il.unlock(LK_PTL, slot);
    return false;
  }
  // __split_folio_to_order(): the tails become folios of their own; the
  // caller's reference stays with the head.
  const hf = phys.flags[head] as number;
  const mapping = phys.aux[head] as number;
  const index = phys.index(head);
  const keep = hf & (PG_ANON | PG_SWAPBACKED | PG_DIRTY | PG_SHMEM);
  for (let k = 0; k < nr; k++) {
    const p = head + k;
    phys.order[p] = 0;
    phys.flags[p] = keep | ((phys.flags[p] as number) & PG_ANON_EXCLUSIVE);
    phys.aux[p] = mapping;
    phys.setIndex(p, index + k);
    phys.ref[p] = (phys.mapcount[p] as number) + (k === 0 ? 1 : 0) + cacheRef;
  }
  // __split_folio_to_order() of a swap-cache folio: each page becomes the
  // cache's folio for its own slot (folio->swap advanced by its index).
  if (swap !== null && swapSlot >= 0) for (let k = 1; k < nr; k++) swap.addToCache(swapSlot + k, head + k);
  let freed = 0;
  for (let k = 1; k < nr; k++) {
    if (phys.ref[head + k] === 0) {
      phys.freeFolio(head + k);
      freed++;
    }
  }
  m.counters.pagesFree += freed;
  m.counters.thpSplits++;
  // remap_page(): remove_migration_pte() for each; the folio is dirty if
  // any entry was, so an entry keeps its own dirty bit.
  for (const w of where) A.setPtes(m, w.mm, w.a, w.e, w.i, w.v, 1);
  if (il) for (const slot of held) il.unlock(LK_PTL, slot);
  return true;
}
