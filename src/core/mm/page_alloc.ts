// The zone watermarks and the allocations that fail at them, under a memory
// limit (machine.memory, replay --memory-limit). Models
// calculate_min_free_kbytes(), __setup_per_zone_wmarks() and
// zone_watermark_ok() (mm/page_alloc.c) for one zone; the frames themselves
// come from PhysMem (physmem.ts).
//
// Which allocations fail: the large folios of THP and mTHP faults and
// swap-ins (vma_thp_gfp_mask(): GFP_TRANSHUGE_LIGHT, no reclaim, for a VMA
// without MADV_HUGEPAGE under the default defrag setting), a large folio's
// migration target (alloc_migration_target() clears __GFP_RECLAIM), the
// huge zero page, and MADV_COLLAPSE's THP. Each of those is an order above
// PAGE_ALLOC_COSTLY_ORDER or a mask without reclaim, so the kernel never
// OOM-kills for it: __alloc_pages_slowpath() gives up and the caller falls
// back. Order-0 folios and page tables do not fail here: the kernel reclaims
// for them and OOM-kills when it cannot, which kswapd's caller reports.
//
// Simplified: where the mask allows direct reclaim or compaction (a
// MADV_HUGEPAGE VMA's THP, MADV_COLLAPSE's GFP_TRANSHUGE, an order-2 or
// order-3 mTHP) the model has no direct reclaim, so the allocation fails as
// one without it would; free memory is a count (no fragmentation: a free
// block of the order is assumed where the count allows). No Node APIs.

import type { Machine } from "../machine.js";

export interface Watermarks {
  min: number; // pages
  low: number;
  high: number;
}

// calculate_min_free_kbytes(): int_sqrt(lowmem_kbytes * 16) clamped to
// [128, 262144] kB; __setup_per_zone_wmarks(): low = min + gap, high =
// low + gap, gap = max(min / 4, managed * watermark_scale_factor / 10000)
// with the default watermark_scale_factor of 10.
export function watermarks(totalPages: number, pageSize: number): Watermarks {
  const kb = (totalPages * pageSize) / 1024;
  const minKb = Math.min(262144, Math.max(128, Math.floor(Math.sqrt(kb * 16))));
  const min = Math.ceil((minKb * 1024) / pageSize);
  const gap = Math.max(min >> 2, Math.floor((totalPages * 10) / 10000));
  return { min, low: min + gap, high: min + 2 * gap };
}

export function freePages(m: Machine): number {
  return m.config.memoryPages - m.reservedPages - m.phys.allocated;
}

// zone_watermark_ok() at the min watermark (the slow path's ALLOC_WMARK_MIN,
// no ALLOC_HIGH or ALLOC_NON_BLOCK: the THP masks carry __GFP_NOMEMALLOC):
// what is free after taking 2^order - 1 frames must stay above min.
export function zoneWatermarkOk(m: Machine, order: number): boolean {
  return m.config.memoryPages === 0 || freePages(m) - ((1 << order) - 1) > m.watermarks.min;
}

// vma_alloc_folio() / folio_alloc() of a large folio with a mask that gives
// up rather than OOM-kill (see above): the head PFN, or -1 where the kernel
// returns NULL and its caller falls back.
export function allocLargeFolio(m: Machine, order: number): number {
  return zoneWatermarkOk(m, order) ? m.phys.alloc(order) : -1;
}
