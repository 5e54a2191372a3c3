// fork's address-space copy: models dup_mmap() (mm/mmap.c, kernel/fork.c):
// VMAs are duplicated, page tables copied only where vma_needs_copy() says
// so (the VMA has an anon_vma), and the parent's TLB is flushed at the end
// because its PTEs were write-protected.

import type { Machine } from "../machine.js";
import { copyPageRange, type KGen, run } from "./memory.js";
import type { Mm } from "./types.js";

export function dupMmap(m: Machine, oldmm: Mm): Mm {
  return run(dupMmapGen(m, oldmm));
}

// The caller holds the parent's mmap_lock for writing.
export function* dupMmapGen(m: Machine, oldmm: Mm): KGen<Mm> {
  const mm = m.newMm(oldmm.mmapBase);
  mm.startBrk = oldmm.startBrk;
  mm.brk = oldmm.brk;
  for (const vma of oldmm.vmas) {
    const nv = vma.clone();
    // anon_vma_fork(): the child's anon_vma is a child of the parent VMA's, so
    // an rmap walk from a folio the parent mapped finds the child's VMA too.
    if (vma.anonVma !== 0) nv.anonVma = m.newAnonVma(vma.anonVma);
    mm.vmas.push(nv);
    if (vma.anonVma !== 0) yield* copyPageRange(m, mm, oldmm, vma);
  }
  m.arch.flushTlbMm(m, oldmm);
  return mm;
}
