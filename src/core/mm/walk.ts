// Reaching entries of a process's page tables: pgd_offset()/p4d_alloc()/
// pud_alloc()/pmd_alloc()/__pte_alloc() (mm/memory.c, include/linux/pgtable.h).
// Entries are addressed by their global index in TableStore.e.

import { idxAt } from "../geometry.js";
import type { Machine } from "../machine.js";
import { LVL_PMD, LVL_PTE, LVL_PUD } from "./pgtable.js";
import type { Mm } from "./types.js";

// mm_inc_nr_ptes()/mm_inc_nr_pmds()/mm_inc_nr_puds(): P4D and PGD pages are
// not counted. A table is one page of the granule.
export function accountTable(m: Machine, mm: Mm, level: number, sign: 1 | -1): void {
  if (level <= LVL_PUD) mm.pgtablesBytes += sign * m.geo.pageSize;
}

// A new table page at `level`, linked into the entry at index `ei`.
function populate(m: Machine, mm: Mm, ei: number, level: number): number {
  const slot = m.tables.alloc(level);
  m.counters.ptAlloc++;
  accountTable(m, mm, level, 1);
  m.tables.set(ei, m.arch.mkTableEntry(m.tables.pfn[slot] as number));
  m.counters.pteWrites++;
  return slot;
}

// Index of the PMD entry for addr, allocating missing PUD/PMD tables when
// `alloc`; -1 if a level is missing (or a leaf above the PMD).
export function pmdOffset(m: Machine, mm: Mm, addr: number, alloc: boolean): number {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const vpn = Math.floor(addr / G.pageSize);
  let slot = mm.pgd;
  for (let level = A.levels - 1; level > LVL_PMD; level--) {
    const ei = slot * G.ptrs + idxAt(G, vpn, level);
    const v = T.get(ei);
    m.counters.pteReads++;
    if (v === 0) {
      if (!alloc) return -1;
      slot = populate(m, mm, ei, level - 1);
    } else if (!A.entryIsTable(v)) {
      return -1;
    } else {
      slot = T.slotOfPfn(A.ptePfn(v));
    }
  }
  return slot * G.ptrs + idxAt(G, vpn, LVL_PMD);
}

// __pte_alloc(): make sure the PMD entry points to a PTE table; returns the
// table's slot, or -1 if the PMD holds a leaf.
export function pteAlloc(m: Machine, mm: Mm, pmdIdx: number): number {
  const v = m.tables.get(pmdIdx);
  m.counters.pteReads++;
  if (v === 0) return populate(m, mm, pmdIdx, LVL_PTE);
  if (!m.arch.entryIsTable(v)) return -1;
  return m.tables.slotOfPfn(m.arch.ptePfn(v));
}

// Slot of the PTE table under a PMD entry value, or -1.
export function pteTableOf(m: Machine, pmdv: number): number {
  if (!m.arch.entryIsTable(pmdv)) return -1;
  return m.tables.slotOfPfn(m.arch.ptePfn(pmdv));
}

// Software walk to the PTE entry index for addr (no allocation); -1 if absent.
export function pteOffset(m: Machine, mm: Mm, addr: number): number {
  const pi = pmdOffset(m, mm, addr, false);
  if (pi < 0) return -1;
  const slot = pteTableOf(m, m.tables.get(pi));
  if (slot < 0) return -1;
  const G = m.geo;
  return slot * G.ptrs + ((addr / G.pageSize) & G.ptrsMask);
}
