// Collapse of a PTE-mapped range into a PMD-mapped THP: models
// madvise_collapse(), hpage_collapse_scan_pmd(), collapse_huge_page(),
// __collapse_huge_page_isolate(), __collapse_huge_page_copy() and
// __collapse_huge_page_copy_succeeded()/_failed() (mm/khugepaged.c) with
// pmdp_collapse_flush() (mm/pgtable-generic.c) and
// tlb_remove_table_sync_one() (mm/mmu_gather.c), for anonymous VMAs.
//
// In the kernel's order, for each PMD-sized range: scan the PTEs under the
// PTE lock (anon pages only, at least one writable entry; MADV_COLLAPSE has
// no none/shared/swap limits), allocate the THP; with mmap_lock held for
// writing and the anon_vma lock for writing, clear the PMD and flush the
// range under the PMD lock (pmdp_collapse_flush()), wait for every CPU's
// interrupts-off sections (GUP-fast) with tlb_remove_table_sync_one(),
// isolate the pages under the old table's PTE lock (each folio's references
// must be its mappings' and the swap cache's: a GUP pin or a zap's gather
// reference makes it fail, and the PMD is put back); drop the anon_vma
// lock, copy the pages (none and zero-page entries give zeroes), clear the
// old PTEs and free the old folios, deposit the old table and install the
// huge PMD (dirty, young, writable when the VMA is) under the PMD lock.
//
// Simplified: madvise_collapse() scans under mmap_lock for reading and
// takes it for writing for collapse_huge_page(), which revalidates the VMA
// and the PMD; the model holds it for writing throughout (the caller takes
// it). Swap and migration entries in the range make the collapse fail (the
// kernel swaps them in first, __collapse_huge_page_swapin(), or waits).
// File and shmem collapse (collapse_file()) is not modelled. No Node APIs.

import type { Machine } from "../machine.js";
import { variantIs } from "../variant.js";
import { LK_ANON_VMA, LK_FOLIO, LK_PMD, LK_PTL, pteLockMapped, site } from "../sync.js";
import type { KGen } from "./memory.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_SWAPBACKED, PG_ZERO } from "./physmem.js";
import { anonVmaRoot, folioMapcount, folioSetAnonRmap } from "./rmap.js";
import { type Mm, VM_NOHUGEPAGE, VM_SHARED, VM_WRITE, type Vma } from "./types.js";
import { pmdOffset } from "./walk.js";

const S_SCAN_LOCK = site("hpage_collapse_scan_pmd", "take the PTE lock");
const S_AVL = site("collapse_huge_page", "anon_vma_lock_write()");
const S_PMD_LOCK = site("collapse_huge_page", "take the PMD lock");
const S_SYNC = site("tlb_remove_table_sync_one", "wait for every CPU to take the IPI");
const S_ISOLATE_LOCK = site("__collapse_huge_page_isolate", "take the old table's PTE lock");
const S_COPY = site("__collapse_huge_page_copy", "pages isolated, anon_vma unlocked, not yet copied");
const S_CLEAR_LOCK = site("__collapse_huge_page_copy_succeeded", "take the old table's PTE lock");
const S_INSTALL_LOCK = site("collapse_huge_page", "take the PMD lock to install the huge PMD");

export interface CollapseStat {
  collapsed: number; // PMD ranges collapsed
  already: number; // ranges already PMD-mapped (SCAN_PMD_MAPPED)
  failed: number; // ranges that could not be collapsed
}

// madvise_collapse() over [start, end): each PMD-aligned range that lies in
// an anonymous VMA. The caller holds mmap_lock for writing.
export function* madviseCollapse(m: Machine, mm: Mm, start: number, end: number): KGen<CollapseStat> {
  const G = m.geo;
  const stat: CollapseStat = { collapsed: 0, already: 0, failed: 0 };
  const hstart = Math.ceil(start / G.pmdSize) * G.pmdSize;
  const hend = Math.floor(end / G.pmdSize) * G.pmdSize;
  for (let haddr = hstart; haddr < hend; haddr += G.pmdSize) {
    const vma = mm.findVma(haddr);
    // hugepage_vma_revalidate(): the range lies in one anon VMA that allows
    // THPs (MADV_COLLAPSE ignores the sysfs THP mode, not VM_NOHUGEPAGE).
    if (vma === null || vma.start > haddr || vma.end < haddr + G.pmdSize || vma.file !== null || (vma.flags & (VM_SHARED | VM_NOHUGEPAGE)) !== 0) {
      stat.failed++;
      continue;
    }
    const r = yield* collapseHugePage(m, mm, vma, haddr);
    if (r === "ok") stat.collapsed++;
    else if (r === "pmd-mapped") stat.already++;
    else stat.failed++;
  }
  m.counters.thpCollapses += stat.collapsed;
  m.counters.thpCollapseFailed += stat.failed;
  return stat;
}

export type CollapseResult = "ok" | "pmd-mapped" | "pmd-null" | "pte-non-present" | "page-not-anon" | "page-ro" | "page-count" | "page-locked" | "pmd-changed";

// What a scan of the PTE table finds: the folios (heads) and whether any
// entry is writable, or why the range cannot be collapsed.
function scanPtes(m: Machine, e: Float64Array, base: number, heads: number[]): CollapseResult | "writable" | "none" {
  const A = m.arch;
  const phys = m.phys;
  let writable = false;
  for (let k = 0; k < m.geo.ptrs; k++) {
    const v = e[base + k] as number;
    if (v === 0) continue;
    if (!A.ptePresent(v)) return "pte-non-present";
    const pfn = A.ptePfn(v);
    if (A.pteSpecial(v)) {
      if (((phys.flags[pfn] as number) & PG_ZERO) !== 0) continue; // is_zero_pfn(): counts as none
      return "page-not-anon";
    }
    const head = phys.folioHead(pfn);
    if (((phys.flags[head] as number) & PG_ANON) === 0) return "page-not-anon";
    if (A.pteWrite(v)) writable = true;
    if (heads[heads.length - 1] !== head && !heads.includes(head)) heads.push(head);
  }
  return writable ? "writable" : "none";
}

// collapse_huge_page() for the PMD range at haddr, after
// hpage_collapse_scan_pmd() found it worth collapsing.
export function* collapseHugePage(m: Machine, mm: Mm, vma: Vma, haddr: number): KGen<CollapseResult> {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const phys = m.phys;
  const il = m.il;
  const nr = G.ptrs;
  const pmdIdx = pmdOffset(m, mm, haddr, false);
  if (pmdIdx < 0) return "pmd-null";
  const pmdv = T.get(pmdIdx);
  if (pmdv === 0) return "pmd-null";
  if (A.entryIsLeaf(pmdv)) return "pmd-mapped";
  const slot = T.slotOfPfn(A.ptePfn(pmdv));
  const e = T.chunkOf(slot);
  const base = T.base(slot);
  // hpage_collapse_scan_pmd()
  if (il) {
    yield* pteLockMapped(il, slot, S_SCAN_LOCK);
    if (T.get(pmdIdx) !== pmdv) {
      il.unlock(LK_PTL, slot);
      return "pmd-changed";
    }
  }
  const scan = scanPtes(m, e, base, []);
  if (il) il.unlock(LK_PTL, slot);
  if (scan === "none" && !roCollapses(m, e, base)) return "page-ro"; // SCAN_PAGE_RO: no writable entry
  if (scan !== "writable" && scan !== "none") return scan;
  // collapse_huge_page(): alloc_charge_folio(), then under mmap_lock
  // (write, held by the caller) the anon_vma lock and the PMD lock.
  const hpage = phys.alloc(G.pmdOrder);
  m.counters.pagesAlloc += nr;
  const root = anonVmaRoot(m, vma.anonVma);
  if (il) yield il.lock(LK_ANON_VMA, root, true, S_AVL);
  const pmdSlot = Math.floor(pmdIdx / G.ptrs);
  if (il) yield il.lock(LK_PMD, pmdSlot, true, S_PMD_LOCK);
  if (T.get(pmdIdx) !== pmdv) {
    if (il) {
      il.unlock(LK_PMD, pmdSlot);
      il.unlock(LK_ANON_VMA, root);
    }
    freeHpage(m, hpage);
    return "pmd-changed";
  }
  // pmdp_collapse_flush(): the PMD cleared, the range flushed with the walk
  // caches (the table stays allocated, deposited below).
  T.set(pmdIdx, 0);
  m.counters.pteAtomics++;
  A.flushTlbRange(m, mm, haddr, haddr + G.pmdSize, G.pageShift, true);
  if (il) il.unlock(LK_PMD, pmdSlot);
  // tlb_remove_table_sync_one(): GUP-fast walks with interrupts disabled;
  // once every CPU took the IPI, none still reads the old table.
  if (il && !variantIs(m, "collapse_sync", "none")) il.ipiSync(S_SYNC);
  // __collapse_huge_page_isolate() under the old table's PTE lock.
  if (il) yield il.lock(LK_PTL, slot, true, S_ISOLATE_LOCK);
  const heads: number[] = [];
  let res: CollapseResult | null = null;
  const s2 = scanPtes(m, e, base, heads);
  if (s2 === "none") res = roCollapses(m, e, base) ? null : "page-ro";
  else if (s2 !== "writable") res = s2;
  const taken: number[] = [];
  if (res === null) {
    for (const head of heads) {
      // is_refcount_suitable(): the mappings' references and the swap
      // cache's; folio_trylock(); folio_isolate_lru().
      const cache = m.swap?.slotOf.has(head) ? 1 : 0;
      if ((phys.ref[head] as number) !== folioMapcount(m, head) + cache) {
        res = "page-count";
        break;
      }
      if (m.isolated.has(head) || (il !== null && !il.trylock(LK_FOLIO, head))) {
        res = "page-locked";
        break;
      }
      m.isolated.add(head);
      phys.ref[head] = (phys.ref[head] as number) + 1;
      taken.push(head);
    }
  }
  if (il) il.unlock(LK_PTL, slot);
  if (res !== null) {
    // Put the PMD back (pmd_populate() under the PMD lock) and release
    // what was isolated.
    for (const head of taken) {
      m.isolated.delete(head);
      phys.ref[head] = (phys.ref[head] as number) - 1;
      if (il) il.unlock(LK_FOLIO, head);
    }
    if (il) yield il.lock(LK_PMD, pmdSlot, true, S_PMD_LOCK);
    T.set(pmdIdx, pmdv);
    m.counters.pteWrites++;
    if (il) {
      il.unlock(LK_PMD, pmdSlot);
      il.unlock(LK_ANON_VMA, root);
    }
    freeHpage(m, hpage);
    return res;
  }
  if (il) {
    il.unlock(LK_ANON_VMA, root);
    yield S_COPY;
  }
  // __collapse_huge_page_copy(): the table is unreachable and its pages
  // isolated and locked, so its entries no longer change.
  let noneOrZero = 0;
  for (let k = 0; k < nr; k++) {
    const v = e[base + k] as number;
    if (v === 0 || A.pteSpecial(v)) noneOrZero++;
    else if (il) il.copyPage(A.ptePfn(v), hpage + k);
  }
  // __collapse_huge_page_copy_succeeded(): each entry cleared under the
  // PTE lock, the page's mapping and reference dropped.
  if (il) yield il.lock(LK_PTL, slot, true, S_CLEAR_LOCK);
  for (let k = 0; k < nr; k++) {
    const v = e[base + k] as number;
    if (v === 0) continue;
    e[base + k] = 0; // ptep_clear()
    m.counters.pteWrites++;
    if (A.pteSpecial(v)) continue;
    const pfn = A.ptePfn(v);
    const head = phys.folioHead(pfn);
    phys.mapcount[pfn] = (phys.mapcount[pfn] as number) - 1;
    phys.ref[head] = (phys.ref[head] as number) - 1;
    m.counters.folioAtomics += 2;
  }
  if (il) il.unlock(LK_PTL, slot);
  mm.rssAnon += noneOrZero;
  for (const head of taken) {
    m.isolated.delete(head);
    if (il) il.unlock(LK_FOLIO, head);
    // free_folio_and_swap_cache(): a swap-cache folio leaves the cache.
    const swap = m.swap;
    if (swap?.slotOf.has(head)) {
      swap.deleteFromCache(head);
      phys.ref[head] = (phys.ref[head] as number) - 1;
    }
    if (phys.folioPut(head)) m.counters.pagesFree += 1 << (phys.order[head] as number);
  }
  // The new folio: anon, exclusive, mapped by the PMD; the old table is
  // deposited for a later split (pgtable_trans_huge_deposit()).
  phys.flags[hpage] = (phys.flags[hpage] as number) | PG_ANON | PG_SWAPBACKED;
  for (let k = 0; k < nr; k++) phys.flags[hpage + k] = (phys.flags[hpage + k] as number) | PG_ANON_EXCLUSIVE;
  phys.addEntireMapcount(hpage, 1);
  folioSetAnonRmap(m, hpage, vma, haddr);
  if (il) yield il.lock(LK_PMD, pmdSlot, true, S_INSTALL_LOCK);
  if (T.get(pmdIdx) !== 0) throw new Error(`model bug: PMD at 0x${haddr.toString(16)} filled during collapse`);
  mm.deposited.push(slot);
  let hv = A.pteMkyoung(A.pteMkdirty(A.pmdMkhuge(A.pfnPte(hpage, A.vmGetPageProt(vma.flags)))));
  if ((vma.flags & VM_WRITE) !== 0) hv = A.pteMkwrite(hv); // maybe_pmd_mkwrite()
  T.set(pmdIdx, hv); // set_pmd_at()
  m.counters.pteWrites++;
  if (il) il.unlock(LK_PMD, pmdSlot);
  mm.anonHugePmds++;
  return "ok";
}

// With collapse_ro=any a range without a writable entry still collapses if
// it maps anything (an all-none range has nothing to copy: SCAN_PMD_NONE
// stands in, as the kernel finds no folio to collapse around).
function roCollapses(m: Machine, e: Float64Array, base: number): boolean {
  if (!variantIs(m, "collapse_ro", "any")) return false;
  for (let k = 0; k < m.geo.ptrs; k++) {
    const v = e[base + k] as number;
    if (v !== 0 && m.arch.ptePresent(v) && !m.arch.pteSpecial(v)) return true;
  }
  return false;
}

function freeHpage(m: Machine, hpage: number): void {
  if (m.phys.folioPut(hpage)) m.counters.pagesFree += m.geo.ptrs;
}
