// Swap-in through the swap cache with read-ahead: models
// swap_cache_get_folio(), __read_swap_cache_async() with swap_read_folio(),
// swap_vma_ra_win(), __swapin_nr_pages() and swap_vma_readahead()
// (mm/swap_state.c, v6.17), and the swap-in walk of MADV_WILLNEED
// (swapin_walk_pmd_entry(), mm/madvise.c).
//
// VMA-based read-ahead is the one used (swap_use_vma_readahead(): the
// sysfs knob is on and no swap device is rotational; the model's device is
// a zram-like SSD). Each VMA keeps swap_readahead_info: the last swap-in
// fault's address, the window it got and the read-ahead hits since; a
// fault that misses the swap cache reads the pages whose PTEs in a window
// around it (inside the VMA and the PTE table) hold swap entries into the
// cache, not mapped, marked PG_readahead; a later fault that finds one
// counts a hit, and hits widen the next window up to 2^page_cluster pages.
//
// Simplified: the entries are read under the faulting path's PTE lock (the
// kernel reads them locklessly with ptep_get_lockless() and drops the map
// before each read, so an entry may change under it: it then reads the
// slot the entry named, or finds the slot free and skips it, which the
// cache's keying by slot makes harmless); a slot another swap-in has
// pinned (swapcache_prepare() -EEXIST) is skipped where the kernel waits
// for the pin to go. The folio's anon rmap is set when it is read (the
// faulting VMA's anon_vma, its root unless the entry was exclusive), where
// the kernel sets it when a fault first maps the folio: the same value when
// the VMA that read it maps it. No Node APIs.

import type { Machine } from "../machine.js";
import { PG_ANON, PG_SWAPBACKED } from "./physmem.js";
import { folioSetAnonRmap } from "./rmap.js";
import { type SwapDevice, swapKey } from "./swap.js";
import type { Vma } from "./types.js";

// SWAP_RA_ORDER_CEILING (64-bit): the window is at most 2^5 pages.
const SWAP_RA_ORDER_CEILING = 5;

// swap_readahead_info as SWAP_RA_VAL() packs it: the page address, the
// window in the bits above PAGE_SHIFT/2, the hits below. A double holds it
// exactly (a 48-bit address plus bits inside its page).
interface RaVal {
  addr: number;
  win: number;
  hits: number;
}
// 1 << SWAP_RA_WIN_SHIFT (PAGE_SHIFT / 2): the window's unit in the packed
// value; the hits field holds up to one less (SWAP_RA_HITS_MAX).
function raUnit(m: Machine): number {
  return 2 ** Math.floor(Math.log2(m.geo.pageSize) / 2);
}
function raGet(m: Machine, vma: Vma): RaVal {
  const PS = m.geo.pageSize;
  const shift = raUnit(m);
  // GET_SWAP_RA_VAL(): an unset value reads as 4 hits, a small first window.
  const v = vma.swapRaInfo !== 0 ? vma.swapRaInfo : 4;
  const low = v % PS;
  return { addr: v - low, win: Math.floor(low / shift), hits: low % shift };
}
function raSet(m: Machine, vma: Vma, addr: number, win: number, hits: number): void {
  const PS = m.geo.pageSize;
  const shift = raUnit(m);
  vma.swapRaInfo = addr - (addr % PS) + ((win * shift) % PS) + (hits % shift);
}

// __swapin_nr_pages(): the window from the hits, else 2 pages for a fault
// next to the last one and 1 otherwise; rounded up to a power of two, at
// most maxPages, and not below half the last window.
export function swapinNrPages(prevOffset: number, offset: number, hits: number, maxPages: number, prevWin: number): number {
  let pages = hits + 2;
  if (pages === 2) {
    if (offset !== prevOffset + 1 && offset !== prevOffset - 1) pages = 1;
  } else {
    let roundup = 4;
    while (roundup < pages) roundup *= 2;
    pages = roundup;
  }
  if (pages > maxPages) pages = maxPages;
  const lastRa = Math.floor(prevWin / 2);
  if (pages < lastRa) pages = lastRa;
  return pages;
}

// swap_vma_ra_win(): the window for a fault at faddr, recorded in the VMA,
// and the range it covers: ahead of a fault that follows the last one,
// behind one that precedes it, else around it; clipped to the VMA and the
// fault's PMD range (one PTE table).
export function swapVmaRaWin(m: Machine, vma: Vma, faddr: number): { win: number; start: number; end: number } {
  const PS = m.geo.pageSize;
  const maxWin = 2 ** Math.min(m.config.pageCluster, SWAP_RA_ORDER_CEILING);
  if (maxWin === 1) return { win: 1, start: faddr, end: faddr + PS };
  const ra = raGet(m, vma);
  const win = swapinNrPages(Math.floor(ra.addr / PS), Math.floor(faddr / PS), ra.hits, maxWin, ra.win);
  raSet(m, vma, faddr, win, 0);
  if (win === 1) return { win, start: faddr, end: faddr + PS };
  let left: number;
  if (faddr === ra.addr + PS) left = faddr;
  else if (ra.addr === faddr + PS) left = faddr - win * PS + PS;
  else left = faddr - Math.floor((win - 1) / 2) * PS;
  const right = left + win * PS;
  if (left < 0) left = 0;
  const pmdStart = faddr - (faddr % m.geo.pmdSize);
  return { win, start: Math.max(left, vma.start, pmdStart), end: Math.min(right, vma.end, pmdStart + m.geo.pmdSize) };
}

// swap_cache_get_folio() found head for a fault at addr: a small folio's
// PG_readahead is tested and cleared, and the VMA's read-ahead state takes
// the address, with one more hit if it was set (SWAP_RA_HIT). A large folio
// is returned untouched (no PG_readahead for large folios).
export function swapCacheGetFolio(m: Machine, vma: Vma, addr: number, head: number): void {
  if ((m.phys.order[head] as number) > 0) return;
  const swap = m.swap as SwapDevice;
  const readahead = swap.readahead.delete(head);
  const ra = raGet(m, vma);
  raSet(m, vma, addr, ra.win, readahead ? Math.min(ra.hits + 1, raUnit(m) - 1) : ra.hits);
  if (readahead) m.counters.swapRaHit++;
}

// __read_swap_cache_async() + swap_read_folio() for the slot swap entry v
// names, at addr of vma: the page the swap cache holds for it, or a new
// order-0 folio read from the slot into the cache (holding the cache's
// reference only), or -1 when the slot is no longer in use or another
// swap-in has it pinned. readahead: not the faulting page
// (folio_set_readahead(), SWAP_RA). wait: the faulting page, which the
// kernel waits for when pinned and the model reads at once (as before
// read-ahead: do_swap_page() runs under the PTE lock here).
export function readSwapCacheAsync(m: Machine, vma: Vma, addr: number, v: number, readahead: boolean, wait = false): number {
  const swap = m.swap as SwapDevice;
  const phys = m.phys;
  const slot = m.arch.swpOffset(v);
  const cached = swap.cachedPage(slot);
  if (cached >= 0) return cached;
  if ((swap.count[slot] as number) <= 0 || (swap.pinned[slot] === 1 && !wait)) return -1;
  const pfn = phys.alloc(0);
  phys.flags[pfn] = PG_ANON | PG_SWAPBACKED;
  m.counters.pagesAlloc++;
  m.counters.pswpin++;
  if (m.il) m.il.copyPage(swapKey(slot), pfn);
  swap.addToCache(slot, pfn);
  folioSetAnonRmap(m, pfn, vma, addr, m.arch.pteSwpExclusive(v));
  phys.ref[pfn] = 1;
  if (readahead) {
    swap.readahead.add(pfn);
    m.counters.swapRa++;
  }
  return pfn;
}

// swap_vma_readahead() for a fault at faddr whose entry v (index pi of the
// table chunk e) missed the swap cache: the window's swap entries are read
// into the cache, then the faulting one (read in its turn inside the
// window). Returns the faulting page, with a reference of the caller's.
export function swapVmaReadahead(m: Machine, vma: Vma, e: Float64Array, pi: number, faddr: number, v: number): number {
  const A = m.arch;
  const PS = m.geo.pageSize;
  const { win, start, end } = swapVmaRaWin(m, vma, faddr);
  let target = -1;
  if (win > 1) {
    for (let a = start; a < end; a += PS) {
      const x = e[pi + (a - faddr) / PS] as number;
      m.counters.pteReads++;
      if (x === 0 || A.ptePresent(x) || !A.isSwapPte(x) || A.isMigrationPte(x)) continue;
      const pfn = readSwapCacheAsync(m, vma, a, x, a !== faddr, a === faddr);
      if (a === faddr) target = pfn;
    }
  }
  if (target < 0) target = readSwapCacheAsync(m, vma, faddr, v, false, true);
  if (target < 0) throw new Error(`model bug: swap-in of slot ${A.swpOffset(v)}, which no entry references`);
  const phys = m.phys;
  const head = phys.folioHead(target);
  phys.ref[head] = (phys.ref[head] as number) + 1;
  return target;
}
