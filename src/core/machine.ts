// The modelled machine: physical memory, page-table pages, CPUs with their
// translation caches, the architecture, and the policies (sysfs knobs,
// Kconfig options, named historical variants) the kernel code consults.

import type { Arch } from "./arch/arch.js";
import type { Interleaver } from "./sync.js";
import type { FnProfiler } from "./profile.js";
import { Counters } from "./counters.js";
import { EV_FLUSH, EV_FRAMES_FREED, EV_PINS_RELEASED, EV_TABLE, EventBus, type ModelSink } from "./events.js";
import { type Geometry, geometry } from "./geometry.js";
import { CONFLICT_OA, CONFLICT_OA_OR_SIZE, Tlb } from "./hw/tlb.js";
import { PhysMem } from "./mm/physmem.js";
import { TableStore } from "./mm/pgtable.js";
import type { TlbUbc } from "./mm/rmap.js";
import { SwapDevice } from "./mm/swap.js";
import { type Watermarks, watermarks } from "./mm/page_alloc.js";
import { FileObj, Mm } from "./mm/types.js";

export type ThpPolicy = "never" | "madvise" | "always";

// Named historical variants: each value selects a real code path.
export const VARIANTS = {
  // tlb_finish_mmu() when another gather on the mm is in flight.
  // "none" (before 99baac21e458, 2017): a gather flushes only what it
  // cleared itself, whatever else is in flight on the mm.
  gather_nested: ["fixed", "reset-range", "none"],
  // zap_pte_range() PT-reclaim tail: "fixed" (v6.14 fix: direct path only when
  // the loop never broke out), "direct-always" (before the fix).
  pt_reclaim: ["fixed", "direct-always"],
  // arm64 contpte: "off" (CONFIG_ARM64_CONTPTE=n), "unfold-each" (v6.9 helpers
  // without batched clearing: every single-entry clear unfolds its block),
  // "intermediate" (v2 14/14: a fullmm clear leaves the block's other entries
  // valid and CONT), "batched" (clear_full_ptes()/get_and_clear_full_ptes(),
  // the default).
  contpte: ["batched", "off", "unfold-each", "intermediate"],
  // ptep_get_lockless() on a contpte block: "retry" until consistent (v6.9
  // on), "no-retry" (a plain gather, as the consistency loop's critics proposed).
  contpte_lockless: ["retry", "no-retry"],
  // change_pte_range() batching: "off" (one PTE at a time, before the 2025
  // series), "folio-first-page" (as merged in v6.17-rc1: anon-exclusive
  // sub-batches consult the folio's first pages), "fixed" (cf1b80dc31a1).
  mprotect_batching: ["fixed", "off", "folio-first-page"],
  // zap_pte_range(): "batched" (folio_pte_batch() + clear_full_ptes(), v6.10
  // on) or "off" (one ptep_get_and_clear_full() and one gather slot per page).
  zap_batching: ["batched", "off"],
  // How unlinked page tables are freed: "rcu" (call_rcu(), what PT reclaim
  // needs; x86 since 718b13861d22) or "semi-rcu" (freed right after the TLB
  // flush and a synchronous IPI, as x86 did before: safe against GUP-fast,
  // which runs with IRQs off, but not against pte_offset_map() readers under
  // rcu_read_lock()).
  table_free: ["rcu", "semi-rcu"],
  // mremap's TLB flush of the old range: "fixed" (eb66ae030829, v4.19: every
  // move_ptes()/move_huge_pmd() that moved a present entry flushes before
  // dropping either page-table lock), "after-unlock" (before it,
  // CVE-2018-18281: only a dirty entry forced a flush, after the new table's
  // lock was dropped; otherwise move_page_tables() flushed the whole old
  // range once at its end, with every lock dropped, so a concurrent
  // truncation could zap the new PTE and free the page while a TLB still
  // mapped it at the old address). That code had no move_normal_pmd() (v5.0)
  // and moved one PTE at a time (no large-folio batching, v6.16).
  mremap_flush: ["fixed", "after-unlock"],
  // move_ptes()' large-folio batch (mremap_folio_pte_batch(), mm/mremap.c):
  // "respect-write" (04d1c9d60c6e, in 6.17.y stable: FPB_RESPECT_WRITE) or
  // "ignore-write" (v6.17 as released, from f822a9a81a31: the batch ignores
  // the write bit and set_ptes() gives every entry the first one's, so a
  // read-only entry of the folio comes out writable).
  mremap_batching: ["respect-write", "ignore-write"],
  // Reclaim's deferred TLB flush (try_to_unmap() with TTU_BATCH_FLUSH) seen
  // by the rest of mm: "fixed" (3ea277194daa, v4.13, 2017: zap_pte_range(),
  // change_pte_range(), madvise_free_pte_range()/cold_or_pageout and
  // move_ptes() call flush_tlb_batched_pending() under the PTE lock), "none"
  // (before it: they do not, so mprotect()/munmap() can return while another
  // CPU still holds a writable TLB entry for a PTE reclaim already cleared).
  tlb_batch_pending: ["fixed", "none"],
  // MADV_COLLAPSE/khugepaged of anonymous memory: "writable-required" (v6.17:
  // a range with no writable entry is not collapsed, SCAN_PAGE_RO) or "any"
  // (from v6.18, Dev Jain's change that dropped the requirement: read-only
  // ranges collapse too). A later behaviour, not a historical one: diff-kernel
  // selects it on a 6.18 or newer host.
  collapse_ro: ["writable-required", "any"],
  // try_to_unmap_one() of a lazily freed (MADV_FREE) large folio:
  // "respect-write" (29f40594a281, 2026, in stable: folio_unmap_pte_batch()
  // batches a run of the folio's entries inside the VMA and the PTE table
  // with equal write bits), "ignore-write" (ddd05742b45b, v6.16 up to that
  // fix, v6.17 as released: the run ignores the write bit, and when the
  // folio was written since MADV_FREE the run is set back from its first
  // entry's value, so read-only entries come back writable), "whole-folio"
  // (354dffd29575, v6.15: can_batch_unmap_folio_ptes() batches only a folio
  // mapped whole from its first page and scans folio_nr_pages() entries from
  // there wherever the table ends: a folio that mremap() moved across a PMD
  // boundary is read past its table), "none" (before v6.15: one PTE at a
  // time).
  lazyfree_batch: ["respect-write", "ignore-write", "whole-folio", "none"],
  // do_swap_page() reading a slot outside the swap cache (SWP_SYNCHRONOUS_IO,
  // __swap_count() == 1): "pinned" (13ddaf26be32, v6.8: swapcache_prepare()
  // holds SWAP_HAS_CACHE on the slot until the PTE is set, so no second
  // swap-in reads it and no swap-out reuses it meanwhile) or "unpinned"
  // (0bcac06f27d7, v4.15 to v6.7: no pin; a second fault can swap the page
  // in and free the slot, reclaim can write the page, now changed, to the
  // same slot, and the first fault's pte_same() then maps its stale copy).
  swapin_direct: ["pinned", "unpinned"],
  // madvise_free_huge_pmd() (mm/huge_memory.c) making a young or dirty THP
  // old and clean under the PMD lock: "invalidate" (v6.17: pmdp_invalidate()
  // leaves a present-invalid entry, which a zap without the lock still sees
  // as a huge PMD and waits for, then set_pmd_at()) or "clear" (v4.5 to
  // v4.11, before 58ceeb6bec86: pmdp_huge_get_and_clear_full() empties the
  // PMD first, so a MADV_DONTNEED running beside it under mmap_lock for
  // reading finds pmd_none(), skips the THP and returns with it still
  // mapped).
  madv_free_pmd: ["invalidate", "clear"],
  // fork of an anon page a GUP pin may hold (copy_present_pte(), mm/memory.c):
  // "early-cow" (70e806e4e645, v5.9: folio_needs_cow_for_dma() makes the
  // child a copy with copy_present_page(), the parent keeps the pinned page
  // writable) or "share" (before it: the page is shared COW like any other,
  // and the parent's next store copies it away from the pin, so DMA into
  // the pinned page no longer reaches the parent).
  fork_pin: ["early-cow", "share"],
  // gup_fast_pte_range()'s re-check after grabbing the folio: "pmd-and-pte"
  // (70cbc3cc78a9, v6.2: the PMD too, as MADV_COLLAPSE may have replaced the
  // PTE table under it) or "pte-only" (before it: a pin taken through a
  // table collapse has just copied and replaced survives on arm64, which
  // has no IPI for GUP-fast to hold off).
  gup_fast_recheck: ["pmd-and-pte", "pte-only"],
  // collapse_huge_page() after pmdp_collapse_flush(): "ipi"
  // (2ba99c5e0881, v6.2: tlb_remove_table_sync_one() waits for every CPU's
  // IRQs-off section, so no GUP-fast walk of the old table is left) or
  // "none" (before it; an architecture whose TLB flush sends no IPI, arm64,
  // lets GUP-fast run on through the collapse).
  collapse_sync: ["ipi", "none"],
  // GUP-fast FOLL_PIN against fork's write-protection (gup_fast(), mm/gup.c):
  // "seqcount" (57efa1fe5957, v5.11: copy_page_range() writes
  // mm->write_protect_seq around a COW mapping's copy and GUP-fast gives its
  // pins back and falls back to the slow path if the count moved) or "none"
  // (v5.9-v5.10, after early COW for pinned pages: a pin GUP-fast grabs
  // between fork's folio_maybe_dma_pinned() test and its write-protect is
  // shared with the child, and the parent's next store copies the page
  // away from the pin).
  gup_fast_seq: ["seqcount", "none"],
  // collapse_huge_page() once it holds mmap_lock for writing: "check-pmd"
  // (v6.17: hugepage_vma_revalidate(), then check_pmd_still_valid(), which
  // walks to the PMD again and fails unless it is still a table's entry and
  // the one looked up under the read lock after the allocation; the PMD
  // re-check came with "khugepaged: recheck pmd after mmap_sem re-acquired",
  // Kirill Shutemov, merged for v4.8-rc1) or "vma-only" (before it, from
  // "mm, thp: make swapin readahead under down_read of mmap_sem", Ebru
  // Akagunduz, the same merge window: hugepage_vma_revalidate() checks the
  // VMA, but the pmd pointer from the read-locked section is used as it is,
  // so a PMD table munmap() freed in between is read and written through).
  // Commit ids not verified here (no kernel history at hand).
  collapse_revalidate: ["check-pmd", "vma-only"],
  // dup_mmap() against faults under the per-VMA lock (fork.ts):
  // "vma-write" (fb49c455323f, v6.5-rc1 and 6.4.3: vma_start_write() of
  // each parent VMA before it is copied) or "none" (v6.4 as released, from
  // 0bff0aaea03e "x86/mm: try VMA lock-based page fault handling first":
  // only mmap_lock, which those faults do not take, so a fault runs beside
  // fork's copy and its deferred flush).
  fork_vma_lock: ["vma-write", "none"],
} as const satisfies Record<string, readonly string[]>;
export type VariantName = keyof typeof VARIANTS;

export interface MachineConfig {
  cpus: number;
  levels: 4 | 5;
  thp: ThpPolicy;
  thpUseZeroPage: boolean;
  // The shared zero page backs read faults (false: mm_forbids_zeropage(), as
  // on hosts booted with pvm_no_zero_page).
  zeroPage: boolean;
  ptReclaim: boolean;
  variants: { [K in VariantName]: (typeof VARIANTS)[K][number] };
  tlbSinglePageFlushCeiling: number; // x86 debugfs knob, 33
  // mTHP: anon orders (2..8) whose hugepages-<size>kB/enabled is not "never";
  // value "always", "madvise" or "inherit" (follows `thp`).
  mthp: Record<number, "always" | "madvise" | "inherit">;
  arm64: Arm64Features;
  checkInvariants: boolean;
  // GFP_NOWAIT allocations fail (memory pressure): mmu_gather gets no batch
  // pages beyond its embedded bundle, so zap_pte_range() flushes and breaks
  // out every MMU_GATHER_BUNDLE pages.
  nowaitAllocFails: boolean;
  // Pages of the swap device (swapon), 0: no swap.
  swapPages: number;
  // vm.page-cluster: swap read-ahead reads up to 2^min(this, 5) pages (0: none).
  pageCluster: number;
  // machine.memory in pages (0: no limit): the frames the model may hold
  // before kswapd must reclaim (kswapd.ts).
  memoryPages: number;
}

// arm64 CPU features and configuration (ID registers, Kconfig).
export interface Arm64Features {
  granule: 4 | 16 | 64;
  vaBits: number;
  hafdbs: boolean; // FEAT_HAFDBS: hardware access flag and dirty state
  tlbiRange: boolean; // FEAT_TLBIRANGE
  bbml2NoAbort: boolean; // BBML2 with the kernel's no-abort allow-list
  asidBits: 8 | 16;
}

export function defaultConfig(): MachineConfig {
  return {
    cpus: 2,
    levels: 4,
    thp: "madvise",
    thpUseZeroPage: true,
    zeroPage: true,
    ptReclaim: true,
    variants: {
      gather_nested: "fixed",
      pt_reclaim: "fixed",
      contpte: "batched",
      contpte_lockless: "retry",
      mprotect_batching: "fixed",
      zap_batching: "batched",
      table_free: "rcu",
      mremap_flush: "fixed",
      mremap_batching: "respect-write",
      tlb_batch_pending: "fixed",
      collapse_ro: "writable-required",
      lazyfree_batch: "respect-write",
      swapin_direct: "pinned",
      madv_free_pmd: "invalidate",
      fork_pin: "early-cow",
      gup_fast_recheck: "pmd-and-pte",
      collapse_sync: "ipi",
      gup_fast_seq: "seqcount",
      collapse_revalidate: "check-pmd",
      fork_vma_lock: "vma-write",
    },
    tlbSinglePageFlushCeiling: 33,
    mthp: {},
    arm64: { granule: 4, vaBits: 48, hafdbs: true, tlbiRange: true, bbml2NoAbort: false, asidBits: 16 },
    checkInvariants: true,
    nowaitAllocFails: false,
    swapPages: 0,
    pageCluster: 3,
    memoryPages: 0,
  };
}

// With 52-bit VAs the model keeps user mappings below 2^48 (the default
// mmap window): TLB tags of 40-bit page numbers and 16-bit ASIDs would not fit
// in a double. The runner rejects a fixed address or hint above it.
export const MODEL_VA_BITS = 48;

export class Cpu {
  tlb: Tlb;
  loadedMm: Mm | null = null; // mm whose page tables are loaded (CR3)
  running: Mm | null = null; // mm of the user thread running here; null = lazy/idle
  asid = 0; // ASID slot in use
  asidMm: (Mm | null)[];
  asidGen: number[];
  nextAsid = 0;
  // arm64: TLBI operations issued by this CPU that complete at its next DSB
  // (flat records, see arch/arm64/tlbflush.ts), and the per-CPU state of the
  // ASID allocator (arch/arm64/mm/context.c).
  tlbiQueue: number[] = [];
  activeAsid = 0; // active_asids: context.id loaded here, 0 = none
  reservedAsid = 0;
  tlbFlushPending = false; // local flush owed after a rollover
  constructor(
    readonly id: number,
    nrAsids: number,
    tlb: Tlb = new Tlb(),
  ) {
    this.tlb = tlb;
    this.asidMm = new Array(nrAsids).fill(null);
    this.asidGen = new Array(nrAsids).fill(0);
  }
}

export interface Violation {
  invariant: string;
  message: string;
  cpu?: number;
  addr?: number;
  // A walk cache pointing to a table that is unlinked but still waits in
  // an mmu_gather (TBL_UNLINKED): the table's slot.
  gathered?: number;
}

export class Machine {
  readonly phys = new PhysMem();
  readonly tables: TableStore;
  readonly geo: Geometry;
  readonly cpus: Cpu[];
  readonly counters = new Counters();
  readonly files = new Map<string, FileObj>();
  readonly mms: Mm[] = [];
  // Tables handed to call_rcu(), freed at the next grace period.
  rcuPending: number[] = [];
  // Installed by the concurrency explorer; kernel paths yield at
  // interleaving points only when it is set, so sequential runs pay one
  // branch per point.
  il: Interleaver | null = null;
  // Told which historical variant a path asks about, where it asks (see
  // variantIs()): `ptlab hunt` uses it to aim at a change's code.
  variantHook: ((key: VariantName, value: string) => void) | null = null;
  // Told which kernel function runs (profile.ts), null unless a driver
  // attributes the counters to functions (--by-function).
  prof: FnProfiler | null = null;
  // The event stream's subscribers (events.ts), null while nobody listens.
  events: EventBus | null = null;
  // The kinds somebody listens to (events.ts EV_*), 0 when nobody does: an
  // emitting site tests its bit before building anything.
  evMask = 0;
  // PTE tables being filled before anything links them (THP split: the
  // withdrawn table is reachable only through a local PMD value). Only the
  // explorer's checks, which run at nested points, can see one.
  unreachableTables: number[] = [];
  // Violations found while a kernel path ran (checks that must look at the
  // moment something happens, not at the end of a step).
  violations: Violation[] = [];
  curCpu = 0; // CPU executing the current kernel path
  // The swap device (swapon), null without one.
  readonly swap: SwapDevice | null;
  // anon_vma tree: the parent of each anon_vma (0 for a root). A VMA forked
  // from one whose anon_vma is P gets a new anon_vma whose parent is P
  // (anon_vma_fork()), so the anon_vma_chain of a VMA is its anon_vma and
  // every ancestor.
  readonly anonVmaParent: number[] = [0];
  // Reclaim: folios isolated from the LRU (folio_isolate_lru() succeeded),
  // the deferred flush batches pending (struct tlbflush_unmap_batch, for the
  // explorer's checks) and a sequence number for their entries.
  readonly isolated = new Set<number>();
  readonly ubcs = new Set<TlbUbc>();
  // Migration: the folios whose mappings are migration entries now (from
  // try_to_migrate() until remove_migration_ptes()).
  readonly migrating = new Set<number>();
  // Memory pressure (kswapd.ts): the watermarks of machine.memory and
  // kswapd's clock hand over the frames.
  readonly watermarks: Watermarks;
  // Frames the rest of the system holds (machine.headroom): never
  // reclaimable, counted against machine.memory.
  reservedPages = 0;
  lruHand = 1;
  batchSeq = 0;
  private nextMmId = 1;
  private nextAnonVma = 1;
  private nextFileId = 1;

  constructor(
    readonly arch: Arch,
    readonly config: MachineConfig,
  ) {
    this.geo = geometry(arch.pageShift, arch.levels);
    if (this.geo.ptrs !== arch.ptrsPerTable) throw new Error(`model bug: ${arch.name} has ${arch.ptrsPerTable} entries per table, not PAGE_SIZE / 8`);
    this.tables = new TableStore(this.phys, arch.ptrsPerTable);
    this.swap = config.swapPages > 0 ? new SwapDevice(config.swapPages) : null;
    this.watermarks = watermarks(config.memoryPages, this.geo.pageSize);
    this.cpus = [];
    for (let i = 0; i < config.cpus; i++) {
      // arm64: tags are hardware ASIDs, and fills check for TLB conflicts.
      const a = config.arm64;
      const tlb =
        arch.name === "arm64"
          ? new Tlb(128, 12, 32, 32, 2 ** a.asidBits, a.bbml2NoAbort ? CONFLICT_OA : CONFLICT_OA_OR_SIZE, Math.min(a.vaBits, MODEL_VA_BITS), arch.pageShift)
          : new Tlb();
      const cpu = new Cpu(i, 6, tlb);
      this.cpus.push(cpu);
    }
  }

  // Hands the machine's big arrays back for the next machine (pool.ts);
  // nothing may use this machine afterwards.
  release(): void {
    this.tables.release();
    this.phys.release();
    for (const c of this.cpus) c.tlb.release();
    this.arch.release?.(this);
  }

  // mm_alloc() -> mm_init() -> pgd_alloc(): the PGD is a page-table page
  // like the others (freed by pgd_free() at exit), though VmPTE leaves it out.
  newMm(mmapBase: number): Mm {
    const pgd = this.tables.alloc(this.arch.levels);
    this.counters.ptAlloc++;
    const mm = new Mm(this.nextMmId++, pgd, this.config.cpus, mmapBase);
    this.mms.push(mm);
    return mm;
  }

  newAnonVma(parent = 0): number {
    this.anonVmaParent.push(parent);
    return this.nextAnonVma++;
  }

  file(name: string, size: number, shmem: boolean): FileObj {
    let f = this.files.get(name);
    if (f === undefined) {
      f = new FileObj(this.nextFileId++, name, size, shmem);
      this.files.set(name, f);
    } else if (f.size < size) f.size = size;
    return f;
  }

  subscribe(s: ModelSink): void {
    if (this.events === null) this.events = new EventBus();
    this.events.add(s);
    this.evMask = this.events.mask;
  }
  unsubscribe(s: ModelSink): void {
    const b = this.events;
    if (b === null) return;
    b.remove(s);
    this.evMask = b.mask;
    if (b.empty) this.events = null;
  }

  // Frames that just lost their last reference, for the checks that look
  // for translations still pointing at them (check.ts installChecks()).
  framesFreed(pfns: readonly number[], what: string): void {
    const b = this.events;
    if (b !== null && (b.mask & EV_FRAMES_FREED) !== 0) b.emit({ kind: "frames-freed", cpu: this.curCpu, pfns, what });
  }
  // GUP pins given back.
  pinsReleased(pins: readonly unknown[], where: string): void {
    const b = this.events;
    if (b !== null && (b.mask & EV_PINS_RELEASED) !== 0) b.emit({ kind: "pins-released", cpu: this.curCpu, pins, where });
  }

  // TLB maintenance (events.ts FlushEvent). Callers test `events` first.
  flushEvent(cpu: number, op: string, asid: number, start: number, end: number, leafOnly: boolean, to = -1): void {
    const b = this.events;
    if (b !== null && (b.mask & EV_FLUSH) !== 0) b.emit({ kind: "flush", cpu, op, asid, start, end, leafOnly, to });
  }
  // A page-table page queued for RCU or freed (events.ts TableEvent).
  tableEvent(kind: "table-rcu" | "table-free", slot: number, via: string): void {
    const b = this.events;
    if (b !== null && (b.mask & EV_TABLE) !== 0)
      b.emit({ kind, cpu: this.curCpu, table: slot, pfn: this.tables.pfn[slot] as number, level: this.tables.level[slot] as number, via });
  }

  // A grace period elapses (all CPUs passed a quiescent state): RCU-deferred
  // table frees run (models tlb_remove_table_rcu() callbacks).
  rcuGracePeriod(): void {
    const p = this.rcuPending;
    if (p.length === 0) return;
    if (this.config.checkInvariants)
      this.framesFreed(
        p.map((slot) => this.tables.pfn[slot] as number),
        "RCU table free",
      );
    if ((this.evMask & EV_TABLE) !== 0) for (const slot of p) this.tableEvent("table-free", slot, "tlb_remove_table_rcu");
    for (const slot of p) this.tables.free(slot);
    this.counters.ptFree += p.length;
    this.rcuPending = [];
  }
}
