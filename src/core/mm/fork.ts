// fork's address-space copy: models dup_mmap() (mm/mmap.c, kernel/fork.c):
// VMAs are duplicated, page tables copied only where vma_needs_copy() says
// so (the VMA has an anon_vma), and the parent's TLB is flushed at the end
// because its PTEs were write-protected. Until that flush another CPU may
// still write through a writable TLB entry fork has write-protected, so no
// fault may copy such a page meanwhile: mmap_lock held for writing keeps
// out the faults that take it, and vma_start_write() of each parent VMA the
// faults that run under the VMA lock.

import type { Machine } from "../machine.js";
import { copyPageRange, type KGen } from "./memory.js";
import { anonVmaRoot } from "./rmap.js";
import { LK_ANON_VMA, LK_IMMAP, site, run } from "../sync.js";
import { variantIs } from "../variant.js";
import { vmaStartWrite } from "./mmap_lock.js";
import type { Mm } from "./types.js";

const S_FORK_AVC = site("anon_vma_fork", "anon_vma_lock_write() of the root");
const S_FORK_IMMAP = site("dup_mmap", "i_mmap_lock_write() to link a file VMA");

export function dupMmap(m: Machine, oldmm: Mm): Mm {
  return run(dupMmapGen(m, oldmm));
}

// The caller holds the parent's mmap_lock for writing.
export function* dupMmapGen(m: Machine, oldmm: Mm): KGen<Mm> {
  const mm = m.newMm(oldmm.mmapBase);
  mm.startBrk = oldmm.startBrk;
  mm.brk = oldmm.brk;
  const il0 = m.il;
  for (const vma of oldmm.vmas) {
    // vma_start_write(mpnt) (fb49c455323f, "fork: lock VMAs of the parent
    // process when forking", v6.5-rc1 and 6.4.3). fork_vma_lock=none is v6.4
    // as released: x86 faults tried the VMA lock first (0bff0aaea03e) and
    // dup_mmap() took only mmap_lock, so a fault could copy a page fork had
    // just write-protected, before the flush below, while a thread on
    // another CPU still stored to the old page through its TLB.
    if (il0 !== null && !variantIs(m, "fork_vma_lock", "none")) yield* vmaStartWrite(m, oldmm, vma);
    const nv = vma.clone();
    // anon_vma_fork(): the child's anon_vma is a child of the parent VMA's, so
    // an rmap walk from a folio the parent mapped finds the child's VMA too.
    // It links the VMA under the root's lock, held for writing: a walk
    // (which holds it for reading) sees the child's VMA from its start or
    // not at all, and then the PTEs it copies are what the walk left. A file
    // VMA joins the file's i_mmap tree the same way, under i_mmap_rwsem held
    // for writing, right after the parent's (vma_interval_tree_insert_after())
    // and before any PTE is copied. The model links both at once, taking the
    // locks in the kernel's order (i_mmap_rwsem, then the anon_vma's); the
    // kernel links the anon side first, a difference no walk can see, since
    // nothing is copied before both are linked.
    const il = m.il;
    const f = vma.file;
    if (il && f !== null) yield il.lock(LK_IMMAP, f.id, true, S_FORK_IMMAP);
    let root = 0;
    if (vma.anonVma !== 0) {
      root = anonVmaRoot(m, vma.anonVma);
      if (il) yield il.lock(LK_ANON_VMA, root, true, S_FORK_AVC);
      nv.anonVma = m.newAnonVma(vma.anonVma);
    }
    mm.vmas.push(nv);
    if (il && root !== 0) il.unlock(LK_ANON_VMA, root);
    if (il && f !== null) il.unlock(LK_IMMAP, f.id);
    if (vma.anonVma !== 0) yield* copyPageRange(m, mm, oldmm, vma);
  }
  m.arch.flushTlbMm(m, oldmm);
  return mm;
}
