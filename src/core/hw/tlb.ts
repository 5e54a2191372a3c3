// A CPU's translation caches: a set-associative TLB for base pages, a small
// fully associative TLB for 2M/1G leaves, and paging-structure caches that
// remember the table a walk reached at each level (Intel SDM vol. 3, 4.10.3:
// PML4E/PDPTE/PDE caches). Entries are tagged with a per-CPU ASID slot (x86 PCID).
// Keys are (page number * 8 + asid + 1); 0 means invalid.

export const TLB_W = 1; // entry grants write
export const TLB_D = 2; // dirty already set in the PTE
export const TLB_X = 4; // executable
export const TLB_U = 8; // user

export const NR_ASIDS = 8; // per-CPU ASID slots held in tags (x86 uses 6)
const PSC_SPAN = [1, 512, 512 ** 2, 512 ** 3, 512 ** 4]; // pages per entry at each level

export class Tlb {
  // Base-page TLB (STLB-like): sets x ways.
  readonly sets: number;
  readonly ways: number;
  tag: Float64Array;
  pfn: Float64Array;
  perm: Uint8Array;
  rr: Uint8Array;
  // Large-page TLB: key = (va >> 21) * 8 + asid + 1, and the huge page's size shift.
  htag: Float64Array;
  hpfn: Float64Array;
  hperm: Uint8Array;
  hshift: Uint8Array;
  hrr = 0;
  // Paging-structure caches: level L (1 = PDE: maps va>>21 to a PTE table,
  // 2 = PDPTE: va>>30 to a PMD table, 3 = PML4E: va>>39 to a PUD table).
  ptag: Float64Array;
  ptbl: Float64Array; // PFN of the table the cached entry points to
  plevel: Uint8Array;
  prr = 0;

  constructor(sets = 128, ways = 12, hugeEntries = 32, pscEntries = 32) {
    this.sets = sets;
    this.ways = ways;
    this.tag = new Float64Array(sets * ways);
    this.pfn = new Float64Array(sets * ways);
    this.perm = new Uint8Array(sets * ways);
    this.rr = new Uint8Array(sets);
    this.htag = new Float64Array(hugeEntries);
    this.hpfn = new Float64Array(hugeEntries);
    this.hperm = new Uint8Array(hugeEntries);
    this.hshift = new Uint8Array(hugeEntries);
    this.ptag = new Float64Array(pscEntries);
    this.ptbl = new Float64Array(pscEntries);
    this.plevel = new Uint8Array(pscEntries);
  }

  // Index of the base-page entry for vpn, or -1.
  lookup(vpn: number, asid: number): number {
    const key = vpn * NR_ASIDS + asid + 1;
    const ways = this.ways;
    const base = (vpn & (this.sets - 1)) * ways;
    const tag = this.tag;
    for (let i = base; i < base + ways; i++) if (tag[i] === key) return i;
    return -1;
  }

  insert(vpn: number, asid: number, pfn: number, perm: number): void {
    const key = vpn * NR_ASIDS + asid + 1;
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
    for (let i = 0; i < htag.length; i++) {
      const t = htag[i] as number;
      if (t === 0) continue;
      const s = (this.hshift[i] as number) - 12;
      const key = Math.floor(vpn / 2 ** s) * NR_ASIDS + asid + 1;
      if (t === key) return i;
    }
    return -1;
  }

  insertHuge(vpn: number, asid: number, shift: number, pfn: number, perm: number): void {
    const key = Math.floor(vpn / 2 ** (shift - 12)) * NR_ASIDS + asid + 1;
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
    this.hpfn[slot] = pfn;
    this.hperm[slot] = perm;
  }

  // Deepest cached table for vpn: returns the index into the PSC or -1.
  // level 1 caches cover 512 pages, level 2 512^2, level 3 512^3.
  lookupPsc(vpn: number, asid: number): number {
    // One key per level, then a single pass over the entries.
    const a = asid + 1;
    const k1 = Math.floor(vpn / 512) * NR_ASIDS + a;
    const k2 = Math.floor(vpn / 262144) * NR_ASIDS + a;
    const k3 = Math.floor(vpn / 134217728) * NR_ASIDS + a;
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
    const key = Math.floor(vpn / (PSC_SPAN[level] as number)) * NR_ASIDS + asid + 1;
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

  // INVLPG: the page's entries (base or large) for this ASID, and every
  // paging-structure cache entry of the ASID (SDM: INVLPG invalidates all PSC
  // entries associated with the current PCID).
  invlpg(vpn: number, asid: number): void {
    const i = this.lookup(vpn, asid);
    if (i >= 0) this.tag[i] = 0;
    const h = this.lookupHuge(vpn, asid);
    if (h >= 0) this.htag[h] = 0;
    this.flushPsc(asid);
  }

  flushPsc(asid: number): void {
    const ptag = this.ptag;
    for (let i = 0; i < ptag.length; i++) {
      const t = ptag[i] as number;
      if (t !== 0 && (t - 1) % NR_ASIDS === asid) ptag[i] = 0;
    }
  }

  // Full flush of one ASID (CR3 write without NOFLUSH, or INVPCID single-context).
  flushAsid(asid: number): void {
    const tag = this.tag;
    for (let i = 0; i < tag.length; i++) {
      const t = tag[i] as number;
      if (t !== 0 && (t - 1) % NR_ASIDS === asid) tag[i] = 0;
    }
    const htag = this.htag;
    for (let i = 0; i < htag.length; i++) {
      const t = htag[i] as number;
      if (t !== 0 && (t - 1) % NR_ASIDS === asid) htag[i] = 0;
    }
    this.flushPsc(asid);
  }

  static vpnOfKey(key: number): number {
    return Math.floor((key - 1) / NR_ASIDS);
  }
  static asidOfKey(key: number): number {
    return (key - 1) % NR_ASIDS;
  }
}
