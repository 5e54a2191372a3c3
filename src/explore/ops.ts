// The concurrent steps of a scenario as thread bodies: each syscall takes
// mmap_lock as its kernel entry does and runs the model's kernel paths (the
// same generators `ptlab run` drives to completion); user accesses are one
// hardware step each, with the fault path interleaving like any kernel path.
// No Node APIs.

import { accessPfn } from "../core/hw/walker.js";
import { userAccessGen } from "../core/arch/fault.js";
import { gupFastPinRange, gupPinAt, locklessPteRead, newGupPin, pinUserPages, unpinUserPages } from "../core/mm/gup.js";
import { dupMmapGen } from "../core/mm/fork.js";
import { madvise } from "../core/mm/madvise.js";
import type { KGen } from "../core/mm/memory.js";
import { type Mm, VM_SHARED, type Vma } from "../core/mm/types.js";
import { brk, doMmapGen, doMunmap, MmError, oomReap } from "../core/mm/mmap.js";
import { rangeFree } from "../core/mm/vma.js";
import { mprotect } from "../core/mm/mprotect.js";
import { mremap } from "../core/mm/mremap.js";
import { fileRangeMappings, truncatePagecache } from "../core/mm/truncate.js";
import { writebackFile } from "../core/mm/page_writeback.js";
import { migrateRange } from "../core/mm/migrate.js";
import { khugepagedScanMm } from "../core/mm/khugepaged.js";
import { reclaimRange } from "../core/mm/vmscan.js";
import { type Interleaver, LK_INODE, LK_MMAP, site } from "../core/sync.js";
import { lockVmaUnderRcu, mmapUnlock, vmaEndRead } from "../core/mm/mmap_lock.js";
import type { Runner } from "../run/runner.js";
import type { Step } from "../scenario/types.js";
import { Deviation, type Execution, type XThread, type ZapRange } from "./execution.js";

const S_MMAP_W = site("mmap_write_lock", "take mmap_lock for writing");
const S_MMAP_R = site("mmap_read_lock", "take mmap_lock for reading");
const S_MADV_VMA = site("try_vma_read_lock", "look the VMA up and take its read lock");
const S_ACCESS = site("user", "load or store");
const S_INODE_LOCK = site("do_truncate", "inode_lock()");
const S_DMA = site("device", "DMA through a pin");
const REVOKES = new Set(["dontneed", "free", "pageout"]);

export function* threadBody(x: Execution, r: Runner, steps: Step[], self: () => XThread): KGen {
  for (const s of steps) {
    self().op = describeStep(s);
    self().stepNo++;
    // Table pointers do not outlive a system call.
    self().tables.clear();
    try {
      yield* op(x, r, s, self());
    } catch (e) {
      if (e instanceof MmError) throw new Deviation(`${s.op} failed: ${e.errno}: ${e.message}`);
      throw e;
    }
  }
}

function* op(x: Execution, r: Runner, step: Step, t: XThread): KGen {
  const m = r.m;
  const il = m.il as Interleaver;
  switch (step.op) {
    case "munmap":
    case "madvise":
    case "mprotect": {
      const p = r.procOf(step);
      const [a, len] = r.range(step, p, 0);
      // mmap_lock as each syscall takes it: munmap and mprotect for writing
      // (do_vmi_munmap() downgrades it), madvise for reading unless it
      // changes VMA flags. MADV_COLLAPSE reads: madvise_collapse() drops
      // the lock and takes it for writing itself, and holds it for reading
      // again when it returns.
      const write = step.op !== "madvise" || step.advice === "hugepage" || step.advice === "nohugepage";
      const zap = step.op === "munmap" || (step.op === "madvise" && (step.advice === "dontneed" || step.advice === "free"));
      x.sysEnter(t);
      const zr = zap ? zapBegin(x, r, p.mm, a, a + len) : null;
      const lazyFree = step.op === "madvise" && step.advice === "free";
      if (lazyFree) x.lazyFreeing++;
      r.enter(step, p);
      // MADV_DONTNEED of a range inside one VMA runs under that VMA's read
      // lock (get_lock_mode() and try_vma_read_lock(), mm/madvise.c, since
      // v6.16), else under mmap_lock for reading.
      let vl: Vma | null = null;
      if (step.op === "madvise" && step.advice === "dontneed") {
        yield S_MADV_VMA;
        vl = lockVmaUnderRcu(p.mm, a);
        const ps = m.geo.pageSize;
        if (vl !== null && a + Math.ceil(len / ps) * ps > vl.end) {
          vmaEndRead(vl);
          vl = null;
        }
      }
      if (vl === null) yield il.lock(LK_MMAP, p.mm.id, write, write ? S_MMAP_W : S_MMAP_R);
      // An error return (EINVAL, ENOMEM) leaves the syscall the way it
      // came: mmap_lock released, whatever it changed already flushed.
      // A call that fails checks only what it changed before it failed.
      let upTo = a + len;
      try {
        if (step.op === "munmap") yield* doMunmap(m, p.mm, a, len);
        else if (step.op === "madvise") yield* madvise(m, p.mm, a, len, step.advice);
        else yield* mprotect(m, p.mm, a, len, step.prot);
      } catch (e) {
        upTo = e instanceof MmError ? (e.doneTo ?? a) : upTo;
        throw e;
      } finally {
        if (vl !== null) vmaEndRead(vl);
        else mmapUnlock(il, p.mm);
        if (zr !== null) zapEnd(x, r, p.mm, zr, step.op === "madvise" && step.advice === "dontneed" && upTo === a + len, t);
        if (lazyFree) {
          x.lazyFreeing--;
          x.lazyFreeEnded = true;
        }
        // Invariant 2 holds for the calls that take translations away
        // (unmap, downgrade, zap, reclaim). MADV_WILLNEED, MADV_COLD and
        // MADV_[NO]HUGEPAGE revoke nothing (madvise_willneed(),
        // madvise_cold_or_pageout_pte_range() only ages for COLD, hugepage_madvise()
        // in mm/): they promise nothing about another thread's unmap in flight.
        if ((step.op !== "madvise" || REVOKES.has(step.advice)) && upTo > a)
          x.sysReturn(t, step.op === "madvise" ? `madvise(${step.advice})` : step.op, p.mm, a, upTo);
        else x.sysLeave(t);
      }
      return;
    }
    case "fork": {
      const p = r.procOf(step);
      if (r.procs.has(step.child)) throw r.err(step, `process "${step.child}" already exists`);
      x.sysEnter(t);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, true, S_MMAP_W);
      const mm = yield* dupMmapGen(m, p.mm);
      mmapUnlock(il, p.mm);
      r.addChild(step, p, mm);
      x.inherit(p.mm, mm);
      x.sysReturn(t, "fork", p.mm, 0, 2 ** 57);
      return;
    }
    case "mmap": {
      const p = r.procOf(step);
      x.sysEnter(t);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, true, S_MMAP_W);
      // MAP_FIXED over mappings: mmap_region() unmaps them first, keeping
      // mmap_lock for writing (no downgrade); what they held is discarded.
      // (doMmap() finds the range free then.)
      const ps = m.geo.pageSize;
      const at = step.flags.includes("fixed") && step.addr !== undefined && step.addr % ps === 0 ? step.addr : -1;
      const atEnd = at + Math.ceil(step.size / ps) * ps;
      const zr = at >= 0 && !rangeFree(p.mm, at, atEnd) ? zapBegin(x, r, p.mm, at, atEnd) : null;
      if (zr !== null) {
        try {
          yield* doMunmap(m, p.mm, zr[0], zr[1] - zr[0], false);
        } catch (e) {
          mmapUnlock(il, p.mm);
          zapEnd(x, r, p.mm, zr);
          throw e;
        }
      }
      const file = step.file !== undefined ? m.file(step.file, step.offset + step.size, false) : null;
      let addr: number;
      try {
        addr = yield* doMmapGen(m, p.mm, {
          len: step.size,
          prot: step.prot,
          shared: step.flags.includes("shared"),
          fixed: step.flags.includes("fixed"),
          addr: step.addr ?? 0,
          file,
          pgoff: Math.floor(step.offset / m.geo.pageSize),
        });
      } finally {
        mmapUnlock(il, p.mm);
      }
      r.pinForget(p.mm, addr, addr + step.size);
      p.regions.set(step.region, { start: addr, len: step.size });
      if (zr !== null) {
        zapEnd(x, r, p.mm, zr);
        // What was unmapped must not stay in a TLB.
        x.sysReturn(t, "mmap", p.mm, zr[0], zr[1]);
      } else x.sysLeave(t);
      return;
    }
    case "mremap": {
      const p = r.procOf(step);
      const reg = p.regions.get(step.region);
      if (reg === undefined) throw r.err(step, `unknown region "${step.region}"`);
      const end = reg.start + reg.len;
      // do_mremap() takes mmap_lock for writing (a shrink drops it in
      // do_vmi_munmap()). What the old range shows is not constrained from
      // here on: its pages move or go.
      x.sysEnter(t);
      const zr = zapBegin(x, r, p.mm, reg.start, end);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, true, S_MMAP_W);
      let na: number;
      try {
        na = yield* mremap(m, p.mm, reg.start, reg.len, step.newSize, step.mayMove);
      } catch (e) {
        // An error return (EFAULT, ENOMEM: the checks of mremap_to() and
        // vma_to_resize(), before any PTE moves) releases mmap_lock having
        // revoked nothing: an entry reclaim left pending is still reclaim's
        // to flush.
        mmapUnlock(il, p.mm);
        zapEnd(x, r, p.mm, zr);
        x.sysReturn(t, "mremap", p.mm, reg.start, reg.start);
        throw e;
      }
      mmapUnlock(il, p.mm);
      zapEnd(x, r, p.mm, zr);
      p.regions.delete(step.region);
      p.regions.set(step.newRegion ?? step.region, { start: na, len: step.newSize });
      if (step.newSize < reg.len) r.resized.add(`${p.name}/${step.newRegion ?? step.region}`);
      // The old range: what moved away (or was cut off) must not stay in a TLB.
      x.sysReturn(t, "mremap", p.mm, na === reg.start ? reg.start + Math.min(reg.len, step.newSize) : reg.start, end);
      return;
    }
    case "brk": {
      const p = r.procOf(step);
      x.sysEnter(t);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, true, S_MMAP_W);
      const ps = m.geo.pageSize;
      const oldEnd = Math.ceil(p.mm.brk / ps) * ps;
      const newEnd = Math.ceil((p.mm.brk + step.delta) / ps) * ps;
      // Shrinking unmaps like munmap (and downgrades the lock).
      const shrink = newEnd < oldEnd && p.mm.brk + step.delta >= p.mm.startBrk;
      const zr = shrink ? zapBegin(x, r, p.mm, newEnd, oldEnd) : null;
      try {
        yield* brk(m, p.mm, p.mm.brk + step.delta);
      } finally {
        mmapUnlock(il, p.mm);
      }
      r.bindHeap(step, p);
      if (zr !== null) {
        zapEnd(x, r, p.mm, zr);
        x.sysReturn(t, "brk", p.mm, newEnd, oldEnd);
      } else x.sysLeave(t);
      return;
    }
    case "truncate": {
      const f = m.files.get(step.file);
      if (f === undefined) throw r.err(step, `unknown file "${step.file}" (map it first)`);
      // do_truncate(): the inode lock (truncations of one file are
      // serialised), no mmap_lock; i_mmap_rwsem and folio locks inside.
      x.sysEnter(t);
      yield il.lock(LK_INODE, f.id, true, S_INODE_LOCK);
      x.truncBegin(f);
      // truncate_pagecache() zaps private COW copies beyond the new end too
      // (unmap_mapping_range() with even_cows): what a process stored there
      // is discarded, like a zap's range.
      const cows = fileRangeMappings(m, f, Math.ceil(step.size / m.geo.pageSize), Infinity).filter(([, v]) => (v.flags & VM_SHARED) === 0);
      const zrs = cows.map(([mm, , a, b]) => [mm, zapBegin(x, r, mm, a, b)] as const);
      m.curCpu = t.cpu;
      yield* truncatePagecache(m, f, step.size);
      for (const [mm, zr] of zrs) zapEnd(x, r, mm, zr);
      x.truncEnd(f);
      il.unlock(LK_INODE, f.id);
      x.sysLeave(t);
      return;
    }
    case "touch": {
      const p = r.procOf(step);
      const [a, len] = r.range(step, p, 0);
      const stride = step.stride || m.geo.pageSize;
      for (let v = a; v < a + len; v += stride) {
        yield S_ACCESS;
        const c = r.enter(step, p);
        x.sysEnter(t);
        const res = yield* userAccessGen(m, c, p.mm, v, step.write);
        x.sysLeave(t);
        if (res === "segv" || res === "sigbus")
          throw new Deviation(`${res === "segv" ? "SIGSEGV" : "SIGBUS"}: ${step.write ? "write" : "read"} at 0x${v.toString(16)}`);
        if (res === "livelock") return; // reported from m.violations; the thread gets no further
        // The load or store itself happens with the translation just made.
        const vpn = Math.floor(v / m.geo.pageSize);
        if (r.pins.size > 0) pinCheckAccess(r, t, p.mm, v, accessPfn);
        if (step.write) x.userStore(t, p.mm, vpn, accessPfn, !(p.mm.findVma(v)?.isShared ?? true), v % m.geo.pageSize < m.geo.pageSize / 2 ? 0 : 1);
        else x.userLoad(t, p.mm, vpn, accessPfn);
      }
      return;
    }
    case "exit": {
      const p = r.procs.get(step.process);
      if (p === undefined || !p.mm.alive) throw r.err(step, `process "${step.process}" does not exist or has exited`);
      x.sysEnter(t);
      x.dying(p.mm);
      yield* r.exitProcessGen(p);
      x.sysLeave(t);
      return;
    }
    case "reclaim":
    case "migrate":
    case "khugepaged": {
      // kswapd (or direct reclaim), compaction or NUMA balancing, the
      // khugepaged kthread: no mm switch; no mmap_lock (khugepaged
      // try-locks it itself); the folios mapped in the range are shrunk as
      // shrink_folio_list() would, migrated, or collapsed. A process that
      // has exited left nothing on the LRU or khugepaged's list to find.
      const gone = step.process !== undefined ? r.procs.get(step.process) : undefined;
      if (gone !== undefined && !gone.mm.alive) return;
      const p = r.reclaimTarget(step);
      const [a, len] = r.range(step, p, 0);
      x.sysEnter(t);
      m.curCpu = t.cpu;
      if (step.op === "reclaim") yield* reclaimRange(m, p.mm, a, a + len);
      else if (step.op === "migrate") yield* migrateRange(m, p.mm, a, a + len);
      else yield* khugepagedScanMm(m, p.mm, a, a + len);
      x.sysLeave(t);
      return;
    }
    case "writeback": {
      // The flusher or fsync(): no mmap_lock, no inode lock; folio locks,
      // i_mmap_rwsem and PTE locks inside.
      const f = m.files.get(step.file);
      if (f === undefined) throw r.err(step, `unknown file "${step.file}" (map it first)`);
      x.sysEnter(t);
      m.curCpu = t.cpu;
      yield* writebackFile(m, f);
      x.sysLeave(t);
      return;
    }
    case "oom_reap": {
      const p = r.procs.get(step.process);
      if (p === undefined) throw r.err(step, `process "${step.process}" does not exist`);
      if (!p.mm.alive) return; // nothing left to reap
      x.sysEnter(t);
      m.curCpu = t.cpu;
      x.dying(p.mm);
      yield* oomReap(m, p.mm);
      x.sysLeave(t);
      return;
    }
    case "pin": {
      // pin_user_pages_fast(): GUP-fast with IRQs off, then
      // __gup_longterm_locked() under mmap_lock for reading for the rest.
      const p = r.procOf(step);
      const [a, len] = r.range(step, p, 0);
      if (r.pins.has(step.name)) throw r.err(step, `pin "${step.name}" is held already (unpin it first, or name this one)`);
      const nr = Math.ceil(len / m.geo.pageSize);
      x.sysEnter(t);
      r.enter(step, p);
      x.pinBegin(t, p.mm);
      const fast = step.fast ? yield* gupFastPinRange(m, p.mm, a, nr, step.write) : [];
      let rest: number[] | string = [];
      if (fast.length < nr) {
        yield il.lock(LK_MMAP, p.mm.id, false, S_MMAP_R);
        try {
          rest = yield* pinUserPages(m, p.mm, a + fast.length * m.geo.pageSize, nr - fast.length, step.write);
        } finally {
          il.unlock(LK_MMAP, p.mm.id);
        }
      }
      x.sysLeave(t);
      if (typeof rest === "string") {
        x.pinEnd(t);
        unpinUserPages(m, newGupPin(p.mm, a, fast, step.write));
        throw new Deviation(`pin failed: ${rest}`);
      }
      const pin = newGupPin(p.mm, a, [...fast, ...rest], step.write);
      // A page a zap discarded while the step ran is not held to the pin.
      for (let k = 0; k < nr; k++) if (x.pinDiscarded(t, p.mm, a + k * m.geo.pageSize)) pin.live[k] = 0;
      x.pinEnd(t);
      r.pins.set(step.name, pin);
      return;
    }
    case "unpin": {
      // A pin a failed pin step never took is no error here.
      const pin = r.pins.get(step.pin);
      if (pin === undefined) return;
      unpinUserPages(m, pin);
      r.pins.delete(step.pin);
      return;
    }
    case "dma": {
      const pin = r.pins.get(step.pin);
      if (pin === undefined) return;
      const [, k] = r.dmaTarget(step);
      yield S_DMA;
      const addr = pin.start + k * m.geo.pageSize;
      x.dmaAccess(t, pin.mm, Math.floor(addr / m.geo.pageSize), pin.pfns[k] as number, step.write, pin.live[k] === 1 && pin.write === true && pin.mm.alive);
      return;
    }
    case "lockless": {
      const p = r.procOf(step);
      const reg = p.regions.get(step.region);
      if (reg === undefined) throw r.err(step, `unknown region "${step.region}"`);
      const addr = reg.start + step.offset;
      const fast = step.via === "gup_fast";
      // No user-PTE reader in v6.17 holds rcu_read_lock() alone: the
      // RCU-protected ones (handle_pte_fault() after lock_vma_under_rcu(),
      // page-table walks under mmap_lock) hold the VMA read lock or
      // mmap_lock, which collapse_huge_page(), mprotect, mremap, munmap and
      // fork exclude (vma_start_write()). Without them the reader could keep
      // a pointer to a table MADV_COLLAPSE deposited and MADV_DONTNEED then
      // freed with pte_free() (zap_deposited_table(), mm/huge_memory.c),
      // which only those locks and GUP-fast's IRQs-off section make safe.
      let vl: Vma | null = null;
      if (!fast) {
        vl = lockVmaUnderRcu(p.mm, addr);
        if (vl === null) yield il.lock(LK_MMAP, p.mm.id, false, S_MMAP_R);
      }
      try {
        const v = yield* locklessPteRead(m, p.mm, addr, fast);
        x.locklessResult(t, addr, v);
      } finally {
        if (vl !== null) vmaEndRead(vl);
        else if (!fast) il.unlock(LK_MMAP, p.mm.id);
      }
      return;
    }
    default:
      throw r.err(step, `${step.op} cannot run concurrently under ptlab explore (put it in steps)`);
  }
}

// What a range shows from the start of a zap (munmap, MADV_DONTNEED/FREE,
// mremap, a shrinking brk, truncation's COW copies) to its end is not
// constrained, and a pin of it taken meanwhile need not stay coherent (the
// process discards the page itself): its pins are forgotten at both ends,
// and a pin taken in between starts forgotten there (the pin step).
function zapBegin(x: Execution, r: Runner, mm: Mm, start: number, end: number): ZapRange {
  const z = x.zapBegin(mm, start, end);
  r.pinForget(mm, start, end);
  return z;
}
function zapEnd(x: Execution, r: Runner, mm: Mm, z: ZapRange, zeroFill = false, t: XThread | null = null): void {
  x.zapEnd(mm, z, zeroFill, t);
  r.pinForget(mm, z[0], z[1]);
}

// pin-coherence at a user access: the page the access went through is the
// one a coherent pin of that address holds.
function pinCheckAccess(r: Runner, t: XThread, mm: Mm, addr: number, pfn: number): void {
  const ps = r.m.geo.pageSize;
  const page = addr - (addr % ps);
  for (const pin of r.pins.values()) {
    if (pin.mm !== mm) continue;
    const want = gupPinAt(pin, page, ps);
    if (want < 0 || want === pfn) continue;
    r.m.violations.push({
      invariant: "pin-coherence",
      cpu: t.cpu,
      addr: page,
      message: `${t.name} (mm${mm.id}) accesses 0x${page.toString(16)} through pfn ${pfn}, but its ${pin.write ? "R/W" : "R/O"} longterm pin holds pfn ${want}`,
    });
  }
}

const KB = (n: number) => (n === 0 ? "0" : n % 1048576 === 0 ? `${n / 1048576}M` : `${n / 1024}K`);

// "munmap r+0 2M": what a trace line says the thread is doing.
export function describeStep(s: Step): string {
  switch (s.op) {
    case "munmap":
    case "mprotect":
    case "madvise":
    case "touch": {
      const what =
        s.op === "madvise"
          ? `madvise(${s.advice})`
          : s.op === "mprotect"
            ? `mprotect(${s.prot.read ? "r" : ""}${s.prot.write ? "w" : ""}${s.prot.exec ? "x" : ""}${s.prot.read || s.prot.write || s.prot.exec ? "" : "none"})`
            : s.op === "touch"
              ? s.write
                ? "write"
                : "read"
              : s.op;
      return `${what} ${s.region}+${KB(s.offset)}${s.length !== undefined ? ` ${KB(s.length)}` : ""}`;
    }
    case "pin":
      return `pin${s.write ? " write" : ""}${s.fast ? " fast" : ""} ${s.region}+${KB(s.offset)}${s.length !== undefined ? ` ${KB(s.length)}` : ""}`;
    case "unpin":
      return `unpin ${s.pin}`;
    case "dma":
      return `dma ${s.write ? "write" : "read"} ${s.pin}+${KB(s.offset)}`;
    case "lockless":
      return `lockless ${s.via} ${s.region}+${KB(s.offset)}`;
    case "fork":
      return `fork -> ${s.child}`;
    case "exit":
      return `exit ${s.process}`;
    case "oom_reap":
      return `oom_reap ${s.process}`;
    case "mremap":
      return `mremap ${s.region} -> ${KB(s.newSize)}${s.newRegion !== undefined ? ` as ${s.newRegion}` : ""}`;
    case "brk":
      return `brk ${s.delta < 0 ? "-" : "+"}${KB(Math.abs(s.delta))}`;
    case "truncate":
      return `truncate ${s.file} to ${KB(s.size)}`;
    case "writeback":
      return `writeback ${s.file}`;
    case "reclaim":
    case "migrate":
    case "khugepaged":
      return `${s.op} ${s.process !== undefined ? `${s.process}:` : ""}${s.region}+${KB(s.offset)}${s.length !== undefined ? ` ${KB(s.length)}` : ""}`;
    default:
      return s.op;
  }
}
