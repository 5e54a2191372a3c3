// What the web view draws of a machine: a process's page-table tree one
// table at a time (the view expands tables on demand: a touched gigabyte has
// thousands of PTE tables), the entries of each CPU's TLB and walk caches,
// and the folio behind a mapped page. Reads the typed arrays of TableStore
// (mm/pgtable.ts), Tlb (hw/tlb.ts) and PhysMem (mm/physmem.ts) and changes
// nothing. No Node or DOM APIs.

import { pteValidCont } from "../core/arch/arm64/pgtable.js";
import { TLB_D, TLB_U, TLB_W, TLB_X } from "../core/hw/tlb.js";
import type { Machine } from "../core/machine.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SHMEM, PG_SWAPBACKED, PG_ZERO } from "../core/mm/physmem.js";
import type { Mm } from "../core/mm/types.js";

export type EntryKind = "table" | "huge" | "page" | "swap" | "migration" | "other";

/** A folio as the view shows it: head PFN, pages, refcount, the page's mapcount, flags. */
export interface FolioView {
  head: number;
  pages: number;
  refcount: number;
  mapcount: number; // of the mapped page (PTE mappings)
  entireMapcount: number; // PMD mappings of the folio
  flags: string[];
}

/** A non-none entry of a page table. */
export interface EntryView {
  index: number;
  va: number; // first address it maps
  level: number; // 0 = PTE
  kind: EntryKind;
  value: number; // the model's packed value
  desc: string; // Arch.describeEntry(), flags decoded for the architecture
  pfn: number; // table, page or folio PFN; -1 for swap entries
  childSlot: number; // kind "table": the child's TableStore slot, else -1
  cont: boolean; // arm64: valid entry with PTE_CONT (part of a contpte block)
  folio: FolioView | null;
}

export interface TableView {
  slot: number;
  level: number;
  levelName: string;
  va: number; // first address the table covers
  pfn: number;
  entries: EntryView[]; // non-none only, by index
}

export function levelName(m: Machine, level: number): string {
  if (level === m.arch.levels - 1) return "PGD";
  return ["PTE", "PMD", "PUD", "P4D"][level] ?? `L${level}`;
}

export function folioView(m: Machine, pfn: number): FolioView | null {
  const P = m.phys;
  if (!(pfn > 0 && pfn < P.cap) || P.isFree(pfn)) return null;
  const head = P.folioHead(pfn);
  const f = P.flags[head] as number;
  const flags: string[] = [];
  if (f & PG_ZERO) flags.push("zero");
  if (f & PG_ANON) flags.push("anon");
  if (f & PG_SHMEM) flags.push("shmem");
  else if (!(f & (PG_ANON | PG_ZERO))) flags.push("file");
  if ((P.flags[pfn] as number) & PG_ANON_EXCLUSIVE) flags.push("exclusive");
  if (f & PG_DIRTY) flags.push("dirty");
  if (f & PG_ANON && !(f & PG_SWAPBACKED)) flags.push("lazyfree");
  if (P.pins.has(head)) flags.push(`pinned×${P.pins.get(head)}`);
  return {
    head,
    pages: 2 ** (P.order[head] as number),
    refcount: P.ref[head] as number,
    mapcount: P.mapcount[pfn] as number,
    entireMapcount: P.entireMapcount(head),
    flags,
  };
}

// The table in `slot`, at `level`, mapping from `va`.
export function tableView(m: Machine, slot: number, level: number, va: number): TableView {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const arm64 = A.name === "arm64";
  const span = (G.span[level] as number) * G.pageSize;
  const e = T.chunkOf(slot);
  const b = T.base(slot);
  const entries: EntryView[] = [];
  for (let i = 0; i < G.ptrs; i++) {
    const v = e[b + i] as number;
    if (v === 0) continue;
    const ev: EntryView = {
      index: i,
      va: va + i * span,
      level,
      kind: "other",
      value: v,
      desc: A.describeEntry(v),
      pfn: -1,
      childSlot: -1,
      cont: false,
      folio: null,
    };
    if (level > 0 && A.entryIsTable(v)) {
      ev.kind = "table";
      ev.pfn = A.ptePfn(v);
      ev.childSlot = T.slotOfPfn(ev.pfn);
    } else if (level > 0 && A.entryIsLeaf(v)) {
      ev.kind = "huge";
      ev.pfn = A.ptePfn(v);
      ev.folio = folioView(m, ev.pfn);
    } else if (level > 0 && A.isMigrationPmd(v)) {
      ev.kind = "migration";
      ev.pfn = A.migrationPfn(v);
    } else if (level === 0 && A.ptePresent(v)) {
      ev.kind = "page";
      ev.pfn = A.ptePfn(v);
      ev.cont = arm64 && pteValidCont(v);
      ev.folio = folioView(m, ev.pfn);
    } else if (level === 0 && A.isMigrationPte(v)) {
      ev.kind = "migration";
      ev.pfn = A.migrationPfn(v);
    } else if (level === 0 && A.isSwapPte(v)) ev.kind = "swap";
    entries.push(ev);
  }
  return { slot, level, levelName: levelName(m, level), va, pfn: T.pfn[slot] as number, entries };
}

export function pgdView(m: Machine, mm: Mm): TableView {
  return tableView(m, mm.pgd, m.arch.levels - 1, 0);
}

/** Counts over a whole tree: tables per level (PGD first) and leaf entries by kind. */
export interface TreeStats {
  tables: { level: string; count: number }[];
  leaves: Record<Exclude<EntryKind, "table">, number>;
  cont: number;
}

export function treeStats(m: Machine, mm: Mm): TreeStats {
  const A = m.arch;
  const tables = new Array<number>(A.levels).fill(0);
  const leaves = { huge: 0, page: 0, swap: 0, migration: 0, other: 0 };
  let cont = 0;
  const visit = (t: TableView) => {
    tables[t.level] = (tables[t.level] as number) + 1;
    for (const e of t.entries) {
      if (e.kind === "table") visit(tableView(m, e.childSlot, t.level - 1, e.va));
      else leaves[e.kind]++;
      if (e.cont) cont++;
    }
  };
  visit(pgdView(m, mm));
  return { tables: tables.map((count, l) => ({ level: levelName(m, l), count })).reverse(), leaves, cont };
}

/** A TLB or walk-cache entry of one CPU. */
export interface TlbEntryView {
  kind: "page" | "large" | "walk"; // base-page TLB, large-page TLB (PMD/PUD leaves, arm64 contpte blocks), walk cache
  asid: number;
  va: number;
  bytes: number; // what the entry covers
  pfn: number; // page (first page of a huge entry) or, for "walk", the table it points to
  perm: string; // "w d x u" letters held, "" for walk-cache entries
  level: number; // walk cache: the level of the cached entry (1 = PMD -> PTE table)
  mm: number; // id of the mm the ASID belongs to and may still use it, 0 if none
}

function permText(p: number): string {
  return `${p & TLB_W ? "w" : "-"}${p & TLB_D ? "d" : "-"}${p & TLB_X ? "x" : "-"}${p & TLB_U ? "u" : "-"}`;
}

export function tlbEntries(m: Machine, cpu: number): TlbEntryView[] {
  const t = (m.cpus[cpu] as Machine["cpus"][number]).tlb;
  const PS = m.geo.pageSize;
  const out: TlbEntryView[] = [];
  const mmOf = (asid: number, walk: boolean) => m.arch.asidReachable(m, cpu, asid, walk)?.id ?? 0;
  for (let i = 0; i < t.tag.length; i++) {
    const k = t.tag[i] as number;
    if (k === 0) continue;
    const asid = t.asidOfKey(k);
    out.push({
      kind: "page",
      asid,
      va: t.vpnOfKey(k) * PS,
      bytes: PS,
      pfn: t.pfn[i] as number,
      perm: permText(t.perm[i] as number),
      level: 0,
      mm: mmOf(asid, false),
    });
  }
  for (let i = 0; i < t.htag.length; i++) {
    const k = t.htag[i] as number;
    if (k === 0) continue;
    const asid = t.asidOfKey(k);
    const bytes = 2 ** (t.hshift[i] as number);
    out.push({
      kind: "large",
      asid,
      va: t.hugeFirst(i) * PS,
      bytes,
      pfn: t.hpfn[i] as number,
      perm: permText(t.hperm[i] as number),
      level: 0,
      mm: mmOf(asid, false),
    });
  }
  for (let i = 0; i < t.ptag.length; i++) {
    const k = t.ptag[i] as number;
    if (k === 0) continue;
    const asid = t.asidOfKey(k);
    const level = t.plevel[i] as number;
    const span = t.pscSpan[level] as number;
    out.push({ kind: "walk", asid, va: t.vpnOfKey(k) * span * PS, bytes: span * PS, pfn: t.ptbl[i] as number, perm: "", level, mm: mmOf(asid, true) });
  }
  const order = { page: 0, large: 1, walk: 2 };
  return out.sort((a, b) => order[a.kind] - order[b.kind] || a.asid - b.asid || a.va - b.va || a.level - b.level);
}

export const hex = (a: number): string => `0x${a.toString(16)}`;

/** Consecutive entries merged: same kind, ASID, mm, permissions and size, contiguous in VA and PFN. */
export interface TlbRun extends TlbEntryView {
  count: number;
}

// A CPU's TLB as runs: a 64M touch leaves 1,536 entries that are a handful
// of runs (walk-cache entries point to tables, not consecutive pages, and
// stay single).
export function tlbRuns(entries: TlbEntryView[], pageSize: number): TlbRun[] {
  const out: TlbRun[] = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (
      last !== undefined &&
      e.kind !== "walk" &&
      last.kind === e.kind &&
      last.asid === e.asid &&
      last.mm === e.mm &&
      last.perm === e.perm &&
      last.bytes === e.bytes &&
      e.va === last.va + last.count * e.bytes &&
      e.pfn === last.pfn + (last.count * e.bytes) / pageSize
    )
      last.count++;
    else out.push({ ...e, count: 1 });
  }
  return out;
}
