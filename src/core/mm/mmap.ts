// Mapping and unmapping: models do_mmap() with the top-down
// get_unmapped_area() (mm/mmap.c), do_vmi_munmap()/unmap_region() (mm/vma.c),
// brk, exit_mmap() (mm/mmap.c) and mremap's move_vma()/move_page_tables()
// (mm/mremap.c).

import type { Machine } from "../machine.js";
import { LK_MMAP, site } from "../sync.js";

const S_EXIT_READ = site("exit_mmap", "mmap_read_lock() for unmap_vmas()");
const S_EXIT_WRITE = site("exit_mmap", "mmap_write_lock() for free_pgtables()");
import { folioPteBatch, freePgtables, type KGen, run, unmapVmas } from "./memory.js";
import { tlbFinishMmu, tlbGatherMmu } from "./mmu_gather.js";
import { flushTlbBatchedPending } from "./rmap.js";
import { splitHugePmd } from "./huge_memory.js";
import { type FileObj, type Mm, VM_EXEC, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, Vma } from "./types.js";
import { insertVma, isolateRange, mergeAround, rangeFree } from "./vma.js";
import { pmdOffset, pteAlloc, pteTableOf } from "./walk.js";

export class MmError extends Error {
  constructor(
    readonly errno: string,
    message: string,
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
    if (!rangeFree(mm, addr, addr + a.len)) run(doMunmap(m, mm, addr, a.len));
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
  insertVma(mm, new Vma(addr, addr + a.len, flags, file, file === null ? addr / PS : a.pgoff, 0));
  mergeAround(m, mm, addr, addr + a.len);
  return addr;
}

// do_vmi_munmap(): split at the edges, detach, unmap_region().
export function* doMunmap(m: Machine, mm: Mm, start: number, len: number): KGen {
  const PS = m.geo.pageSize;
  if (start % PS !== 0) throw new MmError("EINVAL", "address must be page aligned");
  const end = start + Math.ceil(len / PS) * PS;
  const vmas = isolateRange(m, mm, start, end);
  if (vmas.length === 0) return;
  const first = mm.vmas.indexOf(vmas[0] as Vma);
  mm.vmas.splice(first, vmas.length);
  const prev = mm.vmas[first - 1];
  const next = mm.vmas[first];
  // vms_complete_munmap_vmas(): with the VMAs detached, zap and free page
  // tables under the read lock (mmap_write_downgrade(), since v4.20).
  if (m.il) m.il.downgrade(LK_MMAP, mm.id);
  yield* unmapRegion(m, mm, vmas, prev ? prev.end : 0, next ? next.start : 0);
}

// unmap_region(): zap, free page tables between the neighbours, flush.
export function* unmapRegion(m: Machine, mm: Mm, vmas: Vma[], floor: number, ceiling: number): KGen {
  const tlb = tlbGatherMmu(m, mm);
  const start = (vmas[0] as Vma).start;
  const end = (vmas[vmas.length - 1] as Vma).end;
  yield* unmapVmas(tlb, vmas, start, end, null);
  freePgtables(tlb, vmas, floor, ceiling);
  tlbFinishMmu(tlb);
}

// brk(): returns the new break.
export function doBrk(m: Machine, mm: Mm, newBrk: number): number {
  const PS = m.geo.pageSize;
  const oldEnd = Math.ceil(mm.brk / PS) * PS;
  const newEnd = Math.ceil(newBrk / PS) * PS;
  if (newBrk < mm.startBrk) return mm.brk;
  if (newEnd < oldEnd) {
    run(doMunmap(m, mm, newEnd, oldEnd - newEnd));
  } else if (newEnd > oldEnd) {
    if (!rangeFree(mm, oldEnd, newEnd)) return mm.brk;
    insertVma(mm, new Vma(oldEnd, newEnd, VM_READ | VM_WRITE | VM_MAYWRITE, null, oldEnd / PS, 0));
    mergeAround(m, mm, oldEnd, newEnd);
  }
  mm.brk = newBrk;
  return newBrk;
}

// exit_mmap(): fullmm gather, zap everything, free all tables, flush. The
// zap runs under mmap_lock for reading (so the OOM reaper may run beside
// it), the table freeing under the write lock.
export function* exitMmap(m: Machine, mm: Mm): KGen {
  const tlb = tlbGatherMmu(m, mm, true);
  const vmas = mm.vmas;
  const il = m.il;
  if (il) yield il.lock(LK_MMAP, mm.id, false, S_EXIT_READ);
  if (vmas.length > 0) yield* unmapVmas(tlb, vmas, 0, 2 ** 57, null);
  if (il) {
    il.unlock(LK_MMAP, mm.id);
    yield il.lock(LK_MMAP, mm.id, true, S_EXIT_WRITE);
  }
  if (vmas.length > 0) freePgtables(tlb, vmas, 0, 0);
  tlbFinishMmu(tlb);
  mm.vmas = [];
  if (il) il.unlock(LK_MMAP, mm.id);
}

// __oom_reap_task_mm() (mm/oom_kill.c): under mmap_lock for reading, zap
// the private anon VMAs of a dying mm with a non-fullmm gather.
export function* oomReap(m: Machine, mm: Mm): KGen {
  const il = m.il;
  if (il) yield il.lock(LK_MMAP, mm.id, false, S_REAP_READ);
  const tlb = tlbGatherMmu(m, mm);
  for (const vma of mm.vmas) if (vma.file === null && !vma.isShared) yield* unmapVmas(tlb, [vma], vma.start, vma.end, null);
  tlbFinishMmu(tlb);
  if (il) il.unlock(LK_MMAP, mm.id);
}
const S_REAP_READ = site("__oom_reap_task_mm", "mmap_read_lock()");

// mremap(): shrink in place, grow in place when the gap allows, else move.
export function doMremap(m: Machine, mm: Mm, addr: number, oldLen: number, newLen: number, mayMove: boolean, newAddrHint = 0): number {
  const vma = mm.findVma(addr);
  if (vma === null || vma.start > addr || addr + oldLen > vma.end) throw new MmError("EFAULT", "mremap: old range is not one mapping");
  if (newLen <= oldLen) {
    if (newLen < oldLen) run(doMunmap(m, mm, addr + newLen, oldLen - newLen));
    return addr;
  }
  if (newAddrHint === 0 && addr + oldLen === vma.end && rangeFree(mm, vma.end, addr + newLen)) {
    vma.end = addr + newLen; // vma_expand()
    mergeAround(m, mm, vma.start, vma.end);
    return addr;
  }
  if (!mayMove && newAddrHint === 0) throw new MmError("ENOMEM", "mremap: cannot grow in place and may_move is not set");
  const dest = newAddrHint !== 0 ? newAddrHint : getUnmappedArea(mm, newLen, m.geo.pageSize);
  moveVma(m, mm, vma, addr, oldLen, dest, newLen);
  return dest;
}

// move_vma(): new VMA, move_page_tables(), then unmap the old range.
function moveVma(m: Machine, mm: Mm, vma: Vma, old: number, oldLen: number, dest: number, newLen: number): void {
  const nv = vma.clone();
  nv.start = dest;
  nv.end = dest + newLen;
  nv.pgoff = vma.pgoffOf(old, m.geo.pageSize);
  insertVma(mm, nv);
  movePageTables(m, mm, vma, old, dest, oldLen);
  run(doMunmap(m, mm, old, oldLen));
  mergeAround(m, mm, dest, dest + newLen);
}

// move_page_tables(): whole PTE tables move when both sides are PMD aligned
// (move_normal_pmd()), PMD leaves move whole (move_huge_pmd()), otherwise PTEs
// move one by one (move_ptes()). The old range is flushed.
function movePageTables(m: Machine, mm: Mm, vma: Vma, old: number, dest: number, len: number): void {
  const A = m.arch;
  const T = m.tables;
  const PS = m.geo.pageSize;
  const PMDS = m.geo.pmdSize;
  let off = 0;
  let moved = false;
  while (off < len) {
    const oa = old + off;
    const da = dest + off;
    const extent = Math.min(PMDS - (oa % PMDS), PMDS - (da % PMDS), len - off);
    const spi = pmdOffset(m, mm, oa, false);
    const sv = spi >= 0 ? T.get(spi) : 0;
    if (sv === 0) {
      off += extent;
      continue;
    }
    const dpi = pmdOffset(m, mm, da, true);
    if (extent === PMDS && T.get(dpi) === 0 && (A.entryIsLeaf(sv) || A.entryIsTable(sv))) {
      T.set(dpi, sv);
      T.set(spi, 0);
      m.counters.pteWrites += 2;
      moved = true;
      off += extent;
      continue;
    }
    // A PMD mapping that does not move whole is split first.
    if (A.entryIsLeaf(sv)) splitHugePmd(m, mm, vma, spi, oa - (oa % PMDS));
    const dslot = pteAlloc(m, mm, dpi);
    const sslot = pteTableOf(m, T.get(spi));
    const es = T.chunkOf(sslot);
    const ed = T.chunkOf(dslot);
    if (m.config.variants.tlb_batch_pending === "fixed") flushTlbBatchedPending(m, mm);
    // move_ptes(), batched over large folios (mremap_folio_pte_batch()).
    const n = extent / PS;
    const si0 = T.base(sslot) + ((oa / PS) & m.geo.ptrsMask);
    const di0 = T.base(dslot) + ((da / PS) & m.geo.ptrsMask);
    for (let k = 0; k < n; ) {
      const v = A.ptepGet(m, es, si0 + k);
      if (v === 0) {
        k++;
        continue;
      }
      let nr = 1;
      if (A.ptePresent(v) && !A.pteSpecial(v)) {
        const pfn = A.ptePfn(v);
        const head = m.phys.folioHead(pfn);
        const order = m.phys.order[head] as number;
        if (order > 0) nr = folioPteBatch(m, es, si0 + k, v, pfn, head, order, n - k, false, false);
      }
      const pte = A.getAndClearFullPtes(m, mm, oa + k * PS, es, si0 + k, nr, false);
      A.setPtes(m, mm, da + k * PS, ed, di0 + k, pte, nr);
      moved = true;
      k += nr;
    }
    off += extent;
  }
  if (moved) A.flushTlbRange(m, mm, old, old + len, m.geo.pageShift, false);
}
