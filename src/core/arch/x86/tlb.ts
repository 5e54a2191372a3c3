// x86-64 TLB maintenance: models flush_tlb_mm_range(), flush_tlb_func(),
// switch_mm_irqs_off() and choose_new_asid() (arch/x86/mm/tlb.c) and
// tlb_flush() (arch/x86/include/asm/tlb.h).
//
// Simplifications: the mm_cpumask bit is cleared when a CPU switches away (the
// kernel trims lazily since 2024; a CPU that switched away needs no IPI either
// way because its stale ASID is flushed on the way back by the tlb_gen check).

import { EV_FLUSH } from "../../events.js";
import { site } from "../../sync.js";
import type { Machine } from "../../machine.js";
import type { MmuGather } from "../../mm/mmu_gather.js";
import type { Mm } from "../../mm/types.js";

export const TLB_FLUSH_ALL = -1;

export function switchMm(m: Machine, c: number, next: Mm | null): void {
  const cpu = m.cpus[c]!;
  if (cpu.loadedMm === next) {
    // Another thread of the same mm needs no flush; only a CPU coming back
    // from lazy TLB mode (running nothing of it) checks the tlb_gen.
    if (next !== null && cpu.running !== next && (cpu.asidGen[cpu.asid] as number) < next.tlbGen) {
      if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "flush pcid (switch_mm)", cpu.asid, -1, -1, false);
      cpu.tlb.flushAsid(cpu.asid);
      m.counters.tlbFlushesFull++;
      cpu.asidGen[cpu.asid] = next.tlbGen;
    }
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
  let slot = cpu.asidMm.indexOf(next);
  let needFlush: boolean;
  if (slot >= 0) needFlush = (cpu.asidGen[slot] as number) < next.tlbGen;
  else {
    slot = cpu.nextAsid;
    cpu.nextAsid = (cpu.nextAsid + 1) % cpu.asidMm.length;
    cpu.asidMm[slot] = next;
    needFlush = true;
  }
  if (needFlush) {
    if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "flush pcid (switch_mm)", slot, -1, -1, false);
    cpu.tlb.flushAsid(slot);
    m.counters.tlbFlushesFull++;
  }
  cpu.asidGen[slot] = next.tlbGen;
  next.cpumask[c] = 1;
  cpu.loadedMm = next;
  cpu.running = next;
  cpu.asid = slot;
}

// flush_tlb_func() on one CPU.
function flushTlbFunc(m: Machine, c: number, mm: Mm, start: number, end: number, strideShift: number, newGen: number): void {
  const cpu = m.cpus[c]!;
  if (cpu.running !== mm) {
    // A lazy CPU asked to flush leaves the mm for init_mm instead.
    switchMm(m, c, null);
    return;
  }
  const asid = cpu.asid;
  const localGen = cpu.asidGen[asid] as number;
  if (end === TLB_FLUSH_ALL || localGen !== newGen - 1) {
    if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "flush pcid", asid, -1, -1, false);
    cpu.tlb.flushAsid(asid);
    m.counters.tlbFlushesFull++;
  } else {
    const stride = 2 ** strideShift;
    if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "invlpg", asid, start, end, false);
    for (let a = start; a < end; a += stride) {
      cpu.tlb.invlpg(a / 4096, asid);
      m.counters.tlbFlushesPage++;
    }
  }
  cpu.asidGen[asid] = newGen;
}

const S_IPI = site("flush_tlb_mm_range", "IPI sent, not yet taken by the next CPU");

export function flushTlbMmRange(m: Machine, mm: Mm, start: number, end: number, strideShift: number, freedTables: boolean): void {
  const pf = m.prof;
  if (pf !== null) pf.enter("flush_tlb_mm_range");
  m.counters.tlbFlushRequests++;
  if (end !== TLB_FLUSH_ALL && (end - start) / 2 ** strideShift > m.config.tlbSinglePageFlushCeiling) {
    start = 0;
    end = TLB_FLUSH_ALL;
  }
  const newGen = ++mm.tlbGen;
  const cur = m.curCpu;
  for (let c = 0; c < m.cpus.length; c++) {
    if (mm.cpumask[c] === 0) continue;
    if (c !== cur) {
      // Lazy CPUs are skipped unless tables were freed: a lazy CPU may still
      // walk the old tables speculatively.
      if (m.cpus[c]!.running !== mm && !freedTables) continue;
      m.counters.ipis++;
      if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(cur, "ipi (flush_tlb_func)", -1, start, end, false, c);
      // Until that CPU takes the IPI it keeps translating with its old entries.
      if (m.il) m.il.point(S_IPI);
    }
    flushTlbFunc(m, c, mm, start, end, strideShift, newGen);
  }
  if (pf !== null) pf.exit();
}

// tlb_get_unmap_shift()
function unmapShift(tlb: MmuGather): number {
  if (tlb.clearedPtes) return 12;
  if (tlb.clearedPmds) return 21;
  if (tlb.clearedPuds) return 30;
  if (tlb.clearedP4ds) return 39;
  return 12;
}

export function tlbFlush(m: Machine, tlb: MmuGather): void {
  if (tlb.fullmm || tlb.needFlushAll) flushTlbMmRange(m, tlb.mm, 0, TLB_FLUSH_ALL, 12, tlb.freedTables);
  else flushTlbMmRange(m, tlb.mm, tlb.start, tlb.end, unmapShift(tlb), tlb.freedTables);
}

export function asidReachable(m: Machine, c: number, asid: number): Mm | null {
  const cpu = m.cpus[c]!;
  const mm = cpu.asidMm[asid] ?? null;
  if (mm === null || !mm.alive) return null;
  if (cpu.loadedMm === mm && cpu.asid === asid) {
    // Loaded but lazy with a stale generation: the switch back flushes.
    if (cpu.running !== mm && (cpu.asidGen[asid] as number) < mm.tlbGen) return null;
    return mm;
  }
  return (cpu.asidGen[asid] as number) < mm.tlbGen ? null : mm;
}

// arch_tlbbatch_should_defer() (arch/x86/include/asm/tlbflush.h): defer only
// when CPUs other than this one have the mm loaded (they need an IPI).
export function tlbbatchShouldDefer(m: Machine, mm: Mm): boolean {
  for (let c = 0; c < m.cpus.length; c++) if (c !== m.curCpu && mm.cpumask[c] !== 0) return true;
  return false;
}

// arch_tlbbatch_add_pending(): the mm's TLB generation moves on (a CPU that
// switches back to it flushes) and its CPUs join the batch's mask. No flush yet.
export function tlbbatchAddPending(m: Machine, batch: Uint8Array, mm: Mm, _start: number, _end: number): void {
  ++mm.tlbGen;
  for (let c = 0; c < m.cpus.length; c++) if (mm.cpumask[c] !== 0) batch[c] = 1;
}

const S_BATCH_IPI = site("arch_tlbbatch_flush", "IPI sent, not yet taken by the next CPU");

// arch_tlbbatch_flush() (arch/x86/mm/tlb.c): flush_tlb_multi() over the mask
// with a flush_tlb_info of no mm and TLB_FLUSH_ALL: every CPU in it that is
// not lazy (should_flush_tlb()) flushes its loaded mm in full unless its
// generation is already current (flush_tlb_func()); lazy CPUs catch up when
// they switch back.
export function tlbbatchFlush(m: Machine, batch: Uint8Array): void {
  m.counters.tlbFlushRequests++;
  const cur = m.curCpu;
  for (let c = 0; c < m.cpus.length; c++) {
    if (batch[c] === 0) continue;
    batch[c] = 0;
    const cpu = m.cpus[c]!;
    const mm = cpu.loadedMm;
    if (mm === null) continue;
    if (c !== cur) {
      if (cpu.running !== mm) continue;
      m.counters.ipis++;
      if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(cur, "ipi (arch_tlbbatch_flush)", -1, -1, -1, false, c);
      if (m.il) m.il.point(S_BATCH_IPI);
    } else if (cpu.running !== mm) {
      switchMm(m, c, null);
      continue;
    }
    const asid = cpu.asid;
    if ((cpu.asidGen[asid] as number) === mm.tlbGen) continue;
    if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "flush pcid", asid, -1, -1, false);
    cpu.tlb.flushAsid(asid);
    m.counters.tlbFlushesFull++;
    cpu.asidGen[asid] = mm.tlbGen;
  }
}
