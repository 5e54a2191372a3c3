// One swap device and its swap cache: models the slot map of
// swap_info_struct (swap_map[]: per slot the number of swap entries that
// reference it, plus SWAP_HAS_CACHE while a folio sits in the swap cache;
// mm/swapfile.c: folio_alloc_swap(), swap_duplicate(), swap_free_nr(),
// free_swap_and_cache(), __swap_count(), folio_free_swap()) and the swap
// cache (mm/swap_state.c: add_to_swap_cache(), __delete_from_swap_cache(),
// swap_cache_get_folio()).
//
// Simplified: one device of type 0, slots handed out first-fit from 1 (slot
// 0 holds the swap header, as on a real device), order-0 folios only (the
// model has no THP_SWAP: reclaim splits large folios first). The contents of
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
  used = 0; // allocated slots
  private next = 1; // first-fit cursor
  constructor(readonly pages: number) {
    this.count = new Int32Array(pages + 1);
    this.pinned = new Uint8Array(pages + 1);
  }

  allocated(slot: number): boolean {
    return slot >= 1 && slot <= this.pages && ((this.count[slot] as number) > 0 || this.cache.has(slot) || this.pinned[slot] === 1);
  }

  // swapcache_prepare() (mm/swapfile.c, __swap_duplicate() with
  // SWAP_HAS_CACHE): false when the slot has the flag already (a folio in
  // the swap cache, or another swap-in's pin) or no entry references it.
  prepare(slot: number): boolean {
    if (this.cache.has(slot) || this.pinned[slot] === 1 || (this.count[slot] as number) === 0) return false;
    this.pinned[slot] = 1;
    return true;
  }

  // swapcache_clear(): the pin goes; the slot is released if no swap entry
  // references it any more.
  clearPin(slot: number): void {
    this.pinned[slot] = 0;
    if (this.count[slot] === 0 && !this.cache.has(slot)) this.used--;
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

  // __delete_from_swap_cache() + put_swap_folio(): the folio leaves the swap
  // cache (the caller drops the cache's reference); the slot is released if
  // no swap entry references it any more.
  deleteFromCache(pfn: number): void {
    const s = this.slotOf.get(pfn);
    if (s === undefined) return;
    this.slotOf.delete(pfn);
    this.cache.delete(s);
    if (this.count[s] === 0 && this.pinned[s] === 0) this.used--;
  }

  // Adds a folio read from slot s to the swap cache (swapin_readahead()'s
  // add_to_swap_cache()).
  addToCache(slot: number, pfn: number): void {
    this.cache.set(slot, pfn);
    this.slotOf.set(pfn, slot);
  }
}

// The explorer's key for a slot's contents (user-data stamps live per frame
// under non-negative keys).
export function swapKey(slot: number): number {
  return -slot;
}
