// The x86-64 architecture object handed to generic mm code.

import { type Arch, MIG_NAMES } from "../arch.js";
import { TLB_D, TLB_U, TLB_W, TLB_X } from "../../hw/tlb.js";
import { genericPteHooks } from "../../mm/pgtable_generic.js";
import * as P from "./pgtable.js";
import { asidReachable, flushTlbMmRange, switchMm, TLB_FLUSH_ALL, tlbbatchAddPending, tlbbatchFlush, tlbbatchShouldDefer, tlbFlush } from "./tlb.js";

export function x86_64(levels: 4 | 5): Arch {
  const hooks = genericPteHooks({
    pteDirty: P.pteDirty,
    pteYoung: P.pteYoung,
    pteMkdirty: P.pteMkdirty,
    pteMkyoung: P.pteMkyoung,
    pteMkold: P.pteMkold,
    pteMkclean: P.pteMkclean,
    pteWrprotect: P.pteWrprotect,
    pteWrite: P.pteWrite,
    pteAdvancePfn: (v: number, n: number) => v + n * 4096,
  });
  return {
    ...hooks,
    name: "x86_64",
    // ptep_clear_flush_young() (arch/x86/mm/pgtable.c): no flush; a stale
    // young TLB entry only delays reclaim, it cannot corrupt data.
    ptepClearFlushYoung: (m, mm, addr, e, i) => hooks.ptepTestAndClearYoung(m, mm, addr, e, i),
    pageShift: 12,
    ptrsPerTable: 512,
    levels,
    // TASK_SIZE_MAX and DEFAULT_MAP_WINDOW (arch/x86/include/asm/page_64_types.h).
    taskSize: (levels === 5 ? 2 ** 56 : 2 ** 47) - 4096,
    mapWindow: 2 ** 47 - 4096,
    pteNone: P.pteNone,
    ptePresent: P.ptePresent,
    pteWrite: P.pteWrite,
    pteDirty: P.pteDirty,
    pteYoung: P.pteYoung,
    pteSpecial: P.pteSpecial,
    ptePfn: P.ptePfn,
    pfnPte: P.pfnPte,
    pteMkwrite: P.pteMkwrite,
    pteWrprotect: P.pteWrprotect,
    pteMkdirty: P.pteMkdirty,
    pteMkclean: P.pteMkclean,
    pteMkyoung: P.pteMkyoung,
    pteMkold: P.pteMkold,
    pteMkspecial: P.pteMkspecial,
    pteModify: P.pteModify,
    mkSwapPte: P.mkSwapPte,
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
    vmGetPageProt: P.vmGetPageProt,
    mkTableEntry: P.mkTableEntry,
    entryIsTable: P.entryIsTable,
    entryIsLeaf: P.entryIsLeaf,
    pmdMkhuge: P.pteMkhuge,
    pmdMkinvalid: P.pmdMkinvalid,
    pmdLeafInvalid: P.pmdLeafInvalid,
    pmdLeafToPte: (v: number, i: number) => v - (v & P._PAGE_PSE) + i * 4096,
    pteAdvancePfn: (v: number, n: number) => v + n * 4096,
    tlbEntryShift: (_v: number, level: number) => 12 + 9 * level,
    pteBatchNorm(v: number, respectDirty: boolean, respectWrite: boolean): number {
      let r = v;
      if ((r & P._PAGE_ACCESSED) !== 0) r -= P._PAGE_ACCESSED;
      if ((r & P._PAGE_SOFT_DIRTY) !== 0) r -= P._PAGE_SOFT_DIRTY;
      if (!respectDirty && (r & P._PAGE_DIRTY) !== 0) r -= P._PAGE_DIRTY;
      if (!respectWrite && (r & P._PAGE_RW) !== 0) r -= P._PAGE_RW;
      return r;
    },
    // x86 pte_flags_need_flush() (arch/x86/include/asm/tlbflush.h): a flush is
    // needed when a hardware-present entry loses RW, gains NX, loses D, changes
    // PFN or stops being present; gaining permissions or A needs none.
    pteNeedsFlush(oldv: number, newv: number): boolean {
      if ((oldv & P._PAGE_PRESENT) === 0) return false;
      if ((newv & P._PAGE_PRESENT) === 0) return true;
      if (P.ptePfn(oldv) !== P.ptePfn(newv)) return true;
      if ((oldv & P._PAGE_RW) !== 0 && (newv & P._PAGE_RW) === 0) return true;
      if ((oldv & P._PAGE_DIRTY) !== 0 && (newv & P._PAGE_DIRTY) === 0) return true;
      if (oldv < P.NX && newv >= P.NX) return true;
      return false;
    },
    leafPerm(v: number): number {
      if ((v & P._PAGE_PRESENT) === 0 || (v & P._PAGE_USER) === 0) return -1;
      let perm = TLB_U;
      if ((v & P._PAGE_RW) !== 0) perm |= TLB_W;
      if ((v & P._PAGE_DIRTY) !== 0) perm |= TLB_D;
      if (v < P.NX) perm |= TLB_X;
      return perm;
    },
    hwMkyoungDirty(v: number, write: boolean): number {
      let n = P.pteMkyoung(v);
      if (write && (n & P._PAGE_DIRTY) === 0) n += P._PAGE_DIRTY;
      return n;
    },
    tlbFlush,
    flushTlbPage(m, mm, addr) {
      flushTlbMmRange(m, mm, addr, addr + 4096, 12, false);
    },
    flushTlbRange: flushTlbMmRange,
    flushTlbMm(m, mm) {
      flushTlbMmRange(m, mm, 0, TLB_FLUSH_ALL, 12, true);
    },
    tlbbatchShouldDefer,
    tlbbatchAddPending,
    tlbbatchFlush,
    switchMm,
    asidReachable,
    describeEntry(v: number): string {
      if (v === 0) return "none";
      if (P.isMigrationPte(v))
        return `migration ${MIG_NAMES[P.migrationKind(v)]} pfn=${P.migrationPfn(v)}${P.migrationYoung(v) ? " young" : ""}${P.migrationDirty(v) ? " dirty" : ""}`;
      if (P.isSwapPte(v)) return `swap offset=${P.swpOffset(v)}${P.pteSwpExclusive(v) ? " excl" : ""}`;
      const f: string[] = [];
      if (v & P._PAGE_PRESENT) f.push("P");
      else if (v & P._PAGE_PROTNONE) f.push("PROTNONE");
      if (v & P._PAGE_RW) f.push("RW");
      if (v & P._PAGE_USER) f.push("U");
      if (v & P._PAGE_ACCESSED) f.push("A");
      if (v & P._PAGE_DIRTY) f.push("D");
      if (v & P._PAGE_PSE) f.push("PSE");
      if (v & P._PAGE_SPECIAL) f.push("SPECIAL");
      if (v >= P.NX) f.push("NX");
      return `pfn=${P.ptePfn(v)} ${f.join("|")} (0x${P.toRaw64(v).toString(16)})`;
    },
  };
}
