// Page migration: models migrate_pages() on the path where each folio is
// migrated on its own (migrate_pages_sync()'s retry of one folio through
// migrate_pages_batch()), migrate_folio_unmap(), migrate_folio_move(),
// move_to_new_folio() -> migrate_folio() (__migrate_folio(): the copy,
// folio_migrate_mapping()'s reference check and cache replacement,
// folio_migrate_flags()), remove_migration_ptes() / remove_migration_pte()
// (mm/migrate.c); try_to_migrate() is in rmap.ts and the waiting half of
// migration_entry_wait() in fault.ts.
// A `migrate` step moves the folios mapped in a range, as move_pages(2) or
// a NUMA policy change would.
//
// In the kernel's order, for each folio: isolate it (a reference), allocate
// the destination (locked, nobody else knows it), lock the source
// (MIGRATE_SYNC waits), try_to_migrate() with TTU_BATCH_FLUSH,
// try_to_unmap_flush(); then,
// if the only references left are the caches' and the isolation's, copy
// the contents, move the swap- or page-cache entry to the destination, copy
// the flags, and remove_migration_ptes() maps the destination where the
// migration entries are; else (-EAGAIN) remove_migration_ptes() maps the
// source again. Other parties that meet a migration entry wait for the
// source's folio lock (migration_entry_wait()) and retry.
//
// A PMD-mapped THP moves whole to a new THP (CONFIG_ARCH_ENABLE_THP_MIGRATION
// on x86-64 and arm64): try_to_migrate() leaves a PMD migration entry
// (set_pmd_migration_entry(), huge_memory.ts) and remove_migration_ptes()
// maps the new THP with a PMD again (remove_migration_pmd()).
//
// A large folio's destination is allocated without reclaim and fails below
// the min watermark (page_alloc.ts): -ENOMEM. migrate_pages_batch() then
// splits the folio (try_split_folio(); a `migrate` step is move_pages(2)
// or a memory policy, not NUMA balancing, which would not split) and goes
// on with the rest of the range; migrate_pages() migrates the split pages
// after it, once, in MIGRATE_ASYNC mode (a page someone holds locked is
// given up). A folio that cannot be split (a pin, a reference a lockless
// reader holds) stays, and the rest of the range and the pages split
// before it go back untried.
//
// Simplified: no retries after -EAGAIN (the kernel tries up to 10 times);
// an order-0 destination does not fail; no thp_migration_* counters. No
// NUMA nodes: the destination is any free frame. No Node APIs.

import { MIG_READ, MIG_WRITE } from "../arch/arch.js";
import type { Machine } from "../machine.js";
import { type Interleaver, LK_FOLIO, site } from "../sync.js";
import { vmaPageProt } from "./fault.js";
import { removeMigrationPmd } from "./huge_memory.js";
import type { KGen } from "./memory.js";
import { allocLargeFolio } from "./page_alloc.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY } from "./physmem.js";
import { folioMapcount, pageVmaMappedWalk, rmapLock, rmapUnlock, rmapWalk, splitFolio, TlbUbc, tryToMigrate, tryToUnmapFlush } from "./rmap.js";
import { folioIsolateLru, forEachMappedFolio } from "./vmscan.js";
import type { Mm } from "./types.js";

const S_MIG_LOCK = site("migrate_folio_unmap", "folio_lock() of the source");
const S_MIG_SPLIT = site("try_split_folio", "folio_lock()");
const S_MIG_MOVE = site("move_to_new_folio", "unmapped and flushed, contents not yet copied");
const S_MIG_REMOVE = site("remove_migration_pte", "migration entries of a VMA replaced");

export interface MigrateStat {
  migrated: number; // folios
  failed: number; // folios whose migration failed (-EAGAIN, or -ENOMEM for want of a destination)
  skipped: number; // folios someone else had isolated (folio_isolate_lru() failed)
}

// The folios mapped in [start, end) of mm, each isolated once, migrated one
// after another.
export function* migrateRange(m: Machine, mm: Mm, start: number, end: number): KGen<MigrateStat> {
  const list: number[] = [];
  const stat: MigrateStat = { migrated: 0, failed: 0, skipped: 0 };
  const seen = new Set<number>();
  forEachMappedFolio(m, mm, start, end, (head) => {
    if (folioIsolateLru(m, head)) {
      list.push(head);
      seen.add(head);
    } else if (!seen.has(head)) {
      seen.add(head);
      stat.skipped++;
    }
  });
  const split: number[] = []; // split_folios
  for (let i = 0; i < list.length; i++) {
    const src = list[i] as number;
    const r = yield* migrateFolio(m, src, false);
    if (r === MIG_DONE) stat.migrated++;
    else stat.failed++;
    if (r === MIG_NOMEM) {
      // migrate_pages_batch() on -ENOMEM: a large folio is split, its pages
      // migrated later; if it cannot be, "don't bother to try to migrate
      // other folios": they go back untried, and so do the pages split so
      // far (migrate_pages() on the batch's error).
      if (yield* trySplitFolio(m, src, split)) continue;
      m.counters.pgmigrateFail += 1 << (m.phys.order[src] as number);
      putback(m, null, src);
      for (let j = i + 1; j < list.length; j++) putback(m, null, list[j] as number);
      for (const s of split) putback(m, null, s);
      return stat;
    }
  }
  // migrate_pages(): the split folios once more, MIGRATE_ASYNC; their
  // failures are not counted again (the large folio counted as one).
  for (const s of split) if ((yield* migrateFolio(m, s, true)) === MIG_DONE) stat.migrated++;
  return stat;
}

// try_split_folio() of an isolated large folio whose destination could not
// be had: under its lock, split_folio_to_list(); the pages, each isolated,
// join `out`. False when it cannot be split (extra references).
function* trySplitFolio(m: Machine, src: number, out: number[]): KGen<boolean> {
  const phys = m.phys;
  const il = m.il;
  const nr = 1 << (phys.order[src] as number);
  if (nr === 1) return false;
  if (il) yield il.lock(LK_FOLIO, src, true, S_MIG_SPLIT);
  const ok = yield* splitFolio(m, src);
  if (il) il.unlock(LK_FOLIO, src);
  if (!ok) return false;
  out.push(src);
  for (let k = 1; k < nr; k++) {
    const t = src + k;
    if (!phys.isFree(t) && folioIsolateLru(m, t)) out.push(t);
  }
  return true;
}

const MIG_DONE = 1;
const MIG_FAILED = 0; // -EAGAIN
const MIG_NOMEM = -1; // -ENOMEM: no destination

// migrate_folio_unmap() + migrate_folio_move() of one isolated folio:
// MIG_DONE when it moved, else MIG_FAILED (the isolation reference is
// dropped) or MIG_NOMEM (the folio is still isolated: the caller decides).
// async (MIGRATE_ASYNC): a source someone holds locked is given up.
function* migrateFolio(m: Machine, src: number, async: boolean): KGen<number> {
  const phys = m.phys;
  const il = m.il;
  const order = phys.order[src] as number;
  const nr = 1 << order;
  // get_new_folio() before the source is locked; a large folio's target is
  // allocated without reclaim (alloc_migration_target()) and may fail.
  const dst = order > 0 ? allocLargeFolio(m, order) : phys.alloc(0);
  if (dst < 0) return MIG_NOMEM;
  m.counters.pagesAlloc += nr;
  if (il && async && !il.trylock(LK_FOLIO, src)) {
    // -EAGAIN; with one pass, the folio goes back (migrate_folio_undo_dst()).
    if (phys.folioPut(dst)) m.counters.pagesFree += nr;
    m.counters.pgmigrateFail += nr;
    putback(m, null, src);
    return MIG_FAILED;
  }
  if (il && !async) yield il.lock(LK_FOLIO, src, true, S_MIG_LOCK);
  if (il && !il.trylock(LK_FOLIO, dst)) throw new Error(`model bug: new folio ${dst} is locked`);
  const ubc = new TlbUbc(m);
  if (folioMapcount(m, src) > 0) yield* tryToMigrate(m, src, ubc);
  tryToUnmapFlush(m, ubc); // migrate_pages_batch(), before any folio moves
  if (il) yield S_MIG_MOVE;
  // __migrate_folio() -> folio_migrate_mapping(): folio_ref_freeze() to the
  // references it expects, the cache's and the isolation's; a PTE still
  // mapping the folio, a lockless reader's or a zap's reference held until
  // its TLB flush (an entry cleared before try_to_migrate() found it) makes
  // it fail.
  const anon = ((phys.flags[src] as number) & PG_ANON) !== 0;
  const swap = m.swap;
  const slot = anon && swap !== null ? swap.slotOf.get(src) : undefined;
  const file = anon ? undefined : [...m.files.values()].find((f) => f.id === phys.aux[src]);
  const cacheRef = anon ? (slot !== undefined ? 1 : 0) : file !== undefined && file.pages.get(phys.index(src)) === src ? 1 : 0;
  if (folioMapcount(m, src) !== 0 || phys.ref[src] !== cacheRef + 1) {
    yield* removeMigrationPtes(m, src, src);
    m.migrating.delete(src);
    if (il) il.unlock(LK_FOLIO, dst);
    if (phys.folioPut(dst)) m.counters.pagesFree += nr;
    m.counters.pgmigrateFail += nr;
    putback(m, il, src);
    return MIG_FAILED;
  }
  // folio_mc_copy(), then the cache entry moves with its reference.
  if (il) for (let k = 0; k < nr; k++) il.copyPage(src + k, dst + k);
  for (let k = 0; k < nr; k++) phys.flags[dst + k] = phys.flags[src + k] as number;
  phys.aux[dst] = phys.aux[src] as number;
  phys.setIndex(dst, phys.index(src));
  if (cacheRef === 1) {
    if (slot !== undefined && swap !== null) {
      swap.slotOf.delete(src);
      swap.addToCache(slot, dst, nr);
    } else if (file !== undefined) file.pages.set(phys.index(src), dst);
    phys.ref[dst] = (phys.ref[dst] as number) + 1;
    phys.ref[src] = (phys.ref[src] as number) - 1;
  }
  // folio_migrate_flags(): the destination is dirty now, the source not.
  phys.flags[src] = (phys.flags[src] as number) & ~PG_DIRTY;
  yield* removeMigrationPtes(m, src, dst);
  m.migrating.delete(src);
  m.counters.pgmigrateSuccess += nr;
  if (il) il.unlock(LK_FOLIO, dst);
  // migrate_folio_done(): the source's last reference (the isolation's)
  // goes; the destination's own (folio_alloc()'s) goes back to the LRU.
  putback(m, il, src);
  if (phys.folioPut(dst)) m.counters.pagesFree += nr;
  return MIG_DONE;
}

function putback(m: Machine, il: Interleaver | null, src: number): void {
  const phys = m.phys;
  if (il) il.unlock(LK_FOLIO, src);
  m.isolated.delete(src);
  const nr = 1 << (phys.order[src] as number);
  if (phys.ref[src] === 1 && m.config.checkInvariants) m.framesFreed([src], "migrate_pages");
  if (phys.folioPut(src)) m.counters.pagesFree += nr;
}

// remove_migration_ptes(src, dst): every migration entry that names a page
// of src becomes a PTE of the page at the same index of dst (src itself when
// the migration failed), with the access, dirty and write state the entry
// kept; a writable or readable-exclusive entry makes the page AnonExclusive
// again (RMAP_EXCLUSIVE). set_pte_at() of one entry: on arm64 the last one
// of a block refolds it (contpte_try_fold()). A PMD migration entry that
// names src becomes a PMD leaf of dst (remove_migration_pmd(), under the
// PMD lock).
export function* removeMigrationPtes(m: Machine, src: number, dst: number): KGen {
  const A = m.arch;
  const phys = m.phys;
  const nr = 1 << (phys.order[src] as number);
  const anon = ((phys.flags[dst] as number) & PG_ANON) !== 0;
  const lk = yield* rmapLock(m, src, false);
  try {
    for (const h of rmapWalk(m, src)) {
      yield* pageVmaMappedWalk(
        m,
        h,
        src,
        (e, i, a, k) => {
          const v = e[i] as number;
          const kind = A.migrationKind(v);
          const page = dst + k;
          let pte = A.pfnPte(page, vmaPageProt(m, h.vma));
          pte = A.migrationYoung(v) ? A.pteMkyoung(pte) : A.pteMkold(pte);
          if (A.migrationDirty(v)) pte = A.pteMkdirty(pte);
          if (kind === MIG_WRITE) pte = A.pteMkwrite(pte);
          if (anon && kind !== MIG_READ) phys.flags[page] = (phys.flags[page] as number) | PG_ANON_EXCLUSIVE;
          phys.mapcount[page] = (phys.mapcount[page] as number) + 1;
          phys.ref[dst] = (phys.ref[dst] as number) + 1;
          m.counters.folioAtomics += 2;
          A.setPtes(m, h.mm, a, e, i, pte, 1);
        },
        (pmdIdx) => removeMigrationPmd(m, h.mm, pmdIdx, dst, vmaPageProt(m, h.vma)),
        nr,
        true,
        true,
      );
      if (m.il) yield S_MIG_REMOVE;
    }
  } finally {
    rmapUnlock(m, lk);
  }
}
