// Folio sizes for the microbenchmarks: 4K (order 0), the mTHP sizes (orders
// 2..8, enabled "always" through RunOptions.mthp) and 2M (a PMD THP by
// MADV_HUGEPAGE, optionally split to a PTE-mapped THP).

import { PAGE, PMD_SIZE, RO, RW, type ScenarioBuilder } from "./builder.js";
import type { EnumParam } from "./params.js";
import type { WorkloadRunOptions } from "./types.js";

export const FOLIO_SIZES = ["4K", "16K", "32K", "64K", "128K", "256K", "512K", "1M", "2M"] as const;

export function folioParam(def: string, description = "folio size the region is faulted with"): EnumParam {
  return { name: "folio", kind: "enum", default: def, values: FOLIO_SIZES, description };
}

export function folioOrder(folio: string): number {
  const kb = folio.endsWith("M") ? Number(folio.slice(0, -1)) * 1024 : Number(folio.slice(0, -1));
  return Math.log2((kb * 1024) / PAGE);
}

export function folioRunOptions(folio: string): WorkloadRunOptions {
  const order = folioOrder(folio);
  return order >= 2 && order <= 8 ? { mthp: { [(PAGE << order) / 1024]: "always" } } : {};
}

/**
 * Faults `region` (size a multiple of 2M) in with folios of size `folio`.
 * 2M: MADV_HUGEPAGE then a write per 2M; with `pteMapped`, each PMD mapping is
 * then split by an mprotect of its first page to RO and back to RW (the VMA
 * splits and merges again, the THP stays PTE-mapped: __split_huge_pmd()).
 */
export function fill(b: ScenarioBuilder, a: { thread: string; region: string; size: number; folio: string; pteMapped: boolean }): void {
  if (a.folio === "2M") {
    b.madvise({ thread: a.thread, region: a.region, advice: "hugepage" });
    b.touch({ thread: a.thread, region: a.region, stride: PMD_SIZE });
    if (a.pteMapped)
      b.repeat(a.thread, a.size / PMD_SIZE, PMD_SIZE, () => {
        b.mprotect({ thread: a.thread, region: a.region, length: PAGE, prot: RO });
        b.mprotect({ thread: a.thread, region: a.region, length: PAGE, prot: RW });
      });
    // Write every page, as the benchmarks do after the fill.
    b.touch({ thread: a.thread, region: a.region });
  } else b.touch({ thread: a.thread, region: a.region });
}
