// Physical memory: page frames, folios and the zero page. Models the parts of
// struct page / struct folio the page-table layer touches (include/linux/mm.h,
// include/linux/page-flags.h) and a buddy-like allocator (mm/page_alloc.c).
// Per-frame state lives in typed arrays indexed by PFN (22 bytes a frame); a
// folio of order o is 2^o naturally aligned frames and its folio-wide state
// sits at the head frame. Free lists are typed-array stacks, one per order.

export const PG_FREE = 1; // frame is in the allocator
export const PG_ANON = 2; // folio_test_anon (head)
export const PG_ANON_EXCLUSIVE = 4; // PageAnonExclusive (per page)
export const PG_DIRTY = 8; // folio_test_dirty (head)
export const PG_PAGETABLE = 16; // a page-table page (ptdesc)
export const PG_ZERO = 32; // the shared zero page / huge zero folio
export const PG_SWAPBACKED = 64; // anon folio not lazily freed (MADV_FREE clears it)
export const PG_SHMEM = 128; // page cache of a shmem file (shared anonymous)

// FOLL_PIN on a small folio adds this to its refcount (include/linux/mm.h);
// a large folio counts pins in folio->_pincount and one reference each.
export const GUP_PIN_COUNTING_BIAS = 1024;

import { growTo } from "../growable.js";
import { giveArrays, takeArray } from "../pool.js";

// Orders 0..13: the 64K granule's PMD THP is order 13 (512M), as its
// MAX_PAGE_ORDER is (ARCH_FORCE_MAX_ORDER); 4K needs 0..10.
export const MAX_ORDER = 14;
const GROWTH = 1.5; // spare capacity vs. copying on growth
const INITIAL_FRAMES = 1 << 14;

// A growable stack of frame numbers.
class FrameStack {
  a = new Int32Array(64);
  n = 0;
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(Math.ceil(this.a.length * GROWTH) + 64);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  pop(): number {
    return this.a[--this.n] as number;
  }
}

export class PhysMem {
  cap = 0;
  // Plain arrays copied on growth: V8 11 (Node 20) runs the hot paths slower
  // over resizable buffers when many of them are in play.
  flags = new Uint8Array(0);
  order = new Uint8Array(0); // order of the folio this frame belongs to
  ref = new Int32Array(0); // folio refcount (head)
  mapcount = new Int32Array(0); // per-page PTE mapcount
  aux = new Int32Array(0); // page-table pages: table slot; folios (head): folio->mapping (anon_vma id or file id)
  // folio->index (head): linear page index of an anon folio, file page
  // offset. Below 2^48 (an anon index is an address over the page size), so
  // 48 bits in two arrays instead of a Float64Array: 2 bytes a frame less.
  private indexLo = new Uint32Array(0);
  private indexHi = new Uint16Array(0);
  // PMD mappings of a folio (folio->_entire_mapcount), by head; only PMD-sized
  // folios have any, so a map costs less than a per-frame array.
  private entire = new Map<number, number>();
  // GUP pins (FOLL_PIN) by head: folio->_pincount for large folios; for a
  // small one the kernel keeps only the biased refcount, the model counts
  // them too so that the checks can tell pins from other references. Empty
  // unless a scenario pins: nothing on a hot path reads it.
  readonly pins = new Map<number, number>();
  private free: FrameStack[] = [];
  private top = 1; // PFN 0 is never handed out
  // One past the highest PFN ever handed out.
  get highWater(): number {
    return this.top;
  }
  allocated = 0; // frames currently allocated (any use)
  // The explorer's data oracle: frames come back zeroed (what it remembers
  // of their contents from an earlier life must go). Null otherwise.
  onAlloc: ((pfn: number, nr: number) => void) | null = null;
  zeroPfn: number;
  hugeZeroPfn = -1;

  constructor() {
    for (let o = 0; o < MAX_ORDER; o++) this.free.push(new FrameStack());
    this.grow(INITIAL_FRAMES);
    this.zeroPfn = this.alloc(0);
    this.flags[this.zeroPfn] |= PG_ZERO;
    this.ref[this.zeroPfn] = 1; // held forever
  }

  // The arrays go back to the pool (pool.ts): this memory is not used again.
  release(): void {
    giveArrays(this.flags, this.order, this.ref, this.mapcount, this.aux, this.indexLo, this.indexHi);
    this.cap = 0;
  }

  private grow(minCap: number): void {
    let cap = Math.max(this.cap, INITIAL_FRAMES);
    while (cap < minCap) cap = Math.ceil(cap * GROWTH);
    const old = this.cap;
    if (old === 0) {
      this.flags = takeArray(Uint8Array, cap);
      this.order = takeArray(Uint8Array, cap);
      this.ref = takeArray(Int32Array, cap);
      this.mapcount = takeArray(Int32Array, cap);
      this.aux = takeArray(Int32Array, cap);
      this.indexLo = takeArray(Uint32Array, cap);
      this.indexHi = takeArray(Uint16Array, cap);
    } else {
      this.flags = growTo(this.flags, cap);
      this.order = growTo(this.order, cap);
      this.ref = growTo(this.ref, cap);
      this.mapcount = growTo(this.mapcount, cap);
      this.aux = growTo(this.aux, cap);
      this.indexLo = growTo(this.indexLo, cap);
      this.indexHi = growTo(this.indexHi, cap);
    }
    this.flags.fill(PG_FREE, old, cap);
    this.cap = cap;
  }

  index(pfn: number): number {
    return (this.indexHi[pfn] as number) * 4294967296 + (this.indexLo[pfn] as number);
  }
  setIndex(pfn: number, v: number): void {
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 48)) throw new Error(`model bug: folio index ${v} of pfn ${pfn} is outside 0..2^48`);
    this.indexLo[pfn] = v % 4294967296;
    this.indexHi[pfn] = Math.floor(v / 4294967296);
  }

  // Allocates 2^order naturally aligned frames; returns the head PFN with
  // refcount 1 and all other state cleared (models folio_alloc()).
  alloc(order: number): number {
    let pfn: number;
    const list = this.free[order] as FrameStack;
    if (list.n > 0) {
      pfn = list.pop();
    } else {
      const n = 1 << order;
      // Split a larger free block if there is one.
      let o = order + 1;
      while (o < MAX_ORDER && (this.free[o] as FrameStack).n === 0) o++;
      if (o < MAX_ORDER) {
        const big = (this.free[o] as FrameStack).pop();
        for (let k = o - 1; k >= order; k--) (this.free[k] as FrameStack).push(big + (1 << k));
        pfn = big;
      } else {
        // Frames skipped to align the block go to the order-0 free list.
        let top = this.top;
        while (top % n !== 0) (this.free[0] as FrameStack).push(top++);
        pfn = top;
        this.top = top + n;
        if (this.top > this.cap) this.grow(this.top);
      }
    }
    const n = 1 << order;
    for (let i = pfn; i < pfn + n; i++) {
      this.flags[i] = 0;
      this.order[i] = order;
      this.mapcount[i] = 0;
      this.ref[i] = 0;
      this.aux[i] = 0;
    }
    this.ref[pfn] = 1;
    this.allocated += n;
    if (this.onAlloc !== null) this.onAlloc(pfn, n);
    return pfn;
  }

  // Returns a folio to the allocator; its frames keep PG_FREE so stale
  // references (a TLB entry, a walk cache) can be recognised.
  freeFolio(head: number): void {
    const order = this.order[head] as number;
    const n = 1 << order;
    const flags = this.flags;
    for (let i = head; i < head + n; i++) flags[i] = PG_FREE;
    this.entire.delete(head);
    (this.free[order] as FrameStack).push(head);
    this.allocated -= n;
  }

  entireMapcount(head: number): number {
    return this.entire.get(head) ?? 0;
  }
  addEntireMapcount(head: number, d: number): void {
    const v = (this.entire.get(head) ?? 0) + d;
    if (v === 0) this.entire.delete(head);
    else this.entire.set(head, v);
  }

  // Refcount references the pins of a folio hold.
  pinRefs(head: number): number {
    const n = this.pins.get(head);
    if (n === undefined) return 0;
    return (this.order[head] as number) === 0 ? n * GUP_PIN_COUNTING_BIAS : n;
  }
  // folio_maybe_dma_pinned() (include/linux/mm.h): _pincount for a large
  // folio, the biased refcount for a small one (false positives included:
  // 1024 plain references look like a pin, as in the kernel).
  folioMaybeDmaPinned(head: number): boolean {
    if ((this.order[head] as number) > 0) return (this.pins.get(head) ?? 0) > 0;
    return (this.ref[head] as number) >= GUP_PIN_COUNTING_BIAS;
  }

  folioHead(pfn: number): number {
    const order = this.order[pfn] as number;
    return order === 0 ? pfn : pfn - (pfn % (1 << order));
  }
  folioOrder(pfn: number): number {
    return this.order[pfn] as number;
  }
  isFree(pfn: number): boolean {
    return ((this.flags[pfn] as number) & PG_FREE) !== 0;
  }
  // folio_put(): drop references; frees at zero. Returns true when freed.
  folioPut(head: number, n = 1): boolean {
    const r = (this.ref[head] as number) - n;
    this.ref[head] = r;
    if (r === 0) {
      this.freeFolio(head);
      return true;
    }
    return false;
  }
}
