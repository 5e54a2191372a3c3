// Collapse of a PTE-mapped range into a PMD-mapped THP by MADV_COLLAPSE and
// by khugepaged (mm/khugepaged.c), for anonymous VMAs: madvise_collapse() and
// khugepaged_scan_mm_slot() ->
// hpage_collapse_scan_pmd() -> collapse_huge_page() with
// hugepage_vma_revalidate(), find_pmd_or_thp_or_none(),
// check_pmd_still_valid(), __collapse_huge_page_isolate(),
// __collapse_huge_page_copy() and __collapse_huge_page_copy_succeeded(),
// pmdp_collapse_flush() (mm/pgtable-generic.c) and
// tlb_remove_table_sync_one() (mm/mmu_gather.c).
//
// The kernel's lock sequence, per PMD-sized range:
// - madvise() holds mmap_lock for reading. hpage_collapse_scan_pmd() finds
//   the PMD (find_pmd_or_thp_or_none(): SCAN_PMD_NULL, SCAN_PMD_NONE,
//   SCAN_PMD_MAPPED) and scans the PTEs under the PTE lock: anon pages only,
//   a reference count the mappings explain, at least one writable entry
//   (MADV_COLLAPSE has no max_ptes_none/swap/shared limits and needs no
//   young page).
// - collapse_huge_page() drops mmap_lock, allocates the THP, takes the lock
//   for reading and revalidates (hugepage_vma_revalidate(): the VMA at the
//   address, still covering the range, allowing THPs, anonymous with an
//   anon_vma; find_pmd_or_thp_or_none() again, whose PMD pointer it keeps),
//   drops it, takes it for writing and revalidates once more, now with
//   check_pmd_still_valid(): the PMD is still a table's entry and the same
//   one. Only then vma_start_write() (faults under the VMA lock finish
//   first), anon_vma_lock_write(), pmdp_collapse_flush() under the
//   PMD lock, tlb_remove_table_sync_one() (GUP-fast), and the isolation
//   under the PTE lock, which checks every entry again (none and zero-page entries
//   are copied as zeroes; non-present, non-anon and read-only ranges fail;
//   each folio is trylocked, its references must be its mappings' and the
//   swap cache's, and it must not be isolated by someone else); on failure
//   the PMD is put back. Then the copy, the old entries cleared and their
//   pages freed, the old table deposited and the huge PMD installed.
//   mmap_lock is released at the end, whatever the result.
// - madvise_collapse() takes mmap_lock for reading again before the next
//   range (and before returning) and revalidates the VMA; the call's result
//   is 0 when every range ends PMD-mapped, else madvise_collapse_errno() of
//   the last failure (-EAGAIN for a transient one: a reference, a lock, an
//   isolation); it does not retry. The result codes below are the kernel's
//   scan_result names in lower case.
//
// khugepaged (a `khugepaged` step: one thread's pass of the daemon over a
// range of one mm) differs in its collapse_control (is_khugepaged): it only
// try-locks mmap_lock and moves on when that fails; it honours the sysfs
// THP mode (TVA_ENFORCE_SYSFS: "never" nothing, "madvise" VM_HUGEPAGE
// VMAs only); its scan and isolation refuse a range with more than
// max_ptes_none empty or zero-page entries or max_ptes_shared entries of
// folios mapped by another mm (the defaults: HPAGE_PMD_NR - 1 and
// HPAGE_PMD_NR / 2), and one with no young entry
// (SCAN_LACK_REFERENCED_PAGE); after a collapse attempt, which drops
// mmap_lock, the pass ends and the next one starts at the next range.
//
// Swap entries (up to max_ptes_swap of them for khugepaged, which then also
// wants half the range young) are swapped in by collapse_huge_page() under
// the read lock (__collapse_huge_page_swapin()), through the fault path.
//
// Simplified: "young" is the PTE's access flag (no page_idle young flag, no
// PG_referenced, no MMU notifiers); the knobs keep their defaults; the
// model looks the VMA up per PMD range and counts a range no suitable VMA
// covers as failed (SCAN_VMA_CHECK) and goes on, where
// the kernel's madvise walks VMA by VMA, ends the call with EINVAL at an
// unsuitable one and skips a range across a VMA boundary. File and shmem
// collapse (hpage_collapse_scan_file(), collapse_file()) is not modelled.
// No Node APIs.

import type { Machine } from "../machine.js";
import { variantIs } from "../variant.js";
import { LK_ANON_VMA, LK_FOLIO, LK_MMAP, LK_PMD, LK_PTL, pteLockMapped, site } from "../sync.js";
import { mmapUnlock, vmaStartWrite } from "./mmap_lock.js";
import { handleMmFault } from "./fault.js";
import type { KGen } from "./memory.js";
import { allocLargeFolio } from "./page_alloc.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_SWAPBACKED, PG_ZERO } from "./physmem.js";
import { anonVmaRoot, folioMapcount, folioMaybeMappedShared, folioSetAnonRmap } from "./rmap.js";
import { type Mm, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SHARED, VM_WRITE, type Vma } from "./types.js";
import { pmdOffset } from "./walk.js";

const S_SCAN_LOCK = site("hpage_collapse_scan_pmd", "take the PTE lock");
const S_RELOCK_R = site("collapse_huge_page", "THP allocated, mmap_read_lock() to revalidate");
const S_RELOCK_W = site("collapse_huge_page", "mmap_write_lock()");
const S_NEXT_LOCK = site("madvise_collapse", "mmap_read_lock() again after a collapse dropped it");
const S_AVL = site("collapse_huge_page", "anon_vma_lock_write()");
const S_PMD_LOCK = site("collapse_huge_page", "take the PMD lock");
const S_SYNC = site("tlb_remove_table_sync_one", "wait for every CPU to take the IPI");
const S_ISOLATE_LOCK = site("__collapse_huge_page_isolate", "take the old table's PTE lock");
const S_COPY = site("__collapse_huge_page_copy", "pages isolated, anon_vma unlocked, not yet copied");
const S_CLEAR_LOCK = site("__collapse_huge_page_copy_succeeded", "take the old table's PTE lock");
const S_INSTALL_LOCK = site("collapse_huge_page", "take the PMD lock to install the huge PMD");
const S_NEXT_CALL = site("khugepaged_scan_mm_slot", "the next call, mmap_read_trylock()");

// enum scan_result (mm/khugepaged.c), the values the anonymous path returns.
export type CollapseResult =
  | "ok" // SCAN_SUCCEED
  | "fail" // SCAN_FAIL (check_pmd_still_valid(): another PMD entry)
  | "pmd-null" // SCAN_PMD_NULL
  | "pmd-none" // SCAN_PMD_NONE
  | "pmd-mapped" // SCAN_PMD_MAPPED
  | "pte-non-present" // SCAN_PTE_NON_PRESENT
  | "page-ro" // SCAN_PAGE_RO
  | "page-null" // SCAN_PAGE_NULL (vm_normal_page() found no page)
  | "page-anon" // SCAN_PAGE_ANON
  | "page-count" // SCAN_PAGE_COUNT
  | "page-lru" // SCAN_PAGE_LRU (isolated by someone else when scanned)
  | "page-locked" // SCAN_PAGE_LOCK
  | "del-page-lru" // SCAN_DEL_PAGE_LRU (folio_isolate_lru() failed)
  | "vma-null" // SCAN_VMA_NULL
  | "vma-check" // SCAN_VMA_CHECK
  | "address-range" // SCAN_ADDRESS_RANGE
  | "any-process" // SCAN_ANY_PROCESS (the mm is exiting)
  | "exceed-none-pte" // SCAN_EXCEED_NONE_PTE
  | "exceed-swap-pte" // SCAN_EXCEED_SWAP_PTE
  | "exceed-shared-pte" // SCAN_EXCEED_SHARED_PTE
  | "lack-referenced-page" // SCAN_LACK_REFERENCED_PAGE
  | "alloc-huge-page-fail"; // SCAN_ALLOC_HUGE_PAGE_FAIL

// struct collapse_control: who collapses. khugepaged applies the sysfs
// THP mode and its max_ptes_* limits; MADV_COLLAPSE does neither.
export interface CollapseControl {
  isKhugepaged: boolean;
}
export const MADVISE_CC: CollapseControl = { isKhugepaged: false };
export const KHUGEPAGED_CC: CollapseControl = { isKhugepaged: true };

export interface CollapseStat {
  collapsed: number; // PMD ranges collapsed
  already: number; // ranges already PMD-mapped (SCAN_PMD_MAPPED)
  failed: number; // ranges that could not be collapsed
  // What madvise(MADV_COLLAPSE) returns: "" (0) or the errno of
  // madvise_collapse_errno() for the last failure.
  errno: "" | "EINVAL" | "EAGAIN" | "ENOMEM";
  lastFail: CollapseResult | null;
}

// madvise_collapse_errno(): ENOMEM when the THP could not be allocated; the
// results where trying again may succeed give EAGAIN; the others (no charge
// failures here) EINVAL.
function collapseErrno(r: CollapseResult): "EINVAL" | "EAGAIN" | "ENOMEM" {
  if (r === "alloc-huge-page-fail") return "ENOMEM";
  return r === "page-count" || r === "page-locked" || r === "page-lru" || r === "del-page-lru" ? "EAGAIN" : "EINVAL";
}

// The results after which madvise_collapse() goes on with the next range;
// any other failure ends the call.
const CONTINUE = new Set<CollapseResult>(["pmd-null", "pte-non-present", "page-ro", "page-null", "page-count", "page-locked", "page-lru", "del-page-lru"]);

// hugepage_vma_revalidate() for anonymous memory: the VMA at haddr covers
// the whole PMD range (thp_vma_suitable_order()) and allows THPs
// (thp_vma_allowable_order() without the sysfs mode: MADV_COLLAPSE ignores
// it, not VM_NOHUGEPAGE); with expectAnon it must be anonymous and have an
// anon_vma. A file VMA fails here too (no file collapse in the model).
function hugepageVmaRevalidate(m: Machine, mm: Mm, haddr: number, expectAnon: boolean, cc: CollapseControl): Vma | CollapseResult {
  if (collapseTestExit(mm)) return "any-process";
  const vma = mm.findVma(haddr);
  if (vma === null) return "vma-null";
  if (vma.start > haddr || vma.end < haddr + m.geo.pmdSize) return "address-range";
  if (!collapseAllowed(m, vma, cc)) return "vma-check";
  if (expectAnon && vma.anonVma === 0) return "page-anon";
  return vma;
}

// thp_vma_allowable_order() for the PMD order: anonymous, private, not
// VM_NOHUGEPAGE (no file collapse in the model); khugepaged also enforces
// the sysfs mode (TVA_ENFORCE_SYSFS; "inherit" for the PMD size, as by
// default), MADV_COLLAPSE does not.
function collapseAllowed(m: Machine, vma: Vma, cc: CollapseControl): boolean {
  if ((vma.flags & (VM_SHARED | VM_NOHUGEPAGE)) !== 0 || vma.file !== null) return false;
  if (!cc.isKhugepaged) return true;
  const mode = m.config.thp;
  return mode === "always" || (mode === "madvise" && (vma.flags & VM_HUGEPAGE) !== 0);
}

// hpage_collapse_test_exit(): mm_users has dropped to zero (MMF_DISABLE_THP,
// the other half of hpage_collapse_test_exit_or_disable(), is not modelled).
function collapseTestExit(mm: Mm): boolean {
  return !mm.alive || mm.exiting;
}

// find_pmd_or_thp_or_none(): the PMD entry's global index (mm_find_pmd()),
// or why there is no PTE table under it.
function findPmdOrThpOrNone(m: Machine, mm: Mm, haddr: number): number | CollapseResult {
  const pmdIdx = pmdOffset(m, mm, haddr, false);
  if (pmdIdx < 0) return "pmd-null";
  const v = m.tables.get(pmdIdx);
  if (v === 0) return "pmd-none";
  if (m.arch.isMigrationPmd(v)) return "pmd-null"; // !pmd_present(): a PMD migration entry
  if (m.arch.entryIsLeaf(v)) return "pmd-mapped";
  return pmdIdx;
}

// madvise_collapse() over [start, end): each PMD-aligned range. Locks: the
// caller holds mmap_lock for reading (under the explorer); it is held again
// on return, though a collapse dropped it in between.
export function* madviseCollapse(m: Machine, mm: Mm, start: number, end: number): KGen<CollapseStat> {
  const G = m.geo;
  const il = m.il;
  const stat: CollapseStat = { collapsed: 0, already: 0, failed: 0, errno: "", lastFail: null };
  const hstart = Math.ceil(start / G.pmdSize) * G.pmdSize;
  let hend = Math.floor(end / G.pmdSize) * G.pmdSize;
  let locked = true;
  for (let haddr = hstart; haddr < hend; haddr += G.pmdSize) {
    if (!locked) {
      if (il) yield il.lock(LK_MMAP, mm.id, false, S_NEXT_LOCK);
      locked = true;
      const v = hugepageVmaRevalidate(m, mm, haddr, false, MADVISE_CC);
      if (typeof v === "string") {
        stat.failed++;
        stat.lastFail = v;
        break;
      }
      hend = Math.min(hend, Math.floor(v.end / G.pmdSize) * G.pmdSize);
    }
    // The range's VMA (the kernel's madvise walk hands madvise_collapse()
    // each VMA, and thp_vma_allowable_order() refuses an unsuitable one).
    // The model goes on with the next range (see the file header).
    if (typeof hugepageVmaRevalidate(m, mm, haddr, false, MADVISE_CC) === "string") {
      stat.failed++;
      stat.lastFail = "vma-check";
      continue;
    }
    const scan = yield* hpageCollapseScanPmd(m, mm, haddr, MADVISE_CC);
    const r = scan.result;
    if (scan.unlocked) locked = false;
    if (r === "ok") stat.collapsed++;
    else if (r === "pmd-mapped") stat.already++;
    else {
      stat.failed++;
      stat.lastFail = r;
      if (!CONTINUE.has(r)) break;
    }
  }
  if (!locked && il) yield il.lock(LK_MMAP, mm.id, false, S_NEXT_LOCK);
  if (stat.lastFail !== null) stat.errno = collapseErrno(stat.lastFail);
  m.counters.thpCollapses += stat.collapsed;
  m.counters.thpCollapseFailed += stat.failed;
  return stat;
}

// khugepaged's khugepaged_do_scan() -> khugepaged_scan_mm_slot() over the
// PMD-sized ranges inside [start, end) of one mm, called again after each
// collapse attempt (which drops mmap_lock and ends a call) until the range is
// covered. Locks: none on entry or return; mmap_lock try-locked for reading.
export function* khugepagedScanMm(m: Machine, mm: Mm, start: number, end: number): KGen<CollapseStat> {
  const G = m.geo;
  const il = m.il;
  const cc = KHUGEPAGED_CC;
  const stat: CollapseStat = { collapsed: 0, already: 0, failed: 0, errno: "", lastFail: null };
  let addr = Math.ceil(start / G.pmdSize) * G.pmdSize;
  const last = Math.floor(end / G.pmdSize) * G.pmdSize;
  // One khugepaged_scan_mm_slot() call per iteration.
  let first = true;
  while (addr < last) {
    if (!first && il) yield S_NEXT_CALL;
    first = false;
    // "Don't wait for semaphore": a busy mm is left for the next round.
    if (il && !il.trylockRead(LK_MMAP, mm.id)) break;
    let unlocked = false;
    // The VMAs from the scan address (vma_iter_init(), for_each_vma()).
    for (let i = mm.findVmaIndex(addr); i < mm.vmas.length && addr < last && !unlocked; i++) {
      const vma = mm.vmas[i] as Vma;
      if (collapseTestExit(mm)) break;
      if (!collapseAllowed(m, vma, cc)) continue;
      const hstart = Math.ceil(vma.start / G.pmdSize) * G.pmdSize;
      const hend = Math.min(last, Math.floor(vma.end / G.pmdSize) * G.pmdSize);
      if (addr > hend) continue;
      if (addr < hstart) addr = hstart;
      while (addr < hend) {
        if (collapseTestExit(mm)) break;
        const scan = yield* hpageCollapseScanPmd(m, mm, addr, cc);
        if (scan.result === "ok") stat.collapsed++;
        else if (scan.result === "pmd-mapped") stat.already++;
        else {
          stat.failed++;
          stat.lastFail = scan.result;
        }
        addr += G.pmdSize;
        if (scan.unlocked) {
          unlocked = true;
          break;
        }
      }
    }
    if (unlocked) continue;
    // Every VMA scanned (or the mm exits): mmap_read_unlock().
    if (il) il.unlock(LK_MMAP, mm.id);
    break;
  }
  m.counters.thpCollapses += stat.collapsed;
  m.counters.thpCollapseFailed += stat.failed;
  return stat;
}

// What a scan of the PTE table finds: the folios (heads), whether any entry
// is writable and how many are young, or why the range cannot be collapsed.
// Both the scan and the isolation apply these checks (in the kernel's
// order, less the per-folio ones the callers make).
interface PteScan {
  fail: CollapseResult | null;
  writable: boolean;
  referenced: number;
  unmapped: number; // swap (and migration) entries the scan let through
}
function scanPtes(m: Machine, e: Float64Array, base: number, heads: number[], cc: CollapseControl, isolate: boolean): PteScan {
  const A = m.arch;
  const phys = m.phys;
  const nr = m.geo.ptrs;
  const out: PteScan = { fail: null, writable: false, referenced: 0, unmapped: 0 };
  let noneOrZero = 0;
  let shared = 0;
  for (let k = 0; k < nr; k++) {
    const v = e[base + k] as number;
    const zero = v !== 0 && A.ptePresent(v) && A.pteSpecial(v) && ((phys.flags[A.ptePfn(v)] as number) & PG_ZERO) !== 0;
    if (v === 0 || zero) {
      // is_zero_pfn() counts as none; khugepaged_max_ptes_none.
      if (cc.isKhugepaged && ++noneOrZero > nr - 1) return { ...out, fail: "exceed-none-pte" };
      continue;
    }
    if (!A.ptePresent(v)) {
      // is_swap_pte(): the scan lets swap entries through, up to
      // max_ptes_swap (HPAGE_PMD_NR / 8) for khugepaged, for
      // collapse_huge_page() to swap in; the isolation, after that, does not.
      if (isolate) return { ...out, fail: "pte-non-present" };
      if (++out.unmapped > nr / 8 && cc.isKhugepaged) return { ...out, fail: "exceed-swap-pte" };
      continue;
    }
    if (A.pteWrite(v)) out.writable = true;
    if (A.pteSpecial(v)) return { ...out, fail: "page-null" };
    const head = phys.folioHead(A.ptePfn(v));
    if (((phys.flags[head] as number) & PG_ANON) === 0) return { ...out, fail: "page-anon" };
    // khugepaged_max_ptes_shared
    if (cc.isKhugepaged && folioMaybeMappedShared(m, head) && ++shared > nr / 2) return { ...out, fail: "exceed-shared-pte" };
    if (cc.isKhugepaged && A.pteYoung(A.ptepGet(m, e, base + k))) out.referenced++;
    if (heads[heads.length - 1] !== head && !heads.includes(head)) heads.push(head);
  }
  return out;
}

// is_refcount_suitable(): the folio's references are its mappings' and the
// swap cache's.
function isRefcountSuitable(m: Machine, head: number): boolean {
  const cache = m.swap?.slotOf.has(head) ? 1 : 0;
  return (m.phys.ref[head] as number) === folioMapcount(m, head) + cache;
}

// hpage_collapse_scan_pmd() under mmap_lock for reading (the caller checked
// the VMA, which the scan itself needs only for uffd and vm_normal_page(),
// not modelled): the scan, and on
// success collapse_huge_page(), which returns with mmap_lock released
// (`unlocked`).
export function* hpageCollapseScanPmd(m: Machine, mm: Mm, haddr: number, cc: CollapseControl): KGen<{ result: CollapseResult; unlocked: boolean }> {
  const T = m.tables;
  const il = m.il;
  const pmd = findPmdOrThpOrNone(m, mm, haddr);
  if (typeof pmd === "string") return { result: pmd, unlocked: false };
  const pmdv = T.get(pmd);
  const slot = T.slotOfPfn(m.arch.ptePfn(pmdv));
  const e = T.chunkOf(slot);
  const base = T.base(slot);
  if (il) {
    // pte_offset_map_lock(): a table PT reclaim freed meanwhile is gone.
    yield* pteLockMapped(il, slot, S_SCAN_LOCK);
    if (T.get(pmd) !== pmdv) {
      il.unlock(LK_PTL, slot);
      return { result: "pmd-null", unlocked: false };
    }
  }
  const heads: number[] = [];
  const scan = scanPtes(m, e, base, heads, cc, false);
  let r: CollapseResult | null = scan.fail;
  if (r === null) {
    for (const head of heads) {
      // folio_test_lru(), folio_test_locked(), is_refcount_suitable()
      if (m.isolated.has(head)) r = "page-lru";
      else if (il !== null) {
        if (il.trylock(LK_FOLIO, head)) il.unlock(LK_FOLIO, head);
        else r = "page-locked";
      }
      if (r !== null) break;
      if (!isRefcountSuitable(m, head)) {
        r = "page-count";
        break;
      }
    }
  }
  if (il) il.unlock(LK_PTL, slot);
  if (r !== null) return { result: r, unlocked: false };
  if (!scan.writable && !roCollapses(m, e, base)) return { result: "page-ro", unlocked: false };
  if (cc.isKhugepaged && (scan.referenced === 0 || (scan.unmapped > 0 && scan.referenced < m.geo.ptrs / 2)))
    return { result: "lack-referenced-page", unlocked: false };
  return { result: yield* collapseHugePage(m, mm, haddr, cc, scan.unmapped), unlocked: true };
}

// collapse_huge_page() for the PMD range at haddr. Locks: mmap_lock held
// for reading on entry (under the explorer), released on return.
function* collapseHugePage(m: Machine, mm: Mm, haddr: number, cc: CollapseControl, unmapped: number): KGen<CollapseResult> {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const phys = m.phys;
  const il = m.il;
  const nr = G.ptrs;
  // mmap_read_unlock(); alloc_charge_folio(): below the min watermark the
  // THP cannot be had (page_alloc.ts; no cgroup charge in the model).
  if (il) il.unlock(LK_MMAP, mm.id);
  const hpage = allocLargeFolio(m, G.pmdOrder);
  if (hpage < 0) {
    m.counters.thpCollapseAllocFailed++;
    return "alloc-huge-page-fail";
  }
  m.counters.pagesAlloc += nr;
  const fail = (r: CollapseResult): CollapseResult => {
    if (il) mmapUnlock(il, mm);
    freeHpage(m, hpage);
    return r;
  };
  // mmap_read_lock(); hugepage_vma_revalidate(); find_pmd_or_thp_or_none();
  // __collapse_huge_page_swapin() when the scan let swap entries through;
  // mmap_read_unlock().
  if (il) yield il.lock(LK_MMAP, mm.id, false, S_RELOCK_R);
  const v1 = hugepageVmaRevalidate(m, mm, haddr, true, cc);
  if (typeof v1 === "string") return fail(v1);
  const pmd = findPmdOrThpOrNone(m, mm, haddr);
  if (typeof pmd === "string") return fail(pmd);
  if (unmapped > 0) {
    const r = yield* collapseHugePageSwapin(m, mm, v1, haddr, pmd);
    if (r !== null) return fail(r);
  }
  if (il) {
    il.unlock(LK_MMAP, mm.id);
    yield il.lock(LK_MMAP, mm.id, true, S_RELOCK_W);
  }
  // mmap_write_lock(): nothing changes the VMAs or the PMDs of the range
  // from here on. hugepage_vma_revalidate() and check_pmd_still_valid():
  // the PMD entry is still a table's and still the one found under the
  // read lock. collapse_revalidate=vma-only: that pointer is used as it is.
  // (The scan's own pointer does not outlive hpage_collapse_scan_pmd().)
  const vv = hugepageVmaRevalidate(m, mm, haddr, true, cc);
  if (typeof vv === "string") return fail(vv);
  const vma = vv;
  if (!variantIs(m, "collapse_revalidate", "vma-only")) {
    const p2 = findPmdOrThpOrNone(m, mm, haddr);
    if (typeof p2 === "string") return fail(p2);
    if (p2 !== pmd) return fail("fail");
  }
  // vma_start_write(): faults under the VMA lock are done and new ones take
  // mmap_lock; anon_vma_lock_write().
  yield* vmaStartWrite(m, mm, vma);
  const root = anonVmaRoot(m, vma.anonVma);
  if (il) yield il.lock(LK_ANON_VMA, root, true, S_AVL);
  // pmdp_collapse_flush() under the PMD lock: the PMD cleared, the range
  // flushed with the walk caches (the table stays allocated, deposited
  // below).
  const pmdSlot = Math.floor(pmd / G.ptrs);
  if (il) yield il.lock(LK_PMD, pmdSlot, true, S_PMD_LOCK);
  const pmdv = T.get(pmd);
  if (pmdv === 0 || !A.entryIsTable(pmdv)) {
    // Only without check_pmd_still_valid(): no table to collapse
    // (pte_offset_map_lock() of the value finds none, SCAN_PMD_NULL).
    if (il) {
      il.unlock(LK_PMD, pmdSlot);
      il.unlock(LK_ANON_VMA, root);
    }
    return fail("pmd-null");
  }
  T.set(pmd, 0);
  m.counters.pteAtomics++;
  A.flushTlbRange(m, mm, haddr, haddr + G.pmdSize, G.pageShift, true);
  if (il) il.unlock(LK_PMD, pmdSlot);
  // tlb_remove_table_sync_one(): GUP-fast walks with interrupts disabled;
  // once every CPU took the IPI, none still reads the old table.
  if (il && !variantIs(m, "collapse_sync", "none")) il.ipiSync(S_SYNC);
  // __collapse_huge_page_isolate() under the old table's PTE lock: every
  // entry checked again.
  const slot = T.slotOfPfn(A.ptePfn(pmdv));
  const e = T.chunkOf(slot);
  const base = T.base(slot);
  if (il) yield il.lock(LK_PTL, slot, true, S_ISOLATE_LOCK);
  const heads: number[] = [];
  const s2 = scanPtes(m, e, base, heads, cc, true);
  let res: CollapseResult | null = s2.fail;
  if (res === null && !s2.writable && !roCollapses(m, e, base)) res = "page-ro";
  else if (res === null && cc.isKhugepaged && s2.referenced === 0) res = "lack-referenced-page";
  const taken: number[] = [];
  if (res === null) {
    for (const head of heads) {
      // folio_trylock(), is_refcount_suitable(), folio_isolate_lru().
      if (il !== null && !il.trylock(LK_FOLIO, head)) {
        res = "page-locked";
        break;
      }
      if (!isRefcountSuitable(m, head)) {
        if (il) il.unlock(LK_FOLIO, head);
        res = "page-count";
        break;
      }
      if (m.isolated.has(head)) {
        if (il) il.unlock(LK_FOLIO, head);
        res = "del-page-lru";
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
    T.set(pmd, pmdv);
    m.counters.pteWrites++;
    if (il) {
      il.unlock(LK_PMD, pmdSlot);
      il.unlock(LK_ANON_VMA, root);
    }
    return fail(res);
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
      swap.deleteFromCache(head, 1 << (phys.order[head] as number));
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
  if (T.get(pmd) !== 0) {
    // BUG_ON(!pmd_none(*pmd)): someone installed a table (a fault that did
    // not wait for the collapse) while the range had no PMD. The kernel
    // oopses; the model reports it and goes on as set_pmd_at() would, the
    // other table left behind.
    m.violations.push({
      invariant: "kernel-bug",
      message: `collapse_huge_page(): BUG_ON(!pmd_none(*pmd)) at 0x${haddr.toString(16)}: the PMD was filled while the range was being collapsed`,
    });
  }
  mm.deposited.push(slot);
  let hv = A.pteMkyoung(A.pteMkdirty(A.pmdMkhuge(A.pfnPte(hpage, A.vmGetPageProt(vma.flags)))));
  if ((vma.flags & VM_WRITE) !== 0) hv = A.pteMkwrite(hv); // maybe_pmd_mkwrite()
  T.set(pmd, hv); // set_pmd_at()
  m.counters.pteWrites++;
  if (il) {
    il.unlock(LK_PMD, pmdSlot);
    mmapUnlock(il, mm); // mmap_write_unlock()
  }
  mm.anonHugePmds++;
  return "ok";
}

// __collapse_huge_page_swapin(): do_swap_page() (here the read fault that
// reaches it) for every swap entry of the range, under mmap_lock for
// reading; an entry that changed meanwhile, or a migration entry waited
// for, is left to the isolation, which refuses what is still not present.
// Simplified: a swap-in that must wait for a folio lock waits, where the
// kernel's FAULT_FLAG_ALLOW_RETRY drops mmap_lock and fails the collapse
// (SCAN_PAGE_LOCK).
function* collapseHugePageSwapin(m: Machine, mm: Mm, vma: Vma, haddr: number, pmd: number): KGen<CollapseResult | null> {
  const A = m.arch;
  const T = m.tables;
  const PS = m.geo.pageSize;
  for (let k = 0; k < m.geo.ptrs; k++) {
    // pte_offset_map_nolock() (a table PT reclaim freed meanwhile: none),
    // ptep_get_lockless().
    const pv = T.get(pmd);
    if (pv === 0 || !A.entryIsTable(pv)) return "pmd-null";
    const slot = T.slotOfPfn(A.ptePfn(pv));
    const v = T.chunkOf(slot)[T.base(slot) + k] as number;
    if (v === 0 || A.ptePresent(v)) continue;
    const r = yield* handleMmFault(m, mm, vma, haddr + k * PS, false);
    if (r === "segv" || r === "sigbus") return "fail"; // VM_FAULT_ERROR: SCAN_FAIL
  }
  return null;
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
