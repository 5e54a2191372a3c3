// VMA tree maintenance: models __split_vma() with vma_adjust_trans_huge(),
// vma_merge/vma_modify (mm/vma.c) on a sorted array.

import type { Machine } from "../machine.js";
import { LK_ANON_VMA, LK_IMMAP, site } from "../sync.js";
import { splitHugePmd, splitHugePmdMmapWriteLocked } from "./huge_memory.js";
import type { KGen } from "./memory.js";
import { vmaMarkWriteLocked, vmaStartWrite } from "./mmap_lock.js";
import { anonVmaRoot } from "./rmap.js";
import type { Mm, Vma } from "./types.js";
import { pmdOffset } from "./walk.js";

const S_VMA_PREPARE = site("vma_prepare", "i_mmap_lock_write() / anon_vma_lock_write()");

// split_huge_pmd_if_needed(): a VMA boundary at addr inside a PMD mapping
// (or a PMD migration entry) splits it. The PMD entry's index, or -1.
function hugePmdToSplit(m: Machine, mm: Mm, vma: Vma, addr: number): number {
  const pmds = m.geo.pmdSize;
  if (addr % pmds === 0) return -1;
  const haddr = addr - (addr % pmds);
  if (haddr < vma.start || haddr + pmds > vma.end) return -1;
  const pi = pmdOffset(m, mm, addr, false);
  if (pi < 0) return -1;
  const v = m.tables.get(pi);
  return v !== 0 && (m.arch.entryIsLeaf(v) || m.arch.isMigrationPmd(v)) ? pi : -1;
}
function splitHugePmdIfNeeded(m: Machine, mm: Mm, vma: Vma, addr: number): void {
  const pi = hugePmdToSplit(m, mm, vma, addr);
  if (pi >= 0) splitHugePmdMmapWriteLocked(m, mm, vma, pi, addr - (addr % m.geo.pmdSize));
}

// Split the VMA containing addr so that a VMA starts at addr.
export function splitAt(m: Machine, mm: Mm, addr: number): void {
  const i = mm.findVmaIndex(addr);
  const vma = mm.vmas[i];
  if (vma === undefined || vma.start >= addr) return;
  splitHugePmdIfNeeded(m, mm, vma, addr);
  const tail = vma.clone();
  tail.start = addr;
  tail.pgoff = vma.pgoffOf(addr, m.geo.pageSize);
  vma.end = addr;
  if (vma.vmWriteLocked) vmaMarkWriteLocked(m, mm, tail);
  mm.vmas.splice(i + 1, 0, tail);
}

// Which VMAs of a range an operation changes: mprotect_fixup() and
// madvise_update_vma() return before vma_modify_flags() when the flags stay
// the same, so such a VMA is neither split nor write-locked.
export type VmaChanges = (v: Vma) => boolean;
const EVERY: VmaChanges = () => true;

// The VMA a boundary at addr falls inside (start < addr < end), if the
// operation changes it.
function cutAt(mm: Mm, addr: number, changes: VmaChanges): Vma | null {
  const v = mm.vmas[mm.findVmaIndex(addr)];
  return v !== undefined && v.start < addr && addr < v.end && changes(v) ? v : null;
}

// VMAs fully inside [start, end) after splitting at both ends; with
// `changes`, only the VMAs it changes (split where the range cuts them).
export function isolateRange(m: Machine, mm: Mm, start: number, end: number, changes: VmaChanges = EVERY): Vma[] {
  if (cutAt(mm, start, changes) !== null) splitAt(m, mm, start);
  if (cutAt(mm, end, changes) !== null) splitAt(m, mm, end);
  const out: Vma[] = [];
  for (let i = mm.findVmaIndex(start); i < mm.vmas.length; i++) {
    const v = mm.vmas[i] as Vma;
    if (v.start >= end) break;
    if (changes(v)) out.push(v);
  }
  return out;
}

function canMerge(a: Vma, b: Vma, pageSize: number): boolean {
  if (a.end !== b.start || a.flags !== b.flags || a.file !== b.file) return false;
  // Anonymous VMAs too: their folios' index follows vm_pgoff (rmap).
  if (a.pgoffOf(a.end, pageSize) !== b.pgoff) return false;
  return a.anonVma === 0 || b.anonVma === 0 || a.anonVma === b.anonVma;
}

// Merge compatible neighbours around [start, end) (vma_merge_existing_range()).
export function mergeAround(m: Machine, mm: Mm, start: number, end: number): void {
  let i = Math.max(0, mm.findVmaIndex(start) - 1);
  while (i < mm.vmas.length - 1) {
    const a = mm.vmas[i] as Vma;
    if (a.start > end) break;
    const b = mm.vmas[i + 1] as Vma;
    if (canMerge(a, b, m.geo.pageSize)) {
      a.end = b.end;
      if (a.anonVma === 0) a.anonVma = b.anonVma;
      mm.vmas.splice(i + 1, 1);
    } else i++;
  }
}

export function insertVma(mm: Mm, vma: Vma): void {
  mm.vmas.splice(mm.findVmaIndex(vma.start), 0, vma);
}

// Free gap check: [start, end) overlaps no VMA.
export function rangeFree(mm: Mm, start: number, end: number): boolean {
  const v = mm.vmas[mm.findVmaIndex(start)];
  return v === undefined || v.start >= end;
}

// vma_prepare() ... vma_complete() (mm/vma.c): a VMA's bounds change with
// its file's i_mmap_rwsem and its anon_vma's lock held for writing (the
// interval trees rmap walks search are updated then), so an rmap walk,
// which holds one of them for reading, sees each VMA whole, before the
// change or after it. Takes those locks for the VMAs whose bounds a split
// at `start` and `end` (isolateRange()) or a merge around [start, end)
// (mergeAround()) would change, files first as vma_prepare() does; returns
// what it took for unlockVmaRmaps(). Nothing when not interleaving, or when
// no bound moves.
function* lockVmaRmaps(m: Machine, mm: Mm, start: number, end: number, merge: boolean, changes: VmaChanges = EVERY): KGen<number[]> {
  const il = m.il;
  if (il === null) return [];
  const PS = m.geo.pageSize;
  const moved = new Set<Vma>();
  for (const addr of [start, end]) {
    const v = cutAt(mm, addr, changes);
    if (v !== null) moved.add(v);
  }
  if (merge)
    for (let i = Math.max(0, mm.findVmaIndex(start) - 1); i < mm.vmas.length - 1; i++) {
      const a = mm.vmas[i] as Vma;
      if (a.start > end) break;
      const b = mm.vmas[i + 1] as Vma;
      if (canMerge(a, b, PS)) moved.add(a).add(b);
    }
  // vma_start_write() of every VMA whose bounds move (a merge's two sides),
  // before the rmap locks, as vma_prepare()'s callers do.
  for (const v of moved) yield* vmaStartWrite(m, mm, v);
  const files = new Set<number>();
  const avs = new Set<number>();
  for (const v of moved) {
    if (v.file !== null) files.add(v.file.id);
    if (v.anonVma !== 0) avs.add(anonVmaRoot(m, v.anonVma));
  }
  const taken: number[] = [];
  for (const id of [...files].sort((a, b) => a - b)) {
    yield il.lock(LK_IMMAP, id, true, S_VMA_PREPARE);
    taken.push(LK_IMMAP, id);
  }
  for (const id of [...avs].sort((a, b) => a - b)) {
    yield il.lock(LK_ANON_VMA, id, true, S_VMA_PREPARE);
    taken.push(LK_ANON_VMA, id);
  }
  return taken;
}

function unlockVmaRmaps(m: Machine, taken: number[]): void {
  for (let i = taken.length - 2; i >= 0; i -= 2) m.il?.unlock(taken[i] as number, taken[i + 1] as number);
}

// isolateRange() and mergeAround() as the syscalls run them: every VMA the
// range touches (that the operation changes) write-locked first
// (vma_start_write(): the callers change their bounds, flags or page
// tables), then under the rmap locks of the VMAs whose bounds move
// (vma_prepare()).
export function* isolateRangeLocked(m: Machine, mm: Mm, start: number, end: number, changes: VmaChanges = EVERY): KGen<Vma[]> {
  if (m.il !== null) {
    // mmap_lock is held for writing: mm.vmas cannot change while this waits.
    for (let i = mm.findVmaIndex(start); i < mm.vmas.length; i++) {
      const v = mm.vmas[i] as Vma;
      if (v.start >= end) break;
      if (changes(v)) yield* vmaStartWrite(m, mm, v);
    }
  }
  const lk = yield* lockVmaRmaps(m, mm, start, end, false, changes);
  if (m.il !== null) {
    // vma_adjust_trans_huge(): the PMD lock of a THP a boundary cuts may be
    // held by a fault in another VMA of the same PMD table, which runs
    // under its own VMA lock.
    for (const addr of [start, end]) {
      const v = cutAt(mm, addr, changes);
      if (v === null) continue;
      const pi = hugePmdToSplit(m, mm, v, addr);
      if (pi >= 0) yield* splitHugePmd(m, mm, v, pi, addr - (addr % m.geo.pmdSize));
    }
  }
  const vmas = isolateRange(m, mm, start, end, changes);
  unlockVmaRmaps(m, lk);
  return vmas;
}

export function* mergeAroundLocked(m: Machine, mm: Mm, start: number, end: number): KGen {
  const lk = yield* lockVmaRmaps(m, mm, start, end, true);
  mergeAround(m, mm, start, end);
  unlockVmaRmaps(m, lk);
}
