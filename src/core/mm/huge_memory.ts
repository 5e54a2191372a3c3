// PMD-mapped THP: models do_huge_pmd_anonymous_page(), do_huge_zero_wp_pmd(),
// zap_huge_pmd(), __split_huge_pmd_locked(), copy_huge_pmd() and
// change_huge_pmd() (mm/huge_memory.c) with x86's deposited PTE table
// (pgtable_trans_huge_deposit/withdraw, mm/pgtable-generic.c), and THP
// migration's PMD migration entries (CONFIG_ARCH_ENABLE_THP_MIGRATION:
// set_pmd_migration_entry(), remove_migration_pmd(), and what zap, split,
// fork and mprotect do with such an entry). THPs are anonymous only.

import { EV_TABLE } from "../events.js";
import type { Machine } from "../machine.js";
import { type MmuGather, tlbFlushMmu, tlbRemoveFolioPages, tlbRemovePmdTlbEntry } from "./mmu_gather.js";
import { LVL_PTE } from "./pgtable.js";
import { MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE } from "../arch/arch.js";
import { allocLargeFolio } from "./page_alloc.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SWAPBACKED, PG_ZERO } from "./physmem.js";
import { type Mm, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SHARED, VM_WRITE, type Vma } from "./types.js";
import { folioSetAnonRmap } from "./rmap.js";
import { accountTable } from "./walk.js";
import type { KGen } from "./memory.js";
import { type Interleaver, LK_PMD, site } from "../sync.js";

const S_SPLIT_PMD_LOCK = site("__split_huge_pmd", "take the PMD lock");

// mm_get_huge_zero_folio(): allocated at first use and kept; -1 when that
// allocation fails (the read fault falls back to PTEs).
export function hugeZeroPfn(m: Machine): number {
  const phys = m.phys;
  if (phys.hugeZeroPfn < 0) {
    const pfn = allocLargeFolio(m, m.geo.pmdOrder);
    if (pfn < 0) return -1;
    for (let i = 0; i < m.geo.pmdNr; i++) phys.flags[pfn + i] |= PG_ZERO;
    phys.hugeZeroPfn = pfn;
  }
  return phys.hugeZeroPfn;
}

export function isHugeZeroPmd(m: Machine, v: number): boolean {
  return m.phys.hugeZeroPfn >= 0 && m.arch.ptePfn(v) === m.phys.hugeZeroPfn;
}

// thp_vma_allowable_order() + thp_vma_suitable_order() for PMD order, anon only.
export function thpEligible(m: Machine, vma: Vma, addr: number): boolean {
  if (vma.file !== null || (vma.flags & VM_SHARED) !== 0) return false;
  if ((vma.flags & VM_NOHUGEPAGE) !== 0) return false;
  const policy = m.config.thp;
  if (policy === "never") return false;
  if (policy === "madvise" && (vma.flags & VM_HUGEPAGE) === 0) return false;
  const haddr = addr - (addr % m.geo.pmdSize);
  return haddr >= vma.start && haddr + m.geo.pmdSize <= vma.end;
}

// pte_alloc_one() + pgtable_trans_huge_deposit()
function depositTable(m: Machine, mm: Mm): void {
  const slot = m.tables.alloc(LVL_PTE);
  m.counters.ptAlloc++;
  accountTable(m, mm, LVL_PTE, 1);
  mm.deposited.push(slot);
}

// pgtable_trans_huge_withdraw()
function withdrawTable(mm: Mm): number {
  const slot = mm.deposited.pop();
  if (slot === undefined) throw new Error("model bug: no deposited page table to withdraw");
  return slot;
}

// zap_deposited_table(): withdraw and free at once (it was never reachable).
function zapDepositedTable(m: Machine, mm: Mm): void {
  const slot = withdrawTable(mm);
  if ((m.evMask & EV_TABLE) !== 0) m.tableEvent("table-free", slot, "zap_deposited_table");
  m.tables.free(slot);
  m.counters.ptFree++;
  accountTable(m, mm, LVL_PTE, -1);
}

// do_huge_pmd_anonymous_page(): returns false to fall back to PTEs (as
// VM_FAULT_FALLBACK does: the huge zero page or the THP could not be
// allocated, THP_FAULT_FALLBACK).
export function doHugePmdAnonymousPage(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, write: boolean, haddr: number): boolean {
  const A = m.arch;
  const prot = A.vmGetPageProt(vma.flags);
  if (!write && m.config.thpUseZeroPage && m.config.zeroPage) {
    const zero = hugeZeroPfn(m);
    if (zero < 0) {
      m.counters.thpFaultFallback++;
      return false;
    }
    depositTable(m, mm);
    m.tables.set(pmdIdx, A.pmdMkhuge(A.pfnPte(zero, prot)));
    m.counters.pteWrites++;
    return true;
  }
  if (vma.anonVma === 0) vma.anonVma = m.newAnonVma();
  // vma_alloc_anon_folio_pmd()
  const phys = m.phys;
  const pfn = allocLargeFolio(m, m.geo.pmdOrder);
  if (pfn < 0) {
    m.counters.thpFaultFallback++;
    return false;
  }
  m.counters.pagesAlloc += m.geo.pmdNr;
  phys.flags[pfn] |= PG_ANON | PG_SWAPBACKED;
  for (let i = 0; i < m.geo.pmdNr; i++) phys.flags[pfn + i] |= PG_ANON_EXCLUSIVE;
  phys.addEntireMapcount(pfn, 1);
  folioSetAnonRmap(m, pfn, vma, haddr);
  depositTable(m, mm);
  let v = A.pmdMkhuge(A.pfnPte(pfn, prot));
  if ((vma.flags & VM_WRITE) !== 0) v = A.pteMkwrite(A.pteMkdirty(v));
  m.tables.set(pmdIdx, v);
  m.counters.pteWrites++;
  mm.rssAnon += m.geo.pmdNr;
  mm.anonHugePmds++;
  m.counters.thpFaults++;
  return true;
}

// Write fault on a huge PMD without write permission: do_huge_zero_wp_pmd()
// for the huge zero page (a THP replaces it), do_huge_pmd_wp_page() otherwise
// (reuse if exclusive, else split and let the PTE path copy one page).
// Returns false when the caller must retry at PTE level.
export function doHugePmdWpPage(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, haddr: number): boolean {
  const A = m.arch;
  const phys = m.phys;
  const old = m.tables.get(pmdIdx);
  // do_huge_zero_wp_pmd(); when its THP cannot be allocated, the zero PMD
  // is split and the fault goes on at PTE level.
  if (isHugeZeroPmd(m, old)) {
    const pfn = allocLargeFolio(m, m.geo.pmdOrder);
    if (pfn < 0) {
      m.counters.thpFaultFallback++;
      splitHugePmdLocked(m, mm, vma, pmdIdx, haddr);
      return false;
    }
    if (vma.anonVma === 0) vma.anonVma = m.newAnonVma();
    m.counters.pagesAlloc += m.geo.pmdNr;
    phys.flags[pfn] |= PG_ANON | PG_SWAPBACKED;
    for (let i = 0; i < m.geo.pmdNr; i++) phys.flags[pfn + i] |= PG_ANON_EXCLUSIVE;
    phys.addEntireMapcount(pfn, 1);
    folioSetAnonRmap(m, pfn, vma, haddr);
    // pmdp_huge_clear_flush() then set: the deposited table stays.
    m.tables.set(pmdIdx, 0);
    m.counters.pteAtomics++;
    A.flushTlbRange(m, mm, haddr, haddr + m.geo.pmdSize, m.geo.pmdShift, false);
    m.tables.set(pmdIdx, A.pteMkwrite(A.pteMkdirty(A.pmdMkhuge(A.pfnPte(pfn, A.vmGetPageProt(vma.flags))))));
    m.counters.pteWrites++;
    mm.rssAnon += m.geo.pmdNr;
    mm.anonHugePmds++;
    m.counters.thpFaults++;
    return true;
  }
  const head = A.ptePfn(old);
  if (((phys.flags[head] as number) & PG_ANON_EXCLUSIVE) !== 0 || (phys.ref[head] === 1 && phys.entireMapcount(head) === 1)) {
    for (let i = 0; i < m.geo.pmdNr; i++) phys.flags[head + i] |= PG_ANON_EXCLUSIVE;
    m.tables.set(pmdIdx, A.pteMkyoung(A.pteMkwrite(A.pteMkdirty(old))));
    m.counters.pteWrites++;
    return true;
  }
  // The kernel drops the PMD lock and takes it again in __split_huge_pmd().
  splitHugePmdLocked(m, mm, vma, pmdIdx, haddr);
  return false;
}

// __split_huge_pmd(): take the PMD lock, then split (a caller that raced
// with another splitter finds a PTE table and does nothing). A generator for
// callers under mmap_lock for reading, whose PMD lock may be held by another
// thread (a splitter, try_to_free_pte()); a free lock is taken without an
// interleaving point.
export function* splitHugePmd(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, haddr: number): KGen {
  const il = m.il;
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (il && !il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_SPLIT_PMD_LOCK);
  m.prof?.enter("__split_huge_pmd");
  splitHugePmdLocked(m, mm, vma, pmdIdx, haddr);
  m.prof?.exit();
  if (il) il.unlock(LK_PMD, pmdSlot);
}

// The same for callers holding mmap_lock for writing (VMA splits, mremap,
// fork's source): nobody else can hold the PMD lock of this mm then.
export function splitHugePmdMmapWriteLocked(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, haddr: number): void {
  const il = m.il;
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (il && !il.trylock(LK_PMD, pmdSlot)) throw new Error("model bug: PMD lock held while mmap_lock is held for writing");
  m.prof?.enter("__split_huge_pmd");
  splitHugePmdLocked(m, mm, vma, pmdIdx, haddr);
  m.prof?.exit();
  if (il) il.unlock(LK_PMD, pmdSlot);
}

// What a path that found a PMD leaf the hardware cannot use (pmdLeafInvalid())
// reads once it holds the PMD lock, as pmd_trans_huge_lock(),
// huge_pmd_set_accessed() and do_huge_pmd_wp_page() take it before they trust
// the entry: a splitter holds the lock from pmdp_invalidate() until the PTE
// table is in, so the waiter then finds the table. Explorer only.
export function* pmdReadLocked(m: Machine, pmdIdx: number, site: number): KGen<number> {
  const il = m.il as Interleaver;
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (!il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, site);
  const v = m.tables.get(pmdIdx);
  il.unlock(LK_PMD, pmdSlot);
  return v;
}

// __split_huge_pmd_locked(): the PMD mapping becomes HPAGE_PMD_NR PTEs in the
// table that was deposited for it. nr_ptes does not change. The caller holds
// the PMD lock.
function splitHugePmdLocked(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, haddr: number): void {
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const old = T.get(pmdIdx);
  if (A.isMigrationPmd(old)) {
    splitMigrationPmdLocked(m, mm, pmdIdx, old);
    return;
  }
  if (!A.entryIsLeaf(old)) return;
  // pmdp_invalidate(): the entry stays pmd_trans_huge() for software (which
  // then waits for the PMD lock) and faults for the hardware walker; the TLB
  // flush comes before the PTEs appear.
  T.set(pmdIdx, A.pmdMkinvalid(old));
  m.counters.pteAtomics++;
  A.flushTlbRange(m, mm, haddr, haddr + m.geo.pmdSize, m.geo.pmdShift, false);
  const slot = withdrawTable(mm);
  // Filled through a local PMD value (pmd_populate(mm, &_pmd, pgtable)):
  // no walker reaches the table until it is installed below.
  m.unreachableTables.push(slot);
  const e = T.chunkOf(slot);
  const base = T.base(slot);
  const head = A.ptePfn(old);
  if (isHugeZeroPmd(m, old)) {
    // __split_huge_zero_page_pmd(): one set_pte_at() per page.
    const z = A.pteMkspecial(A.pfnPte(phys.zeroPfn, A.vmGetPageProt(vma.flags)));
    for (let i = 0; i < m.geo.pmdNr; i++) A.setPtes(m, mm, haddr + i * m.geo.pageSize, e, base + i, z, 1);
  } else {
    // One set_ptes() for all the pages; every PTE keeps the PMD's
    // write/dirty/young bits.
    A.setPtes(m, mm, haddr, e, base, A.pmdLeafToPte(old, 0), m.geo.pmdNr);
    for (let i = 0; i < m.geo.pmdNr; i++) phys.mapcount[head + i] = (phys.mapcount[head + i] as number) + 1;
    // Each PTE mapping holds a folio reference; the PMD held one.
    phys.ref[head] = (phys.ref[head] as number) + m.geo.pmdNr - 1;
    phys.addEntireMapcount(head, -1);
    if ((phys.flags[head] as number) & PG_ANON) mm.anonHugePmds--;
    if (A.pteDirty(old)) phys.flags[head] |= PG_DIRTY;
  }
  m.unreachableTables.pop();
  T.set(pmdIdx, A.mkTableEntry(T.pfn[slot] as number));
  m.counters.pteWrites++;
  m.counters.thpSplits++;
}

// __split_huge_pmd_locked() of a PMD migration entry: the deposited table
// gets one PTE migration entry per page, each of the PMD entry's kind
// (writable, readable-exclusive or readable) with its young and dirty
// bits, and replaces the PMD entry. Nothing was present: no invalidation,
// no flush, and no mapcount or reference changes (the entries hold none).
function splitMigrationPmdLocked(m: Machine, mm: Mm, pmdIdx: number, old: number): void {
  const A = m.arch;
  const T = m.tables;
  const slot = withdrawTable(mm);
  m.unreachableTables.push(slot);
  const e = T.chunkOf(slot);
  const base = T.base(slot);
  const head = A.migrationPfn(old);
  const kind = A.migrationKind(old);
  const young = A.migrationYoung(old);
  const dirty = A.migrationDirty(old);
  for (let i = 0; i < m.geo.pmdNr; i++) e[base + i] = A.mkMigrationPte(head + i, kind, young, dirty); // set_pte_at()
  m.counters.pteWrites += m.geo.pmdNr;
  m.unreachableTables.pop();
  T.set(pmdIdx, A.mkTableEntry(T.pfn[slot] as number));
  m.counters.pteWrites++;
  m.counters.thpSplits++;
}

// set_pmd_migration_entry() (mm/huge_memory.c), from try_to_migrate_one()
// for a PMD-mapped THP, under the PMD lock: pmdp_invalidate() flushes the
// mapping; the THP's AnonExclusive moves into the entry
// (folio_try_share_anon_rmap_pmd(), which refuses a folio a GUP pin may
// hold: the old entry goes back and false is returned, -EBUSY); a dirty
// PMD dirties the folio; the PMD becomes a writable, readable-exclusive or
// readable migration entry with the access and dirty bits; the entire
// mapping and its reference go (folio_remove_rmap_pmd(), folio_put()).
// RSS and the deposited table stay with the entry.
export function setPmdMigrationEntry(m: Machine, mm: Mm, pmdIdx: number, haddr: number): boolean {
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const G = m.geo;
  const old = T.get(pmdIdx);
  const head = A.ptePfn(old);
  T.set(pmdIdx, A.pmdMkinvalid(old));
  m.counters.pteAtomics++;
  A.flushTlbRange(m, mm, haddr, haddr + G.pmdSize, G.pmdShift, false);
  const anon = ((phys.flags[head] as number) & PG_ANON) !== 0;
  const anonExclusive = anon && ((phys.flags[head] as number) & PG_ANON_EXCLUSIVE) !== 0;
  if (anonExclusive && phys.folioMaybeDmaPinned(head)) {
    T.set(pmdIdx, old); // set_pmd_at() of what pmdp_invalidate() returned
    m.counters.pteWrites++;
    return false;
  }
  if (anonExclusive) for (let i = 0; i < G.pmdNr; i++) phys.flags[head + i] &= ~PG_ANON_EXCLUSIVE;
  if (A.pteDirty(old)) phys.flags[head] |= PG_DIRTY; // folio_mark_dirty()
  const kind = A.pteWrite(old) ? MIG_WRITE : anonExclusive ? MIG_READ_EXCLUSIVE : MIG_READ;
  T.set(pmdIdx, A.mkMigrationPmd(head, kind, A.pteYoung(old), A.pteDirty(old))); // set_pmd_at()
  m.counters.pteWrites++;
  phys.addEntireMapcount(head, -1);
  phys.ref[head] = (phys.ref[head] as number) - 1;
  m.counters.folioAtomics += 2;
  if (anon) mm.anonHugePmds--;
  return true;
}

// remove_migration_pmd() (mm/huge_memory.c), from remove_migration_ptes()'s
// walk under the PMD lock: the PMD migration entry at pmdIdx becomes a PMD
// leaf mapping folio dst (the new THP, or the source when the migration
// failed) with the VMA's protection, writable if the entry was, old unless
// the entry was young, dirty if it was; the entire mapping is added with a
// reference (folio_get(), folio_add_anon_rmap_pmd(), exclusive unless the
// entry was readable). A non-present entry became present: no flush, and
// update_mmu_cache_pmd() does nothing on x86-64 and arm64.
export function removeMigrationPmd(m: Machine, mm: Mm, pmdIdx: number, dst: number, prot: number): void {
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const v = T.get(pmdIdx);
  const kind = A.migrationKind(v);
  let pmd = A.pmdMkhuge(A.pfnPte(dst, prot));
  pmd = A.migrationYoung(v) ? A.pteMkyoung(pmd) : A.pteMkold(pmd);
  if (A.migrationDirty(v)) pmd = A.pteMkdirty(pmd);
  if (kind === MIG_WRITE) pmd = A.pteMkwrite(pmd);
  const anon = ((phys.flags[dst] as number) & PG_ANON) !== 0;
  if (anon && kind !== MIG_READ) for (let i = 0; i < m.geo.pmdNr; i++) phys.flags[dst + i] |= PG_ANON_EXCLUSIVE;
  phys.ref[dst] = (phys.ref[dst] as number) + 1;
  phys.addEntireMapcount(dst, 1);
  m.counters.folioAtomics += 2;
  if (anon) mm.anonHugePmds++;
  T.set(pmdIdx, pmd); // set_pmd_at()
  m.counters.pteWrites++;
}

// zap_huge_pmd(): a PMD migration entry is cleared with its deposited
// table and RSS; the folio is the migration's, nothing is freed (and the
// TLB range is recorded all the same, tlb_remove_pmd_tlb_entry() comes
// first).
export function zapHugePmd(tlb: MmuGather, pmdIdx: number, addr: number): void {
  const m = tlb.m;
  const A = m.arch;
  const mm = tlb.mm;
  const phys = m.phys;
  const old = m.tables.get(pmdIdx);
  m.tables.set(pmdIdx, 0);
  if (tlb.fullmm) {
    m.counters.pteReads++;
    m.counters.pteWrites++;
  } else m.counters.pteAtomics++;
  tlbRemovePmdTlbEntry(tlb, addr);
  zapDepositedTable(m, mm);
  if (A.isMigrationPmd(old)) {
    if ((phys.flags[phys.folioHead(A.migrationPfn(old))] as number) & PG_ANON) mm.rssAnon -= m.geo.pmdNr;
    return;
  }
  if (isHugeZeroPmd(m, old)) return;
  const head = A.ptePfn(old);
  phys.addEntireMapcount(head, -1);
  if ((phys.flags[head] as number) & PG_ANON) {
    mm.rssAnon -= m.geo.pmdNr;
    mm.anonHugePmds--;
  }
  // tlb_remove_page_size(): a full batch is flushed at once.
  if (tlbRemoveFolioPages(tlb, head, 1, false)) tlbFlushMmu(tlb);
}

// copy_huge_pmd(): fork shares the THP and write-protects both mappings.
export function copyHugePmd(m: Machine, dst: Mm, src: Mm, dstPmdIdx: number, srcPmdIdx: number, vma: Vma): void {
  const A = m.arch;
  const phys = m.phys;
  const T = m.tables;
  depositTable(m, dst);
  const v = T.get(srcPmdIdx);
  if (A.isMigrationPmd(v)) {
    // A PMD migration entry: a writable or readable-exclusive one becomes
    // readable in the parent (set_pmd_at()) and the child gets the same,
    // counted in its RSS; the folio is not touched.
    let n = v;
    if (A.migrationKind(v) !== MIG_READ) {
      n = A.mkMigrationPmd(A.migrationPfn(v), MIG_READ, A.migrationYoung(v), A.migrationDirty(v));
      T.set(srcPmdIdx, n);
      m.counters.pteWrites++;
    }
    dst.rssAnon += m.geo.pmdNr;
    T.set(dstPmdIdx, n);
    m.counters.pteWrites++;
    return;
  }
  if (isHugeZeroPmd(m, v)) {
    m.tables.set(dstPmdIdx, v);
    m.counters.pteWrites++;
    return;
  }
  const head = A.ptePfn(v);
  // folio_try_dup_anon_rmap_pmd(): the folio is no longer exclusive.
  for (let i = 0; i < m.geo.pmdNr; i++) phys.flags[head + i] &= ~PG_ANON_EXCLUSIVE;
  phys.addEntireMapcount(head, 1);
  phys.ref[head] = (phys.ref[head] as number) + 1;
  dst.rssAnon += m.geo.pmdNr;
  dst.anonHugePmds++;
  let n = v;
  if (vma.isCow && A.pteWrite(v)) {
    n = A.pteWrprotect(v);
    T.set(srcPmdIdx, n); // pmdp_set_wrprotect()
    m.counters.pteAtomics++;
  }
  T.set(dstPmdIdx, A.pteMkold(n));
  m.counters.pteWrites++;
}

// change_huge_pmd(): mprotect over a whole PMD mapping.
export function changeHugePmd(tlb: MmuGather, pmdIdx: number, addr: number, newprot: number, vma: Vma): void {
  const m = tlb.m;
  const A = m.arch;
  const old = m.tables.get(pmdIdx);
  if (A.isMigrationPmd(old)) {
    // A PMD migration entry: a writable one becomes readable-exclusive
    // (the THP is anonymous), else it stays; nothing to flush.
    if (A.migrationKind(old) === MIG_WRITE) {
      m.tables.set(pmdIdx, A.mkMigrationPmd(A.migrationPfn(old), MIG_READ_EXCLUSIVE, A.migrationYoung(old), A.migrationDirty(old)));
      m.counters.pteWrites++;
    }
    return;
  }
  m.counters.pteAtomics++; // pmdp_invalidate_ad()
  let n = A.pmdMkhuge(A.pteModify(old, newprot));
  // Anon exclusive THP may become writable directly (can_change_pmd_writable()).
  if ((vma.flags & VM_WRITE) !== 0 && !isHugeZeroPmd(m, old) && !A.pteWrite(n) && (vma.flags & VM_SHARED) === 0) {
    const head = A.ptePfn(old);
    if (((m.phys.flags[head] as number) & PG_ANON_EXCLUSIVE) !== 0 && A.pteDirty(old)) n = A.pteMkwrite(n);
  }
  m.tables.set(pmdIdx, n);
  m.counters.pteWrites++;
  if (A.pteNeedsFlush(old, n)) tlbRemovePmdTlbEntry(tlb, addr);
}
