// arm64 stage-1 translation-table descriptor encoding, as Linux v6.17 uses it
// (arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h, pgtable.h,
// pgalloc.h, arch/arm64/mm/mmap.c and mmu.c), for the 4K, 16K and 64K
// granules. This is an independent model of those rules, not a transcription.
//
// Real 64-bit layout of a page (level 3) or block descriptor, v6.17:
//   bit  0      VALID
//   bit  1      TABLE bit: level 3: 1 = page; levels 0-2: 1 = table, 0 = block
//   bits 2-4    AttrIndx (MAIR slot: MT_NORMAL 0, MT_NORMAL_TAGGED 1, ...)
//   bit  5      NS (architectural; Linux defines no stage-1 PTE_NS any more)
//   bit  6      AP[1]  PTE_USER
//   bit  7      AP[2]  PTE_RDONLY
//   bits 8-9    SH     PTE_SHARED (inner shareable = 3)
//   bit  10     AF     PTE_AF (table descriptors: PMD_TABLE_AF, FEAT_HAFT)
//   bit  11     nG     PTE_NG; with VALID clear it is PTE_PRESENT_INVALID
//   bits 12-49  output address (4K: OA[49:12]; 16K: bits 14-49; 64K: 16-49)
//   bit  50     GP     PTE_GP (BTI guarded page)
//   bit  51     DBM    PTE_DBM == PTE_WRITE (the logical write permission)
//   bit  52     PTE_CONT
//   bit  53     PTE_PXN
//   bit  54     PTE_UXN
//   bit  55     PTE_DIRTY   (software)
//   bit  56     PTE_SPECIAL (software)
//   bit  57     software, unused at v6.17 (was PTE_DEVMAP)
//   bit  58     PTE_UFFD_WP (software)
//   bit  59     table descriptors: PXNTable (PMD_TABLE_PXN); leaves: PBHA
//   bits 60-62  POIndex (FEAT_S1POE); table descriptors: bit 60 = UXNTable
//   bit  63     software (in PTE_SWBITS_MASK); table descriptors: NSTable
// Swap entries (VALID = 0, nG = 0): bit 2 exclusive, bit 3 uffd-wp,
// bits 6-10 type, bits 12-61 offset.
//
// JS representation ("packed"). A double holds integers below 2^53 exactly,
// so not all 64 bits fit. The model restricts physical addresses to 39 bits
// (512 GiB; 2^27 4K frames, 2^25 16K frames, 2^23 64K frames) and keeps:
//   packed bits  0..38  = real bits  0..38   (attributes and OA[38:pageShift])
//   packed bits 39..52  = real bits 50..63   (shifted down by 11)
// Real bits 39..49 (OA[49:39]; also where LPA/LPA2 would put more address
// bits) are not modelled: fromRaw64() rejects values with any of them set, and
// pfnPte() rejects frames that would need them. With that restriction the
// mapping is a bijection, so toRaw64()/fromRaw64() are exact inverses.
// LPA2 (52-bit PA reusing SH for OA[51:50]) is not modelled either: SH is
// always SH.
//
// Arithmetic: ToInt32 keeps the low 32 bits of an exact integer, so `v & BIT`
// is exact for bits below 31. High bits are tested on Math.floor(v / 2^39)
// (a 14-bit integer). Single bits are set/cleared with + and -; multi-bit
// masks go through bitAnd/bitOr/bitAndNot/bitXor, which split a value in two
// halves of at most 27 bits.

import { modPow2 } from "../../geometry.js";
import { TLB_D, TLB_U, TLB_W, TLB_X } from "../../hw/tlb.js";
import { MIG_NAMES, MIG_WRITE, SWP_MIGRATION_READ } from "../arch.js";

export type Granule = 4 | 16 | 64;

// ---------------------------------------------------------------------------
// Packing

/** Width of the modelled output address: physical addresses are below 2^39. */
export const OA_BITS = 39;
const HI_UNIT = 2 ** 39; // packed bit 39 ...
const HI_REAL = 50; // ... stands for real bit 50
const PACK_SHIFT = HI_REAL - OA_BITS; // 11

/** The packed value of the single real bit `b` (throws if b is not modelled). */
export function packedBit(b: number): number {
  if (!Number.isInteger(b) || b < 0 || b > 63) throw new RangeError(`bit ${b} is not a descriptor bit`);
  if (b < OA_BITS) return 2 ** b;
  if (b >= HI_REAL) return 2 ** (b - PACK_SHIFT);
  throw new RangeError(`real bit ${b} (OA above 2^${OA_BITS}) is not modelled`);
}

/** Real bits that have no packed counterpart: 39..49. */
export const UNMODELLED_RAW_MASK = ((1n << 50n) - 1n) & ~((1n << 39n) - 1n);
const LOW_MASK_BIG = (1n << 39n) - 1n;

/** The real 64-bit descriptor for a packed value. */
export function toRaw64(v: number): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a packed descriptor: ${v}`);
  const hi = Math.floor(v / HI_UNIT);
  const lo = v - hi * HI_UNIT;
  return BigInt(lo) | (BigInt(hi) << 50n);
}

/** Can this real 64-bit descriptor be held in the packed form? */
export function isRepresentableRaw64(b: bigint): boolean {
  return b >= 0n && b < 1n << 64n && (b & UNMODELLED_RAW_MASK) === 0n;
}

/** The packed value for a real 64-bit descriptor (exact inverse of toRaw64). */
export function fromRaw64(b: bigint): number {
  if (!isRepresentableRaw64(b)) throw new RangeError(`descriptor 0x${b.toString(16)} uses bits outside the model (39..49, or not 64-bit)`);
  return Number(b & LOW_MASK_BIG) + Number(b >> 50n) * HI_UNIT;
}

// The halves are taken by floor-and-subtract (not `%`: see modPow2()), exact
// for packed values, which are non-negative integers.
const SPLIT = 2 ** 26;
/** a & b on packed values. */
export function bitAnd(a: number, b: number): number {
  const ah = Math.floor(a / SPLIT);
  const bh = Math.floor(b / SPLIT);
  return (ah & bh) * SPLIT + ((a - ah * SPLIT) & (b - bh * SPLIT));
}
/** a | b on packed values. */
export function bitOr(a: number, b: number): number {
  const ah = Math.floor(a / SPLIT);
  const bh = Math.floor(b / SPLIT);
  return (ah | bh) * SPLIT + ((a - ah * SPLIT) | (b - bh * SPLIT));
}
/** a & ~b on packed values. */
export function bitAndNot(a: number, b: number): number {
  const ah = Math.floor(a / SPLIT);
  const bh = Math.floor(b / SPLIT);
  return (ah & ~bh) * SPLIT + ((a - ah * SPLIT) & ~(b - bh * SPLIT));
}
/** a ^ b on packed values. */
export function bitXor(a: number, b: number): number {
  const ah = Math.floor(a / SPLIT);
  const bh = Math.floor(b / SPLIT);
  return (ah ^ bh) * SPLIT + ((a - ah * SPLIT) ^ (b - bh * SPLIT));
}

// Single-bit test/set/clear for any packed single-bit constant.
function has(v: number, bit: number): boolean {
  return bit < 0x40000000 ? (v & bit) !== 0 : (Math.floor(v / bit) & 1) === 1;
}
function setF(v: number, bit: number): number {
  return has(v, bit) ? v : v + bit;
}
function clearF(v: number, bit: number): number {
  return has(v, bit) ? v - bit : v;
}
function hi(v: number): number {
  return Math.floor(v / HI_UNIT);
}

// ---------------------------------------------------------------------------
// Descriptor bits (packed values). RAW_BIT gives the real bit positions.

export const RAW_BIT = {
  VALID: 0,
  TABLE: 1,
  ATTRINDX: 2,
  NS: 5,
  USER: 6,
  RDONLY: 7,
  SH: 8,
  AF: 10,
  NG: 11,
  GP: 50,
  DBM: 51,
  CONT: 52,
  PXN: 53,
  UXN: 54,
  DIRTY: 55,
  SPECIAL: 56,
  SW57: 57,
  UFFD_WP: 58,
  TABLE_PXN: 59,
  PO_IDX_0: 60,
  PO_IDX_1: 61,
  PO_IDX_2: 62,
  SW63: 63,
  SWP_EXCLUSIVE: 2,
  SWP_UFFD_WP: 3,
  SWP_TYPE_SHIFT: 6,
  SWP_OFFSET_SHIFT: 12,
} as const;

export const PTE_VALID = 0x1;
export const PTE_TABLE_BIT = 0x2;
export const PTE_TYPE_MASK = 0x3;
export const PTE_TYPE_PAGE = 0x3;
export const PMD_TYPE_MASK = 0x3;
export const PMD_TYPE_TABLE = 0x3;
export const PMD_TYPE_SECT = 0x1;
export const PTE_ATTRINDX_MASK = 0x1c;
export const PTE_NS = 0x20;
export const PTE_USER = 0x40; // AP[1]
export const PTE_RDONLY = 0x80; // AP[2]
export const PTE_SHARED = 0x300; // SH = inner shareable
export const PTE_AF = 0x400;
export const PTE_NG = 0x800;
export const PMD_TABLE_AF = PTE_AF; // table descriptors (ignored without FEAT_HAFT)
// v6.17: PTE_PRESENT_INVALID is PTE_NG, only meaningful while VALID is clear
// (earlier kernels: PTE_PROT_NONE at bit 58, then PTE_PRESENT_INVALID at 59).
export const PTE_PRESENT_INVALID = PTE_NG;

const H_GP = 1 << 0;
const H_DBM = 1 << 1;
const H_CONT = 1 << 2;
const H_PXN = 1 << 3;
const H_UXN = 1 << 4;
const H_DIRTY = 1 << 5;
const H_SPECIAL = 1 << 6;
const H_UFFD_WP = 1 << 8;

export const PTE_GP = H_GP * HI_UNIT; // real 50
export const PTE_DBM = H_DBM * HI_UNIT; // real 51
export const PTE_WRITE = PTE_DBM;
export const PTE_CONT = H_CONT * HI_UNIT; // real 52
export const PTE_PXN = H_PXN * HI_UNIT; // real 53
export const PTE_UXN = H_UXN * HI_UNIT; // real 54
export const PTE_DIRTY = H_DIRTY * HI_UNIT; // real 55
export const PTE_SPECIAL = H_SPECIAL * HI_UNIT; // real 56
export const PTE_SW_57 = (1 << 7) * HI_UNIT; // real 57, unused at v6.17
export const PTE_UFFD_WP = H_UFFD_WP * HI_UNIT; // real 58
export const PMD_TABLE_PXN = (1 << 9) * HI_UNIT; // real 59 (table descriptors)
export const PTE_PO_IDX_0 = (1 << 10) * HI_UNIT; // real 60
export const PTE_PO_IDX_1 = (1 << 11) * HI_UNIT; // real 61
export const PTE_PO_IDX_2 = (1 << 12) * HI_UNIT; // real 62
export const PMD_TABLE_UXN = PTE_PO_IDX_0; // real 60 (table descriptors)
export const PTE_SW_63 = (1 << 13) * HI_UNIT; // real 63
export const PTE_PO_IDX_MASK = PTE_PO_IDX_0 + PTE_PO_IDX_1 + PTE_PO_IDX_2;
// Software bits: real 55..58 and 63.
export const PTE_SWBITS_MASK = PTE_DIRTY + PTE_SPECIAL + PTE_SW_57 + PTE_UFFD_WP + PTE_SW_63;

// Swap-entry-only bits.
export const PTE_SWP_EXCLUSIVE = 0x4;
export const PTE_SWP_UFFD_WP = 0x8;

// MAIR slots (arch/arm64/include/asm/memory.h).
export const MT_NORMAL = 0;
export const MT_NORMAL_TAGGED = 1;
export const MT_NORMAL_NC = 2;
export const MT_DEVICE_nGnRnE = 3;
export const MT_DEVICE_nGnRE = 4;
export function pteAttrindx(mt: number): number {
  return (mt & 7) << 2;
}

// Protections (pgtable-prot.h, non-LPA2, so SH is set).
const PAGE_DEFAULT = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | pteAttrindx(MT_NORMAL); // 0x703
const USER_RO = PAGE_DEFAULT | PTE_USER | PTE_RDONLY | PTE_NG; // 0xfc3
export const PAGE_NONE = ((PAGE_DEFAULT & ~PTE_VALID) | PTE_PRESENT_INVALID | PTE_RDONLY | PTE_NG) + PTE_PXN + PTE_UXN;
export const PAGE_READONLY = USER_RO + PTE_PXN + PTE_UXN;
export const PAGE_READONLY_EXEC = USER_RO + PTE_PXN;
export const PAGE_EXECONLY = (PAGE_DEFAULT | PTE_RDONLY | PTE_NG) + PTE_PXN;
// Shared writable pages start clean: WRITE and RDONLY both set.
export const PAGE_SHARED = USER_RO + PTE_PXN + PTE_UXN + PTE_WRITE;
export const PAGE_SHARED_EXEC = USER_RO + PTE_PXN + PTE_WRITE;
// Kernel protections, taking arm64_use_ng_mappings = false (no nG). At v6.17
// they carry no PTE_DIRTY (later kernels add it back).
export const PAGE_KERNEL = PAGE_DEFAULT + PTE_PXN + PTE_UXN + PTE_WRITE;
export const PAGE_KERNEL_RO = (PAGE_DEFAULT | PTE_RDONLY) + PTE_PXN + PTE_UXN;
export const PAGE_KERNEL_ROX = (PAGE_DEFAULT | PTE_RDONLY) + PTE_UXN;
export const PAGE_KERNEL_EXEC = PAGE_DEFAULT + PTE_UXN + PTE_WRITE;

// ---------------------------------------------------------------------------
// Predicates (granule independent). As in the kernel, most only mean something
// for present entries.

export function pteNone(v: number): boolean {
  return v === 0;
}
export function pteValid(v: number): boolean {
  return (v & PTE_VALID) !== 0;
}
export function ptePresentInvalid(v: number): boolean {
  return (v & (PTE_VALID | PTE_PRESENT_INVALID)) === PTE_PRESENT_INVALID;
}
// pte_present(): valid, or present-invalid (PROT_NONE, NUMA hinting, pmd_mkinvalid).
export function ptePresent(v: number): boolean {
  return (v & PTE_VALID) !== 0 || (v & PTE_PRESENT_INVALID) !== 0;
}
export function pteWrite(v: number): boolean {
  return (hi(v) & H_DBM) !== 0;
}
export function pteRdonly(v: number): boolean {
  return (v & PTE_RDONLY) !== 0;
}
export function pteUser(v: number): boolean {
  return (v & PTE_USER) !== 0;
}
export function pteUserExec(v: number): boolean {
  return (hi(v) & H_UXN) === 0;
}
/** Executable at EL0 (pte_user_exec); the counterpart of x86's pteExec. */
export const pteExec = pteUserExec;
export function pteKernelExec(v: number): boolean {
  return (hi(v) & H_PXN) === 0;
}
// Hardware dirty: writable (DBM) and AP[2] clear.
export function pteHwDirty(v: number): boolean {
  return (hi(v) & H_DBM) !== 0 && (v & PTE_RDONLY) === 0;
}
export function pteSwDirty(v: number): boolean {
  return (hi(v) & H_DIRTY) !== 0;
}
export function pteDirty(v: number): boolean {
  const h = hi(v);
  return (h & H_DIRTY) !== 0 || ((h & H_DBM) !== 0 && (v & PTE_RDONLY) === 0);
}
export function pteYoung(v: number): boolean {
  return (v & PTE_AF) !== 0;
}
export function pteSpecial(v: number): boolean {
  return (hi(v) & H_SPECIAL) !== 0;
}
export function pteCont(v: number): boolean {
  return (hi(v) & H_CONT) !== 0;
}
export function pteValidCont(v: number): boolean {
  return (v & PTE_VALID) !== 0 && (hi(v) & H_CONT) !== 0;
}
export function pteUffdWp(v: number): boolean {
  return (hi(v) & H_UFFD_WP) !== 0;
}
export function pteGuarded(v: number): boolean {
  return (hi(v) & H_GP) !== 0;
}
export function pteAttrIndx(v: number): number {
  return (v >>> 2) & 7;
}
export function pteTagged(v: number): boolean {
  return pteAttrIndx(v) === MT_NORMAL_TAGGED;
}
// pte_protnone(): present-invalid with neither user read nor user exec; a
// pmd_mkinvalid()ed THP is present-invalid without being PROT_NONE.
export function pteProtnone(v: number): boolean {
  return ptePresentInvalid(v) && (v & PTE_USER) === 0 && (hi(v) & H_UXN) !== 0;
}
/** Is a valid entry accessible to EL0 (pte_access_permitted without overlays)? */
export function pteAccessPermitted(v: number, write: boolean): boolean {
  return (v & (PTE_VALID | PTE_USER)) === (PTE_VALID | PTE_USER) && (!write || pteWrite(v));
}

// ---------------------------------------------------------------------------
// Modifiers (granule independent).

/** v6.17 pte_mkwrite_novma(): set WRITE and clear RDONLY unconditionally, so a clean entry becomes hardware-dirty. */
export function pteMkwrite(v: number): number {
  return clearF(setF(v, PTE_WRITE), PTE_RDONLY);
}
/**
 * pte_mkwrite_novma() after commit 143937ca51cc ("avoid always making PTE
 * dirty in pte_mkwrite()", v6.18 cycle): RDONLY is cleared only if the entry
 * is software-dirty, so writable-clean stays clean. Not v6.17 behaviour.
 */
export function pteMkwriteKeepClean(v: number): number {
  v = setF(v, PTE_WRITE);
  return pteSwDirty(v) ? clearF(v, PTE_RDONLY) : v;
}
/** Move hardware dirtiness to PTE_DIRTY, then clear WRITE and set RDONLY: dirtiness is never lost. */
export function pteWrprotect(v: number): number {
  // The high half is read once (fork and mprotect do this per entry).
  const h = hi(v);
  if ((h & H_DBM) !== 0) {
    if ((v & PTE_RDONLY) === 0 && (h & H_DIRTY) === 0) v += PTE_DIRTY;
    v -= PTE_WRITE;
  }
  return (v & PTE_RDONLY) !== 0 ? v : v + PTE_RDONLY;
}
/** Set PTE_DIRTY; clear RDONLY only if WRITE is set (dirtying never grants write). */
export function pteMkdirty(v: number): number {
  v = setF(v, PTE_DIRTY);
  return pteWrite(v) ? clearF(v, PTE_RDONLY) : v;
}
export function pteMkclean(v: number): number {
  return setF(clearF(v, PTE_DIRTY), PTE_RDONLY);
}
export function pteMkyoung(v: number): number {
  return setF(v, PTE_AF);
}
export function pteMkold(v: number): number {
  return clearF(v, PTE_AF);
}
export function pteMkspecial(v: number): number {
  return setF(v, PTE_SPECIAL);
}
export function pteMkcont(v: number): number {
  return setF(v, PTE_CONT);
}
export function pteMknoncont(v: number): number {
  return clearF(v, PTE_CONT);
}
export function pteMkvalid(v: number): number {
  return setF(v, PTE_VALID);
}
/** pte_mkinvalid(): present-invalid (set nG-as-PRESENT_INVALID, clear VALID). */
export function pteMkinvalid(v: number): number {
  return clearF(setF(v, PTE_PRESENT_INVALID), PTE_VALID);
}
export function pteMkuffdWp(v: number): number {
  return pteWrprotect(setF(v, PTE_UFFD_WP));
}
export function pteClearUffdWp(v: number): number {
  return clearF(v, PTE_UFFD_WP);
}

// pte_modify(): these bits come from newprot (nG too, as PRESENT_INVALID);
// everything else (OA, AF, SH, NS, CONT, DIRTY, SPECIAL, UFFD_WP) stays.
export const PTE_MODIFY_MASK =
  PTE_USER + PTE_PXN + PTE_UXN + PTE_RDONLY + PTE_PRESENT_INVALID + PTE_VALID + PTE_WRITE + PTE_GP + PTE_ATTRINDX_MASK + PTE_PO_IDX_MASK;
// The mask's bits lie in real bits 0..11 and in the high half only, so
// v & mask is (v & MODIFY_LO) + (hi(v) & MODIFY_HI) * HI_UNIT: one high-half
// read per operand instead of bitOr(bitAndNot(), bitAnd()) (the same value).
const MODIFY_LO = PTE_MODIFY_MASK % HI_UNIT;
const MODIFY_HI = Math.floor(PTE_MODIFY_MASK / HI_UNIT);
if (MODIFY_LO >= 0x1000) throw new Error("model bug: PTE_MODIFY_MASK has bits in 12..38");
export function pteModify(v: number, newprot: number): number {
  let h = hi(v);
  // pte_hw_dirty(): move it to PTE_DIRTY.
  if ((h & H_DBM) !== 0 && (v & PTE_RDONLY) === 0 && (h & H_DIRTY) === 0) {
    v += PTE_DIRTY;
    h |= H_DIRTY;
  }
  const nh = hi(newprot);
  v += (newprot & MODIFY_LO) - (v & MODIFY_LO) + ((nh & MODIFY_HI) - (h & MODIFY_HI)) * HI_UNIT;
  h = (h & ~MODIFY_HI) | (nh & MODIFY_HI);
  // Restore hardware dirtiness if newprot left a sw-dirty entry RDONLY but
  // writable (pte_mkdirty(): DIRTY is already set).
  if ((h & H_DIRTY) !== 0 && (h & H_DBM) !== 0 && (v & PTE_RDONLY) !== 0) v -= PTE_RDONLY;
  return v;
}

// __pte_batch_clear_ignored() for folio_pte_batch() (mm/internal.h): arm64
// has no soft-dirty; AF is always ignored.
export function pteBatchNorm(v: number, respectDirty: boolean, respectWrite: boolean): number {
  if (!respectDirty) v = pteMkclean(v);
  if (!respectWrite) v = pteWrprotect(v);
  return pteMkold(v);
}

// ---------------------------------------------------------------------------
// Table / block descriptors (PMD/PUD levels).

export function pmdTable(v: number): boolean {
  return (v & PMD_TYPE_MASK) === PMD_TYPE_TABLE;
}
export function pmdSect(v: number): boolean {
  return (v & PMD_TYPE_MASK) === PMD_TYPE_SECT;
}
/** pmd_bad(): anything that is not a table descriptor. */
export function pmdBad(v: number): boolean {
  return !pmdTable(v);
}
/** An upper-level entry that points to a next-level table. */
export function entryIsTable(v: number): boolean {
  return (v & PMD_TYPE_MASK) === PMD_TYPE_TABLE;
}
/** pmd_leaf()/pud_leaf(): present (valid or present-invalid) and not a table. */
export function entryIsLeaf(v: number): boolean {
  return ptePresent(v) && (v & PMD_TYPE_MASK) !== PMD_TYPE_TABLE;
}
/** pmd_trans_huge(): present and not a table once VALID is forced on. */
export function pmdTransHuge(v: number): boolean {
  return ptePresent(v) && (v & PTE_TABLE_BIT) === 0;
}
/** pmd_mkhuge()/pud_mkhuge(): block descriptor, clearing only the TABLE bit so a present-invalid entry stays so. */
export function pmdMkhuge(v: number): number {
  return clearF(v, PTE_TABLE_BIT);
}
export const pmdMkinvalid = pteMkinvalid;
/** A PMD leaf that is present for software but not valid for the walker (pmd_mkinvalid(), PROT_NONE). */
export function pmdLeafInvalid(v: number): boolean {
  return (v & PTE_VALID) === 0 && entryIsLeaf(v);
}

// ---------------------------------------------------------------------------
// Swap entries (granule independent): bits 0-1 zero, bit 2 exclusive, bit 3
// uffd-wp, bits 6-10 type, bit 11 zero, bits 12-61 offset. The model holds
// offsets below 2^27 (real bits 12..38).

export const SWP_TYPE_SHIFT = 6;
export const SWP_TYPE_BITS = 5;
export const SWP_OFFSET_SHIFT = 12;
export const SWP_OFFSET_BITS = 50; // kernel field width
export const MAX_SWP_TYPES = 1 << SWP_TYPE_BITS;
export const SWP_OFFSET_LIMIT = 2 ** (OA_BITS - SWP_OFFSET_SHIFT); // modelled: offset < 2^27

export function mkSwapEntry(type: number, offset: number): number {
  if (!Number.isInteger(type) || type < 0 || type >= MAX_SWP_TYPES) throw new RangeError(`swap type ${type} out of range`);
  if (!Number.isInteger(offset) || offset < 0 || offset >= SWP_OFFSET_LIMIT) throw new RangeError(`swap offset ${offset} out of modelled range`);
  return type * 2 ** SWP_TYPE_SHIFT + offset * 2 ** SWP_OFFSET_SHIFT;
}
export function swpType(v: number): number {
  return (v >>> SWP_TYPE_SHIFT) & (MAX_SWP_TYPES - 1);
}
// The kernel's 50-bit offset field: real bits 12..38 (packed in place), 39..49
// (never set in the model) and 50..61 (packed 39..50).
export function swpOffset(v: number): number {
  const low = Math.floor(modPow2(v, HI_UNIT) / 2 ** SWP_OFFSET_SHIFT);
  return low + (hi(v) % 2 ** 12) * 2 ** (HI_REAL - SWP_OFFSET_SHIFT);
}
/** is_swap_pte(): neither none nor present. */
export function isSwapPte(v: number): boolean {
  return v !== 0 && !ptePresent(v);
}
export function pteSwpExclusive(v: number): boolean {
  return (v & PTE_SWP_EXCLUSIVE) !== 0;
}
export function pteSwpMkexclusive(v: number): number {
  return setF(v, PTE_SWP_EXCLUSIVE);
}
export function pteSwpClearExclusive(v: number): number {
  return clearF(v, PTE_SWP_EXCLUSIVE);
}
// Migration entries: swap types SWP_MIGRATION_READ.. (arch.ts), the offset
// the PFN. v6.17 keeps the young and dirty bits at offset bits SWP_PFN_BITS
// and above (MAX_PHYSMEM_BITS - PAGE_SHIFT: real bits 48-49 with 48-bit
// physical addresses, which the model does not hold); the model keeps them
// at offset bits 38 and 39 (real bits 50 and 51).
const MIG_YOUNG_BIT = 50;
const MIG_DIRTY_BIT = 51;
export function mkMigrationPte(pfn: number, kind: number, young: boolean, dirty: boolean): number {
  let v = mkSwapEntry(SWP_MIGRATION_READ + kind, pfn);
  if (young) v += packedBit(MIG_YOUNG_BIT);
  if (dirty) v += packedBit(MIG_DIRTY_BIT);
  return v;
}
export function isMigrationPte(v: number): boolean {
  if (!isSwapPte(v)) return false;
  const t = swpType(v) - SWP_MIGRATION_READ;
  return t >= 0 && t <= MIG_WRITE;
}
export function migrationPfn(v: number): number {
  return swpOffset(v) % SWP_OFFSET_LIMIT;
}
export function migrationKind(v: number): number {
  return swpType(v) - SWP_MIGRATION_READ;
}
export function migrationYoung(v: number): boolean {
  return (hi(v) & packedHi(MIG_YOUNG_BIT)) !== 0;
}
export function migrationDirty(v: number): boolean {
  return (hi(v) & packedHi(MIG_DIRTY_BIT)) !== 0;
}
function packedHi(b: number): number {
  return packedBit(b) / HI_UNIT;
}
// PMD migration entries: __swp_entry_to_pmd() and pmd_present() are the
// PTE ones (pmd_pte()), so the entry is mkMigrationPte()'s value, granule
// independent; is_pmd_migration_entry() is is_swap_pmd() (not none, not
// present: neither VALID nor PTE_PRESENT_INVALID) of a migration type.
export function mkMigrationPmd(pfn: number, kind: number, young: boolean, dirty: boolean): number {
  return mkMigrationPte(pfn, kind, young, dirty);
}
export function isMigrationPmd(v: number): boolean {
  return isMigrationPte(v);
}
export function pteSwpUffdWp(v: number): boolean {
  return (v & PTE_SWP_UFFD_WP) !== 0;
}
export function pteSwpMkuffdWp(v: number): number {
  return setF(v, PTE_SWP_UFFD_WP);
}
export function pteSwpClearUffdWp(v: number): number {
  return clearF(v, PTE_SWP_UFFD_WP);
}

// ---------------------------------------------------------------------------
// Live-update rules (arch/arm64/mm/mmu.c pgattr_change_is_safe() and
// asm/pgtable.h __check_safe_pte_update(), v6.17).

export const PGATTR_SAFE_MASK = PTE_PXN + PTE_RDONLY + PTE_WRITE + PTE_NG + PTE_SWBITS_MASK;
function normalOrTagged(v: number): boolean {
  const a = pteAttrIndx(v);
  return a === MT_NORMAL || a === MT_NORMAL_TAGGED;
}
/**
 * May a live entry change from old to new without break-before-make?
 * Invalid→anything and anything→invalid: yes. Valid→valid: only if the OA is
 * unchanged, neither side has CONT, nG is not cleared, and every differing bit
 * is PXN, RDONLY, WRITE(DBM), nG or a software bit (55..58, 63), or AttrIndx
 * when both sides are Normal / Normal-Tagged. AF, UXN, USER, SH, GP and CONT
 * changes need BBM. (The kernel also compares PFNs first; the final XOR check
 * already covers that, whatever the granule.)
 */
export function pgattrChangeIsSafe(oldv: number, newv: number): boolean {
  if ((oldv & PTE_VALID) === 0 || (newv & PTE_VALID) === 0) return true;
  if (pteCont(oldv) || pteCont(newv)) return false;
  if ((oldv & PTE_NG) !== 0 && (newv & PTE_NG) === 0) return false;
  let mask = PGATTR_SAFE_MASK;
  if (normalOrTagged(oldv) && normalOrTagged(newv)) mask += PTE_ATTRINDX_MASK;
  return bitAndNot(bitXor(oldv, newv), mask) === 0;
}
/**
 * The DEBUG_VM warnings __check_safe_pte_update() would give for a plain
 * store of newv over oldv (ignoring its "mm not live" early exit).
 */
export function checkSafePteUpdate(oldv: number, newv: number): string[] {
  if (!pteValid(oldv) || !pteValid(newv)) return [];
  const out: string[] = [];
  if (!pteYoung(newv)) out.push("racy access flag clearing");
  if (pteWrite(oldv) && !pteDirty(newv)) out.push("racy dirty state clearing");
  if (!pgattrChangeIsSafe(oldv, newv)) out.push("unsafe attribute change");
  return out;
}

// ---------------------------------------------------------------------------
// Hardware view (FEAT_HAFDBS). TLB_* bits as src/core/hw/tlb.ts defines them.

/**
 * EL0 data-access permissions of a leaf as TLB_* bits, or -1 if EL0 cannot
 * read it (invalid, no AP[1], or AF clear without hardware AF management).
 * TLB_W: a write completes without a fault (AP[2] clear, or DBM with hardware
 * DBM); TLB_D: writes need no descriptor update (AP[2] clear).
 */
export function leafPerm(v: number, hwAf = true, hwDbm = true): number {
  if ((v & (PTE_VALID | PTE_USER)) !== (PTE_VALID | PTE_USER)) return -1;
  if (!hwAf && (v & PTE_AF) === 0) return -1;
  const h = hi(v);
  let perm = TLB_U;
  if ((v & PTE_RDONLY) === 0) perm |= TLB_W | TLB_D;
  else if (hwDbm && (h & H_DBM) !== 0) perm |= TLB_W;
  if ((h & H_UXN) === 0) perm |= TLB_X;
  return perm;
}
/** Hardware AF/dirty update on an access: set AF; on a write to a DBM entry, clear AP[2]. */
export function hwMkyoungDirty(v: number, write: boolean, hwAf = true, hwDbm = true): number {
  if (hwAf) v = setF(v, PTE_AF);
  if (write && hwDbm && (hi(v) & H_DBM) !== 0) v = clearF(v, PTE_RDONLY);
  return v;
}
/** Would a hardware write through this entry succeed without a fault? */
export function hwWritable(v: number, hwDbm = true): boolean {
  const p = leafPerm(v, true, hwDbm);
  return p >= 0 && (p & TLB_W) !== 0;
}

// ---------------------------------------------------------------------------
// vm_get_page_prot(): arm64's protection_map (arch/arm64/mm/mmap.c). Private
// writable mappings get read-only entries (there is no separate PAGE_COPY).

export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;

export interface ProtOptions {
  /** FEAT_EPAN: VM_EXEC without VM_READ gives PAGE_EXECONLY instead of PAGE_READONLY_EXEC. */
  epan?: boolean;
  /** VM_ARM64_BTI: add PTE_GP. */
  bti?: boolean;
  /** VM_MTE: Normal-Tagged memory type. */
  mte?: boolean;
}
export function vmGetPageProt(vmFlags: number, opts: ProtOptions = {}): number {
  const r = (vmFlags & VM_READ) !== 0;
  const w = (vmFlags & VM_WRITE) !== 0;
  const x = (vmFlags & VM_EXEC) !== 0;
  const shared = (vmFlags & VM_SHARED) !== 0;
  let prot: number;
  if (x) {
    if (shared && w) prot = PAGE_SHARED_EXEC;
    else if (opts.epan && !r && !w) prot = PAGE_EXECONLY;
    else prot = PAGE_READONLY_EXEC;
  } else if (shared && w) prot = PAGE_SHARED;
  else if (r || w) prot = PAGE_READONLY;
  else prot = PAGE_NONE;
  if (opts.bti) prot += PTE_GP;
  if (opts.mte) prot += pteAttrindx(MT_NORMAL_TAGGED);
  return prot;
}

// ---------------------------------------------------------------------------
// Geometry per granule.

const PAGE_SHIFT: Record<Granule, number> = { 4: 12, 16: 14, 64: 16 };
const CONT_PTE_SHIFT_CFG: Record<Granule, number> = { 4: 4, 16: 7, 64: 5 }; // CONFIG_ARM64_CONT_PTE_SHIFT
const CONT_PMD_SHIFT_CFG: Record<Granule, number> = { 4: 4, 16: 5, 64: 5 }; // CONFIG_ARM64_CONT_PMD_SHIFT
// VA sizes arch/arm64/Kconfig offers per granule.
export const VA_BITS_CHOICES: Record<Granule, readonly number[]> = { 4: [39, 48, 52], 16: [36, 47, 48, 52], 64: [42, 48, 52] };
// "39, 48 or 52": the choices as error messages name them.
export function vaBitsChoicesText(granule: Granule): string {
  const c = VA_BITS_CHOICES[granule];
  return `${c.slice(0, -1).join(", ")} or ${c.at(-1)}`;
}

export function pageShiftOf(granule: Granule): number {
  const s = PAGE_SHIFT[granule];
  if (s === undefined) throw new RangeError(`granule ${granule}K is not 4K, 16K or 64K`);
  return s;
}
/** ARM64_HW_PGTABLE_LEVELS(va_bits) for a Kconfig-offered VA size. */
export function pgtableLevels(granule: Granule, vaBits: number): number {
  const ps = pageShiftOf(granule);
  if (!VA_BITS_CHOICES[granule].includes(vaBits)) throw new RangeError(`${vaBits}-bit VA is not offered with the ${granule}K granule`);
  return Math.floor((vaBits - 4) / (ps - 3));
}

export interface Arm64Geometry {
  readonly granule: Granule;
  readonly pageShift: number;
  readonly pageSize: number;
  readonly ptrsPerTable: number; // PTRS_PER_PTE (= per PMD/PUD table)
  readonly pmdShift: number;
  readonly pmdSize: number; // one PTE table covers this
  readonly pudShift: number;
  readonly pudSize: number;
  readonly pudSectSupported: boolean; // PUD block mappings: 4K only
  readonly contPtes: number;
  readonly contPteSize: number;
  readonly contPmds: number;
  readonly contPmdSize: number;
  readonly maxPfn: number; // exclusive bound the packing can hold
}
export function arm64Geometry(granule: Granule): Arm64Geometry {
  const pageShift = pageShiftOf(granule);
  const bitsPerLevel = pageShift - 3;
  const pmdShift = bitsPerLevel * 2 + 3;
  const pudShift = bitsPerLevel * 3 + 3;
  const contPtes = 2 ** CONT_PTE_SHIFT_CFG[granule];
  const contPmds = 2 ** CONT_PMD_SHIFT_CFG[granule];
  return {
    granule,
    pageShift,
    pageSize: 2 ** pageShift,
    ptrsPerTable: 2 ** bitsPerLevel,
    pmdShift,
    pmdSize: 2 ** pmdShift,
    pudShift,
    pudSize: 2 ** pudShift,
    pudSectSupported: granule === 4,
    contPtes,
    contPteSize: contPtes * 2 ** pageShift,
    contPmds,
    contPmdSize: contPmds * 2 ** pmdShift,
    maxPfn: 2 ** (OA_BITS - pageShift),
  };
}

// ---------------------------------------------------------------------------
// The granule-bound encoding.

export interface Arm64Options extends ProtOptions {
  /** Use the post-v6.17 pte_mkwrite (keeps clean entries clean). Default false (v6.17). */
  mkwriteKeepsClean?: boolean;
  /** FEAT_HAFDBS: hardware Access Flag management (default true). */
  hwAf?: boolean;
  /** FEAT_HAFDBS: hardware dirty-bit management via DBM (default true). */
  hwDbm?: boolean;
}

export interface Arm64Encoding extends Arm64Geometry {
  levels(vaBits: number): number;
  ptePfn(v: number): number;
  pfnPte(pfn: number, pgprot: number): number;
  ptePgprot(v: number): number;
  pteAdvancePfn(v: number, n: number): number;
  pmdPfn(v: number): number;
  pfnPmd(pfn: number, pgprot: number): number;
  pmdLeafToPte(pmdv: number, i: number): number;
  mkTableEntry(tablePfn: number, kernel?: boolean): number;
  pteMkwrite(v: number): number;
  vmGetPageProt(vmFlags: number): number;
  leafPerm(v: number): number;
  hwMkyoungDirty(v: number, write: boolean): number;
  hwWritable(v: number): boolean;
  describeEntry(v: number): string;
}

export function arm64Encoding(granule: Granule, opts: Arm64Options = {}): Arm64Encoding {
  const g = arm64Geometry(granule);
  const { pageSize, pageShift, maxPfn, pmdShift } = g;
  const pmdPages = 2 ** (pmdShift - pageShift);
  const hwAf = opts.hwAf ?? true;
  const hwDbm = opts.hwDbm ?? true;
  const prot: ProtOptions = { epan: opts.epan, bti: opts.bti, mte: opts.mte };

  function ptePfn(v: number): number {
    return Math.floor(modPow2(v, HI_UNIT) / pageSize);
  }
  function checkPfn(pfn: number): void {
    if (!(pfn >= 0 && pfn < maxPfn) || !Number.isInteger(pfn)) throw new RangeError(`pfn ${pfn} outside the modelled ${OA_BITS}-bit physical space`);
  }
  function pfnPte(pfn: number, pgprot: number): number {
    checkPfn(pfn);
    if (modPow2(pgprot, HI_UNIT) >= pageSize) throw new RangeError("pgprot carries output-address bits");
    return pfn * pageSize + pgprot;
  }
  function ptePgprot(v: number): number {
    return v - ptePfn(v) * pageSize;
  }
  function pmdPfn(v: number): number {
    const p = ptePfn(v);
    return p - (p % pmdPages);
  }
  return {
    ...g,
    levels: (vaBits: number) => pgtableLevels(granule, vaBits),
    ptePfn,
    pfnPte,
    ptePgprot,
    // pfnPte(ptePfn(v) + n, ptePgprot(v)): the pgprot check cannot fail and
    // the sum is v + n * pageSize.
    pteAdvancePfn(v: number, n: number): number {
      checkPfn(ptePfn(v) + n);
      return v + n * pageSize;
    },
    pmdPfn,
    pfnPmd: pfnPte,
    // The PTE for page i of a PMD block: same attributes, page type (TABLE
    // bit set; VALID untouched so a present-invalid block gives present-invalid
    // PTEs), and no CONT (a block's CONT means CONT_PMDS, not CONT_PTES).
    pmdLeafToPte(pmdv: number, i: number): number {
      const base = pmdPfn(pmdv);
      const attrs = pmdv - ptePfn(pmdv) * pageSize;
      return pfnPte(base + i, clearF(setF(attrs, PTE_TABLE_BIT), PTE_CONT));
    },
    // pmd_populate() (user: PXNTable) / pmd_populate_kernel() (UXNTable);
    // pud/p4d/pgd_populate() use the same choice.
    mkTableEntry(tablePfn: number, kernel = false): number {
      return pfnPte(tablePfn, PMD_TYPE_TABLE + PMD_TABLE_AF + (kernel ? PMD_TABLE_UXN : PMD_TABLE_PXN));
    },
    pteMkwrite: opts.mkwriteKeepsClean ? pteMkwriteKeepClean : pteMkwrite,
    vmGetPageProt: (vmFlags: number) => vmGetPageProt(vmFlags, prot),
    leafPerm: (v: number) => leafPerm(v, hwAf, hwDbm),
    hwMkyoungDirty: (v: number, write: boolean) => hwMkyoungDirty(v, write, hwAf, hwDbm),
    hwWritable: (v: number) => hwWritable(v, hwDbm),
    describeEntry(v: number): string {
      if (v === 0) return "none";
      const raw = `0x${toRaw64(v).toString(16).padStart(16, "0")}`;
      if (isMigrationPte(v))
        return `migration ${MIG_NAMES[migrationKind(v)]} pfn=${migrationPfn(v)}${migrationYoung(v) ? " young" : ""}${migrationDirty(v) ? " dirty" : ""} (${raw})`;
      if (!ptePresent(v))
        return `swap type=${swpType(v)} offset=${swpOffset(v)}${pteSwpExclusive(v) ? " excl" : ""}${pteSwpUffdWp(v) ? " uffd-wp" : ""} (${raw})`;
      const f: string[] = [pteValid(v) ? "V" : "PRESENT_INVALID"];
      if ((v & PTE_TABLE_BIT) !== 0) f.push("T");
      if (pteUser(v)) f.push("USER");
      if (pteRdonly(v)) f.push("RDONLY");
      if (pteYoung(v)) f.push("AF");
      if (pteValid(v) && (v & PTE_NG) !== 0) f.push("nG");
      if (pteWrite(v)) f.push("WRITE");
      if (pteSwDirty(v)) f.push("DIRTY");
      if (pteCont(v)) f.push("CONT");
      if (!pteKernelExec(v)) f.push("PXN");
      if (!pteUserExec(v)) f.push("UXN");
      if (pteSpecial(v)) f.push("SPECIAL");
      if (pteUffdWp(v)) f.push("UFFD_WP");
      return `pfn=0x${ptePfn(v).toString(16)} ${f.join("|")} (${raw})`;
    },
  };
}
