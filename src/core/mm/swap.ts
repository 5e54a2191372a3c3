// One swap device and its swap cache: models the slot map of
// swap_info_struct (swap_map[]: per slot the number of swap entries that
// reference it, plus SWAP_HAS_CACHE while a folio sits in the swap cache;
// mm/swapfile.c: folio_alloc_swap(), swap_duplicate(), swap_free_nr(),
// free_swap_and_cache(), __swap_count(), folio_free_swap()) and the swap
// cache (mm/swap_state.c: add_to_swap_cache(), __delete_from_swap_cache(),
// swap_cache_get_folio()).
//
// A large folio (CONFIG_THP_SWAP) takes a naturally aligned run of
// 2^order slots, as folio_alloc_swap() finds it in a cluster of its order
// (swap_alloc_fast() / cluster_alloc_swap_entry()); each slot of the run maps
// to the folio in the swap cache, folio->swap (slotOf) names the first.
//
// Simplified: one device of type 0, slots handed out next-fit from 1 (slot
// 0 holds the swap header, as on a real device); a large folio's run is the
// first free aligned run from the cursor (the kernel's clusters are not
// modelled: it succeeds exactly when a free aligned run exists, where the
// kernel also needs the run's cluster free or of the same order). The contents of
// a slot are not modelled except by the explorer, which carries user-data
// stamps through it (Interleaver.copyPage() with swapKey()). No Node APIs.

export class SwapDevice {
  // swap_map[]: swap entries referencing each slot (the count, without
  // SWAP_HAS_CACHE). A slot is allocated while its count is positive or a
  // folio for it is in the swap cache.
  readonly count: Int32Array;
  // The swap cache: slot -> folio (head PFN), and back (folio->swap).
  readonly cache = new Map<number, number>();
  readonly slotOf = new Map<number, number>();
  // SWAP_HAS_CACHE with no folio in the swap cache: the pin
  // swapcache_prepare() puts on a slot that do_swap_page() reads into a
  // folio of its own (SWP_SYNCHRONOUS_IO), until swapcache_clear().
  readonly pinned: Uint8Array;
  // Swap-cache folios read ahead and not yet found by a fault
  // (PG_readahead; swap_state.ts).
  readonly readahead = new Set<number>();
  used = 0; // allocated slots
  private next = 1; // first-fit cursor
  constructor(readonly pages: number) {
    this.count = new Int32Array(pages + 1);
    this.pinned = new Uint8Array(pages + 1);
  }

  allocated(slot: number): boolean {
    return slot >= 1 && slot <= this.pages && ((this.count[slot] as number) > 0 || this.cache.has(slot) || this.pinned[slot] === 1);
  }

  // swapcache_prepare(entry, nr) (mm/swapfile.c, __swap_duplicate() with
  // SWAP_HAS_CACHE over nr slots): false, and nothing pinned, when any slot
  // has the flag already (a folio in the swap cache, or another swap-in's
  // pin) or no entry references it.
  prepare(slot: number, nr = 1): boolean {
    for (let k = 0; k < nr; k++) {
      const s = slot + k;
      if (this.cache.has(s) || this.pinned[s] === 1 || (this.count[s] as number) === 0) return false;
    }
    for (let k = 0; k < nr; k++) this.pinned[slot + k] = 1;
    return true;
  }

  // swapcache_clear(entry, nr): the pins go; a slot is released if no swap
  // entry references it any more.
  clearPin(slot: number, nr = 1): void {
    for (let k = 0; k < nr; k++) {
      const s = slot + k;
      this.pinned[s] = 0;
      if (this.count[s] === 0 && !this.cache.has(s)) this.used--;
    }
  }

  // The swap-cache folio and page for a slot: the PFN of the page the slot
  // holds (folio head + the slot's index in the folio's run), or -1.
  cachedPage(slot: number): number {
    const head = this.cache.get(slot);
    if (head === undefined) return -1;
    return head + (slot - (this.slotOf.get(head) as number));
  }

  // folio_alloc_swap() (mm/swapfile.c) + add_to_swap_cache() for a folio of
  // any order: a naturally aligned run of 2^order free slots, searched from
  // the cursor (slot 0 is the header; the run must lie in 1..pages), each
  // slot in the swap cache for the folio. -1 when no such run is free.
  allocRun(pfn: number, order: number): number {
    if (order === 0) return this.allocSlot(pfn);
    const nr = 1 << order;
    const runs = Math.floor((this.pages + 1) / nr); // runs that fit before the device's end
    const first = Math.floor(this.next / nr);
    for (let k = 0; k < runs; k++) {
      const r = (first + k) % runs;
      const s0 = r * nr;
      if (s0 === 0) continue; // holds the header
      let free = true;
      for (let j = 0; j < nr; j++)
        if (this.allocated(s0 + j)) {
          free = false;
          break;
        }
      if (!free) continue;
      this.next = ((s0 + nr - 1) % this.pages) + 1;
      this.used += nr;
      for (let j = 0; j < nr; j++) this.cache.set(s0 + j, pfn);
      this.slotOf.set(pfn, s0);
      return s0;
    }
    return -1;
  }

  // folio_alloc_swap() + add_to_swap_cache() for an order-0 folio: a free
  // slot, with the folio in the swap cache (the cache's reference is the
  // caller's to take). -1 when the device is full.
  allocSlot(pfn: number): number {
    for (let k = 0; k < this.pages; k++) {
      const s = ((this.next - 1 + k) % this.pages) + 1;
      if (!this.allocated(s)) {
        this.next = (s % this.pages) + 1;
        this.used++;
        this.cache.set(s, pfn);
        this.slotOf.set(pfn, s);
        return s;
      }
    }
    return -1;
  }

  // swap_duplicate(): one more swap entry references the slot.
  duplicate(slot: number): void {
    this.count[slot] = (this.count[slot] as number) + 1;
  }

  // swap_free_nr() for one entry: the slot is released when no entry
  // references it and no folio caches it. True when released.
  free(slot: number): boolean {
    const c = (this.count[slot] as number) - 1;
    if (c < 0) throw new Error(`model bug: swap slot ${slot} freed more often than referenced`);
    this.count[slot] = c;
    if (c === 0 && !this.cache.has(slot) && this.pinned[slot] === 0) {
      this.used--;
      return true;
    }
    return false;
  }

  // __delete_from_swap_cache() + put_swap_folio(): the folio (of nr pages)
  // leaves the swap cache (the caller drops the cache's reference); each
  // slot is released if no swap entry references it any more.
  deleteFromCache(pfn: number, nr = 1): void {
    const s0 = this.slotOf.get(pfn);
    if (s0 === undefined) return;
    this.slotOf.delete(pfn);
    this.readahead.delete(pfn);
    for (let k = 0; k < nr; k++) {
      const s = s0 + k;
      this.cache.delete(s);
      if (this.count[s] === 0 && this.pinned[s] === 0) this.used--;
    }
  }

  // Adds a folio of nr pages for the slots from slot to the swap cache
  // (swapin_readahead()'s add_to_swap_cache(), or migration's replacement).
  addToCache(slot: number, pfn: number, nr = 1): void {
    for (let k = 0; k < nr; k++) this.cache.set(slot + k, pfn);
    this.slotOf.set(pfn, slot);
  }

  // The slots of the folio run from slot that a swap entry still references
  // (folio_swapped(): any; swap_only_has_cache() is its negation).
  // From the last slot: a zap frees a run's entries in ascending order, so
  // a run still in use answers at once instead of after the freed slots.
  anySwapped(slot: number, nr: number): boolean {
    for (let k = nr - 1; k >= 0; k--) if ((this.count[slot + k] as number) > 0) return true;
    return false;
  }
}

// The explorer's key for a slot's contents (user-data stamps live per frame
// under non-negative keys).
export function swapKey(slot: number): number {
  return -slot;
}
