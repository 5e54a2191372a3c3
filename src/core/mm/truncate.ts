// Truncating a file's page cache: models truncate_pagecache() (mm/truncate.c)
// as ftruncate() to a smaller size runs it: unmap_mapping_range() (mm/memory.c,
// even_cows) zaps every mapping of the pages from the new size on, one
// zap_page_range_single() per VMA found in the file's i_mmap tree, under
// i_mmap_rwsem for reading and without any mmap_lock; then
// truncate_inode_pages() drops the page cache's reference of each page, which
// frees the pages no mapping holds any more.
//
// Left out: the folio lock (a fault racing the truncation is not excluded: do
// not explore one against it), the second unmap_mapping_range() pass, partial
// pages and i_size checks. The VMAs are visited in address order per mm, not
// in i_mmap order (see mremap.ts). No Node APIs.

import { checkFreedFrames } from "../check.js";
import type { Machine } from "../machine.js";
import { LK_IMMAP, site } from "../sync.js";
import { type KGen, unmapSingleVma } from "./memory.js";
import { tlbFinishMmu, tlbGatherMmu } from "./mmu_gather.js";
import type { ZapDetails } from "./pt_reclaim.js";
import type { FileObj, Mm, Vma } from "./types.js";

const S_TRUNC_IMMAP = site("unmap_mapping_range", "i_mmap_lock_read()");
const S_TRUNC_PAGES = site("truncate_inode_pages", "after i_mmap_unlock_read()");

const EVEN_COWS: ZapDetails = { reclaimPt: false, evenCows: true };

// truncate_pagecache(inode, newsize)
export function* truncatePagecache(m: Machine, f: FileObj, newSize: number): KGen {
  const il = m.il;
  const PS = m.geo.pageSize;
  const first = Math.ceil(newSize / PS); // holebegin, in pages
  if (il) yield il.lock(LK_IMMAP, f.id, false, S_TRUNC_IMMAP);
  // vma_interval_tree_foreach(): the VMAs mapping a page at or past `first`.
  const hits: [Mm, Vma, number][] = [];
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    for (const vma of mm.vmas) {
      if (vma.file !== f) continue;
      const pages = (vma.end - vma.start) / PS;
      if (vma.pgoff + pages <= first) continue;
      hits.push([mm, vma, vma.start + Math.max(0, first - vma.pgoff) * PS]);
    }
  }
  for (const [mm, vma, start] of hits) {
    // zap_page_range_single(): a gather of its own per VMA.
    const tlb = tlbGatherMmu(m, mm);
    yield* unmapSingleVma(tlb, vma, start, vma.end, EVEN_COWS);
    tlbFinishMmu(tlb);
  }
  if (il) {
    il.unlock(LK_IMMAP, f.id);
    yield S_TRUNC_PAGES;
  }
  // truncate_inode_pages_range(): out of the page cache, folio_put().
  const freed: number[] = [];
  for (const [idx, pfn] of [...f.pages]) {
    if (idx < first) continue;
    f.pages.delete(idx);
    if (m.phys.folioPut(pfn)) {
      freed.push(pfn);
      m.counters.pagesFree++;
    }
  }
  if (newSize < f.size) f.size = newSize;
  if (freed.length > 0 && m.config.checkInvariants) m.violations.push(...checkFreedFrames(m, freed, "truncate_inode_pages()"));
}
