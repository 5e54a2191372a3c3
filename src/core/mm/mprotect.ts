// mprotect(): models do_mprotect_pkey(), mprotect_fixup(), change_protection()
// and change_pte_range() with large-folio batching (mm/mprotect.c, v6.17):
// modify_prot_start_ptes()/modify_prot_commit_ptes() per batch, write upgrade
// for anon-exclusive pages in sub-batches of equal exclusivity.

import type { Machine } from "../machine.js";
import { MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE } from "../arch/arch.js";
import { variantIs } from "../variant.js";
import { changeHugePmd, splitHugePmd } from "./huge_memory.js";
import { folioPteBatch, type KGen, walkPmdTables } from "./memory.js";
import { LK_PMD, LK_PTL, site, run } from "../sync.js";
import { flushTlbBatchedPending } from "./rmap.js";

const S_PROT_LOCK = site("change_pte_range", "take the PTE lock");
const S_PROT_PTE = site("change_pte_range", "load a PTE");
const S_PROT_PMD_LOCK = site("change_huge_pmd", "__pmd_trans_huge_lock(): take the PMD lock");
import { type MmuGather, tlbFinishMmu, tlbFlushMmuTlbonly, tlbGatherMmu, tlbRemoveTlbEntries } from "./mmu_gather.js";
import { LVL_PMD } from "./pgtable.js";
import { PG_ANON, PG_ANON_EXCLUSIVE } from "./physmem.js";
import { vmaPageProt } from "./fault.js";
import { MmError, protToVmFlags } from "./mmap.js";
import { idxAt } from "../geometry.js";
import { type Mm, VM_ACCESS_FLAGS, VM_SHARED, VM_WRITE, type Vma } from "./types.js";
import { isolateRangeLocked, mergeAroundLocked } from "./vma.js";

// change_pte_range(). The "off" variant is the code before the 2025 series
// (one PTE at a time through ptep_modify_prot_start/commit); "fixed" and
// "folio-first-page" batch large folios with modify_prot_start_ptes()/
// modify_prot_commit_ptes() and split a write upgrade into anon-exclusive
// sub-batches (set_write_prot_commit_flush_ptes(), commit_anon_folio_batch()).
function* changePteRange(tlb: MmuGather, vma: Vma, pmdIdx: number, addr: number, end: number, newprot: number, tryWritable: boolean): KGen {
  const m = tlb.m;
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const il = m.il;
  const mm = tlb.mm;
  const pmdv = T.get(pmdIdx);
  if (!A.entryIsTable(pmdv)) return;
  const slot = T.slotOfPfn(A.ptePfn(pmdv));
  if (il) yield il.lock(LK_PTL, slot, true, S_PROT_LOCK);
  flushTlbBatchedPending(m, mm);
  const e = T.chunkOf(slot);
  const PS = m.geo.pageSize;
  let i = T.base(slot) + ((addr / PS) & m.geo.ptrsMask);
  const shared = (vma.flags & VM_SHARED) !== 0;
  while (addr < end) {
    let old = A.ptepGet(m, e, i);
    if (old === 0 || !A.ptePresent(old)) {
      // A writable migration entry becomes readable (exclusive for an anon
      // page): whether the new protection allows writing is not checked.
      if (A.isMigrationPte(old) && A.migrationKind(old) === MIG_WRITE) {
        const pfn = A.migrationPfn(old);
        const anon = ((phys.flags[phys.folioHead(pfn)] as number) & PG_ANON) !== 0;
        e[i] = A.mkMigrationPte(pfn, anon ? MIG_READ_EXCLUSIVE : MIG_READ, A.migrationYoung(old), A.migrationDirty(old)); // set_pte_at()
        m.counters.pteWrites++;
      }
      i++;
      addr += PS;
      continue;
    }
    if (il) {
      yield S_PROT_PTE;
      old = A.ptepGet(m, e, i);
    }
    let nr = 1;
    // vm_normal_page()/vm_normal_folio()
    let page = -1;
    let head = -1;
    if (!A.pteSpecial(old)) {
      page = A.ptePfn(old);
      head = phys.folioHead(page);
      // mprotect_folio_pte_batch(): FPB_RESPECT_SOFT_DIRTY | FPB_RESPECT_WRITE
      const order = phys.order[head] as number;
      if (order > 0 && !variantIs(m, "mprotect_batching", "off")) nr = folioPteBatch(m, e, i, old, page, head, order, (end - addr) / PS, false, true);
    }
    const anonFolio = head >= 0 && ((phys.flags[head] as number) & PG_ANON) !== 0;
    const off = nr === 1 && variantIs(m, "mprotect_batching", "off");
    const oldpte = off ? A.ptepGetAndClearFull(m, mm, addr, e, i, false) : A.modifyProtStartPtes(m, mm, addr, e, i, nr);
    const ptent = A.pteModify(oldpte, newprot);
    if (!tryWritable || A.pteWrite(ptent)) protCommitFlushPtes(tlb, addr, e, i, oldpte, ptent, nr, 0, false);
    else if (off) {
      // can_change_pte_writable() on the one PTE.
      const w = shared ? A.pteDirty(ptent) : anonFolio && ((phys.flags[page] as number) & PG_ANON_EXCLUSIVE) !== 0;
      protCommitFlushPtes(tlb, addr, e, i, oldpte, ptent, 1, 0, w);
    } else if (shared) {
      // can_change_shared_pte_writable(): dirty means the FS was notified.
      protCommitFlushPtes(tlb, addr, e, i, oldpte, ptent, nr, 0, A.pteDirty(ptent));
    } else if (!anonFolio) {
      protCommitFlushPtes(tlb, addr, e, i, oldpte, ptent, nr, 0, false);
    } else {
      // commit_anon_folio_batch(): sub-batches of equal PageAnonExclusive,
      // read from the page the first PTE maps (fixed) or from the folio's
      // first page (as merged, before cf1b80dc31a1). The two differ only
      // where those pages' exclusivity differs: the variant is asked there.
      const first = exclusivityDiffers(phys.flags, head, page, nr) && variantIs(m, "mprotect_batching", "folio-first-page") ? head : page;
      let idx = 0;
      while (idx < nr) {
        const excl = ((phys.flags[first + idx] as number) & PG_ANON_EXCLUSIVE) !== 0;
        let k = idx + 1;
        while (k < nr && (((phys.flags[first + k] as number) & PG_ANON_EXCLUSIVE) !== 0) === excl) k++;
        protCommitFlushPtes(tlb, addr, e, i, oldpte, ptent, k - idx, idx, excl);
        idx = k;
      }
    }
    i += nr;
    addr += nr * PS;
  }
  if (il) il.unlock(LK_PTL, slot);
}

// Whether pages a.. and b.. (nr each) differ in PageAnonExclusive anywhere.
function exclusivityDiffers(flags: Uint8Array, a: number, b: number, nr: number): boolean {
  if (a === b) return false;
  for (let k = 0; k < nr; k++) if ((((flags[a + k] as number) ^ (flags[b + k] as number)) & PG_ANON_EXCLUSIVE) !== 0) return true;
  return false;
}

// prot_commit_flush_ptes(): commit n entries starting idx into the batch.
function protCommitFlushPtes(
  tlb: MmuGather,
  addr: number,
  e: Float64Array,
  i: number,
  oldpte: number,
  ptent: number,
  n: number,
  idx: number,
  setWrite: boolean,
): void {
  const m = tlb.m;
  const A = m.arch;
  const a = addr + idx * m.geo.pageSize;
  // pte_advance_pfn() by 0 is the entry itself: skip the call then.
  const o = idx === 0 ? oldpte : A.pteAdvancePfn(oldpte, idx);
  let p = idx === 0 ? ptent : A.pteAdvancePfn(ptent, idx);
  if (setWrite) p = A.pteMkwrite(p);
  A.modifyProtCommitPtes(m, tlb.mm, a, e, i + idx, o, p, n);
  if (A.pteNeedsFlush(o, p)) tlbRemoveTlbEntries(tlb, a, n);
}

function* changePmdRange(tlb: MmuGather, vma: Vma, pmdSlot: number, addr: number, end: number, newprot: number, tryWritable: boolean): KGen {
  const m = tlb.m;
  const G = m.geo;
  while (addr < end) {
    const next = Math.min(addr - (addr % G.pmdSize) + G.pmdSize, end);
    const pmdIdx = pmdSlot * G.ptrs + idxAt(G, addr / G.pageSize, LVL_PMD);
    const v = m.tables.get(pmdIdx);
    m.counters.pteReads++;
    if (v !== 0) {
      // is_swap_pmd() || pmd_trans_huge(): a PMD migration entry goes to
      // change_huge_pmd() or is split likewise.
      if (m.arch.entryIsLeaf(v) || m.arch.isMigrationPmd(v)) {
        if (next - addr === G.pmdSize) {
          // change_huge_pmd() under __pmd_trans_huge_lock(): a splitter
          // (reclaim's TTU_SPLIT_HUGE_PMD runs without mmap_lock) holds the
          // PMD lock from pmdp_invalidate() until the PTE table is in; the
          // entry is looked at again once the lock is held, and a PMD
          // split meanwhile falls through to the PTE path.
          const il = m.il;
          if (il && !il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_PROT_PMD_LOCK);
          const v2 = m.tables.get(pmdIdx);
          const huge = v2 !== 0 && (m.arch.entryIsLeaf(v2) || m.arch.isMigrationPmd(v2));
          if (huge) changeHugePmd(tlb, pmdIdx, addr, newprot, vma);
          if (il) il.unlock(LK_PMD, pmdSlot);
          if (huge || v2 === 0) {
            addr = next;
            continue;
          }
        } else yield* splitHugePmd(m, tlb.mm, vma, pmdIdx, addr - (addr % G.pmdSize));
      }
      const pf = m.prof;
      if (pf !== null) pf.enter("change_pte_range");
      yield* changePteRange(tlb, vma, pmdIdx, addr, next, newprot, tryWritable);
      if (pf !== null) pf.exit();
    }
    addr = next;
  }
}

// change_protection() for one VMA (tlb_start_vma/tlb_end_vma around it).
function* changeProtection(tlb: MmuGather, vma: Vma): KGen {
  const m = tlb.m;
  const newprot = vmaPageProt(m, vma);
  // vma_wants_manual_pte_write_upgrade()
  const tryWritable = (vma.flags & VM_WRITE) !== 0;
  const pf = m.prof;
  if (pf !== null) pf.enter("change_protection");
  yield* walkPmdTables(m, tlb.mm.pgd, m.arch.levels - 1, vma.start, vma.end, (pmdSlot, a, b) => changePmdRange(tlb, vma, pmdSlot, a, b, newprot, tryWritable));
  tlbFlushMmuTlbonly(tlb);
  if (pf !== null) pf.exit();
}

// do_mprotect_pkey()
export function doMprotect(m: Machine, mm: Mm, start: number, len: number, prot: { read: boolean; write: boolean; exec: boolean }): void {
  run(mprotect(m, mm, start, len, prot));
}
export function* mprotect(m: Machine, mm: Mm, start: number, len: number, prot: { read: boolean; write: boolean; exec: boolean }): KGen {
  const PS = m.geo.pageSize;
  if (start % PS !== 0) throw new MmError("EINVAL", "mprotect: address must be page aligned");
  const end = start + Math.ceil(len / PS) * PS;
  // do_mprotect_pkey(): ENOMEM at once when no VMA covers the start; a
  // hole further on ends the walk there, the VMAs before it changed, and
  // the call still fails with ENOMEM.
  let cur = start;
  for (let i = mm.findVmaIndex(start); i < mm.vmas.length && cur < end; i++) {
    const v = mm.vmas[i] as Vma;
    if (v.start > cur) break;
    cur = v.end;
  }
  if (cur === start) throw new MmError("ENOMEM", "mprotect: range is not mapped");
  const covered = Math.min(cur, end);
  const newBits = protToVmFlags(prot);
  const tlb = tlbGatherMmu(m, mm);
  // mprotect_fixup() returns at once for a VMA whose flags stay the same:
  // it is not split (nor a THP its boundary would cut) or locked.
  const vmas = yield* isolateRangeLocked(m, mm, start, covered, (v) => ((v.flags & ~VM_ACCESS_FLAGS) | newBits) !== v.flags);
  for (const vma of vmas) {
    vma.flags = (vma.flags & ~VM_ACCESS_FLAGS) | newBits;
    yield* changeProtection(tlb, vma);
  }
  tlbFinishMmu(tlb);
  yield* mergeAroundLocked(m, mm, start, covered);
  if (covered < end) throw new MmError("ENOMEM", "mprotect: range is not fully mapped", covered);
}
