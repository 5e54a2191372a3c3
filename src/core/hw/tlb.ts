// A CPU's translation caches: a set-associative TLB for base pages, a small
// fully associative TLB for 2M/1G leaves, and paging-structure caches that
// remember the table a walk reached at each level (Intel SDM vol. 3, 4.10.3:
// PML4E/PDPTE/PDE caches). Entries are tagged with a per-CPU ASID slot (x86 PCID).
// Keys are (page number * 8 + asid + 1); 0 means invalid.

import { giveArrays, takeArray } from "../pool.js";

export const TLB_W = 1; // entry grants write
export const TLB_D = 2; // dirty already set in the PTE
export const TLB_X = 4; // executable
export const TLB_U = 8; // user

export const NR_ASIDS = 8; // x86: per-CPU ASID slots held in tags (6 used)

// TLB conflict detection on fill (arm64, Arm ARM "TLB conflict abort").
export const CONFLICT_NONE = 0;
// Only overlapping entries with different output addresses conflict (FEAT_BBM
// level 2 on a CPU that never raises the abort for a size change).
export const CONFLICT_OA = 1;
// Overlapping entries with a different output address or a different size.
export const CONFLICT_OA_OR_SIZE = 2;

export class Tlb {
  // ASID tag space (keys are vpn * nrAsids + asid + 1).
  readonly nrAsids: number;
  // CONFLICT_*: what a fill checks against existing entries (0: nothing).
  readonly conflictMode: number;
  // Base page size (PAGE_SHIFT) and the pages a walk-cache entry at each
  // level covers; vpn arguments count base pages.
  readonly pageShift: number;
  readonly pscSpan: readonly number[];
  // Base-page TLB (STLB-like): sets x ways.
  readonly sets: number;
  readonly ways: number;
  tag: Float64Array;
  pfn: Float64Array;
  perm: Uint8Array;
  rr: Uint8Array;
  // Large-page TLB: key = (va >> shift) * nrAsids + asid + 1, and the entry's size shift.
  htag: Float64Array;
  hpfn: Float64Array;
  hperm: Uint8Array;
  hshift: Uint8Array;
  // Base pages an entry covers, 2^(hshift - pageShift), kept beside hshift so
  // lookups divide by it instead of computing the power for every entry.
  hpages: Float64Array;
  hrr = 0;
  // Paging-structure caches: level L (1 = PDE: maps va>>21 to a PTE table,
  // 2 = PDPTE: va>>30 to a PMD table, 3 = PML4E: va>>39 to a PUD table).
  ptag: Float64Array;
  ptbl: Float64Array; // PFN of the table the cached entry points to
  plevel: Uint8Array;
  prr = 0;
  // Invalidations so far (any kind). Not state of the model: the explorer's
  // speculative fills read it to see whether a flush came between two of
  // its decisions. Non-enumerable, so the explorer's state tracker, which
  // hashes enumerable fields, leaves it out.
  declare inval: number;

  constructor(sets = 128, ways = 12, hugeEntries = 32, pscEntries = 32, nrAsids = NR_ASIDS, conflictMode = CONFLICT_NONE, vaBits = 57, pageShift = 12) {
    if (2 ** (vaBits - pageShift) * nrAsids > 2 ** 53)
      throw new RangeError(`TLB keys for ${vaBits}-bit VAs and ${nrAsids} ASIDs would exceed 2^53 (not modelled)`);
    this.pageShift = pageShift;
    const ptrs = 2 ** (pageShift - 3);
    this.pscSpan = [1, ptrs, ptrs ** 2, ptrs ** 3, ptrs ** 4];
    this.nrAsids = nrAsids;
    this.conflictMode = conflictMode;
    this.sets = sets;
    this.ways = ways;
    this.tag = takeArray(Float64Array, sets * ways);
    this.pfn = takeArray(Float64Array, sets * ways);
    this.perm = takeArray(Uint8Array, sets * ways);
    this.rr = takeArray(Uint8Array, sets);
    this.htag = takeArray(Float64Array, hugeEntries);
    this.hpfn = takeArray(Float64Array, hugeEntries);
    this.hperm = takeArray(Uint8Array, hugeEntries);
    this.hshift = takeArray(Uint8Array, hugeEntries);
    this.hpages = takeArray(Float64Array, hugeEntries);
    this.ptag = takeArray(Float64Array, pscEntries);
    this.ptbl = takeArray(Float64Array, pscEntries);
    this.plevel = takeArray(Uint8Array, pscEntries);
    Object.defineProperty(this, "inval", { value: 0, writable: true, enumerable: false });
  }

  // The arrays go back to the pool (pool.ts): this TLB is not used again.
  release(): void {
    giveArrays(this.tag, this.pfn, this.perm, this.rr, this.htag, this.hpfn, this.hperm, this.hshift, this.hpages, this.ptag, this.ptbl, this.plevel);
  }

  // Index of the base-page entry for vpn, or -1.
  lookup(vpn: number, asid: number): number {
    const key = vpn * this.nrAsids + asid + 1;
    const ways = this.ways;
    const base = (vpn & (this.sets - 1)) * ways;
    const tag = this.tag;
    for (let i = base; i < base + ways; i++) if (tag[i] === key) return i;
    return -1;
  }

  insert(vpn: number, asid: number, pfn: number, perm: number): void {
    const key = vpn * this.nrAsids + asid + 1;
    const set = vpn & (this.sets - 1);
    const ways = this.ways;
    const base = set * ways;
    let slot = -1;
    for (let i = base; i < base + ways; i++) {
      const t = this.tag[i] as number;
      if (t === key || t === 0) {
        slot = i;
        break;
      }
    }
    if (slot < 0) {
      const r = this.rr[set] as number;
      slot = base + r;
      this.rr[set] = (r + 1) % ways;
    }
    this.tag[slot] = key;
    this.pfn[slot] = pfn;
    this.perm[slot] = perm;
  }

  // vpnBase: first base page of the huge page; shift: 21 or 30.
  lookupHuge(vpn: number, asid: number): number {
    const htag = this.htag;
    const hpages = this.hpages;
    const a = asid + 1;
    const n = this.nrAsids;
    for (let i = 0; i < htag.length; i++) {
      const t = htag[i] as number;
      if (t === 0) continue;
      if (t === Math.floor(vpn / (hpages[i] as number)) * n + a) return i;
    }
    return -1;
  }

  insertHuge(vpn: number, asid: number, shift: number, pfn: number, perm: number): void {
    const key = Math.floor(vpn / 2 ** (shift - this.pageShift)) * this.nrAsids + asid + 1;
    let slot = -1;
    for (let i = 0; i < this.htag.length; i++)
      if (this.htag[i] === key && this.hshift[i] === shift) {
        slot = i;
        break;
      }
    if (slot < 0) {
      slot = this.hrr;
      this.hrr = (this.hrr + 1) % this.htag.length;
    }
    this.htag[slot] = key;
    this.hshift[slot] = shift;
    this.hpages[slot] = 2 ** (shift - this.pageShift);
    this.hpfn[slot] = pfn;
    this.hperm[slot] = perm;
  }

  // Deepest cached table for vpn: returns the index into the PSC or -1.
  // A level-L entry covers pscSpan[L] pages (512^L with 4K pages).
  lookupPsc(vpn: number, asid: number): number {
    // One key per level, then a single pass over the entries.
    const a = asid + 1;
    const n = this.nrAsids;
    const span = this.pscSpan;
    const k1 = Math.floor(vpn / (span[1] as number)) * n + a;
    const k2 = Math.floor(vpn / (span[2] as number)) * n + a;
    const k3 = Math.floor(vpn / (span[3] as number)) * n + a;
    let best = -1;
    let bestLevel = 99;
    const ptag = this.ptag;
    const plevel = this.plevel;
    for (let i = 0; i < ptag.length; i++) {
      const t = ptag[i] as number;
      if (t === 0) continue;
      const l = plevel[i] as number;
      if (l >= bestLevel) continue;
      if (t === (l === 1 ? k1 : l === 2 ? k2 : k3)) {
        best = i;
        bestLevel = l;
        if (l === 1) break;
      }
    }
    return best;
  }

  insertPsc(vpn: number, asid: number, level: number, tablePfn: number): void {
    const key = Math.floor(vpn / (this.pscSpan[level] as number)) * this.nrAsids + asid + 1;
    let slot = -1;
    for (let i = 0; i < this.ptag.length; i++)
      if (this.ptag[i] === key && this.plevel[i] === level) {
        slot = i;
        break;
      }
    if (slot < 0) {
      slot = this.prr;
      this.prr = (this.prr + 1) % this.ptag.length;
    }
    this.ptag[slot] = key;
    this.plevel[slot] = level;
    this.ptbl[slot] = tablePfn;
  }

  // Whether the walk cache holds exactly this entry: level's table for vpn.
  hasPsc(vpn: number, asid: number, level: number, tablePfn: number): boolean {
    const key = Math.floor(vpn / (this.pscSpan[level] as number)) * this.nrAsids + asid + 1;
    for (let i = 0; i < this.ptag.length; i++) if (this.ptag[i] === key && this.plevel[i] === level) return this.ptbl[i] === tablePfn;
    return false;
  }

  // Whether the base-page TLB holds exactly this entry for vpn.
  holds(vpn: number, asid: number, pfn: number, perm: number): boolean {
    const i = this.lookup(vpn, asid);
    return i >= 0 && this.pfn[i] === pfn && this.perm[i] === perm;
  }

  // Whether the large-page TLB holds exactly this entry (first page's pfn,
  // size) for the range around vpn.
  holdsHuge(vpn: number, asid: number, shift: number, pfnFirst: number, perm: number): boolean {
    const key = Math.floor(vpn / 2 ** (shift - this.pageShift)) * this.nrAsids + asid + 1;
    for (let i = 0; i < this.htag.length; i++) if (this.htag[i] === key && this.hshift[i] === shift) return this.hpfn[i] === pfnFirst && this.hperm[i] === perm;
    return false;
  }

  // INVLPG: the page's entries (base or large) for this ASID, and every
  // paging-structure cache entry of the ASID (SDM: INVLPG invalidates all PSC
  // entries associated with the current PCID).
  invlpg(vpn: number, asid: number): void {
    this.inval++;
    const i = this.lookup(vpn, asid);
    if (i >= 0) this.tag[i] = 0;
    const h = this.lookupHuge(vpn, asid);
    if (h >= 0) this.htag[h] = 0;
    this.flushPsc(asid);
  }

  flushPsc(asid: number): void {
    this.inval++;
    const ptag = this.ptag;
    const n = this.nrAsids;
    for (let i = 0; i < ptag.length; i++) {
      const t = ptag[i] as number;
      if (t !== 0 && (t - 1) % n === asid) ptag[i] = 0;
    }
  }

  // Full flush of one ASID (CR3 write without NOFLUSH, or INVPCID single-context).
  flushAsid(asid: number): void {
    this.inval++;
    const n = this.nrAsids;
    const tag = this.tag;
    for (let i = 0; i < tag.length; i++) {
      const t = tag[i] as number;
      if (t !== 0 && (t - 1) % n === asid) tag[i] = 0;
    }
    const htag = this.htag;
    for (let i = 0; i < htag.length; i++) {
      const t = htag[i] as number;
      if (t !== 0 && (t - 1) % n === asid) htag[i] = 0;
    }
    this.flushPsc(asid);
  }

  // Page number (in units of the entry's size) and ASID of a key.
  vpnOfKey(key: number): number {
    return Math.floor((key - 1) / this.nrAsids);
  }
  asidOfKey(key: number): number {
    return (key - 1) % this.nrAsids;
  }
  // First page and page count of large entry h.
  hugeFirst(h: number): number {
    return this.vpnOfKey(this.htag[h] as number) * (this.hpages[h] as number);
  }
  hugePages(h: number): number {
    return this.hpages[h] as number;
  }

  // ---- arm64 TLB maintenance (the effect of one TLBI on this CPU's TLB) ----

  // TLBI VAE1IS / VALE1IS: every leaf entry of the ASID that translates vpn
  // (base page, contiguous range or block); without leafOnly also every walk
  // cache entry of the ASID used to translate vpn.
  invalidateVa(vpn: number, asid: number, leafOnly: boolean): void {
    this.inval++;
    const i = this.lookup(vpn, asid);
    if (i >= 0) this.tag[i] = 0;
    this.invalidateHugeRange(vpn, 1, asid);
    if (!leafOnly) this.invalidatePscRange(vpn, 1, asid);
  }

  // TLBI RVAE1IS / RVALE1IS: every entry of the ASID that translates any page
  // of [vpn, vpn + pages) (an entry partly inside the range is invalidated).
  invalidateRange(vpn: number, pages: number, asid: number, leafOnly: boolean): void {
    this.inval++;
    if (pages <= 32) {
      for (let p = vpn; p < vpn + pages; p++) {
        const i = this.lookup(p, asid);
        if (i >= 0) this.tag[i] = 0;
      }
    } else {
      const tag = this.tag;
      const n = this.nrAsids;
      const lo = vpn * n;
      const hi = (vpn + pages) * n;
      for (let i = 0; i < tag.length; i++) {
        const t = tag[i] as number;
        if (t !== 0 && t > lo && t <= hi && (t - 1) % n === asid) tag[i] = 0;
      }
    }
    this.invalidateHugeRange(vpn, pages, asid);
    if (!leafOnly) this.invalidatePscRange(vpn, pages, asid);
  }

  private invalidateHugeRange(vpn: number, pages: number, asid: number): void {
    const htag = this.htag;
    const n = this.nrAsids;
    for (let h = 0; h < htag.length; h++) {
      const t = htag[h] as number;
      if (t === 0 || (t - 1) % n !== asid) continue;
      const first = this.hugeFirst(h);
      if (first < vpn + pages && vpn < first + this.hugePages(h)) htag[h] = 0;
    }
  }

  private invalidatePscRange(vpn: number, pages: number, asid: number): void {
    const ptag = this.ptag;
    const n = this.nrAsids;
    for (let i = 0; i < ptag.length; i++) {
      const t = ptag[i] as number;
      if (t === 0 || (t - 1) % n !== asid) continue;
      const span = this.pscSpan[this.plevel[i] as number] as number;
      const first = Math.floor((t - 1) / n) * span;
      if (first < vpn + pages && vpn < first + span) ptag[i] = 0;
    }
  }

  // TLBI ASIDE1IS: every entry of the ASID, walk caches included.
  invalidateAsid(asid: number): void {
    this.flushAsid(asid);
  }

  // TLBI VMALLE1(IS): everything.
  invalidateAll(): void {
    this.inval++;
    this.tag.fill(0);
    this.htag.fill(0);
    this.ptag.fill(0);
  }

  // TLB conflict check for a fill of an entry covering 2^(shift-pageShift) pages
  // from vpnFirst to pfnFirst in asid: the index of an overlapping leaf
  // entry of the same ASID that maps some page to another frame, or (in
  // CONFLICT_OA_OR_SIZE mode) has another size; base entries as i >= 0,
  // large entries as -2 - h; -1 if none. Base-page fills are checked
  // against large entries only (a base entry for the same page would have
  // hit in the TLB).
  findConflict(vpnFirst: number, shift: number, pfnFirst: number, asid: number): number {
    const mode = this.conflictMode;
    if (mode === CONFLICT_NONE) return -1;
    const pages = 2 ** (shift - this.pageShift);
    const delta = pfnFirst - vpnFirst;
    const htag = this.htag;
    const n = this.nrAsids;
    for (let h = 0; h < htag.length; h++) {
      const t = htag[h] as number;
      if (t === 0 || (t - 1) % n !== asid) continue;
      const first = this.hugeFirst(h);
      const hp = this.hugePages(h);
      if (first >= vpnFirst + pages || vpnFirst >= first + hp) continue;
      if ((this.hpfn[h] as number) - first !== delta) return -2 - h;
      if (mode === CONFLICT_OA_OR_SIZE && hp !== pages) return -2 - h;
    }
    if (pages === 1) return -1;
    if (pages <= 32) {
      for (let p = vpnFirst; p < vpnFirst + pages; p++) {
        const i = this.lookup(p, asid);
        if (i >= 0 && (mode === CONFLICT_OA_OR_SIZE || (this.pfn[i] as number) - p !== delta)) return i;
      }
      return -1;
    }
    const tag = this.tag;
    const lo = vpnFirst * n;
    const hi = (vpnFirst + pages) * n;
    for (let i = 0; i < tag.length; i++) {
      const t = tag[i] as number;
      if (t === 0 || t <= lo || t > hi || (t - 1) % n !== asid) continue;
      if (mode === CONFLICT_OA_OR_SIZE || (this.pfn[i] as number) - this.vpnOfKey(t) !== delta) return i;
    }
    return -1;
  }
}
