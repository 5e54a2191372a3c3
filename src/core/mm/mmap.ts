// Mapping and unmapping: models do_mmap() with the top-down
// get_unmapped_area() (mm/mmap.c), do_vmi_munmap()/unmap_region() (mm/vma.c),
// brk and exit_mmap() (mm/mmap.c). mremap is in mremap.ts.

import type { Machine } from "../machine.js";
import { type Interleaver, LK_ANON_VMA, LK_IMMAP, LK_MMAP, site, run } from "../sync.js";
import { mmapUnlock, mmapWriteDowngrade, vmaMarkWriteLocked } from "./mmap_lock.js";

const S_EXIT_READ = site("exit_mmap", "mmap_read_lock() for unmap_vmas()");
const S_EXIT_WRITE = site("exit_mmap", "mmap_write_lock() for free_pgtables()");
const S_UNLINK_FILE = site("free_pgtables", "unlink_file_vma_batch(): take i_mmap_rwsem for writing");
const S_UNLINK_ANON = site("free_pgtables", "unlink_anon_vmas(): take the anon_vma lock for writing");
import { freePgtables, type KGen, unmapVmas } from "./memory.js";
import { tlbFinishMmu, tlbGatherMmu } from "./mmu_gather.js";
import { type FileObj, type Mm, VM_EXEC, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, Vma } from "./types.js";
import { anonVmaRoot } from "./rmap.js";
import { insertVma, isolateRangeLocked, mergeAroundLocked, rangeFree } from "./vma.js";

export class MmError extends Error {
  constructor(
    readonly errno: string,
    message: string,
    // Where the call had got to: it changed mappings below this address
    // before it failed (mprotect() over a hole); undefined: nothing.
    readonly doneTo?: number,
  ) {
    super(message);
  }
}

export const MMAP_MIN_ADDR = 0x10000;

export interface MmapArgs {
  len: number;
  prot: { read: boolean; write: boolean; exec: boolean };
  shared: boolean;
  fixed: boolean;
  addr: number; // hint (or the address with fixed); 0 for none
  file: FileObj | null;
  pgoff: number;
}

export function protToVmFlags(p: { read: boolean; write: boolean; exec: boolean }): number {
  return (p.read ? VM_READ : 0) | (p.write ? VM_WRITE : 0) | (p.exec ? VM_EXEC : 0);
}

// Top-down search (unmapped_area_topdown()): the highest gap below mmap_base
// that fits len with the requested alignment.
export function getUnmappedArea(mm: Mm, len: number, align: number): number {
  let high = mm.mmapBase;
  for (let i = mm.vmas.length - 1; i >= -1; i--) {
    const v = mm.vmas[i];
    const low = v === undefined ? MMAP_MIN_ADDR : v.end;
    if (v !== undefined && v.start >= high) continue;
    let cand = high - len;
    cand -= cand % align;
    if (cand >= low && cand >= MMAP_MIN_ADDR) return cand;
    if (v === undefined) break;
    high = Math.min(high, v.start);
  }
  throw new MmError("ENOMEM", `no ${len}-byte gap below mmap_base`);
}

// do_mmap()
export function doMmap(m: Machine, mm: Mm, args: MmapArgs): number {
  return run(doMmapGen(m, mm, args));
}
// The caller holds mmap_lock for writing: a merge with a neighbour waits for
// the neighbour's VMA-lock readers (vma_expand(), vma_start_write()).
export function* doMmapGen(m: Machine, mm: Mm, args: MmapArgs): KGen<number> {
  const PS = m.geo.pageSize;
  if (args.len <= 0) throw new MmError("EINVAL", "length must be positive");
  // PAGE_ALIGN(len); a fixed address must be page aligned.
  const a = args.len % PS === 0 ? args : { ...args, len: Math.ceil(args.len / PS) * PS };
  if (a.fixed && a.addr % PS !== 0) throw new MmError("EINVAL", `MAP_FIXED address is not aligned to the ${PS / 1024}K page size`);
  const A = m.arch;
  if (a.len > A.taskSize) throw new MmError("ENOMEM", "length exceeds TASK_SIZE");
  let addr: number;
  if (a.fixed) {
    if (a.addr > A.taskSize - a.len) throw new MmError("ENOMEM", `MAP_FIXED range ends above TASK_SIZE (0x${A.taskSize.toString(16)})`);
    addr = a.addr;
    if (!rangeFree(mm, addr, addr + a.len)) yield* doMunmap(m, mm, addr, a.len, false);
  } else if (
    a.addr !== 0 &&
    a.addr % PS === 0 &&
    // arch_get_mmap_end(): a hint above DEFAULT_MAP_WINDOW opens the rest of the space.
    a.addr <= (a.addr > A.mapWindow ? A.taskSize : A.mapWindow) - a.len &&
    rangeFree(mm, a.addr, a.addr + a.len) &&
    a.addr >= MMAP_MIN_ADDR
  ) {
    addr = a.addr;
  } else {
    // __get_unmapped_area(): anonymous PMD-multiple lengths are PMD aligned
    // (thp_get_unmapped_area_vmflags()).
    const anon = a.file === null && !a.shared;
    const align = anon && m.config.thp !== "never" && a.len % m.geo.pmdSize === 0 ? m.geo.pmdSize : PS;
    addr = getUnmappedArea(mm, a.len, align);
  }
  let flags = protToVmFlags(a.prot) | VM_MAYWRITE;
  let file = a.file;
  if (a.shared) {
    flags |= VM_SHARED;
    if (file === null) file = m.file(`shmem:${mm.id}:${addr.toString(16)}`, a.len, true);
  }
  // do_mmap(): a private anonymous mapping's vm_pgoff is its address in
  // pages (linear_page_index() of its folios, which rmap follows).
  const nv = new Vma(addr, addr + a.len, flags, file, file === null ? addr / PS : a.pgoff, 0);
  insertVma(mm, nv);
  vmaMarkWriteLocked(m, mm, nv);
  yield* mergeAroundLocked(m, mm, addr, addr + a.len);
  return addr;
}

// do_vmi_munmap(): split at the edges, detach, unmap_region(). With
// `unlock` (munmap(), brk and an mremap shrink) mmap_lock is downgraded to
// reading once the VMAs are detached; mmap(MAP_FIXED) and mremap's
// unmap_source_vma() keep it for writing.
export function* doMunmap(m: Machine, mm: Mm, start: number, len: number, unlock = true): KGen {
  const PS = m.geo.pageSize;
  if (start % PS !== 0) throw new MmError("EINVAL", "address must be page aligned");
  const end = start + Math.ceil(len / PS) * PS;
  const vmas = yield* isolateRangeLocked(m, mm, start, end);
  if (vmas.length === 0) return;
  const first = mm.vmas.indexOf(vmas[0] as Vma);
  mm.vmas.splice(first, vmas.length);
  if (m.il) mm.detached.push(...vmas);
  const prev = mm.vmas[first - 1];
  const next = mm.vmas[first];
  // vms_complete_munmap_vmas(): with the VMAs detached, zap and free page
  // tables under the read lock (mmap_write_downgrade(), since v4.20).
  if (m.il && unlock) mmapWriteDowngrade(m.il, mm);
  yield* unmapRegion(m, mm, vmas, prev ? prev.end : 0, next ? next.start : 0);
}

// unmap_region(): zap, free page tables between the neighbours, flush.
export function* unmapRegion(m: Machine, mm: Mm, vmas: Vma[], floor: number, ceiling: number): KGen {
  const tlb = tlbGatherMmu(m, mm);
  const start = (vmas[0] as Vma).start;
  const end = (vmas[vmas.length - 1] as Vma).end;
  yield* unmapVmas(tlb, vmas, start, end, null);
  if (m.il) yield* unlinkVmas(m, mm, vmas);
  freePgtables(tlb, vmas, floor, ceiling);
  tlbFinishMmu(tlb);
}

// unlink_anon_vmas() and unlink_file_vma_batch_add()/_final() in
// free_pgtables(): VMAs leave their anon_vma's tree and the file's i_mmap
// tree under the anon_vma root lock and i_mmap_rwsem for writing before
// their tables go, so an rmap walk (reclaim) or a truncation holding either
// for reading is done with their tables first, and one that starts later
// does not find them. The model's rmap view is the VMAs of the live mms,
// in mm.vmas or (munmap's, detached from the tree) mm.detached; they leave
// it here, under the first of the two locks. Explorer only: a sequential
// run has nobody to exclude.
function* unlinkVmas(m: Machine, mm: Mm, vmas: Vma[]): KGen {
  const il = m.il as Interleaver;
  for (const vma of vmas) {
    if (vma.anonVma !== 0) {
      const av = anonVmaRoot(m, vma.anonVma);
      yield il.lock(LK_ANON_VMA, av, true, S_UNLINK_ANON);
      dropVma(mm, vma);
      il.unlock(LK_ANON_VMA, av);
    }
    const f = vma.file;
    if (f === null) continue;
    yield il.lock(LK_IMMAP, f.id, true, S_UNLINK_FILE);
    dropVma(mm, vma);
    il.unlock(LK_IMMAP, f.id);
  }
}

function dropVma(mm: Mm, vma: Vma): void {
  if (mm.vmas.includes(vma)) mm.vmas = mm.vmas.filter((v) => v !== vma);
  if (mm.detached.includes(vma)) mm.detached = mm.detached.filter((v) => v !== vma);
}

// Sequential brk (ptlab run, replay): returns the new break.
export function doBrk(m: Machine, mm: Mm, newBrk: number): number {
  return run(brk(m, mm, newBrk));
}

// brk() (SYSCALL_DEFINE1(brk), mm/mmap.c) after mmap_write_lock(): returns the new break.
// Shrinking unmaps like munmap (do_vmi_align_munmap() with unlock: the lock
// is read-held afterwards), growing adds or extends the heap VMA.
// A request the kernel refuses leaves the break where it was and returns it.
export function* brk(m: Machine, mm: Mm, newBrk: number): KGen<number> {
  const PS = m.geo.pageSize;
  const oldEnd = Math.ceil(mm.brk / PS) * PS;
  const newEnd = Math.ceil(newBrk / PS) * PS;
  if (newBrk < mm.startBrk) return mm.brk;
  if (newEnd < oldEnd) {
    // Shrinking needs the heap VMA to reach into the range it gives back.
    const v = mm.vmas[mm.findVmaIndex(newEnd)];
    if (v === undefined || v.start >= oldEnd) return mm.brk;
    // mm->brk changes before the unmap drops the write lock.
    mm.brk = newBrk;
    yield* doMunmap(m, mm, newEnd, oldEnd - newEnd);
  } else if (newEnd > oldEnd) {
    // check_brk_limits(): get_unmapped_area(MAP_FIXED) refuses a range
    // past TASK_SIZE (__get_unmapped_area(), mm/mmap.c).
    const len = newEnd - oldEnd;
    const T = m.arch.taskSize;
    if (len > T || oldEnd > T - len) return mm.brk;
    // The next VMA must start at least a page above the new break (no stack
    // here grows down into the gap, so vm_start_gap() is its start).
    const next = mm.vmas[mm.findVmaIndex(oldEnd)];
    if (next !== undefined && newEnd + PS > next.start) return mm.brk;
    const nv = new Vma(oldEnd, newEnd, VM_READ | VM_WRITE | VM_MAYWRITE, null, oldEnd / PS, 0);
    insertVma(mm, nv);
    vmaMarkWriteLocked(m, mm, nv);
    yield* mergeAroundLocked(m, mm, oldEnd, newEnd);
  }
  mm.brk = newBrk;
  return newBrk;
}

// exit_mmap(): fullmm gather, zap everything, free all tables, flush. The
// zap runs under mmap_lock for reading (so the OOM reaper may run beside
// it), the table freeing under the write lock.
export function* exitMmap(m: Machine, mm: Mm): KGen {
  mm.exiting = true;
  const tlb = tlbGatherMmu(m, mm, true);
  const vmas = mm.vmas;
  const il = m.il;
  if (il) yield il.lock(LK_MMAP, mm.id, false, S_EXIT_READ);
  if (vmas.length > 0) yield* unmapVmas(tlb, vmas, 0, 2 ** 57, null);
  if (il) {
    il.unlock(LK_MMAP, mm.id);
    yield il.lock(LK_MMAP, mm.id, true, S_EXIT_WRITE);
  }
  if (vmas.length > 0) {
    if (il) yield* unlinkVmas(m, mm, vmas);
    freePgtables(tlb, vmas, 0, 0);
  }
  tlbFinishMmu(tlb);
  mm.vmas = [];
  if (il) mmapUnlock(il, mm);
}

// oom_reap_task_mm() -> __oom_reap_task_mm() (mm/oom_kill.c): under
// mmap_lock for reading, mark the mm MMF_UNSTABLE, then zap every VMA that
// is anonymous or not VM_SHARED (private file mappings too: their COW
// copies and the file pages they map), each with a non-fullmm gather of
// its own.
export function* oomReap(m: Machine, mm: Mm): KGen {
  const il = m.il;
  if (il) yield il.lock(LK_MMAP, mm.id, false, S_REAP_READ);
  mm.unstable = true;
  for (const vma of mm.vmas) {
    if (vma.isShared) continue;
    const tlb = tlbGatherMmu(m, mm);
    yield* unmapVmas(tlb, [vma], vma.start, vma.end, null);
    tlbFinishMmu(tlb);
  }
  if (il) il.unlock(LK_MMAP, mm.id);
}
const S_REAP_READ = site("__oom_reap_task_mm", "mmap_read_lock()");
