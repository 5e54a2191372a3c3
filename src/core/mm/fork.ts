// fork's address-space copy: models dup_mmap() (mm/mmap.c, kernel/fork.c):
// VMAs are duplicated, page tables copied only where vma_needs_copy() says
// so (the VMA has an anon_vma), and the parent's TLB is flushed at the end
// because its PTEs were write-protected.

import type { Machine } from "../machine.js";
import { copyPageRange, type KGen, run } from "./memory.js";
import { anonVmaRoot } from "./rmap.js";
import { LK_ANON_VMA, site } from "../sync.js";
import type { Mm } from "./types.js";

const S_FORK_AVC = site("anon_vma_fork", "anon_vma_lock_write() of the root");

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
    // It links the VMA under the root's lock, held for writing: a walk
    // (which holds it for reading) sees the child's VMA from its start or
    // not at all, and then the PTEs it copies are what the walk left.
    const il = m.il;
    let root = 0;
    if (vma.anonVma !== 0) {
      root = anonVmaRoot(m, vma.anonVma);
      if (il) yield il.lock(LK_ANON_VMA, root, true, S_FORK_AVC);
      nv.anonVma = m.newAnonVma(vma.anonVma);
    }
    mm.vmas.push(nv);
    if (il && root !== 0) il.unlock(LK_ANON_VMA, root);
    if (vma.anonVma !== 0) yield* copyPageRange(m, mm, oldmm, vma);
  }
  m.arch.flushTlbMm(m, oldmm);
  return mm;
}
