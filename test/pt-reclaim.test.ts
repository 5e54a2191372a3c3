// PT reclaim's helpers (src/core/mm/pt_reclaim.ts, mm/pt_reclaim.c) one by
// one, with exact expectations: when reclaim_pt_is_enabled() says yes, what
// try_get_and_clear_pmd() and try_to_free_pte() read and write, which
// entry keeps a table alive, and the pt-reclaim-nonempty check of
// free_pte(). Written for the mutants `npm run mutate` left alive here
// (docs/testing.md): before it, the only tests that reached these paths ran
// whole scenarios and never looked at the counters or at a table with a
// single present entry.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { x86_64 } from "../src/core/arch/x86/index.js";
import { defaultConfig } from "../src/core/machine.js";
import { tlbFinishMmu, tlbGatherMmu } from "../src/core/mm/mmu_gather.js";
import { TBL_FREE, TBL_LIVE, TBL_RCU, TBL_UNLINKED } from "../src/core/mm/pgtable.js";
import { freePte, reclaimPtIsEnabled, tryGetAndClearPmd, tryToFreePte } from "../src/core/mm/pt_reclaim.js";
import { pmdOffset, pteAlloc } from "../src/core/mm/walk.js";
import { type Interleaver, LK_PMD, LK_PTL, run } from "../src/core/sync.js";
import { newMachine } from "../src/core/index.js";

const BASE = 0x7f0000000000;
const ADDR = 0x7e0000200000; // PMD aligned

function setup(ptReclaim = true) {
  const m = newMachine(x86_64(4), { ...defaultConfig(), ptReclaim });
  const mm = m.newMm(BASE);
  const pmdIdx = pmdOffset(m, mm, ADDR, true);
  const slot = pteAlloc(m, mm, pmdIdx);
  const pmdv = m.tables.get(pmdIdx);
  const pte = (k: number) => m.arch.pfnPte(100 + k, m.arch.vmGetPageProt(0));
  return { m, mm, pmdIdx, slot, pmdv, pte, base: m.tables.base(slot) };
}

describe("PT reclaim helpers", () => {
  it("reclaim_pt_is_enabled(): CONFIG_PT_RECLAIM, a caller that asks, and a range of at least one PMD", () => {
    const { m } = setup();
    const d = { reclaimPt: true, evenCows: false };
    const P = m.geo.pmdSize;
    assert.equal(reclaimPtIsEnabled(m, 0, P, d), true);
    assert.equal(reclaimPtIsEnabled(m, 0, 2 * P, d), true);
    assert.equal(reclaimPtIsEnabled(m, 0, P - m.geo.pageSize, d), false);
    assert.equal(reclaimPtIsEnabled(m, 0, P, null), false);
    assert.equal(reclaimPtIsEnabled(m, 0, P, { ...d, reclaimPt: false }), false);
    assert.equal(reclaimPtIsEnabled(setup(false).m, 0, P, d), false);
  });

  it("try_get_and_clear_pmd(): returns the PMD and clears it, one read and one write", () => {
    const { m, pmdIdx, pmdv } = setup();
    const r0 = m.counters.pteReads;
    const w0 = m.counters.pteWrites;
    assert.equal(tryGetAndClearPmd(m, pmdIdx), pmdv);
    assert.equal(m.tables.get(pmdIdx), 0);
    assert.equal(m.counters.pteReads - r0, 1);
    assert.equal(m.counters.pteWrites - w0, 1);
  });

  it("try_get_and_clear_pmd(): a failed spin_trylock() of the PMD table's lock leaves the PMD and gives 0", () => {
    const { m, pmdIdx, pmdv } = setup();
    const asked: number[] = [];
    const released: number[] = [];
    let free = false;
    m.il = {
      trylock: (_k: number, id: number) => {
        asked.push(id);
        return free;
      },
      unlock: (_k: number, id: number) => void released.push(id),
    } as unknown as Interleaver;
    assert.equal(tryGetAndClearPmd(m, pmdIdx), 0);
    assert.equal(m.tables.get(pmdIdx), pmdv);
    // The lock is the PMD table's (its slot), taken and released once when free.
    const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
    free = true;
    assert.equal(tryGetAndClearPmd(m, pmdIdx), pmdv);
    assert.deepEqual(asked, [pmdSlot, pmdSlot]);
    assert.deepEqual(released, [pmdSlot]);
    m.il = null;
  });

  it("try_to_free_pte(): an empty table is unlinked, handed to the gather and freed at tlb_finish_mmu()", () => {
    const { m, mm, pmdIdx, slot } = setup();
    const bytes = mm.pgtablesBytes;
    const r0 = m.counters.pteReads;
    const w0 = m.counters.pteWrites;
    const tlb = tlbGatherMmu(m, mm);
    run(tryToFreePte(tlb, pmdIdx, ADDR));
    assert.equal(m.tables.get(pmdIdx), 0);
    // The PMD, then every entry of the table; one write: the PMD.
    assert.equal(m.counters.pteReads - r0, 1 + m.geo.ptrs);
    assert.equal(m.counters.pteWrites - w0, 1);
    assert.equal(m.tables.state[slot], TBL_UNLINKED);
    assert.equal(tlb.freedTables, true);
    assert.equal(mm.pgtablesBytes, bytes - m.geo.pageSize);
    assert.equal(m.counters.ptReclaimed, 1);
    tlbFinishMmu(tlb);
    // call_rcu(): freed at the next grace period (the lockless walkers' RCU).
    assert.equal(m.tables.state[slot], TBL_RCU);
    m.rcuGracePeriod();
    assert.equal(m.tables.state[slot], TBL_FREE);
    assert.deepEqual(m.violations, []);
  });

  for (const at of ["first", "middle", "last"] as const) {
    it(`try_to_free_pte(): one present entry, the table's ${at}, keeps it (the scan stops there)`, () => {
      const { m, mm, pmdIdx, pmdv, slot, base, pte } = setup();
      const k = at === "first" ? 0 : at === "middle" ? m.geo.ptrs >> 1 : m.geo.ptrs - 1;
      m.tables.set(base + k, pte(k));
      const bytes = mm.pgtablesBytes;
      const r0 = m.counters.pteReads;
      const w0 = m.counters.pteWrites;
      const tlb = tlbGatherMmu(m, mm);
      run(tryToFreePte(tlb, pmdIdx, ADDR));
      assert.equal(m.tables.get(pmdIdx), pmdv);
      assert.equal(m.counters.pteReads - r0, 1 + k + 1);
      assert.equal(m.counters.pteWrites - w0, 0);
      assert.equal(m.tables.state[slot], TBL_LIVE);
      assert.equal(tlb.freedTables, false);
      assert.equal(mm.pgtablesBytes, bytes);
      assert.equal(m.counters.ptReclaimed, 0);
      tlbFinishMmu(tlb);
    });
  }

  it("try_to_free_pte(): a PMD that no longer points to a table (cleared, or a huge leaf) is left alone", () => {
    const { m, mm, pmdIdx } = setup();
    m.tables.set(pmdIdx, 0);
    const r0 = m.counters.pteReads;
    const tlb = tlbGatherMmu(m, mm);
    run(tryToFreePte(tlb, pmdIdx, ADDR));
    assert.equal(m.counters.pteReads - r0, 1);
    assert.equal(m.counters.ptReclaimed, 0);
    assert.equal(tlb.freedTables, false);
    tlbFinishMmu(tlb);
  });

  it("try_to_free_pte() under the explorer: the PMD lock, then the PTE lock, both for writing, both released", () => {
    for (const present of [false, true, null]) {
      const { m, mm, pmdIdx, slot, base, pte } = setup();
      if (present === true) m.tables.set(base + 3, pte(3));
      if (present === null) m.tables.set(pmdIdx, 0);
      const log: string[] = [];
      m.il = {
        lock: (k: number, id: number, w: boolean, site: number) => {
          log.push(`lock ${k} ${id} ${w}`);
          return site;
        },
        unlock: (k: number, id: number) => void log.push(`unlock ${k} ${id}`),
      } as unknown as Interleaver;
      const tlb = tlbGatherMmu(m, mm);
      run(tryToFreePte(tlb, pmdIdx, ADDR));
      m.il = null;
      const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
      const want =
        present === null
          ? [`lock ${LK_PMD} ${pmdSlot} true`, `unlock ${LK_PMD} ${pmdSlot}`]
          : [`lock ${LK_PMD} ${pmdSlot} true`, `lock ${LK_PTL} ${slot} true`, `unlock ${LK_PTL} ${slot}`, `unlock ${LK_PMD} ${pmdSlot}`];
      assert.deepEqual(log, want, String(present));
      assert.equal(m.counters.ptReclaimed, present === false ? 1 : 0);
    }
  });

  it("free_pte() of a table with entries left is pt-reclaim-nonempty, counting them", () => {
    for (const n of [1, 2, 512]) {
      const { m, mm, pmdIdx, pmdv, base, pte } = setup();
      for (let k = 0; k < n; k++) m.tables.set(base + m.geo.ptrs - 1 - k, pte(k));
      m.tables.set(pmdIdx, 0);
      const tlb = tlbGatherMmu(m, mm);
      freePte(tlb, ADDR + 5 * m.geo.pageSize, pmdv);
      assert.equal(m.violations.length, 1);
      const v = m.violations[0]!;
      assert.equal(v.invariant, "pt-reclaim-nonempty");
      assert.equal(v.addr, ADDR + 5 * m.geo.pageSize);
      assert.equal(v.message, `PT reclaim frees the PTE table for 0x${ADDR.toString(16)} with ${n} entr${n === 1 ? "y" : "ies"} still present`);
      m.violations.length = 0;
      // The table was freed all the same (the check reports, the path goes on).
      assert.equal(m.counters.ptReclaimed, 1);
    }
  });

  it("free_pte() checks only with invariant checks on", () => {
    const { m, mm, pmdIdx, pmdv, base, pte } = setup();
    m.config.checkInvariants = false;
    m.tables.set(base, pte(0));
    m.tables.set(pmdIdx, 0);
    freePte(tlbGatherMmu(m, mm), ADDR, pmdv);
    assert.deepEqual(m.violations, []);
  });
});
