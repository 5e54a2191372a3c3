// Lockless software page-table readers: gup_fast_pte_range() and its upper
// levels (mm/gup.c; IRQs disabled, so a synchronous IPI cannot complete while
// it runs) and __pte_offset_map() + ptep_get_lockless() (mm/pgtable-generic.c;
// under rcu_read_lock() since v6.5, IRQs on). Neither takes mmap_lock or a
// page-table lock: only the table-freeing protocol keeps the tables they
// walk alive. Only the explorer runs the reader (it exists to race); the
// pins below run in `ptlab run` too.

import { idxAt } from "../geometry.js";
import type { Machine } from "../machine.js";
import { LK_PTL, pteLockMapped, site } from "../sync.js";
import { variantIs } from "../variant.js";
import { accessAllowed, handleMmFault } from "./fault.js";
import { splitHugePmd } from "./huge_memory.js";
import type { KGen } from "./memory.js";
import { GUP_PIN_COUNTING_BIAS, PG_ANON, PG_ANON_EXCLUSIVE } from "./physmem.js";
import type { Mm, Vma } from "./types.js";
import { pmdOffset, pteTableOf } from "./walk.js";

const S_LL_LEVEL = site("gup_fast/pte_offset_map", "load an upper-level entry");
const S_LL_PTE = site("gup_fast/pte_offset_map", "map the PTE table");

// Returns the PTE value read for addr (0 when no PTE table maps it).
export function* locklessPteRead(m: Machine, mm: Mm, addr: number, irqsOff: boolean): KGen<number> {
  const il = m.il;
  if (il === null) throw new Error("model bug: lockless readers run only under the explorer");
  const A = m.arch;
  const T = m.tables;
  if (irqsOff) il.irqDisable();
  else il.rcuReadLock();
  const G = m.geo;
  const vpn = Math.floor(addr / G.pageSize);
  let slot = mm.pgd;
  let v = 0;
  for (let level = A.levels - 1; level >= 1; level--) {
    yield S_LL_LEVEL;
    const ent = T.get(slot * G.ptrs + idxAt(G, vpn, level));
    m.counters.pteReads++;
    if (ent === 0 || !A.entryIsTable(ent)) {
      slot = -1;
      break;
    }
    slot = T.slotOfPfn(A.ptePfn(ent));
  }
  if (slot >= 0) {
    // From here on the reader holds a pointer to the PTE table.
    const e = T.chunkOf(slot);
    const i = T.base(slot) + (vpn & G.ptrsMask);
    il.watch(e, i, slot);
    yield S_LL_PTE;
    v = yield* A.ptepGetLockless(m, e, i);
  }
  if (irqsOff) il.irqEnable();
  else il.rcuReadUnlock();
  return v;
}

// ---- FOLL_PIN | FOLL_LONGTERM: pin_user_pages() and pin_user_pages_fast() ----
// (mm/gup.c, v6.17). A pin is a reference a device holds (DMA): the folio's
// refcount grows by GUP_PIN_COUNTING_BIAS (small folio) or by one with
// _pincount (large), try_grab_folio() / try_grab_folio_fast(); the paths
// that must not replace or unmap a page someone may DMA into test
// folio_maybe_dma_pinned() (fork, reclaim) or count references (migration,
// collapse, lazyfree). exit and munmap drop mappings, never pins: the page
// lives on through its refcount until unpin_user_pages().
// Not modelled: FOLL_LONGTERM's migration of pages out of ZONE_MOVABLE or
// CMA (check_and_migrate_movable_folios()), hugetlb and device pages.

// One pin_user_pages() call: the pages it pinned, in address order.
export interface GupPin {
  mm: Mm;
  start: number;
  pfns: number[]; // the page pinned at start + i * PAGE_SIZE
  write: boolean; // FOLL_WRITE
  // 1 while the process has not itself unmapped, remapped, MADV_DONTNEED'd
  // or MADV_FREE'd the address since (pin-coherence holds it to the page).
  live: Uint8Array;
}

const S_FOLLOW_LOCK = site("follow_page_pte", "take the PTE lock");
const S_FAST_PMD = site("gup_fast_pmd_range", "load the PMD");
const S_FAST_GRAB = site("gup_fast_pte_range", "folio grabbed, re-check the PMD and the PTE");
const S_FAST_PMD_GRAB = site("gup_fast_pmd_leaf", "folio grabbed, re-check the PMD");
const S_FAST_SEQ = site("gup_fast", "walk done, re-read write_protect_seq");

// try_grab_folio(folio, 1, FOLL_PIN) (mm/gup.c): one pin on the folio of pfn;
// the first pin of an mm sets MMF_HAS_PINNED.
export function tryGrabFolioPin(m: Machine, mm: Mm, pfn: number): void {
  const phys = m.phys;
  const head = phys.folioHead(pfn);
  phys.ref[head] = (phys.ref[head] as number) + ((phys.order[head] as number) === 0 ? GUP_PIN_COUNTING_BIAS : 1);
  phys.pins.set(head, (phys.pins.get(head) ?? 0) + 1);
  m.counters.folioAtomics++;
  mm.hasPinned = true; // mm_set_has_pinned_flag()
}

// gup_put_folio(folio, 1, FOLL_PIN) / unpin_user_page(): drops one pin; the
// last reference frees the folio (after the check that nothing still maps
// or caches it).
export function unpinFolio(m: Machine, pfn: number): void {
  const phys = m.phys;
  const head = phys.folioHead(pfn);
  const n = phys.pins.get(head) ?? 0;
  if (n <= 0) throw new Error(`model bug: unpin of folio ${head}, which has no pin`);
  if (n === 1) phys.pins.delete(head);
  else phys.pins.set(head, n - 1);
  const bias = (phys.order[head] as number) === 0 ? GUP_PIN_COUNTING_BIAS : 1;
  m.counters.folioAtomics++;
  if ((phys.ref[head] as number) === bias && m.config.checkInvariants) m.framesFreed([head], "unpin_user_page");
  if (phys.folioPut(head, bias)) m.counters.pagesFree += 1 << (phys.order[head] as number);
}

// unpin_user_pages(), mm/gup.c: sanity_check_pinned_pages() first.
export function unpinUserPages(m: Machine, pin: GupPin): void {
  if (m.config.checkInvariants) m.pinsReleased([pin], "unpin_user_pages()");
  for (const pfn of pin.pfns) unpinFolio(m, pfn);
  pin.pfns = [];
  pin.live.fill(0);
}

// gup_must_unshare() for a R/O pin (mm/gup.c): an anon page the process does
// not map exclusively, or, FOLL_LONGTERM, any other page of a COW mapping
// (the zero page, a private file page): the pin would not see the process's
// later stores. GUP-fast knows no VMA and sends every non-anon page down
// the slow path (vma == NULL: true). pfn: the page of v to pin (a PMD
// leaf's subpage).
function gupMustUnshare(m: Machine, vma: Vma | null, v: number, pfn = m.arch.ptePfn(v)): boolean {
  const A = m.arch;
  const phys = m.phys;
  if (!A.pteSpecial(v) && ((phys.flags[phys.folioHead(pfn)] as number) & PG_ANON) !== 0) return ((phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) === 0;
  return vma === null || vma.isCow;
}

// The page a present, followable entry lets FOLL_PIN take, or -1:
// follow_page_pte()'s tests (can_follow_write_pte() without FOLL_FORCE;
// gup_must_unshare() for R/O pins; vm_normal_page(): no special entries
// except the zero page, which a R/O pin of a non-COW mapping may take).
function followable(m: Machine, vma: Vma, v: number, write: boolean): boolean {
  const A = m.arch;
  if (v === 0 || !A.ptePresent(v)) return false;
  if (write && !A.pteWrite(v)) return false;
  if (!write && gupMustUnshare(m, vma, v)) return false;
  return true;
}

// __get_user_pages() with FOLL_PIN | FOLL_LONGTERM (mm/gup.c), under
// mmap_lock for reading (the caller takes it): per page, follow_page_mask()
// -> follow_page_pte() under the PTE lock grabs the folio, else
// faultin_page() -> handle_mm_fault() with FAULT_FLAG_WRITE (write pin) or
// FAULT_FLAG_UNSHARE (R/O pin, gup_must_unshare()), and the page is followed
// again. A PMD-mapped THP the pin cannot take as it is (a write pin of a
// read-only PMD, a R/O pin of a shared one) is split first (the kernel's
// do_huge_pmd_wp_page() does that, or reuses it whole when exclusive).
// Returns the pinned pfns, or an errno string (EFAULT: no VMA, no access,
// a shared file mapping that needs dirty tracking, a fault that failed);
// pages already pinned are unpinned again on an error.
export function* pinUserPages(m: Machine, mm: Mm, start: number, nr: number, write: boolean): KGen<number[] | string> {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const il = m.il;
  const out: number[] = [];
  const fail = (why: string): string => {
    for (const p of out) unpinFolio(m, p);
    return why;
  };
  for (let k = 0; k < nr; k++) {
    const addr = start + k * G.pageSize;
    const vma = mm.findVma(addr);
    // check_vma_flags(): the access must be allowed, and FOLL_LONGTERM
    // refuses shared file mappings with dirty tracking
    // (vma_needs_dirty_tracking(): writeback could not see DMA writes).
    if (vma === null || !accessAllowed(vma, write)) return fail(`EFAULT: no ${write ? "writable" : "readable"} mapping at 0x${addr.toString(16)}`);
    if (vma.isShared && vma.file !== null && !vma.file.shmem) return fail(`EFAULT: FOLL_LONGTERM of a shared file mapping at 0x${addr.toString(16)}`);
    let pinned = -1;
    for (let tries = 0; tries < 8 && pinned < 0; tries++) {
      const pmdIdx = pmdOffset(m, mm, addr, false);
      const pmdv = pmdIdx < 0 ? 0 : T.get(pmdIdx);
      if (pmdv !== 0 && A.entryIsLeaf(pmdv)) {
        // follow_huge_pmd(): take the THP page if the pin may, else split.
        const head = A.ptePfn(pmdv);
        const page = head + (addr % G.pmdSize) / G.pageSize;
        const ok = write ? A.pteWrite(pmdv) : ((m.phys.flags[page] as number) & PG_ANON_EXCLUSIVE) !== 0;
        if (ok) {
          tryGrabFolioPin(m, mm, page);
          pinned = page;
          break;
        }
        yield* splitHugePmd(m, mm, vma, pmdIdx, addr - (addr % G.pmdSize));
        continue;
      }
      const slot = pmdv === 0 ? -1 : pteTableOf(m, pmdv);
      if (slot >= 0) {
        if (il) {
          yield* pteLockMapped(il, slot, S_FOLLOW_LOCK);
          if (T.get(pmdIdx) !== pmdv) {
            il.unlock(LK_PTL, slot);
            continue;
          }
        }
        const e = T.chunkOf(slot);
        const i = T.base(slot) + ((addr / G.pageSize) & G.ptrsMask);
        const v = A.ptepGet(m, e, i);
        if (followable(m, vma, v, write)) {
          pinned = A.ptePfn(v);
          tryGrabFolioPin(m, mm, pinned);
        }
        if (il) il.unlock(LK_PTL, slot);
        if (pinned >= 0) break;
      }
      // faultin_page()
      const r = yield* handleMmFault(m, mm, vma, addr, write, !write);
      if (r === "segv" || r === "sigbus") return fail(`EFAULT: the fault at 0x${addr.toString(16)} failed (${r})`);
    }
    if (pinned < 0) return fail(`EAGAIN: 0x${addr.toString(16)} could not be followed after 8 faults`);
    out.push(pinned);
  }
  return out;
}

// gup_fast_pte_range() with FOLL_PIN | FOLL_LONGTERM for one page (mm/gup.c),
// IRQs off (a synchronous IPI, tlb_remove_table_sync_one(), waits for it):
// load the PMD, read the PTE locklessly, refuse what the slow path must
// handle (not present, special, a write pin of a read-only entry), grab the
// folio (try_grab_folio_fast()), then re-check that neither the PMD (since
// 70cbc3cc78a9, v6.2: a collapse may have replaced the table) nor the PTE
// changed, dropping the pin if one did; a R/O pin of a page
// gup_must_unshare() refuses is dropped too. Returns the pinned pfn, or -1
// to fall back to the slow path (under mmap_lock).
export function* gupFastPin(m: Machine, mm: Mm, addr: number, write: boolean): KGen<number> {
  const il = m.il;
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const vpn = Math.floor(addr / G.pageSize);
  if (il) il.irqDisable();
  let pinned = -1;
  let slot = mm.pgd;
  let pmdIdx = -1;
  let pmdv = 0;
  for (let level = A.levels - 1; level >= 1; level--) {
    yield level === 1 ? S_FAST_PMD : S_LL_LEVEL;
    const idx = slot * G.ptrs + idxAt(G, vpn, level);
    const ent = T.get(idx);
    m.counters.pteReads++;
    if (level === 1 && ent !== 0 && A.entryIsLeaf(ent)) {
      pinned = yield* gupFastPmdLeaf(m, mm, idx, ent, addr, write);
      slot = -1;
      break;
    }
    // Not a table: none, or not present (a PMD migration entry): fall back.
    if (ent === 0 || !A.entryIsTable(ent)) {
      slot = -1;
      break;
    }
    if (level === 1) {
      pmdIdx = idx;
      pmdv = ent;
    }
    slot = T.slotOfPfn(A.ptePfn(ent));
  }
  if (slot >= 0) {
    const e = T.chunkOf(slot);
    const i = T.base(slot) + (vpn & G.ptrsMask);
    yield S_LL_PTE;
    const v = yield* A.ptepGetLockless(m, e, i);
    if (v !== 0 && A.ptePresent(v) && !A.pteSpecial(v) && (!write || A.pteWrite(v))) {
      const pfn = A.ptePfn(v);
      tryGrabFolioPin(m, mm, pfn);
      yield S_FAST_GRAB;
      // Before 70cbc3cc78a9 only the PTE was re-checked.
      const pmdSame = variantIs(m, "gup_fast_recheck", "pte-only") || T.get(pmdIdx) === pmdv;
      m.counters.pteReads += 2;
      if (!pmdSame || A.ptepGet(m, e, i) !== v || (!write && gupMustUnshare(m, null, v))) unpinFolio(m, pfn);
      else pinned = pfn;
    }
  }
  if (il) il.irqEnable();
  return pinned;
}

// gup_fast_pmd_leaf() for one page (mm/gup.c): a PMD-mapped THP is pinned
// through the PMD as it was read: present (pmd_present(): not a leaf
// pmdp_invalidate() left for the hardware to fault on) and, for a write pin,
// writable; the folio is grabbed, then the PMD re-read, and the pin given
// back if it changed (a split, a zap, MADV_FREE's re-set) or if a R/O pin
// must unshare the page (gup_must_unshare(); the model keeps AnonExclusive
// per page, as its slow path reads it).
function* gupFastPmdLeaf(m: Machine, mm: Mm, pmdIdx: number, pmdv: number, addr: number, write: boolean): KGen<number> {
  const A = m.arch;
  const G = m.geo;
  if (A.pmdLeafInvalid(pmdv) || (write && !A.pteWrite(pmdv))) return -1;
  const page = A.ptePfn(pmdv) + (addr % G.pmdSize) / G.pageSize;
  tryGrabFolioPin(m, mm, page);
  yield S_FAST_PMD_GRAB;
  m.counters.pteReads++;
  if (m.tables.get(pmdIdx) !== pmdv || (!write && !A.pteWrite(pmdv) && gupMustUnshare(m, null, pmdv, page))) {
    unpinFolio(m, page);
    return -1;
  }
  return page;
}

// The GUP-fast part of pin_user_pages_fast() (gup_fast_fallback(), mm/gup.c):
// pages from start on until the first one GUP-fast refuses; the caller pins
// the rest with pinUserPages() under mmap_lock.
// gup_fast() reads mm->write_protect_seq first (raw_seqcount_try_begin():
// a fork copying COW mappings now makes it give up at once) and again after
// the walk (read_seqcount_retry()): if a fork ran meanwhile, a page pinned
// may have been write-protected and shared with the child after fork's
// folio_maybe_dma_pinned() test missed the pin, so every pin taken is given
// back (gup_fast_unpin_user_pages()) and the slow path, which fork's
// mmap_lock excludes, pins them all.
export function* gupFastPinRange(m: Machine, mm: Mm, start: number, nr: number, write: boolean): KGen<number[]> {
  const out: number[] = [];
  const seqOn = !variantIs(m, "gup_fast_seq", "none");
  const seq = mm.writeProtectSeq;
  if (seqOn && (seq & 1) !== 0) return out;
  for (let k = 0; k < nr; k++) {
    const pfn = yield* gupFastPin(m, mm, start + k * m.geo.pageSize, write);
    if (pfn < 0) break;
    out.push(pfn);
  }
  if (seqOn && out.length > 0) {
    yield S_FAST_SEQ;
    if (mm.writeProtectSeq !== seq) {
      for (const pfn of out) unpinFolio(m, pfn);
      return [];
    }
  }
  return out;
}

export function newGupPin(mm: Mm, start: number, pfns: number[], write: boolean): GupPin {
  return { mm, start, pfns, write, live: new Uint8Array(pfns.length).fill(1) };
}

// The process unmapped, remapped or discarded [start, end) itself: what it
// maps there need no longer be the pinned page.
export function gupPinsForget(pins: Iterable<GupPin>, mm: Mm, start: number, end: number, pageSize: number): void {
  for (const pin of pins) {
    if (pin.mm !== mm) continue;
    for (let k = 0; k < pin.pfns.length; k++) {
      const a = pin.start + k * pageSize;
      if (a >= start && a < end) pin.live[k] = 0;
    }
  }
}

// The pinned page of pin at addr, while the pin is coherent there, else -1.
export function gupPinAt(pin: GupPin, addr: number, pageSize: number): number {
  const k = (addr - pin.start) / pageSize;
  if (k < 0 || k >= pin.pfns.length || pin.live[k] !== 1) return -1;
  return pin.pfns[k] as number;
}
