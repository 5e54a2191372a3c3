// struct mmu_gather on its own (src/core/mm/mmu_gather.ts; mm/mmu_gather.c,
// include/asm-generic/tlb.h), sequentially and with exact expectations:
// range and level tracking, what a flush hands the architecture, batching of
// pages (the embedded bundle, batch pages, MAX_GATHER_BATCH_COUNT and a
// GFP_NOWAIT failure), delayed rmap, RCU and semi-RCU table freeing, and
// tlb_finish_mmu()'s rule for two gathers in flight on one mm in each of its
// historical forms. Written for the mutants `npm run mutate` left alive:
// before it, gathers were only seen through whole scenarios.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { x86_64 } from "../src/core/arch/x86/index.js";
import { defaultConfig, type Machine } from "../src/core/machine.js";
import {
  freeTableTlb,
  type MmuGather,
  tlbFinishMmu,
  tlbFlushMmu,
  tlbFlushMmuTlbonly,
  tlbFlushRmaps,
  tlbGatherMmu,
  tlbRemoveFolioPages,
  tlbRemovePmdTlbEntry,
  tlbRemoveTlbEntries,
} from "../src/core/mm/mmu_gather.js";
import { translate } from "../src/core/hw/walker.js";
import { VM_READ } from "../src/core/mm/types.js";
import { pmdOffset, pteAlloc } from "../src/core/mm/walk.js";
import { LVL_PMD, LVL_PTE, LVL_PUD, TBL_FREE, TBL_RCU, TBL_UNLINKED } from "../src/core/mm/pgtable.js";
import { newMachine } from "../src/core/index.js";

const BASE = 0x7f0000000000;
const A = 0x7e0000200000;
const PAGE = 4096;

interface Flush {
  start: number;
  end: number;
  fullmm: boolean;
  freedTables: boolean;
  ptes: boolean;
  pmds: boolean;
  puds: boolean;
  p4ds: boolean;
}

function setup(variant: Record<string, string> = {}, over: Partial<ReturnType<typeof defaultConfig>> = {}) {
  const cfg = defaultConfig();
  const m = newMachine(x86_64(4), { ...cfg, ...over, variants: { ...cfg.variants, ...variant } });
  const mm = m.newMm(BASE);
  const flushes: Flush[] = [];
  const arch = m.arch as { tlbFlush: (m: Machine, t: MmuGather) => void };
  const orig = arch.tlbFlush;
  arch.tlbFlush = (mm2, t) => {
    flushes.push({
      start: t.start,
      end: t.end,
      fullmm: t.fullmm,
      freedTables: t.freedTables,
      ptes: t.clearedPtes,
      pmds: t.clearedPmds,
      puds: t.clearedPuds,
      p4ds: t.clearedP4ds,
    });
    orig(mm2, t);
  };
  return { m, mm, flushes };
}

describe("mmu_gather: range and levels", () => {
  it("a new gather has an empty range (start at TASK_SIZE, end 0) and flushes nothing", () => {
    const { m, mm, flushes } = setup();
    const tlb = tlbGatherMmu(m, mm);
    assert.equal(mm.tlbFlushPending, 1);
    assert.equal(tlb.start, m.arch.taskSize);
    assert.equal(tlb.end, 0);
    assert.equal(tlb.needsFlush, false);
    tlbFinishMmu(tlb);
    assert.equal(flushes.length, 0);
    assert.equal(mm.tlbFlushPending, 0);
  });

  it("cleared PTEs widen the range both ways; the flush gets exactly it, then the range resets", () => {
    const { m, mm, flushes } = setup();
    const tlb = tlbGatherMmu(m, mm);
    tlbRemoveTlbEntries(tlb, A + 4 * PAGE, 2);
    tlbRemoveTlbEntries(tlb, A, 1);
    tlbRemoveTlbEntries(tlb, A + 2 * PAGE, 1); // inside: no change
    assert.deepEqual([tlb.start, tlb.end], [A, A + 6 * PAGE]);
    tlbRemoveTlbEntries(tlb, A + 5 * PAGE, 2); // overlaps the end: one page more
    assert.deepEqual([tlb.start, tlb.end], [A, A + 7 * PAGE]);
    assert.equal(tlb.needsFlush, true);
    tlbFlushMmuTlbonly(tlb);
    assert.deepEqual(flushes, [{ start: A, end: A + 7 * PAGE, fullmm: false, freedTables: false, ptes: true, pmds: false, puds: false, p4ds: false }]);
    assert.deepEqual([tlb.start, tlb.end, tlb.needsFlush], [m.arch.taskSize, 0, false]);
    tlbFlushMmuTlbonly(tlb); // nothing left: no second flush
    assert.equal(flushes.length, 1);
    tlbFinishMmu(tlb);
  });

  it("a huge PMD widens the range by a whole PMD and marks PMDs cleared", () => {
    const { m, mm, flushes } = setup();
    const tlb = tlbGatherMmu(m, mm);
    tlbRemovePmdTlbEntry(tlb, A);
    tlbFinishMmu(tlb);
    assert.deepEqual(flushes, [{ start: A, end: A + m.geo.pmdSize, fullmm: false, freedTables: false, ptes: false, pmds: true, puds: false, p4ds: false }]);
  });

  it("freeing a table records freed_tables and the level above it (pte_free_tlb() clears a PMD), and one page of range", () => {
    for (const [level, want] of [
      [LVL_PTE, { pmds: true, puds: false, p4ds: false }],
      [LVL_PMD, { pmds: false, puds: true, p4ds: false }],
      [LVL_PUD, { pmds: false, puds: false, p4ds: true }],
    ] as const) {
      const { m, mm, flushes } = setup();
      const slot = m.tables.alloc(level);
      const tlb = tlbGatherMmu(m, mm);
      freeTableTlb(tlb, slot, A, level);
      assert.equal(m.tables.state[slot], TBL_UNLINKED);
      assert.deepEqual(tlb.tables, [slot]);
      tlbFinishMmu(tlb);
      assert.deepEqual(flushes, [{ start: A, end: A + PAGE, fullmm: false, freedTables: true, ptes: false, ...want }]);
      // CONFIG_MMU_GATHER_RCU_TABLE_FREE: after the flush, call_rcu().
      assert.equal(m.tables.state[slot], TBL_RCU);
      assert.deepEqual(m.rcuPending, [slot]);
      m.rcuGracePeriod();
      assert.equal(m.tables.state[slot], TBL_FREE);
    }
  });

  it("each flush hands on only the tables gathered since the last one; a flush with no pages is no gather flush", () => {
    const { m, mm } = setup();
    const tlb = tlbGatherMmu(m, mm);
    const s1 = m.tables.alloc(LVL_PTE);
    const s2 = m.tables.alloc(LVL_PTE);
    freeTableTlb(tlb, s1, A, LVL_PTE);
    const g0 = m.counters.gatherFlushes;
    tlbFlushMmu(tlb);
    assert.deepEqual(m.rcuPending, [s1]);
    assert.deepEqual(tlb.tables, []);
    freeTableTlb(tlb, s2, A, LVL_PTE);
    tlbFinishMmu(tlb);
    assert.deepEqual(m.rcuPending, [s1, s2]);
    assert.equal(m.counters.gatherFlushes - g0, 0);
  });

  it("table_free=semi-rcu: a table freed while a paging-structure cache still points to it is reported", () => {
    for (const tf of ["semi-rcu", "rcu"]) {
      const { m, mm } = setup({ table_free: tf });
      const pi = pmdOffset(m, mm, A, true);
      const slot = pteAlloc(m, mm, pi);
      const a = m.phys.alloc(0);
      m.tables.set(m.tables.base(slot), m.arch.pteMkyoung(m.arch.pfnPte(a, m.arch.vmGetPageProt(VM_READ))));
      assert.equal(translate(m, 0, mm, A, false), true); // caches the walk through the table
      m.tables.set(pi, 0);
      const tlb = tlbGatherMmu(m, mm);
      freeTableTlb(tlb, slot, A, LVL_PTE);
      // A gather that lost its freed_tables (as gather_nested=reset-range does).
      tlb.freedTables = tlb.clearedPmds = false;
      tlbFinishMmu(tlb);
      const v = m.violations.map((x) => `${x.invariant}: ${x.message}`);
      if (tf === "rcu") assert.deepEqual(v, []);
      else
        assert.deepEqual(v, [
          `freed-before-flush: page-table free after the flush IPI: table pfn ${m.tables.pfn[slot]} freed while CPU0's paging-structure cache points to it`,
        ]);
    }
  });

  it("table_free=semi-rcu frees the tables right after the flush (no grace period)", () => {
    const { m, mm } = setup({ table_free: "semi-rcu" });
    const slot = m.tables.alloc(LVL_PTE);
    const tlb = tlbGatherMmu(m, mm);
    freeTableTlb(tlb, slot, A, LVL_PTE);
    const f0 = m.counters.ptFree;
    tlbFinishMmu(tlb);
    assert.equal(m.tables.state[slot], TBL_FREE);
    assert.deepEqual(m.rcuPending, []);
    assert.equal(m.counters.ptFree - f0, 1);
  });

  it("a fullmm gather keeps no range (start = end = -1) and widening does not change it", () => {
    const { m, mm, flushes } = setup();
    const tlb = tlbGatherMmu(m, mm, true);
    assert.deepEqual([tlb.start, tlb.end], [-1, -1]);
    tlbRemoveTlbEntries(tlb, A, 4);
    assert.deepEqual([tlb.start, tlb.end], [-1, -1]);
    tlbFinishMmu(tlb);
    assert.deepEqual(flushes, [{ start: -1, end: -1, fullmm: true, freedTables: false, ptes: true, pmds: false, puds: false, p4ds: false }]);
  });
});

describe("mmu_gather: two gathers on one mm (tlb_finish_mmu())", () => {
  // A second gather is in flight (mm->tlb_flush_pending is 2) when the first
  // finishes with cleared PTEs and a freed table.
  function nested(value: string) {
    const { m, mm, flushes } = setup({ gather_nested: value });
    const other = tlbGatherMmu(m, mm);
    const tlb = tlbGatherMmu(m, mm);
    const slot = m.tables.alloc(LVL_PTE);
    tlbRemoveTlbEntries(tlb, A, 2);
    freeTableTlb(tlb, slot, A + 8 * PAGE, LVL_PTE);
    tlbFinishMmu(tlb);
    assert.equal(mm.tlbFlushPending, 1);
    tlbFinishMmu(other);
    return flushes;
  }
  it("fixed (7a30df49f63a): a full flush, walk caches included", () => {
    assert.deepEqual(nested("fixed"), [{ start: -1, end: -1, fullmm: true, freedTables: true, ptes: false, pmds: false, puds: false, p4ds: false }]);
  });
  it("reset-range (before it): the gathered range again, as PTEs only: freed_tables and the PMD level are lost", () => {
    assert.deepEqual(nested("reset-range"), [
      { start: A, end: A + 9 * PAGE, fullmm: false, freedTables: false, ptes: true, pmds: false, puds: false, p4ds: false },
    ]);
  });
  it("none: the gather flushes only what it gathered", () => {
    assert.deepEqual(nested("none"), [{ start: A, end: A + 9 * PAGE, fullmm: false, freedTables: true, ptes: true, pmds: true, puds: false, p4ds: false }]);
  });
  it("reset-range with nothing gathered flushes nothing", () => {
    const { m, mm, flushes } = setup({ gather_nested: "reset-range" });
    const other = tlbGatherMmu(m, mm);
    tlbFinishMmu(tlbGatherMmu(m, mm));
    tlbFinishMmu(other);
    assert.equal(flushes.length, 0);
  });
  it("one gather alone is never widened", () => {
    const { m, mm, flushes } = setup({ gather_nested: "fixed" });
    const tlb = tlbGatherMmu(m, mm);
    tlbRemoveTlbEntries(tlb, A, 1);
    tlbFinishMmu(tlb);
    assert.deepEqual(flushes, [{ start: A, end: A + PAGE, fullmm: false, freedTables: false, ptes: true, pmds: false, puds: false, p4ds: false }]);
  });
});

describe("mmu_gather: page batches", () => {
  // A folio of 2^order pages with one reference per page mapped, as zap leaves them.
  function folio(m: Machine, order: number) {
    const head = m.phys.alloc(order);
    m.phys.ref[head] = 1 << order;
    for (let k = 0; k < 1 << order; k++) m.phys.mapcount[head + k] = 1;
    return head;
  }

  it("the embedded bundle takes 6 order-0 entries; the 7th needs a batch page (MMU_GATHER_BUNDLE 8, minus one)", () => {
    const { m, mm } = setup();
    const tlb = tlbGatherMmu(m, mm);
    for (let i = 0; i < 6; i++) assert.equal(tlbRemoveFolioPages(tlb, folio(m, 0), 1, false), false);
    assert.deepEqual([tlb.batchIndex, tlb.batchCount, tlb.batchSlots], [0, 0, 6]);
    assert.equal(tlbRemoveFolioPages(tlb, folio(m, 0), 1, false), false);
    assert.deepEqual([tlb.batchIndex, tlb.batchCount, tlb.batchSlots, tlb.batchMax], [1, 1, 0, (PAGE - 16) / 8]);
    tlbFinishMmu(tlb);
  });

  it("a range of a large folio takes two slots", () => {
    const { m, mm } = setup();
    const tlb = tlbGatherMmu(m, mm);
    const h = folio(m, 4);
    tlbRemoveFolioPages(tlb, h, 16, false);
    tlbRemoveFolioPages(tlb, folio(m, 0), 1, false);
    assert.equal(tlb.batchSlots, 3);
    tlbFinishMmu(tlb);
  });

  it("a failed GFP_NOWAIT batch allocation asks the caller to flush when the bundle is full", () => {
    const { m, mm } = setup({}, { nowaitAllocFails: true });
    const tlb = tlbGatherMmu(m, mm);
    const full: boolean[] = [];
    for (let i = 0; i < 8; i++) full.push(tlbRemoveFolioPages(tlb, folio(m, 0), 1, false));
    assert.deepEqual(full, [false, false, false, false, false, false, true, true]);
    tlbFinishMmu(tlb);
  });

  it("MAX_GATHER_BATCH_COUNT batch pages (10000 / 510 = 19 on 4K), then the caller must flush", () => {
    const { m, mm } = setup();
    const tlb = tlbGatherMmu(m, mm);
    const perBatch = (PAGE - 16) / 8 - 1;
    const capacity = 7 + 19 * perBatch; // the bundle, then 19 batch pages
    const h = folio(m, 0);
    m.phys.ref[h] = capacity + 1;
    let n = 0;
    while (!tlbRemoveFolioPages(tlb, h, 1, false)) n++;
    assert.equal(n + 1, capacity);
    assert.equal(tlb.batchCount, 19);
    tlbFlushMmu(tlb);
    // Batch pages are kept for reuse; the next fill starts in the bundle.
    assert.deepEqual([tlb.nrPages, tlb.batchIndex, tlb.batchSlots, tlb.batchMax, tlb.batchCount], [0, 0, 0, 8, 19]);
    assert.equal(m.phys.ref[h], 1);
    // Refilling reuses the kept pages: no flush is asked for before capacity.
    m.phys.ref[h] = capacity + 1;
    for (let i = 0; i < capacity - 1; i++) assert.equal(tlbRemoveFolioPages(tlb, h, 1, false), false);
    assert.equal(tlb.batchCount, 19);
    tlbFinishMmu(tlb);
  });

  it("pages are freed after the TLB flush, one folio_put() per entry; a folio still referenced stays", () => {
    const { m, mm, flushes } = setup();
    const tlb = tlbGatherMmu(m, mm);
    const a = folio(m, 0);
    const b = folio(m, 4);
    m.phys.ref[b] += 1; // someone else holds b
    tlbRemoveTlbEntries(tlb, A, 17);
    tlbRemoveFolioPages(tlb, a, 1, false);
    tlbRemoveFolioPages(tlb, b, 16, false);
    const free0 = m.counters.pagesFree;
    const at0 = m.counters.folioAtomics;
    const g0 = m.counters.gatherFlushes;
    tlbFinishMmu(tlb);
    assert.equal(flushes.length, 1);
    assert.equal(m.phys.isFree(a), true);
    assert.equal(m.phys.isFree(b), false);
    assert.equal(m.phys.ref[b], 1);
    assert.equal(m.counters.pagesFree - free0, 1);
    assert.equal(m.counters.folioAtomics - at0, 2);
    assert.equal(m.counters.gatherFlushes - g0, 1);
    assert.deepEqual(m.violations, []);
  });

  it("delayed rmap: mapcounts drop at the flush, only for the delayed entries", () => {
    const { m, mm } = setup();
    const tlb = tlbGatherMmu(m, mm);
    const a = folio(m, 0);
    const b = folio(m, 2);
    m.phys.ref[a] += 1;
    m.phys.ref[b] += 1;
    tlbRemoveFolioPages(tlb, a, 1, false);
    assert.equal(tlb.delayedRmap, false);
    tlbRemoveFolioPages(tlb, b + 1, 2, true);
    assert.equal(tlb.delayedRmap, true);
    const c = folio(m, 0);
    m.phys.ref[c] += 1;
    tlbRemoveFolioPages(tlb, c, 1, true);
    const at0 = m.counters.folioAtomics;
    tlbFlushRmaps(tlb);
    assert.deepEqual([...m.phys.mapcount.subarray(b, b + 4)], [1, 0, 0, 1]);
    assert.equal(m.phys.mapcount[a], 1);
    assert.equal(m.phys.mapcount[c], 0);
    // A large folio's rmap update: one atomic a page and two for the folio;
    // a small one: one.
    assert.equal(m.counters.folioAtomics - at0, 4 + 1);
    // The small one alone: one.
    const d = folio(m, 0);
    m.phys.ref[d] += 1;
    tlbRemoveFolioPages(tlb, d, 1, true);
    const at1 = m.counters.folioAtomics;
    tlbFlushRmaps(tlb);
    assert.equal(m.counters.folioAtomics - at1, 1);
    assert.equal(tlb.delayedRmap, false);
    tlbFlushRmaps(tlb); // done once
    assert.deepEqual([...m.phys.mapcount.subarray(b, b + 4)], [1, 0, 0, 1]);
    tlbFinishMmu(tlb);
  });

  // A page CPU 0's TLB holds: its PTE is cleared, and the page queued.
  function cachedThenCleared(record: boolean, extraRefs = 0) {
    const { m, mm, flushes } = setup();
    const pi = pmdOffset(m, mm, A, true);
    const slot = pteAlloc(m, mm, pi);
    const a = m.phys.alloc(0);
    m.phys.ref[a] += extraRefs;
    const ei = m.tables.base(slot) + ((A / PAGE) & m.geo.ptrsMask);
    m.tables.set(ei, m.arch.pteMkyoung(m.arch.pfnPte(a, m.arch.vmGetPageProt(VM_READ))));
    assert.equal(translate(m, 0, mm, A, false), true);
    m.tables.set(ei, 0);
    const tlb = tlbGatherMmu(m, mm);
    if (record) tlbRemoveTlbEntries(tlb, A, 1);
    tlbRemoveFolioPages(tlb, a, 1, false);
    tlbFinishMmu(tlb);
    return { m, flushes, a };
  }
  it("a page freed while a TLB still maps it is reported (tlb_batch_pages_flush)", () => {
    const { m, flushes, a } = cachedThenCleared(false);
    assert.equal(flushes.length, 0);
    assert.deepEqual(
      m.violations.map((v) => [v.invariant, v.message]),
      [["freed-before-flush", `tlb_batch_pages_flush: pfn ${a} freed while CPU0's TLB still maps it at 0x${A.toString(16)}`]],
    );
  });
  it("a page someone else still holds is not freed, so not reported, whatever the TLB holds", () => {
    const { m, a } = cachedThenCleared(false, 1);
    assert.equal(m.phys.isFree(a), false);
    assert.equal(m.phys.ref[a], 1);
    assert.deepEqual(m.violations, []);
  });

  it("the same page with its cleared entry recorded is flushed first: no report", () => {
    const { m, flushes } = cachedThenCleared(true);
    assert.equal(flushes.length, 1);
    assert.deepEqual(m.violations, []);
  });

  describe("free_swap_cache(): a swap-cache folio the gather frees leaves the cache", () => {
    // An order-0 anon folio in the swap cache: the cache's reference, and
    // one a page table held (the gather's).
    function cached(extra: (m: Machine, pfn: number, slot: number) => void = () => {}) {
      const { m, mm } = setup({}, { swapPages: 16 });
      const swap = m.swap!;
      const pfn = m.phys.alloc(0);
      const slot = swap.allocSlot(pfn);
      m.phys.ref[pfn] = 2;
      extra(m, pfn, slot);
      const tlb = tlbGatherMmu(m, mm);
      tlbRemoveFolioPages(tlb, pfn, 1, false);
      tlbFinishMmu(tlb);
      return { m, swap, pfn, slot };
    }
    it("nothing else maps it and no swap entry names its slot: it leaves the cache and is freed", () => {
      const { m, swap, pfn, slot } = cached();
      assert.equal(swap.cache.has(slot), false);
      assert.equal(swap.slotOf.has(pfn), false);
      assert.equal(swap.used, 0);
      assert.equal(m.phys.isFree(pfn), true);
    });
    for (const [why, extra] of [
      ["a swap entry still names its slot", (m: Machine, _p: number, slot: number) => m.swap!.duplicate(slot)],
      ["a page table still maps it", (m: Machine, pfn: number) => void (m.phys.mapcount[pfn] = 1)],
      ["someone else holds a reference", (m: Machine, pfn: number) => void (m.phys.ref[pfn] = 3)],
      ["it is isolated (reclaim or migration has it)", (m: Machine, pfn: number) => void m.isolated.add(pfn)],
    ] as const) {
      it(`it stays in the cache when ${why}`, () => {
        const { m, swap, pfn, slot } = cached(extra);
        assert.equal(swap.cache.get(slot), pfn);
        assert.equal(m.phys.isFree(pfn), false);
      });
    }
  });
});
