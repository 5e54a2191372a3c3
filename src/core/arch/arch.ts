// The interface generic mm code uses to reach an architecture, as the kernel's
// asm/pgtable.h, asm/tlb.h and asm/tlbflush.h do. PTE values are numbers whose
// encoding only the architecture knows.

import type { Machine } from "../machine.js";
import type { MmuGather } from "../mm/mmu_gather.js";
import type { Mm } from "../mm/types.js";

export interface Arch {
  readonly name: string;
  readonly pageShift: number; // PAGE_SHIFT
  readonly ptrsPerTable: number;
  readonly levels: number; // 2 to 5
  // TASK_SIZE: user addresses end here. DEFAULT_MAP_WINDOW: where mmap
  // looks without a hint above it (below TASK_SIZE with 5-level x86 paging
  // and 52-bit arm64 VAs, whose upper part is opt-in).
  readonly taskSize: number;
  readonly mapWindow: number;

  // Gives back what the architecture keeps beside a machine (Machine.release()).
  release?(m: Machine): void;

  pteNone(v: number): boolean;
  ptePresent(v: number): boolean; // includes PROT_NONE entries
  pteWrite(v: number): boolean;
  pteDirty(v: number): boolean;
  pteYoung(v: number): boolean;
  pteSpecial(v: number): boolean;
  ptePfn(v: number): number;
  pfnPte(pfn: number, pgprot: number): number;
  pteMkwrite(v: number): number;
  pteWrprotect(v: number): number;
  pteMkdirty(v: number): number;
  pteMkclean(v: number): number;
  pteMkyoung(v: number): number;
  pteMkold(v: number): number;
  pteMkspecial(v: number): number;
  pteModify(v: number, newprot: number): number;
  vmGetPageProt(vmFlags: number): number;
  // Upper levels.
  mkTableEntry(tablePfn: number): number;
  entryIsTable(v: number): boolean;
  entryIsLeaf(v: number): boolean; // PMD/PUD block mapping
  pmdMkhuge(v: number): number;
  // pmd_mkinvalid(): what pmdp_invalidate() stores while a THP's PMD is
  // split. Software still sees pmd_present() and pmd_trans_huge() (x86 keeps
  // _PAGE_PSE, arm64 sets PTE_PRESENT_INVALID); the hardware walker faults.
  pmdMkinvalid(v: number): number;
  // A PMD leaf the hardware walker faults on although software sees
  // pmd_trans_huge(): pmd_mkinvalid()'s result (or a PROT_NONE leaf).
  pmdLeafInvalid(v: number): boolean;
  // The PTE for page i of a PMD leaf, with the same attributes (THP split).
  pmdLeafToPte(pmdv: number, i: number): number;
  // pte_next_pfn(): the same entry mapping the next page.
  pteAdvancePfn(v: number, n: number): number;
  // __pte_batch_clear_ignored() for folio_pte_batch(): clear the bits the
  // batch may ignore (always AF and soft-dirty; dirty and write unless respected).
  pteBatchNorm(v: number, respectDirty: boolean, respectWrite: boolean): number;
  // Swap entries (swp_entry_to_pte() for swap type 0 and pte_to_swp_entry()):
  // a non-present entry naming slot `offset`, with the exclusive marker
  // (pte_swp_mkexclusive()) when the swapped-out page was AnonExclusive.
  mkSwapPte(offset: number, exclusive: boolean): number;
  isSwapPte(v: number): boolean; // is_swap_pte(): not none, not present
  swpOffset(v: number): number;
  pteSwpExclusive(v: number): boolean;
  pteSwpClearExclusive(v: number): number;
  // Migration entries (make_readable_migration_entry(),
  // make_readable_exclusive_migration_entry(), make_writable_migration_entry(),
  // make_migration_entry_young()/_dirty(), include/linux/swapops.h): a
  // non-present entry naming the page being migrated, its kind (MIG_*) and
  // the access and dirty bits the cleared PTE had.
  mkMigrationPte(pfn: number, kind: number, young: boolean, dirty: boolean): number;
  isMigrationPte(v: number): boolean; // is_swap_pte() && is_migration_entry()
  migrationPfn(v: number): number;
  migrationKind(v: number): number;
  migrationYoung(v: number): boolean;
  migrationDirty(v: number): boolean;
  // PMD migration entries (CONFIG_ARCH_ENABLE_THP_MIGRATION:
  // swp_entry_to_pmd() of a migration entry, set_pmd_migration_entry()):
  // the same swap-format entry stored in a PMD, naming the THP's first page;
  // migrationPfn() and friends read it (pmd_to_swp_entry()). Neither a leaf
  // nor a table for entryIsLeaf()/entryIsTable(), and the hardware walker
  // faults on it.
  mkMigrationPmd(pfn: number, kind: number, young: boolean, dirty: boolean): number;
  isMigrationPmd(v: number): boolean; // is_pmd_migration_entry()
  // pte_needs_flush(): does changing a present entry from old to new need a TLB flush?
  pteNeedsFlush(oldv: number, newv: number): boolean;

  // Hardware walk permissions of a leaf: TLB_* bits, or -1 if not accessible.
  leafPerm(v: number): number;
  // Hardware A/D update of a leaf for an access (returns the new value), or
  // -1 when the hardware does not manage the flags (no FEAT_HAFDBS) and the
  // access raises an access-flag or permission fault for software to handle.
  hwMkyoungDirty(v: number, write: boolean): number;
  // log2 of the bytes one TLB entry filled from leaf v at walk level `level`
  // (0 = PTE) covers: 12 + 9 * level, or 16 for an arm64 PTE with PTE_CONT
  // (4K granule: 16 pages cached as one entry).
  tlbEntryShift(v: number, level: number): number;

  // TLB maintenance.
  tlbFlush(m: Machine, tlb: MmuGather): void; // tlb_flush()
  flushTlbPage(m: Machine, mm: Mm, addr: number): void; // flush_tlb_page()
  flushTlbRange(m: Machine, mm: Mm, start: number, end: number, strideShift: number, freedTables: boolean): void;
  flushTlbMm(m: Machine, mm: Mm): void; // flush_tlb_mm()
  // Reclaim's batched unmap flush (CONFIG_ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH,
  // asm/tlbbatch.h): arch_tlbbatch_should_defer(), arch_tlbbatch_add_pending()
  // for [start, end) of mm, arch_tlbbatch_flush(). `batch` is struct
  // arch_tlbflush_unmap_batch: a CPU mask (x86); arm64 keeps nothing in it.
  tlbbatchShouldDefer(m: Machine, mm: Mm): boolean;
  tlbbatchAddPending(m: Machine, batch: Uint8Array, mm: Mm, start: number, end: number): void;
  tlbbatchFlush(m: Machine, batch: Uint8Array): void;
  switchMm(m: Machine, cpu: number, mm: Mm | null): void; // switch_mm_irqs_off()
  // Is a TLB entry tagged `asid` on `cpu` still usable by mm (not pending a
  // flush that a switch back would perform)? walkCache: the entry is a
  // paging-structure (walk) cache entry, which a speculative walk through
  // the still-loaded tables may use even when no access can.
  asidReachable(m: Machine, cpu: number, asid: number, walkCache?: boolean): Mm | null;
  describeEntry(v: number): string;

  // PTE-level operations the generic code uses for every access to a PTE
  // table's entries, as include/linux/pgtable.h declares them and an
  // architecture may override (arm64 does, for contpte). The entries are
  // e[i], e[i+1], ... (a TableStore chunk and index; all nr entries lie in one
  // PTE table) and map addr, addr + 4096, ... in mm. These hooks count their
  // own loads, stores and atomics in m.counters.
  //
  // set_ptes(): map nr consecutive pages starting with pte. With nr > 1 the
  // entries must be none (the kernel's contract).
  setPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, pte: number, nr: number): void;
  // ptep_get(): the entry as software sees it (arm64: with access/dirty
  // gathered over a contiguous block).
  ptepGet(m: Machine, e: Float64Array, i: number): number;
  // ptep_get_lockless(): the same without the PTL (arm64 retries until it
  // sees a consistent block). A generator: its loads are interleaving points
  // under the explorer; sequential callers drive it with run().
  ptepGetLockless(m: Machine, e: Float64Array, i: number): Generator<number, number, void>;
  // ptep_get_and_clear_full(): clear one entry and return its old value.
  ptepGetAndClearFull(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, full: boolean): number;
  // get_and_clear_full_ptes(): clear nr entries of one folio; returns the
  // first with access/dirty ORed over all nr.
  getAndClearFullPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, nr: number, full: boolean): number;
  // clear_full_ptes(): the same when the caller needs no access/dirty.
  clearFullPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, nr: number, full: boolean): void;
  // wrprotect_ptes(): write-protect nr entries of one folio (fork).
  wrprotectPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, nr: number): void;
  // ptep_set_wrprotect()
  ptepSetWrprotect(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number): void;
  // modify_prot_start_ptes(): clear nr entries for a protection change,
  // returning the first with access/dirty ORed over all.
  modifyProtStartPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, nr: number): number;
  // modify_prot_commit_ptes(): write the new values (pte for the first page,
  // advancing the PFN).
  modifyProtCommitPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, old: number, pte: number, nr: number): void;
  // ptep_set_access_flags(): install the access/dirty/write upgrades of
  // `entry` (a fault on a present entry); true if anything changed.
  ptepSetAccessFlags(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, entry: number, dirty: boolean): boolean;
  // ptep_test_and_clear_young()
  ptepTestAndClearYoung(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number): boolean;
  // ptep_clear_flush_young(): test and clear the access flag, flushing the
  // TLB as the architecture requires (reclaim's folio_referenced_one()).
  ptepClearFlushYoung(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number): boolean;
  // clear_young_dirty_ptes() (MADV_FREE/MADV_COLD): CYD_* flags.
  clearYoungDirtyPtes(m: Machine, mm: Mm, addr: number, e: Float64Array, i: number, nr: number, flags: number): void;
  // pte_batch_hint(): how many entries from i on are known to map consecutive
  // pages with the same attributes (arm64: to the end of a contpte block).
  pteBatchHint(e: Float64Array, i: number, pte: number): number;
}

// The PTE-level hooks above, as one set an architecture provides.
export type PteHooks = Pick<
  Arch,
  | "setPtes"
  | "ptepGet"
  | "ptepGetLockless"
  | "ptepGetAndClearFull"
  | "getAndClearFullPtes"
  | "clearFullPtes"
  | "wrprotectPtes"
  | "ptepSetWrprotect"
  | "modifyProtStartPtes"
  | "modifyProtCommitPtes"
  | "ptepSetAccessFlags"
  | "ptepTestAndClearYoung"
  | "ptepClearFlushYoung"
  | "clearYoungDirtyPtes"
  | "pteBatchHint"
>;

export const CYD_YOUNG = 1;
export const CYD_DIRTY = 2;

// Kinds of migration entry: SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE
// and SWP_MIGRATION_WRITE (include/linux/swap.h); a writable one implies an
// exclusive anonymous page.
export const MIG_READ = 0;
export const MIG_READ_EXCLUSIVE = 1;
export const MIG_WRITE = 2;
export const MIG_NAMES = ["read", "read-exclusive", "write"];
// Their swap types with v6.17's defaults (CONFIG_DEVICE_PRIVATE with 3
// device types, CONFIG_MEMORY_FAILURE, CONFIG_PTE_MARKER): MAX_SWAPFILES =
// 32 - 3 - 3 - 1 - 1 = 24, SWP_HWPOISON = 24, SWP_MIGRATION_READ = 25.
export const SWP_MIGRATION_READ = 25;
