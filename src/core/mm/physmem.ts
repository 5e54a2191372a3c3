// Physical memory: page frames, folios and the zero page. Models the parts of
// struct page / struct folio the page-table layer touches (include/linux/mm.h,
// include/linux/page-flags.h) and a buddy-like allocator (mm/page_alloc.c).
// Per-frame state lives in typed arrays indexed by PFN; a folio of order o is
// 2^o naturally aligned frames and its folio-wide state sits at the head frame.

export const PG_FREE = 1; // frame is in the allocator
export const PG_ANON = 2; // folio_test_anon (head)
export const PG_ANON_EXCLUSIVE = 4; // PageAnonExclusive (per page)
export const PG_DIRTY = 8; // folio_test_dirty (head)
export const PG_PAGETABLE = 16; // a page-table page (ptdesc)
export const PG_ZERO = 32; // the shared zero page / huge zero folio
export const PG_SWAPBACKED = 64; // anon folio not lazily freed (MADV_FREE clears it)
export const PG_SHMEM = 128; // page cache of a shmem file (shared anonymous)

export const MAX_ORDER = 10;

export class PhysMem {
  cap = 0;
  flags = new Uint8Array(0);
  order = new Uint8Array(0); // order of the folio this frame belongs to
  ref = new Int32Array(0); // folio refcount (head)
  mapcount = new Int32Array(0); // per-page PTE mapcount
  entireMapcount = new Int32Array(0); // PMD mappings of the folio (head)
  aux = new Int32Array(0); // page-table pages: table slot; file pages: owning file id
  index = new Float64Array(0); // page-cache index (file pages)
  private free: number[][] = [];
  private top = 1; // PFN 0 is never handed out
  allocated = 0; // frames currently allocated (any use)
  zeroPfn: number;
  hugeZeroPfn = -1;

  constructor() {
    for (let o = 0; o < MAX_ORDER; o++) this.free.push([]);
    this.grow(1 << 16);
    this.zeroPfn = this.alloc(0);
    this.flags[this.zeroPfn] |= PG_ZERO;
    this.ref[this.zeroPfn] = 1; // held forever
  }

  private grow(minCap: number): void {
    let cap = Math.max(this.cap * 2, 1 << 16);
    while (cap < minCap) cap *= 2;
    const f = new Uint8Array(cap);
    f.set(this.flags);
    f.fill(PG_FREE, this.cap);
    this.flags = f;
    const o = new Uint8Array(cap);
    o.set(this.order);
    this.order = o;
    const r = new Int32Array(cap);
    r.set(this.ref);
    this.ref = r;
    const m = new Int32Array(cap);
    m.set(this.mapcount);
    this.mapcount = m;
    const e = new Int32Array(cap);
    e.set(this.entireMapcount);
    this.entireMapcount = e;
    const a = new Int32Array(cap);
    a.set(this.aux);
    this.aux = a;
    const ix = new Float64Array(cap);
    ix.set(this.index);
    this.index = ix;
    this.cap = cap;
  }

  // Allocates 2^order naturally aligned frames; returns the head PFN with
  // refcount 1 and all other state cleared (models folio_alloc()).
  alloc(order: number): number {
    let pfn: number;
    const list = this.free[order] as number[];
    if (list.length > 0) {
      pfn = list.pop() as number;
    } else {
      const n = 1 << order;
      // Split a larger free block if there is one.
      let o = order + 1;
      while (o < MAX_ORDER && (this.free[o] as number[]).length === 0) o++;
      if (o < MAX_ORDER) {
        const big = (this.free[o] as number[]).pop() as number;
        for (let k = o - 1; k >= order; k--) (this.free[k] as number[]).push(big + (1 << k));
        pfn = big;
      } else {
        // Frames skipped to align the block go to the order-0 free list.
        let top = this.top;
        while (top % n !== 0) (this.free[0] as number[]).push(top++);
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
      this.entireMapcount[i] = 0;
      this.aux[i] = 0;
    }
    this.ref[pfn] = 1;
    this.allocated += n;
    return pfn;
  }

  // Returns a folio to the allocator; its frames keep PG_FREE so stale
  // references (a TLB entry, a walk cache) can be recognised.
  freeFolio(head: number): void {
    const order = this.order[head] as number;
    const n = 1 << order;
    for (let i = head; i < head + n; i++) this.flags[i] = PG_FREE;
    (this.free[order] as number[]).push(head);
    this.allocated -= n;
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
  // folio_put(): drop one reference; frees at zero. Returns true when freed.
  folioPut(head: number, n = 1): boolean {
    const r = (this.ref[head] as number) - n;
    this.ref[head] = r;
    if (r === 0) {
      this.freeFolio(head);
      return true;
    }
    return false;
  }
  // Bytes of model memory per frame, for the memory benchmark.
  static readonly BYTES_PER_FRAME = 1 + 1 + 4 + 4 + 4 + 4 + 8;
}
