// Writeback of a file's dirty page cache, as the flusher thread (wb_workfn()
// -> writeback_sb_inodes()) or fsync() (file_write_and_wait_range()) runs
// it, v6.17: writeback_iter() (mm/page-writeback.c) visits the folios
// tagged dirty in index order; each is locked, folio_clear_dirty_for_io()
// write-protects and cleans every shared mapping of it (folio_mkclean(),
// mm/rmap.c), carries a dirty bit it found over to the folio
// (folio_mark_dirty()), and clears the folio's dirty flag; the filesystem
// then writes it out. The next store through any of those mappings faults
// (wp_page_shared(): page_mkwrite) and dirties the folio again: that is how
// the kernel learns about writes to shared file memory, and why the access
// and dirty bits this layer keeps matter to it.
//
// Simplified: the write completes at once (no PG_writeback while the I/O is
// in flight, so nothing waits on it); no inode lock (writeback takes none);
// shmem files are skipped (shmem has no writeback, only swap). File folios
// are order 0 in the model, so there are no PMD mappings to clean.
// No Node APIs.

import type { Machine } from "../machine.js";
import { LK_FOLIO, site } from "../sync.js";
import type { KGen } from "./memory.js";
import { PG_DIRTY } from "./physmem.js";
import { pageVmaMappedWalk, rmapLock, rmapUnlock, rmapWalk } from "./rmap.js";
import { type FileObj, VM_SHARED } from "./types.js";

const S_WB_LOCK = site("writeback_iter", "folio_lock()");
const S_MKCLEAN_PTE = site("page_vma_mkclean_one", "entry cleaned and write-protected");

// writeback_iter() over the whole file (WB_SYNC_ALL, range 0..LLONG_MAX).
// Returns the number of folios written.
export function* writebackFile(m: Machine, f: FileObj): KGen<number> {
  if (f.shmem) return 0;
  const il = m.il;
  const phys = m.phys;
  let written = 0;
  for (const [idx, pfn] of [...f.pages].sort((a, b) => a[0] - b[0])) {
    if (f.pages.get(idx) !== pfn || ((phys.flags[pfn] as number) & PG_DIRTY) === 0) continue;
    if (il) {
      yield il.lock(LK_FOLIO, pfn, true, S_WB_LOCK);
      // Truncated, or cleaned by another writeback, while we waited.
      if (f.pages.get(idx) !== pfn || ((phys.flags[pfn] as number) & PG_DIRTY) === 0) {
        il.unlock(LK_FOLIO, pfn);
        continue;
      }
    }
    // folio_clear_dirty_for_io()
    if (yield* folioMkclean(m, pfn)) phys.flags[pfn] = (phys.flags[pfn] as number) | PG_DIRTY; // folio_mark_dirty()
    phys.flags[pfn] = (phys.flags[pfn] as number) & ~PG_DIRTY; // folio_test_clear_dirty()
    if (il) il.folioWritten(pfn, 1 << (phys.order[pfn] as number));
    written++;
    if (il) il.unlock(LK_FOLIO, pfn);
  }
  return written;
}

// folio_mkclean() (mm/rmap.c): rmap_walk() over the shared mappings of the
// folio (invalid_mkclean_vma() skips the private ones), and in each
// page_vma_mkclean_one(): an entry that is dirty or writable is cleared and
// flushed at once (ptep_clear_flush(): a CPU must not keep writing through a
// cached writable entry after the folio was found clean), then set again
// write-protected and clean. Returns whether any entry was.
// Locks: i_mmap_rwsem for reading, each PTE lock in turn; the caller holds
// the folio lock.
export function* folioMkclean(m: Machine, head: number): KGen<boolean> {
  const A = m.arch;
  let cleaned = 0;
  const lk = yield* rmapLock(m, head, false);
  try {
    for (const h of rmapWalk(m, head)) {
      if ((h.vma.flags & VM_SHARED) === 0) continue;
      yield* pageVmaMappedWalk(
        m,
        h,
        head,
        (e, i, a) => {
          const v = e[i] as number;
          if (!A.pteDirty(v) && !A.pteWrite(v)) return;
          const old = A.getAndClearFullPtes(m, h.mm, a, e, i, 1, false);
          A.flushTlbPage(m, h.mm, a);
          A.setPtes(m, h.mm, a, e, i, A.pteMkclean(A.pteWrprotect(old)), 1);
          cleaned++;
        },
        null,
      );
      if (m.il) yield S_MKCLEAN_PTE;
    }
  } finally {
    rmapUnlock(m, lk);
  }
  return cleaned > 0;
}
