// Truncating a file: models truncate_setsize() and truncate_pagecache()
// (mm/truncate.c) as ftruncate() runs them, v6.17. i_size is written first
// (i_size_write()); then unmap_mapping_range() (mm/memory.c, even_cows) zaps
// every mapping of the pages from the new size on, one
// zap_page_range_single() per VMA found in the file's i_mmap tree, under
// i_mmap_rwsem for reading and without any mmap_lock; then
// truncate_inode_pages() takes each folio's lock (a fault holding it is
// waited for), unmaps it if a racing fault mapped it meanwhile
// (truncate_cleanup_folio() -> unmap_mapping_folio(), private anon copies
// kept), removes it from the page cache and drops the cache's reference,
// which frees the pages nobody else holds; then unmap_mapping_range() runs a
// second time, for the private copies a racing COW fault made from a page
// between the first pass and the removal.
//
// Why a fault cannot leave a page mapped beyond the new end: the fault
// re-checks i_size under the folio lock (fault.ts). A fault that checked it
// before the i_size write holds the lock until its PTE is in, so the removal
// (which waits for the lock) finds the page mapped and unmaps it, and the
// second pass finds its COW copy; a fault that checks after it gets SIGBUS.
//
// The caller holds the inode lock (i_rwsem, explore/ops.ts), which
// serialises truncations of one file. Left out: partial pages (the tail of
// the last page is not zeroed). The VMAs are visited in address order per mm, not in i_mmap order
// (see mremap.ts). truncate_inode_pages_range()'s batches of
// find_lock_entries() are taken one folio at a time. No Node APIs.

import type { Machine } from "../machine.js";
import { type Interleaver, LK_FOLIO, LK_IMMAP, site } from "../sync.js";
import { filemapFolioPut } from "./fault.js";
import { type KGen, unmapSingleVma } from "./memory.js";
import { tlbFinishMmu, tlbGatherMmu } from "./mmu_gather.js";
import type { ZapDetails } from "./pt_reclaim.js";
import type { FileObj, Mm, Vma } from "./types.js";

const S_TRUNC_IMMAP = site("unmap_mapping_range", "i_mmap_lock_read()");
const S_TRUNC_PAGES = site("truncate_inode_pages", "after i_mmap_unlock_read()");
const S_TRUNC_LOCK = site("truncate_inode_pages", "folio_lock()");

const EVEN_COWS: ZapDetails = { reclaimPt: false, evenCows: true };
const KEEP_COWS: ZapDetails = { reclaimPt: false, evenCows: false };

// truncate_setsize(inode, newsize) + truncate_pagecache(inode, newsize)
// Locks: the inode lock held for writing on entry and exit.
export function* truncatePagecache(m: Machine, f: FileObj, newSize: number): KGen {
  const first = Math.ceil(newSize / m.geo.pageSize); // holebegin, in pages
  f.size = newSize; // i_size_write()
  yield* unmapMappingPages(m, f, first, Infinity, EVEN_COWS);
  if (m.il) yield S_TRUNC_PAGES;
  yield* truncateInodePages(m, f, first);
  yield* unmapMappingPages(m, f, first, Infinity, EVEN_COWS);
}

// vma_interval_tree_foreach() over file pages [start, start + nr): each VMA
// mapping one of them, with the address range they occupy there.
export function fileRangeMappings(m: Machine, f: FileObj, start: number, nr: number): [Mm, Vma, number, number][] {
  const PS = m.geo.pageSize;
  const hits: [Mm, Vma, number, number][] = [];
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    for (const vma of mm.rmapVmas()) {
      if (vma.file !== f) continue;
      const pages = (vma.end - vma.start) / PS;
      if (vma.pgoff + pages <= start || vma.pgoff >= start + nr) continue;
      const a = vma.start + Math.max(0, start - vma.pgoff) * PS;
      const b = nr === Infinity ? vma.end : Math.min(vma.end, vma.start + (start + nr - vma.pgoff) * PS);
      hits.push([mm, vma, a, b]);
    }
  }
  return hits;
}

// unmap_mapping_pages(mapping, start, nr, even_cows) (mm/memory.c): zaps
// pages [start, start + nr) of the file in every VMA mapping them.
// Locks: takes and drops i_mmap_rwsem for reading, PTE locks inside.
function* unmapMappingPages(m: Machine, f: FileObj, start: number, nr: number, details: ZapDetails): KGen {
  const il = m.il;
  const PS = m.geo.pageSize;
  if (il) yield il.lock(LK_IMMAP, f.id, false, S_TRUNC_IMMAP);
  for (const [mm, vma, a, b] of fileRangeMappings(m, f, start, nr)) {
    // zap_page_range_single(): a gather of its own per VMA.
    const tlb = tlbGatherMmu(m, mm);
    yield* unmapSingleVma(tlb, vma, a, b, details);
    tlbFinishMmu(tlb);
  }
  if (il) il.unlock(LK_IMMAP, f.id);
}

// truncate_inode_pages_range(mapping, lstart, -1) (mm/truncate.c): first the
// folios nobody holds locked (find_lock_entries() uses folio_trylock()),
// then, until none is left from `first` on, each remaining one after waiting
// for its lock (a fault holding it) and re-checking that it is still there.
// Locks: none on entry or exit; each folio's lock inside.
function* truncateInodePages(m: Machine, f: FileObj, first: number): KGen {
  const il = m.il;
  const phys = m.phys;
  for (const [idx, pfn] of [...f.pages].sort((a, b) => a[0] - b[0])) {
    if (idx < first || f.pages.get(idx) !== pfn) continue;
    if (il && !il.trylock(LK_FOLIO, pfn)) continue;
    phys.ref[pfn] = (phys.ref[pfn] as number) + 1; // find_lock_entries()' reference
    yield* truncateInodeFolio(m, f, idx, pfn);
  }
  if (!il) return;
  for (;;) {
    let idx = -1;
    for (const k of f.pages.keys()) if (k >= first && (idx < 0 || k < idx)) idx = k;
    if (idx < 0) return;
    const pfn = f.pages.get(idx) as number;
    phys.ref[pfn] = (phys.ref[pfn] as number) + 1; // find_get_entries()
    yield il.lock(LK_FOLIO, pfn, true, S_TRUNC_LOCK);
    if (f.pages.get(idx) !== pfn) {
      il.unlock(LK_FOLIO, pfn);
      filemapFolioPut(m, pfn, "truncate_inode_pages()");
      continue;
    }
    yield* truncateInodeFolio(m, f, idx, pfn);
  }
}

// truncate_inode_folio() with the folio locked and a reference of ours:
// truncate_cleanup_folio() unmaps it if it is still mapped (a fault mapped it
// after the first unmap pass; unmap_mapping_folio() keeps private anon
// copies), filemap_remove_folio() takes it out of the page cache; then
// folio_unlock() and the page cache's and our references go.
function* truncateInodeFolio(m: Machine, f: FileObj, idx: number, pfn: number): KGen {
  const phys = m.phys;
  if ((phys.mapcount[pfn] as number) > 0) yield* unmapMappingPages(m, f, idx, 1, KEEP_COWS);
  // filemap_unaccount_folio(): a folio removed while still mapped is a bug
  // (CONFIG_DEBUG_VM: "BUG: Bad page cache"), the mapping left behind.
  if ((phys.mapcount[pfn] as number) > 0 && m.config.checkInvariants)
    m.violations.push({
      invariant: "bad-page-cache",
      message: `truncate_inode_pages(): pfn ${pfn} (file ${f.name} page ${idx}) leaves the page cache still mapped ${phys.mapcount[pfn]} time(s)`,
    });
  f.pages.delete(idx);
  if (m.il) (m.il as Interleaver).unlock(LK_FOLIO, pfn);
  filemapFolioPut(m, pfn, "truncate_inode_pages()");
  filemapFolioPut(m, pfn, "truncate_inode_pages()");
}
