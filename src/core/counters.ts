// Event counters. One flat object of numbers (fast to bump on hot paths);
// snapshots are copies, per-step figures are differences of snapshots.

export class Counters {
  pteReads = 0; // loads of page-table entries by software
  pteWrites = 0; // plain stores of page-table entries
  pteAtomics = 0; // atomic read-modify-writes (xchg/cmpxchg) of entries
  folioAtomics = 0; // atomic updates of page/folio counters (_mapcount, _large_mapcount, _nr_pages_mapped, _refcount) by rmap and freeing
  tlbHits = 0;
  tlbMisses = 0;
  walkSteps = 0; // entries read by hardware page walks
  walkCacheHits = 0; // page walks that started below the root thanks to a paging-structure cache
  hwAdUpdates = 0; // hardware accessed/dirty bit updates
  tlbFlushesPage = 0; // INVLPG (per page, per CPU)
  tlbFlushesFull = 0; // full (per-PCID) flushes, per CPU
  tlbFlushRequests = 0; // flush_tlb_mm_range() calls
  ipis = 0; // TLB-shootdown IPIs sent
  faults = 0; // page faults taken
  cowCopies = 0; // pages copied on write
  ptAlloc = 0; // page-table pages allocated
  ptFree = 0; // page-table pages freed
  ptReclaimed = 0; // PTE tables freed by PT reclaim
  thpFaults = 0; // PMD-mapped THPs installed by faults
  mthpFaults = 0; // anon folios of an mTHP order installed by faults
  thpSplits = 0; // PMD mappings split to PTEs
  thpFaultFallback = 0; // PMD-order fault allocations that failed (thp_fault_fallback): the fault went on at PTE level
  mthpFaultFallback = 0; // mTHP-order anon fault allocations that failed (stats/anon_fault_fallback, all sizes): the next order was tried
  pagesAlloc = 0; // data frames allocated (folio pages)
  pagesFree = 0; // data frames freed
  gatherFlushes = 0; // tlb_flush_mmu() batch flushes
  // Reclaim and swap (mm/vmscan.c, mm/rmap.c, mm/memory.c)
  pgsteal = 0; // pages reclaimed (freed) by shrink_folio_list(), as its nr_reclaimed counts them
  pswpout = 0; // pages written to swap
  pglazyfreed = 0; // pages of lazily freed (MADV_FREE) folios reclaim dropped
  pswpin = 0; // pages read from swap
  swapRa = 0; // pages read ahead into the swap cache around a swap-in fault (swap_ra)
  swapRaHit = 0; // swap-in faults that found a page read ahead (swap_ra_hit)
  thpSwpout = 0; // PMD-order THPs written to swap whole (thp_swpout)
  thpSwpoutFallback = 0; // PMD-order THPs split for want of a free run of slots (thp_swpout_fallback)
  mthpSwpout = 0; // folios of an mTHP order written to swap whole (hugepages-*/stats/swpout, all sizes)
  mthpSwpoutFallback = 0; // folios of an mTHP order split for want of a free run of slots (stats/swpout_fallback)
  mthpSwpin = 0; // folios of an mTHP order read from swap whole (stats/swpin, all sizes)
  mthpSwpinFallback = 0; // mTHP-order swap-in allocations that failed (stats/swpin_fallback, all sizes)
  tlbBatchFlushes = 0; // try_to_unmap_flush() calls that flushed a deferred batch
  tlbBatchedPendingFlushes = 0; // flush_tlb_batched_pending() calls that flushed the mm
  kswapdWakes = 0; // kswapd runs under a memory limit (balance_pgdat())
  // Migration (mm/migrate.c)
  pgmigrateSuccess = 0; // pages migrated
  pgmigrateFail = 0; // pages whose migration failed (-EAGAIN, or -ENOMEM for want of a target) and were restored
  // Collapse (mm/khugepaged.c)
  thpCollapses = 0; // PMD ranges collapsed into a THP
  thpCollapseFailed = 0; // PMD ranges a collapse gave up on
  thpCollapseAllocFailed = 0; // collapse THP allocations that failed (thp_collapse_alloc_failed)
  // arm64 TLB maintenance (instructions issued; each is broadcast to all CPUs).
  tlbiVale1is = 0; // TLBI VALE1IS: one page, last level
  tlbiVae1is = 0; // TLBI VAE1IS: one page, all levels (walk caches too)
  tlbiRvale1is = 0; // TLBI RVALE1IS: a range, last level (FEAT_TLBIRANGE)
  tlbiRvae1is = 0; // TLBI RVAE1IS: a range, all levels
  tlbiAside1is = 0; // TLBI ASIDE1IS: a whole ASID
  tlbiVmalle1is = 0; // TLBI VMALLE1IS / local flush at ASID rollover
  dsb = 0; // DSB ISH that waited for TLBI completion
  asidRollovers = 0;
  // contpte (arch/arm64/mm/contpte.c)
  contFolds = 0; // contpte_convert() to CONT
  contUnfolds = 0; // contpte_convert() to non-CONT
  contBlockTlbis = 0; // block flushes issued by contpte_convert()/clear_flush_young
  contLocklessRetries = 0; // ptep_get_lockless() retries over an inconsistent block
  tlbConflicts = 0; // overlapping TLB entries with different output or size
}

export type CounterName = keyof Counters;

export function snapshotCounters(c: Counters): Counters {
  return Object.assign(new Counters(), c);
}

export function diffCounters(a: Counters, b: Counters): Counters {
  const d = new Counters();
  for (const k of Object.keys(d) as CounterName[]) d[k] = b[k] - a[k];
  return d;
}

// snake_case names used in --json output.
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

// V8 gives each field the representation of the first value stored in it: a
// small integer here. The first count that arrives as a double (the result
// of a division, such as a batch length) or grows past 2^31 switches the
// field to a double, which deprecates the object's layout and discards the
// optimised code of every function that bumps a counter, in the middle of a
// run. Storing a fractional value once, at load, gives every Counters object
// double fields from the start. The throwaway object is never read.
{
  const c = new Counters() as unknown as Record<string, number>;
  for (const k of Object.keys(c)) c[k] = 0.5;
}
