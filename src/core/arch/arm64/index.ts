// The arm64 architecture object handed to generic mm code: the v6.17
// descriptor encoding (pgtable.ts), the contpte PTE hooks (contpte.ts), TLB
// maintenance (tlbflush.ts, arch/arm64/include/asm/tlbflush.h and tlb.h) and
// the ASID allocator (context.ts, arch/arm64/mm/context.c).

import type { Arch } from "../arch.js";
import type { Arm64Features } from "../../machine.js";
import { asidReachable, releaseContext, switchMm } from "./context.js";
import { arm64ContpteLayer } from "./contpte.js";
import * as P from "./pgtable.js";
import { flushTlbMm, flushTlbPage, flushTlbRange, tlbbatchAddPending, tlbbatchFlush, tlbbatchShouldDefer, tlbFlush } from "./tlbflush.js";

export function arm64(f: Arm64Features): Arch {
  const enc = P.arm64Encoding(f.granule, { hwAf: true, hwDbm: true });
  const levels = P.pgtableLevels(f.granule, f.vaBits);
  const { hooks } = arm64ContpteLayer(enc);
  const hafdbs = f.hafdbs;
  const contShift = enc.pageShift + Math.log2(enc.contPtes); // CONT_PTE_SHIFT

  // tlbEntryShift is typed here as well so the object type-checks whether or
  // not Arch declares it yet.
  const arch: Arch & { tlbEntryShift(v: number, level: number): number } = {
    ...hooks,
    name: "arm64",
    pageShift: enc.pageShift,
    ptrsPerTable: enc.ptrsPerTable,
    levels,
    // TASK_SIZE_64 and DEFAULT_MAP_WINDOW_64 (arch/arm64/include/asm/processor.h):
    // with 52-bit VAs, mmap stays below 2^48 unless given a hint above it.
    taskSize: 2 ** f.vaBits,
    mapWindow: 2 ** Math.min(f.vaBits, 48),
    pteNone: P.pteNone,
    ptePresent: P.ptePresent,
    pteWrite: P.pteWrite,
    pteDirty: P.pteDirty,
    pteYoung: P.pteYoung,
    pteSpecial: P.pteSpecial,
    ptePfn: enc.ptePfn,
    pfnPte: enc.pfnPte,
    pteMkwrite: enc.pteMkwrite,
    pteWrprotect: P.pteWrprotect,
    pteMkdirty: P.pteMkdirty,
    pteMkclean: P.pteMkclean,
    pteMkyoung: P.pteMkyoung,
    pteMkold: P.pteMkold,
    pteMkspecial: P.pteMkspecial,
    pteModify: P.pteModify,
    mkSwapPte: (offset: number, exclusive: boolean) => {
      const v = P.mkSwapEntry(0, offset);
      return exclusive ? P.pteSwpMkexclusive(v) : v;
    },
    isSwapPte: P.isSwapPte,
    swpOffset: P.swpOffset,
    pteSwpExclusive: P.pteSwpExclusive,
    pteSwpClearExclusive: P.pteSwpClearExclusive,
    mkMigrationPte: P.mkMigrationPte,
    isMigrationPte: P.isMigrationPte,
    migrationPfn: P.migrationPfn,
    migrationKind: P.migrationKind,
    migrationYoung: P.migrationYoung,
    migrationDirty: P.migrationDirty,
    mkMigrationPmd: P.mkMigrationPmd,
    isMigrationPmd: P.isMigrationPmd,
    vmGetPageProt: enc.vmGetPageProt,
    mkTableEntry: (pfn: number) => enc.mkTableEntry(pfn),
    entryIsTable: P.entryIsTable,
    entryIsLeaf: P.entryIsLeaf,
    pmdMkhuge: P.pmdMkhuge,
    pmdMkinvalid: P.pmdMkinvalid,
    pmdLeafInvalid: P.pmdLeafInvalid,
    pmdLeafToPte: enc.pmdLeafToPte,
    pteAdvancePfn: enc.pteAdvancePfn,
    pteBatchNorm: P.pteBatchNorm,
    // arm64 does not define pte_needs_flush() at v6.17 (only x86 does), so
    // the generic one in include/linux/pgtable.h applies: always flush.
    pteNeedsFlush: () => true,
    // Walk permissions assume the hardware would manage AF and DBM (a cached
    // entry stays usable after software makes the PTE old, as on real
    // hardware); without FEAT_HAFDBS the update itself is a fault.
    leafPerm: enc.leafPerm,
    hwMkyoungDirty(v: number, write: boolean): number {
      if (hafdbs) return enc.hwMkyoungDirty(v, write);
      // No hardware AF/dirty management: an access to an old entry takes an
      // access-flag fault, a write to a writable-clean (DBM, RDONLY) entry a
      // permission fault; software (handle_pte_fault) does the update.
      if (!P.pteYoung(v)) return -1;
      if (write && P.pteRdonly(v)) return -1;
      return v;
    },
    // The translation size a TLB entry made from this leaf covers: CONT_PTE
    // size for a valid CONT page descriptor, else the level's block size
    // (level 0 = PTE in the walker's numbering).
    tlbEntryShift(v: number, level: number): number {
      if (level === 0 && P.pteValidCont(v)) return contShift;
      return enc.pageShift + (enc.pageShift - 3) * level;
    },
    tlbFlush,
    flushTlbPage,
    flushTlbRange,
    flushTlbMm,
    tlbbatchShouldDefer,
    tlbbatchAddPending,
    tlbbatchFlush,
    switchMm,
    release: releaseContext,
    asidReachable,
    describeEntry: enc.describeEntry,
  };
  return arch;
}
