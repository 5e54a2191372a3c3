// Counterexample steps told as what happened inside them: the events the
// recorder saw (core/record.ts) as short lines a kernel developer reads
// like an ftrace log. Runs of the same kind of store to one table, and of
// TLB drops on one CPU, are merged into one line each.

import type { ModelEvent } from "../core/events.js";
import { sizeName } from "../core/geometry.js";
import { lockKey } from "../core/sync.js";
import { lockName } from "./execution.js";

export interface ExplainContext {
  describeEntry(v: number): string; // the architecture's decoding of an entry
  entryIsTable(v: number): boolean;
  ptePfn(v: number): number;
  levels: number; // page-table levels (for the top level's name)
}

const hex = (a: number) => `0x${a.toString(16)}`;

function levelName(ctx: ExplainContext, level: number): string {
  if (level === ctx.levels - 1) return "PGD";
  return ["PTE", "PMD", "PUD", "P4D"][level] ?? "PGD";
}

function where(ev: Extract<ModelEvent, { kind: "entry" }>, ctx: ExplainContext): string {
  const l = levelName(ctx, ev.level);
  return ev.addr >= 0 ? `mm${ev.mm} ${l} ${hex(ev.addr)}` : `${l} ${ev.idx} of table pfn ${ev.tablePfn} (not linked)`;
}

function entryShape(ev: Extract<ModelEvent, { kind: "entry" }>): string {
  return ev.old === 0 ? "set" : ev.new === 0 ? "clear" : "change";
}

function entryLine(ev: Extract<ModelEvent, { kind: "entry" }>, ctx: ExplainContext, n: number): string {
  const table = (v: number) => ev.level > 0 && ctx.entryIsTable(v);
  const w = where(ev, ctx);
  const more = n > 1 ? ` and the next ${n - 1}` : "";
  if (ev.old === 0) return table(ev.new) ? `${w}: link table pfn ${ctx.ptePfn(ev.new)}` : `${w}${more}: set ${ctx.describeEntry(ev.new)}`;
  if (ev.new === 0) return table(ev.old) ? `${w}: clear (unlinks table pfn ${ctx.ptePfn(ev.old)})` : `${w}${more}: clear (was ${ctx.describeEntry(ev.old)})`;
  return `${w}${more}: ${ctx.describeEntry(ev.old)} -> ${ctx.describeEntry(ev.new)}`;
}

function tlbEntry(ev: Extract<ModelEvent, { kind: "tlb-fill" | "tlb-drop" }>): string {
  if (ev.level >= 1) return `walk-cache L${ev.level} ${hex(ev.addr)} -> table pfn ${ev.pfn}`;
  return `${sizeName(Math.log2(ev.size))} ${hex(ev.addr)} -> pfn ${ev.pfn}`;
}

function flushLine(ev: Extract<ModelEvent, { kind: "flush" }>): string {
  if (ev.to >= 0) return `${ev.op}: CPU${ev.cpu} -> CPU${ev.to}`;
  const asid = ev.asid >= 0 ? ` asid ${ev.asid}` : "";
  const range = ev.start >= 0 ? ` [${hex(ev.start)}, ${hex(ev.end)})` : ev.op.startsWith("dsb") ? "" : " (all)";
  const tail = ev.op.startsWith("dsb") ? ": the TLBIs it issued are now complete on every CPU" : ev.leafOnly ? ", last level only (walk caches kept)" : "";
  return `CPU${ev.cpu} ${ev.op}${asid}${range}${tail}`;
}

const LEVEL_BITS = ["PTEs", "PMDs", "PUDs", "P4Ds"];

function lockLine(ev: Extract<ModelEvent, { kind: "lock" }>): string {
  const name = lockName(lockKey(ev.lock, ev.id));
  switch (ev.op) {
    case "take":
      return `takes ${name}${ev.lock === 0 || ev.lock === 3 || ev.lock === 5 || ev.lock === 6 ? " for writing" : ""}`;
    case "take-read":
      return `takes ${name} for reading`;
    case "release":
      return `releases ${name}`;
    case "downgrade":
      return `downgrades ${name} from writing to reading`;
    default:
      return `fails to take ${name} (trylock)`;
  }
}

// One line per event, or per run of alike events.
export function explainEvents(events: readonly ModelEvent[], ctx: ExplainContext): string[] {
  const out: string[] = [];
  for (let i = 0; i < events.length; ) {
    const ev = events[i] as ModelEvent;
    if (ev.kind === "entry") {
      // A run: same table, consecutive entries, same kind of store.
      let j = i + 1;
      while (j < events.length) {
        const nx = events[j] as ModelEvent;
        const pv = events[j - 1] as typeof ev;
        if (nx.kind !== "entry" || nx.table !== ev.table || nx.idx !== pv.idx + 1 || entryShape(nx) !== entryShape(ev) || nx.level > 0) break;
        j++;
      }
      out.push(entryLine(ev, ctx, j - i));
      i = j;
      continue;
    }
    if (ev.kind === "tlb-drop" || ev.kind === "tlb-fill") {
      let j = i + 1;
      while (j < events.length && (events[j] as ModelEvent).kind === ev.kind && (events[j] as typeof ev).cpu === ev.cpu) j++;
      const group = events.slice(i, j) as (typeof ev)[];
      const asids = [...new Set(group.map((g) => g.asid))].join(",");
      const shown = group.slice(0, 6).map(tlbEntry).join("; ");
      const rest = group.length > 6 ? `; and ${group.length - 6} more` : "";
      out.push(`CPU${ev.cpu} TLB ${ev.kind === "tlb-fill" ? "fills" : "drops"} (asid ${asids}): ${shown}${rest}`);
      i = j;
      continue;
    }
    i++;
    switch (ev.kind) {
      case "flush":
        out.push(flushLine(ev));
        break;
      case "gather-flush": {
        const lv = LEVEL_BITS.filter((_, b) => (ev.levels & (1 << b)) !== 0).join("+") || "nothing";
        const range = ev.fullmm ? "the whole mm (fullmm)" : `[${hex(ev.start)}, ${hex(ev.end)})`;
        out.push(`mmu_gather flush of mm${ev.mm} ${range}: cleared ${lv}, freed_tables=${ev.freedTables ? "yes" : "no"}`);
        break;
      }
      case "table-rcu":
        out.push(`${levelName(ctx, ev.level)} table pfn ${ev.pfn} handed to RCU (${ev.via})`);
        break;
      case "table-free":
        out.push(`${levelName(ctx, ev.level)} table pfn ${ev.pfn} freed (${ev.via})`);
        break;
      case "fault":
        out.push(`page fault: ${ev.write ? "write" : "read"} of ${hex(ev.addr)} in mm${ev.mm} on CPU${ev.cpu}`);
        break;
      case "folio-alloc":
        out.push(`folio pfn ${ev.pfn} (order ${ev.order}) allocated`);
        break;
      case "folio-free":
        out.push(`folio pfn ${ev.pfn} (order ${ev.order}) freed`);
        break;
      case "lock":
        out.push(lockLine(ev));
        break;
      case "violation":
        out.push(`VIOLATION [${ev.invariant}] ${ev.message}`);
        break;
      default:
        break;
    }
  }
  return out;
}
