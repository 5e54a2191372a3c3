// Invariant checks run between steps (the kernel's own debug checks in
// spirit: mm/page_table_check.c, check_mm() in kernel/fork.c, and the TLB
// rules of the architecture). Each returns violations; nothing throws.

import { TLB_D, TLB_W, type Tlb } from "./hw/tlb.js";
import { EV_FRAMES_FREED, EV_PINS_RELEASED, type ModelEvent, type ModelSink } from "./events.js";
import type { Machine, Violation } from "./machine.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_FREE, PG_PAGETABLE, PG_SHMEM, PG_SWAPBACKED, PG_ZERO } from "./mm/physmem.js";
import { type FileObj, VM_SHARED, VM_WRITE, type Vma } from "./mm/types.js";
import { LVL_PUD, TBL_LIVE, TBL_UNLINKED } from "./mm/pgtable.js";
import type { Mm } from "./mm/types.js";
import type { GupPin } from "./mm/gup.js";
import { idxAt, sizeName } from "./geometry.js";

const hex = (a: number) => `0x${a.toString(16)}`;

// The leaf entry mapping vpn in mm: [value, level] or null.
function softWalk(m: Machine, mm: Mm, vpn: number): [number, number] | null {
  const A = m.arch;
  const T = m.tables;
  let slot = mm.pgd;
  for (let level = A.levels - 1; level >= 0; level--) {
    const v = T.chunkOf(slot)[T.base(slot) + idxAt(m.geo, vpn, level)] as number;
    if (v === 0) return null;
    if (level > 0 && A.entryIsTable(v)) {
      slot = T.slotOfPfn(A.ptePfn(v));
      continue;
    }
    return [v, level];
  }
  return null;
}

// softWalk() for checkTlbs(), without the allocation, recording the path:
// per level visited, the table slot, the index in it, the entry and (for a
// table entry) the pfn it points to. Returns the leaf entry or 0 (none);
// walkLevel is the leaf's level.
const MAX_LEVELS = 5;
const pathSlot = new Int32Array(MAX_LEVELS);
const pathIdx = new Int32Array(MAX_LEVELS);
const pathV = new Float64Array(MAX_LEVELS);
const pathChild = new Float64Array(MAX_LEVELS);
let pathLen = 0;
let walkLevel = 0;
function tlbWalk(m: Machine, mm: Mm, vpn: number): number {
  const A = m.arch;
  const T = m.tables;
  let slot = mm.pgd;
  let d = 0;
  for (let level = A.levels - 1; level >= 0; level--) {
    const idx = idxAt(m.geo, vpn, level);
    const v = T.chunkOf(slot)[T.base(slot) + idx] as number;
    pathSlot[d] = slot;
    pathIdx[d] = idx;
    pathV[d] = v;
    pathLen = ++d;
    if (v === 0) return 0;
    if (level > 0 && A.entryIsTable(v)) {
      const child = A.ptePfn(v);
      pathChild[d - 1] = child;
      slot = T.slotOfPfn(child);
      continue;
    }
    walkLevel = level;
    return v;
  }
  return 0;
}

// Memo of checkTlbs() for a caller that checks the same machine after every
// step (the replay): per base-page TLB entry that passed, every input the
// check read (the entry, the mm its ASID reaches, whether the page is free,
// the walk's path: tables, entries and the table each entry points to). An
// entry whose inputs all compare equal passes again and is not rewalked; any
// difference (a refill, a PTE store or hardware A/D update on the path, a
// table freed or reused, the page freed) rechecks it in full. Entries whose
// walks reach the same leaf table share the path above it (a TlbRegion),
// compared once per call.
export class TlbCache {
  machine: Machine | null = null; // the one it was filled from
  cpus: TlbMemo[] = [];
  stamp = 0; // checkTlbs() calls
  // By top-level table slot, then leaf table level and the VA it covers.
  regions = new Map<number, Map<number, TlbRegion>>();
  reset(m: Machine): void {
    this.machine = m;
    this.cpus = [];
    this.regions = new Map();
  }
}

// The part of a walk above its leaf table: per level, the table slot, the
// index, the entry and the pfn it points to; then the leaf table's slot.
class TlbRegion {
  at = 0; // stamp of the last comparison
  ok = false; // its result
  // Where the leaf table's entries are, as of that stamp.
  leaves: Float64Array = new Float64Array(0);
  leafBase = 0;
  constructor(
    readonly slot: Int32Array,
    readonly idx: Int32Array,
    readonly v: Float64Array,
    readonly child: Float64Array,
    readonly leafSlot: number,
  ) {}
  holds(m: Machine, stamp: number): boolean {
    if (this.at === stamp) return this.ok;
    const T = m.tables;
    const aux = m.phys.aux;
    let ok = true;
    for (let k = 0; k < this.slot.length && ok; k++) {
      const s = this.slot[k] as number;
      ok = T.chunkOf(s)[T.base(s) + (this.idx[k] as number)] === this.v[k];
      ok &&= aux[this.child[k] as number] === (k + 1 < this.slot.length ? this.slot[k + 1] : this.leafSlot);
    }
    this.at = stamp;
    this.ok = ok;
    this.leaves = T.chunkOf(this.leafSlot);
    this.leafBase = T.base(this.leafSlot);
    return ok;
  }
  samePath(d: number): boolean {
    if (this.slot.length !== d - 1 || this.leafSlot !== pathSlot[d - 1]) return false;
    for (let k = 0; k < d - 1; k++)
      if (this.slot[k] !== pathSlot[k] || this.idx[k] !== pathIdx[k] || this.v[k] !== pathV[k] || this.child[k] !== pathChild[k]) return false;
    return true;
  }
}

class TlbMemo {
  key: Float64Array; // of the entry seen last at each index
  asid: Int32Array; // of key, whether or not the entry passed
  ok: Uint8Array;
  pfn: Float64Array;
  perm: Uint8Array;
  mm: (Mm | null)[];
  region: (TlbRegion | null)[];
  leafIdx: Int32Array;
  leafV: Float64Array;
  // asidReachable() per ASID, computed once per call (reachAt: its stamp).
  reach: (Mm | null)[];
  reachAt: Int32Array;
  constructor(
    readonly tlb: Tlb,
    n: number,
  ) {
    this.reach = new Array(tlb.nrAsids).fill(null);
    this.reachAt = new Int32Array(tlb.nrAsids);
    this.key = new Float64Array(n);
    this.asid = new Int32Array(n);
    this.ok = new Uint8Array(n);
    this.pfn = new Float64Array(n);
    this.perm = new Uint8Array(n);
    this.mm = new Array(n).fill(null);
    this.region = new Array(n).fill(null);
    this.leafIdx = new Int32Array(n);
    this.leafV = new Float64Array(n);
  }
}

// Remembers that entry i passed with the walk tlbWalk() just made.
function memoRecord(m: Machine, cache: TlbCache, c: TlbMemo, i: number, mm: Mm, vpn: number, pfn: number, perm: number): void {
  const d = pathLen;
  let byPgd = cache.regions.get(mm.pgd);
  if (byPgd === undefined) {
    byPgd = new Map();
    cache.regions.set(mm.pgd, byPgd);
  }
  const leafLevel = m.arch.levels - d;
  const key = Math.floor(vpn / (m.geo.span[leafLevel + 1] as number)) * 8 + leafLevel;
  let r = byPgd.get(key);
  if (r === undefined || !r.samePath(d)) {
    r = new TlbRegion(pathSlot.slice(0, d - 1), pathIdx.slice(0, d - 1), pathV.slice(0, d - 1), pathChild.slice(0, d - 1), pathSlot[d - 1] as number);
    byPgd.set(key, r);
  }
  c.ok[i] = 1;
  c.mm[i] = mm;
  c.pfn[i] = pfn;
  c.perm[i] = perm;
  c.region[i] = r;
  c.leafIdx[i] = pathIdx[d - 1] as number;
  c.leafV[i] = pathV[d - 1] as number;
}

// One TLB entry of cpu: page number (in units of its size), output pfn,
// permissions, pages covered (1, a contiguous range, or a block). Returns
// whether it passed.
function checkTlbEntry(m: Machine, cpu: number, mm: Mm, vpn0: number, pfn: number, perm: number, pages: number, what: string, out: Violation[]): boolean {
  const A = m.arch;
  const G = m.geo;
  const vpn = vpn0 * pages;
  const addr = vpn * G.pageSize;
  if (m.phys.isFree(pfn)) {
    out.push({ invariant: "tlb-freed-page", cpu, addr, message: `CPU${cpu} ${what} TLB entry for ${hex(addr)} maps freed pfn ${pfn}` });
    return false;
  }
  const block = isBlock(m, pages);
  // Pages to compare: the entry's first page (a base page or a block
  // matched as a whole), else every page of the contiguous range.
  const n = block ? 1 : pages;
  let lp = TLB_W;
  let dirtyAny = false;
  for (let k = 0; k < n; k++) {
    const leaf = tlbWalk(m, mm, vpn + k);
    let ok = leaf !== 0 && A.leafPerm(leaf) >= 0;
    if (ok) {
      const lpfn = A.ptePfn(leaf);
      const level = walkLevel;
      if (!block) ok = (level === 0 ? lpfn : lpfn + ((vpn + k) % (G.span[level] as number))) === pfn + k;
      else if (pages > 1) ok = level === 1 && lpfn === pfn;
      else ok = (level === 0 ? lpfn : lpfn + (vpn % G.ptrs)) === pfn;
    }
    if (!ok) {
      const now = leaf === 0 ? "none" : A.describeEntry(leaf);
      const at = hex((vpn + k) * G.pageSize);
      out.push({
        invariant: "tlb-stale-mapping",
        cpu,
        addr,
        message: `CPU${cpu} ${what} TLB entry ${hex(addr)} -> pfn ${pfn} but the page tables say ${now}${n > 1 ? ` at ${at}` : ""}`,
      });
      return false;
    }
    const p = A.leafPerm(leaf);
    if ((p & TLB_W) === 0) lp = 0;
    if ((p & TLB_D) !== 0) dirtyAny = true;
  }
  if ((perm & TLB_W) !== 0 && lp === 0) {
    out.push({
      invariant: "tlb-stale-write",
      cpu,
      addr,
      message: `CPU${cpu} ${what} TLB entry ${hex(addr)} grants write; the PTE is read-only (${A.describeEntry((softWalk(m, mm, vpn) as [number, number])[0])})`,
    });
    return false;
  }
  if ((perm & TLB_D) !== 0 && !dirtyAny) {
    out.push({
      invariant: "tlb-stale-dirty",
      cpu,
      addr,
      message: `CPU${cpu} ${what} TLB entry ${hex(addr)} is dirty but the PTE is clean: a write through it would be lost`,
    });
    return false;
  }
  return true;
}

// checkTlbs() for cpu's base-page entries, skipping those whose inputs are
// as when they last passed.
function checkBaseTlbCached(
  m: Machine,
  c: number,
  memo: TlbMemo,
  cache: TlbCache,
  stamp: number,
  only: Mm | undefined,
  baseName: string,
  out: Violation[],
): void {
  const A = m.arch;
  const t = memo.tlb;
  const tag = t.tag;
  const tpfn = t.pfn;
  const tperm = t.perm;
  const flags = m.phys.flags;
  for (let i = 0; i < tag.length; i++) {
    while (i < tag.length && tag[i] === 0) i++;
    if (i === tag.length) break;
    const key = tag[i] as number;
    if (memo.key[i] !== key) {
      memo.key[i] = key;
      memo.asid[i] = t.asidOfKey(key);
      memo.ok[i] = 0;
    }
    const asid = memo.asid[i] as number;
    let mm: Mm | null;
    if (memo.reachAt[asid] === stamp) mm = memo.reach[asid] as Mm | null;
    else {
      mm = A.asidReachable(m, c, asid);
      memo.reach[asid] = mm;
      memo.reachAt[asid] = stamp;
    }
    if (mm === null || (only !== undefined && mm !== only)) continue;
    const pfn = tpfn[i] as number;
    const perm = tperm[i] as number;
    if (memo.ok[i] === 1 && memo.mm[i] === mm && memo.pfn[i] === pfn && memo.perm[i] === perm && ((flags[pfn] as number) & PG_FREE) === 0) {
      const r = memo.region[i] as TlbRegion;
      if ((r.slot.length > 0 ? r.slot[0] : r.leafSlot) === mm.pgd && r.holds(m, stamp) && r.leaves[r.leafBase + (memo.leafIdx[i] as number)] === memo.leafV[i])
        continue;
    }
    const vpn = t.vpnOfKey(key);
    if (checkTlbEntry(m, c, mm, vpn, pfn, perm, 1, baseName, out)) memoRecord(m, cache, memo, i, mm, vpn, pfn, perm);
    else memo.ok[i] = 0;
  }
}

// After a syscall returns: no reachable TLB entry maps a freed page, maps
// what the page tables no longer map, grants write the tables no longer
// grant, or claims dirty where the PTE is clean; no walk cache points to a
// freed table. A block entry (2M/1G) must match a leaf of its size; an arm64
// contiguous entry (64K) must match the PTE of every page it covers (write
// granted by all of them; dirty if any is: hardware may have updated any one
// entry of the block).
// only: check just the entries that translate for this mm. cache: skip the
// base-page entries whose inputs did not change since they last passed.
export function checkTlbs(m: Machine, only?: Mm, cache?: TlbCache): Violation[] {
  const out: Violation[] = [];
  const A = m.arch;
  const phys = m.phys;
  if (cache !== undefined && cache.machine !== m) cache.reset(m);
  const baseName = sizeName(m.geo.pageShift); // label of base-page entries
  const stamp = cache === undefined ? 0 : ++cache.stamp;
  for (const cpu of m.cpus) {
    const t = cpu.tlb;
    const c = cpu.id;
    if (cache === undefined) {
      for (let i = 0; i < t.tag.length; i++) {
        const key = t.tag[i] as number;
        if (key === 0) continue;
        const mm = A.asidReachable(m, c, t.asidOfKey(key));
        if (mm === null || (only !== undefined && mm !== only)) continue;
        checkTlbEntry(m, c, mm, t.vpnOfKey(key), t.pfn[i] as number, t.perm[i] as number, 1, baseName, out);
      }
    } else {
      let memo = cache.cpus[c];
      if (memo === undefined || memo.tlb !== t) memo = cache.cpus[c] = new TlbMemo(t, t.tag.length);
      checkBaseTlbCached(m, c, memo, cache, stamp, only, baseName, out);
    }
    for (let i = 0; i < t.htag.length; i++) {
      const key = t.htag[i] as number;
      if (key === 0) continue;
      const mm = A.asidReachable(m, c, t.asidOfKey(key));
      if (mm === null || (only !== undefined && mm !== only)) continue;
      const shift = t.hshift[i] as number;
      checkTlbEntry(m, c, mm, t.vpnOfKey(key), t.hpfn[i] as number, t.hperm[i] as number, 2 ** (shift - m.geo.pageShift), sizeName(shift), out);
    }
    for (let i = 0; i < t.ptag.length; i++) {
      const key = t.ptag[i] as number;
      if (key === 0) continue;
      const reach = A.asidReachable(m, c, t.asidOfKey(key), true);
      if (reach === null || (only !== undefined && reach !== only)) continue;
      const pfn = t.ptbl[i] as number;
      const f = phys.flags[pfn] as number;
      const slot = phys.aux[pfn] as number;
      if ((f & PG_FREE) !== 0 || (f & PG_PAGETABLE) === 0 || slot < 0 || m.tables.state[slot] !== TBL_LIVE) {
        const gathered = slot >= 0 && m.tables.state[slot] === TBL_UNLINKED;
        out.push({
          invariant: "walk-cache-freed-table",
          cpu: c,
          message: `CPU${c} paging-structure cache (level ${t.plevel[i]}) points to ${gathered ? "unlinked" : "freed"} table pfn ${pfn}`,
          ...(gathered ? { gathered: slot } : {}),
        });
      }
    }
  }
  return out;
}

// Per-frame scratch counts, reused across calls (the replay checks after
// every syscall) and zeroed up to the frames in use.
let scratchBufs = { mapcount: new Int32Array(0), entire: new Int32Array(0), pageCache: new Uint8Array(0) };
function scratch(cap: number): typeof scratchBufs {
  if (scratchBufs.mapcount.length < cap) {
    const n = Math.ceil(cap * 1.5);
    scratchBufs = { mapcount: new Int32Array(n), entire: new Int32Array(n), pageCache: new Uint8Array(n) };
  } else {
    scratchBufs.mapcount.fill(0, 0, cap);
    scratchBufs.entire.fill(0, 0, cap);
    scratchBufs.pageCache.fill(0, 0, cap);
  }
  return scratchBufs;
}

// Walks mm's page tables: onTable(child, vpn, level) says whether to
// descend into the table an entry at `level` points to; onLeaf gets every
// other non-zero entry. (checkAccounting() keeps its own loop: the replay
// runs it after every event, and the callbacks cost it about 25%.)
function walkTables(
  m: Machine,
  mm: Mm,
  onTable: (child: number, vpn: number, level: number) => boolean,
  onLeaf: (v: number, vpn: number, level: number) => void,
): void {
  forEachLeaf(m, mm, 0, m.geo.span[m.arch.levels] as number, onTable, (v, vpn, level) => {
    onLeaf(v, vpn, level);
    return false;
  });
}

// The PTE tables of mm's page-table tree (slots).
export function pteTableSlots(m: Machine, mm: Mm): number[] {
  const out: number[] = [];
  walkTables(
    m,
    mm,
    (child, _vpn, level) => {
      if (level === 1) out.push(child);
      return level > 1;
    },
    () => {},
  );
  return out;
}

// One PTE table as checkAccounting() last scanned it, with every input the
// scan read: the PTRS_PER_PTE entries, and per present entry the pfn, its
// folio head and the struct page bits read (PAGE_BITS of the page, its
// order, HEAD_BITS of the head). Equal inputs give an equal result, so a
// table whose inputs all compare equal is not rescanned.
const PAGE_BITS = PG_FREE | PG_ZERO | PG_ANON_EXCLUSIVE;
const HEAD_BITS = PG_ANON | PG_SHMEM;
interface PteScan {
  slot: number;
  entries: Float64Array;
  leaves: Int32Array; // pfn, head, packed struct page bits; per present entry
  anon: number;
  file: number;
  shmem: number;
  swap: number;
  // No violation and no VMA read (writable-anon-not-exclusive candidates):
  // the result depends on the inputs above alone.
  reusable: boolean;
  mult: number; // visits counted in AccountingCache.mapcount
  seen: number; // visits in the check under way
}

// Memo of checkAccounting() for a caller that checks the same machine after
// every step (the replay). Upper-level tables are scanned in full every time;
// PTE tables are rescanned only when an input changed. mapcount holds the sum
// of the PTE mapcount contributions of the tables the last check visited.
export class AccountingCache {
  machine: Machine | null = null; // the one it was filled from
  pte: (PteScan | undefined)[] = [];
  mapcount = new Int32Array(0);
  included: PteScan[] = [];
  visited: PteScan[] = [];
  reset(m: Machine): void {
    this.machine = m;
    this.pte = [];
    this.mapcount = new Int32Array(0);
    this.included = [];
    this.visited = [];
  }
}

// A writable PTE at addr maps anon page pfn that is not AnonExclusive: a
// violation in a private VMA (a shared anon mapping is shmem, never anon).
function notExclusive(mm: Mm, addr: number, pfn: number, out: Violation[]): void {
  const vma = mm.findVma(addr);
  if (vma !== null && !vma.isShared)
    out.push({
      invariant: "writable-anon-not-exclusive",
      addr,
      message: `mm${mm.id}: writable PTE at ${hex(addr)} maps anon page pfn ${pfn} that is not AnonExclusive`,
    });
}

let leafBuf = new Int32Array(512 * 3);

// The level-0 part of checkAccounting()'s walk, for one PTE table; the same
// tests in the same order (test/check-cache.test.ts compares the two).
function scanPte(m: Machine, mm: Mm, slot: number, base: number, out: Violation[], swapSlots: Int32Array | null): PteScan {
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const flags = phys.flags;
  const order = phys.order;
  const cb = T.base(slot);
  const ptrs = T.ptrs;
  const PS = m.geo.pageSize;
  if (leafBuf.length < ptrs * 3) leafBuf = new Int32Array(ptrs * 3);
  const entries = T.chunkOf(slot).slice(cb, cb + ptrs);
  let n = 0;
  let anon = 0;
  let file = 0;
  let shmem = 0;
  let reusable = true;
  let swap = 0;
  for (let i = 0; i < ptrs; i++) {
    const v = entries[i] as number;
    if (v === 0) continue;
    if (!A.ptePresent(v)) {
      if (A.isMigrationPte(v)) {
        const hf = migrationEntry(m, mm, v, (base + i) * PS, out);
        if (hf & PG_ANON) anon++;
        else if (hf & PG_SHMEM) shmem++;
        else file++;
        reusable = false;
      } else if (A.isSwapPte(v)) {
        swap++;
        countSwapEntry(m, mm, v, (base + i) * PS, swapSlots, out);
        reusable = false; // the slot counts are rebuilt every time
      }
      continue;
    }
    const vpn = base + i;
    const pfn = A.ptePfn(v);
    const f = flags[pfn] as number;
    if (f & PG_FREE) {
      out.push({ invariant: "pte-maps-freed-page", addr: vpn * PS, message: `mm${mm.id}: ${hex(vpn * PS)} maps freed pfn ${pfn}` });
      reusable = false;
      continue;
    }
    const head = phys.folioHead(pfn);
    const hf = flags[head] as number;
    if (pfn <= 0x7fffffff) {
      leafBuf[n] = pfn;
      leafBuf[n + 1] = head;
      leafBuf[n + 2] = (f & PAGE_BITS) | ((order[pfn] as number) << 8) | ((hf & HEAD_BITS) << 16);
      n += 3;
    } else reusable = false; // beyond any frame array: no mapcount to count
    if (f & PG_ZERO) continue;
    if (hf & PG_ANON) anon++;
    else if (hf & PG_SHMEM) shmem++;
    else file++;
    if (A.pteWrite(v) && hf & PG_ANON && (f & PG_ANON_EXCLUSIVE) === 0) {
      reusable = false;
      notExclusive(mm, vpn * PS, pfn, out);
    }
  }
  return { slot, entries, leaves: leafBuf.slice(0, n), anon, file, shmem, swap, reusable, mult: 0, seen: 0 };
}

// A swap entry in mm at addr: its slot must be allocated; it is counted for
// the per-slot comparison with the device's counts.
function countSwapEntry(m: Machine, mm: Mm, v: number, addr: number, swapSlots: Int32Array | null, out: Violation[]): void {
  const slot = m.arch.swpOffset(v);
  const swap = m.swap;
  if (swap === null || swapSlots === null || slot < 1 || slot > swap.pages || !swap.allocated(slot)) {
    out.push({ invariant: "swap-entry-freed-slot", addr, message: `mm${mm.id}: ${hex(addr)} holds a swap entry for slot ${slot}, which is not allocated` });
    return;
  }
  swapSlots[slot] = (swapSlots[slot] as number) + 1;
}

// A migration entry (PTE or PMD) in mm at addr: it counts in RSS as the
// folio it names, which must be under migration (no migration entry
// outlives its migration). Returns the folio's head flags.
function migrationEntry(m: Machine, mm: Mm, v: number, addr: number, out: Violation[], what = "a migration entry"): number {
  const pfn = m.arch.migrationPfn(v);
  const head = m.phys.folioHead(pfn);
  if (!m.migrating.has(head))
    out.push({
      invariant: "migration-entry-stale",
      addr,
      message: `mm${mm.id}: ${hex(addr)} holds ${what} for pfn ${pfn}, which is not being migrated`,
    });
  return m.phys.flags[head] as number;
}

// Does the PTE table at slot still hold what s was computed from?
function pteUnchanged(m: Machine, s: PteScan, slot: number): boolean {
  if (!s.reusable) return false;
  const ch = m.tables.chunkOf(slot);
  const cb = m.tables.base(slot);
  const e = s.entries;
  for (let i = 0; i < e.length; i++) if (ch[cb + i] !== e[i]) return false;
  const flags = m.phys.flags;
  const order = m.phys.order;
  const l = s.leaves;
  for (let k = 0; k < l.length; k += 3) {
    const pfn = l[k] as number;
    const packed = ((flags[pfn] as number) & PAGE_BITS) | ((order[pfn] as number) << 8) | (((flags[l[k + 1] as number] as number) & HEAD_BITS) << 16);
    if (packed !== l[k + 2]) return false;
  }
  return true;
}

function addMapcounts(mapcount: Int32Array, s: PteScan, d: number): void {
  const l = s.leaves;
  const n = mapcount.length;
  for (let k = 0; k < l.length; k += 3) {
    const pfn = l[k] as number;
    if (((l[k + 2] as number) & PG_ZERO) === 0 && pfn < n) mapcount[pfn] = (mapcount[pfn] as number) + d;
  }
}

// After a cached walk: mapcount becomes the sum over this walk's PTE table
// visits; scans not visited are dropped.
function settleCache(c: AccountingCache, cap: number): void {
  for (const s of c.included) {
    if (s.seen !== 0) continue;
    addMapcounts(c.mapcount, s, -s.mult);
    s.mult = 0;
    if (c.pte[s.slot] === s) c.pte[s.slot] = undefined;
  }
  for (const s of c.visited) {
    if (s.seen !== s.mult) addMapcounts(c.mapcount, s, s.seen - s.mult);
    s.mult = s.seen;
    s.seen = 0;
  }
  c.included = c.visited;
  c.visited = [];
  // Frames beyond mapcount's length were never counted: rebuild it larger.
  if (c.mapcount.length < cap) {
    c.mapcount = new Int32Array(Math.ceil(cap * 1.5));
    for (const s of c.included) addMapcounts(c.mapcount, s, s.mult);
  }
}

// State of checkAccounting()'s walk of one mm (a plain function over this
// rather than a closure per mm: V8 kept reoptimising the closures).
class AcctWalk {
  mm: Mm | null = null;
  tables = 0;
  anon = 0;
  file = 0;
  shmem = 0;
  thp = 0;
  swap = 0;
  constructor(
    readonly m: Machine,
    readonly out: Violation[],
    readonly cache: AccountingCache | undefined,
    readonly mapcount: Int32Array,
    readonly entire: Int32Array,
    readonly swapSlots: Int32Array | null,
  ) {}
}

function acctVisit(w: AcctWalk, slot: number, level: number, base: number): void {
  const m = w.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const mm = w.mm as Mm;
  const out = w.out;
  const cache = w.cache;
  const ch = T.chunkOf(slot);
  const cb = T.base(slot);
  const G = m.geo;
  const PS = G.pageSize;
  const ptrs = G.ptrs;
  const span = G.span[level] as number;
  for (let i = 0; i < ptrs; i++) {
    // Most entries are none: skip them in a loop of their own (V8 keeps it tight).
    while (i < ptrs && ch[cb + i] === 0) i++;
    if (i === ptrs) break;
    const v = ch[cb + i] as number;
    const vpn = base + i * span;
    if (level > 0 && A.entryIsTable(v)) {
      const child = T.slotOfPfn(A.ptePfn(v));
      if (T.state[child] !== TBL_LIVE) {
        out.push({
          invariant: "table-not-live",
          addr: vpn * PS,
          message: `mm${mm.id}: entry at ${hex(vpn * PS)} level ${level} points to a table that is not live`,
        });
        continue;
      }
      if (level - 1 <= LVL_PUD) w.tables++;
      if (level === 1 && cache !== undefined) {
        let s = cache.pte[child];
        if (s === undefined || !pteUnchanged(m, s, child)) {
          s = scanPte(m, mm, child, vpn, out, w.swapSlots);
          cache.pte[child] = s;
        }
        if (s.seen++ === 0) cache.visited.push(s);
        w.anon += s.anon;
        w.file += s.file;
        w.shmem += s.shmem;
        w.swap += s.swap;
      } else acctVisit(w, child, level - 1, vpn);
      continue;
    }
    if (!A.ptePresent(v)) {
      if (level === 0 && A.isMigrationPte(v)) {
        const hf = migrationEntry(m, mm, v, vpn * PS, out);
        if (hf & PG_ANON) w.anon++;
        else if (hf & PG_SHMEM) w.shmem++;
        else w.file++;
      } else if (level === 1 && A.isMigrationPmd(v)) {
        // A PMD migration entry counts in RSS for the whole THP.
        const hf = migrationEntry(m, mm, v, vpn * PS, out, "a PMD migration entry");
        if (hf & PG_ANON) w.anon += span;
        else if (hf & PG_SHMEM) w.shmem += span;
        else w.file += span;
      } else if (level === 0 && A.isSwapPte(v)) {
        w.swap++;
        countSwapEntry(m, mm, v, vpn * PS, w.swapSlots, out);
      }
      continue;
    }
    const pfn = A.ptePfn(v);
    const f = phys.flags[pfn] as number;
    if (f & PG_FREE) {
      out.push({ invariant: "pte-maps-freed-page", addr: vpn * PS, message: `mm${mm.id}: ${hex(vpn * PS)} maps freed pfn ${pfn}` });
      continue;
    }
    if (f & PG_ZERO) continue;
    const head = phys.folioHead(pfn);
    const hf = phys.flags[head] as number;
    const n = level === 0 ? 1 : span;
    if (hf & PG_ANON) w.anon += n;
    else if (hf & PG_SHMEM) w.shmem += n;
    else w.file += n;
    if (level === 0) {
      w.mapcount[pfn] = (w.mapcount[pfn] as number) + 1;
      if (A.pteWrite(v) && hf & PG_ANON && (f & PG_ANON_EXCLUSIVE) === 0) {
        notExclusive(mm, vpn * PS, pfn, out);
      }
    } else {
      w.entire[head] = (w.entire[head] as number) + 1;
      if (hf & PG_ANON) w.thp++;
    }
  }
}

// PG_FREE in each byte of a word of flags.
const FREE4 = PG_FREE * 0x01010101;

// Page tables agree with the counters and the struct page state. cache:
// reuse the scans of PTE tables whose inputs did not change (same result,
// test/check-cache.test.ts).
export function checkAccounting(m: Machine, cache?: AccountingCache): Violation[] {
  const out: Violation[] = [];
  const phys = m.phys;
  const cap = phys.highWater;
  const { mapcount: scratchMap, entire, pageCache } = scratch(cap);
  if (cache !== undefined && cache.machine !== m) cache.reset(m);
  const swapDev = m.swap;
  const swapSlots = swapDev === null ? null : new Int32Array(swapDev.pages + 1);
  const w = new AcctWalk(m, out, cache, scratchMap, entire, swapSlots);
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    w.mm = mm;
    w.tables = mm.deposited.length;
    w.anon = w.file = w.shmem = w.thp = w.swap = 0;
    acctVisit(w, mm.pgd, m.arch.levels - 1, 0);
    const { tables, anon, file, shmem, thp, swap } = w;
    const name = `mm${mm.id}`;
    if (tables * m.geo.pageSize !== mm.pgtablesBytes)
      out.push({
        invariant: "pgtables-bytes",
        message: `${name}: pgtables_bytes ${mm.pgtablesBytes} but ${tables} PTE/PMD/PUD tables are live (${tables * m.geo.pageSize})`,
      });
    if (anon !== mm.rssAnon) out.push({ invariant: "rss-anon", message: `${name}: RssAnon counter ${mm.rssAnon} pages, page tables map ${anon}` });
    if (file !== mm.rssFile) out.push({ invariant: "rss-file", message: `${name}: RssFile counter ${mm.rssFile} pages, page tables map ${file}` });
    if (shmem !== mm.rssShmem) out.push({ invariant: "rss-shmem", message: `${name}: RssShmem counter ${mm.rssShmem} pages, page tables map ${shmem}` });
    if (thp !== mm.anonHugePmds)
      out.push({ invariant: "anon-huge", message: `${name}: AnonHugePages counter ${mm.anonHugePmds} PMDs, page tables map ${thp}` });
    if (swap !== mm.swapEnts) out.push({ invariant: "vmswap", message: `${name}: VmSwap counter ${mm.swapEnts} pages, page tables hold ${swap} swap entries` });
  }
  // Swap slots: each slot's count is the number of swap entries naming it.
  if (swapDev !== null && swapSlots !== null) {
    // Slots in the swap cache with no reference or pin are counted from
    // the cache; the others from the arrays (no Map lookup per slot: the
    // explorer runs this after steps, over 4096 slots for 16 MiB).
    let used = 0;
    // A swap-cache folio of 2^n pages holds the naturally aligned run of
    // 2^n slots from folio->swap: page k in slot first + k.
    for (const [s, head] of swapDev.cache) {
      if ((swapDev.count[s] as number) <= 0 && swapDev.pinned[s] !== 1 && s >= 1 && s <= swapDev.pages) used++;
      const first = swapDev.slotOf.get(head);
      const nr = 1 << (m.phys.order[head] as number);
      if (first === undefined || s < first || s >= first + nr || first % nr !== 0)
        out.push({ invariant: "swap-count", message: `swap slot ${s}: in the swap cache for folio ${head} (${nr} pages), whose run starts at slot ${first}` });
    }
    for (let s = 1; s <= swapDev.pages; s++) {
      if ((swapDev.count[s] as number) > 0 || swapDev.pinned[s] === 1) used++;
      if (swapSlots[s] !== swapDev.count[s]) {
        out.push({ invariant: "swap-count", message: `swap slot ${s}: count ${swapDev.count[s]} but ${swapSlots[s]} swap entries name it` });
        if (out.length > 50) break;
      }
    }
    if (used !== swapDev.used) out.push({ invariant: "swap-count", message: `swap device: ${swapDev.used} slots counted in use, ${used} allocated` });
  }
  let mapcount = scratchMap;
  if (cache !== undefined) {
    settleCache(cache, cap);
    mapcount = cache.mapcount;
  }
  // struct page state against the mappings found.
  for (const f of m.files.values()) for (const pfn of f.pages.values()) pageCache[pfn] = 1;
  // Free frames four at a time (most of the range, early in a replay).
  const fl = phys.flags;
  const words = fl.byteOffset % 4 === 0 ? new Uint32Array(fl.buffer, fl.byteOffset, fl.length >> 2) : new Uint32Array(0);
  for (let pfn = 1; pfn < cap; pfn++) {
    if ((pfn & 3) === 0) {
      let w = pfn >> 2;
      while (w < words.length && ((words[w] as number) & FREE4) === FREE4) w++;
      if (w << 2 > pfn) {
        pfn = w << 2;
        if (pfn >= cap) break;
      }
    }
    const f = phys.flags[pfn] as number;
    if (f & (PG_FREE | PG_PAGETABLE | PG_ZERO)) continue;
    if (phys.mapcount[pfn] !== mapcount[pfn]) {
      out.push({ invariant: "mapcount", message: `pfn ${pfn}: mapcount ${phys.mapcount[pfn]} but ${mapcount[pfn]} PTEs map it` });
      if (out.length > 50) break;
    }
    if (phys.folioHead(pfn) !== pfn) continue;
    if (phys.entireMapcount(pfn) !== entire[pfn])
      out.push({ invariant: "mapcount", message: `folio ${pfn}: entire mapcount ${phys.entireMapcount(pfn)} but ${entire[pfn]} PMDs map it` });
    // Mappings, the page cache or swap cache, and reclaim's isolation reference.
    let refs = (entire[pfn] as number) + (pageCache[pfn] as number) + (m.isolated.has(pfn) ? 1 : 0) + (phys.pins.size > 0 ? phys.pinRefs(pfn) : 0);
    if (swapDev?.slotOf.has(pfn)) refs++;
    const n = 1 << (phys.order[pfn] as number);
    for (let k = 0; k < n; k++) refs += mapcount[pfn + k] as number;
    if (phys.ref[pfn] !== refs) {
      out.push({ invariant: "refcount", message: `folio ${pfn}: refcount ${phys.ref[pfn]} but ${refs} mappings, page-cache references and pins` });
      if (out.length > 50) break;
    }
  }
  return out;
}

// pin-coherence: while a FOLL_LONGTERM pin holds a page and the process has
// not itself unmapped, remapped or discarded (MADV_DONTNEED/FREE) the
// address since, a present entry there maps the pinned page: the process
// and the device see one page (selftests/mm/cow.c: a R/W pin stays coherent
// with the mapping; a R/O pin references the page the process keeps seeing).
// Entries that are not present (swap, migration) are not judged here: a
// user access through them is, when it maps a page again.
export function checkPinCoherence(m: Machine, pins: Iterable<GupPin>, skip?: (mm: Mm) => boolean): Violation[] {
  const out: Violation[] = [];
  const A = m.arch;
  const G = m.geo;
  for (const pin of pins) {
    const mm = pin.mm;
    if (!mm.alive || skip?.(mm)) continue;
    for (let k = 0; k < pin.pfns.length; k++) {
      if (pin.live[k] !== 1) continue;
      const addr = pin.start + k * G.pageSize;
      const vpn = addr / G.pageSize;
      const leaf = softWalk(m, mm, vpn);
      if (leaf === null || !A.ptePresent(leaf[0]) || A.pteSpecial(leaf[0])) continue;
      const pfn = A.ptePfn(leaf[0]) + (leaf[1] === 0 ? 0 : vpn % G.span[leaf[1]]);
      const want = pin.pfns[k] as number;
      if (pfn !== want)
        out.push({
          invariant: "pin-coherence",
          addr,
          message: `mm${mm.id} maps pfn ${pfn} at ${hex(addr)}, but its ${pin.write ? "R/W" : "R/O"} longterm pin holds pfn ${want}: ${pin.write ? "DMA writes to the pinned page" : "the pinned page"} no longer ${pin.write ? "reach" : "show"} what the process sees`,
        });
    }
  }
  return out;
}

// A pinned anonymous page stays PageAnonExclusive until it is freed: GUP
// pins only exclusive anon pages (a R/O pin unshares first) and every path
// that would make one possibly shared (fork's folio_try_dup_anon_rmap_*(),
// try_to_unmap()'s and try_to_migrate()'s folio_try_share_anon_rmap_*())
// refuses a folio that may be pinned. sanity_check_pinned_pages() (mm/gup.c)
// asserts it at unpin_user_pages(); for a large folio the page or its
// head (PTE- or PMD-mapped) carries the bit. A pinned page that lost it is
// one the process may now share (fork) or copy away from on its next store.
export function checkPinnedExclusive(m: Machine, pins: Iterable<GupPin>, where: string): Violation[] {
  const out: Violation[] = [];
  const phys = m.phys;
  for (const pin of pins) {
    for (let k = 0; k < pin.pfns.length; k++) {
      const pfn = pin.pfns[k] as number;
      const head = phys.folioHead(pfn);
      const hf = phys.flags[head] as number;
      if ((hf & PG_ANON) === 0 || ((phys.flags[pfn] as number) & PG_ZERO) !== 0) continue;
      if (((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0 || (pfn !== head && (hf & PG_ANON_EXCLUSIVE) !== 0)) continue;
      out.push({
        invariant: "pin-coherence",
        addr: pin.start + k * m.geo.pageSize,
        message: `${where}: the anonymous page pfn ${pfn} that mm${pin.mm.id}'s ${pin.write ? "R/W" : "R/O"} longterm pin of ${hex(pin.start + k * m.geo.pageSize)} holds is no longer PageAnonExclusive (sanity_check_pinned_pages()): it may be shared, and a store would copy it away from the pin`,
      });
    }
  }
  return out;
}

// Both pin checks over the pins held now (after a sequential step, at the
// end of an execution).
export function checkPins(m: Machine, pins: Iterable<GupPin>, where: string): Violation[] {
  const held = [...pins];
  return [...checkPinCoherence(m, held), ...checkPinnedExclusive(m, held, where)];
}

// After every process exited: nothing but the zero pages and the page cache
// remains allocated, and no table is live.
export function checkLeaks(m: Machine): Violation[] {
  const out: Violation[] = [];
  let expected = 1; // the zero page
  if (m.phys.hugeZeroPfn >= 0) expected += m.geo.pmdNr;
  for (const f of m.files.values()) expected += f.pages.size;
  if (m.swap !== null) expected += m.swap.cache.size;
  if (m.tables.live !== 0) out.push({ invariant: "leak", message: `${m.tables.live} page-table pages still allocated after all processes exited` });
  else if (m.phys.allocated !== expected)
    out.push({
      invariant: "leak",
      message: `${m.phys.allocated} frames allocated after all processes exited, expected ${expected} (zero pages and page cache)`,
    });
  return out;
}

// Frames being freed, marked for checkFreedFrames() (cheaper than a Set per
// call; the scan of the TLBs is most of its cost either way).
let freedMark = new Uint8Array(0);
const isFreed = (pfn: number) => freedMark[pfn] === 1;

// A TLB entry of this many pages is a block (a base page, a PMD or PUD
// leaf), not an arm64 contiguous range.
function isBlock(m: Machine, pages: number): boolean {
  const s = m.geo.span;
  return pages === s[0] || pages === s[1] || pages === s[2];
}

// Does a large entry to pfn of `pages` pages map a freed frame? A block is
// checked by its first frame (blocks map whole folios); a contiguous range,
// which may span several folios, by each.
function hugeHitsFreed(m: Machine, pfn: number, pages: number): boolean {
  if (isBlock(m, pages)) return isFreed(pfn);
  for (let k = 0; k < pages; k++) if (isFreed(pfn + k)) return true;
  return false;
}

// At the moment frames go back to the allocator (pages after a gather's
// flush, tables after their RCU grace period): no reachable TLB entry maps
// them and no paging-structure cache points to them. The mmu_gather
// discipline: freeing only after a flush that covers them.
export function checkFreedFrames(m: Machine, heads: readonly number[], what: string): Violation[] {
  const out: Violation[] = [];
  if (heads.length === 0) return out;
  const phys = m.phys;
  let top = 0;
  for (const h of heads) top = Math.max(top, h + (1 << (phys.order[h] as number)));
  if (freedMark.length < top) freedMark = new Uint8Array(Math.ceil(top * 1.5));
  // (A loop: TypedArray.fill on a sub-range is slow in V8 11.)
  const mark = (v: number) => {
    for (const h of heads) for (let k = h, e = h + (1 << (phys.order[h] as number)); k < e; k++) freedMark[k] = v;
  };
  mark(1);
  // A check, not kernel code: the explorer need not track what it reads.
  m.il?.checking(true);
  try {
    scanFreed(m, what, out);
  } finally {
    mark(0);
    m.il?.checking(false);
  }
  return out;
}

function scanFreed(m: Machine, what: string, out: Violation[]): void {
  for (const cpu of m.cpus) {
    const t = cpu.tlb;
    const live = (key: number, walkCache = false) => m.arch.asidReachable(m, cpu.id, t.asidOfKey(key), walkCache) !== null;
    for (let i = 0; i < t.tag.length; i++) {
      const key = t.tag[i] as number;
      if (key !== 0 && isFreed(t.pfn[i] as number) && live(key))
        out.push({
          invariant: "freed-before-flush",
          cpu: cpu.id,
          addr: t.vpnOfKey(key) * m.geo.pageSize,
          message: `${what}: pfn ${t.pfn[i]} freed while CPU${cpu.id}'s TLB still maps it at ${hex(t.vpnOfKey(key) * m.geo.pageSize)}`,
        });
    }
    for (let i = 0; i < t.htag.length; i++) {
      const key = t.htag[i] as number;
      if (key !== 0 && hugeHitsFreed(m, t.hpfn[i] as number, t.hugePages(i)) && live(key))
        out.push({
          invariant: "freed-before-flush",
          cpu: cpu.id,
          message: `${what}: huge page at pfn ${t.hpfn[i]} freed while CPU${cpu.id}'s TLB still maps it`,
        });
    }
    for (let i = 0; i < t.ptag.length; i++) {
      const key = t.ptag[i] as number;
      if (key !== 0 && isFreed(t.ptbl[i] as number) && live(key, true))
        out.push({
          invariant: "freed-before-flush",
          cpu: cpu.id,
          message: `${what}: table pfn ${t.ptbl[i]} freed while CPU${cpu.id}'s paging-structure cache points to it`,
        });
    }
  }
}

// Invariant 1 as seen from the page tables, cheap enough to run after every
// explorer step: no present PTE in a live table maps a freed frame (pages are
// freed only after their entries are cleared and flushed). skip: tables whose
// PTE lock is held.
export function checkPtesMapLivePages(m: Machine, skip: (slot: number) => boolean): Violation[] {
  return scanPresentPtes(m, skip).freed;
}

// Frames mapped by a dirty PTE (or PMD) whose folio must not lose that
// information: file and shmem pages, and anon pages made lazily freeable by
// MADV_FREE (a write after it must keep the page). The explorer compares the
// set before and after each step: a frame that leaves it must have its folio
// marked dirty (invariant 4, "lost-dirty").
export function dirtyMappedFrames(m: Machine, skip: (slot: number) => boolean = () => false): Map<number, number> {
  return scanPresentPtes(m, skip).dirty;
}

// Both of the above in one pass over every present entry of every live PTE
// table not skipped (the explorer runs it after every step: it was two).
export function scanPresentPtes(m: Machine, skip: (slot: number) => boolean): { freed: Violation[]; dirty: Map<number, number> } {
  const freed: Violation[] = [];
  const dirty = new Map<number, number>(); // pfn -> table slot
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  for (let slot = 0; slot < T.state.length; slot++) {
    if (T.state[slot] !== TBL_LIVE || T.level[slot] !== 0 || skip(slot)) continue;
    const e = T.chunkOf(slot);
    const b = T.base(slot);
    for (let i = 0; i < T.ptrs; i++) {
      const v = e[b + i] as number;
      if (v === 0 || !A.ptePresent(v)) continue;
      const pfn = A.ptePfn(v);
      if (phys.isFree(pfn))
        freed.push({ invariant: "pte-maps-freed-page", message: `PTE table slot ${slot} entry ${i} maps freed pfn ${pfn} (${A.describeEntry(v)})` });
      if (!A.pteDirty(v)) continue;
      const f = phys.flags[phys.folioHead(pfn)] as number;
      if (f & (PG_FREE | PG_ZERO)) continue;
      if ((f & PG_ANON) === 0 || (f & PG_SWAPBACKED) === 0) dirty.set(pfn, slot);
    }
  }
  return { freed, dirty };
}

// Every non-zero leaf entry mapping a page of [lo, hi) in mm's tables, in
// address order: a PTE with its page, a huge leaf once with the first page
// it maps. Each table on the way is visited once (not a walk from the root
// per page or per PTE table: the explorer runs the checks after every
// step). descend: whether to enter a table (its slot, first page and the
// level of the entry pointing to it); null: every one. fn returns true to
// stop the walk.
function forEachLeaf(
  m: Machine,
  mm: Mm,
  lo: number,
  hi: number,
  descend: ((child: number, vpn: number, level: number) => boolean) | null,
  fn: (v: number, vpn: number, level: number) => boolean,
): boolean {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const walk = (slot: number, level: number, lo: number, hi: number): boolean => {
    const e = T.chunkOf(slot);
    const i0 = T.base(slot) + idxAt(G, lo, level);
    if (level === 0) {
      for (let vpn = lo; vpn < hi; vpn++) {
        const w = e[i0 + vpn - lo] as number;
        if (w !== 0 && fn(w, vpn, 0)) return true;
      }
      return false;
    }
    const span = G.span[level] as number;
    for (let i = i0, vpn = lo; vpn < hi; i++) {
      const start = Math.floor(vpn / span) * span;
      const next = Math.min(hi, start + span);
      const v = e[i] as number;
      if (v !== 0) {
        if (!A.entryIsTable(v)) {
          if (fn(v, start, level)) return true;
        } else {
          const child = T.slotOfPfn(A.ptePfn(v));
          if ((descend === null || descend(child, start, level)) && walk(child, level - 1, vpn, next)) return true;
        }
      }
      vpn = next;
    }
    return false;
  };
  return walk(mm.pgd, A.levels - 1, lo, hi);
}

// Invariant 6: dirty never implies writable. No present PTE grants write in
// a VMA without VM_WRITE (a dirty read-only entry must stay read-only).
// skipMm: address spaces whose VMAs are being changed (mmap_lock held for
// writing), where VMA and PTEs disagree until the syscall is done.
export function checkWritableInVma(m: Machine, skip: (slot: number) => boolean, skipMm: (mm: Mm) => boolean): Violation[] {
  const out: Violation[] = [];
  const A = m.arch;
  const PS = m.geo.pageSize;
  const entry = (mm: Mm, vma: Vma, v: number, vpn: number): void => {
    if (!A.ptePresent(v) || !A.pteWrite(v)) return;
    if ((vma.flags & VM_WRITE) === 0)
      out.push({
        invariant: "writable-without-vm-write",
        addr: vpn * PS,
        message: `mm${mm.id}: ${hex(vpn * PS)} is writable (${A.describeEntry(v)}) but its VMA has no VM_WRITE`,
      });
    // Dirty tracking of shared file memory: the folio is marked dirty
    // before a PTE grants write (do_page_mkwrite()), and writeback
    // write-protects every PTE before it clears the flag
    // (folio_clear_dirty_for_io()); a writable entry over a clean folio
    // lets stores escape writeback.
    else if ((vma.flags & VM_SHARED) !== 0 && vma.file !== null && !vma.file.shmem) {
      const head = m.phys.folioHead(A.ptePfn(v));
      if (((m.phys.flags[head] as number) & (PG_DIRTY | PG_FREE)) === 0)
        out.push({
          invariant: "writable-clean-file",
          addr: vpn * PS,
          message: `mm${mm.id}: ${hex(vpn * PS)} is writable (${A.describeEntry(v)}) in a shared mapping of ${vma.file.name}, but its folio is clean: stores through it escape writeback`,
        });
    }
  };
  for (const mm of m.mms) {
    if (!mm.alive || skipMm(mm)) continue;
    // Only entries inside a VMA without VM_WRITE or of a shared file
    // mapping can break either rule (an entry outside every VMA belongs to
    // a range munmap detached and is zapping under the read lock): walk
    // those VMAs' ranges, not the whole tree.
    for (const vma of mm.vmas) {
      if ((vma.flags & VM_WRITE) !== 0 && ((vma.flags & VM_SHARED) === 0 || vma.file === null || vma.file.shmem)) continue;
      forEachLeaf(
        m,
        mm,
        vma.start / PS,
        vma.end / PS,
        (child, _vpn, level) => level !== 1 || !skip(child),
        (v, vpn, level) => {
          // A huge leaf, checked once, against the VMA at its start.
          if (level === 0 || mm.findVma(vpn * PS) === vma) entry(mm, vma, v, vpn);
          return false;
        },
      );
    }
  }
  return out;
}

// No present entry of a file VMA maps a page at or beyond the file's end
// (i_size in pages), the file's own pages or private copies of them, unless
// a truncation of that file is in flight (inFlight): filemap_fault() and
// filemap_map_pages() map nothing beyond i_size, and truncate_pagecache()
// writes i_size first and leaves no mapping of the truncated pages behind
// (invariant 11, "mapped-beyond-eof").
export function checkMappedBeyondEof(m: Machine, inFlight: (f: FileObj) => boolean): Violation[] {
  const out: Violation[] = [];
  const A = m.arch;
  const PS = m.geo.pageSize;
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    for (const vma of mm.vmas) {
      const f = vma.file;
      if (f === null) continue;
      const eof = Math.ceil(f.size / PS);
      const pages = (vma.end - vma.start) / PS;
      if (vma.pgoff + pages <= eof || inFlight(f)) continue;
      const lo = vma.start / PS + Math.max(0, eof - vma.pgoff);
      const hit = forEachLeaf(m, mm, lo, vma.end / PS, null, (v, vpn) => {
        if (!A.ptePresent(v)) return false;
        const a = Math.max(lo, vpn) * PS;
        out.push({
          invariant: "mapped-beyond-eof",
          addr: a,
          message: `mm${mm.id}: ${hex(a)} maps page ${vma.pgoffOf(a, PS)} of file ${f.name} (${A.describeEntry(v)}), at or beyond its end (${eof} pages)`,
        });
        return true;
      });
      if (hit) return out;
    }
  }
  return out;
}

// The checks that must run at the moment something happens inside a kernel
// path, fed by the machine's event stream: frames freed while a translation
// may still point at them, and pins given back. They report into
// m.violations, which the drivers drain after each step. Installed by
// newMachine() (core/index.ts); a machine built without it runs no such
// check. They look at m.config.checkInvariants when the event comes, as
// the explorer turns the checks off around its own set-up.
export function installChecks(m: Machine): ModelSink {
  const sink: ModelSink = {
    mask: EV_FRAMES_FREED | EV_PINS_RELEASED,
    event(e: ModelEvent): void {
      if (!m.config.checkInvariants) return;
      if (e.kind === "frames-freed") {
        const v = checkFreedFrames(m, e.pfns, e.what);
        if (v.length > 0) m.violations.push(...v);
      } else if (e.kind === "pins-released") {
        const v = checkPinnedExclusive(m, e.pins as GupPin[], e.where);
        if (v.length > 0) m.violations.push(...v);
      }
    },
  };
  m.subscribe(sink);
  return sink;
}
