// Per-VMA locks (CONFIG_PER_VMA_LOCK) and the mmap_lock releases that end a
// writer's hold on them: models lock_vma_under_rcu() (mm/mmap_lock.c),
// vma_start_read(), vma_end_read(), vma_start_write() and
// vma_end_write_all() (include/linux/mmap_lock.h).
//
// Since v6.4 a page fault first tries the faulting VMA's read lock and takes
// mmap_lock only when that fails; since v6.16 MADV_DONTNEED does the same
// for a range inside one VMA. So these paths run beside an mmap_lock writer
// (fork, mprotect, munmap, mremap, mmap, brk, collapse) unless that writer
// has write-locked their VMA: every writer must vma_start_write() each VMA
// whose bounds, flags or page tables it changes, and holds those locks
// until it releases or downgrades mmap_lock. The VMA lock matters only when
// threads interleave: without the explorer (m.il === null) nothing here
// locks, and a sequential run pays one test per call. No Node APIs.

import type { Machine } from "../machine.js";
import { type Interleaver, LK_MMAP, site } from "../sync.js";
import type { KGen } from "./memory.js";
import type { Mm, Vma } from "./types.js";

// A spin site: the writer runs again only after a reader made progress.
const S_VMA_WAIT = site("vma_start_write", "wait for the VMA's readers to leave", true);

// lock_vma_under_rcu(): the VMA containing addr, read-locked, or null when
// there is none or vma_start_read() fails because an mmap_lock writer has
// write-locked it (or waits to): the caller then takes mmap_lock. The
// lookup and the reference are one step (the maple-tree walk under RCU,
// then the refcount and vm_lock_seq checks that re-validate it).
export function lockVmaUnderRcu(mm: Mm, addr: number): Vma | null {
  const vma = mm.findVma(addr);
  if (vma === null || vma.vmWriteLocked) return null;
  vma.vmReaders++;
  return vma;
}

// vma_end_read()
export function vmaEndRead(vma: Vma): void {
  vma.vmReaders--;
}

// vma_start_write(): the caller holds mmap_lock for writing. From here on
// vma_start_read() fails; the writer waits for the readers already inside.
// Idempotent within one write cycle.
export function* vmaStartWrite(m: Machine, mm: Mm, vma: Vma): KGen {
  if (m.il === null || vma.vmWriteLocked) return;
  vma.vmWriteLocked = true;
  mm.vmaWriteLocked.push(vma);
  while (vma.vmReaders > 0) yield S_VMA_WAIT;
}

// vma_start_write() of a VMA no reader can hold: one not yet in the tree
// (a new mapping, mremap's copy, the far part of a split of a VMA already
// write-locked).
export function vmaMarkWriteLocked(m: Machine, mm: Mm, vma: Vma): void {
  if (m.il === null || vma.vmWriteLocked) return;
  if (vma.vmReaders !== 0) throw new Error("model bug: a VMA not yet in the tree has readers");
  vma.vmWriteLocked = true;
  mm.vmaWriteLocked.push(vma);
}

// vma_end_write_all(): mmap_write_unlock() and mmap_write_downgrade() end
// every VMA write lock of the cycle (the kernel bumps mm_lock_seq).
export function vmaEndWriteAll(mm: Mm): void {
  const l = mm.vmaWriteLocked;
  if (l.length === 0) return;
  for (const v of l) v.vmWriteLocked = false;
  mm.vmaWriteLocked = [];
}

// mmap_write_unlock() (also right for mmap_read_unlock(): a reader holds
// no VMA write lock, so there is nothing to end).
export function mmapUnlock(il: Interleaver, mm: Mm): void {
  vmaEndWriteAll(mm);
  il.unlock(LK_MMAP, mm.id);
}

// mmap_write_downgrade()
export function mmapWriteDowngrade(il: Interleaver, mm: Mm): void {
  vmaEndWriteAll(mm);
  il.downgrade(LK_MMAP, mm.id);
}
