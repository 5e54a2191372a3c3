// Page-table pages: storage for their entries and the mm's accounting of them.
// Models pagetable_alloc()/pagetable_free() and the ptdesc of a table page,
// plus mm_inc_nr_ptes()/mm_inc_nr_pmds()/mm_inc_nr_puds() (include/linux/mm.h)
// that feed VmPTE. An entry is named by its global index slot*ptrs + i.
// Entries live in chunks of TABLES_PER_CHUNK tables, so growing allocates a
// new chunk and never copies tables; hot loops take the chunk of a table once
// (chunkOf/base) and index it directly.

import { growTo } from "../growable.js";
import { PG_PAGETABLE, type PhysMem } from "./physmem.js";

export const LVL_PTE = 0;
export const LVL_PMD = 1;
export const LVL_PUD = 2;
export const LVL_P4D = 3;
export const LVL_PGD = 4;

// Lifecycle of a table page (ptdesc), for the invariant checker.
export const TBL_FREE = 0;
export const TBL_LIVE = 1; // linked into a page-table tree (or deposited)
export const TBL_UNLINKED = 2; // cleared from its parent, waiting in an mmu_gather
export const TBL_RCU = 3; // handed to call_rcu(), waiting for a grace period

export const TABLES_PER_CHUNK = 64;

export class TableStore {
  readonly ptrs: number;
  private readonly zero: Float64Array;
  private readonly chunkEntries: number;
  chunks: Float64Array[] = [];
  pfn: Int32Array; // slot -> PFN of the table page
  level: Uint8Array;
  state: Uint8Array;
  private freeSlots: number[] = [];
  private next = 0;
  live = 0;

  constructor(
    readonly phys: PhysMem,
    ptrs: number,
  ) {
    this.ptrs = ptrs;
    this.zero = new Float64Array(ptrs);
    this.chunkEntries = TABLES_PER_CHUNK * ptrs;
    const cap = 256;
    this.pfn = new Int32Array(cap);
    this.level = new Uint8Array(cap);
    this.state = new Uint8Array(cap);
  }

  private grow(): void {
    const cap = Math.ceil(this.pfn.length * 1.5);
    this.pfn = growTo(this.pfn, cap);
    this.level = growTo(this.level, cap);
    this.state = growTo(this.state, cap);
  }

  // A zeroed table page at `level`; returns its slot.
  alloc(level: number): number {
    let slot: number;
    if (this.freeSlots.length > 0) slot = this.freeSlots.pop() as number;
    else {
      slot = this.next++;
      if (slot >= this.pfn.length) this.grow();
      if (slot % TABLES_PER_CHUNK === 0) this.chunks.push(new Float64Array(this.chunkEntries));
    }
    const pfn = this.phys.alloc(0);
    this.phys.flags[pfn] = PG_PAGETABLE;
    this.phys.aux[pfn] = slot;
    this.pfn[slot] = pfn;
    this.level[slot] = level;
    this.state[slot] = TBL_LIVE;
    // TypedArray.fill on a sub-range is ~10x slower than set() in V8 11.
    this.chunkOf(slot).set(this.zero, this.base(slot));
    this.live++;
    return slot;
  }

  // The table page goes back to the allocator (after any RCU delay).
  free(slot: number): void {
    const pfn = this.pfn[slot] as number;
    this.phys.aux[pfn] = -1;
    this.phys.folioPut(pfn);
    this.state[slot] = TBL_FREE;
    this.freeSlots.push(slot);
    this.live--;
  }

  // The chunk holding table `slot`, and where the table starts in it.
  chunkOf(slot: number): Float64Array {
    return this.chunks[(slot / TABLES_PER_CHUNK) | 0] as Float64Array;
  }
  base(slot: number): number {
    return (slot % TABLES_PER_CHUNK) * this.ptrs;
  }
  // Entry by global index.
  get(gi: number): number {
    const ce = this.chunkEntries;
    return (this.chunks[(gi / ce) | 0] as Float64Array)[gi % ce] as number;
  }
  set(gi: number, v: number): void {
    const ce = this.chunkEntries;
    (this.chunks[(gi / ce) | 0] as Float64Array)[gi % ce] = v;
  }

  slotOfPfn(pfn: number): number {
    return this.phys.aux[pfn] as number;
  }

  // True when all entries of the table are none.
  isEmpty(slot: number): boolean {
    const e = this.chunkOf(slot);
    const base = this.base(slot);
    for (let i = 0; i < this.ptrs; i++) if (e[base + i] !== 0) return false;
    return true;
  }

  static bytesPerEntry = 8;
}
