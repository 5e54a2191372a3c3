// A counterexample as a timeline of text: each step's line, then what
// happened inside it (explain.ts), in the order it happened. A step inside
// which other threads ran (at a nested interleaving point: a DSB, an IPI, a
// contpte block being rewritten) is told up to that point, then theirs,
// then "continues" with the rest. Consecutive steps of one thread at the
// same site in which nothing happened (a retry loop, a lockless reader's
// loads) are merged into one line with a count.

import type { ModelEvent } from "../core/events.js";
import { type ExplainContext, explainEvents } from "./explain.js";
import type { TraceStep } from "./explore.js";

type Item = { seq: number; head: boolean; k: number; ev: ModelEvent | null };

export function traceLines(trace: readonly TraceStep[], ctx: ExplainContext): string[] {
  const out: string[] = [];
  const recorded = trace.every((s) => s.start >= 0);
  // Without a recording (a replay from an older file) the steps are told by
  // the state compared before and after each.
  if (!recorded) {
    for (const s of trace) {
      out.push(head(s, ""));
      for (const ch of s.changes) out.push(`${" ".repeat(14)}${"  ".repeat(s.depth)}${ch}`);
    }
    return out;
  }
  const items: Item[] = [];
  trace.forEach((s, k) => {
    items.push({ seq: s.start, head: true, k, ev: null });
    for (const e of s.events) items.push({ seq: e.seq, head: false, k, ev: e });
  });
  // A step begins at the seq its first event gets: the head goes first.
  items.sort((a, b) => a.seq - b.seq || (a.head === b.head ? a.k - b.k : a.head ? -1 : 1));
  let cur = -1;
  let buf: ModelEvent[] = [];
  const flush = () => {
    if (cur < 0 || buf.length === 0) return;
    const pad = `${" ".repeat(14)}${"  ".repeat((trace[cur] as TraceStep).depth)}`;
    for (const line of explainEvents(buf, ctx)) out.push(pad + line);
    buf = [];
  };
  for (let i = 0; i < items.length; i++) {
    const it = items[i] as Item;
    if (it.head) {
      flush();
      const s = trace[it.k] as TraceStep;
      // Merge a run of steps alike: quiet ones, or ones that only store
      // entries (a zap's loads of successive PTEs), whose stores then merge.
      const kind = (t: TraceStep) => (t.events.length === 0 ? 0 : t.events.every((e) => e.kind === "entry") ? 1 : 2);
      const k0 = kind(s);
      let j = it.k;
      let count = 1;
      const merged: ModelEvent[] = [];
      let at = i + 1;
      while (k0 < 2 && at < items.length) {
        const nx = items[at] as Item;
        if (!nx.head) {
          if (nx.k !== j) break;
          merged.push(nx.ev as ModelEvent);
          at++;
          continue;
        }
        const t = trace[nx.k] as TraceStep;
        if (kind(t) !== k0 || t.thread !== s.thread || t.site !== s.site || t.op !== s.op || t.depth !== s.depth) break;
        j = nx.k;
        count++;
        at++;
      }
      if (count === 1) {
        out.push(head(s, ""));
        cur = it.k;
        continue;
      }
      // The run ends where the last merged step's own events end.
      out.push(head(s, ` ×${count}`, (trace[j] as TraceStep).n));
      cur = j;
      buf = merged;
      i = at - 1;
      continue;
    }
    if (it.k !== cur) {
      flush();
      const s = trace[it.k] as TraceStep;
      out.push(`${`(${s.n})`.padStart(4)}  ${s.thread.padEnd(6)} CPU${s.cpu}  ${"  ".repeat(s.depth)}[${s.op}] ... continues`);
      cur = it.k;
    }
    buf.push(it.ev as ModelEvent);
  }
  flush();
  return out;
}

function head(s: TraceStep, suffix: string, last?: number): string {
  const n = last === undefined ? String(s.n) : `${s.n}-${last}`;
  return `${n.padStart(4)}  ${s.thread.padEnd(6)} CPU${s.cpu}  ${"  ".repeat(s.depth)}[${s.op}] ${s.site}${suffix}`;
}
