// The arm64 PTE-level hooks: the contpte layer (arch/arm64/mm/contpte.c and
// the contpte inlines of arch/arm64/include/asm/pgtable.h, Linux v6.17) on top
// of arm64's raw single-entry primitives (the kernel's "__"-prefixed helpers in
// asm/pgtable.h and __ptep_set_access_flags() in arch/arm64/mm/fault.c).
// This is a model of their behaviour written from the kernel-facts sheet
// (sections A and B) and a reading of those files, not a transcription.
//
// Entries are e[j] of a TableStore chunk. A PTE table's entries are contiguous
// and PTRS_PER_PTE-aligned in its chunk, and CONT_PTES divides PTRS_PER_PTE, so the block holding
// entry j starts at j - j % CONT_PTES (the kernel's contpte_align_down() on the
// pointer). Addresses are aligned the same way on CONT_PTE_SIZE.
//
// Counting: __ptep_get is one pteReads; __set_ptes/__set_pte are pteWrites (one
// per entry); __ptep_get_and_clear is an xchg (pteAtomics; on arm64 even the
// fullmm path is an atomic); the cmpxchg loops (__ptep_set_wrprotect,
// __ptep_test_and_clear_young, __clear_young_dirty_pte, __ptep_set_access_flags)
// count one pteAtomics per cmpxchg issued.
//
// config.variants.contpte selects one of four real code paths per call:
//   "batched"      v6.17 (CONFIG_ARM64_CONTPTE=y, batched clear/get_and_clear)
//   "off"          CONFIG_ARM64_CONTPTE=n: the public API is the raw primitives
//   "unfold-each"  contpte before batched clearing: clear_full_ptes() and
//                  get_and_clear_full_ptes() are the generic loops of
//                  ptep_get_and_clear_full(), each unfolding a CONT block;
//                  modify_prot_{start,commit}_ptes() the generic loops of the
//                  single-entry ptep_modify_prot_{start,commit}()
//   "intermediate" v2 14/14 (Nov 2023): as unfold-each, but a fullmm
//                  ptep_get_and_clear_full() of a valid CONT entry clears only
//                  that entry, leaving its neighbours valid and CONT.
// config.variants.contpte_lockless selects ptep_get_lockless(): "retry" (the
// v6.17 consistency loop) or "no-retry" (a single gather pass).

import type { Machine, Violation } from "../../machine.js";
import { variantIs, variantOf } from "../../variant.js";
import type { Mm } from "../../mm/types.js";
import { CYD_DIRTY, CYD_YOUNG, type PteHooks } from "../arch.js";
import * as P from "./pgtable.js";
import type { Arm64Encoding } from "./pgtable.js";
import { flushTlbPage, flushTlbPageNosync, flushTlbRangeArm64 } from "./tlbflush.js";
import { site } from "../../sync.js";
import { modPow2 } from "../../geometry.js";

const S_LOCKLESS_LOAD = site("contpte_ptep_get_lockless", "load a block entry");
const S_LOCKLESS_RETRY = site("contpte_ptep_get_lockless", "retry", true);
const S_CONVERT_CLEAR = site("contpte_convert", "clear a block entry");
const S_CONVERT_FLUSH = site("contpte_convert", "flush the block (break-before-make)");
const S_CONVERT_SET = site("contpte_convert", "write a block entry");
const S_SET_PTES = site("contpte_set_ptes", "write an entry");

export type { PteHooks };

// TLBI level hint for a last-level (PTE) flush: asm/tlbflush.h level 3.
const TLBI_LEVEL_PTE = 3;

const AF_FLAGS_MASK = P.PTE_RDONLY + P.PTE_AF + P.PTE_WRITE + P.PTE_DIRTY;
const AF_OR_MASK = P.PTE_AF + P.PTE_WRITE + P.PTE_DIRTY;

export interface ContpteLayer {
  /** The hooks Arch exposes; each dispatches on config.variants.contpte. */
  readonly hooks: PteHooks;
  /** The four variants' hook sets, by name (tests and tools may call one directly). */
  readonly variants: Readonly<Record<"batched" | "off" | "unfold-each" | "intermediate", PteHooks>>;
  readonly contPtes: number;
}

export function arm64ContpteLayer(enc: Arm64Encoding): ContpteLayer {
  const CONT = enc.contPtes; // CONT_PTES
  const PS = enc.pageSize; // PAGE_SIZE
  const CONT_SIZE = enc.contPteSize; // CONT_PTE_SIZE

  // --------------------------------------------------------------------
  // Helpers on values (granule-bound).

  // pte_advance_pfn() for n >= 0: the OA field is the low bits of the packed
  // value, so advancing is an addition (exact below the modelled PA limit).
  const advance = (v: number, n: number): number => v + n * PS;
  // contpte_align_down() on an entry index / ALIGN_DOWN(addr, CONT_PTE_SIZE).
  const alignIdx = (j: number): number => j - (j % CONT);
  const alignAddr = (a: number): number => a - modPow2(a, CONT_SIZE);
  // pte_pgprot(pte_mkold(pte_mkclean(pte))) as a value with PFN 0.
  const protNoAd = (v: number): number => enc.ptePgprot(P.pteMkold(P.pteMkclean(v)));
  const orAd = (dst: number, src: number): number => {
    if (P.pteDirty(src)) dst = P.pteMkdirty(dst);
    if (P.pteYoung(src)) dst = P.pteMkyoung(dst);
    return dst;
  };

  // --------------------------------------------------------------------
  // Raw primitives (asm/pgtable.h "__" helpers, fault.c).

  // __ptep_get(): READ_ONCE.
  function rawGet(m: Machine, e: Float64Array, j: number): number {
    m.counters.pteReads++;
    return e[j] as number;
  }
  // __set_ptes() (__set_ptes_anysz() with PAGE_SIZE): plain stores, PFN advancing.
  function rawSetPtes(m: Machine, e: Float64Array, j: number, pte: number, nr: number): void {
    for (let k = 0; k < nr; k++) e[j + k] = advance(pte, k);
    m.counters.pteWrites += nr;
  }
  // __ptep_get_and_clear(): xchg with 0.
  function rawGetAndClear(m: Machine, e: Float64Array, j: number): number {
    const v = e[j] as number;
    e[j] = 0;
    m.counters.pteAtomics++;
    return v;
  }
  // __clear_full_ptes(): every entry through __ptep_get_and_clear(), `full` unused.
  function rawClearFullPtes(m: Machine, e: Float64Array, j: number, nr: number): void {
    for (let k = 0; k < nr; k++) rawGetAndClear(m, e, j + k);
  }
  // __get_and_clear_full_ptes(): the same, ORing access/dirty into the first.
  function rawGetAndClearFullPtes(m: Machine, e: Float64Array, j: number, nr: number): number {
    let pte = rawGetAndClear(m, e, j);
    for (let k = 1; k < nr; k++) pte = orAd(pte, rawGetAndClear(m, e, j + k));
    return pte;
  }
  // One cmpxchg_relaxed(): stores `nv` if the entry still holds `old`; returns
  // what it found.
  function cmpxchg(m: Machine, e: Float64Array, j: number, old: number, nv: number): number {
    const cur = e[j] as number;
    m.counters.pteAtomics++;
    if (cur === old) e[j] = nv;
    return cur;
  }
  // ___ptep_set_wrprotect(): cmpxchg loop starting from the caller's value.
  function rawSetWrprotectFrom(m: Machine, e: Float64Array, j: number, pte: number): void {
    for (;;) {
      const cur = cmpxchg(m, e, j, pte, P.pteWrprotect(pte));
      if (cur === pte) return;
      pte = cur;
    }
  }
  // __ptep_set_wrprotect()
  function rawSetWrprotect(m: Machine, e: Float64Array, j: number): void {
    rawSetWrprotectFrom(m, e, j, rawGet(m, e, j));
  }
  // __wrprotect_ptes()
  function rawWrprotectPtes(m: Machine, e: Float64Array, j: number, nr: number): void {
    for (let k = 0; k < nr; k++) rawSetWrprotect(m, e, j + k);
  }
  // __ptep_test_and_clear_young(): read, then a cmpxchg loop that always
  // issues at least one cmpxchg, young or not.
  function rawTestAndClearYoung(m: Machine, e: Float64Array, j: number): boolean {
    let pte = rawGet(m, e, j);
    for (;;) {
      const cur = cmpxchg(m, e, j, pte, P.pteMkold(pte));
      if (cur === pte) return P.pteYoung(pte);
      pte = cur;
    }
  }
  // __ptep_clear_flush_young(): a TLBI for a young entry, without the DSB
  // (a CPU still using the young entry only makes reclaim think the page idle).
  function rawClearFlushYoung(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number): boolean {
    const young = rawTestAndClearYoung(m, e, j);
    if (young) flushTlbPageNosync(m, mm, addr);
    return young;
  }
  // __clear_young_dirty_ptes(): both flags → a plain __set_pte() of the
  // old+clean value; one flag → the __clear_young_dirty_pte() cmpxchg loop.
  // Departure: none entries are skipped (the kernel's callers pass present
  // entries only; writing pte_mkclean(0) would manufacture a swap-like entry).
  function rawClearYoungDirtyPtes(m: Machine, e: Float64Array, j: number, nr: number, flags: number): void {
    for (let k = 0; k < nr; k++) {
      let pte = rawGet(m, e, j + k);
      if (pte === 0) continue;
      if (flags === (CYD_YOUNG | CYD_DIRTY)) {
        e[j + k] = P.pteMkclean(P.pteMkold(pte));
        m.counters.pteWrites++;
        continue;
      }
      for (;;) {
        let nv = pte;
        if (flags & CYD_YOUNG) nv = P.pteMkold(nv);
        if (flags & CYD_DIRTY) nv = P.pteMkclean(nv);
        const cur = cmpxchg(m, e, j + k, pte, nv);
        if (cur === pte) break;
        pte = cur;
      }
    }
  }
  // __ptep_set_access_flags() (arch/arm64/mm/fault.c): only AF, WRITE and
  // DIRTY are taken from entry, and RDONLY becomes the more permissive of the
  // two, in one cmpxchg loop; a dirty (write) fault flushes the page's stale
  // read-only TLB entry with flush_tlb_page() (broadcast, synchronous).
  function rawSetAccessFlags(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, entry: number, dirty: boolean): boolean {
    let pte = rawGet(m, e, j);
    if (pte === entry) return false;
    const ent = P.bitAnd(entry, AF_FLAGS_MASK);
    const entRdonly = (ent & P.PTE_RDONLY) !== 0;
    const entOr = P.bitAnd(ent, AF_OR_MASK);
    for (;;) {
      let nv = P.bitOr(pte, entOr);
      if (!entRdonly && (nv & P.PTE_RDONLY) !== 0) nv -= P.PTE_RDONLY;
      const cur = cmpxchg(m, e, j, pte, nv);
      if (cur === pte) break;
      pte = cur;
    }
    if (dirty) flushTlbPage(m, mm, addr);
    return true;
  }

  // --------------------------------------------------------------------
  // contpte.c

  // contpte_convert(): repaint the whole block through invalid (BBM): clear
  // every entry atomically gathering access/dirty, flush the block (elided
  // with BBML2+noabort), then write all CONT_PTES entries from `pte` (with or
  // without CONT) at the block's base PFN.
  function contpteConvert(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, pte: number): void {
    const pf = m.prof;
    if (pf !== null) pf.enter("contpte_convert");
    const s = alignIdx(j);
    const a0 = alignAddr(addr);
    const pfn = enc.ptePfn(pte);
    pte = enc.pfnPte(pfn - (pfn % CONT), enc.ptePgprot(pte));
    const il = m.il;
    for (let k = 0; k < CONT; k++) {
      if (il) il.point(S_CONVERT_CLEAR);
      pte = orAd(pte, rawGetAndClear(m, e, s + k));
    }
    if (!m.config.arm64.bbml2NoAbort) {
      if (il) il.point(S_CONVERT_FLUSH);
      flushTlbRangeArm64(m, mm, a0, a0 + CONT_SIZE, PS, true, TLBI_LEVEL_PTE, true);
      m.counters.contBlockTlbis++;
    }
    if (il) {
      for (let k = 0; k < CONT; k++) {
        il.point(S_CONVERT_SET);
        rawSetPtes(m, e, s + k, advance(pte, k), 1);
      }
    } else rawSetPtes(m, e, s, pte, CONT);
    if (P.pteCont(pte)) m.counters.contFolds++;
    else m.counters.contUnfolds++;
    if (pf !== null) pf.exit();
  }

  // __contpte_try_fold(): fold if one folio covers the naturally aligned block
  // and all its entries map consecutive pages with equal attributes, ignoring
  // access/dirty.
  function contpteTryFoldSlow(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, pte: number): void {
    const pfn = enc.ptePfn(pte);
    const phys = m.phys;
    const head = phys.folioHead(pfn);
    const folioStart = addr - (pfn - head) * PS;
    const folioEnd = folioStart + 2 ** (phys.order[head] as number) * PS;
    const contStart = alignAddr(addr);
    if (folioStart > contStart || folioEnd < contStart + CONT_SIZE) return;
    let expected = enc.pfnPte(pfn - (pfn % CONT), protNoAd(pte));
    const s = alignIdx(j);
    for (let k = 0; k < CONT; k++) {
      const sub = P.pteMkold(P.pteMkclean(rawGet(m, e, s + k)));
      if (sub !== expected) return;
      expected = advance(expected, 1);
    }
    contpteConvert(m, mm, addr, e, j, P.pteMkcont(pte));
  }

  // contpte_try_fold() (asm/pgtable.h inline): only when this entry is the
  // last of its block in both VA and PA, valid, not CONT and not special.
  function contpteTryFold(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, pte: number): void {
    if (modPow2(addr / PS, CONT) !== CONT - 1) return;
    if (enc.ptePfn(pte) % CONT !== CONT - 1) return;
    if (P.pteValid(pte) && !P.pteCont(pte) && !P.pteSpecial(pte)) contpteTryFoldSlow(m, mm, addr, e, j, pte);
  }

  // __contpte_try_unfold(): repaint the block without CONT.
  function contpteTryUnfoldSlow(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, pte: number): void {
    const pf = m.prof;
    if (pf !== null) pf.enter("contpte_try_unfold");
    contpteConvert(m, mm, addr, e, j, P.pteMknoncont(pte));
    if (pf !== null) pf.exit();
  }
  // contpte_try_unfold() (inline)
  function contpteTryUnfold(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, pte: number): void {
    if (P.pteValidCont(pte)) contpteTryUnfoldSlow(m, mm, addr, e, j, pte);
  }

  // contpte_try_unfold_partial(): unfold the blocks a batch covers only in
  // part (its first block if it starts mid-block or is shorter than a block,
  // its last block if it ends mid-block).
  function contpteTryUnfoldPartial(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, nr: number): void {
    if (j !== alignIdx(j) || nr < CONT) contpteTryUnfold(m, mm, addr, e, j, rawGet(m, e, j));
    if ((j + nr) % CONT !== 0) {
      const last = j + nr - 1;
      contpteTryUnfold(m, mm, addr + PS * (nr - 1), e, last, rawGet(m, e, last));
    }
  }

  // contpte_ptep_get(): OR access/dirty over the block into orig (v6.17 stops
  // reading once both are found).
  function contptePtepGet(m: Machine, e: Float64Array, j: number, orig: number): number {
    const s = alignIdx(j);
    for (let k = 0; k < CONT; k++) {
      let pte = rawGet(m, e, s + k);
      if (P.pteDirty(pte)) {
        orig = P.pteMkdirty(orig);
        for (; k < CONT; k++) {
          pte = rawGet(m, e, s + k);
          if (P.pteYoung(pte)) {
            orig = P.pteMkyoung(orig);
            break;
          }
        }
        break;
      }
      if (P.pteYoung(pte)) {
        orig = P.pteMkyoung(orig);
        for (k++; k < CONT; k++) {
          pte = rawGet(m, e, s + k);
          if (P.pteDirty(pte)) {
            orig = P.pteMkdirty(orig);
            break;
          }
        }
        break;
      }
    }
    return orig;
  }

  // contpte_is_consistent()
  const consistent = (pte: number, pfn: number, origProt: number): boolean => P.pteValidCont(pte) && enc.ptePfn(pte) === pfn && protNoAd(pte) === origProt;

  // One pass of contpte_ptep_get_lockless(): the gathered entry, or -1 if an
  // entry read was inconsistent (the kernel's "goto retry"). With check
  // false it is the plain gather of the "no-retry" variant. Each load after
  // the first is an interleaving point when the explorer runs the model.
  function* locklessPass(m: Machine, e: Float64Array, j: number, check: boolean): Generator<number, number, void> {
    const il = m.il !== null;
    let orig = rawGet(m, e, j);
    if (!P.pteValidCont(orig)) return orig;
    const origProt = protNoAd(orig);
    const s = alignIdx(j);
    let pfn = enc.ptePfn(orig) - (j - s);
    let young = false;
    let dirty = false;
    for (let k = 0; k < CONT; k++, pfn++) {
      if (il) yield S_LOCKLESS_LOAD;
      const pte = rawGet(m, e, s + k);
      if (check && !consistent(pte, pfn, origProt)) return -1;
      if (P.pteDirty(pte)) dirty = true;
      if (P.pteYoung(pte)) young = true;
      // v6.17 stops reading once both bits are found.
      if (young && dirty) break;
    }
    if (young) orig = P.pteMkyoung(orig);
    if (dirty) orig = P.pteMkdirty(orig);
    return orig;
  }

  // contpte_ptep_get_lockless() ("retry"): repeat until one pass sees a
  // consistent block. In a sequential run nothing can change the table while
  // a hook runs, so if a retry finds the block exactly as the failed pass
  // left it, the kernel would spin forever: the model records a
  // "contpte-lockless-livelock" violation and returns the raw entry instead
  // of hanging. Under the explorer each retry yields to the writer.
  const snap = new Float64Array(CONT);
  function* contptePtepGetLockless(m: Machine, e: Float64Array, j: number): Generator<number, number, void> {
    let r = yield* locklessPass(m, e, j, true);
    if (r >= 0) return r;
    const s = alignIdx(j);
    for (;;) {
      snap.set(e.subarray(s, s + CONT));
      m.counters.contLocklessRetries++;
      if (m.il) yield S_LOCKLESS_RETRY;
      r = yield* locklessPass(m, e, j, true);
      if (r >= 0) return r;
      if (m.il) continue;
      let same = true;
      for (let k = 0; k < CONT; k++) if (snap[k] !== e[s + k]) same = false;
      if (same) {
        const v: Violation = {
          invariant: "contpte-lockless-livelock",
          message: `ptep_get_lockless() on entry ${j}: the contpte block at ${s} is inconsistent and nothing can change it (the kernel would retry forever)`,
        };
        m.violations.push(v);
        return e[j] as number;
      }
    }
  }

  // ptep_get_lockless() "no-retry": one gather pass with no consistency check.
  function contptePtepGetLocklessNoRetry(m: Machine, e: Float64Array, j: number): Generator<number, number, void> {
    return locklessPass(m, e, j, false);
  }

  // contpte_set_ptes(): entries are none (the set_ptes() contract for nr > 1);
  // each block-sized, block-aligned sub-range with a block-aligned PFN gets CONT.
  function contpteSetPtes(m: Machine, _mm: Mm, addr: number, e: Float64Array, j: number, pte: number, nr: number): void {
    const end = addr + nr * PS;
    let pfn = enc.ptePfn(pte);
    const prot = enc.ptePgprot(pte);
    do {
      const boundary = alignAddr(addr) + CONT_SIZE;
      const next = Math.min(boundary, end);
      const n = (next - addr) / PS;
      let p = enc.pfnPte(pfn, prot);
      p = modPow2(addr, CONT_SIZE) === 0 && modPow2(next, CONT_SIZE) === 0 && pfn % CONT === 0 ? P.pteMkcont(p) : P.pteMknoncont(p);
      const il = m.il;
      if (il) {
        // __set_ptes() stores one entry at a time: a lockless reader may see
        // the block half written.
        for (let k = 0; k < n; k++) {
          il.point(S_SET_PTES);
          rawSetPtes(m, e, j + k, advance(p, k), 1);
        }
      } else rawSetPtes(m, e, j, p, n);
      addr = next;
      j += n;
      pfn += n;
    } while (addr !== end);
  }

  // contpte_ptep_test_and_clear_young(): clear AF over the whole block, no unfold.
  function contpteTestAndClearYoung(m: Machine, e: Float64Array, j: number): boolean {
    const s = alignIdx(j);
    let young = false;
    for (let k = 0; k < CONT; k++) if (rawTestAndClearYoung(m, e, s + k)) young = true;
    return young;
  }

  // contpte_ptep_clear_flush_young(): the block's AF cleared as above, then
  // one range TLBI over the block (leaf only, level 3), also without the DSB.
  function contpteClearFlushYoung(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number): boolean {
    const young = contpteTestAndClearYoung(m, e, j);
    if (young) {
      const a0 = alignAddr(addr);
      flushTlbRangeArm64(m, mm, a0, a0 + CONT_SIZE, PS, true, TLBI_LEVEL_PTE, false);
    }
    return young;
  }

  // contpte_clear_young_dirty_ptes(): widen to whole blocks at either end
  // that are CONT, no unfold.
  function contpteClearYoungDirtyPtes(m: Machine, addr: number, e: Float64Array, j: number, nr: number, flags: number): void {
    let start = addr;
    let end = start + nr * PS;
    if (P.pteCont(rawGet(m, e, j + nr - 1))) end = alignAddr(end + CONT_SIZE - 1);
    if (P.pteCont(rawGet(m, e, j))) {
      start = alignAddr(start);
      j = alignIdx(j);
    }
    rawClearYoungDirtyPtes(m, e, j, (end - start) / PS, flags);
  }

  // contpte_ptep_set_access_flags(): compare with the gathered entry; same
  // write permission → update every entry of the block (no per-entry flush)
  // and flush the block once if dirty; write permission changes → unfold and
  // update the one entry.
  function contpteSetAccessFlags(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, entry: number, dirty: boolean): boolean {
    const orig = P.pteMknoncont(publicPtepGet(m, e, j));
    if (orig === entry) return false;
    if (P.pteWrite(orig) === P.pteWrite(entry)) {
      const s = alignIdx(j);
      const a0 = alignAddr(addr);
      for (let k = 0; k < CONT; k++) rawSetAccessFlags(m, mm, a0 + k * PS, e, s + k, entry, false);
      if (dirty) flushTlbRangeArm64(m, mm, a0, a0 + CONT_SIZE, PS, true, TLBI_LEVEL_PTE, true);
    } else {
      contpteTryUnfoldSlow(m, mm, addr, e, j, orig);
      rawSetAccessFlags(m, mm, addr, e, j, entry, dirty);
    }
    return true;
  }

  // --------------------------------------------------------------------
  // The public API with CONFIG_ARM64_CONTPTE=y (asm/pgtable.h inlines).

  // ptep_get()
  function publicPtepGet(m: Machine, e: Float64Array, j: number): number {
    const pte = rawGet(m, e, j);
    if (!P.pteValidCont(pte)) return pte;
    return contptePtepGet(m, e, j, pte);
  }
  // set_ptes()
  function publicSetPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, pte: number, nr: number): void {
    pte = P.pteMknoncont(pte);
    if (nr === 1) {
      contpteTryUnfold(m, mm, addr, e, j, rawGet(m, e, j));
      rawSetPtes(m, e, j, pte, 1);
      contpteTryFold(m, mm, addr, e, j, pte);
    } else contpteSetPtes(m, mm, addr, e, j, pte, nr);
  }
  // ptep_get_and_clear() (arm64 has no ptep_get_and_clear_full() at v6.17,
  // so the generic one calls this whatever `full` is).
  function publicGetAndClear(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number): number {
    contpteTryUnfold(m, mm, addr, e, j, rawGet(m, e, j));
    return rawGetAndClear(m, e, j);
  }
  // v2 14/14 ptep_get_and_clear_full(): a fullmm clear of a valid CONT entry
  // (contpte_ptep_get_and_clear_full()) clears that entry alone.
  function intermediateGetAndClearFull(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, full: boolean): number {
    const orig = rawGet(m, e, j);
    if (!P.pteValidCont(orig) || !full) {
      contpteTryUnfold(m, mm, addr, e, j, orig);
      return rawGetAndClear(m, e, j);
    }
    return rawGetAndClear(m, e, j);
  }
  // wrprotect_ptes()
  function publicWrprotectPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, nr: number): void {
    if (nr === 1) {
      let orig = rawGet(m, e, j);
      if (P.pteCont(orig)) {
        contpteTryUnfoldSlow(m, mm, addr, e, j, orig);
        orig = P.pteMknoncont(orig);
      }
      rawSetWrprotectFrom(m, e, j, orig);
    } else {
      // contpte_wrprotect_ptes(): whole blocks keep CONT and are
      // write-protected in place; the caller's flush follows.
      contpteTryUnfoldPartial(m, mm, addr, e, j, nr);
      rawWrprotectPtes(m, e, j, nr);
    }
  }
  // get_and_clear_full_ptes() / contpte_get_and_clear_full_ptes()
  function batchedGetAndClearFullPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, nr: number): number {
    if (nr === 1) {
      contpteTryUnfold(m, mm, addr, e, j, rawGet(m, e, j));
      return rawGetAndClearFullPtes(m, e, j, 1);
    }
    contpteTryUnfoldPartial(m, mm, addr, e, j, nr);
    return rawGetAndClearFullPtes(m, e, j, nr);
  }
  // clear_full_ptes() / contpte_clear_full_ptes()
  function batchedClearFullPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, nr: number): void {
    if (nr === 1) {
      contpteTryUnfold(m, mm, addr, e, j, rawGet(m, e, j));
      rawClearFullPtes(m, e, j, 1);
      return;
    }
    contpteTryUnfoldPartial(m, mm, addr, e, j, nr);
    rawClearFullPtes(m, e, j, nr);
  }
  // ptep_set_access_flags()
  function publicSetAccessFlags(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number, entry: number, dirty: boolean): boolean {
    const orig = rawGet(m, e, j);
    entry = P.pteMknoncont(entry);
    if (!P.pteValidCont(orig)) return rawSetAccessFlags(m, mm, addr, e, j, entry, dirty);
    return contpteSetAccessFlags(m, mm, addr, e, j, entry, dirty);
  }
  // ptep_test_and_clear_young()
  function publicTestAndClearYoung(m: Machine, e: Float64Array, j: number): boolean {
    const orig = rawGet(m, e, j);
    if (!P.pteValidCont(orig)) return rawTestAndClearYoung(m, e, j);
    return contpteTestAndClearYoung(m, e, j);
  }
  // ptep_clear_flush_young()
  function publicClearFlushYoung(m: Machine, mm: Mm, addr: number, e: Float64Array, j: number): boolean {
    const orig = rawGet(m, e, j);
    if (!P.pteValidCont(orig)) return rawClearFlushYoung(m, mm, addr, e, j);
    return contpteClearFlushYoung(m, mm, addr, e, j);
  }
  // clear_young_dirty_ptes()
  function publicClearYoungDirtyPtes(m: Machine, addr: number, e: Float64Array, j: number, nr: number, flags: number): void {
    if (nr === 1 && !P.pteCont(rawGet(m, e, j))) rawClearYoungDirtyPtes(m, e, j, 1, flags);
    else contpteClearYoungDirtyPtes(m, addr, e, j, nr, flags);
  }
  // pte_batch_hint(): entries left in a valid CONT block from j on.
  function contBatchHint(_e: Float64Array, j: number, pte: number): number {
    if (!P.pteValidCont(pte)) return 1;
    return CONT - (j % CONT);
  }
  // ptep_get_lockless(): the inline read, then the out-of-line helper (which
  // reads the entry again).
  function* lockless(m: Machine, e: Float64Array, j: number): Generator<number, number, void> {
    const pte = rawGet(m, e, j);
    if (!P.pteValidCont(pte)) return pte;
    if (m.il) yield S_LOCKLESS_LOAD;
    if (variantIs(m, "contpte_lockless", "no-retry")) return yield* contptePtepGetLocklessNoRetry(m, e, j);
    return yield* contptePtepGetLockless(m, e, j);
  }
  // CONFIG_ARM64_CONTPTE=n: READ_ONCE.
  // biome-ignore lint/correctness/useYield: one load is one atomic step, with no point inside
  function* rawGetLockless(m: Machine, e: Float64Array, j: number): Generator<number, number, void> {
    return rawGet(m, e, j);
  }

  // --------------------------------------------------------------------
  // Hook sets.

  // v6.17, CONFIG_ARM64_CONTPTE=y.
  const batched: PteHooks = {
    setPtes: publicSetPtes,
    ptepGet: publicPtepGet,
    ptepGetLockless: lockless,
    ptepGetAndClearFull: (m, mm, addr, e, j, _full) => publicGetAndClear(m, mm, addr, e, j),
    getAndClearFullPtes: (m, mm, addr, e, j, nr, _full) => batchedGetAndClearFullPtes(m, mm, addr, e, j, nr),
    clearFullPtes: (m, mm, addr, e, j, nr, _full) => batchedClearFullPtes(m, mm, addr, e, j, nr),
    wrprotectPtes: publicWrprotectPtes,
    // ptep_set_wrprotect() = wrprotect_ptes(nr = 1)
    ptepSetWrprotect: (m, mm, addr, e, j) => publicWrprotectPtes(m, mm, addr, e, j, 1),
    // modify_prot_start_ptes() (arch/arm64/mm/mmu.c) = get_and_clear_full_ptes(full = 0)
    modifyProtStartPtes: (m, mm, addr, e, j, nr) => batchedGetAndClearFullPtes(m, mm, addr, e, j, nr),
    // modify_prot_commit_ptes() (mmu.c) = set_ptes(nr)
    modifyProtCommitPtes: (m, mm, addr, e, j, _old, pte, nr) => publicSetPtes(m, mm, addr, e, j, pte, nr),
    ptepSetAccessFlags: publicSetAccessFlags,
    ptepTestAndClearYoung: (m, _mm, _addr, e, j) => publicTestAndClearYoung(m, e, j),
    ptepClearFlushYoung: publicClearFlushYoung,
    clearYoungDirtyPtes: (m, _mm, addr, e, j, nr, flags) => publicClearYoungDirtyPtes(m, addr, e, j, nr, flags),
    pteBatchHint: contBatchHint,
  };

  // CONFIG_ARM64_CONTPTE=n: the public names are the raw primitives.
  const off: PteHooks = {
    setPtes: (m, _mm, _addr, e, j, pte, nr) => rawSetPtes(m, e, j, pte, nr),
    ptepGet: rawGet,
    ptepGetLockless: rawGetLockless,
    ptepGetAndClearFull: (m, _mm, _addr, e, j, _full) => rawGetAndClear(m, e, j),
    getAndClearFullPtes: (m, _mm, _addr, e, j, nr, _full) => rawGetAndClearFullPtes(m, e, j, nr),
    clearFullPtes: (m, _mm, _addr, e, j, nr, _full) => rawClearFullPtes(m, e, j, nr),
    wrprotectPtes: (m, _mm, _addr, e, j, nr) => rawWrprotectPtes(m, e, j, nr),
    ptepSetWrprotect: (m, _mm, _addr, e, j) => rawSetWrprotect(m, e, j),
    modifyProtStartPtes: (m, _mm, _addr, e, j, nr) => rawGetAndClearFullPtes(m, e, j, nr),
    modifyProtCommitPtes: (m, _mm, _addr, e, j, _old, pte, nr) => rawSetPtes(m, e, j, pte, nr),
    ptepSetAccessFlags: rawSetAccessFlags,
    ptepTestAndClearYoung: (m, _mm, _addr, e, j) => rawTestAndClearYoung(m, e, j),
    ptepClearFlushYoung: rawClearFlushYoung,
    clearYoungDirtyPtes: (m, _mm, _addr, e, j, nr, flags) => rawClearYoungDirtyPtes(m, e, j, nr, flags),
    pteBatchHint: () => 1,
  };

  // Before batched clearing: the generic include/linux/pgtable.h loops over
  // the single-entry helpers, with `clearOne` as ptep_get_and_clear_full().
  function genericLoops(clearOne: PteHooks["ptepGetAndClearFull"]): PteHooks {
    return {
      ...batched,
      ptepGetAndClearFull: clearOne,
      // generic get_and_clear_full_ptes()
      getAndClearFullPtes(m, mm, addr, e, j, nr, full) {
        let pte = clearOne(m, mm, addr, e, j, full);
        for (let k = 1; k < nr; k++) pte = orAd(pte, clearOne(m, mm, addr + k * PS, e, j + k, full));
        return pte;
      },
      // generic clear_full_ptes()
      clearFullPtes(m, mm, addr, e, j, nr, full) {
        for (let k = 0; k < nr; k++) clearOne(m, mm, addr + k * PS, e, j + k, full);
      },
      // generic modify_prot_start_ptes(): ptep_modify_prot_start() per entry,
      // which arm64 implemented as ptep_get_and_clear() (unfolding).
      modifyProtStartPtes(m, mm, addr, e, j, nr) {
        let pte = publicGetAndClear(m, mm, addr, e, j);
        for (let k = 1; k < nr; k++) pte = orAd(pte, publicGetAndClear(m, mm, addr + k * PS, e, j + k));
        return pte;
      },
      // generic modify_prot_commit_ptes(): ptep_modify_prot_commit() per
      // entry, which arm64 implemented as set_pte_at() (nr = 1, may fold).
      modifyProtCommitPtes(m, mm, addr, e, j, _old, pte, nr) {
        for (let k = 0; k < nr; k++) publicSetPtes(m, mm, addr + k * PS, e, j + k, advance(pte, k), 1);
      },
    };
  }
  const unfoldEach = genericLoops((m, mm, addr, e, j, _full) => publicGetAndClear(m, mm, addr, e, j));
  const intermediate = genericLoops(intermediateGetAndClearFull);

  const variants = { batched, off, "unfold-each": unfoldEach, intermediate } as const;
  const pick = (m: Machine): PteHooks => variants[variantOf(m, "contpte")];

  const hooks: PteHooks = {
    setPtes: (m, mm, addr, e, j, pte, nr) => pick(m).setPtes(m, mm, addr, e, j, pte, nr),
    ptepGet: (m, e, j) => pick(m).ptepGet(m, e, j),
    ptepGetLockless: (m, e, j) => pick(m).ptepGetLockless(m, e, j),
    ptepGetAndClearFull: (m, mm, addr, e, j, full) => pick(m).ptepGetAndClearFull(m, mm, addr, e, j, full),
    getAndClearFullPtes: (m, mm, addr, e, j, nr, full) => pick(m).getAndClearFullPtes(m, mm, addr, e, j, nr, full),
    clearFullPtes: (m, mm, addr, e, j, nr, full) => pick(m).clearFullPtes(m, mm, addr, e, j, nr, full),
    wrprotectPtes: (m, mm, addr, e, j, nr) => pick(m).wrprotectPtes(m, mm, addr, e, j, nr),
    ptepSetWrprotect: (m, mm, addr, e, j) => pick(m).ptepSetWrprotect(m, mm, addr, e, j),
    modifyProtStartPtes: (m, mm, addr, e, j, nr) => pick(m).modifyProtStartPtes(m, mm, addr, e, j, nr),
    modifyProtCommitPtes: (m, mm, addr, e, j, old, pte, nr) => pick(m).modifyProtCommitPtes(m, mm, addr, e, j, old, pte, nr),
    ptepSetAccessFlags: (m, mm, addr, e, j, entry, dirty) => pick(m).ptepSetAccessFlags(m, mm, addr, e, j, entry, dirty),
    ptepTestAndClearYoung: (m, mm, addr, e, j) => pick(m).ptepTestAndClearYoung(m, mm, addr, e, j),
    ptepClearFlushYoung: (m, mm, addr, e, j) => pick(m).ptepClearFlushYoung(m, mm, addr, e, j),
    clearYoungDirtyPtes: (m, mm, addr, e, j, nr, flags) => pick(m).clearYoungDirtyPtes(m, mm, addr, e, j, nr, flags),
    // pte_batch_hint() has no Machine: CONT never appears with contpte off,
    // so the CONT-based hint is right for every variant.
    pteBatchHint: contBatchHint,
  };

  return { hooks, variants, contPtes: CONT };
}
