// Which direction is better for each counter and whole-run figure of a
// comparison, with the reason in a few words. The report colours a ratio by
// it: green where the configuration did better than the first, red where it
// did worse, grey where neither direction is better on its own (a count of
// work that was asked for, or one whose meaning depends on another row).
//
// COUNTER_BETTER is keyed by every field of Counters, so a counter added to
// the model does not typecheck until someone decides its direction here.

import type { CounterName } from "../core/counters.js";
import { snakeCase } from "../core/counters.js";

export type Better = "lower" | "higher" | "neither";
export interface Direction {
  better: Better;
  why: string;
}

const low = (why: string): Direction => ({ better: "lower", why });
const high = (why: string): Direction => ({ better: "higher", why });
const neither = (why: string): Direction => ({ better: "neither", why });

const WORK = "work the CPU does";
const FLUSH = "a TLB flush: work, and entries refilled after it";
const TLBI = "a broadcast TLBI: issued to every CPU, waited for at the next DSB";

export const COUNTER_BETTER: Record<CounterName, Direction> = {
  pteReads: low(WORK),
  pteWrites: low(WORK),
  pteAtomics: low(`${WORK} (atomic read-modify-writes)`),
  folioAtomics: low(`${WORK} (atomic updates of shared counters)`),
  tlbHits: high("accesses served without a page walk: for the same accesses, more hits means fewer misses"),
  tlbMisses: low("each miss costs a page walk"),
  walkSteps: low("entries the hardware walker read"),
  walkCacheHits: neither("walks that started below the root: fewer can mean fewer walks (better) or more walks from the root (worse); walk_steps says which"),
  hwAdUpdates: low("atomic accessed/dirty bit updates by the walker"),
  tlbFlushesPage: low(FLUSH),
  tlbFlushesFull: low(FLUSH),
  tlbFlushRequests: low("flush_tlb_mm_range() calls: each may flush and send IPIs"),
  ipis: low("each interrupts another CPU"),
  faults: low("each is a trap and a trip through the fault handler"),
  cowCopies: low("each copies a page"),
  ptAlloc: low("page-table pages allocated: work and memory"),
  ptFree: low("work; every table allocated is freed by exit at the latest, so it follows pt_alloc"),
  ptReclaimed: neither("PTE tables PT reclaim freed early: memory back (VmPTE shows it) for work now and a new table if the range is touched again"),
  thpFaults: neither("a policy outcome: one fault maps 2M, zeroing more memory than is touched"),
  mthpFaults: neither("a policy outcome: one fault maps a larger folio"),
  thpSplits: low("each splits a PMD mapping into a PTE table: work, and TLB reach lost"),
  thpFaultFallback: low("a THP was asked for and not had"),
  mthpFaultFallback: low("an mTHP order was asked for and not had"),
  pagesAlloc: low("data pages allocated: work (zeroing) and memory"),
  pagesFree: low("work; follows pages_alloc"),
  gatherFlushes: low("mmu_gather batch flushes: each flushes the TLB"),
  pgsteal: neither("pages reclaim freed: what the memory limit asked for; more may mean refaults, fewer that reclaim could not"),
  pswpout: low("pages written to swap: I/O"),
  pglazyfreed: neither("MADV_FREE pages reclaim dropped: cheap reclaim, but how much reclaim there is depends on the memory limit"),
  pswpin: low("pages read from swap: I/O the program waits for"),
  swapRa: neither("pages read ahead: useful only where they are hit (swap_ra_hit)"),
  swapRaHit: high("swap-in faults that found the page already read"),
  thpSwpout: neither("THPs written whole: depends on how much is swapped at all"),
  thpSwpoutFallback: low("THPs split for want of swap slots"),
  mthpSwpout: neither("mTHP folios written whole: depends on how much is swapped at all"),
  mthpSwpoutFallback: low("mTHP folios split for want of swap slots"),
  mthpSwpin: neither("mTHP folios read whole: depends on how much is swapped in at all"),
  mthpSwpinFallback: low("mTHP swap-in allocations that failed"),
  tlbBatchFlushes: low("deferred reclaim flushes: each flushes the TLB"),
  tlbBatchedPendingFlushes: low("flushes forced by a pending reclaim batch"),
  kswapdWakes: low("reclaim passes: memory pressure reached the watermark"),
  pgmigrateSuccess: neither("pages migrated: the work asked for"),
  pgmigrateFail: low("migrations that failed and were undone"),
  thpCollapses: neither("work now for TLB reach later"),
  thpCollapseFailed: low("collapses given up after the work of trying"),
  thpCollapseAllocFailed: low("collapses without a THP to collapse into"),
  tlbiVale1is: low(TLBI),
  tlbiVae1is: low(TLBI),
  tlbiRvale1is: low(TLBI),
  tlbiRvae1is: low(TLBI),
  tlbiAside1is: low(TLBI),
  tlbiVmalle1is: low(TLBI),
  dsb: low("each waits for TLBIs to complete"),
  asidRollovers: low("each flushes every CPU's TLB"),
  contFolds: neither("work now for TLB reach later (contpte blocks)"),
  contUnfolds: low("each breaks a contpte block: work, a TLBI, and TLB reach lost"),
  contBlockTlbis: low(TLBI),
  contLocklessRetries: low("lockless readers that had to read a block again"),
  tlbConflicts: low("overlapping TLB entries: a TLB conflict abort on hardware"),
};

// The whole-run figures (compare.ts runFigures(), the cost hook).
export const FIGURE_BETTER: Record<string, Direction> = {
  peak_vmpte_kb: low("page-table memory"),
  final_vmpte_kb: low("page-table memory left at the last report"),
  peak_rss_anon_kb: low("memory; larger folios can map more than is touched"),
  peak_rss_file_kb: low("memory"),
  peak_anon_huge_kb: neither("THP use: TLB reach for memory; RSS shows the memory"),
  modelled_cycles: low("the counters weighted by the cost table"),
};

const BY_SNAKE = new Map<string, Direction>(Object.entries(COUNTER_BETTER).map(([k, d]) => [snakeCase(k), d]));

const UNKNOWN = neither("no direction recorded for this row");

/** The direction of a counter (snake_case) or figure name. */
export function direction(name: string): Direction {
  return (Object.hasOwn(FIGURE_BETTER, name) ? FIGURE_BETTER[name] : undefined) ?? BY_SNAKE.get(name) ?? UNKNOWN;
}

/** Whether a ratio against the first configuration is better, worse or neither. */
export function verdict(better: Better, ratio: number | null, value: number): "better" | "worse" | "same" | "neutral" {
  // A ratio the table prints as 1.00x is the same; "new" (the first is 0)
  // counts as up.
  const shown = ratio === null ? null : Number(ratio.toFixed(2));
  const up = shown === null ? value !== 0 : shown > 1;
  const down = shown !== null && shown < 1;
  if (!up && !down) return "same";
  if (better === "neither") return "neutral";
  return up === (better === "higher") ? "better" : "worse";
}
