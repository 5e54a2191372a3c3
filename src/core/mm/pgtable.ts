// Page-table pages: storage for their entries and the mm's accounting of them.
// Models pagetable_alloc()/pagetable_free() and the ptdesc of a table page,
// plus mm_inc_nr_ptes()/mm_inc_nr_pmds()/mm_inc_nr_puds() (include/linux/mm.h)
// that feed VmPTE. An entry is named by its global index slot*ptrs + i.
// Entries live in chunks of TABLES_PER_CHUNK tables, so growing allocates a
// new chunk and never copies tables; hot loops take the chunk of a table once
// (chunkOf/base) and index it directly.
//
// Checked mode (checkAccess(), installed by the explorer when invariants are
// checked): kernel paths' accesses are checked against the table they meant
// (pt-out-of-bounds) and against the table's lifetime (pt-use-after-free).
// It swaps in instance methods, so the prototype's plain ones, which
// `ptlab run` uses, carry no test for it.

import { growTo } from "../growable.js";
import { giveArrays, takeArray } from "../pool.js";
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

export const TABLES_PER_CHUNK = 16;

// Who accesses tables, for checked mode (the explorer implements it).
export interface TableAccessCheck {
  // The table pointers the running kernel path obtained (slot -> the slot's
  // generation then); null when no kernel path runs (explorer checks, the
  // RCU agent): such accesses are not checked.
  held(): Map<number, number> | null;
  // Whether the slot is the top-level table of a live mm: a path reaches
  // that one through mm->pgd, never through a pointer it kept, so a
  // generation it held for the slot from an earlier use is not stale.
  isLiveRoot(slot: number): boolean;
  // A bad access by the running kernel path. True: it is reported and is not
  // performed (a load gives 0); it may also throw to stop the path. False:
  // the invariant is ignored, the access goes ahead.
  bad(invariant: "pt-out-of-bounds" | "pt-use-after-free", message: string): boolean;
}

export class TableStore {
  readonly ptrs: number;
  private readonly zero: Float64Array;
  private readonly chunkEntries: number;
  chunks: Float64Array[] = [];
  pfn: Int32Array; // slot -> PFN of the table page
  level: Uint8Array;
  state: Uint8Array;
  // Bumped at each alloc(): a slot whose generation moved since a path
  // obtained it holds another table now.
  gen: Uint32Array;
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
    this.pfn = takeArray(Int32Array, cap);
    this.level = takeArray(Uint8Array, cap);
    this.state = takeArray(Uint8Array, cap);
    this.gen = takeArray(Uint32Array, cap);
  }

  // The arrays go back to the pool (pool.ts): this store is not used again.
  release(): void {
    giveArrays(...this.chunks, this.pfn, this.level, this.state, this.gen);
    this.chunks = [];
  }

  private grow(): void {
    const cap = Math.ceil(this.pfn.length * 1.5);
    this.pfn = growTo(this.pfn, cap);
    this.level = growTo(this.level, cap);
    this.state = growTo(this.state, cap);
    this.gen = growTo(this.gen, cap);
  }

  // A zeroed table page at `level`; returns its slot.
  alloc(level: number): number {
    let slot: number;
    if (this.freeSlots.length > 0) slot = this.freeSlots.pop() as number;
    else {
      slot = this.next++;
      if (slot >= this.pfn.length) this.grow();
      if (slot % TABLES_PER_CHUNK === 0) this.chunks.push(takeArray(Float64Array, this.chunkEntries));
    }
    const pfn = this.phys.alloc(0);
    this.phys.flags[pfn] = PG_PAGETABLE;
    this.phys.aux[pfn] = slot;
    this.pfn[slot] = pfn;
    this.level[slot] = level;
    this.state[slot] = TBL_LIVE;
    this.gen[slot] = (this.gen[slot] as number) + 1;
    // TypedArray.fill on a sub-range is ~10x slower than set() in V8 11.
    (this.chunks[(slot / TABLES_PER_CHUNK) | 0] as Float64Array).set(this.zero, this.base(slot));
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

  // The raw chunk behind a checked view (identity outside checked mode).
  unchecked(e: Float64Array): Float64Array {
    return e;
  }

  // Checked mode. A kernel path obtains a table pointer by reading it from
  // the parent entry (slotOfPfn()), by allocating the table, or by mapping a
  // table it reached otherwise (chunkOf() of mm->pgd); `c.held()` keeps the
  // slot's generation at that moment. Every later load or store of an entry
  // must then fall inside that table, [0, PTRS_PER_TABLE) (a chunk view
  // knows its table; an entry named by global index must lie in some
  // allocated table), and the slot must still hold it: not free, and not
  // reallocated since. A table unlinked or waiting for its RCU grace period
  // is still allocated, so reading it is no use-after-free (the grace
  // period, not this check, is what the explorer races against).
  checkAccess(c: TableAccessCheck): void {
    const P = TableStore.prototype;
    const ptrs = this.ptrs;
    const raws = new WeakMap<object, Float64Array>();
    const holds = (held: Map<number, number>, slot: number): number => {
      let g = held.get(slot);
      // A live mm's PGD is reached afresh through mm->pgd (truncate's second
      // unmap pass walks a child fork just made, whose PGD took the slot of
      // a table the first pass had walked and mremap freed). A stale pointer
      // to a dead mm's PGD reused as another's is not caught (limit).
      if (g === undefined || (g !== this.gen[slot] && c.isLiveRoot(slot))) {
        g = this.gen[slot] as number;
        held.set(slot, g);
      }
      return g;
    };
    const table = (slot: number) => `${LEVEL_NAMES[this.level[slot] as number] ?? "?"} table in slot ${slot} (pfn ${this.pfn[slot]})`;
    // True when entry `idx` of `slot`, held at generation g, may be accessed.
    const alive = (slot: number, g: number, idx: number, verb: string): boolean => {
      if (this.state[slot] === TBL_FREE) return !c.bad("pt-use-after-free", `${verb} entry ${idx} of the ${table(slot)}, which is free`);
      if (this.gen[slot] !== g)
        return !c.bad("pt-use-after-free", `${verb} entry ${idx} of the ${table(slot)}, which was freed and reallocated since the path obtained its pointer`);
      return true;
    };
    // An entry by global index: some allocated table's.
    const global = (gi: number, verb: string): boolean => {
      const held = c.held();
      if (held === null) return true;
      if (!(Number.isInteger(gi) && gi >= 0 && gi < this.next * ptrs))
        return !c.bad("pt-out-of-bounds", `${verb} entry ${gi} by global index, which lies in no table (${this.next} slots of ${ptrs} entries)`);
      const slot = Math.floor(gi / ptrs);
      return alive(slot, holds(held, slot), gi - slot * ptrs, verb);
    };
    this.get = (gi) => (global(gi, "loads") ? P.get.call(this, gi) : 0);
    this.set = (gi, v) => {
      if (global(gi, "stores")) P.set.call(this, gi, v);
    };
    this.slotOfPfn = (pfn) => {
      const slot = P.slotOfPfn.call(this, pfn);
      const held = c.held();
      if (held !== null && slot >= 0) held.set(slot, this.gen[slot] as number);
      return slot;
    };
    this.alloc = (level) => {
      const slot = P.alloc.call(this, level);
      c.held()?.set(slot, this.gen[slot] as number);
      return slot;
    };
    this.chunkOf = (slot) => {
      const held = c.held();
      if (held === null) return P.chunkOf.call(this, slot);
      if (!(Number.isInteger(slot) && slot >= 0 && slot < this.next)) {
        if (!c.bad("pt-out-of-bounds", `maps table slot ${slot}, which is no table`)) return P.chunkOf.call(this, slot);
        return new Float64Array(this.chunkEntries);
      }
      const raw = P.chunkOf.call(this, slot);
      const g = holds(held, slot);
      const base = this.base(slot);
      const end = base + ptrs;
      // Index keys reach a proxy as strings.
      const ok = (i: number, k: string, verb: string): boolean => {
        if (c.held() === null) return true;
        if (!(i >= base && i < end && Number.isInteger(i)))
          return !c.bad("pt-out-of-bounds", `${verb} index ${Number.isInteger(i) ? i - base : k} of the ${table(slot)}, outside [0, ${ptrs})`);
        if (this.state[slot] === TBL_FREE || this.gen[slot] !== g) return alive(slot, g, i - base, verb);
        return true;
      };
      const view = new Proxy(raw, {
        get(t, k) {
          if (typeof k === "string") {
            const i = +k;
            if (!Number.isNaN(i)) return ok(i, k, "loads") ? t[i] : 0;
          }
          const v = Reflect.get(t, k);
          return typeof v === "function" ? v.bind(t) : v;
        },
        set(t, k, v) {
          if (typeof k === "string") {
            const i = +k;
            if (!Number.isNaN(i)) {
              if (ok(i, k, "stores")) t[i] = v;
              return true;
            }
          }
          return Reflect.set(t, k, v);
        },
      });
      raws.set(view, raw);
      return view;
    };
    this.unchecked = (e) => raws.get(e) ?? e;
  }

  static bytesPerEntry = 8;
}

const LEVEL_NAMES = ["PTE", "PMD", "PUD", "P4D", "PGD"];
