// Reclaim reduced to its page-table work: models shrink_folio_list() and
// reclaim_pages() (mm/vmscan.c), folio_isolate_lru() (mm/vmscan.c) and the
// swap-out path they drive: add_to_swap() (mm/swap_state.c), try_to_unmap()
// with TTU_BATCH_FLUSH, try_to_unmap_flush_dirty() before pageout(),
// __remove_mapping() and the final try_to_unmap_flush() before the folios
// are freed.
//
// Each folio is handled under its lock (folio_trylock(): one someone holds is
// kept), as a fault or writeback on it waits for that lock.
//
// Simplified: no LRU lists or ageing beyond folio_referenced() (a referenced
// folio is kept); writeback completes at once (pageout() writes an anon folio
// to its swap slot and reclaim goes on to free it); a dirty file folio is
// unmapped and kept (only kswapd writes file folios, and only once the
// flusher fell behind: the kernel activates it and sets PG_reclaim); shmem
// folios are kept. Lazily freed anon folios (MADV_FREE) are dropped without
// swap when clean once unmapped (large ones unmapped in batches, not split;
// a PMD mapping is split first, see lazyfreePmd() in rmap.ts).
// Large anon folios go to swap whole (CONFIG_THP_SWAP, as x86-64 and arm64
// defconfigs have): folio_alloc_swap() gives them a naturally aligned run of
// slots. A partially mapped one is split first (its unmapped pages are then
// freed without I/O), and one for which no run is free is split and its
// pages go one by one: split_folio_to_list(), the tails joining the list.
// No Node APIs.

import type { Machine } from "../machine.js";
import { LK_FOLIO, site } from "../sync.js";
import type { KGen } from "./memory.js";
import { PG_ANON, PG_DIRTY, PG_SHMEM, PG_SWAPBACKED, PG_ZERO } from "./physmem.js";
import { folioMapcount, folioReferenced, splitFolio, TlbUbc, tryToUnmap, tryToUnmapFlush, tryToUnmapFlushDirty } from "./rmap.js";
import { swapKey } from "./swap.js";
import type { Mm } from "./types.js";
import { pmdOffset } from "./walk.js";

const S_PAGEOUT = site("shrink_folio_list", "pageout(): the folio is written out");

// folio_isolate_lru(): takes the folio off the LRU with a reference; false if
// someone else isolated it already.
export function folioIsolateLru(m: Machine, head: number): boolean {
  if (m.isolated.has(head)) return false;
  m.isolated.add(head);
  m.phys.ref[head] = (m.phys.ref[head] as number) + 1;
  return true;
}

// folio_putback_lru(): back on the LRU, dropping the isolation reference.
function folioPutbackLru(m: Machine, head: number): void {
  m.isolated.delete(head);
  const nr = 1 << (m.phys.order[head] as number);
  if (m.phys.folioPut(head)) m.counters.pagesFree += nr;
}

export interface ReclaimStat {
  reclaimed: number; // folios freed
  kept: number; // folios put back
}

// shrink_folio_list(): each isolated folio is unmapped and, if nothing else
// holds it, freed; ignoreReferences skips folio_referenced() (MADV_PAGEOUT).
export function* shrinkFolioList(m: Machine, list: number[], ignoreReferences: boolean): KGen<ReclaimStat> {
  m.prof?.enter("shrink_folio_list");
  const phys = m.phys;
  const swap = m.swap;
  const ubc = new TlbUbc(m);
  const free: number[] = [];
  const stat: ReclaimStat = { reclaimed: 0, kept: 0 };
  // ret_folios: a kept folio stays isolated until the caller puts it back
  // (folio_putback_lru() in reclaim_folio_list() / shrink_inactive_list()),
  // after the deferred flush below, so no other party (migration) can
  // isolate and free it while a CPU may still map it through a PTE that
  // try_to_unmap() cleared here.
  const kept: number[] = [];
  const keep = (head: number) => {
    stat.kept++;
    kept.push(head);
  };
  const il = m.il;
  // keep_locked / activate_locked: folio_unlock(), back on the LRU.
  const keepLocked = (h: number) => {
    il?.unlock(LK_FOLIO, h);
    keep(h);
  };
  for (let n = 0; n < list.length; n++) {
    const head = list[n] as number;
    if (il && !il.trylock(LK_FOLIO, head)) {
      keep(head);
      continue;
    }
    if (!ignoreReferences && (yield* folioReferenced(m, head)) > 0) {
      keepLocked(head); // folio_check_references(): FOLIOREF_ACTIVATE / KEEP
      continue;
    }
    let flags = phys.flags[head] as number;
    const anon = (flags & PG_ANON) !== 0;
    // MADV_FREE'd: dropped, not swapped, if still clean once unmapped.
    const lazyfree = anon && (flags & PG_SWAPBACKED) === 0;
    if ((flags & PG_SHMEM) !== 0) {
      keepLocked(head);
      continue;
    }
    if (anon && !lazyfree && swap !== null && !swap.slotOf.has(head)) {
      // A page a device may be writing into cannot be freed, so it gets no
      // slot (feb889fb40fa, "mm: don't put pinned pages into the swap
      // cache"); try_to_unmap() would refuse it anyway (PageAnonExclusive
      // with a pin), after a swap slot and the cache had been given away.
      if (phys.folioMaybeDmaPinned(head)) {
        keepLocked(head);
        continue;
      }
      // split_folio_to_list(): the tails join the list isolated.
      const split = function* (): KGen<boolean> {
        const nr = 1 << (phys.order[head] as number);
        if (!(yield* splitFolio(m, head))) return false;
        for (let k = 1; k < nr; k++) {
          const t = head + k;
          if (!phys.isFree(t) && folioIsolateLru(m, t)) list.push(t);
        }
        return true;
      };
      // Partially mapped (on the deferred split list, folio_test_partially_mapped()):
      // split right away, the unmapped pages then go without I/O.
      if ((phys.order[head] as number) > 0 && folioPartiallyMapped(m, head) && !(yield* split())) {
        keepLocked(head);
        continue;
      }
      // folio_alloc_swap(): slots for the whole folio, the folio in the swap
      // cache (one reference in the model), dirty.
      let order = phys.order[head] as number;
      if (swap.allocRun(head, order) < 0) {
        if (order === 0 || !(yield* split())) {
          keepLocked(head); // activate_locked_split / activate_locked
          continue;
        }
        // Fallback to order-0 pages: THP_SWPOUT_FALLBACK (PMD order),
        // MTHP_STAT_SWPOUT_FALLBACK.
        if (order === m.geo.pmdOrder) m.counters.thpSwpoutFallback++;
        else m.counters.mthpSwpoutFallback++;
        order = 0;
        if (swap.allocSlot(head) < 0) {
          keepLocked(head);
          continue;
        }
      }
      phys.ref[head] = (phys.ref[head] as number) + 1;
      phys.flags[head] = (phys.flags[head] as number) | PG_DIRTY;
    }
    if (anon && !lazyfree && (swap === null || !swap.slotOf.has(head))) {
      keepLocked(head); // no swap space: anon memory stays
      continue;
    }
    if (folioMapcount(m, head) > 0 && !(yield* tryToUnmap(m, head, ubc))) {
      keepLocked(head); // activate_locked (a lazyfree folio written since is swap-backed again)
      continue;
    }
    if (lazyfree) {
      // folio_ref_freeze(folio, 1): nobody but the isolation holds it.
      if (phys.ref[head] !== 1 || (phys.flags[head] as number) & PG_DIRTY) {
        keepLocked(head);
        continue;
      }
      m.counters.pglazyfreed += 1 << (phys.order[head] as number);
      il?.unlock(LK_FOLIO, head);
      free.push(head);
      continue;
    }
    flags = phys.flags[head] as number;
    if ((flags & PG_DIRTY) !== 0 && !anon) {
      // A dirty file folio: left to the flusher (folio_set_reclaim(),
      // activate_locked), unmapped.
      keepLocked(head);
      continue;
    }
    if (flags & PG_DIRTY) {
      // A CPU may still write through a TLB entry of a PTE just cleared
      // dirty: flush before the contents go out.
      tryToUnmapFlushDirty(m, ubc);
      if (m.il) {
        yield S_PAGEOUT;
        // swap_writepage() / writepage: the contents as they are now, each
        // page of a large folio to its own slot of the run.
        if (anon) {
          const s0 = swap?.slotOf.get(head) as number;
          const nr = 1 << (phys.order[head] as number);
          for (let k = 0; k < nr; k++) m.il.copyPage(head + k, swapKey(s0 + k));
        }
      }
      if (anon) {
        // count_swpout_vm_event(): PSWPOUT per page, THP_SWPOUT / MTHP_STAT_SWPOUT per large folio.
        const order = phys.order[head] as number;
        m.counters.pswpout += 1 << order;
        if (order === m.geo.pmdOrder) m.counters.thpSwpout++;
        else if (order > 0) m.counters.mthpSwpout++;
      }
      phys.flags[head] = (phys.flags[head] as number) & ~PG_DIRTY; // writeback done
    }
    // __remove_mapping(): only our reference and the cache's may remain.
    if (phys.ref[head] !== 2 || folioMapcount(m, head) !== 0) {
      keepLocked(head);
      continue;
    }
    if (anon) (swap as NonNullable<typeof swap>).deleteFromCache(head, 1 << (phys.order[head] as number));
    else {
      const f = [...m.files.values()].find((x) => x.id === phys.aux[head]);
      if (f !== undefined) f.pages.delete(phys.index(head));
    }
    phys.ref[head] = 1;
    il?.unlock(LK_FOLIO, head);
    free.push(head);
  }
  // The deferred flush completes before any folio goes back to the allocator
  // or to the LRU.
  tryToUnmapFlush(m, ubc);
  for (const head of kept) folioPutbackLru(m, head);
  if (m.config.checkInvariants && free.length > 0) m.framesFreed(free, "shrink_folio_list");
  // A folio to free stays off the LRU (isolated, PG_lru clear) until it is
  // freed: kswapd's clock or another reclaimer must not take it again in the
  // window the deferred flush opens (they would remove from the page cache
  // whatever now sits at its index, and free it twice).
  for (const head of free) {
    const nr = 1 << (phys.order[head] as number);
    m.isolated.delete(head);
    phys.folioPut(head);
    m.counters.pagesFree += nr;
    m.counters.pgsteal += nr; // nr_reclaimed counts pages
    stat.reclaimed++;
  }
  m.prof?.exit();
  return stat;
}

// folio_test_partially_mapped() of a large anon folio, as
// __folio_remove_rmap() sets it: no PMD maps it and some of its pages lost
// their last mapping while others are still mapped.
function folioPartiallyMapped(m: Machine, head: number): boolean {
  const phys = m.phys;
  if (phys.entireMapcount(head) > 0) return false;
  const nr = 1 << (phys.order[head] as number);
  let mapped = 0;
  for (let k = 0; k < nr; k++) if ((phys.mapcount[head + k] as number) > 0) mapped++;
  return mapped > 0 && mapped < nr;
}

// reclaim_pages(): shrink the isolated folios, ignoring references.
export function* reclaimPages(m: Machine, list: number[]): KGen<ReclaimStat> {
  if (list.length === 0) return { reclaimed: 0, kept: 0 };
  return yield* shrinkFolioList(m, list, true);
}

// The folios mapped in [start, end) of mm, each passed once per mapping
// entry to visit(head, pmdMapped): what a PFN or LRU scan restricted to a
// range would find (zero pages and special entries excluded). Reads the
// tables without locks and without interleaving points.
export function forEachMappedFolio(m: Machine, mm: Mm, start: number, end: number, visit: (head: number, pmdMapped: boolean) => void): void {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const phys = m.phys;
  for (let a = start; a < end; ) {
    const pi = pmdOffset(m, mm, a, false);
    const nextPmd = a - (a % G.pmdSize) + G.pmdSize;
    const v = pi < 0 ? 0 : T.get(pi);
    if (v === 0 || !A.entryIsTable(v)) {
      if (v !== 0 && A.entryIsLeaf(v) && ((phys.flags[A.ptePfn(v)] as number) & PG_ZERO) === 0) visit(A.ptePfn(v), true);
      a = nextPmd;
      continue;
    }
    const slot = T.slotOfPfn(A.ptePfn(v));
    const e = T.chunkOf(slot);
    const stop = Math.min(end, nextPmd);
    for (; a < stop; a += G.pageSize) {
      const x = A.ptepGet(m, e, T.base(slot) + ((a / G.pageSize) & G.ptrsMask));
      if (x === 0 || !A.ptePresent(x) || A.pteSpecial(x)) continue;
      const head = phys.folioHead(A.ptePfn(x));
      if (((phys.flags[head] as number) & PG_ZERO) === 0) visit(head, false);
    }
  }
}

// kswapd's shrink_lruvec() -> shrink_folio_list(), reduced to the folios
// mapped in [start, end) of mm (a `reclaim` step): each is isolated once and
// shrunk with folio_referenced() honoured, so a folio whose access flag is
// set is kept (and its flag cleared) and goes on a later pass.
export function* reclaimRange(m: Machine, mm: Mm, start: number, end: number): KGen<ReclaimStat> {
  const list: number[] = [];
  forEachMappedFolio(m, mm, start, end, (head) => {
    if (folioIsolateLru(m, head)) list.push(head);
  });
  if (list.length === 0) return { reclaimed: 0, kept: 0 };
  return yield* shrinkFolioList(m, list, false);
}
