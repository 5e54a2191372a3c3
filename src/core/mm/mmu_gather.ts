// struct mmu_gather and its lifecycle: models mm/mmu_gather.c and
// include/asm-generic/tlb.h (tlb_gather_mmu, __tlb_adjust_range,
// tlb_remove_tlb_entries, __tlb_remove_folio_pages, pte_free_tlb,
// tlb_flush_mmu_tlbonly, tlb_flush_mmu, tlb_finish_mmu) with
// CONFIG_MMU_GATHER_RCU_TABLE_FREE.

import { growTo } from "../growable.js";
import type { Machine } from "../machine.js";
import { variantIs } from "../variant.js";
import { TBL_RCU, TBL_UNLINKED } from "./pgtable.js";
import { EV_GATHER, EV_TABLE } from "../events.js";
import type { Mm } from "./types.js";
import { site } from "../sync.js";

const S_TABLE_IPI = site("tlb_remove_table_sync_one", "wait for every CPU to take the IPI");

const MMU_GATHER_BUNDLE = 8; // slots in the embedded first batch
// MAX_GATHER_BATCH: slots in a batch page, (PAGE_SIZE - header) / 8 (510
// on 4K); MAX_GATHER_BATCH_COUNT = 10000 / MAX_GATHER_BATCH.
function maxGatherBatch(pageSize: number): number {
  return (pageSize - 16) / 8;
}
function maxGatherBatchCount(pageSize: number): number {
  return Math.floor(10000 / maxGatherBatch(pageSize));
}

export class MmuGather {
  fullmm: boolean;
  needFlushAll = false;
  freedTables = false;
  clearedPtes = false;
  clearedPmds = false;
  clearedPuds = false;
  clearedP4ds = false;
  delayedRmap = false;
  start = 0;
  end = 0;
  // Page batches: head PFN and page count per entry; a range of a large
  // folio takes two slots, as the kernel encodes it.
  // Grown on demand up to BATCH_ENTRIES: the batch never holds more entries
  // than it has slots.
  pagePfn = new Int32Array(16);
  pageNr = new Int32Array(16);
  pageDelay = new Uint8Array(16);
  nrPages = 0; // entries queued
  batchSlots = 0; // slots used in the active batch
  batchMax = MMU_GATHER_BUNDLE;
  batchIndex = 0; // active batch: 0 is the embedded one
  batchCount = 0; // extra batch pages allocated (kept for reuse after a flush)
  tables: number[] = []; // unlinked table slots (tlb->batch for RCU freeing)

  constructor(
    readonly m: Machine,
    readonly mm: Mm,
    fullmm: boolean,
  ) {
    this.fullmm = fullmm;
    this.resetRange();
  }

  // __tlb_reset_range()
  resetRange(): void {
    if (this.fullmm) {
      this.start = this.end = -1;
    } else {
      this.start = this.m.arch.taskSize;
      this.end = 0;
    }
    this.freedTables = false;
    this.clearedPtes = this.clearedPmds = this.clearedPuds = this.clearedP4ds = false;
  }

  // __tlb_adjust_range()
  adjustRange(addr: number, size: number): void {
    if (this.fullmm) return;
    if (addr < this.start) this.start = addr;
    if (addr + size > this.end) this.end = addr + size;
  }

  get needsFlush(): boolean {
    return this.freedTables || this.clearedPtes || this.clearedPmds || this.clearedPuds || this.clearedP4ds;
  }
}

// tlb_gather_mmu() / tlb_gather_mmu_fullmm()
export function tlbGatherMmu(m: Machine, mm: Mm, fullmm = false): MmuGather {
  mm.tlbFlushPending++; // inc_tlb_flush_pending()
  return new MmuGather(m, mm, fullmm);
}

// tlb_remove_tlb_entries(): nr PTEs from addr were cleared.
export function tlbRemoveTlbEntries(tlb: MmuGather, addr: number, nr: number): void {
  tlb.clearedPtes = true;
  tlb.adjustRange(addr, nr * tlb.m.geo.pageSize);
}

// tlb_remove_pmd_tlb_entry()
export function tlbRemovePmdTlbEntry(tlb: MmuGather, addr: number): void {
  tlb.clearedPmds = true;
  tlb.adjustRange(addr, tlb.m.geo.pmdSize);
}

// __tlb_remove_folio_pages(): queue nr pages of a folio (one reference each)
// for freeing after the flush. Returns true when the batch is full and the
// caller must flush before queueing more.
export function tlbRemoveFolioPages(tlb: MmuGather, headPfn: number, nr: number, delayRmap: boolean): boolean {
  const k = tlb.nrPages++;
  if (k === tlb.pagePfn.length) {
    const ps = tlb.m.geo.pageSize;
    const n = Math.min(k * 4, MMU_GATHER_BUNDLE + maxGatherBatch(ps) * maxGatherBatchCount(ps));
    tlb.pagePfn = growTo(tlb.pagePfn, n);
    tlb.pageNr = growTo(tlb.pageNr, n);
    tlb.pageDelay = growTo(tlb.pageDelay, n);
  }
  tlb.pagePfn[k] = headPfn;
  tlb.pageNr[k] = nr;
  tlb.pageDelay[k] = delayRmap ? 1 : 0;
  if (delayRmap) tlb.delayedRmap = true;
  tlb.batchSlots += nr > 1 ? 2 : 1;
  if (tlb.batchSlots >= tlb.batchMax - 1) {
    // tlb_next_batch(): reuse a batch page kept from before, or allocate
    // one, up to MAX_GATHER_BATCH_COUNT.
    if (tlb.batchIndex === tlb.batchCount) {
      if (tlb.batchCount >= maxGatherBatchCount(tlb.m.geo.pageSize) || tlb.m.config.nowaitAllocFails) return true;
      tlb.batchCount++;
    }
    tlb.batchIndex++;
    tlb.batchSlots = 0;
    tlb.batchMax = maxGatherBatch(tlb.m.geo.pageSize);
  }
  return false;
}

// Level-specific table freeing: pte_free_tlb(), pmd_free_tlb(), pud_free_tlb().
// The table is already unlinked from its parent; it is freed after the flush
// and an RCU grace period.
export function freeTableTlb(tlb: MmuGather, slot: number, addr: number, level: number): void {
  tlb.freedTables = true;
  if (level === 0) {
    tlb.clearedPmds = true; // tlb_flush_pmd_range(tlb, addr, PAGE_SIZE)
  } else if (level === 1) {
    tlb.clearedPuds = true;
  } else {
    tlb.clearedP4ds = true;
  }
  tlb.adjustRange(addr, tlb.m.geo.pageSize);
  tlb.m.tables.state[slot] = TBL_UNLINKED;
  tlb.tables.push(slot);
}

// tlb_flush_mmu_tlbonly()
export function tlbFlushMmuTlbonly(tlb: MmuGather): void {
  if (!tlb.needsFlush) return;
  const ev = tlb.m.events;
  if (ev !== null && (tlb.m.evMask & EV_GATHER) !== 0)
    ev.emit({
      kind: "gather-flush",
      cpu: tlb.m.curCpu,
      mm: tlb.mm.id,
      start: tlb.start,
      end: tlb.end,
      fullmm: tlb.fullmm,
      freedTables: tlb.freedTables,
      levels: (tlb.clearedPtes ? 1 : 0) | (tlb.clearedPmds ? 2 : 0) | (tlb.clearedPuds ? 4 : 0) | (tlb.clearedP4ds ? 8 : 0),
    });
  tlb.m.arch.tlbFlush(tlb.m, tlb);
  tlb.resetRange();
}

// tlb_flush_rmaps(): run rmap removals that had to wait for the TLB flush.
export function tlbFlushRmaps(tlb: MmuGather): void {
  if (!tlb.delayedRmap) return;
  const phys = tlb.m.phys;
  for (let i = 0; i < tlb.nrPages; i++) {
    if (tlb.pageDelay[i] === 0) continue;
    // The batch entry is (first page, nr); rmap is per page.
    const first = tlb.pagePfn[i] as number;
    const nr = tlb.pageNr[i] as number;
    for (let p = first; p < first + nr; p++) phys.mapcount[p] = (phys.mapcount[p] as number) - 1;
    tlb.m.counters.folioAtomics += phys.order[phys.folioHead(first)] === 0 ? nr : nr + 2;
    tlb.pageDelay[i] = 0;
  }
  tlb.delayedRmap = false;
}

// free_swap_cache() + folio_free_swap() for a folio about to lose `nr`
// mapping references (the gather's): the cache's reference goes too.
function freeSwapCache(m: Machine, head: number, nr: number): void {
  const swap = m.swap;
  const phys = m.phys;
  if (swap === null || m.isolated.has(head)) return;
  const slot = swap.slotOf.get(head);
  if (slot === undefined) return;
  // folio_mapped() and folio_swapped() over the whole folio.
  const pages = 1 << (phys.order[head] as number);
  if (swap.anySwapped(slot, pages) || phys.entireMapcount(head) !== 0) return;
  for (let k = 0; k < pages; k++) if ((phys.mapcount[head + k] as number) !== 0) return;
  if (phys.ref[head] !== nr + 1) return;
  swap.deleteFromCache(head, pages);
  phys.ref[head] = nr;
}

// tlb_flush_mmu(): flush, then free the batched tables and pages.
export function tlbFlushMmu(tlb: MmuGather): void {
  const m = tlb.m;
  const pf = m.prof;
  if (pf !== null) pf.enter("tlb_flush_mmu");
  tlbFlushMmuTlbonly(tlb);
  if (tlb.tables.length > 0) {
    if (variantIs(m, "table_free", "semi-rcu")) {
      // Before 718b13861d22 (x86 native): tables are freed like pages once
      // the flush IPIs have been acknowledged, which an IRQs-off walker
      // (GUP-fast) holds off but an rcu_read_lock() reader does not.
      if (m.il) m.il.ipiSync(S_TABLE_IPI);
      const pfns = tlb.tables.map((slot) => m.tables.pfn[slot] as number);
      if (m.config.checkInvariants) m.framesFreed(pfns, "page-table free after the flush IPI");
      if ((m.evMask & EV_TABLE) !== 0) for (const slot of tlb.tables) m.tableEvent("table-free", slot, "tlb_remove_table");
      for (const slot of tlb.tables) m.tables.free(slot);
      m.counters.ptFree += tlb.tables.length;
    } else {
      // tlb_table_flush(): call_rcu on the batch.
      for (const slot of tlb.tables) m.tables.state[slot] = TBL_RCU;
      for (const slot of tlb.tables) m.rcuPending.push(slot);
      if ((m.evMask & EV_TABLE) !== 0) for (const slot of tlb.tables) m.tableEvent("table-rcu", slot, "tlb_table_flush");
    }
    tlb.tables = [];
  }
  if (tlb.nrPages > 0) {
    tlbFlushRmaps(tlb);
    m.counters.gatherFlushes++;
    const phys = m.phys;
    const check = m.config.checkInvariants;
    const freed: number[] = [];
    const swap = m.swap;
    for (let i = 0; i < tlb.nrPages; i++) {
      const first = tlb.pagePfn[i] as number;
      const head = phys.folioHead(first);
      const nr = tlb.pageNr[i] as number;
      const order = phys.order[head] as number;
      // free_pages_and_swap_cache() -> free_swap_cache(): a swap-cache folio
      // that nothing maps and no swap entry names any more leaves the cache.
      if (swap !== null && swap.cache.size > 0) freeSwapCache(m, head, nr);
      if (check && phys.ref[head] === nr) freed.push(head);
      // folios_put_refs(): one atomic _refcount update per batch entry.
      m.counters.folioAtomics++;
      if (phys.folioPut(head, nr)) m.counters.pagesFree += 1 << order;
    }
    if (check) m.framesFreed(freed, "tlb_batch_pages_flush");
    tlb.nrPages = 0;
    tlb.batchSlots = 0;
    tlb.batchIndex = 0;
    tlb.batchMax = MMU_GATHER_BUNDLE;
  }
  if (pf !== null) pf.exit();
}

// tlb_finish_mmu()
export function tlbFinishMmu(tlb: MmuGather): void {
  const mm = tlb.mm;
  const pf = tlb.m.prof;
  if (pf !== null) pf.enter("tlb_finish_mmu");
  if (mm.tlbFlushPending > 1 && !variantIs(tlb.m, "gather_nested", "none")) {
    // mm_tlb_flush_nested(): another gather on this mm is in flight and may
    // have skipped entries we cleared (or the other way round).
    if (variantIs(tlb.m, "gather_nested", "fixed")) {
      // Since 7a30df49f63a: flush everything, walk caches included.
      tlb.fullmm = true;
      tlb.resetRange();
      tlb.freedTables = true;
    } else {
      // Before 7a30df49f63a: reset and re-widen to the gathered range, which
      // forgets freed_tables and the cleared levels.
      const start = tlb.start;
      const end = tlb.end;
      tlb.resetRange();
      if (end > start) {
        tlb.adjustRange(start, end - start);
        tlb.clearedPtes = true;
      }
    }
  }
  tlbFlushMmu(tlb);
  mm.tlbFlushPending--;
  if (pf !== null) pf.exit();
}
