// Page faults: models __handle_mm_fault(), handle_pte_fault(),
// do_anonymous_page(), do_fault() (do_read_fault() with do_fault_around(),
// do_cow_fault(), do_shared_fault(), finish_fault()), do_wp_page(),
// wp_page_copy() and wp_page_reuse() (mm/memory.c), filemap_fault() and
// filemap_map_pages() (mm/filemap.c) and the THP entry points
// (mm/huge_memory.c).
//
// File faults as v6.17 runs them against a concurrent truncation: the PTE
// lock is dropped for do_fault(); filemap_fault() checks i_size, finds or
// creates the folio, takes a reference and the folio lock, re-checks that
// the folio is still in the mapping and within i_size (beyond it:
// VM_FAULT_SIGBUS); finish_fault() maps it under the PTE lock if the entry
// is still none; then the folio is unlocked. Fault-around
// (filemap_map_pages()) only maps folios it can folio_trylock() below i_size.
// The folio lock and the extra reference exist under the explorer only: a
// sequential run has nobody to exclude. Simplified: a fault that finds the
// folio locked waits for it holding mmap_lock (the kernel drops mmap_lock and
// retries, __folio_lock_or_retry()); nothing in the model takes mmap_lock for
// writing while holding a folio lock, so the wait cannot deadlock. No Node APIs.

import type { Machine } from "../machine.js";
import { variantIs } from "../variant.js";
import { doHugePmdAnonymousPage, doHugePmdWpPage, thpEligible } from "./huge_memory.js";
import type { KGen } from "./memory.js";
import { type Interleaver, LK_FOLIO, LK_MMAP, LK_PMD, LK_PTL, pteLockMapped, site } from "../sync.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SHMEM, PG_SWAPBACKED } from "./physmem.js";
import { allocLargeFolio } from "./page_alloc.js";
import { type FileObj, type Mm, VM_ACCESS_FLAGS, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_SHARED, VM_WRITE, type Vma } from "./types.js";
import { folioSetAnonRmap, folioSetFileRmap } from "./rmap.js";
import { type SwapDevice, swapKey } from "./swap.js";
import { swapCacheGetFolio, swapVmaReadahead } from "./swap_state.js";
import { pmdOffset, pteAlloc } from "./walk.js";

const S_FAULT_LOCK = site("handle_pte_fault", "take the PTE lock");
const S_FAULT_PMD_LOCK = site("__handle_mm_fault", "take the PMD lock of a huge PMD");
const S_PMD_INSTALL_LOCK = site("pmd_install", "take the PMD lock to install a PTE table");
const S_FAULT_AROUND = site("filemap_map_pages", "take the PTE lock");
const S_FAULT_ISIZE = site("filemap_fault", "i_size checked, folio not yet looked up");
const S_FOLIO_LOCK = site("filemap_fault", "folio_lock()");
const S_FINISH_FAULT = site("finish_fault", "take the PTE lock");
const S_MIG_WAIT = site("migration_entry_wait", "wait for the folio lock");
const S_PMD_MIG_LOCK = site("pmd_migration_entry_wait", "take the PMD lock");
const S_PMD_MIG_WAIT = site("pmd_migration_entry_wait", "wait for the THP's folio lock");
const S_MKWRITE_LOCK = site("do_page_mkwrite", "folio_lock()");
const S_MKWRITE_RELOCK = site("finish_mkwrite_fault", "take the PTE lock");
const S_SWAPIN_FOLIO_WAIT = site("do_swap_page", "folio_lock_or_retry(): wait for the swap-cache folio's lock");
const S_SWAPIN_PREPARE = site("do_swap_page", "swapcache_prepare() of a slot read outside the swap cache");
const S_SWAPIN_WAIT = site("do_swap_page", "swapcache_prepare() failed: wait for the other swap-in", true);
const S_SWAPIN_READ = site("do_swap_page", "swap_read_folio(): the slot is read");
const S_SWAPIN_RELOCK = site("do_swap_page", "take the PTE lock");
const S_WP_COPIED = site("wp_page_copy", "copied the old page, the PTE lock not yet taken");
const S_WP_RELOCK = site("wp_page_copy", "take the PTE lock");

// fault_around_bytes: 16 pages with 4K pages; one page (no fault-around)
// with the 64K granule.
const FAULT_AROUND_BYTES = 65536;

// "sigbus": VM_FAULT_SIGBUS (a file page at or beyond i_size).
export type FaultResult = "ok" | "segv" | "sigbus" | "retry";

// vmf_anon_prepare() for a fault under the VMA lock, done up front: a fault
// that will map an anonymous page (a write to a private mapping, a read of
// private anonymous memory that will not map the zero page, or a THP fault,
// which prepares first) needs the VMA's anon_vma, and __anon_vma_prepare()
// runs under mmap_lock, which the fault only try-locks beside the VMA lock
// (neighbouring VMAs may be merging, find_mergeable_anon_vma()). False:
// VM_FAULT_RETRY, the fault is retried under mmap_lock. Explorer only.
export function vmfAnonPrepare(m: Machine, il: Interleaver, mm: Mm, vma: Vma, addr: number, write: boolean): boolean {
  if (vma.anonVma !== 0 || vma.isShared) return true;
  const anon = vma.isAnonymous;
  if (!write && !(anon && (!m.config.zeroPage || thpEligible(m, vma, addr)))) return true;
  if (!il.trylockRead(LK_MMAP, mm.id)) return false;
  vma.anonVma = m.newAnonVma();
  il.unlock(LK_MMAP, mm.id);
  return true;
}

// access_error() for a user access.
export function accessAllowed(vma: Vma, write: boolean): boolean {
  if (write) return (vma.flags & VM_WRITE) !== 0;
  return (vma.flags & VM_ACCESS_FLAGS) !== 0; // vma_is_accessible(): x86 cannot deny reads of W or X pages
}

export function newAnonPage(m: Machine, vma: Vma, addr: number): number {
  const pfn = m.phys.alloc(0);
  initAnonPage(m, vma, pfn, addr);
  return pfn;
}
// A freshly allocated frame becomes an exclusive anon folio mapped once.
function initAnonPage(m: Machine, vma: Vma, pfn: number, addr: number): void {
  if (vma.anonVma === 0) vma.anonVma = m.newAnonVma(); // anon_vma_prepare()
  m.phys.flags[pfn] = PG_ANON | PG_SWAPBACKED | PG_ANON_EXCLUSIVE;
  m.phys.mapcount[pfn] = 1;
  folioSetAnonRmap(m, pfn, vma, addr);
  m.counters.pagesAlloc++;
}

// The page-cache miss of filemap_fault(): a new folio inserted at pgoff
// (__filemap_get_folio(FGP_CREAT), filemap_add_folio()); the page cache
// holds one reference.
function pageCacheAdd(m: Machine, f: FileObj, pgoff: number): number {
  const pfn = m.phys.alloc(0);
  m.phys.flags[pfn] = f.shmem ? PG_SHMEM | PG_SWAPBACKED : 0;
  folioSetFileRmap(m, pfn, f, pgoff);
  f.pages.set(pgoff, pfn);
  m.counters.pagesAlloc++;
  return pfn;
}

// i_size in pages: DIV_ROUND_UP(i_size_read(), PAGE_SIZE).
export function filePages(m: Machine, f: FileObj): number {
  return Math.ceil(f.size / m.geo.pageSize);
}

// filemap_fault(): the folio at pgoff, found or created; -1 for
// VM_FAULT_SIGBUS. Under the explorer it comes back locked and with a
// reference of the fault's own (folio_try_get()), after the re-checks under
// the lock: still in the mapping (else the lookup is retried:
// retry_find) and still below i_size.
// Locks: mmap_lock held for reading, no PTE lock; returns holding the folio lock.
function* filemapFault(m: Machine, f: FileObj, pgoff: number): KGen<number> {
  const il = m.il;
  if (pgoff >= filePages(m, f)) return -1;
  // The lookup (and on a miss, readahead and allocation) come after the
  // i_size read: a truncation can run in between.
  if (il) yield S_FAULT_ISIZE;
  for (;;) {
    let pfn = f.pages.get(pgoff);
    if (pfn === undefined) {
      pfn = pageCacheAdd(m, f, pgoff);
      if (il) {
        // Inserted locked (__folio_set_locked() before filemap_add_folio()):
        // nobody else can hold it yet.
        m.phys.ref[pfn] = (m.phys.ref[pfn] as number) + 1;
        if (!il.trylock(LK_FOLIO, pfn)) throw new Error(`model bug: new folio ${pfn} is locked`);
      }
    } else if (il) {
      m.phys.ref[pfn] = (m.phys.ref[pfn] as number) + 1;
      yield il.lock(LK_FOLIO, pfn, true, S_FOLIO_LOCK);
      if (f.pages.get(pgoff) !== pfn) {
        // Truncated meanwhile (folio->mapping != mapping): retry_find, which
        // creates the folio anew if need be; the check below sees i_size.
        folioUnlockPut(m, il, pfn, "filemap_fault()");
        continue;
      }
    }
    if (il && pgoff >= filePages(m, f)) {
      folioUnlockPut(m, il, pfn, "filemap_fault()");
      return -1;
    }
    return pfn;
  }
}

// folio_unlock() + folio_put() of a reference taken for a lookup: the last
// one frees the folio (truncation removed it from the page cache meanwhile).
function folioUnlockPut(m: Machine, il: Interleaver, pfn: number, what: string): void {
  il.unlock(LK_FOLIO, pfn);
  filemapFolioPut(m, pfn, what);
}

// folio_put() of a page-cache folio's reference (the cache's or a lookup's).
export function filemapFolioPut(m: Machine, pfn: number, what: string): void {
  if (!m.phys.folioPut(pfn)) return;
  m.counters.pagesFree++;
  if (m.config.checkInvariants) m.framesFreed([pfn], what);
}

function mapFilePage(m: Machine, mm: Mm, pfn: number): void {
  m.phys.ref[pfn] = (m.phys.ref[pfn] as number) + 1;
  m.phys.mapcount[pfn] = (m.phys.mapcount[pfn] as number) + 1;
  if ((m.phys.flags[pfn] as number) & PG_SHMEM) mm.rssShmem++;
  else mm.rssFile++;
}

// vma->vm_page_prot (vma_set_page_prot(), mm/mmap.c): shared writable file
// mappings that need dirty tracking (vma_wants_writenotify(); shmem does not)
// take the protection of the private mapping, VM_SHARED cleared: read-only
// PTEs, so the first write faults. Clearing VM_WRITE instead would give a
// write-only mapping PAGE_NONE, on which a write never completes.
export function vmaPageProt(m: Machine, vma: Vma): number {
  let fl = vma.flags;
  if ((fl & (VM_SHARED | VM_WRITE)) === (VM_SHARED | VM_WRITE) && vma.file !== null && !vma.file.shmem) fl &= ~VM_SHARED;
  return m.arch.vmGetPageProt(fl);
}

// handle_mm_fault() for a fault at addr in vma.
// unshare: FAULT_FLAG_UNSHARE (GUP's R/O FOLL_PIN of a page the process
// does not map exclusively, gup_must_unshare()): handled at PTE level only,
// the caller splits a PMD mapping first.
export function* handleMmFault(m: Machine, mm: Mm, vma: Vma, addr: number, write: boolean, unshare = false): KGen<FaultResult> {
  // vmf->address: the faulting address rounded down to its page.
  addr -= addr % m.geo.pageSize;
  const A = m.arch;
  m.counters.faults++;
  const pmdIdx = pmdOffset(m, mm, addr, true);
  let pmdv = m.tables.get(pmdIdx);
  const il = m.il;
  if (pmdv !== 0 && A.isMigrationPmd(pmdv)) {
    // is_swap_pmd(): pmd_migration_entry_wait(), then return 0 and the
    // access is retried. Without the explorer a migration completes
    // before anything else runs (see "migration" below).
    if (il) yield* pmdMigrationEntryWait(m, il, pmdIdx);
    return "retry";
  }
  if ((pmdv === 0 && thpEligible(m, vma, addr)) || (pmdv !== 0 && A.entryIsLeaf(pmdv))) {
    // The huge-PMD paths work under the PMD lock (__do_huge_pmd_anonymous_page(),
    // huge_pmd_set_accessed(), do_huge_pmd_wp_page()) and give up when the
    // entry changed meanwhile (!pmd_none, !pmd_same: return 0, the access is
    // retried). A splitter holds the lock while the PMD is pmdp_invalidate()d.
    const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
    if (il) {
      if (!il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_FAULT_PMD_LOCK);
      if (m.tables.get(pmdIdx) !== pmdv) {
        il.unlock(LK_PMD, pmdSlot);
        return "retry";
      }
    }
    // __do_huge_pmd_anonymous_page() and the huge zero page path:
    // check_stable_address_space() under the PMD lock.
    if (pmdv === 0 && mm.unstable) {
      if (il) il.unlock(LK_PMD, pmdSlot);
      return "sigbus";
    }
    const done = hugePmdFault(m, mm, vma, pmdIdx, pmdv, addr, write);
    if (il) il.unlock(LK_PMD, pmdSlot);
    if (done) return "ok";
  }
  // handle_pte_fault(). __pte_alloc()'s pmd_install() fills a none PMD
  // under pmd_lock(): a huge-PMD path that holds it with the entry cleared
  // for a flush (do_huge_zero_wp_pmd()) finishes first, and a table is put
  // in only if the entry is still none (a leaf now: retry the access).
  let slot: number;
  if (il !== null && m.tables.get(pmdIdx) === 0) {
    const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
    if (!il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_PMD_INSTALL_LOCK);
    slot = pteAlloc(m, mm, pmdIdx);
    il.unlock(LK_PMD, pmdSlot);
  } else slot = pteAlloc(m, mm, pmdIdx);
  if (slot < 0) return "retry";
  if (il) {
    // pte_offset_map_lock(): the table may have been reclaimed meanwhile.
    pmdv = m.tables.get(pmdIdx);
    yield* pteLockMapped(il, slot, S_FAULT_LOCK);
    if (m.tables.get(pmdIdx) !== pmdv) {
      il.unlock(LK_PTL, slot);
      return "retry";
    }
    const r = handlePteFault(m, mm, vma, slot, addr, write, unshare);
    il.unlock(LK_PTL, slot);
    if (r === "migration") {
      yield* migrationEntryWait(il, m.phys.folioHead(migrationWaitPfn));
      return "retry";
    }
    if (r === "folio_wait") {
      yield il.lock(LK_FOLIO, migrationWaitPfn, true, S_SWAPIN_FOLIO_WAIT);
      il.unlock(LK_FOLIO, migrationWaitPfn);
      return "retry";
    }
    if (r === "wp_shared") return yield* wpPageShared(m, il, mm, vma, pmdIdx, pmdv, slot, addr);
    if (r === "wp_copy") return yield* wpPageCopy(m, il, mm, vma, pmdIdx, pmdv, slot, addr, wpOrig);
    if (r === "swapin") return yield* doSwapPageDirect(m, il, mm, vma, pmdIdx, pmdv, slot, addr, write, swapinOrig);
    return r === "do_fault" ? yield* doFault(m, mm, vma, pmdIdx, slot, addr, write) : r;
  }
  const r = handlePteFault(m, mm, vma, slot, addr, write, unshare);
  if (r === "wp_shared" || r === "wp_copy" || r === "swapin" || r === "folio_wait") throw new Error(`model bug: ${r} without the explorer`);
  // Without the explorer a migration completes before anything else runs:
  // an entry left behind is retried until the livelock check reports it.
  if (r === "migration") return "retry";
  if (r !== "do_fault") return r;
  const pf = m.prof;
  if (pf !== null) pf.enter("do_fault");
  const fr = yield* doFault(m, mm, vma, pmdIdx, slot, addr, write);
  if (pf !== null) pf.exit();
  return fr;
}

// wp_page_shared() (mm/memory.c) for a file with page_mkwrite, the PTE lock
// dropped: do_page_mkwrite() returns with the folio locked and marked dirty
// (filemap_page_mkwrite()), or VM_FAULT_NOPAGE when a truncation took it
// out of the mapping; finish_mkwrite_fault() takes the PTE lock again and
// gives up if the entry changed (the access is retried); wp_page_reuse()
// makes it writable, dirty and young. Writeback holds the folio lock from
// folio_clear_dirty_for_io() on, so a store cannot slip in between its
// folio_mkclean() and the clearing of the folio's dirty flag.
function* wpPageShared(m: Machine, il: Interleaver, mm: Mm, vma: Vma, pmdIdx: number, pmdv: number, slot: number, addr: number): KGen<FaultResult> {
  const A = m.arch;
  const phys = m.phys;
  const f = vma.file as FileObj;
  const e = m.tables.chunkOf(slot);
  const pi = m.tables.base(slot) + ((addr / m.geo.pageSize) & m.geo.ptrsMask);
  const orig = A.ptepGet(m, e, pi);
  if (!A.ptePresent(orig)) return "retry";
  const pfn = A.ptePfn(orig);
  phys.ref[pfn] = (phys.ref[pfn] as number) + 1; // folio_get()
  yield il.lock(LK_FOLIO, pfn, true, S_MKWRITE_LOCK);
  if (f.pages.get(vma.pgoffOf(addr, m.geo.pageSize)) !== pfn) {
    folioUnlockPut(m, il, pfn, "do_page_mkwrite()");
    return "retry";
  }
  phys.flags[pfn] = (phys.flags[pfn] as number) | PG_DIRTY; // folio_mark_dirty()
  if (!(yield* relockPte(m, il, pmdIdx, pmdv, slot, S_MKWRITE_RELOCK))) {
    folioUnlockPut(m, il, pfn, "finish_mkwrite_fault()");
    return "retry";
  }
  // pte_offset_map_lock() maps the table afresh from the PMD: with PT
  // reclaim, the page this path mapped before may be a new table now.
  const e2 = m.tables.chunkOf(slot);
  const cur = A.ptepGet(m, e2, pi);
  if (cur === orig) A.ptepSetAccessFlags(m, mm, addr, e2, pi, A.pteMkyoung(A.pteMkwrite(A.pteMkdirty(cur))), true);
  il.unlock(LK_PTL, slot);
  folioUnlockPut(m, il, pfn, "wp_page_shared()");
  return cur === orig ? "ok" : "retry";
}

// The huge-PMD part of __handle_mm_fault() under the PMD lock: true when the
// fault is handled, false to go on at PTE level.
function hugePmdFault(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, pmdv: number, addr: number, write: boolean): boolean {
  const A = m.arch;
  if (pmdv === 0) return doHugePmdAnonymousPage(m, mm, vma, pmdIdx, write, addr - (addr % m.geo.pmdSize));
  if (write && !A.pteWrite(pmdv)) return doHugePmdWpPage(m, mm, vma, pmdIdx, addr - (addr % m.geo.pmdSize));
  m.tables.set(pmdIdx, A.pteMkyoung(write ? A.pteMkdirty(pmdv) : pmdv)); // huge_pmd_set_accessed()
  m.counters.pteAtomics++;
  return true;
}

// The part of handle_pte_fault() that runs under the PTE lock; "do_fault":
// a none entry of a file VMA, handled by do_fault() once the lock is dropped.
// The page a migration entry named when handlePteFault() returned "migration".
// The swap entry when it returned "swapin".
let swapinOrig = 0;
let migrationWaitPfn = -1;
// The entry do_wp_page() saw when handlePteFault() returned "wp_copy".
let wpOrig = 0;

// The rest of migration_entry_wait() (mm/migrate.c): the entry was read
// under the PTE lock, which the caller dropped; wait until the migrating
// folio is unlocked, then the access is retried.
function* migrationEntryWait(il: Interleaver, head: number, s = S_MIG_WAIT): KGen {
  yield il.lock(LK_FOLIO, head, true, s);
  il.unlock(LK_FOLIO, head);
}

// pmd_migration_entry_wait() (mm/migrate.c): under the PMD lock, if the
// entry is still a PMD migration entry, wait (the lock dropped) until the
// THP it names is unlocked (migration_entry_wait_on_locked()).
function* pmdMigrationEntryWait(m: Machine, il: Interleaver, pmdIdx: number): KGen {
  const pmdSlot = Math.floor(pmdIdx / m.geo.ptrs);
  if (!il.trylock(LK_PMD, pmdSlot)) yield il.lock(LK_PMD, pmdSlot, true, S_PMD_MIG_LOCK);
  const v = m.tables.get(pmdIdx);
  il.unlock(LK_PMD, pmdSlot);
  if (!m.arch.isMigrationPmd(v)) return;
  yield* migrationEntryWait(il, m.phys.folioHead(m.arch.migrationPfn(v)), S_PMD_MIG_WAIT);
}

function handlePteFault(
  m: Machine,
  mm: Mm,
  vma: Vma,
  slot: number,
  addr: number,
  write: boolean,
  unshare = false,
): FaultResult | "do_fault" | "wp_shared" | "wp_copy" | "migration" | "swapin" | "folio_wait" {
  const A = m.arch;
  const e = m.tables.chunkOf(slot);
  const pi = m.tables.base(slot) + ((addr / m.geo.pageSize) & m.geo.ptrsMask);
  const v = A.ptepGet(m, e, pi);
  if (v === 0) {
    if (vma.file !== null) return "do_fault";
    // do_anonymous_page(): check_stable_address_space() under the PTE lock,
    // on the zero-page path and the new-folio path alike.
    if (mm.unstable) return "sigbus";
    const pf = m.prof;
    if (pf !== null) pf.enter("do_anonymous_page");
    doAnonymousPage(m, mm, vma, e, m.tables.base(slot), addr, write);
    if (pf !== null) pf.exit();
    return "ok";
  }
  if (!A.ptePresent(v)) {
    if (A.isMigrationPte(v)) {
      // do_swap_page() -> migration_entry_wait(): the rest waits with the
      // PTE lock dropped.
      migrationWaitPfn = A.migrationPfn(v);
      return "migration";
    }
    if (!A.isSwapPte(v) || m.swap === null) return "segv";
    // Under the explorer, a slot read outside the swap cache is read with
    // the PTE lock dropped, as the kernel reads every slot.
    if (m.il !== null && swapinSkipsCache(m.swap, A.swpOffset(v))) {
      swapinOrig = v;
      return "swapin";
    }
    // do_swap_page()'s folio_lock_or_retry(): a folio in the swap cache is
    // mapped only under its lock, which reclaim holds from isolation to
    // pageout and __remove_mapping(); when someone holds it the fault waits
    // for it with the locks dropped and is retried.
    const cached = m.il !== null ? m.swap.cache.get(A.swpOffset(v)) : undefined;
    if (cached !== undefined) {
      const il = m.il as Interleaver;
      if (!il.trylock(LK_FOLIO, cached)) {
        migrationWaitPfn = cached;
        return "folio_wait";
      }
      doSwapPage(m, mm, vma, e, pi, addr, write, v);
      il.unlock(LK_FOLIO, cached);
      return "ok";
    }
    const pf = m.prof;
    if (pf !== null) pf.enter("do_swap_page");
    doSwapPage(m, mm, vma, e, pi, addr, write, v);
    if (pf !== null) pf.exit();
    return "ok";
  }
  if (unshare && !A.pteWrite(v)) {
    // do_wp_page() with FAULT_FLAG_UNSHARE: only a COW mapping's page the
    // process does not map exclusively is unshared (gup_must_unshare()).
    if ((vma.flags & VM_SHARED) === 0 && !pteMapsExclusiveAnon(m, v)) doWpPage(m, mm, vma, e, pi, addr, v, true);
    return "ok";
  }
  if (write && !A.pteWrite(v)) {
    // Under the explorer, a written shared file page takes its folio lock
    // with the PTE lock dropped (wpPageShared()).
    if (m.il !== null && (vma.flags & VM_SHARED) !== 0 && vma.file !== null && !vma.file.shmem) return "wp_shared";
    // Under the explorer a copy is made with the PTE lock dropped
    // (wpPageCopy()), holding a reference on the old folio (folio_get()).
    if (m.il !== null) {
      if (wpReuse(m, mm, vma, e, pi, addr, v, false)) return "ok";
      if (!A.pteSpecial(v)) {
        const head = m.phys.folioHead(A.ptePfn(v));
        m.phys.ref[head] = (m.phys.ref[head] as number) + 1;
      }
      wpOrig = v;
      return "wp_copy";
    }
    const pf = m.prof;
    if (pf !== null) pf.enter("do_wp_page");
    doWpPage(m, mm, vma, e, pi, addr, v);
    if (pf !== null) pf.exit();
    return "ok";
  }
  // The rest of handle_pte_fault(): an access-flag or dirty-state fault
  // (hardware without FEAT_HAFDBS), or a spurious one.
  const entry = A.pteMkyoung(write ? A.pteMkdirty(v) : v);
  A.ptepSetAccessFlags(m, mm, addr, e, pi, entry, write);
  return "ok";
}

// thp_vma_allowable_orders() + thp_vma_suitable_orders() + the none check
// of alloc_anon_folio() (mm/memory.c): the largest enabled mTHP order whose
// naturally aligned range lies in the VMA and has only none entries, else 0.
// Orders from below `below` down: after a failed allocation, the next order
// alloc_anon_folio() tries (a subrange of an all-none range is all none, so
// the kernel does not scan again; the model does, and finds the same).
function anonFolioOrder(m: Machine, vma: Vma, e: Float64Array, base: number, addr: number, below: number): number {
  const orders = m.config.mthp;
  if ((vma.flags & VM_NOHUGEPAGE) !== 0) return 0;
  const PS = m.geo.pageSize;
  // mTHP orders run from 2 to below HPAGE_PMD_ORDER (the PMD order is a THP).
  for (let order = below - 1; order >= 2; order--) {
    const policy = orders[order];
    if (policy === undefined) continue;
    const eff = policy === "inherit" ? m.config.thp : policy;
    if (eff === "never" || (eff === "madvise" && (vma.flags & VM_HUGEPAGE) === 0)) continue;
    const size = PS * 2 ** order;
    const a = addr - (addr % size);
    if (a < vma.start || a + size > vma.end) continue;
    const j = base + ((a / PS) & m.geo.ptrsMask);
    let none = true;
    for (let k = 0; k < 1 << order; k++)
      if (e[j + k] !== 0) {
        none = false;
        break;
      }
    m.counters.pteReads += 1 << order;
    if (none) return order;
  }
  return 0;
}

// do_anonymous_page(): the zero page for reads, else a folio of the order
// alloc_anon_folio() picks, mapped with one set_ptes().
function doAnonymousPage(m: Machine, mm: Mm, vma: Vma, e: Float64Array, base: number, addr: number, write: boolean): void {
  const A = m.arch;
  const prot = vmaPageProt(m, vma);
  if (!write && m.config.zeroPage) {
    A.setPtes(m, mm, addr, e, base + ((addr / m.geo.pageSize) & m.geo.ptrsMask), A.pteMkspecial(A.pfnPte(m.phys.zeroPfn, prot)), 1);
    return;
  }
  // alloc_anon_folio(): the highest suitable order whose allocation succeeds.
  let order = vma.isShared ? 0 : anonFolioOrder(m, vma, e, base, addr, m.geo.pmdOrder);
  let pfn = -1;
  while (order > 0 && (pfn = allocLargeFolio(m, order)) < 0) {
    m.counters.mthpFaultFallback++;
    order = anonFolioOrder(m, vma, e, base, addr, order);
  }
  const nr = 1 << order;
  const a = addr - (addr % (m.geo.pageSize * nr));
  if (order === 0) pfn = newAnonPage(m, vma, a);
  else {
    if (vma.anonVma === 0) vma.anonVma = m.newAnonVma();
    const phys = m.phys;
    phys.flags[pfn] |= PG_ANON | PG_SWAPBACKED;
    for (let k = 0; k < nr; k++) {
      phys.flags[pfn + k] |= PG_ANON_EXCLUSIVE;
      phys.mapcount[pfn + k] = 1;
    }
    phys.ref[pfn] = nr;
    folioSetAnonRmap(m, pfn, vma, a);
    m.counters.pagesAlloc += nr;
    m.counters.mthpFaults++;
  }
  let v = A.pfnPte(pfn, prot);
  if ((vma.flags & VM_WRITE) !== 0) v = A.pteMkwrite(A.pteMkdirty(v));
  A.setPtes(m, mm, a, e, base + ((a / m.geo.pageSize) & m.geo.ptrsMask), v, nr);
  mm.rssAnon += nr;
}

// pte_offset_map_lock() again, after the lock was dropped: false (the
// fault is retried) when the PTE table went away meanwhile.
function* relockPte(m: Machine, il: Interleaver, pmdIdx: number, pmdv: number, slot: number, at: number): KGen<boolean> {
  yield* pteLockMapped(il, slot, at);
  if (m.tables.get(pmdIdx) === pmdv) {
    // pte_offset_map_lock() takes its table pointer from the PMD afresh,
    // under RCU until the lock is held: the table the unchanged PMD names is
    // the one locked, even if PT reclaim freed the one this path mapped
    // before and the same page came back as a new table meanwhile.
    m.tables.slotOfPfn(m.arch.ptePfn(pmdv));
    return true;
  }
  il.unlock(LK_PTL, slot);
  return false;
}

// do_fault() for a none PTE of a file VMA, the PTE lock dropped: read faults
// map the page-cache page after fault-around has mapped its cached
// neighbours (do_read_fault()); private writes map a copy (do_cow_fault());
// shared writes map the page writable and dirty (do_shared_fault()). The
// folio stays locked from filemap_fault() until finish_fault() has mapped it
// (for a COW fault: the copy), so a truncation waiting for the lock finds it
// mapped and unmaps it.
// Locks: mmap_lock held for reading on entry and exit; the PTE lock taken
// and dropped inside.
function* doFault(m: Machine, mm: Mm, vma: Vma, pmdIdx: number, slot: number, addr: number, write: boolean): KGen<FaultResult> {
  const il = m.il;
  const f = vma.file as FileObj;
  const pmdv = m.tables.get(pmdIdx);
  if (!write) {
    if (il && !(yield* relockPte(m, il, pmdIdx, pmdv, slot, S_FAULT_AROUND))) return "retry";
    filemapMapPages(m, mm, vma, f, slot, addr);
    if (il) il.unlock(LK_PTL, slot);
  }
  const pfn = yield* filemapFault(m, f, vma.pgoffOf(addr, m.geo.pageSize));
  if (pfn < 0) return "sigbus";
  // finish_fault(): a private mapping may have lost its COW copy to the OOM
  // reaper, so check_stable_address_space() even for a read.
  if (mm.unstable && !vma.isShared) {
    if (il) folioUnlockPut(m, il, pfn, "finish_fault()");
    return "sigbus";
  }
  if (il) {
    if (!(yield* relockPte(m, il, pmdIdx, pmdv, slot, S_FINISH_FAULT))) {
      folioUnlockPut(m, il, pfn, "finish_fault()");
      return "retry";
    }
    finishFault(m, mm, vma, slot, addr, write, pfn);
    il.unlock(LK_PTL, slot);
    folioUnlockPut(m, il, pfn, "finish_fault()");
    return "ok";
  }
  finishFault(m, mm, vma, slot, addr, write, pfn);
  return "ok";
}

// do_fault_around() -> filemap_map_pages(), under the PTE lock: the
// 64K-aligned window, inside the VMA and the PMD and below i_size; cached
// pages only (next_uptodate_folio(): a folio someone holds locked is
// skipped, folio_trylock()), mapped old. The faulting address is left to
// filemap_fault().
function filemapMapPages(m: Machine, mm: Mm, vma: Vma, f: FileObj, slot: number, addr: number): void {
  const A = m.arch;
  const il = m.il;
  const PS = m.geo.pageSize;
  const PM = m.geo.ptrsMask;
  const e = m.tables.chunkOf(slot);
  const base = m.tables.base(slot);
  const prot = vmaPageProt(m, vma);
  const eof = filePages(m, f);
  const win = Math.max(FAULT_AROUND_BYTES, PS);
  const pmds = m.geo.pmdSize;
  const lo = Math.max(addr - (addr % win), vma.start, addr - (addr % pmds));
  const hi = Math.min(addr - (addr % win) + win, vma.end, addr - (addr % pmds) + pmds);
  for (let a = lo; a < hi; a += PS) {
    if (a === addr) continue;
    const j = base + ((a / PS) & PM);
    const pgoff = vma.pgoffOf(a, PS);
    const pfn = f.pages.get(pgoff);
    if (pfn === undefined || e[j] !== 0 || pgoff >= eof) continue;
    if (il && !il.trylock(LK_FOLIO, pfn)) continue;
    A.setPtes(m, mm, a, e, j, A.pteMkold(A.pfnPte(pfn, prot)), 1);
    mapFilePage(m, mm, pfn);
    if (il) il.unlock(LK_FOLIO, pfn);
  }
}

// finish_fault() -> set_pte_range() under the PTE lock, the folio pfn locked:
// nothing happens if the entry is no longer none (another thread mapped it:
// VM_FAULT_NOPAGE, the access is retried). A private write maps a new anon
// copy of it (do_cow_fault(): the copy is made here, under the lock, rather
// than before it); a shared write dirties the folio (fault_dirty_shared_page()).
function finishFault(m: Machine, mm: Mm, vma: Vma, slot: number, addr: number, write: boolean, pfn: number): void {
  const A = m.arch;
  const e = m.tables.chunkOf(slot);
  const pi = m.tables.base(slot) + ((addr / m.geo.pageSize) & m.geo.ptrsMask);
  if (m.il && A.ptepGet(m, e, pi) !== 0) return;
  const prot = vmaPageProt(m, vma);
  if (!write) {
    A.setPtes(m, mm, addr, e, pi, A.pfnPte(pfn, prot), 1);
    mapFilePage(m, mm, pfn);
    return;
  }
  if ((vma.flags & VM_SHARED) === 0) {
    const npfn = newAnonPage(m, vma, addr);
    if (m.il) m.il.copyPage(pfn, npfn);
    A.setPtes(m, mm, addr, e, pi, A.pteMkwrite(A.pteMkdirty(A.pfnPte(npfn, prot))), 1);
    m.counters.cowCopies++;
    mm.rssAnon++;
    return;
  }
  m.phys.flags[pfn] |= PG_DIRTY;
  A.setPtes(m, mm, addr, e, pi, A.pteMkwrite(A.pteMkdirty(A.pfnPte(pfn, prot))), 1);
  mapFilePage(m, mm, pfn);
}

// __wp_can_reuse_large_anon_folio() (mm/memory.c, v6.15+ with CONFIG_MM_ID):
// every reference is a mapping and all mappings are this mm's. The kernel
// tracks the mapping mm in the folio (mm_id); the model counts this mm's PTEs
// mapping the folio in the folio-sized window around the fault, which finds
// them all unless part of the folio was moved elsewhere (then it declines,
// as the kernel may too).
function canReuseLargeAnonFolio(m: Machine, e: Float64Array, pi: number, addr: number, vma: Vma, head: number): boolean {
  const phys = m.phys;
  const A = m.arch;
  const n = 1 << (phys.order[head] as number);
  let total = phys.entireMapcount(head);
  for (let k = 0; k < n; k++) total += phys.mapcount[head + k] as number;
  if (total !== phys.ref[head]) return false;
  const PS = m.geo.pageSize;
  const PM = m.geo.ptrsMask;
  if (n > m.geo.ptrs) return false;
  const win = n * PS;
  const lo = Math.max(addr - (addr % win), vma.start);
  const hi = Math.min(addr - (addr % win) + win, vma.end);
  const base = pi - ((addr / PS) & PM);
  let mine = 0;
  for (let a = lo; a < hi; a += PS) {
    const v = e[base + ((a / PS) & PM)] as number;
    m.counters.pteReads++;
    if (v === 0 || !A.ptePresent(v) || A.pteSpecial(v)) continue;
    const p = A.ptePfn(v);
    if (p >= head && p < head + n) mine++;
  }
  return mine === total;
}

// A present entry mapping an AnonExclusive page (PageAnonExclusive()).
export function pteMapsExclusiveAnon(m: Machine, v: number): boolean {
  const A = m.arch;
  if (A.pteSpecial(v)) return false;
  const pfn = A.ptePfn(v);
  const phys = m.phys;
  return ((phys.flags[phys.folioHead(pfn)] as number) & PG_ANON) !== 0 && ((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0;
}

// do_wp_page(): write fault on a present read-only PTE (v as ptep_get() saw
// it); with unshare (FAULT_FLAG_UNSHARE) the page becomes exclusive, reused
// or copied, but the entry stays read-only (wp_page_copy() without
// maybe_mkwrite()).
function doWpPage(m: Machine, mm: Mm, vma: Vma, e: Float64Array, pi: number, addr: number, v: number, unshare = false): void {
  if (wpReuse(m, mm, vma, e, pi, addr, v, unshare)) return;
  // wp_page_copy(), here whole under the PTE lock (the explorer runs the
  // kernel's order, the copy before the lock: wpPageCopy()).
  const A = m.arch;
  const npfn = newAnonPage(m, vma, addr);
  if (m.il && !A.pteSpecial(v)) m.il.copyPage(A.ptePfn(v), npfn);
  wpCopyInstall(m, mm, vma, e, pi, addr, v, unshare, npfn);
}

// The part of do_wp_page() that needs no new page: a shared mapping's page
// made writable (wp_page_shared()), an anon page this mm may reuse
// (wp_page_reuse()). False: the page must be copied.
function wpReuse(m: Machine, mm: Mm, vma: Vma, e: Float64Array, pi: number, addr: number, v: number, unshare: boolean): boolean {
  const A = m.arch;
  const phys = m.phys;
  if ((vma.flags & VM_SHARED) !== 0) {
    // wp_page_shared(): page_mkwrite, then wp_page_reuse().
    const pfn = A.ptePfn(v);
    phys.flags[phys.folioHead(pfn)] |= PG_DIRTY;
    A.ptepSetAccessFlags(m, mm, addr, e, pi, A.pteMkyoung(A.pteMkwrite(A.pteMkdirty(v))), true);
    return true;
  }
  if (A.pteSpecial(v)) return false;
  const pfn = A.ptePfn(v);
  const head = phys.folioHead(pfn);
  if (((phys.flags[head] as number) & PG_ANON) === 0) return false;
  // PageAnonExclusive(), else wp_can_reuse_anon_folio(): a small folio
  // nobody else holds, or a large one only this mm maps.
  const exclusive = ((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0;
  const small = phys.order[head] === 0;
  if (!(exclusive || (small && phys.ref[head] === 1) || (!small && canReuseLargeAnonFolio(m, e, pi, addr, vma, head)))) return false;
  phys.flags[pfn] |= PG_ANON_EXCLUSIVE;
  if (unshare) return true; // exclusive now, still read-only
  A.ptepSetAccessFlags(m, mm, addr, e, pi, A.pteMkyoung(A.pteMkwrite(A.pteMkdirty(v))), true); // wp_page_reuse()
  return true;
}

// The end of wp_page_copy() under the PTE lock: the new exclusive anon page
// npfn replaces the old mapping; the old entry is flushed before the new
// one is visible (ptep_clear_flush(), then set_pte_at()).
function wpCopyInstall(m: Machine, mm: Mm, vma: Vma, e: Float64Array, pi: number, addr: number, v: number, unshare: boolean, npfn: number): void {
  const A = m.arch;
  const phys = m.phys;
  const special = A.pteSpecial(v);
  m.counters.cowCopies++;
  A.ptepGetAndClearFull(m, mm, addr, e, pi, false);
  A.flushTlbPage(m, mm, addr);
  const npte = A.pfnPte(npfn, vmaPageProt(m, vma));
  A.setPtes(m, mm, addr, e, pi, unshare ? A.pteWrprotect(npte) : A.pteMkwrite(A.pteMkdirty(npte)), 1);
  if (special) {
    mm.rssAnon++;
  } else {
    const pfn = A.ptePfn(v);
    const head = phys.folioHead(pfn);
    const hflags = phys.flags[head] as number;
    phys.mapcount[pfn] = (phys.mapcount[pfn] as number) - 1;
    if (hflags & PG_ANON) {
      // anon replaced by anon: RssAnon unchanged.
    } else {
      if (hflags & PG_SHMEM) mm.rssShmem--;
      else mm.rssFile--;
      mm.rssAnon++;
    }
    if (phys.folioPut(head)) m.counters.pagesFree += 1 << (phys.order[head] as number);
  }
}

// wp_page_copy() as the kernel orders it, under the explorer: do_wp_page()
// took a reference on the old folio and dropped the PTE lock
// (handlePteFault() returned "wp_copy"); the new page is allocated and the
// old one copied with no lock held (__wp_page_copy_user()); then the PTE
// lock again, and the copy is mapped only if the entry is still the one
// copied (pte_same()), else it is freed and the access retried. A store
// another CPU makes to the old page meanwhile, through a TLB entry still
// writable, is not in the copy: nothing may leave such an entry while a
// fault can copy the page (fork's deferred flush is why dup_mmap()
// write-locks each VMA).
function* wpPageCopy(m: Machine, il: Interleaver, mm: Mm, vma: Vma, pmdIdx: number, pmdv: number, slot: number, addr: number, orig: number): KGen<FaultResult> {
  const A = m.arch;
  const phys = m.phys;
  const special = A.pteSpecial(orig);
  const oldHead = special ? -1 : phys.folioHead(A.ptePfn(orig));
  const putOld = (): void => {
    if (oldHead >= 0 && phys.folioPut(oldHead)) m.counters.pagesFree += 1 << (phys.order[oldHead] as number);
  };
  // folio_prealloc(): not on an LRU list until it is mapped, so reclaim
  // cannot find it meanwhile (m.isolated stands for that).
  const npfn = phys.alloc(0);
  m.isolated.add(npfn);
  if (!special) {
    il.cowCopy(mm, addr, A.ptePfn(orig));
    il.copyPage(A.ptePfn(orig), npfn);
  }
  yield S_WP_COPIED;
  const relocked = yield* relockPte(m, il, pmdIdx, pmdv, slot, S_WP_RELOCK);
  const e = m.tables.chunkOf(slot);
  const pi = m.tables.base(slot) + ((addr / m.geo.pageSize) & m.geo.ptrsMask);
  m.isolated.delete(npfn);
  if (!relocked || A.ptepGet(m, e, pi) !== orig) {
    if (relocked) il.unlock(LK_PTL, slot);
    phys.folioPut(npfn);
    putOld();
    return "retry";
  }
  initAnonPage(m, vma, npfn, addr);
  wpCopyInstall(m, mm, vma, e, pi, addr, orig, false, npfn);
  il.unlock(LK_PTL, slot);
  putOld();
  return "ok";
}

// do_swap_page()'s test for reading a slot into a folio of its own, outside
// the swap cache: a SWP_SYNCHRONOUS_IO device (zram, the only kind modelled)
// and no other swap entry referencing the slot (__swap_count() == 1).
function swapinSkipsCache(swap: SwapDevice, slot: number): boolean {
  return !swap.cache.has(slot) && swap.count[slot] === 1;
}

// swap_pte_batch() == nr (mm/internal.h): the nr entries from e[j] are swap
// entries naming the slots from s0 in order, with the exclusive marker excl.
function swapPteRun(m: Machine, e: Float64Array, j: number, s0: number, nr: number, excl: boolean): boolean {
  const A = m.arch;
  m.counters.pteReads += nr;
  for (let k = 0; k < nr; k++) if (e[j + k] !== A.mkSwapPte(s0 + k, excl)) return false;
  return true;
}

// alloc_swap_folio()'s choice of order (mm/memory.c, v6.17) for a slot read
// outside the swap cache: thp_vma_allowable_orders() below the PMD order
// (BIT(PMD_ORDER) - 1: a PMD is never swapped in whole),
// thp_vma_suitable_orders() (the aligned range inside the VMA),
// thp_swap_suitable_orders() (the address and the slot aligned alike), then
// the highest order whose range passes can_swapin_thp(): its first entry is
// the faulting one moved back to the range's start (pte_move_swp_offset()),
// swap_pte_batch() finds every entry the next slot with the same bits, and
// no slot has SWAP_HAS_CACHE (non_swapcache_batch(): in the swap cache or
// pinned by another swap-in). Reads the table as it is (the kernel holds
// the PTE lock for the scan; callers re-check under it before mapping).
// Not modelled: swap_zeromap_batch() (the model keeps no contents, so no
// zero-filled slots), zswap, memcg charge failures; the model has no
// userfaultfd. Orders below `below` only (the next one tried after a failed
// allocation). Returns 0 for an order-0 folio.
export function swapinFolioOrder(m: Machine, vma: Vma, e: Float64Array, base: number, addr: number, v: number, below: number): number {
  const orders = m.config.mthp;
  if ((vma.flags & VM_NOHUGEPAGE) !== 0) return 0;
  const A = m.arch;
  const PS = m.geo.pageSize;
  const swap = m.swap as SwapDevice;
  const slot = A.swpOffset(v);
  const excl = A.pteSwpExclusive(v);
  for (let order = below - 1; order >= 2; order--) {
    const policy = orders[order];
    if (policy === undefined) continue;
    const eff = policy === "inherit" ? m.config.thp : policy;
    if (eff === "never" || (eff === "madvise" && (vma.flags & VM_HUGEPAGE) === 0)) continue;
    const nr = 1 << order;
    const a = addr - (addr % (PS * nr));
    if (a < vma.start || a + PS * nr > vma.end) continue;
    if ((addr / PS) % nr !== slot % nr) continue;
    const s0 = slot - (addr - a) / PS;
    if (s0 < 1 || s0 + nr - 1 > swap.pages) continue;
    const j = base + ((a / PS) & m.geo.ptrsMask);
    if (!swapPteRun(m, e, j, s0, nr, excl)) continue;
    // non_swapcache_batch(): no slot in the swap cache or pinned by another swap-in.
    let free = true;
    for (let k = 0; k < nr && free; k++) free = !swap.cache.has(s0 + k) && swap.pinned[s0 + k] === 0;
    if (free) return order;
  }
  return 0;
}

// alloc_swap_folio()'s allocations: the order scanned, then each lower
// suitable one until one succeeds (a subrange of the scanned range passes
// what it passed; the model scans again and finds the same); order 0 does
// not fail here. The head PFN; its order is the folio's.
function allocSwapFolio(m: Machine, vma: Vma, e: Float64Array, base: number, addr: number, v: number, order: number): number {
  while (order > 0) {
    const pfn = allocLargeFolio(m, order);
    if (pfn >= 0) return pfn;
    m.counters.mthpSwpinFallback++;
    order = swapinFolioOrder(m, vma, e, base, addr, v, order);
  }
  return m.phys.alloc(0);
}

// do_swap_page() (mm/memory.c, v6.17), run whole under the PTE lock with the
// entry as read: the sequential model, and the swap-cache path under the
// explorer (simplified: the kernel reads that slot with the PTE lock dropped
// as well, but the folio it reads into sits locked in the swap cache, where
// a second fault finds and waits for it). The folio comes from the swap
// cache, or is read into a new one: outside the swap cache when no other
// swap entry references the slot (SWP_SYNCHRONOUS_IO, as zram), then of the
// order alloc_swap_folio() picks, else through the cache with read-ahead
// (swapin_readahead(): small folios, swap_state.ts).
function doSwapPage(m: Machine, mm: Mm, vma: Vma, e: Float64Array, pi: number, addr: number, write: boolean, v: number): void {
  const phys = m.phys;
  const swap = m.swap as SwapDevice;
  const PS = m.geo.pageSize;
  const slot = m.arch.swpOffset(v);
  let pfn = swap.cachedPage(slot);
  if (pfn < 0) {
    if (swapinSkipsCache(swap, slot)) {
      // skip the swap cache: alloc_swap_folio(), swap_read_folio()
      const tb = pi - ((addr / PS) & m.geo.ptrsMask);
      const head = allocSwapFolio(m, vma, e, tb, addr, v, swapinFolioOrder(m, vma, e, tb, addr, v, m.geo.pmdOrder));
      const order = phys.order[head] as number;
      const nr = 1 << order;
      const idx = (addr / PS) & (nr - 1);
      phys.flags[head] = PG_ANON | PG_SWAPBACKED;
      m.counters.pagesAlloc += nr;
      m.counters.pswpin += nr;
      if (order > 0) m.counters.mthpSwpin++;
      if (m.il) for (let k = 0; k < nr; k++) m.il.copyPage(swapKey(slot - idx + k), head + k);
      mapSwapFolio(m, mm, vma, e, pi - idx, addr - idx * PS, write, v, idx, head, nr, true);
      return;
    }
    // swapin_readahead(): the cache's reference and ours.
    pfn = swapVmaReadahead(m, vma, e, pi, addr, v);
  } else {
    const head = phys.folioHead(pfn);
    phys.ref[head] = (phys.ref[head] as number) + 1; // swap_cache_get_folio()
    swapCacheGetFolio(m, vma, addr, head);
    const nr = 1 << (phys.order[head] as number);
    if (nr > 1) {
      // A large folio still in the swap cache (reclaim kept it after its
      // swap-out): mapped whole when the entries of its whole range, inside
      // the VMA and this table, still name its slots alike; else this page.
      const idx = pfn - head;
      const a0 = addr - idx * PS;
      const tableStart = addr - (addr % m.geo.pmdSize);
      if (a0 >= Math.max(tableStart, vma.start) && a0 + nr * PS <= Math.min(tableStart + m.geo.pmdSize, vma.end)) {
        if (swapPteRun(m, e, pi - idx, slot - idx, nr, m.arch.pteSwpExclusive(v))) {
          mapSwapFolio(m, mm, vma, e, pi - idx, a0, write, v, idx, head, nr, false);
          return;
        }
      }
    }
  }
  mapSwapFolio(m, mm, vma, e, pi, addr, write, v, 0, pfn, 1, false);
}

// The part of do_swap_page() under the PTE lock once the entries are known
// unchanged (pte_same(), swap_pte_batch()), for a folio the caller holds a
// reference to: fresh (read outside the swap cache, nobody else can see it)
// or the swap cache's. nr entries from e[pi] (address addr) are mapped to
// the nr pages from pfn; v is the faulting entry, idx pages after addr. The
// exclusive-reuse rule: pages known exclusive (the entry's exclusive marker,
// or a fresh folio) or whose only reference is ours are mapped writable in
// a writable VMA, dirty on a write fault; otherwise a write fault goes on to
// do_wp_page(). Our reference becomes the mappings' (folio_ref_add()).
function mapSwapFolio(
  m: Machine,
  mm: Mm,
  vma: Vma,
  e: Float64Array,
  pi: number,
  addr: number,
  write: boolean,
  v: number,
  idx: number,
  pfn: number,
  nr: number,
  fresh: boolean,
): void {
  const A = m.arch;
  const phys = m.phys;
  const swap = m.swap as SwapDevice;
  const head = phys.folioHead(pfn);
  const slot0 = A.swpOffset(v) - idx;
  if (fresh) folioSetAnonRmap(m, head, vma, addr, true);
  const exclusive = fresh || A.pteSwpExclusive(v);
  for (let k = 0; k < nr; k++) swap.free(slot0 + k); // swap_free_nr()
  // should_try_to_free_swap(): with the device more than half full
  // (vm_swap_full(); no memcg swap limits), or on a write fault whose folio
  // only the cache holds. folio_free_swap(): only once no swap entry uses
  // any of the folio's slots; the folio leaves the cache, dirty (its
  // contents exist nowhere else).
  const cslot = swap.slotOf.get(head);
  const nrFolio = 1 << (phys.order[head] as number);
  if (cslot !== undefined && (swap.used * 2 > swap.pages || (write && phys.ref[head] === 2)) && !swap.anySwapped(cslot, nrFolio)) {
    swap.deleteFromCache(head, nrFolio);
    phys.ref[head] = (phys.ref[head] as number) - 1;
    phys.flags[head] = (phys.flags[head] as number) | PG_DIRTY;
  }
  mm.rssAnon += nr;
  mm.swapEnts -= nr;
  let pte = A.pfnPte(pfn, vmaPageProt(m, vma));
  let handled = !write;
  if (exclusive || phys.ref[head] === 1) {
    if ((vma.flags & VM_WRITE) !== 0) {
      pte = A.pteMkwrite(pte);
      if (write) {
        pte = A.pteMkdirty(pte);
        handled = true;
      }
    }
    for (let k = 0; k < nr; k++) phys.flags[pfn + k] |= PG_ANON_EXCLUSIVE; // RMAP_EXCLUSIVE
  }
  for (let k = 0; k < nr; k++) phys.mapcount[pfn + k] = (phys.mapcount[pfn + k] as number) + 1;
  phys.ref[head] = (phys.ref[head] as number) + nr - 1;
  m.counters.folioAtomics += 2;
  A.setPtes(m, mm, addr, e, pi, pte, nr);
  if (!handled) doWpPage(m, mm, vma, e, pi + idx, addr + idx * m.geo.pageSize, A.ptepGet(m, e, pi + idx));
}

// do_swap_page()'s SWP_SYNCHRONOUS_IO path under the explorer, the PTE lock
// dropped (handle_pte_fault() read the entry without it): a new folio,
// swapcache_prepare() to pin the slot (SWAP_HAS_CACHE) so that no other
// swap-in reads it and no swap-out reuses it meanwhile (13ddaf26be32), the
// read, then the PTE lock and pte_same(); swapcache_clear() once the lock
// is dropped. A failed swapcache_prepare() waits for the other swap-in
// (swapcache_wq, 01626a182) and the access is retried. Variant
// swapin_direct=unpinned: the code from 0bcac06f27d7 (v4.15) to v6.7, no
// pin: another thread can swap the page in, free the slot, and reclaim can
// reuse the slot for the page written since, so pte_same() passes on a
// stale read (ABA).
function* doSwapPageDirect(
  m: Machine,
  il: Interleaver,
  mm: Mm,
  vma: Vma,
  pmdIdx: number,
  pmdv: number,
  slot: number,
  addr: number,
  write: boolean,
  orig: number,
): KGen<FaultResult> {
  const A = m.arch;
  const phys = m.phys;
  const swap = m.swap as SwapDevice;
  const PS = m.geo.pageSize;
  const s = A.swpOffset(orig);
  yield S_SWAPIN_PREPARE;
  // __swap_count() == 1 was read unlocked: look again, as the path does
  // when it gets here after the entry's count changed.
  if (!swapinSkipsCache(swap, s)) return "retry";
  let e = m.tables.chunkOf(slot);
  const base = m.tables.base(slot);
  const pi = base + ((addr / PS) & m.geo.ptrsMask);
  // alloc_swap_folio(): the order from a scan of the table under its lock
  // (one step here; a table no longer in the PMD gives order 0, as
  // pte_offset_map_lock() failing does). The folio is locked and
  // swap-backed.
  const scanned = m.tables.get(pmdIdx) === pmdv ? swapinFolioOrder(m, vma, e, base, addr, orig, m.geo.pmdOrder) : 0;
  const pfn = allocSwapFolio(m, vma, e, base, addr, orig, scanned);
  const order = phys.order[pfn] as number;
  const nr = 1 << order;
  const idx = (addr / PS) & (nr - 1);
  const s0 = s - idx; // entry.val = ALIGN_DOWN(entry.val, nr_pages)
  phys.flags[pfn] = PG_ANON | PG_SWAPBACKED;
  m.counters.pagesAlloc += nr;
  const pin = !variantIs(m, "swapin_direct", "unpinned");
  const drop = () => {
    if (phys.folioPut(pfn)) m.counters.pagesFree += nr;
  };
  if (pin && !swap.prepare(s0, nr)) {
    drop();
    yield S_SWAPIN_WAIT;
    return "retry";
  }
  m.counters.pswpin += nr;
  if (order > 0) m.counters.mthpSwpin++;
  yield S_SWAPIN_READ;
  for (let k = 0; k < nr; k++) il.copyPage(swapKey(s0 + k), pfn + k);
  let ok = yield* relockPte(m, il, pmdIdx, pmdv, slot, S_SWAPIN_RELOCK);
  if (ok) {
    // The table mapped afresh from the PMD (see wpPageShared()).
    e = m.tables.chunkOf(slot);
    // pte_same() of the faulting entry; for a large folio, of the range's
    // first entry moved back and swap_pte_batch() over all of them.
    if (nr === 1) ok = A.ptepGet(m, e, pi) === orig;
    else ok = swapPteRun(m, e, pi - idx, s0, nr, A.pteSwpExclusive(orig));
    if (ok) mapSwapFolio(m, mm, vma, e, pi - idx, addr - idx * PS, write, orig, idx, pfn, nr, true);
    il.unlock(LK_PTL, slot);
  }
  if (!ok) drop();
  if (pin) swap.clearPin(s0, nr);
  return ok ? "ok" : "retry";
}
