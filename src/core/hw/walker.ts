// A user load or store from a CPU: TLB lookup, else a hardware page walk
// (starting from the deepest paging-structure cache hit) that sets accessed
// and dirty bits atomically and fills the TLB; a missing or insufficient
// translation raises a page fault (do_user_addr_fault(), arch/x86/mm/fault.c).
// A permission fault also drops the faulting translation from the TLB, as x86
// hardware does, so a spurious fault needs no flush.
//
// The same walker also makes speculative walks (the explorer's hardware
// agent, speculativeFill()): a CPU may walk its loaded tables at any time
// and cache what it finds (Intel SDM vol. 3A 4.10.2.3 and 4.10.3.1; Arm ARM
// DDI 0487, "Speculative translation table walks" in the VMSA chapter):
// valid leaves only, with the Access flag set by the walk (x86 always;
// arm64 with TCR_EL1.HA, otherwise an entry with AF=0 is not cached), never
// the dirty state, and the table entries on the way in the walk caches.

import type { Machine } from "../machine.js";
import type { Mm } from "../mm/types.js";
import { idxAt, sizeName } from "../geometry.js";
import { TBL_FREE } from "../mm/pgtable.js";
import { TLB_D, TLB_W } from "./tlb.js";
import { site } from "../sync.js";

// Exported: a CPU in the middle of a walk runs nothing else (the explorer).
export const S_WALK = site("page walker", "table pointer loaded, next level not yet");

// TLB lookup, else a hardware walk and fill: true if the access completes,
// false if it raises a page fault.
export function translate(m: Machine, c: number, mm: Mm, addr: number, write: boolean): boolean {
  const cpu = m.cpus[c]!;
  if (cpu.running !== mm || cpu.loadedMm !== mm) m.arch.switchMm(m, c, mm);
  const vpn = Math.floor(addr / m.geo.pageSize);
  const tlb = cpu.tlb;
  const asid = cpu.asid;
  let i = tlb.lookup(vpn, asid);
  let perm = -1;
  if (i >= 0) perm = tlb.perm[i] as number;
  else {
    const h = tlb.lookupHuge(vpn, asid);
    if (h >= 0) {
      i = -2 - h;
      perm = tlb.hperm[h] as number;
    }
  }
  if (perm >= 0) {
    if (!write || (perm & (TLB_W | TLB_D)) === (TLB_W | TLB_D)) {
      m.counters.tlbHits++;
      if (m.il) accessPfn = i >= 0 ? (tlb.pfn[i] as number) : (tlb.hpfn[-2 - i] as number) + (vpn - tlb.hugeFirst(-2 - i));
      return true;
    }
    // A write through a clean writable entry re-walks to set D; a write
    // through a read-only entry faults. Either way the entry is replaced.
    if (i >= 0) tlb.tag[i] = 0;
    else tlb.htag[-2 - i] = 0;
  }
  m.counters.tlbMisses++;
  // x86 drops the paging-structure cache entries for a faulting address
  // (SDM 4.10.4.1); the model keeps them (README: known departures): a retry
  // through a stale walk-cache pointer faults again until a flush.
  return walk(m, c, mm, vpn, write, SPEC_NONE);
}

// walk()'s kinds: a user access; a speculative walk that fills; the same
// walk as a probe that changes nothing and says whether the fill would.
const SPEC_NONE = 0;
const SPEC_FILL = 1;
const SPEC_PROBE = 2;

// A speculative page walk by CPU c for page vpn of mm, whose tables c has
// loaded (CR3 / TTBR0 with mm's PCID or ASID): starts from the walk cache
// like any walk, caches the table entries it passes, sets the Access flag
// of a valid leaf as the hardware's update does (never the dirty state: the
// walk is not made for a store) and fills the TLB with the leaf's entry
// (base page, contiguous range or block). A leaf that is not valid, or old
// without hardware Access-flag management, fills nothing. The walk is one
// atomic step (no interleaving point); a cached pointer to a table freed
// since ends it (the free itself is checked: invariant 1). Returns whether
// a leaf entry was filled. Only the explorer calls it.
export function speculativeFill(m: Machine, c: number, mm: Mm, vpn: number): boolean {
  return walk(m, c, mm, vpn, false, SPEC_FILL);
}

// Whether speculativeFill() would change anything now: a walk-cache or TLB
// entry it would add or replace, or an Access flag it would set.
export function speculativeFillChanges(m: Machine, c: number, mm: Mm, vpn: number): boolean {
  return walk(m, c, mm, vpn, false, SPEC_PROBE);
}

// The frame the last successful access went to (set on every walk, and on
// TLB hits while the explorer runs): what a load reads and a store writes.
export let accessPfn = 0;

// Hardware walk and TLB fill; false means a page fault is raised (or, for
// a speculative walk, that no leaf entry is filled; a probe: that nothing
// would change).
function walk(m: Machine, c: number, mm: Mm, vpn: number, write: boolean, spec: number): boolean {
  const A = m.arch;
  const T = m.tables;
  const cpu = m.cpus[c]!;
  const tlb = cpu.tlb;
  const asid = cpu.asid;
  const G = m.geo;
  let level = A.levels - 1;
  let slot = mm.pgd;
  let changes = false; // a probe: a walk-cache entry the walk would add
  const p = tlb.lookupPsc(vpn, asid);
  if (p >= 0) {
    level = (tlb.plevel[p] as number) - 1;
    slot = T.slotOfPfn(tlb.ptbl[p] as number);
    m.counters.walkCacheHits++;
  }
  for (;;) {
    if (spec !== SPEC_NONE && (slot < 0 || T.state[slot] === TBL_FREE)) return false;
    const ei = slot * G.ptrs + idxAt(G, vpn, level);
    const v = T.get(ei);
    m.counters.walkSteps++;
    if (level > 0 && A.entryIsTable(v)) {
      const child = A.ptePfn(v);
      // Cache the table this entry points to (PML4E/PDPTE/PDE caches).
      const cached = level <= 3;
      if (spec === SPEC_PROBE) changes ||= cached && !tlb.hasPsc(vpn, asid, level, child);
      else if (cached) tlb.insertPsc(vpn, asid, level, child);
      slot = T.slotOfPfn(child);
      level--;
      // Explorer: other CPUs run between two loads of one walk. The walker
      // holds the pointer as its walk cache does, so what drops that entry
      // (a completed TLBI of walk caches, INVLPG, a full flush) restarts the
      // walk, as the architectures guarantee for walks in flight. (A
      // speculative walk is one step.)
      if (m.il !== null && cached && spec === SPEC_NONE) {
        m.il.point(S_WALK);
        const p = tlb.lookupPsc(vpn, asid);
        if (p >= 0) {
          level = (tlb.plevel[p] as number) - 1;
          slot = T.slotOfPfn(tlb.ptbl[p] as number);
        } else {
          level = A.levels - 1;
          slot = mm.pgd;
        }
        if (slot < 0 || T.state[slot] === TBL_FREE) {
          m.violations.push({
            invariant: "walk-freed-table",
            cpu: c,
            addr: vpn * G.pageSize,
            message: `CPU${c}'s page walk for 0x${(vpn * G.pageSize).toString(16)} goes on into a page table that was freed while it walked (a cached table pointer survived its table)`,
          });
          return false;
        }
      }
      continue;
    }
    const perm = A.leafPerm(v);
    if (perm < 0) return spec === SPEC_PROBE && changes;
    if (write && (perm & TLB_W) === 0) return false;
    const n = A.hwMkyoungDirty(v, write);
    // Access flag or dirty state not managed by hardware: fault (a
    // speculative walk caches nothing for an old entry).
    if (n < 0) return spec === SPEC_PROBE && changes;
    if (spec === SPEC_PROBE && (changes || n !== v)) return true;
    if (n !== v) {
      T.set(ei, n);
      m.counters.hwAdUpdates++;
      m.counters.pteAtomics++;
    }
    const nperm = A.leafPerm(n);
    const shift = A.tlbEntryShift(n, level);
    if (shift === G.pageShift) {
      const pfn = A.ptePfn(n);
      if (spec === SPEC_PROBE) return !tlb.holds(vpn, asid, pfn, nperm);
      if (spec === SPEC_NONE) accessPfn = pfn;
      if (tlb.conflictMode !== 0) checkConflict(m, c, vpn, shift, pfn, asid);
      tlb.insert(vpn, asid, pfn, nperm);
    } else {
      // The entry covers the naturally aligned 2^(shift-PAGE_SHIFT) pages
      // around vpn (a block, or a contiguous range filled from one of its PTEs).
      const pages = 2 ** (shift - G.pageShift);
      const off = vpn % pages;
      const pfnHere = level === 0 ? A.ptePfn(n) : A.ptePfn(n) + (vpn % (G.span[level] as number));
      if (spec === SPEC_PROBE) return !tlb.holdsHuge(vpn, asid, shift, pfnHere - off, nperm);
      if (spec === SPEC_NONE) accessPfn = pfnHere;
      if (tlb.conflictMode !== 0) checkConflict(m, c, vpn - off, shift, pfnHere - off, asid);
      tlb.insertHuge(vpn, asid, shift, pfnHere - off, nperm);
    }
    return true;
  }
}

// A fill that overlaps an entry of the same ASID with another output address
// or size: the Arm ARM allows a TLB conflict abort (or, without BBML2, an
// amalgamated translation). Reported as a violation; the fill proceeds.
function checkConflict(m: Machine, c: number, vpnFirst: number, shift: number, pfnFirst: number, asid: number): void {
  const tlb = m.cpus[c]!.tlb;
  const PS = m.geo.pageSize;
  const k = tlb.findConflict(vpnFirst, shift, pfnFirst, asid);
  if (k === -1) return;
  m.counters.tlbConflicts++;
  let what: string;
  if (k >= 0) what = `a ${sizeName(m.geo.pageShift)} entry for 0x${(tlb.vpnOfKey(tlb.tag[k] as number) * PS).toString(16)} -> pfn ${tlb.pfn[k]}`;
  else {
    const h = -2 - k;
    what = `a ${sizeName(tlb.hshift[h] as number)} entry for 0x${(tlb.hugeFirst(h) * PS).toString(16)} -> pfn ${tlb.hpfn[h]}`;
  }
  m.violations.push({
    invariant: "tlb-conflict",
    cpu: c,
    addr: vpnFirst * PS,
    message: `CPU${c} TLB conflict (ASID ${asid}): filling a ${sizeName(shift)} entry for 0x${(vpnFirst * PS).toString(16)} -> pfn ${pfnFirst} overlaps ${what}`,
  });
}
