// Unmapping, page-table freeing and fork's copy: models zap_pte_range(),
// zap_present_ptes(), zap_pmd_range(), unmap_page_range(), unmap_single_vma(),
// unmap_vmas(), free_pgd_range(), free_pgtables(), copy_page_range(),
// copy_pte_range() and copy_present_ptes() (mm/memory.c), and
// folio_pte_batch() (mm/internal.h).
//
// Kernel paths are generators: when the machine is interleaving they yield at
// shared page-table accesses; otherwise the `if (il)` tests are all they cost.

import type { Machine } from "../machine.js";
import { MIG_READ } from "../arch/arch.js";
import { variantIs } from "../variant.js";
import { LK_PMD, LK_PTL, pteLockMapped, site } from "../sync.js";
import { freeTableTlb, type MmuGather, tlbFlushMmu, tlbFlushMmuTlbonly, tlbFlushRmaps, tlbRemoveFolioPages, tlbRemoveTlbEntries } from "./mmu_gather.js";
import { LVL_PMD, LVL_PTE } from "./pgtable.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SHMEM } from "./physmem.js";
import { copyHugePmd, pmdReadLocked, splitHugePmd, zapHugePmd } from "./huge_memory.js";
import { freePte, reclaimPtIsEnabled, tryGetAndClearPmd, tryToFreePte, type ZapDetails } from "./pt_reclaim.js";
import { flushTlbBatchedPending } from "./rmap.js";
import { idxAt } from "../geometry.js";
import { type Mm, VM_WRITE, type Vma } from "./types.js";
import { newAnonPage, vmaPageProt } from "./fault.js";
import { accountTable, pmdOffset, pteAlloc } from "./walk.js";

export type KGen<T = void> = Generator<number, T, void>;

const S_ZAP_MAP = site("zap_pte_range", "pte_offset_map_lock()");
const S_ZAP_LOCK = site("zap_pte_range", "take the PTE lock");
const S_ZAP_PTE = site("zap_pte_range", "load a PTE");
const S_ZAP_UNLOCKED = site("zap_pte_range", "after pte_unmap_unlock()");
const S_ZAP_PMD_LOCK = site("zap_pmd_range", "take the PMD lock of a huge PMD");
const S_COPY_LOCK = site("copy_pte_range", "take the PTE locks");
const S_COPY_PMD_LOCK = site("copy_huge_pmd", "take the PMD locks");
const S_COPY_PTE = site("copy_pte_range", "load a source PTE");
const S_COPY_WRPROTECT = site("copy_present_ptes", "rmap duplicated (pin test passed), the parent's entries not yet write-protected");

// folio_pte_batch_flags(): how many PTEs from index i map consecutive pages
// of the folio the entry `v` maps, with equal bits apart from those ignored.
// At most max_nr, and never past the folio's last page. pte_batch_hint() lets
// an architecture vouch for a run (arm64: the rest of a contpte block) so it
// is not compared entry by entry. With FPB_MERGE_WRITE the caller reads
// batchAnyWritable afterwards.
export let batchAnyWritable = false;
export function folioPteBatch(
  m: Machine,
  e: Float64Array, // chunk holding the table
  i: number, // index of the first entry in e
  v: number,
  pfn: number,
  head: number,
  order: number,
  maxNr: number,
  respectDirty: boolean,
  respectWrite: boolean,
): number {
  const A = m.arch;
  const left = head + (1 << order) - pfn;
  let max = maxNr < left ? maxNr : left;
  // Every caller bounds max_nr by the PMD's end; one that does not would
  // read the page after the table. Reported, and the read is not made.
  const room = m.geo.ptrs - (i & m.geo.ptrsMask);
  if (max > room) {
    if (m.config.checkInvariants)
      m.violations.push({
        invariant: "pt-out-of-bounds",
        cpu: m.curCpu,
        message: `folio_pte_batch() asked to scan ${max} entries from entry ${i & m.geo.ptrsMask} of a PTE table of ${m.geo.ptrs}: ${max - room} past the table's end`,
      });
    max = room;
  }
  batchAnyWritable = A.pteWrite(v);
  if (max <= 1) return 1;
  let nr = A.pteBatchHint(e, i, v);
  let expect = A.pteBatchNorm(A.pteAdvancePfn(v, nr), respectDirty, respectWrite);
  while (nr < max) {
    const x = A.ptepGet(m, e, i + nr);
    if (A.pteBatchNorm(x, respectDirty, respectWrite) !== expect) break;
    if (!batchAnyWritable && A.pteWrite(x)) batchAnyWritable = true;
    const h = A.pteBatchHint(e, i + nr, x);
    nr += h;
    expect = A.pteAdvancePfn(expect, h);
  }
  return nr < max ? nr : max;
}

// zap_nonpresent_ptes() for a swap entry: pte_clear_not_present_full(),
// MM_SWAPENTS, free_swap_and_cache_nr() (a swap-cache folio nobody maps any
// more leaves the cache once none of its slots has another user:
// __try_to_reclaim_swap(), swap_only_has_cache()). The kernel frees a
// swap_pte_batch() run of entries at once; one by one gives the same counts
// and drops the cache folio at the run's last entry.
export function zapSwapPte(m: Machine, mm: Mm, e: Float64Array, i: number): void {
  const v = e[i] as number;
  e[i] = 0;
  m.counters.pteWrites++;
  mm.swapEnts--;
  const swap = m.swap;
  if (swap === null) throw new Error("model bug: a swap entry without a swap device");
  const slot = m.arch.swpOffset(v);
  swap.free(slot);
  const head = swap.cache.get(slot);
  if (head === undefined || m.isolated.has(head)) return;
  const phys = m.phys;
  const nr = 1 << (phys.order[head] as number);
  if (swap.anySwapped(swap.slotOf.get(head) as number, nr)) return;
  for (let k = 0; k < nr; k++) if ((phys.mapcount[head + k] as number) !== 0) return;
  if (phys.entireMapcount(head) !== 0) return;
  swap.deleteFromCache(head, nr);
  if (phys.folioPut(head)) m.counters.pagesFree += nr;
}

function anonHead(m: Machine, pfn: number): boolean {
  return ((m.phys.flags[m.phys.folioHead(pfn)] as number) & PG_ANON) !== 0;
}

function folioCounterDelta(mm: Mm, flagsHead: number, n: number): void {
  if (flagsHead & PG_ANON) mm.rssAnon += n;
  else if (flagsHead & PG_SHMEM) mm.rssShmem += n;
  else mm.rssFile += n;
}

// zap_pte_range(): returns the address it stopped at (== end when done).
export function* zapPteRange(tlb: MmuGather, vma: Vma, pmdIdx: number, addr: number, end: number, details: ZapDetails | null): KGen<number> {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const C = m.counters;
  const mm = tlb.mm;
  const fullmm = tlb.fullmm;
  const il = m.il;
  const start = addr;
  const canReclaim = reclaimPtIsEnabled(m, addr, end, details);
  const batched = variantIs(m, "zap_batching", "batched");
  const PS = m.geo.pageSize;
  // !should_zap_cows(): unmap_mapping_folio() leaves private anon copies
  // (and swap entries) alone.
  const keepCows = details !== null && !details.evenCows && !details.reclaimPt;
  let directReclaim = true;
  let pmdval = 0;
  for (;;) {
    let forceFlush = false;
    let forceBreak = false;
    // pte_offset_map_lock(): map the table, take its PTL, re-check the PMD.
    if (il) yield S_ZAP_MAP;
    const pmdv = T.get(pmdIdx);
    C.pteReads++;
    if (!A.entryIsTable(pmdv)) return end;
    const slot = T.slotOfPfn(A.ptePfn(pmdv));
    if (il) {
      yield* pteLockMapped(il, slot, S_ZAP_LOCK);
      if (T.get(pmdIdx) !== pmdv) {
        il.unlock(LK_PTL, slot);
        return end; // the table went away (PT reclaim): nothing left to zap
      }
    }
    flushTlbBatchedPending(m, mm);
    const e = T.chunkOf(slot);
    let i = T.base(slot) + ((addr / PS) & m.geo.ptrsMask);
    while (addr !== end) {
      let v = A.ptepGet(m, e, i);
      if (v === 0) {
        i++;
        addr += PS;
        continue;
      }
      // Under the PTL a none entry stays none, so only present ones are
      // worth a point (hardware and lockless readers act on those).
      if (il) {
        yield S_ZAP_PTE;
        v = A.ptepGet(m, e, i);
      }
      let nr = 1;
      if (keepCows && (!A.ptePresent(v) ? !A.isMigrationPte(v) || anonHead(m, A.migrationPfn(v)) : !A.pteSpecial(v) && anonHead(m, A.ptePfn(v)))) {
        // should_zap_folio() false: kept.
      } else if (!A.ptePresent(v)) {
        if (A.isMigrationPte(v)) {
          // zap_nonpresent_ptes(): a migration entry counts in RSS.
          e[i] = 0;
          C.pteWrites++;
          folioCounterDelta(mm, phys.flags[phys.folioHead(A.migrationPfn(v))] as number, -1);
        } else zapSwapPte(m, mm, e, i); // a swap entry gives its slot back
      } else if (A.pteSpecial(v)) {
        // vm_normal_page() == NULL: zero page or a special mapping.
        A.ptepGetAndClearFull(m, mm, addr, e, i, fullmm);
        tlbRemoveTlbEntries(tlb, addr, 1);
      } else {
        const pfn = A.ptePfn(v);
        const head = phys.folioHead(pfn);
        const order = phys.order[head] as number;
        const hflags = phys.flags[head] as number;
        if (order > 0 && batched) nr = folioPteBatch(m, e, i, v, pfn, head, order, (end - addr) / PS, false, false);
        // zap_present_folio_ptes(): anon folios need no access/dirty.
        let delayRmap = false;
        if (!batched) {
          const pte = A.ptepGetAndClearFull(m, mm, addr, e, i, fullmm);
          if ((hflags & PG_ANON) === 0 && A.pteDirty(pte)) {
            phys.flags[head] = hflags | PG_DIRTY;
            delayRmap = true;
            forceFlush = true;
          }
        } else if ((hflags & PG_ANON) === 0) {
          const pte = A.getAndClearFullPtes(m, mm, addr, e, i, nr, fullmm);
          if (A.pteDirty(pte)) {
            phys.flags[head] = hflags | PG_DIRTY;
            // tlb_delay_rmap(): the rmap must outlive the TLB entry, or
            // writeback could miss a write through it.
            delayRmap = true;
            forceFlush = true;
          }
        } else A.clearFullPtes(m, mm, addr, e, i, nr, fullmm);
        tlbRemoveTlbEntries(tlb, addr, nr);
        if (!delayRmap) {
          // folio_remove_rmap_ptes(): one atomic per page's _mapcount, plus
          // the large folio's _large_mapcount and _nr_pages_mapped once.
          for (let k = 0; k < nr; k++) phys.mapcount[pfn + k] = (phys.mapcount[pfn + k] as number) - 1;
          C.folioAtomics += order > 0 ? nr + 2 : nr;
        }
        folioCounterDelta(mm, hflags, -nr);
        if (tlbRemoveFolioPages(tlb, pfn, nr, delayRmap)) {
          forceFlush = true;
          forceBreak = true;
        }
      }
      i += nr;
      addr += nr * PS;
      if (forceBreak) {
        if (canReclaim && !variantIs(m, "pt_reclaim", "direct-always")) directReclaim = false;
        break;
      }
    }
    if (canReclaim && directReclaim && addr === end) {
      pmdval = tryGetAndClearPmd(m, pmdIdx);
      if (pmdval === 0) directReclaim = false; // the PMD trylock failed
    }
    if (forceFlush) {
      tlbFlushMmuTlbonly(tlb);
      tlbFlushRmaps(tlb);
    }
    // pte_unmap_unlock(): other CPUs may take the locks (and fault into a
    // reclaimed range) before this CPU flushes.
    if (il) {
      il.unlock(LK_PTL, slot);
      yield S_ZAP_UNLOCKED;
    }
    if (forceFlush) tlbFlushMmu(tlb);
    if (addr === end) break;
  }
  if (canReclaim) {
    if (directReclaim) freePte(tlb, start, pmdval);
    else yield* tryToFreePte(tlb, pmdIdx, start);
  }
  return addr;
}

// zap_pmd_range() over the PMD entries of one PMD table.
function* zapPmdRange(tlb: MmuGather, vma: Vma, pmdSlot: number, addr: number, end: number, details: ZapDetails | null): KGen {
  const m = tlb.m;
  const A = m.arch;
  const G = m.geo;
  while (addr < end) {
    const next = Math.min(addr - (addr % G.pmdSize) + G.pmdSize, end);
    const pmdIdx = pmdSlot * G.ptrs + idxAt(G, addr / G.pageSize, LVL_PMD);
    let v = m.tables.get(pmdIdx);
    m.counters.pteReads++;
    // pmd_trans_huge_lock() / __split_huge_pmd() wait for a splitter.
    if (m.il !== null && v !== 0 && A.pmdLeafInvalid(v)) v = yield* pmdReadLocked(m, pmdIdx, S_ZAP_PMD_LOCK);
    // is_swap_pmd() || pmd_trans_huge(): a PMD migration entry is zapped
    // whole or split to PTE migration entries likewise.
    if (v !== 0 && (A.entryIsLeaf(v) || A.isMigrationPmd(v))) {
      if (next - addr === G.pmdSize) {
        zapHugePmd(tlb, pmdIdx, addr);
        addr = next;
        continue;
      }
      yield* splitHugePmd(m, tlb.mm, vma, pmdIdx, addr - (addr % G.pmdSize));
    }
    if (m.tables.get(pmdIdx) !== 0) {
      let a = addr;
      const pf = m.prof;
      while (a !== next) {
        if (pf !== null) pf.enter("zap_pte_range");
        a = yield* zapPteRange(tlb, vma, pmdIdx, a, next, details);
        if (pf !== null) pf.exit();
      }
    }
    addr = next;
  }
}

// Visits, for each PMD table overlapping [addr, end), the sub-range it covers:
// the upper levels of unmap_page_range()/change_protection_range().
export function* walkPmdTables(m: Machine, slot: number, level: number, addr: number, end: number, fn: (pmdSlot: number, a: number, e: number) => KGen): KGen {
  // Two-level tables (arm64 16K/36-bit, 64K/42-bit): the top table is the PMD table.
  if (level === LVL_PMD) {
    yield* fn(slot, addr, end);
    return;
  }
  const G = m.geo;
  const span = (G.span[level] as number) * G.pageSize;
  while (addr < end) {
    const next = Math.min(addr - (addr % span) + span, end);
    const v = m.tables.get(slot * G.ptrs + idxAt(G, addr / G.pageSize, level));
    m.counters.pteReads++;
    if (v !== 0 && m.arch.entryIsTable(v)) {
      const child = m.tables.slotOfPfn(m.arch.ptePfn(v));
      if (level - 1 === LVL_PMD) yield* fn(child, addr, next);
      else yield* walkPmdTables(m, child, level - 1, addr, next, fn);
    }
    addr = next;
  }
}

// unmap_single_vma() for [start, end) clipped to the VMA, bracketed by
// tlb_start_vma()/tlb_end_vma(); x86 does not merge VMAs in a gather, so the
// end of each VMA flushes.
export function* unmapSingleVma(tlb: MmuGather, vma: Vma, start: number, end: number, details: ZapDetails | null): KGen {
  const s = Math.max(start, vma.start);
  const e = Math.min(end, vma.end);
  if (s >= e) return;
  const m = tlb.m;
  const pf = m.prof;
  if (pf !== null) pf.enter("unmap_single_vma");
  yield* walkPmdTables(m, tlb.mm.pgd, m.arch.levels - 1, s, e, (pmdSlot, a, b) => zapPmdRange(tlb, vma, pmdSlot, a, b, details));
  if (!tlb.fullmm) tlbFlushMmuTlbonly(tlb);
  if (pf !== null) pf.exit();
}

// unmap_vmas()
export function* unmapVmas(tlb: MmuGather, vmas: Vma[], start: number, end: number, details: ZapDetails | null): KGen {
  for (const vma of vmas) yield* unmapSingleVma(tlb, vma, start, end, details);
}

// free_pgd_range(): frees the tables that lie wholly inside [addr, end) once
// clipped by floor and ceiling (the neighbouring VMAs keep theirs).
// ceiling 0 means the top of the address space (USER_PGTABLES_CEILING).
export function freePgdRange(tlb: MmuGather, addr: number, end: number, floor: number, ceiling: number): void {
  const m = tlb.m;
  const PMDS = m.geo.pmdSize;
  addr -= addr % PMDS;
  if (addr < floor) addr += PMDS;
  let ceil = ceiling;
  if (ceil !== 0) {
    ceil -= ceil % PMDS;
    if (ceil === 0) return;
  }
  if (ceil !== 0 && end - 1 > ceil - 1) end -= PMDS;
  if (addr > end - 1) return;
  freeLevelRange(tlb, tlb.mm.pgd, m.arch.levels - 1, addr, end, floor, ceiling);
}

// free_p4d_range()/free_pud_range()/free_pmd_range()/free_pte_range(): the
// table at `slot` is at `level`; children of its entries in [addr, end) are
// freed, then each child table itself if its whole span lies in [floor, ceiling).
function freeLevelRange(tlb: MmuGather, slot: number, level: number, addr: number, end: number, floor: number, ceiling: number): void {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const span = (G.span[level] as number) * G.pageSize;
  let a = addr;
  while (a < end) {
    const next = Math.min(a - (a % span) + span, end);
    const ei = slot * G.ptrs + idxAt(G, a / G.pageSize, level);
    const v = T.get(ei);
    m.counters.pteReads++;
    if (v !== 0 && A.entryIsTable(v)) {
      const child = T.slotOfPfn(A.ptePfn(v));
      const childLevel = level - 1;
      if (childLevel === LVL_PTE) {
        T.set(ei, 0);
        m.counters.pteWrites++;
        freeTableTlb(tlb, child, a, LVL_PTE);
        accountTable(m, tlb.mm, LVL_PTE, -1);
      } else {
        freeLevelRange(tlb, child, childLevel, a, next, floor, ceiling);
        // The child table goes too unless a neighbour inside its span, below
        // floor or from ceiling up, may still use it.
        const cstart = a - (a % span);
        let ok = cstart >= floor;
        if (ok && ceiling !== 0) {
          const c = ceiling - (ceiling % span);
          ok = c !== 0 && next - 1 <= c - 1;
        }
        if (ok) {
          T.set(ei, 0);
          m.counters.pteWrites++;
          freeTableTlb(tlb, child, cstart, childLevel);
          accountTable(m, tlb.mm, childLevel, -1);
        }
      }
    }
    a = next;
  }
}

// free_pgtables(): for the VMAs being removed (sorted), free their page
// tables bounded by floor (end of the previous remaining VMA) and ceiling
// (start of the next remaining one, 0 for none).
export function freePgtables(tlb: MmuGather, vmas: Vma[], floor: number, ceiling: number): void {
  const PMDS = tlb.m.geo.pmdSize;
  const pf = tlb.m.prof;
  if (pf !== null) pf.enter("free_pgtables");
  let j = 0;
  while (j < vmas.length) {
    const first = vmas[j] as Vma;
    let k = j + 1;
    // Neighbouring VMAs closer than a PMD are freed in one go.
    while (k < vmas.length && (vmas[k] as Vma).start <= (vmas[k - 1] as Vma).end + PMDS) k++;
    const last = vmas[k - 1] as Vma;
    const nextStart = k < vmas.length ? (vmas[k] as Vma).start : ceiling;
    freePgdRange(tlb, first.start, last.end, floor, nextStart);
    j = k;
  }
  if (pf !== null) pf.exit();
}

// copy_present_ptes()/copy_pte_range() for one PMD extent.
function* copyPteRange(m: Machine, dst: Mm, src: Mm, vma: Vma, dstPmdIdx: number, srcPmdIdx: number, addr: number, end: number): KGen {
  const A = m.arch;
  const phys = m.phys;
  const C = m.counters;
  const il = m.il;
  const dslot = pteAlloc(m, dst, dstPmdIdx);
  const T = m.tables;
  const sv = T.get(srcPmdIdx);
  if (!A.entryIsTable(sv)) return;
  const sslot = T.slotOfPfn(A.ptePfn(sv));
  if (il) {
    // The child's PTL, then the parent's nested (spin_lock_nested()). The
    // parent's table is mapped under RCU (pte_offset_map_rw_nolock()):
    // since v6.16 a MADV_DONTNEED of a neighbouring VMA, under that VMA's
    // lock alone, may have emptied and freed it with PT reclaim meanwhile;
    // then the kernel reads the freed table's none entries and copies
    // nothing, which is what returning here does.
    yield il.lock(LK_PTL, dslot, true, S_COPY_LOCK);
    yield* pteLockMapped(il, sslot, S_COPY_LOCK);
    if (T.get(srcPmdIdx) !== sv) {
      il.unlock(LK_PTL, sslot);
      il.unlock(LK_PTL, dslot);
      return;
    }
  }
  const es = T.chunkOf(sslot);
  const ed = T.chunkOf(dslot);
  const PS = m.geo.pageSize;
  let si = T.base(sslot) + ((addr / PS) & m.geo.ptrsMask);
  let di = T.base(dslot) + ((addr / PS) & m.geo.ptrsMask);
  const cow = vma.isCow;
  const shared = vma.isShared;
  while (addr < end) {
    let v = A.ptepGet(m, es, si);
    if (v === 0) {
      si++;
      di++;
      addr += PS;
      continue;
    }
    if (il) {
      yield S_COPY_PTE;
      v = A.ptepGet(m, es, si);
    }
    let nr = 1;
    let pte = v;
    if (!A.ptePresent(v) && A.isMigrationPte(v)) {
      // copy_nonpresent_pte(): the child's entry counts in its RSS; in a COW
      // mapping an exclusive or writable entry becomes a readable one in
      // both, as the page is shared now.
      folioCounterDelta(dst, phys.flags[phys.folioHead(A.migrationPfn(v))] as number, 1);
      if (A.migrationKind(v) !== MIG_READ && cow) {
        pte = A.mkMigrationPte(A.migrationPfn(v), MIG_READ, A.migrationYoung(v), A.migrationDirty(v));
        es[si] = pte;
        C.pteWrites++;
      }
      ed[di] = pte;
      C.pteWrites++;
    } else if (!A.ptePresent(v)) {
      // copy_nonpresent_pte(): the slot gains a user; neither copy is
      // exclusive any more.
      (m.swap as NonNullable<typeof m.swap>).duplicate(A.swpOffset(v));
      if (A.pteSwpExclusive(v)) {
        pte = A.pteSwpClearExclusive(v);
        es[si] = pte;
        C.pteWrites++;
      }
      ed[di] = pte;
      C.pteWrites++;
      dst.swapEnts++;
    } else if (A.pteSpecial(v)) {
      A.setPtes(m, dst, addr, ed, di, v, 1);
    } else {
      const pfn = A.ptePfn(v);
      const head = phys.folioHead(pfn);
      const order = phys.order[head] as number;
      const hflags = phys.flags[head] as number;
      // folio_try_dup_anon_rmap_ptes() refuses an AnonExclusive page of a
      // folio that may be pinned (folio_needs_cow_for_dma(): MMF_HAS_PINNED
      // and folio_maybe_dma_pinned()); the batch gives up (-EAGAIN) and
      // copy_pte_range() goes on one entry at a time, where the page is
      // copied for the child (copy_present_page()).
      const maybePinned = (hflags & PG_ANON) !== 0 && src.hasPinned && phys.folioMaybeDmaPinned(head) && !variantIs(m, "fork_pin", "share");
      if (maybePinned && ((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0) {
        copyPresentPage(m, dst, addr, ed, di, pfn);
        si++;
        di++;
        addr += PS;
        continue;
      }
      // FPB_MERGE_WRITE, plus FPB_RESPECT_DIRTY for private mappings.
      if (order > 0 && !maybePinned) {
        nr = folioPteBatch(m, es, si, v, pfn, head, order, (end - addr) / PS, !shared, false);
        if (batchAnyWritable) pte = A.pteMkwrite(pte);
      }
      // folio_try_dup_anon_rmap_ptes() / folio_dup_file_rmap_ptes()
      for (let k = 0; k < nr; k++) {
        phys.mapcount[pfn + k] = (phys.mapcount[pfn + k] as number) + 1;
        if (hflags & PG_ANON) phys.flags[pfn + k] = (phys.flags[pfn + k] as number) & ~PG_ANON_EXCLUSIVE;
      }
      phys.ref[head] = (phys.ref[head] as number) + nr;
      C.folioAtomics += order > 0 ? nr + 3 : nr + 1;
      folioCounterDelta(dst, hflags, nr);
      // __copy_present_ptes()
      if (cow && A.pteWrite(pte)) {
        // Under the PTE locks, but GUP-fast takes none: it may grab a
        // pin here, after folio_try_dup_anon_rmap_ptes() found none.
        // The child's entry is made from the value read before, as the
        // kernel's is; the parent's write-protect is atomic.
        if (il) il.point(S_COPY_WRPROTECT);
        A.wrprotectPtes(m, src, addr, es, si, nr);
        pte = A.pteWrprotect(pte);
      }
      if (shared) pte = A.pteMkclean(pte);
      A.setPtes(m, dst, addr, ed, di, A.pteMkold(pte), nr);
    }
    si += nr;
    di += nr;
    addr += nr * PS;
  }
  if (il) {
    il.unlock(LK_PTL, sslot);
    il.unlock(LK_PTL, dslot);
  }
}

// copy_present_page() (mm/memory.c): fork's early COW of a page a GUP pin
// may hold (70e806e4e645, v5.9). The child gets a new exclusive anon copy,
// dirty and writable if its VMA is; the parent keeps its entry (writable,
// AnonExclusive) and the pinned page. The kernel allocates the copy with
// the PTE locks dropped (-EAGAIN, folio_prealloc(), then copy_pte_range()
// restarts); the model allocates it under them.
function copyPresentPage(m: Machine, dst: Mm, addr: number, ed: Float64Array, di: number, pfn: number): void {
  const A = m.arch;
  const dvma = dst.findVma(addr) as Vma;
  const npfn = newAnonPage(m, dvma, addr);
  if (m.il) m.il.copyPage(pfn, npfn);
  let pte = A.pteMkdirty(A.pfnPte(npfn, vmaPageProt(m, dvma)));
  if ((dvma.flags & VM_WRITE) !== 0) pte = A.pteMkwrite(pte); // maybe_mkwrite()
  A.setPtes(m, dst, addr, ed, di, pte, 1);
  dst.rssAnon++;
  m.counters.cowCopies++;
}

// copy_page_range() for one VMA (the caller checked vma_needs_copy()).
export function* copyPageRange(m: Machine, dst: Mm, src: Mm, vma: Vma): KGen {
  // raw_write_seqcount_begin(&src_mm->write_protect_seq) for a COW mapping:
  // its anon entries may be write-protected from here to the end.
  const cow = vma.isCow;
  if (cow) src.writeProtectSeq++;
  try {
    yield* copyP4dRange(m, dst, src, vma);
  } finally {
    if (cow) src.writeProtectSeq++;
  }
}

// copy_p4d_range() and below, over the VMA.
// copy_huge_pmd()'s locking: the child's PMD lock, then the parent's
// (spin_lock_nested()), and the parent's entry read again under them. A
// fault under the VMA lock, or reclaim or migration, may be splitting the
// THP (the PMD lock is held from pmdp_invalidate() to pmd_populate()): once
// it is a table's, -EAGAIN and the caller copies PTEs. False then.
function* copyHugePmdLocked(m: Machine, dst: Mm, src: Mm, dpi: number, spi: number, vma: Vma): KGen<boolean> {
  const il = m.il;
  if (il === null) {
    copyHugePmd(m, dst, src, dpi, spi, vma);
    return true;
  }
  const A = m.arch;
  const dslot = Math.floor(dpi / m.geo.ptrs);
  const sslot = Math.floor(spi / m.geo.ptrs);
  if (!il.trylock(LK_PMD, dslot)) yield il.lock(LK_PMD, dslot, true, S_COPY_PMD_LOCK);
  if (!il.trylock(LK_PMD, sslot)) yield il.lock(LK_PMD, sslot, true, S_COPY_PMD_LOCK);
  const v = m.tables.get(spi);
  const huge = v !== 0 && (A.isMigrationPmd(v) || A.entryIsLeaf(v));
  if (huge) copyHugePmd(m, dst, src, dpi, spi, vma);
  il.unlock(LK_PMD, sslot);
  il.unlock(LK_PMD, dslot);
  return huge;
}

function* copyP4dRange(m: Machine, dst: Mm, src: Mm, vma: Vma): KGen {
  const A = m.arch;
  let addr = vma.start;
  const end = vma.end;
  const PMDS = m.geo.pmdSize;
  const pf = m.prof;
  if (pf !== null) pf.enter("copy_page_range");
  while (addr < end) {
    const next = Math.min(addr - (addr % PMDS) + PMDS, end);
    const spi = pmdOffset(m, src, addr, false);
    if (spi >= 0) {
      const v = m.tables.get(spi);
      if (v !== 0) {
        const dpi = pmdOffset(m, dst, addr, true);
        if (A.isMigrationPmd(v)) {
          // copy_huge_pmd() of a PMD migration entry (is_swap_pmd()).
          if (next - addr === PMDS) {
            if (!(yield* copyHugePmdLocked(m, dst, src, dpi, spi, vma))) yield* copyPteRange(m, dst, src, vma, dpi, spi, addr, next);
          } else {
            yield* splitHugePmd(m, src, vma, spi, addr - (addr % PMDS));
            yield* copyPteRange(m, dst, src, vma, dpi, spi, addr, next);
          }
        } else if (A.entryIsLeaf(v)) {
          // copy_huge_pmd(): folio_try_dup_anon_rmap_pmd() refuses an
          // exclusive THP that may be pinned; the PMD is split and the
          // copy retried on PTEs (-EAGAIN), where copy_present_page()
          // copies each exclusive page for the child.
          const head = A.ptePfn(v);
          const hf = m.phys.flags[head] as number;
          const pinned =
            src.hasPinned &&
            (hf & (PG_ANON | PG_ANON_EXCLUSIVE)) === (PG_ANON | PG_ANON_EXCLUSIVE) &&
            m.phys.folioMaybeDmaPinned(head) &&
            !variantIs(m, "fork_pin", "share");
          if (next - addr === PMDS && !pinned) {
            if (!(yield* copyHugePmdLocked(m, dst, src, dpi, spi, vma))) yield* copyPteRange(m, dst, src, vma, dpi, spi, addr, next);
          } else {
            yield* splitHugePmd(m, src, vma, spi, addr - (addr % PMDS));
            yield* copyPteRange(m, dst, src, vma, dpi, spi, addr, next);
          }
        } else yield* copyPteRange(m, dst, src, vma, dpi, spi, addr, next);
      }
    }
    addr = next;
  }
  if (pf !== null) pf.exit();
}
