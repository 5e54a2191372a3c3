// madvise(): models madvise_dontneed_free() (zap with PT reclaim details),
// madvise_free_pte_range()/madvise_free_huge_pmd() (lazy free: clean and old
// PTEs, folio loses swap backing; a large folio the range covers in part is
// split first), madvise_cold_or_pageout_pte_range() (MADV_COLD clears young; MADV_PAGEOUT reclaims through reclaim_pages()), and
// MADV_HUGEPAGE/NOHUGEPAGE flag changes (mm/madvise.c, mm/khugepaged.c).

import { CYD_DIRTY, CYD_YOUNG } from "../arch/arch.js";
import type { Machine } from "../machine.js";
import { pmdReadLocked } from "./huge_memory.js";
import { folioPteBatch, type KGen, unmapSingleVma, walkPmdTables, zapSwapPte } from "./memory.js";
import { flushTlbBatchedPending, folioMapcount, folioMaybeMappedShared, splitFolio } from "./rmap.js";
import { folioIsolateLru, reclaimPages } from "./vmscan.js";
import { LK_PMD, LK_PTL, pteLockMapped, site, run } from "../sync.js";
import { variantIs } from "../variant.js";

const S_CLEAN_LOCK = site("madvise_free_pte_range", "take the PTE lock");
const S_CLEAN_PTE = site("madvise_free_pte_range", "load a PTE");
const S_CLEAN_PMD_LOCK = site("madvise_free_huge_pmd", "take the PMD lock");
const S_CLEAN_PMD_SET = site("madvise_free_huge_pmd", "PMD cleared or invalidated, before set_pmd_at()");
const S_COLD_LOCK = site("madvise_cold_or_pageout_pte_range", "take the PTE lock");
const S_COLD_PTE = site("madvise_cold_or_pageout_pte_range", "load a PTE");
const S_COLD_PMD_LOCK = site("madvise_cold_or_pageout_pte_range", "pmd_trans_huge_lock()");
const S_SWAPIN_LOCK = site("swapin_walk_pmd_entry", "take the PTE lock");
import { type MmuGather, tlbFinishMmu, tlbFlushMmuTlbonly, tlbGatherMmu, tlbRemovePmdTlbEntry, tlbRemoveTlbEntries } from "./mmu_gather.js";
import { LVL_PMD } from "./pgtable.js";
import { PG_ANON, PG_DIRTY, PG_SWAPBACKED, PG_ZERO } from "./physmem.js";
import { MmError } from "./mmap.js";
import { idxAt } from "../geometry.js";
import { type Mm, VM_HUGEPAGE, VM_NOHUGEPAGE, type Vma } from "./types.js";
import { isolateRangeLocked, mergeAroundLocked } from "./vma.js";
import { madviseCollapse } from "./khugepaged.js";
import { readSwapCacheAsync } from "./swap_state.js";

export type Advice = "dontneed" | "free" | "hugepage" | "nohugepage" | "willneed" | "cold" | "pageout" | "collapse";

function vmasIn(mm: Mm, start: number, end: number): Vma[] {
  const out: Vma[] = [];
  for (let i = mm.findVmaIndex(start); i < mm.vmas.length; i++) {
    const v = mm.vmas[i] as Vma;
    if (v.start >= end) break;
    out.push(v);
  }
  return out;
}

// madvise_free_pte_range() with madvise_free_huge_pmd() for one PMD table's
// part of the range (mm/madvise.c, v6.17): an exclusively mapped anon folio
// the range covers whole is marked lazily freeable (folio_clear_dirty(),
// folio_mark_lazyfree(): PG_dirty and PG_swapbacked cleared) and its entries
// in the range are made old and clean (clear_young_dirty_ptes()); a large
// folio the range covers only in part (PMD- or PTE-mapped) is split first
// (split_folio()), and left alone if it may be mapped by another mm or the
// split fails. Small folios mapped more than once are left alone.
// Simplified: no folio lock (folio_trylock() always succeeds; can_split_folio()
// fails instead when another splitter holds a reference), no swap cache
// check (a folio in the swap cache is freed from it by folio_free_swap()
// in the kernel; the model's MADV_FREE leaves swap entries and swap-cache
// folios as they are).
function* freePmdRange(tlb: MmuGather, pmdSlot: number, addr: number, end: number): KGen {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const G = m.geo;
  const PS = G.pageSize;
  const mm = tlb.mm;
  while (addr < end) {
    const next = Math.min(addr - (addr % G.pmdSize) + G.pmdSize, end);
    const pmdIdx = pmdSlot * G.ptrs + idxAt(G, addr / PS, LVL_PMD);
    let v = T.get(pmdIdx);
    m.counters.pteReads++;
    // pmd_trans_huge_lock() / __split_huge_pmd() wait for a splitter.
    if (m.il !== null && v !== 0 && A.pmdLeafInvalid(v)) v = yield* pmdReadLocked(m, pmdIdx, S_CLEAN_PMD_LOCK);
    if (v !== 0 && A.entryIsLeaf(v)) {
      // madvise_free_huge_pmd()
      const head = A.ptePfn(v);
      if (((phys.flags[head] as number) & PG_ANON) === 0 || folioMaybeMappedShared(m, head)) {
        addr = next; // the huge zero page, or others map the folio
        continue;
      }
      if (next - addr === G.pmdSize) {
        // Under the PMD lock (pmd_trans_huge_lock()): the entry may have
        // changed while this thread waited for it.
        const il = m.il;
        if (il) {
          if (!il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_CLEAN_PMD_LOCK);
          if (T.get(pmdIdx) !== v) {
            il.unlock(LK_PMD, pmdSlot);
            continue;
          }
        }
        phys.flags[head] = (phys.flags[head] as number) & ~(PG_SWAPBACKED | PG_DIRTY);
        if (A.pteYoung(v) || A.pteDirty(v)) {
          if (variantIs(m, "madv_free_pmd", "clear"))
            T.set(pmdIdx, 0); // pmdp_huge_get_and_clear_full()
          else {
            // pmdp_invalidate(): present for software, faulting for the
            // walker, and flushed before the entry is set again.
            T.set(pmdIdx, A.pmdMkinvalid(v));
            A.flushTlbRange(m, mm, addr, addr + G.pmdSize, G.pmdShift, false);
          }
          m.counters.pteAtomics++;
          if (il) yield S_CLEAN_PMD_SET;
          T.set(pmdIdx, A.pteMkold(A.pteMkclean(v))); // set_pmd_at()
          m.counters.pteWrites++;
          tlbRemovePmdTlbEntry(tlb, addr);
        }
        if (il) il.unlock(LK_PMD, pmdSlot);
        addr = next;
        continue;
      }
      // Part of the THP: split_folio() with a reference of our own (the PMD
      // mapping is split on the way), then the PTE path over the range.
      phys.ref[head] = (phys.ref[head] as number) + 1;
      const ok = yield* splitFolio(m, head);
      if (phys.folioPut(head)) m.counters.pagesFree++;
      v = T.get(pmdIdx);
      if (!ok || v === 0 || A.entryIsLeaf(v)) {
        addr = next;
        continue;
      }
    }
    // No PTE table (pte_offset_map_lock() fails), a PMD migration entry
    // included: skipped.
    if (v === 0 || !A.entryIsTable(v)) {
      addr = next;
      continue;
    }
    const slot = T.slotOfPfn(A.ptePfn(v));
    const il = m.il;
    if (il) {
      yield* pteLockMapped(il, slot, S_CLEAN_LOCK);
      if (T.get(pmdIdx) !== v) {
        il.unlock(LK_PTL, slot);
        addr = next;
        continue;
      }
    }
    flushTlbBatchedPending(m, mm);
    const e = T.chunkOf(slot);
    let a = addr;
    let lost = false;
    while (a < next) {
      const i = T.base(slot) + ((a / PS) & G.ptrsMask);
      let x = A.ptepGet(m, e, i);
      // A swap entry is cleared and its slot freed: the page reads as zero
      // without a swap-in (free_swap_and_cache_nr(),
      // clear_not_present_full_ptes()); migration entries stay.
      if (x !== 0 && !A.ptePresent(x) && !A.isMigrationPte(x)) {
        zapSwapPte(m, mm, e, i);
        a += PS;
        continue;
      }
      if (x === 0 || !A.ptePresent(x) || A.pteSpecial(x)) {
        a += PS;
        continue;
      }
      if (il) {
        yield S_CLEAN_PTE;
        x = A.ptepGet(m, e, i);
        if (x === 0 || !A.ptePresent(x) || A.pteSpecial(x)) continue;
      }
      const pfn = A.ptePfn(x);
      const head = phys.folioHead(pfn);
      const order = phys.order[head] as number;
      let nr = 1;
      if (order > 0) {
        nr = folioPteBatch(m, e, i, x, pfn, head, order, (next - a) / PS, false, false);
        if (nr < 1 << order) {
          // Not wholly in the range (or not wholly mapped here): split it,
          // then look at this address again; left alone if shared or the
          // split fails.
          if (folioMaybeMappedShared(m, head)) {
            a += nr * PS;
            continue;
          }
          const ok = yield* splitUnlocked(m, mm, head, slot, pmdIdx, v, S_CLEAN_LOCK);
          if (ok === null) {
            lost = true; // the table went: so did the rest of this PMD's range
            break;
          }
          if (!ok) a += nr * PS;
          continue;
        }
        // The batch's access/dirty (FPB_MERGE_YOUNG_DIRTY).
        for (let k = 1; k < nr; k++) {
          const y = A.ptepGet(m, e, i + k);
          if (A.pteYoung(y)) x = A.pteMkyoung(x);
          if (A.pteDirty(y)) x = A.pteMkdirty(x);
        }
      }
      // Only anon folios this mm maps alone become lazy-free (a large one is
      // wholly mapped here, so that is folio_mapcount() == nr pages).
      if (((phys.flags[head] as number) & PG_ANON) === 0 || folioMapcount(m, head) !== 1 << order) {
        a += nr * PS;
        continue;
      }
      phys.flags[head] = (phys.flags[head] as number) & ~(PG_SWAPBACKED | PG_DIRTY);
      if (A.pteYoung(x) || A.pteDirty(x)) {
        A.clearYoungDirtyPtes(m, mm, a, e, i, nr, CYD_YOUNG | CYD_DIRTY);
        tlbRemoveTlbEntries(tlb, a, nr);
      }
      a += nr * PS;
    }
    if (il && !lost) il.unlock(LK_PTL, slot);
    addr = next;
  }
}

// madvise_cold_or_pageout_pte_range() for one PMD table's part of the range
// (mm/madvise.c, v6.17): a PMD-mapped THP is handled whole when the range
// covers it (else split); PTE-mapped large folios not wholly in the range are
// split; folios mapped elsewhere too are left alone. COLD clears the access
// flags (the folio is deactivated: not modelled beyond that); PAGEOUT
// isolates the folios and reclaims them (reclaim_pages()) once the PTE lock
// is dropped.
function* coldOrPageoutPmdRange(tlb: MmuGather, _vma: Vma, pmdSlot: number, addr: number, end: number, pageout: boolean): KGen {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const G = m.geo;
  const il = m.il;
  const mm = tlb.mm;
  while (addr < end) {
    const next = Math.min(addr - (addr % G.pmdSize) + G.pmdSize, end);
    const pmdIdx = pmdSlot * G.ptrs + idxAt(G, addr / G.pageSize, LVL_PMD);
    let v = T.get(pmdIdx);
    m.counters.pteReads++;
    const list: number[] = [];
    // pmd_trans_huge_lock() waits for a splitter.
    if (il !== null && v !== 0 && A.pmdLeafInvalid(v)) v = yield* pmdReadLocked(m, pmdIdx, S_COLD_PMD_LOCK);
    if (v !== 0 && A.entryIsLeaf(v)) {
      const head = A.ptePfn(v);
      // Huge zero page, or a folio mapped by others too: left alone.
      if (((phys.flags[head] as number) & PG_ZERO) !== 0 || folioMapcount(m, head) !== 1 << (phys.order[head] as number)) {
        addr = next;
        continue;
      }
      if (next - addr !== G.pmdSize) {
        // split_folio() with a reference of our own, then the PTE path.
        phys.ref[head] = (phys.ref[head] as number) + 1;
        const ok = yield* splitFolio(m, head);
        if (phys.folioPut(head)) m.counters.pagesFree++;
        if (!ok) {
          addr = next;
          continue;
        }
        v = T.get(pmdIdx);
      } else {
        if (!pageout && A.pteYoung(v)) {
          T.set(pmdIdx, A.pteMkold(v));
          m.counters.pteAtomics++;
          tlbRemovePmdTlbEntry(tlb, addr);
        }
        if (pageout && folioIsolateLru(m, head)) list.push(head);
        if (pageout) yield* reclaimPages(m, list);
        addr = next;
        continue;
      }
    }
    // No PTE table, a PMD migration entry included: skipped.
    if (v === 0 || !A.entryIsTable(v)) {
      addr = next;
      continue;
    }
    const slot = T.slotOfPfn(A.ptePfn(v));
    if (il) {
      yield* pteLockMapped(il, slot, S_COLD_LOCK);
      if (T.get(pmdIdx) !== v) {
        il.unlock(LK_PTL, slot);
        addr = next;
        continue;
      }
    }
    flushTlbBatchedPending(m, mm);
    const e = T.chunkOf(slot);
    let a = addr;
    let lost = false;
    while (a < next) {
      const i = T.base(slot) + ((a / G.pageSize) & G.ptrsMask);
      let x = A.ptepGet(m, e, i);
      if (x === 0 || !A.ptePresent(x) || A.pteSpecial(x)) {
        a += G.pageSize;
        continue;
      }
      if (il) {
        yield S_COLD_PTE;
        x = A.ptepGet(m, e, i);
        if (x === 0 || !A.ptePresent(x) || A.pteSpecial(x)) continue;
      }
      const pfn = A.ptePfn(x);
      const head = phys.folioHead(pfn);
      const order = phys.order[head] as number;
      let nr = 1;
      if (order > 0) {
        nr = folioPteBatch(m, e, i, x, pfn, head, order, (next - a) / G.pageSize, false, false);
        if (nr < 1 << order) {
          // Not wholly mapped here: split it unless it may be mapped by
          // another mm (folio_maybe_mapped_shared(); a folio only this mm
          // maps in part, e.g. after MADV_DONTNEED of a page, is split),
          // then look again.
          if (folioMaybeMappedShared(m, head)) {
            a += nr * G.pageSize;
            continue;
          }
          const ok = yield* splitUnlocked(m, mm, head, slot, pmdIdx, v, S_COLD_LOCK);
          if (ok === null) {
            lost = true; // the table went: so did the rest of this PMD's range
            break;
          }
          if (!ok) a += nr * G.pageSize;
          continue;
        }
      }
      // Only folios this mapping maps alone (folio_mapcount() == nr pages).
      if (folioMapcount(m, head) !== 1 << order) {
        a += nr * G.pageSize;
        continue;
      }
      if (!pageout && A.pteYoung(x)) {
        A.clearYoungDirtyPtes(m, mm, a, e, i, nr, CYD_YOUNG);
        tlbRemoveTlbEntries(tlb, a, nr);
      }
      if (pageout && folioIsolateLru(m, head)) list.push(head);
      a += nr * G.pageSize;
    }
    if (il && !lost) il.unlock(LK_PTL, slot);
    if (pageout) yield* reclaimPages(m, list);
    addr = next;
  }
}

// swapin_walk_pmd_entry() (mm/madvise.c) over [addr, end) of one PMD table:
// under the PTE lock each entry is read; for a swap entry the lock is
// dropped, the slot read into the swap cache (read_swap_cache_async(), no
// PG_readahead), and the lock taken again for the next entry. A PMD with
// no PTE table (none, a THP, a migration entry) ends the walk of its range.
function* swapinWalkPmdEntry(m: Machine, vma: Vma, pmdSlot: number, addr: number, end: number): KGen {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const il = m.il;
  while (addr < end) {
    const next = Math.min(addr - (addr % G.pmdSize) + G.pmdSize, end);
    const pmdIdx = pmdSlot * G.ptrs + idxAt(G, addr / G.pageSize, LVL_PMD);
    let locked = false;
    let slot = -1;
    let e: Float64Array | null = null;
    for (let a = addr; a < next; a += G.pageSize) {
      if (!locked) {
        // pte_offset_map_lock(): the PMD read again, NULL if no table.
        const v = T.get(pmdIdx);
        m.counters.pteReads++;
        if (v === 0 || !A.entryIsTable(v)) break;
        slot = T.slotOfPfn(A.ptePfn(v));
        if (il) {
          yield* pteLockMapped(il, slot, S_SWAPIN_LOCK);
          if (T.get(pmdIdx) !== v) {
            il.unlock(LK_PTL, slot);
            break;
          }
        }
        locked = true;
        e = T.chunkOf(slot);
      }
      const x = A.ptepGet(m, e as Float64Array, T.base(slot) + ((a / G.pageSize) & G.ptrsMask));
      if (x === 0 || A.ptePresent(x) || !A.isSwapPte(x) || A.isMigrationPte(x)) continue;
      if (il) il.unlock(LK_PTL, slot);
      locked = false;
      readSwapCacheAsync(m, vma, a, x, false);
    }
    if (locked && il) il.unlock(LK_PTL, slot);
    addr = next;
  }
}

export function doMadvise(m: Machine, mm: Mm, start: number, len: number, advice: Advice): void {
  run(madvise(m, mm, start, len, advice));
}

// madvise_do_behavior() for one call (the caller holds mmap_lock as
// madvise_need_mmap_write() says).
export function* madvise(m: Machine, mm: Mm, start: number, len: number, advice: Advice): KGen {
  const PS = m.geo.pageSize;
  if (start % PS !== 0) throw new MmError("EINVAL", "madvise: address must be page aligned");
  const end = start + Math.ceil(len / PS) * PS;
  switch (advice) {
    case "dontneed": {
      // One gather for the whole call; each VMA zapped with reclaim_pt.
      const tlb = tlbGatherMmu(m, mm);
      for (const vma of vmasIn(mm, start, end)) yield* unmapSingleVma(tlb, vma, start, end, { reclaimPt: true, evenCows: true });
      tlbFinishMmu(tlb);
      break;
    }
    case "free": {
      const tlb = tlbGatherMmu(m, mm);
      for (const vma of vmasIn(mm, start, end)) {
        if (vma.file !== null) continue;
        const s = Math.max(start, vma.start);
        const e = Math.min(end, vma.end);
        m.prof?.enter("madvise_free_single_vma");
        yield* walkPmdTables(m, mm.pgd, m.arch.levels - 1, s, e, (slot, a, b) => freePmdRange(tlb, slot, a, b));
        tlbFlushMmuTlbonly(tlb);
        m.prof?.exit();
      }
      tlbFinishMmu(tlb);
      break;
    }
    case "cold":
    case "pageout": {
      // madvise_cold()/madvise_pageout(): one gather per VMA (tlb_start_vma/
      // tlb_end_vma), madvise_cold_or_pageout_pte_range() per PMD.
      const tlb = tlbGatherMmu(m, mm);
      for (const vma of vmasIn(mm, start, end)) {
        const s = Math.max(start, vma.start);
        const e = Math.min(end, vma.end);
        m.prof?.enter(advice === "pageout" ? "madvise_pageout_page_range" : "madvise_cold_page_range");
        yield* walkPmdTables(m, mm.pgd, m.arch.levels - 1, s, e, (slot, a, b) => coldOrPageoutPmdRange(tlb, vma, slot, a, b, advice === "pageout"));
        tlbFlushMmuTlbonly(tlb);
        m.prof?.exit();
      }
      tlbFinishMmu(tlb);
      break;
    }
    case "hugepage":
    case "nohugepage": {
      // madvise_update_vma() returns at once for a VMA whose flags stay the
      // same: it is not split (nor a THP its boundary would cut) or locked.
      const first = mm.vmas[mm.findVmaIndex(start)];
      if (first === undefined || first.start >= end) throw new MmError("ENOMEM", "madvise: range is not mapped");
      const newFlags = (f: number) => (advice === "hugepage" ? (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE : (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE);
      const vmas = yield* isolateRangeLocked(m, mm, start, end, (v) => newFlags(v.flags) !== v.flags);
      for (const vma of vmas) vma.flags = newFlags(vma.flags);
      yield* mergeAroundLocked(m, mm, start, end);
      break;
    }
    case "willneed":
      // madvise_willneed(): an anonymous VMA's swapped-out pages are read
      // into the swap cache (not mapped). Not modelled: a file's page-cache
      // read-ahead (vfs_fadvise(), with mmap_lock dropped) and shmem's
      // (shmem_swapin_range()).
      for (const vma of vmasIn(mm, start, end)) {
        if (vma.file !== null || vma.isShared || m.swap === null) continue;
        const s = Math.max(start, vma.start);
        const e = Math.min(end, vma.end);
        m.prof?.enter("madvise_willneed");
        yield* walkPmdTables(m, mm.pgd, m.arch.levels - 1, s, e, (slot, a, b) => swapinWalkPmdEntry(m, vma, slot, a, b));
        m.prof?.exit();
      }
      break;
    case "collapse":
      // madvise_collapse(): mmap_lock for reading, taken by the caller;
      // dropped and retaken inside, held on return. Its error return
      // (CollapseStat.errno) is not passed on: `run` takes an error as bad
      // input.
      yield* madviseCollapse(m, mm, start, end);
      break;
  }
}

// A large folio met under the PTE lock of `slot` that must be split first:
// with a reference of our own, the lock dropped (split_folio() sleeps), then
// retaken and the PMD re-checked, and a reclaim flush that became pending
// meanwhile done. Returns whether the split worked, null if the table went
// away while the lock was dropped.
function* splitUnlocked(m: Machine, mm: Mm, head: number, slot: number, pmdIdx: number, v: number, relock: number): KGen<boolean | null> {
  const phys = m.phys;
  const il = m.il;
  phys.ref[head] = (phys.ref[head] as number) + 1;
  if (il) il.unlock(LK_PTL, slot);
  const ok = yield* splitFolio(m, head);
  if (phys.folioPut(head)) m.counters.pagesFree++;
  if (il) {
    yield* pteLockMapped(il, slot, relock);
    if (m.tables.get(pmdIdx) !== v) {
      il.unlock(LK_PTL, slot);
      return null;
    }
  }
  flushTlbBatchedPending(m, mm);
  return ok;
}
