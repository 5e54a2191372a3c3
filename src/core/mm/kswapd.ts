// Memory pressure under a memory limit (machine.memory, replay
// --memory-limit): models kswapd's balance_pgdat() (mm/vmscan.c) against
// the zone watermarks of page_alloc.ts, reduced to its page-table work: when free
// memory falls below the low watermark, folios are isolated in batches of
// SWAP_CLUSTER_MAX and shrunk with folio_referenced() honoured
// (shrink_folio_list(): a referenced folio is kept with its access flags
// cleared, so the next pass takes it) until free memory is above the high
// watermark. The memory counted is every frame the model allocates: user
// folios, page tables, the zero pages.
//
// Simplified: no LRU lists: the folios are visited in physical order from a
// clock hand, which stands in for the inactive lists' order; kswapd runs
// between a program's memory accesses and between steps, not inside an
// allocation (so one fault's folio may take free memory below the low
// watermark until it returns); no direct reclaim and no OOM killer: memory
// that cannot be reclaimed below the min watermark (no swap, or swap full,
// and dirty or mapped-shared file folios left to the flusher) is reported
// to the caller, which stops with an error (the large folios whose masks
// give up instead fail at the min watermark: page_alloc.ts). No Node APIs.

import type { Machine } from "../machine.js";
import type { KGen } from "./memory.js";
import { PG_FREE, PG_PAGETABLE, PG_ZERO } from "./physmem.js";
import { folioIsolateLru, shrinkFolioList } from "./vmscan.js";
import { freePages } from "./page_alloc.js";

const SWAP_CLUSTER_MAX = 32;

// A folio kswapd can take: on an LRU list (a user folio in use), not
// isolated already. A folio joins the LRU when it gets its mapping:
// folio_add_new_anon_rmap() with folio_add_lru_vma() when a fault, a COW
// copy, a swap-in, a collapse or a migration maps it, filemap_add_folio()
// for the page cache. Until then (folio->mapping, the model's aux, is
// still 0) it is its allocator's alone: a fault filling it, MADV_COLLAPSE
// copying into it, a migration's destination.
function onLru(m: Machine, pfn: number): boolean {
  const phys = m.phys;
  const f = phys.flags[pfn] as number;
  if (f & (PG_FREE | PG_PAGETABLE | PG_ZERO)) return false;
  return phys.folioHead(pfn) === pfn && (phys.ref[pfn] as number) > 0 && (phys.aux[pfn] as number) !== 0 && !m.isolated.has(pfn);
}

// Why a balance could free nothing more, for an out-of-memory report;
// `noSwap` names the missing device the way the caller's input does.
export function reclaimBlocker(m: Machine, noSwap = "no swap device"): string {
  return m.swap === null ? noSwap : m.swap.used >= m.swap.pages ? "swap is full" : "nothing reclaimable";
}

export interface BalanceStat {
  reclaimed: number; // folios freed
  scanned: number; // folios isolated and shrunk
}

// balance_pgdat(): shrink until free memory is above the high watermark or
// three sweeps of the clock found nothing more to free.
export function* kswapdBalance(m: Machine): KGen<BalanceStat> {
  const phys = m.phys;
  const wm = m.watermarks;
  const stat: BalanceStat = { reclaimed: 0, scanned: 0 };
  m.counters.kswapdWakes++;
  let idle = 0; // whole sweeps of the clock that freed nothing
  let sweepFreed = 0;
  while (freePages(m) < wm.high && idle < 3) {
    const end = phys.highWater;
    const batch: number[] = [];
    let pfn = m.lruHand;
    let wrapped = false;
    while (batch.length < SWAP_CLUSTER_MAX) {
      if (pfn >= end) {
        pfn = 1;
        wrapped = true;
        break;
      }
      // A free frame's order is what it had when it was allocated last
      // (the allocator splits free blocks without rewriting it): step one.
      if (((phys.flags[pfn] as number) & PG_FREE) !== 0) {
        pfn++;
        continue;
      }
      if (onLru(m, pfn) && folioIsolateLru(m, pfn)) batch.push(pfn);
      const h = phys.folioHead(pfn);
      pfn = h + (1 << (phys.order[h] as number));
    }
    m.lruHand = pfn;
    if (batch.length > 0) {
      const r = yield* shrinkFolioList(m, batch, false);
      sweepFreed += r.reclaimed;
      stat.reclaimed += r.reclaimed;
      stat.scanned += batch.length;
    }
    if (wrapped) {
      idle = sweepFreed > 0 ? 0 : idle + 1;
      sweepFreed = 0;
    }
  }
  return stat;
}
