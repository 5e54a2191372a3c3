// mremap(): models do_mremap(), expand_vma(), shrink_vma(), move_vma(),
// copy_vma_and_data(), unmap_source_vma(), move_page_tables(),
// move_pgt_entry(), move_normal_pmd() and move_ptes() (mm/mremap.c, v6.17),
// and move_huge_pmd() (mm/huge_memory.c). The `mremap_flush` variant
// "after-unlock" is move_ptes()/move_huge_pmd()/move_page_tables() as they
// were before eb66ae030829 (v4.19-rc8).
//
// Locks: the caller holds mmap_lock for writing (do_mremap() takes it); a
// shrink downgrades it (shrink_vma(), do_vmi_munmap() with unlock), a move
// keeps it (unmap_source_vma()). move_ptes() takes the old then the new PTE
// lock, move_normal_pmd()/move_huge_pmd() the two PMD locks, and
// move_normal_pmd() the rmap locks (i_mmap_rwsem for writing, file VMAs).
//
// Left out: try_realign_addr(), PUD-level moves, soft-dirty, uffd-wp,
// hugetlb, MREMAP_FIXED/MREMAP_DONTUNMAP (a hint is a free range), VM_ACCOUNT
// and mlock accounting, the anon_vma lock (no anon rmap walker runs
// concurrently). One deviation: move_ptes() always takes the rmap locks
// (the kernel does only when copy_vma() could not place the new VMA after the
// old one in rmap order), because the model's truncation walks VMAs in
// address order, not in i_mmap order.
// No Node APIs.

import type { Machine } from "../machine.js";
import { variantIs, variantSelected } from "../variant.js";
import { type Interleaver, LK_ANON_VMA, LK_IMMAP, LK_PMD, LK_PTL, site, run } from "../sync.js";
import { splitHugePmd } from "./huge_memory.js";
import { folioPteBatch, type KGen } from "./memory.js";
import { doMunmap, getUnmappedArea, MmError } from "./mmap.js";
import { anonVmaRoot, flushTlbBatchedPending } from "./rmap.js";
import type { Mm, Vma } from "./types.js";
import { vmaMarkWriteLocked, vmaStartWrite } from "./mmap_lock.js";
import { insertVma, mergeAroundLocked, rangeFree } from "./vma.js";
import { pmdOffset, pteAlloc, pteTableOf } from "./walk.js";

const S_COPY_VMA = site("copy_vma", "vma_link(): take i_mmap_rwsem for writing");
const S_COPY_VMA_ANON = site("copy_vma", "anon_vma_clone(): take the anon_vma lock for writing");
const S_MOVE_RMAP = site("move_ptes", "take_rmap_locks()");
const S_MOVE_LOCK = site("move_ptes", "take the old PTE lock");
const S_MOVE_LOCK_NEW = site("move_ptes", "take the new PTE lock");
const S_MOVE_PTE = site("move_ptes", "load a PTE");
const S_MOVE_NEW_UNLOCKED = site("move_ptes", "after spin_unlock(new_ptl), before the flush (before eb66ae030829)");
const S_MOVE_UNLOCKED = site("move_ptes", "after pte_unmap_unlock()");
const S_PMD_RMAP = site("move_pgt_entry", "take_rmap_locks()");
const S_PMD_LOCK = site("move_normal_pmd", "take the old PMD lock");
const S_PMD_LOCK_NEW = site("move_normal_pmd", "take the new PMD lock");
const S_PMD_UNLOCKED = site("move_normal_pmd", "after spin_unlock()");
const S_HUGE_RMAP = site("move_huge_pmd", "take_rmap_locks()");
const S_HUGE_LOCK = site("move_huge_pmd", "take the old PMD lock");
const S_HUGE_LOCK_NEW = site("move_huge_pmd", "take the new PMD lock");
const S_HUGE_NEW_UNLOCKED = site("move_huge_pmd", "after spin_unlock(new_ptl), before the flush (before eb66ae030829)");
const S_HUGE_UNLOCKED = site("move_huge_pmd", "after spin_unlock()");
const S_FINAL_FLUSH = site("move_page_tables", "before the deferred flush_tlb_range() (before eb66ae030829)");

// Sequential callers (ptlab run, replay): returns the new address.
export function doMremap(m: Machine, mm: Mm, addr: number, oldLen: number, newLen: number, mayMove: boolean, newAddrHint = 0): number {
  return run(mremap(m, mm, addr, oldLen, newLen, mayMove, newAddrHint));
}

// do_mremap() after the lock: shrink in place (shrink_vma()), grow in place
// when the gap allows (expand_vma_in_place()), else move (move_vma()).
// Locks: mmap_lock held for writing on entry; read-held after a shrink.
export function* mremap(m: Machine, mm: Mm, addr: number, oldLen: number, newLen: number, mayMove: boolean, newAddrHint = 0): KGen<number> {
  const vma = mm.findVma(addr);
  if (vma === null || vma.start > addr || addr + oldLen > vma.end) throw new MmError("EFAULT", "mremap: old range is not one mapping");
  if (newLen <= oldLen) {
    if (newLen < oldLen) yield* doMunmap(m, mm, addr + newLen, oldLen - newLen);
    return addr;
  }
  if (newAddrHint === 0 && addr + oldLen === vma.end && rangeFree(mm, vma.end, addr + newLen)) {
    yield* vmaStartWrite(m, mm, vma);
    vma.end = addr + newLen; // vma_merge_extend()
    yield* mergeAroundLocked(m, mm, vma.start, vma.end);
    return addr;
  }
  if (!mayMove && newAddrHint === 0) throw new MmError("ENOMEM", "mremap: cannot grow in place and may_move is not set");
  const dest = newAddrHint !== 0 ? newAddrHint : getUnmappedArea(mm, newLen, m.geo.pageSize);
  yield* moveVma(m, mm, vma, addr, oldLen, dest, newLen);
  return dest;
}

// take_rmap_locks(): i_mmap_rwsem of a file VMA, then its anon_vma's root
// lock, both for writing, so that an rmap walk never sees an entry between
// the old VMA and the new one.
function* takeRmapLocks(m: Machine, il: Interleaver, vma: Vma, s: number): KGen {
  if (vma.file !== null) yield il.lock(LK_IMMAP, vma.file.id, true, s);
  if (vma.anonVma !== 0) yield il.lock(LK_ANON_VMA, anonVmaRoot(m, vma.anonVma), true, s);
}

// drop_rmap_locks()
function dropRmapLocks(m: Machine, il: Interleaver, vma: Vma): void {
  if (vma.anonVma !== 0) il.unlock(LK_ANON_VMA, anonVmaRoot(m, vma.anonVma));
  if (vma.file !== null) il.unlock(LK_IMMAP, vma.file.id);
}

// move_vma(): copy_vma() links the new VMA, move_page_tables() moves the
// entries, unmap_source_vma() unmaps the old range keeping mmap_lock for
// writing.
function* moveVma(m: Machine, mm: Mm, vma: Vma, old: number, oldLen: number, dest: number, newLen: number): KGen {
  const il = m.il;
  // The source VMA's page tables move: faults in it must wait.
  yield* vmaStartWrite(m, mm, vma);
  const nv = vma.clone();
  nv.start = dest;
  nv.end = dest + newLen;
  nv.pgoff = vma.pgoffOf(old, m.geo.pageSize);
  // vma_link(): a file VMA enters the i_mmap tree under i_mmap_rwsem;
  // anon_vma_clone() links it to the anon_vma under the root's lock.
  const file = nv.file;
  if (il && file !== null) yield il.lock(LK_IMMAP, file.id, true, S_COPY_VMA);
  const root = nv.anonVma !== 0 ? anonVmaRoot(m, nv.anonVma) : 0;
  if (il && root !== 0) yield il.lock(LK_ANON_VMA, root, true, S_COPY_VMA_ANON);
  insertVma(mm, nv);
  vmaMarkWriteLocked(m, mm, nv);
  if (il && root !== 0) il.unlock(LK_ANON_VMA, root);
  if (il && file !== null) il.unlock(LK_IMMAP, file.id);
  yield* movePageTables(m, mm, vma, old, dest, oldLen);
  yield* doMunmap(m, mm, old, oldLen, false);
  yield* mergeAroundLocked(m, mm, dest, dest + newLen);
}

// move_page_tables(): per PMD extent (bounded by both sides' PMD
// boundaries), a PMD leaf moves whole when the extent is a whole PMD
// (move_huge_pmd(), else it is split), a PTE table moves whole likewise
// (move_normal_pmd()), otherwise the PTEs move (move_ptes()). Each of them
// flushes the old range it moved, under its locks; the old code deferred
// that flush to the end here unless an entry was dirty.
export function* movePageTables(m: Machine, mm: Mm, vma: Vma, old: number, dest: number, len: number): KGen {
  m.prof?.enter("move_page_tables");
  const A = m.arch;
  const T = m.tables;
  const PMDS = m.geo.pmdSize;
  // Before eb66ae030829: need_flush, and no move_normal_pmd() (v5.0). Asked
  // with variantIs() below where an entry or table actually moves.
  const afterUnlock = variantSelected(m, "mremap_flush", "after-unlock");
  let needFlush = false;
  let off = 0;
  while (off < len) {
    const oa = old + off;
    const da = dest + off;
    const extent = Math.min(PMDS - (oa % PMDS), PMDS - (da % PMDS), len - off);
    off += extent;
    const spi = pmdOffset(m, mm, oa, false); // get_old_pmd()
    if (spi < 0 || T.get(spi) === 0) continue;
    const dpi = pmdOffset(m, mm, da, true); // alloc_new_pmd()
    for (;;) {
      const sv = T.get(spi);
      // is_swap_pmd() || pmd_trans_huge(): a PMD migration entry moves
      // whole or is split likewise.
      if (A.entryIsLeaf(sv) || A.isMigrationPmd(sv)) {
        if (extent === PMDS) {
          const r = yield* moveHugePmd(m, mm, vma, oa, spi, dpi);
          if (r !== 0) {
            if (r === 2) needFlush = true;
            break;
          }
        }
        // The PMD lock may be held by a fault in another VMA of the PMD
        // table (under its VMA lock).
        yield* splitHugePmd(m, mm, vma, spi, oa - (oa % PMDS));
      } else if (extent === PMDS && A.entryIsTable(sv) && !variantIs(m, "mremap_flush", "after-unlock") && (yield* moveNormalPmd(m, mm, vma, oa, spi, dpi)))
        break;
      if (T.get(spi) === 0) break;
      const r = yield* movePtes(m, mm, vma, oa, da, extent, spi, dpi, afterUnlock);
      if (r < 0) continue; // -EAGAIN: the old PMD changed, look again
      if (r === 2) needFlush = true;
      break;
    }
  }
  if (needFlush) {
    if (m.il) yield S_FINAL_FLUSH;
    A.flushTlbRange(m, mm, old, old + len, m.geo.pageShift, false);
  }
  m.prof?.exit();
}

// move_normal_pmd(): the PTE table itself moves to the new PMD entry, under
// both PMD locks and the rmap locks (move_pgt_entry() takes them for a
// NORMAL_PMD), and the old range is flushed before the locks are dropped.
function* moveNormalPmd(m: Machine, mm: Mm, vma: Vma, oa: number, spi: number, dpi: number): KGen<boolean> {
  const A = m.arch;
  const T = m.tables;
  const il = m.il;
  if (T.get(dpi) !== 0) return false; // WARN_ON_ONCE(!pmd_none(*new_pmd))
  const ptrs = m.geo.ptrs;
  const so = Math.floor(spi / ptrs);
  const sn = Math.floor(dpi / ptrs);
  if (il) {
    yield* takeRmapLocks(m, il, vma, S_PMD_RMAP);
    yield il.lock(LK_PMD, so, true, S_PMD_LOCK);
    if (sn !== so) yield il.lock(LK_PMD, sn, true, S_PMD_LOCK_NEW);
  }
  const pmd = T.get(spi);
  let res = false;
  // Racing with a collapse (not present, or a leaf now): nothing moves.
  if (A.entryIsTable(pmd)) {
    T.set(spi, 0); // pmd_clear()
    T.set(dpi, pmd); // pmd_populate()
    m.counters.pteWrites += 2;
    A.flushTlbRange(m, mm, oa, oa + m.geo.pmdSize, m.geo.pageShift, false);
    res = true;
  }
  if (il) {
    if (sn !== so) il.unlock(LK_PMD, sn);
    il.unlock(LK_PMD, so);
    dropRmapLocks(m, il, vma);
    yield S_PMD_UNLOCKED;
  }
  return res;
}

// move_huge_pmd() (mm/huge_memory.c): a PMD leaf or PMD migration entry
// moves whole under both PMD locks, inside the rmap locks move_pgt_entry()
// takes (need_rmap_locks: always, as for move_ptes(); without them
// remove_migration_ptes() could look at the new address before the entry
// arrives and at the old one after it left). Returns 0 when it did not
// move, 1 when it moved (and flushed, if it was present), 2 when it moved
// and left the flush to move_page_tables() (the old code, for a clean
// entry). The deposited table moves with it (the model keeps one stack per
// mm).
function* moveHugePmd(m: Machine, mm: Mm, vma: Vma, oa: number, spi: number, dpi: number): KGen<number> {
  const T = m.tables;
  const il = m.il;
  if (T.get(dpi) !== 0) return 0; // WARN_ON(!pmd_none(*new_pmd))
  const ptrs = m.geo.ptrs;
  const so = Math.floor(spi / ptrs);
  const sn = Math.floor(dpi / ptrs);
  if (il) yield* takeRmapLocks(m, il, vma, S_HUGE_RMAP);
  try {
    return yield* moveHugePmdLocked(m, mm, oa, spi, dpi, so, sn);
  } finally {
    if (il) dropRmapLocks(m, il, vma);
  }
}

function* moveHugePmdLocked(m: Machine, mm: Mm, oa: number, spi: number, dpi: number, so: number, sn: number): KGen<number> {
  const A = m.arch;
  const T = m.tables;
  const il = m.il;
  if (il) yield il.lock(LK_PMD, so, true, S_HUGE_LOCK);
  const pmd = T.get(spi);
  // __pmd_trans_huge_lock() fails: neither a leaf nor a swap PMD now.
  const migration = A.isMigrationPmd(pmd);
  if (!A.entryIsLeaf(pmd) && !migration) {
    if (il) il.unlock(LK_PMD, so);
    return 0;
  }
  if (il && sn !== so) yield il.lock(LK_PMD, sn, true, S_HUGE_LOCK_NEW);
  // pmdp_huge_get_and_clear(), set_pmd_at()
  T.set(spi, 0);
  T.set(dpi, pmd);
  m.counters.pteWrites += 2;
  let r = 1;
  if (!variantIs(m, "mremap_flush", "after-unlock")) {
    // v6.17: a present entry forces the flush before either lock is
    // dropped; a PMD migration entry needs none.
    if (!migration) A.flushTlbRange(m, mm, oa, oa + m.geo.pmdSize, m.geo.pmdShift, false);
    if (il) {
      if (sn !== so) il.unlock(LK_PMD, sn);
      il.unlock(LK_PMD, so);
    }
  } else {
    // Before eb66ae030829: the new lock goes first; only a dirty entry is
    // flushed (still under the old lock), a clean one by the caller.
    if (il && sn !== so) {
      il.unlock(LK_PMD, sn);
      yield S_HUGE_NEW_UNLOCKED;
    }
    if (!migration && A.pteDirty(pmd)) A.flushTlbRange(m, mm, oa, oa + m.geo.pmdSize, m.geo.pageShift, false);
    else r = 2;
    if (il) il.unlock(LK_PMD, so);
  }
  if (il) yield S_HUGE_UNLOCKED;
  return r;
}

// move_ptes(): under the old and the new PTE lock, each entry is cleared
// and set at the new address, batched over a large folio
// (mremap_folio_pte_batch(), get_and_clear_full_ptes(), set_ptes()); the
// batch respects the write bit (04d1c9d60c6e) unless mremap_batching says
// otherwise.
// v6.17 flushes the old range before unlocking when a present entry moved
// (force_flush). Returns -1 for -EAGAIN (the old PMD changed), 2 when the
// old code left the flush to the caller, else 1.
function* movePtes(m: Machine, mm: Mm, vma: Vma, oa: number, da: number, extent: number, spi: number, dpi: number, afterUnlock: boolean): KGen<number> {
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const il = m.il;
  const PS = m.geo.pageSize;
  const dslot = pteAlloc(m, mm, dpi);
  const pmdv = T.get(spi);
  const sslot = pteTableOf(m, pmdv);
  if (il) {
    // take_rmap_locks(), then pte_offset_map_lock() on the old table and
    // the new table's lock nested (mmap_lock excludes an ABBA deadlock).
    yield* takeRmapLocks(m, il, vma, S_MOVE_RMAP);
    yield il.lock(LK_PTL, sslot, true, S_MOVE_LOCK);
    if (T.get(spi) !== pmdv) {
      il.unlock(LK_PTL, sslot);
      dropRmapLocks(m, il, vma);
      return -1;
    }
    if (dslot !== sslot) yield il.lock(LK_PTL, dslot, true, S_MOVE_LOCK_NEW);
  }
  // flush_tlb_batched_pending() (since 3ea277194daa, v4.13): a flush
  // reclaim deferred for this mm happens before any PTE moves.
  flushTlbBatchedPending(m, mm);
  const es = T.chunkOf(sslot);
  const ed = T.chunkOf(dslot);
  const n = extent / PS;
  const si0 = T.base(sslot) + ((oa / PS) & m.geo.ptrsMask);
  const di0 = T.base(dslot) + ((da / PS) & m.geo.ptrsMask);
  let forceFlush = false;
  let present = false;
  for (let k = 0; k < n; ) {
    let v = A.ptepGet(m, es, si0 + k);
    if (v === 0) {
      k++;
      continue;
    }
    if (il) {
      yield S_MOVE_PTE;
      v = A.ptepGet(m, es, si0 + k);
    }
    let nr = 1;
    if (afterUnlock) {
      // One entry at a time; the flush is forced only by a dirty one (the
      // check after the clear, 5d1904204c99).
      const pte = A.ptepGetAndClearFull(m, mm, oa + k * PS, es, si0 + k, false);
      if (A.ptePresent(pte)) present = true;
      if (A.ptePresent(pte) && A.pteDirty(pte)) forceFlush = true;
      A.setPtes(m, mm, da + k * PS, ed, di0 + k, pte, 1);
    } else {
      if (A.ptePresent(v) && !A.pteSpecial(v)) {
        const pfn = A.ptePfn(v);
        const head = phys.folioHead(pfn);
        const order = phys.order[head] as number;
        if (order > 0) {
          nr = folioPteBatch(m, es, si0 + k, v, pfn, head, order, n - k, false, true);
          // v6.17.0 batched over entries that differ in the write bit: the
          // two part only where such an entry ends the batch above inside
          // the folio and the extent (not at their ends, the common case).
          if (nr < n - k && nr < head + (1 << order) - pfn) {
            const any = folioPteBatch(m, es, si0 + k, v, pfn, head, order, n - k, false, false);
            if (any > nr && variantIs(m, "mremap_batching", "ignore-write")) nr = any;
          }
        }
      }
      if (A.ptePresent(v)) forceFlush = present = true;
      const pte = A.getAndClearFullPtes(m, mm, oa + k * PS, es, si0 + k, nr, false);
      A.setPtes(m, mm, da + k * PS, ed, di0 + k, pte, nr);
    }
    k += nr;
  }
  let r = 1;
  // The old order departs from v6.17's only where a present entry moved (an
  // empty move costs it one more flush at the end, nothing else).
  if (!present || !variantIs(m, "mremap_flush", "after-unlock")) {
    if (forceFlush) A.flushTlbRange(m, mm, oa, oa + extent, m.geo.pageShift, false);
    if (afterUnlock) r = 2;
    if (il && dslot !== sslot) il.unlock(LK_PTL, dslot);
  } else {
    // Before eb66ae030829: the new table's lock is dropped first, and a
    // clean move leaves the flush to move_page_tables() (need_flush).
    if (il && dslot !== sslot) {
      il.unlock(LK_PTL, dslot);
      yield S_MOVE_NEW_UNLOCKED;
    }
    if (forceFlush) A.flushTlbRange(m, mm, oa, oa + extent, m.geo.pageShift, false);
    else r = 2;
  }
  if (il) {
    il.unlock(LK_PTL, sslot);
    dropRmapLocks(m, il, vma);
    yield S_MOVE_UNLOCKED;
  }
  return r;
}
