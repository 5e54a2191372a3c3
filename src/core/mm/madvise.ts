// madvise(): models madvise_dontneed_free() (zap with PT reclaim details),
// madvise_free_pte_range()/madvise_free_huge_pmd() (lazy free: clean and old
// PTEs, folio loses swap backing), MADV_COLD's young clearing, and
// MADV_HUGEPAGE/NOHUGEPAGE flag changes (mm/madvise.c, mm/khugepaged.c).

import { CYD_DIRTY, CYD_YOUNG } from "../arch/arch.js";
import type { Machine } from "../machine.js";
import { pmdReadLocked, splitHugePmd } from "./huge_memory.js";
import { type KGen, run, unmapSingleVma, walkPmdTables } from "./memory.js";
import { LK_PTL, site } from "../sync.js";

const S_CLEAN_LOCK = site("madvise_free_pte_range", "take the PTE lock");
const S_CLEAN_PTE = site("madvise_free_pte_range", "load a PTE");
const S_CLEAN_PMD_LOCK = site("madvise_free_huge_pmd", "take the PMD lock");
import { type MmuGather, tlbFinishMmu, tlbFlushMmuTlbonly, tlbGatherMmu, tlbRemovePmdTlbEntry, tlbRemoveTlbEntries } from "./mmu_gather.js";
import { LVL_PMD } from "./pgtable.js";
import { PG_ANON, PG_DIRTY, PG_SWAPBACKED } from "./physmem.js";
import { MmError } from "./mmap.js";
import { idxAt } from "../geometry.js";
import { type Mm, VM_HUGEPAGE, VM_NOHUGEPAGE, type Vma } from "./types.js";
import { isolateRange, mergeAround } from "./vma.js";

export type Advice = "dontneed" | "free" | "hugepage" | "nohugepage" | "willneed" | "cold" | "pageout";

function vmasIn(mm: Mm, start: number, end: number): Vma[] {
  const out: Vma[] = [];
  for (let i = mm.findVmaIndex(start); i < mm.vmas.length; i++) {
    const v = mm.vmas[i] as Vma;
    if (v.start >= end) break;
    out.push(v);
  }
  return out;
}

// Clears young (and for lazy free, dirty) on present entries; `free` marks
// anon folios lazily freeable.
function* cleanPmdRange(tlb: MmuGather, vma: Vma, pmdSlot: number, addr: number, end: number, free: boolean): KGen {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const G = m.geo;
  while (addr < end) {
    const next = Math.min(addr - (addr % G.pmdSize) + G.pmdSize, end);
    const pmdIdx = pmdSlot * G.ptrs + idxAt(G, addr / G.pageSize, LVL_PMD);
    let v = T.get(pmdIdx);
    m.counters.pteReads++;
    // pmd_trans_huge_lock() / __split_huge_pmd() wait for a splitter.
    if (m.il !== null && v !== 0 && A.pmdLeafInvalid(v)) v = yield* pmdReadLocked(m, pmdIdx, S_CLEAN_PMD_LOCK);
    if (v !== 0 && A.entryIsLeaf(v)) {
      if (next - addr === G.pmdSize) {
        const head = A.ptePfn(v);
        if (!free || ((phys.flags[head] as number) & PG_ANON) !== 0) {
          if (free) phys.flags[head] = (phys.flags[head] as number) & ~(PG_SWAPBACKED | PG_DIRTY);
          T.set(pmdIdx, A.pteMkold(free ? A.pteMkclean(v) : v));
          m.counters.pteAtomics++;
          tlbRemovePmdTlbEntry(tlb, addr);
        }
        addr = next;
        continue;
      }
      yield* splitHugePmd(m, tlb.mm, vma, pmdIdx, addr - (addr % G.pmdSize));
      v = T.get(pmdIdx);
    }
    if (v !== 0 && A.entryIsTable(v)) {
      const slot = T.slotOfPfn(A.ptePfn(v));
      const il = m.il;
      if (il) {
        yield il.lock(LK_PTL, slot, true, S_CLEAN_LOCK);
        if (T.get(pmdIdx) !== v) {
          il.unlock(LK_PTL, slot);
          addr = next;
          continue;
        }
      }
      const e = T.chunkOf(slot);
      let i = T.base(slot) + ((addr / G.pageSize) & G.ptrsMask);
      for (let a = addr; a < next; a += G.pageSize, i++) {
        let x = A.ptepGet(m, e, i);
        if (x === 0 || !A.ptePresent(x) || A.pteSpecial(x)) continue;
        if (il) {
          yield S_CLEAN_PTE;
          x = A.ptepGet(m, e, i);
        }
        const pfn = A.ptePfn(x);
        const head = phys.folioHead(pfn);
        if (free) {
          // Only exclusively mapped anon folios become lazy-free.
          if (((phys.flags[head] as number) & PG_ANON) === 0 || phys.mapcount[pfn] !== 1) continue;
          phys.flags[head] = (phys.flags[head] as number) & ~(PG_SWAPBACKED | PG_DIRTY);
        }
        if (A.pteYoung(x) || (free && A.pteDirty(x))) {
          A.clearYoungDirtyPtes(m, tlb.mm, a, e, i, 1, free ? CYD_YOUNG | CYD_DIRTY : CYD_YOUNG);
          tlbRemoveTlbEntries(tlb, a, 1);
        }
      }
      if (il) il.unlock(LK_PTL, slot);
    }
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
    case "free":
    case "cold":
    case "pageout": {
      // No swap is modelled: PAGEOUT only ages the pages like COLD.
      const tlb = tlbGatherMmu(m, mm);
      for (const vma of vmasIn(mm, start, end)) {
        if (advice === "free" && vma.file !== null) continue;
        const s = Math.max(start, vma.start);
        const e = Math.min(end, vma.end);
        yield* walkPmdTables(m, mm.pgd, m.arch.levels - 1, s, e, (slot, a, b) => cleanPmdRange(tlb, vma, slot, a, b, advice === "free"));
        tlbFlushMmuTlbonly(tlb);
      }
      tlbFinishMmu(tlb);
      break;
    }
    case "hugepage":
    case "nohugepage": {
      const vmas = isolateRange(m, mm, start, end);
      if (vmas.length === 0) throw new MmError("ENOMEM", "madvise: range is not mapped");
      for (const vma of vmas) {
        if (advice === "hugepage") vma.flags = (vma.flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
        else vma.flags = (vma.flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
      }
      mergeAround(m, mm, start, end);
      break;
    }
    case "willneed":
      break;
  }
}
