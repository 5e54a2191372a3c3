// The generic PTE-level helpers: the defaults include/linux/pgtable.h gives
// an architecture that does not override them (set_ptes(), the *_ptes() batch
// helpers as loops of the single-entry ones, ptep_set_access_flags() from
// mm/pgtable-generic.c). x86-64 uses them with its own single-entry
// primitives (arch/x86/include/asm/pgtable.h): an xchg for
// ptep_get_and_clear(), a plain load and store for the fullmm case, a locked
// clear_bit for ptep_set_wrprotect().

import type { Arch, PteHooks } from "../arch/arch.js";
import { CYD_DIRTY, CYD_YOUNG } from "../arch/arch.js";
import type { Machine } from "../machine.js";

type Enc = Pick<Arch, "pteDirty" | "pteYoung" | "pteMkdirty" | "pteMkyoung" | "pteMkold" | "pteMkclean" | "pteWrprotect" | "pteAdvancePfn" | "pteWrite">;

export function genericPteHooks(A: Enc): PteHooks {
  // ptep_test_and_clear_young()
  function testAndClearYoung(m: Machine, e: Float64Array, i: number): boolean {
    const v = e[i] as number;
    m.counters.pteReads++;
    if (!A.pteYoung(v)) return false;
    e[i] = A.pteMkold(v);
    m.counters.pteAtomics++;
    return true;
  }
  // ptep_get_and_clear_full(): x86 skips the atomic when the whole mm is
  // going away (nobody else can touch the entries).
  function getAndClear(m: Machine, e: Float64Array, i: number, full: boolean): number {
    const v = e[i] as number;
    e[i] = 0;
    if (full) {
      m.counters.pteReads++;
      m.counters.pteWrites++;
    } else m.counters.pteAtomics++;
    return v;
  }
  return {
    setPtes(m, _mm, _addr, e, i, pte, nr) {
      for (let k = 0; k < nr; k++) e[i + k] = A.pteAdvancePfn(pte, k);
      m.counters.pteWrites += nr;
    },
    ptepGet(m, e, i) {
      m.counters.pteReads++;
      return e[i] as number;
    },
    // biome-ignore lint/correctness/useYield: one load is one atomic step, with no point inside
    *ptepGetLockless(m, e, i) {
      m.counters.pteReads++;
      return e[i] as number;
    },
    ptepGetAndClearFull(m, _mm, _addr, e, i, full) {
      return getAndClear(m, e, i, full);
    },
    getAndClearFullPtes(m, _mm, _addr, e, i, nr, full) {
      let pte = getAndClear(m, e, i, full);
      for (let k = 1; k < nr; k++) {
        const x = getAndClear(m, e, i + k, full);
        if (A.pteDirty(x)) pte = A.pteMkdirty(pte);
        if (A.pteYoung(x)) pte = A.pteMkyoung(pte);
      }
      return pte;
    },
    clearFullPtes(m, _mm, _addr, e, i, nr, full) {
      for (let k = 0; k < nr; k++) getAndClear(m, e, i + k, full);
    },
    wrprotectPtes(m, _mm, _addr, e, i, nr) {
      for (let k = 0; k < nr; k++) e[i + k] = A.pteWrprotect(e[i + k] as number);
      m.counters.pteAtomics += nr;
    },
    ptepSetWrprotect(m, _mm, _addr, e, i) {
      e[i] = A.pteWrprotect(e[i] as number);
      m.counters.pteAtomics++;
    },
    modifyProtStartPtes(m, _mm, _addr, e, i, nr) {
      // Loops ptep_modify_prot_start() = ptep_get_and_clear().
      let pte = getAndClear(m, e, i, false);
      for (let k = 1; k < nr; k++) {
        const x = getAndClear(m, e, i + k, false);
        if (A.pteDirty(x)) pte = A.pteMkdirty(pte);
        if (A.pteYoung(x)) pte = A.pteMkyoung(pte);
      }
      return pte;
    },
    modifyProtCommitPtes(m, _mm, _addr, e, i, _old, pte, nr) {
      for (let k = 0; k < nr; k++) e[i + k] = A.pteAdvancePfn(pte, k);
      m.counters.pteWrites += nr;
    },
    ptepSetAccessFlags(m, _mm, _addr, e, i, entry, _dirty) {
      // x86 ptep_set_access_flags() (arch/x86/mm/pgtable.c): write if
      // different, no flush (an upgrade needs none; a spurious fault drops
      // the stale TLB entry by itself).
      m.counters.pteReads++;
      const changed = (e[i] as number) !== entry;
      if (changed) {
        e[i] = entry;
        m.counters.pteAtomics++;
      }
      return changed;
    },
    ptepTestAndClearYoung: (m, _mm, _addr, e, i) => testAndClearYoung(m, e, i),
    // ptep_clear_flush_young() (mm/pgtable-generic.c): flush_tlb_page() when
    // the entry was young. (x86 overrides it to skip the flush.)
    ptepClearFlushYoung(m, mm, addr, e, i) {
      const young = testAndClearYoung(m, e, i);
      if (young) m.arch.flushTlbPage(m, mm, addr);
      return young;
    },
    clearYoungDirtyPtes(m, _mm, _addr, e, i, nr, flags) {
      for (let k = 0; k < nr; k++) {
        let x = e[i + k] as number;
        m.counters.pteReads++;
        if (x === 0) continue;
        if (flags & CYD_YOUNG) x = A.pteMkold(x);
        if (flags & CYD_DIRTY) x = A.pteMkclean(x);
        if (x !== e[i + k]) {
          e[i + k] = x;
          m.counters.pteAtomics++;
        }
      }
    },
    pteBatchHint() {
      return 1;
    },
  };
}
