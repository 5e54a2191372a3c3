// Addresses and descriptor bits for a litmus test's symbolic values. Location
// i has virtual page VA_PAGE0 + i, physical frame PA_FRAME0 + i, and its
// last-level descriptor at PTE_BASE + 8 i; herd's tests only vary the leaf
// entry, so the upper levels are not represented. Descriptors use the real
// arm64 bit layout, in the packed form of src/core/arch/arm64/pgtable.ts:
// herd's db:1 is AP[2] (PTE_RDONLY) clear, dbm:1 is PTE_DBM. Register and
// memory values are packed 64-bit numbers throughout, so LDCLR #1 on a
// descriptor clears its VALID bit as on hardware.
// No Node APIs.

import { fromRaw64, PTE_AF, PTE_DBM, PTE_RDONLY, PTE_TABLE_BIT, PTE_TYPE_PAGE, PTE_VALID, toRaw64 } from "../core/arch/arm64/pgtable.js";
import { type DescFields, type LitmusTest, LitmusUnsupported, type Value } from "./types.js";

export const PAGE_SHIFT = 12;
const PAGE = 2 ** PAGE_SHIFT;
const VA_PAGE0 = 0x100;
const PA_FRAME0 = 0x200;
const PTE_BASE = 0x7f000000;

export class Layout {
  readonly locs: readonly string[];
  constructor(t: LitmusTest) {
    this.locs = t.locs;
  }
  index(loc: string): number {
    const i = this.locs.indexOf(loc);
    if (i < 0) throw new Error(`model bug: location ${loc} was not declared by the parser`);
    return i;
  }
  va(i: number): number {
    return (VA_PAGE0 + i) * PAGE;
  }
  pa(i: number): number {
    return (PA_FRAME0 + i) * PAGE;
  }
  pteAddr(i: number): number {
    return PTE_BASE + 8 * i;
  }
  // The location whose VA page is `page`, or -1.
  locOfPage(page: number): number {
    const i = page - VA_PAGE0;
    return i >= 0 && i < this.locs.length ? i : -1;
  }
  // The location a virtual address names (page aligned), or -1.
  locOfVa(a: number): number {
    return a % PAGE === 0 ? this.locOfPage(a / PAGE) : -1;
  }
  // The location whose descriptor is at `a`, or -1.
  locOfPteAddr(a: number): number {
    const i = (a - PTE_BASE) / 8;
    return Number.isInteger(i) && i >= 0 && i < this.locs.length ? i : -1;
  }
  // The physical location a descriptor maps, or -1 (an OA outside the test).
  locOfOa(d: number): number {
    const oa = Math.floor((d % 2 ** 39) / PAGE) * PAGE;
    const i = oa / PAGE - PA_FRAME0;
    return i >= 0 && i < this.locs.length ? i : -1;
  }

  // herd's default entry is (oa:phy_x, valid:1, af:1, db:1, dbm:0).
  desc(f: DescFields, defaultOa: number): number {
    const oa = f.oa === undefined ? defaultOa : this.index(f.oa);
    if (oa < 0) throw new LitmusUnsupported("a descriptor without oa: in a register or a register condition");
    let d = PTE_TYPE_PAGE | PTE_AF | this.pa(oa);
    if (f.valid === 0) d -= PTE_VALID;
    if (f.af === 0) d -= PTE_AF;
    if (f.db === 0) d += PTE_RDONLY;
    if (f.dbm === 1) d += PTE_DBM;
    return d;
  }

  // `defaultOa`: the location a record without oa: maps (pte_x=(af:0) maps phy_x).
  value(v: Value, defaultOa = -1): number {
    switch (v.k) {
      case "int":
        return v.v;
      case "va":
        return this.va(this.index(v.loc));
      case "pte":
        return this.pteAddr(this.index(v.loc));
      case "pa":
        return this.pa(this.index(v.loc));
      case "desc":
        return this.desc(v.f, defaultOa);
    }
  }

  // A packed value in herd's notation: a descriptor, a location, or an integer.
  show(v: number): string {
    const i = this.locOfOa(v);
    if (i >= 0 && (v & PTE_TABLE_BIT) !== 0) {
      const flags = v & (PTE_TYPE_PAGE | PTE_AF | PTE_RDONLY);
      const dbm = hasDbm(v);
      if (v - this.pa(i) - flags - (dbm ? PTE_DBM : 0) === 0) {
        return `(oa:phy_${this.locs[i]}, valid:${v & PTE_VALID}, af:${(v & PTE_AF) !== 0 ? 1 : 0}, db:${(v & PTE_RDONLY) !== 0 ? 0 : 1}, dbm:${dbm ? 1 : 0})`;
      }
    }
    const va = this.locOfVa(v);
    if (va >= 0) return this.locs[va]!;
    const pte = this.locOfPteAddr(v);
    if (pte >= 0) return `pte_${this.locs[pte]}`;
    return toRaw64(v).toString();
  }
}

export function hasDbm(v: number): boolean {
  return Math.floor(v / PTE_DBM) % 2 === 1;
}

// 64-bit arithmetic and logic on packed values, through the real bits.
export function alu(fn: "add" | "sub" | "eor" | "and" | "orr" | "lsr" | "lsl" | "bic", a: number, b: number, w: boolean): number {
  const x = toRaw64(a);
  const y = toRaw64(b);
  const mask = w ? 0xffffffffn : 0xffffffffffffffffn;
  const sh = y & (w ? 31n : 63n);
  let r: bigint;
  switch (fn) {
    case "add":
      r = x + y;
      break;
    case "sub":
      r = x - y;
      break;
    case "eor":
      r = x ^ y;
      break;
    case "and":
      r = x & y;
      break;
    case "orr":
      r = x | y;
      break;
    case "bic":
      r = x & ~y;
      break;
    case "lsr":
      r = (x & mask) >> sh;
      break;
    case "lsl":
      r = x << sh;
      break;
  }
  return packed(r & mask);
}

export function packed(b: bigint): number {
  try {
    return fromRaw64(b);
  } catch {
    throw new LitmusUnsupported(`value 0x${b.toString(16)} uses bits 39..49, which the model's 39-bit physical addresses leave out`);
  }
}

// The W view of a register or memory value.
export function low32(v: number): number {
  return Number(toRaw64(v) & 0xffffffffn);
}
