// Speculative TLB fills as explorer choices (explore.speculate, --speculate
// N): which pages a CPU's hardware agent may walk and cache on its own. A
// CPU may walk the tables it has loaded at any moment and cache any valid
// translation it finds, with the Access flag the walk sets (Intel SDM vol.
// 3A 4.10.2.3 "Details of TLB Use" and 4.10.3.1 on paging-structure
// caches; Arm ARM DDI 0487, VMSA: translation table walks may be made
// speculatively; herd's V2I-load-DSB-ISB, docs/litmus.md). The walk itself
// is the model's walker (speculativeFill(), src/core/hw/walker.ts); this
// file picks the candidates and names them for the execution.
//
// Candidates, a fixed list per execution (so a choice is a number that a
// replay token can carry): for each range a concurrent step names (munmap,
// madvise, mprotect, touch, lockless, mremap, reclaim, migrate; in
// scenario order; if there is none, each region the set-up maps), up to
// MAX_RANGES ranges, four pages: the range's first and last page, and on either side
// of the first PMD boundary inside it (where a PTE table ends). The range is
// resolved to an address when the choice is offered, through the process
// and region names, so a forked child's or an mremapped region's pages are
// found where they are then. Which CPUs: those with the mm's tables loaded
// (Cpu.loadedMm, the model's mm_cpumask), lazy ones included (x86 keeps CR3
// and the PCID of the mm a kernel thread borrows, and its walks may use
// them: the reason flush_tlb_mm_range() IPIs lazy CPUs when tables are
// freed, arch/x86/mm/tlb.c). A CPU that switched away keeps the entries it
// tagged with the mm's PCID or ASID, but its walks use the tables it has
// loaded now: they cannot make new entries for the old mm. No Node APIs.

import type { Mm } from "../core/mm/types.js";
import { site } from "../core/sync.js";
import type { Runner } from "../run/runner.js";
import type { Scenario, Step } from "../scenario/types.js";

// The trace's site for a speculative walk. Defined after every kernel site
// (this module is imported last by explore.ts), so the numbers of those,
// which ptlab hunt's coverage keys on, do not move.
export const S_SPEC = site("page walker", "speculative walk and TLB fill");

export const MAX_RANGES = 6;
const PAGES_PER_RANGE = 4;

interface SpecRange {
  thread: string; // the step's thread (its process, unless `process` names one)
  process: string | null;
  region: string;
  offset: number;
  length: number; // Infinity: to the region's end
}

// What the execution needs: candidates by index, resolved now.
export interface Speculation {
  budget: number; // fills per execution
  slots: number; // candidates (per CPU)
  site: number;
  resolve(k: number): { mm: Mm; vpn: number } | null;
  describe(k: number): string;
}

// The ranges of a scenario, in candidate order.
export function specRanges(sc: Scenario): SpecRange[] {
  const out: SpecRange[] = [];
  const seen = new Set<string>();
  const add = (r: SpecRange) => {
    const key = JSON.stringify(r, (_k, v) => (v === Number.POSITIVE_INFINITY ? "inf" : v));
    if (out.length >= MAX_RANGES || seen.has(key)) return;
    seen.add(key);
    out.push(r);
  };
  for (const s of sc.concurrent ?? []) {
    const range = stepRange(s);
    if (range !== null) add(range);
  }
  const walkSetup = (steps: Step[]) => {
    for (const s of steps) {
      if (s.op === "repeat") walkSetup(s.steps);
      else if (s.op === "mmap") add({ thread: s.thread, process: null, region: s.region, offset: 0, length: Number.POSITIVE_INFINITY });
    }
  };
  // Only when the concurrent steps name no range (fork, exit, truncate):
  // every page of the set-up's regions is a candidate then.
  if (out.length === 0) walkSetup(sc.steps);
  return out;
}

function stepRange(s: Step): SpecRange | null {
  switch (s.op) {
    case "munmap":
    case "madvise":
    case "mprotect":
    case "touch":
      return { thread: s.thread, process: null, region: s.region, offset: s.offset, length: s.length ?? Number.POSITIVE_INFINITY };
    case "reclaim":
    case "migrate":
    case "khugepaged":
      return { thread: s.thread, process: s.process ?? null, region: s.region, offset: s.offset, length: s.length ?? Number.POSITIVE_INFINITY };
    case "lockless":
      return { thread: s.thread, process: null, region: s.region, offset: s.offset, length: 1 };
    case "mremap":
      return { thread: s.thread, process: null, region: s.region, offset: 0, length: Number.POSITIVE_INFINITY };
    default:
      return null;
  }
}

// The candidates of one execution over its runner (processes and regions as
// they are when a choice is offered).
export function speculation(sc: Scenario, r: Runner, budget: number): Speculation {
  const ranges = specRanges(sc);
  const m = r.m;
  const ps = m.geo.pageSize;
  const pmd = (m.geo.span[1] as number) * ps;
  const resolveAddr = (k: number): { mm: Mm; addr: number; name: string } | null => {
    const g = ranges[Math.floor(k / PAGES_PER_RANGE)] as SpecRange;
    const pn = g.process ?? r.threadProc.get(g.thread);
    const p = pn === undefined ? undefined : r.procs.get(pn);
    if (p === undefined || !p.mm.alive) return null;
    const reg = p.regions.get(g.region);
    if (reg === undefined || g.offset >= reg.len) return null;
    const start = reg.start + g.offset;
    const end = start + Math.min(g.length, reg.len - g.offset);
    const first = Math.floor(start / ps) * ps;
    const last = Math.ceil(end / ps) * ps - ps;
    const boundary = (Math.floor(start / pmd) + 1) * pmd;
    let addr: number;
    switch (k % PAGES_PER_RANGE) {
      case 0:
        addr = first;
        break;
      case 1:
        addr = last;
        break;
      case 2:
        addr = boundary - ps;
        break;
      default:
        addr = boundary;
    }
    if (addr < first || addr > last) return null;
    return { mm: p.mm, addr, name: `${p.name}:${g.region}+0x${(addr - reg.start).toString(16)}` };
  };
  return {
    budget,
    slots: ranges.length * PAGES_PER_RANGE,
    site: S_SPEC,
    resolve(k) {
      const a = resolveAddr(k);
      return a === null ? null : { mm: a.mm, vpn: a.addr / ps };
    },
    describe(k) {
      const a = resolveAddr(k);
      return a === null ? "speculative walk" : `speculative walk ${a.name} (0x${a.addr.toString(16)})`;
    },
  };
}
