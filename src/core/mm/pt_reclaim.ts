// Synchronous reclaim of empty PTE tables on MADV_DONTNEED: models
// reclaim_pt_is_enabled(), try_get_and_clear_pmd(), free_pte() and
// try_to_free_pte() (mm/pt_reclaim.c, CONFIG_PT_RECLAIM).

import type { Machine } from "../machine.js";
import { freeTableTlb, type MmuGather } from "./mmu_gather.js";
import { accountTable, pteTableOf } from "./walk.js";
import { LVL_PTE } from "./pgtable.js";

export interface ZapDetails {
  reclaimPt: boolean; // MADV_DONTNEED asks for empty PTE tables to be freed
  evenCows: boolean;
}

export function reclaimPtIsEnabled(m: Machine, start: number, end: number, details: ZapDetails | null): boolean {
  return m.config.ptReclaim && details !== null && details.reclaimPt && end - start >= 2097152;
}

// With the PTE lock held: clear the PMD (the PMD lock is a trylock; in the
// sequential model it always succeeds). Returns the old PMD value.
export function tryGetAndClearPmd(m: Machine, pmdIdx: number): number {
  const v = m.tables.get(pmdIdx);
  m.tables.set(pmdIdx, 0);
  m.counters.pteReads++;
  m.counters.pteWrites++;
  return v;
}

// free_pte(): hand the unlinked table to the gather; VmPTE drops now.
export function freePte(tlb: MmuGather, addr: number, pmdval: number): void {
  const slot = pteTableOf(tlb.m, pmdval);
  freeTableTlb(tlb, slot, addr, LVL_PTE);
  accountTable(tlb.mm, LVL_PTE, -1);
  tlb.m.counters.ptReclaimed++;
}

// try_to_free_pte(): the slow path re-checks that all entries are none.
export function tryToFreePte(tlb: MmuGather, pmdIdx: number, addr: number): void {
  const m = tlb.m;
  const pmdval = m.tables.get(pmdIdx);
  m.counters.pteReads++;
  const slot = pteTableOf(m, pmdval);
  if (slot < 0) return;
  const e = m.tables.chunkOf(slot);
  const base = m.tables.base(slot);
  for (let i = 0; i < 512; i++) {
    m.counters.pteReads++;
    if (e[base + i] !== 0) return;
  }
  m.tables.set(pmdIdx, 0);
  m.counters.pteWrites++;
  freePte(tlb, addr, pmdval);
}
