// mm_struct, vm_area_struct and files (include/linux/mm_types.h, include/linux/fs.h).

export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYWRITE = 0x20;
export const VM_GROWSDOWN = 0x100;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

// A file (page cache) or a shmem object backing MAP_SHARED|MAP_ANONYMOUS.
export class FileObj {
  pages = new Map<number, number>(); // page index -> PFN
  constructor(
    readonly id: number,
    readonly name: string,
    public size: number,
    readonly shmem: boolean,
  ) {}
}

export class Vma {
  constructor(
    public start: number,
    public end: number,
    public flags: number,
    public file: FileObj | null,
    public pgoff: number, // in pages: file page mapped at `start`
    public anonVma: number, // 0 until the first anon fault (anon_vma_prepare)
  ) {}
  // The per-VMA lock (CONFIG_PER_VMA_LOCK, mmap_lock.ts), under the
  // explorer only: page faults (and MADV_DONTNEED) holding it for reading,
  // and whether an mmap_lock writer has write-locked the VMA in its current
  // write cycle (vm_lock_seq == mm_lock_seq). A clone starts unlocked.
  vmReaders = 0;
  vmWriteLocked = false;
  // swap_readahead_info (swap_state.ts): the last swap-in fault's address,
  // its read-ahead window and the hits since, packed as SWAP_RA_VAL(); 0: unset.
  swapRaInfo = 0;
  // vm_area_dup() copies it.
  clone(): Vma {
    const v = new Vma(this.start, this.end, this.flags, this.file, this.pgoff, this.anonVma);
    v.swapRaInfo = this.swapRaInfo;
    return v;
  }
  get isAnonymous(): boolean {
    return this.file === null;
  }
  get isShared(): boolean {
    return (this.flags & VM_SHARED) !== 0;
  }
  // is_cow_mapping(): private and may be written.
  get isCow(): boolean {
    return (this.flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
  }
  pgoffOf(addr: number, pageSize: number): number {
    return this.pgoff + (addr - this.start) / pageSize;
  }
}

export class Mm {
  vmas: Vma[] = []; // sorted by start, non-overlapping
  // VMAs munmap took out of the tree but has not yet unlinked from their
  // anon_vma and i_mmap trees (free_pgtables()): rmap walks and truncation
  // still find them and their tables. Explorer only.
  detached: Vma[] = [];
  // What rmap walks and truncation find of this mm: its VMAs and the detached ones.
  rmapVmas(): Vma[] {
    return this.detached.length === 0 ? this.vmas : [...this.vmas, ...this.detached];
  }
  pgd: number; // slot of the top-level table (not counted in VmPTE, like the kernel)
  pgtablesBytes = 0; // mm_pgtables_bytes()
  rssAnon = 0; // MM_ANONPAGES, pages
  rssFile = 0; // MM_FILEPAGES
  rssShmem = 0; // MM_SHMEMPAGES
  anonHugePmds = 0; // PMD-mapped anon THPs (smaps AnonHugePages / 2048 kB)
  deposited: number[] = []; // PTE tables deposited for PMD mappings (pgtable_trans_huge_deposit)
  tlbGen = 1; // x86 mm->context.tlb_gen
  asidId = 0; // arm64 mm->context.id: generation << asidBits | ASID (0: none yet)
  tlbFlushPending = 0; // mm->tlb_flush_pending
  // mm->tlb_flush_batched: reclaim's deferred flushes pending on this mm and
  // how many of them flush_tlb_batched_pending() has already flushed (the
  // kernel packs both counters in one atomic).
  tlbBatchPending = 0;
  tlbBatchFlushed = 0;
  // VMAs the mmap_lock writer has write-locked (vma_start_write()) in its
  // current write cycle: unlocked together when it releases or downgrades
  // mmap_lock (vma_end_write_all()). Explorer only.
  vmaWriteLocked: Vma[] = [];
  swapEnts = 0; // MM_SWAPENTS: swap entries in the page tables (VmSwap), pages
  cpumask: Uint8Array; // mm_cpumask(): CPUs with this mm loaded
  mmapBase: number;
  startBrk = 0;
  brk = 0;
  alive = true;
  // mm_users has dropped to zero and __mmput() runs exit_mmap(): no user
  // thread runs in the mm again and get_user_pages() cannot pin it
  // (mmget_not_zero() fails), so nothing translates its user addresses.
  exiting = false;
  // MMF_UNSTABLE: the OOM reaper has started to zap the private memory, so a
  // fault that would map a fresh anon page or a private COW copy gets
  // VM_FAULT_SIGBUS instead (check_stable_address_space(), include/linux/oom.h).
  unstable = false;
  // MMF_HAS_PINNED: set by the first FOLL_PIN on this mm (mm_set_has_pinned_flag(),
  // mm/gup.c), never cleared; fork's folio_needs_cow_for_dma() looks at it.
  hasPinned = false;
  // mm->write_protect_seq (include/linux/mm_types.h), a seqcount: odd while
  // copy_page_range() write-protects a COW mapping of this mm for fork, so
  // GUP-fast can tell that a pin it took may have been shared meanwhile.
  writeProtectSeq = 0;
  threads = 0;
  constructor(
    readonly id: number,
    pgd: number,
    nrCpus: number,
    mmapBase: number,
  ) {
    this.pgd = pgd;
    this.cpumask = new Uint8Array(nrCpus);
    this.mmapBase = mmapBase;
  }

  // find_vma(): the first VMA with end > addr.
  findVmaIndex(addr: number): number {
    const v = this.vmas;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((v[mid] as Vma).end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  findVma(addr: number): Vma | null {
    const i = this.findVmaIndex(addr);
    const vma = this.vmas[i];
    return vma !== undefined && vma.start <= addr ? vma : null;
  }
}
