// The arm64 ASID allocator: a model of arch/arm64/mm/context.c
// (new_context(), flush_context(), check_update_reserved_asid(),
// check_and_switch_context()) and of the switch_mm() path that loads TTBR0
// (arch/arm64/include/asm/mmu_context.h: switch_mm(), __switch_mm()).
//
// One global allocator per machine: 2^asidBits hardware ASIDs, a bitmap of
// those used in the current generation, and a generation counter. An mm's
// context id (mm.asidId) is generation * 2^asidBits + ASID, 0 before its first
// switch-in (the kernel adds generations in units of 2^16 whatever asid_bits
// is; the comparison it makes is the same). ASIDs are never freed when an mm
// dies: a rollover (all ASIDs of the generation used) starts a new generation,
// keeps the ASID active on each CPU reserved for its mm, and marks every CPU
// to invalidate its whole TLB locally at its next switch. So a hardware ASID
// never tags another mm's translations in a CPU's TLB without a full
// invalidation in between, which is what lets tlb_flush() skip the TLBI on a
// full-mm teardown (tlbflush.ts).
//
// Not modelled: KPTI (ASIDs allocated in even/odd pairs, the user half marked
// with USER_ASID_FLAG), pinned ASIDs (arm64_mm_context_get() for SVA), CnP,
// and the lock-free fast path's races (the model runs one CPU at a time here).
// mm_cpumask is maintained as on x86 (set on switch-in, cleared on
// switch-away) for generic code; the kernel does not use it for TLB
// maintenance on arm64, whose TLBIs are broadcast.

import { EV_FLUSH } from "../../events.js";
import type { Machine } from "../../machine.js";
import type { Mm } from "../../mm/types.js";
import { giveArrays, takeArray } from "../../pool.js";

class AsidAllocator {
  readonly bits: number;
  readonly nr: number; // NUM_USER_ASIDS
  generation = 1; // asid_generation (in units of 2^bits here)
  readonly map: Uint8Array; // asid_map
  curIdx = 1; // new_context()'s static cur_idx
  // The mm each hardware ASID was last handed to (valid while that mm's
  // context id is in the current generation with this ASID).
  readonly owner: (Mm | null)[] = []; // sparse: grown as ASIDs are handed out
  constructor(bits: number) {
    this.bits = bits;
    this.nr = 2 ** bits;
    this.map = takeArray(Uint8Array, this.nr);
  }
  genOf(id: number): number {
    return Math.floor(id / this.nr);
  }
  asidOf(id: number): number {
    return id % this.nr;
  }
  // asid_gen_match()
  genMatch(id: number): boolean {
    return this.genOf(id) === this.generation;
  }
}

const allocators = new WeakMap<Machine, AsidAllocator>();

function allocator(m: Machine): AsidAllocator {
  let a = allocators.get(m);
  if (a === undefined) {
    a = new AsidAllocator(m.config.arm64.asidBits);
    allocators.set(m, a);
  }
  return a;
}

// The machine is done with (Machine.release()): its asid_map goes back to the pool.
export function releaseContext(m: Machine): void {
  const a = allocators.get(m);
  if (a === undefined) return;
  giveArrays(a.map);
  allocators.delete(m);
}

// The allocator object: state of the machine kept outside it (the explorer
// tracks it with the rest).
export function asidAllocatorOf(m: Machine): object {
  return allocator(m);
}

// The allocator state, for tests and reports.
export function asidGeneration(m: Machine): number {
  return allocator(m).generation;
}

// flush_context(): a new generation starts. The bitmap is cleared except for
// the ASID each CPU has active (or, if it has not switched since the last
// rollover, its reserved one), which stays reserved for that CPU's mm; every
// CPU owes a local invalidation of its whole TLB.
function flushContext(m: Machine, a: AsidAllocator): void {
  a.map.fill(0); // set_reserved_asid_bits() without KPTI or pinned ASIDs
  for (const cpu of m.cpus) {
    let id = cpu.activeAsid;
    cpu.activeAsid = 0;
    if (id === 0) id = cpu.reservedAsid;
    a.map[a.asidOf(id)] = 1;
    cpu.reservedAsid = id;
  }
  for (const cpu of m.cpus) cpu.tlbFlushPending = true;
  m.counters.asidRollovers++;
}

// check_update_reserved_asid(): if some CPU holds id reserved, move every such
// reservation to newId (the same ASID in the current generation).
function checkUpdateReservedAsid(m: Machine, id: number, newId: number): boolean {
  let hit = false;
  for (const cpu of m.cpus)
    if (cpu.reservedAsid === id) {
      hit = true;
      cpu.reservedAsid = newId;
    }
  return hit;
}

// new_context(): a context id in the current generation for mm.
function newContext(m: Machine, a: AsidAllocator, mm: Mm): number {
  const id = mm.asidId;
  if (id !== 0) {
    const asid = a.asidOf(id);
    const newId = a.generation * a.nr + asid;
    // Active during the rollover: keep the ASID.
    if (checkUpdateReservedAsid(m, id, newId)) {
      a.owner[asid] = mm;
      return newId;
    }
    // Used in an earlier generation: take it again if nobody has.
    if (a.map[asid] === 0) {
      a.map[asid] = 1;
      a.owner[asid] = mm;
      return newId;
    }
  }
  // A free ASID from cur_idx on (ASID 0 is init_mm's); none left: rollover.
  let asid = a.map.indexOf(0, a.curIdx);
  if (asid < 0) {
    a.generation++;
    flushContext(m, a);
    asid = a.map.indexOf(0, 1);
    if (asid < 0) throw new Error("model bug: no free ASID after rollover (more CPUs than ASIDs)");
  }
  a.map[asid] = 1;
  a.curIdx = asid;
  a.owner[asid] = mm;
  return a.generation * a.nr + asid;
}

// check_and_switch_context() (arch/arm64/mm/context.c) and cpu_switch_mm():
// make mm's context id current, do the local TLB invalidation a rollover
// left owing on this CPU, and load the ASID.
function checkAndSwitchContext(m: Machine, c: number, mm: Mm): void {
  const a = allocator(m);
  const cpu = m.cpus[c]!;
  let id = mm.asidId;
  // Fast path: an ASID of this generation and no rollover since this CPU's
  // last switch (a rollover zeroes active_asids).
  if (cpu.activeAsid !== 0 && a.genMatch(id)) cpu.activeAsid = id;
  else {
    if (!a.genMatch(id)) {
      id = newContext(m, a, mm);
      mm.asidId = id;
    }
    if (cpu.tlbFlushPending) {
      // local_flush_tlb_all(): TLBI VMALLE1 on this CPU only, DSB NSH.
      cpu.tlbFlushPending = false;
      if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "tlbi vmalle1 (local, asid rollover)", -1, -1, -1, false);
      cpu.tlb.invalidateAll();
      m.counters.tlbiVmalle1is++;
    }
    cpu.activeAsid = id;
  }
  cpu.asid = a.asidOf(id); // TTBR1_EL1.ASID (TCR_EL1.A1 = 1)
}

// switch_mm() / __switch_mm() (asm/mmu_context.h). Same contract as the x86
// switchMm(): next = null leaves user space for init_mm (TTBR0 is set to the
// reserved tables; active_asids keeps the previous context id, so the ASID
// stays reserved across a rollover, as in the kernel).
export function switchMm(m: Machine, c: number, next: Mm | null): void {
  const cpu = m.cpus[c]!;
  if (cpu.loadedMm === next) {
    cpu.running = next;
    return;
  }
  const prev = cpu.loadedMm;
  if (prev !== null) prev.cpumask[c] = 0;
  if (next === null) {
    cpu.loadedMm = null;
    cpu.running = null;
    return;
  }
  checkAndSwitchContext(m, c, next);
  next.cpumask[c] = 1;
  cpu.loadedMm = next;
  cpu.running = next;
}

// Which live mm can still hit a TLB entry tagged `asid` on CPU c: the mm
// loaded there with that ASID; else, unless the CPU owes a full local
// invalidation, the mm holding that ASID in the current generation (it would
// get it back on a switch without any invalidation). null: nobody, or the
// entry will be invalidated before anyone can use it.
//
// An mm in exit_mmap() (mm.exiting: mm_users is zero) is nobody for leaf
// entries. tlb_flush() (arch/arm64/include/asm/tlb.h) issues no TLBI for a
// fullmm gather that freed no tables, so unmap_vmas() frees pages (each full
// batch, tlb_flush_mmu()) while TLBs still map them under the dying ASID:
// no thread runs in the mm again, and new_context() (arch/arm64/mm/context.c)
// hands the ASID to another mm only in a later generation, after
// flush_context() has made every CPU invalidate its whole TLB before it next
// loads an ASID. Walk-cache entries (walkCache) stay reachable while the mm's
// tables and ASID are loaded in TTBR0 on c (lazy after exit_mm()): the
// walker may use them speculatively, which is why that tlb_flush() still
// invalidates the ASID once tables are freed.
export function asidReachable(m: Machine, c: number, asid: number, walkCache = false): Mm | null {
  const cpu = m.cpus[c]!;
  const lm = cpu.loadedMm;
  if (lm !== null && cpu.asid === asid) return lm.alive && (walkCache || !lm.exiting) ? lm : null;
  if (cpu.tlbFlushPending) return null;
  const a = allocator(m);
  const o = a.owner[asid] ?? null;
  if (o === null || !o.alive || o.exiting || o.asidId !== a.generation * a.nr + asid) return null;
  return o;
}
