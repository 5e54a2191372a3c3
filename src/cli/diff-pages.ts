// Per-page comparison for `ptlab diff-kernel`: at a report step, the state of
// every page of the scenario's regions as the host kernel shows it
// (/proc/PID/pagemap; as root also /proc/kpageflags and /proc/kpagecount of
// the mapped frame) next to what the model's page tables and struct pages say.
//
// Compared, where the model states it exactly:
//   present / swapped / none   pagemap bits 63 and 62
//   file                       bit 61 (page cache, shmem, the huge zero page)
//   exclusive                  bit 56: folio_precise_page_mapcount() == 1
//                              (CONFIG_PAGE_MAPCOUNT; a PMD mapping asks the
//                              head page, as pagemap_pmd_range_thp() does)
//   thp, dirty, swapcache      KPF_THP (any large anon/file folio), KPF_DIRTY
//                              (PG_dirty of the folio), KPF_SWAPCACHE (root)
//   mapcount                   /proc/kpagecount (root)
// Not compared: soft-dirty (bit 55: the model has no VM_SOFTDIRTY or
// clear_refs, and kernels without CONFIG_MEM_SOFT_DIRTY report 0),
// PG_referenced/PG_active/PG_lru (no LRU in the model), swap offsets (slot
// allocation differs), PFNs. In a file-backed VMA (shmem included) only pages
// that are anon or swapped on either side are compared: the kernel's file
// read-ahead and fault-around map page-cache pages the model does not.

import type { Machine } from "../core/machine.js";
import { PG_ANON, PG_DIRTY, PG_ZERO } from "../core/mm/physmem.js";
import type { Mm } from "../core/mm/types.js";
import { pmdOffset } from "../core/mm/walk.js";
import { type HostPageRun, KPF_DIRTY, KPF_SWAPCACHE, KPF_THP, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT, PM_SWAP } from "../host/helper.js";

// A page's state as one number.
export const S_PRESENT = 1;
export const S_SWAP = 2;
export const S_FILE = 4;
export const S_EXCL = 8;
export const S_KNOWN = 16; // kpageflags/kpagecount read (present pages, root)
export const S_THP = 32;
export const S_DIRTY = 64;
export const S_SWAPCACHE = 128;
const KPC_SHIFT = 256; // mapcount * 256

export function hostState(r: HostPageRun): number {
  let s = 0;
  if ((r.flags & PM_PRESENT) !== 0) s |= S_PRESENT;
  else if ((r.flags & PM_SWAP) !== 0) s |= S_SWAP;
  if ((r.flags & PM_PRESENT) !== 0) {
    if ((r.flags & PM_FILE) !== 0) s |= S_FILE;
    if ((r.flags & PM_MMAP_EXCLUSIVE) !== 0) s |= S_EXCL;
  }
  if ((s & S_PRESENT) !== 0 && r.kpf !== undefined && r.kpc !== undefined) {
    s |= S_KNOWN;
    const bit = (b: number) => ((r.kpf as bigint) >> BigInt(b)) & 1n;
    if (bit(KPF_THP) === 1n) s |= S_THP;
    if (bit(KPF_DIRTY) === 1n) s |= S_DIRTY;
    if (bit(KPF_SWAPCACHE) === 1n) s |= S_SWAPCACHE;
    s += r.kpc * KPC_SHIFT;
  }
  return s;
}

// The host's runs over [start, start + n pages) as one state per page
// (pages the runs do not cover are none).
export function hostStates(runs: readonly HostPageRun[], start: number, n: number, pageSize: number): Float64Array {
  const out = new Float64Array(n);
  for (const r of runs) {
    const first = Math.max(0, (r.start - start) / pageSize);
    const last = Math.min(n, (r.start - start) / pageSize + r.npages);
    if (first >= last) continue;
    out.fill(hostState(r), first, last);
  }
  return out;
}

// The model's state of the page at addr in mm, read from its page tables
// without counting the reads.
export function modelStates(m: Machine, mm: Mm, start: number, n: number): Float64Array {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const out = new Float64Array(n);
  const reads = m.counters.pteReads;
  try {
    for (let k = 0; k < n; ) {
      const a = start + k * G.pageSize;
      const inPmd = (a % G.pmdSize) / G.pageSize;
      const span = Math.min(n - k, G.pmdNr - inPmd);
      const pi = pmdOffset(m, mm, a, false);
      const v = pi < 0 ? 0 : T.get(pi);
      if (v === 0 || (!A.entryIsLeaf(v) && !A.entryIsTable(v))) {
        k += span;
        continue;
      }
      if (A.entryIsLeaf(v)) {
        const head = A.ptePfn(v);
        for (let j = 0; j < span; j++) out[k + j] = presentState(m, head + inPmd + j, head);
        k += span;
        continue;
      }
      const slot = T.slotOfPfn(A.ptePfn(v));
      const e = T.chunkOf(slot);
      const base = T.base(slot);
      for (let j = 0; j < span; j++) {
        const x = e[base + inPmd + j] as number;
        if (x === 0) continue;
        if (A.ptePresent(x)) out[k + j] = presentState(m, A.ptePfn(x), -1);
        else if (A.isSwapPte(x)) out[k + j] = S_SWAP;
      }
      k += span;
    }
  } finally {
    m.counters.pteReads = reads;
  }
  return out;
}

// pmdHead >= 0: the page is mapped by a PMD whose first page is pmdHead.
function presentState(m: Machine, pfn: number, pmdHead: number): number {
  const phys = m.phys;
  const head = phys.folioHead(pfn);
  const hf = phys.flags[head] as number;
  const large = (phys.order[head] as number) > 0;
  let s = S_PRESENT | S_KNOWN;
  if ((hf & PG_ZERO) !== 0) {
    // The zero page (vm_normal_page() is NULL: neither file nor exclusive)
    // or the huge zero folio (not anon: file); never rmapped, mapcount 0.
    if (large) s |= S_FILE | S_THP;
    return s;
  }
  if ((hf & PG_ANON) === 0) s |= S_FILE;
  const mapcount = (phys.mapcount[pfn] as number) + phys.entireMapcount(head);
  const exclPage = pmdHead >= 0 ? pmdHead : pfn;
  if ((phys.mapcount[exclPage] as number) + phys.entireMapcount(head) === 1) s |= S_EXCL;
  if (large) s |= S_THP;
  if ((hf & PG_DIRTY) !== 0) s |= S_DIRTY;
  if (m.swap?.slotOf.has(head)) s |= S_SWAPCACHE;
  return s + mapcount * KPC_SHIFT;
}

export function describeState(s: number): string {
  if ((s & S_PRESENT) === 0) return (s & S_SWAP) !== 0 ? "swapped" : "none";
  const w = ["present", (s & S_FILE) !== 0 ? "file" : "anon"];
  if ((s & S_EXCL) !== 0) w.push("excl");
  if ((s & S_KNOWN) !== 0) {
    if ((s & S_THP) !== 0) w.push("thp");
    if ((s & S_DIRTY) !== 0) w.push("dirty");
    if ((s & S_SWAPCACHE) !== 0) w.push("swapcache");
    w.push(`mapcount=${Math.floor(s / KPC_SHIFT)}`);
  }
  return w.join(" ");
}

export interface PageMismatch {
  addr: number;
  region: string;
  offset: number;
  host: string;
  model: string;
}

export interface PageDiff {
  label: string;
  process: string;
  regions: string[];
  compared: number; // pages compared
  differ: number; // pages that differ
  first: PageMismatch[]; // the first few
  agree: boolean;
}

export const MAX_SHOWN = 5;

function anonOrSwapped(s: number): boolean {
  return (s & S_SWAP) !== 0 || ((s & S_PRESENT) !== 0 && (s & S_FILE) === 0);
}

// Compares one region's pages; `fileVma(addr)` says whether the model maps
// addr with a file-backed VMA (only anon or swapped pages compared there).
// Without kpageflags on the host side (not root) the model's are dropped too.
export function compareRegion(
  d: PageDiff,
  region: string,
  start: number,
  pageSize: number,
  host: Float64Array,
  model: Float64Array,
  fileVma: (addr: number) => boolean,
): void {
  for (let k = 0; k < host.length; k++) {
    const h = host[k] as number;
    let mv = model[k] as number;
    // Without kpageflags (not root) only the pagemap bits count.
    if ((h & S_KNOWN) === 0) mv %= S_KNOWN;
    const addr = start + k * pageSize;
    if (fileVma(addr) && !anonOrSwapped(h) && !anonOrSwapped(mv)) continue;
    d.compared++;
    if (h === mv) continue;
    d.differ++;
    d.agree = false;
    if (d.first.length < MAX_SHOWN) d.first.push({ addr, region, offset: k * pageSize, host: describeState(h), model: describeState(mv) });
  }
}
