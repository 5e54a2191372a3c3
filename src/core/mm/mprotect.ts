// mprotect(): models do_mprotect_pkey(), mprotect_fixup(), change_protection()
// and change_pte_range() with large-folio batching (mm/mprotect.c, v6.17):
// modify_prot_start_ptes()/modify_prot_commit_ptes() per batch, write upgrade
// for anon-exclusive pages in sub-batches of equal exclusivity.

import type { Machine } from "../machine.js";
import { changeHugePmd, splitHugePmd } from "./huge_memory.js";
import { folioPteBatch, type KGen, run, walkPmdTables, YIELD_PTE } from "./memory.js";
import { type MmuGather, tlbFinishMmu, tlbFlushMmuTlbonly, tlbGatherMmu, tlbRemoveTlbEntries } from "./mmu_gather.js";
import { LVL_PMD } from "./pgtable.js";
import { PG_ANON, PG_ANON_EXCLUSIVE } from "./physmem.js";
import { vmaPageProt } from "./fault.js";
import { MmError, protToVmFlags } from "./mmap.js";
import { type Mm, PMD_SIZE, VM_ACCESS_FLAGS, VM_SHARED, VM_WRITE, type Vma } from "./types.js";
import { isolateRange, mergeAround } from "./vma.js";
import { idxAt } from "./walk.js";

// change_pte_range()
function* changePteRange(tlb: MmuGather, vma: Vma, pmdIdx: number, addr: number, end: number, newprot: number, tryWritable: boolean): KGen {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const C = m.counters;
  const il = m.interleave;
  const pmdv = T.get(pmdIdx);
  if (!A.entryIsTable(pmdv)) return;
  const slot = T.slotOfPfn(A.ptePfn(pmdv));
  const e = T.chunkOf(slot);
  let i = T.base(slot) + ((addr / 4096) & 511);
  const shared = (vma.flags & VM_SHARED) !== 0;
  while (addr < end) {
    if (il) yield YIELD_PTE;
    const old = e[i] as number;
    C.pteReads++;
    if (old === 0 || !A.ptePresent(old)) {
      i++;
      addr += 4096;
      continue;
    }
    let nr = 1;
    let pfn = -1;
    let anonFolio = false;
    if (!A.pteSpecial(old)) {
      pfn = A.ptePfn(old);
      const head = phys.folioHead(pfn);
      const order = phys.order[head] as number;
      anonFolio = ((phys.flags[head] as number) & PG_ANON) !== 0;
      // FPB_RESPECT_SOFT_DIRTY | FPB_RESPECT_WRITE
      if (order > 0) nr = folioPteBatch(m, e, i, old, pfn, head, order, (end - addr) / 4096, false, true);
    }
    // modify_prot_start_ptes(): one xchg per entry on x86.
    for (let k = 0; k < nr; k++) {
      const x = e[i + k] as number;
      e[i + k] = 0;
      const n = A.pteModify(x, newprot);
      // Upgrade to writable where no write fault is needed: anon-exclusive
      // pages in private mappings, dirty pages in shared ones.
      let w = n;
      if (tryWritable && !A.pteWrite(n) && A.ptePresent(n) && pfn >= 0) {
        if (shared) {
          if (A.pteDirty(n)) w = A.pteMkwrite(n);
        } else if (anonFolio && ((phys.flags[pfn + k] as number) & PG_ANON_EXCLUSIVE) !== 0) {
          w = A.pteMkwrite(n);
        }
      }
      e[i + k] = w; // modify_prot_commit_ptes()
      if (A.pteNeedsFlush(x, w)) tlbRemoveTlbEntries(tlb, addr + k * 4096, 1);
    }
    C.pteAtomics += nr;
    C.pteWrites += nr;
    i += nr;
    addr += nr * 4096;
  }
}

function* changePmdRange(tlb: MmuGather, vma: Vma, pmdSlot: number, addr: number, end: number, newprot: number, tryWritable: boolean): KGen {
  const m = tlb.m;
  while (addr < end) {
    const next = Math.min(addr - (addr % PMD_SIZE) + PMD_SIZE, end);
    const pmdIdx = pmdSlot * 512 + idxAt(addr / 4096, LVL_PMD);
    const v = m.tables.get(pmdIdx);
    m.counters.pteReads++;
    if (v !== 0) {
      if (m.arch.entryIsLeaf(v)) {
        if (next - addr === PMD_SIZE) {
          changeHugePmd(tlb, pmdIdx, addr, newprot, vma);
          addr = next;
          continue;
        }
        splitHugePmd(m, tlb.mm, vma, pmdIdx, addr - (addr % PMD_SIZE));
      }
      yield* changePteRange(tlb, vma, pmdIdx, addr, next, newprot, tryWritable);
    }
    addr = next;
  }
}

// change_protection() for one VMA (tlb_start_vma/tlb_end_vma around it).
function* changeProtection(tlb: MmuGather, vma: Vma): KGen {
  const m = tlb.m;
  const newprot = vmaPageProt(m, vma);
  // vma_wants_manual_pte_write_upgrade()
  const tryWritable = (vma.flags & VM_WRITE) !== 0;
  yield* walkPmdTables(m, tlb.mm.pgd, m.arch.levels - 1, vma.start, vma.end, (pmdSlot, a, b) => changePmdRange(tlb, vma, pmdSlot, a, b, newprot, tryWritable));
  tlbFlushMmuTlbonly(tlb);
}

// do_mprotect_pkey()
export function doMprotect(m: Machine, mm: Mm, start: number, len: number, prot: { read: boolean; write: boolean; exec: boolean }): void {
  const end = start + Math.ceil(len / 4096) * 4096;
  // The range must be fully mapped.
  let cur = start;
  for (let i = mm.findVmaIndex(start); i < mm.vmas.length && cur < end; i++) {
    const v = mm.vmas[i] as Vma;
    if (v.start > cur) break;
    cur = v.end;
  }
  if (cur < end) throw new MmError("ENOMEM", "mprotect: range is not fully mapped");
  const newBits = protToVmFlags(prot);
  const tlb = tlbGatherMmu(m, mm);
  const vmas = isolateRange(m, mm, start, end);
  for (const vma of vmas) {
    const nflags = (vma.flags & ~VM_ACCESS_FLAGS) | newBits;
    if (nflags === vma.flags) continue;
    vma.flags = nflags;
    run(changeProtection(tlb, vma));
  }
  tlbFinishMmu(tlb);
  mergeAround(mm, start, end);
}
