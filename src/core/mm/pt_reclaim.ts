// Synchronous reclaim of empty PTE tables on MADV_DONTNEED: models
// reclaim_pt_is_enabled(), try_get_and_clear_pmd(), free_pte() and
// try_to_free_pte() (mm/pt_reclaim.c, CONFIG_PT_RECLAIM).

import type { Machine } from "../machine.js";
import { freeTableTlb, type MmuGather } from "./mmu_gather.js";
import { accountTable, pteTableOf } from "./walk.js";
import { LVL_PTE } from "./pgtable.js";
import { LK_PMD, LK_PTL, site } from "../sync.js";

const S_FREE_PMD_LOCK = site("try_to_free_pte", "take the PMD lock");
const S_FREE_PTL = site("try_to_free_pte", "take the PTE lock");

export interface ZapDetails {
  reclaimPt: boolean; // MADV_DONTNEED asks for empty PTE tables to be freed
  evenCows: boolean;
}

export function reclaimPtIsEnabled(m: Machine, start: number, end: number, details: ZapDetails | null): boolean {
  return m.config.ptReclaim && details !== null && details.reclaimPt && end - start >= m.geo.pmdSize;
}

// With the PTE lock held: spin_trylock() the PMD lock and clear the PMD.
// Returns the old PMD value, or 0 when the trylock failed (a sequential run
// always gets the lock).
export function tryGetAndClearPmd(m: Machine, pmdIdx: number): number {
  const il = m.il;
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (il && !il.trylock(LK_PMD, pmdSlot)) return 0;
  const v = m.tables.get(pmdIdx);
  m.tables.set(pmdIdx, 0);
  m.counters.pteReads++;
  m.counters.pteWrites++;
  if (il) il.unlock(LK_PMD, pmdSlot);
  return v;
}

// free_pte(): hand the unlinked table to the gather; VmPTE drops now.
export function freePte(tlb: MmuGather, addr: number, pmdval: number): void {
  const slot = pteTableOf(tlb.m, pmdval);
  if (tlb.m.config.checkInvariants) checkTableEmpty(tlb.m, slot, addr);
  freeTableTlb(tlb, slot, addr, LVL_PTE);
  accountTable(tlb.m, tlb.mm, LVL_PTE, -1);
  tlb.m.counters.ptReclaimed++;
}

// try_to_free_pte(): the slow path takes the PMD lock and the PTE lock and
// re-checks that all entries are none.
export function* tryToFreePte(tlb: MmuGather, pmdIdx: number, addr: number): Generator<number, void, void> {
  const m = tlb.m;
  const il = m.il;
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (il) yield il.lock(LK_PMD, pmdSlot, true, S_FREE_PMD_LOCK);
  const pmdval = m.tables.get(pmdIdx);
  m.counters.pteReads++;
  const slot = pteTableOf(m, pmdval);
  if (slot < 0) {
    if (il) il.unlock(LK_PMD, pmdSlot);
    return;
  }
  if (il) yield il.lock(LK_PTL, slot, true, S_FREE_PTL);
  const e = m.tables.chunkOf(slot);
  const base = m.tables.base(slot);
  let empty = true;
  for (let i = 0; i < m.geo.ptrs; i++) {
    m.counters.pteReads++;
    if (e[base + i] !== 0) {
      empty = false;
      break;
    }
  }
  if (empty) {
    m.tables.set(pmdIdx, 0);
    m.counters.pteWrites++;
  }
  if (il) {
    il.unlock(LK_PTL, slot);
    il.unlock(LK_PMD, pmdSlot);
  }
  if (empty) freePte(tlb, addr, pmdval);
}

// Invariant "pt-reclaim-nonempty": a PTE table is freed only if every entry
// was none when its PMD was cleared (nothing can add one after: the PMD is
// gone and the faulting path re-checks it under the PTL).
function checkTableEmpty(m: Machine, slot: number, addr: number): void {
  // A check, not kernel code: no checked access (TableStore.checkAccess()).
  const e = m.tables.unchecked(m.tables.chunkOf(slot));
  const base = m.tables.base(slot);
  let n = 0;
  for (let i = 0; i < m.geo.ptrs; i++) if (e[base + i] !== 0) n++;
  if (n > 0)
    m.violations.push({
      invariant: "pt-reclaim-nonempty",
      addr,
      message: `PT reclaim frees the PTE table for 0x${(addr - (addr % m.geo.pmdSize)).toString(16)} with ${n} entr${n === 1 ? "y" : "ies"} still present`,
    });
}
