// x86-64 page-table entry encoding (models arch/x86/include/asm/pgtable_types.h
// and pgtable.h). An entry is held in a JS number: bits 0..51 are the real
// hardware bits (flags 0..11, PFN 12..51); the NX bit, which the hardware keeps
// in bit 63, is held in bit 52 so the value stays an exact double. toRaw64()
// gives the real 64-bit layout for dumps.
//
// Flag tests use `v & BIT`: ToInt32 keeps the low 32 bits of an exact integer,
// so single-bit tests below bit 31 are exact. Setting/clearing uses + and -.

import { modPow2 } from "../../geometry.js";
import { MIG_WRITE, SWP_MIGRATION_READ } from "../arch.js";

export const _PAGE_PRESENT = 0x001;
export const _PAGE_RW = 0x002;
export const _PAGE_USER = 0x004;
export const _PAGE_PWT = 0x008;
export const _PAGE_PCD = 0x010;
export const _PAGE_ACCESSED = 0x020;
export const _PAGE_DIRTY = 0x040;
export const _PAGE_PSE = 0x080; // leaf at PMD/PUD level
export const _PAGE_GLOBAL = 0x100;
export const _PAGE_SPECIAL = 0x200; // _PAGE_BIT_SOFTW1
export const _PAGE_UFFD_WP = 0x400; // _PAGE_BIT_SOFTW2
export const _PAGE_SOFT_DIRTY = 0x800; // _PAGE_BIT_SOFTW3
export const _PAGE_PROTNONE = _PAGE_GLOBAL; // only meaningful with !PRESENT
export const NX = 2 ** 52; // stands for bit 63
const PFN_UNIT = 4096;
const FLAG_SPAN = 4096;

// _PAGE_TABLE: what a non-leaf entry carries (pmd_populate, pud_populate ...)
export const _PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;

export function pteNone(v: number): boolean {
  return v === 0;
}
// pte_present() is true for PROT_NONE entries too.
export function ptePresent(v: number): boolean {
  return (v & (_PAGE_PRESENT | _PAGE_PROTNONE)) !== 0;
}
export function pteHwPresent(v: number): boolean {
  return (v & _PAGE_PRESENT) !== 0;
}
export function pteProtnone(v: number): boolean {
  return (v & (_PAGE_PRESENT | _PAGE_PROTNONE)) === _PAGE_PROTNONE;
}
export function pteWrite(v: number): boolean {
  return (v & _PAGE_RW) !== 0;
}
export function pteDirty(v: number): boolean {
  return (v & _PAGE_DIRTY) !== 0;
}
export function pteYoung(v: number): boolean {
  return (v & _PAGE_ACCESSED) !== 0;
}
export function pteSpecial(v: number): boolean {
  return (v & _PAGE_SPECIAL) !== 0;
}
export function pteExec(v: number): boolean {
  return v < NX;
}
export function pteUser(v: number): boolean {
  return (v & _PAGE_USER) !== 0;
}
export function pteHuge(v: number): boolean {
  return (v & _PAGE_PSE) !== 0;
}
// v % NX for every entry (entries are below 2 * NX), without the fmod()
// call V8 makes for `%` beyond int32; likewise modPow2() for the flags.
function belowNx(v: number): number {
  return v >= NX ? v - NX : v;
}
export function ptePfn(v: number): number {
  return Math.floor(belowNx(v) / PFN_UNIT);
}
export function pteFlags(v: number): number {
  return modPow2(v, FLAG_SPAN);
}
// Everything but the PFN: the "protection" of an entry (pte_pgprot()).
export function ptePgprot(v: number): number {
  return (v >= NX ? NX : 0) + modPow2(v, FLAG_SPAN);
}
export function pfnPte(pfn: number, pgprot: number): number {
  return pfn * PFN_UNIT + pgprot;
}
function setBit(v: number, bit: number): number {
  return (v & bit) !== 0 ? v : v + bit;
}
function clearBit(v: number, bit: number): number {
  return (v & bit) !== 0 ? v - bit : v;
}
export function pteMkwrite(v: number): number {
  return setBit(v, _PAGE_RW);
}
// x86 without user shadow stacks: wrprotect keeps D as it is.
export function pteWrprotect(v: number): number {
  return clearBit(v, _PAGE_RW);
}
export function pteMkdirty(v: number): number {
  return setBit(setBit(v, _PAGE_DIRTY), _PAGE_SOFT_DIRTY);
}
export function pteMkclean(v: number): number {
  return clearBit(v, _PAGE_DIRTY);
}
export function pteMkyoung(v: number): number {
  return setBit(v, _PAGE_ACCESSED);
}
export function pteMkold(v: number): number {
  return clearBit(v, _PAGE_ACCESSED);
}
export function pteMkspecial(v: number): number {
  return setBit(v, _PAGE_SPECIAL);
}
export function pteMkhuge(v: number): number {
  return setBit(v, _PAGE_PSE);
}
// pte_modify(): keep PFN, A, D, special, soft-dirty, uffd-wp (_PAGE_CHG_MASK);
// take the rest from newprot.
const CHG_MASK = _PAGE_PCD | _PAGE_PWT | _PAGE_SPECIAL | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_UFFD_WP | _PAGE_PSE;
export function pteModify(v: number, newprot: number): number {
  const pfnPart = belowNx(v) - modPow2(v, FLAG_SPAN);
  const keep = v & CHG_MASK;
  const nflags = modPow2(newprot, FLAG_SPAN);
  const nx = newprot >= NX ? NX : 0;
  return pfnPart + nx + (keep | (nflags & ~CHG_MASK));
}
export function mkTableEntry(tablePfn: number): number {
  return tablePfn * PFN_UNIT + _PAGE_TABLE;
}
export function entryIsTable(v: number): boolean {
  return (v & _PAGE_PRESENT) !== 0 && (v & _PAGE_PSE) === 0;
}
export function entryIsLeaf(v: number): boolean {
  // A PMD/PUD leaf (pmd_trans_huge()): PSE set. pmd_present() counts PSE as
  // present, so a pmd_mkinvalid()ed leaf (PRESENT and PROTNONE clear) is one.
  return (v & _PAGE_PSE) !== 0;
}
// pmd_mkinvalid(): clear _PAGE_PRESENT and _PAGE_PROTNONE, keep _PAGE_PSE.
export function pmdMkinvalid(v: number): number {
  return v - (v & (_PAGE_PRESENT | _PAGE_PROTNONE));
}
// A PMD leaf the hardware does not use: PSE without PRESENT.
export function pmdLeafInvalid(v: number): boolean {
  return (v & (_PAGE_PSE | _PAGE_PRESENT)) === _PAGE_PSE;
}

// Real 64-bit image of an entry, as a BigInt (dumps and tests only).
export function toRaw64(v: number): bigint {
  const nx = v >= NX;
  const low = BigInt(v % NX);
  return nx ? low | (1n << 63n) : low;
}

// vm_get_page_prot(): x86's protection_map (arch/x86/mm/pgprot.c). Private
// writable mappings get read-only PTEs: writes COW through do_wp_page().
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
const PAGE_NONE = _PAGE_PROTNONE | _PAGE_ACCESSED;
const PAGE_RO = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
const PAGE_RW = PAGE_RO | _PAGE_RW;
export function vmGetPageProt(vmFlags: number): number {
  const r = (vmFlags & VM_READ) !== 0;
  const w = (vmFlags & VM_WRITE) !== 0;
  const x = (vmFlags & VM_EXEC) !== 0;
  const shared = (vmFlags & VM_SHARED) !== 0;
  if (!r && !w && !x) return PAGE_NONE;
  const base = w && shared ? PAGE_RW : PAGE_RO;
  return x ? base : base + NX;
}

// Swap entries (arch/x86/include/asm/pgtable_64.h, v6.17): present and
// PROT_NONE clear, bit 1 soft-dirty, bit 2 uffd-wp, bit 3 exclusive
// (_PAGE_SWP_EXCLUSIVE = _PAGE_PWT), the offset stored inverted from bit 9
// (the L1TF mitigation: a non-present entry never names low memory), the
// type in bits 59-63. A double holds integers below 2^53, so the model keeps
// the offset's 39 low bits (9..47) and the type in bits 48-52, standing for
// 59-63; in the real layout bits 48-58 of a modelled entry hold the rest of
// the inverted offset.
export const _PAGE_SWP_EXCLUSIVE = _PAGE_PWT;
const SWP_OFFSET_UNIT = 512;
const SWP_OFFSET_MODEL = 2 ** 39;
const SWP_TYPE_UNIT = 2 ** 48;
function mkSwpEntry(type: number, offset: number): number {
  if (!Number.isInteger(offset) || offset < 0 || offset >= SWP_OFFSET_MODEL) throw new RangeError(`swap offset ${offset} out of modelled range`);
  return type * SWP_TYPE_UNIT + (SWP_OFFSET_MODEL - 1 - offset) * SWP_OFFSET_UNIT;
}
export function mkSwapPte(offset: number, exclusive: boolean): number {
  return mkSwpEntry(0, offset) + (exclusive ? _PAGE_SWP_EXCLUSIVE : 0);
}
// is_swap_pte(): neither none nor present.
export function isSwapPte(v: number): boolean {
  return v !== 0 && (v & (_PAGE_PRESENT | _PAGE_PROTNONE)) === 0;
}
export function swpType(v: number): number {
  return Math.floor(v / SWP_TYPE_UNIT);
}
export function swpOffset(v: number): number {
  return SWP_OFFSET_MODEL - 1 - (Math.floor(v / SWP_OFFSET_UNIT) % SWP_OFFSET_MODEL);
}
// Migration entries: types SWP_MIGRATION_READ.. (arch.ts), the offset the
// PFN with the young and dirty bits above it (SWP_MIG_YOUNG_BIT =
// SWP_PFN_BITS = 40 with 52-bit physical addresses; the model keeps them
// at offset bits 37 and 38, above any modelled PFN).
const MIG_YOUNG = 2 ** 37;
const MIG_DIRTY = 2 ** 38;
export function mkMigrationPte(pfn: number, kind: number, young: boolean, dirty: boolean): number {
  if (pfn >= MIG_YOUNG) throw new RangeError(`pfn ${pfn} out of modelled range`);
  return mkSwpEntry(SWP_MIGRATION_READ + kind, pfn + (young ? MIG_YOUNG : 0) + (dirty ? MIG_DIRTY : 0));
}
export function isMigrationPte(v: number): boolean {
  if (!isSwapPte(v)) return false;
  const t = swpType(v) - SWP_MIGRATION_READ;
  return t >= 0 && t <= MIG_WRITE;
}
export function migrationPfn(v: number): number {
  return swpOffset(v) % MIG_YOUNG;
}
export function migrationKind(v: number): number {
  return swpType(v) - SWP_MIGRATION_READ;
}
export function migrationYoung(v: number): boolean {
  return Math.floor(swpOffset(v) / MIG_YOUNG) % 2 === 1;
}
export function migrationDirty(v: number): boolean {
  return swpOffset(v) >= MIG_DIRTY;
}
export function pteSwpExclusive(v: number): boolean {
  return (v & _PAGE_SWP_EXCLUSIVE) !== 0;
}
export function pteSwpClearExclusive(v: number): number {
  return clearBit(v, _PAGE_SWP_EXCLUSIVE);
}

// PMD migration entries: __swp_entry_to_pmd() keeps the PTE layout, so a
// PMD migration entry is mkMigrationPte()'s value; is_pmd_migration_entry()
// asks is_swap_pmd() first, and x86's pmd_present() counts _PAGE_PSE too (a
// pmd_mkinvalid()ed leaf is present), so the entry must have PSE clear,
// which a swap entry (offset from bit 9) always has.
export function mkMigrationPmd(pfn: number, kind: number, young: boolean, dirty: boolean): number {
  return mkMigrationPte(pfn, kind, young, dirty);
}
export function isMigrationPmd(v: number): boolean {
  return (v & _PAGE_PSE) === 0 && isMigrationPte(v);
}
