// The recorder: a sink for every event kind, plus what the coarse sites of
// the event stream do not emit because they would sit on hot paths: each
// store to a page-table entry, each TLB and walk-cache fill and drop, each
// folio allocated and freed. It instruments one machine's stores while it is
// installed (instance methods swapped in, as TableStore.checkAccess() does for
// the explorer's checked mode), so a machine nobody records pays nothing.
// Meant for short runs that someone reads: a counterexample replayed for
// display, `ptlab run --events`, the web view. No Node APIs.

import { EV_ALL, EV_ENTRY, EV_FOLIO, EV_FRAMES_FREED, EV_PINS_RELEASED, EV_TLB_DROP, EV_TLB_FILL, type ModelEvent, type ModelSink } from "./events.js";
import type { Tlb } from "./hw/tlb.js";
import type { Machine } from "./machine.js";
import { PG_PAGETABLE } from "./mm/physmem.js";
import { TABLES_PER_CHUNK, TableStore } from "./mm/pgtable.js";

// What the explorer or a run was doing when the event came.
export interface RecordedEvent {
  seq: number; // order of emission over the whole recording
  ev: ModelEvent;
  fn?: string; // the innermost kernel function running (trackFunctions())
}

const TLB_METHODS = [
  "insert",
  "insertHuge",
  "insertPsc",
  "invlpg",
  "flushPsc",
  "flushAsid",
  "invalidateVa",
  "invalidateRange",
  "invalidateAsid",
  "invalidateAll",
] as const;

type TlbEntry = { asid: number; addr: number; size: number; level: number; pfn: number };

export class Recorder implements ModelSink {
  // The check events are for the checks; everything else is recorded.
  readonly mask = EV_ALL & ~(EV_FRAMES_FREED | EV_PINS_RELEASED);
  // Where events go now: the driver swaps it (per explorer step, per run step).
  target: RecordedEvent[] = [];
  private seq = 0;
  private readonly undo: (() => void)[] = [];
  // Table slot -> the mm and address its entry 0 maps (found by walking
  // every live mm's tree; walked again after a table entry changed).
  private owner = new Map<number, { mm: number; base: number }>();
  private ownersStale = true;
  private quiet = 0; // > 0 while the recorder itself reads the machine

  constructor(readonly m: Machine) {
    m.subscribe(this);
    this.undo.push(() => m.unsubscribe(this));
    this.instrumentTables();
    for (const cpu of m.cpus) this.instrumentTlb(cpu.id, cpu.tlb);
    this.instrumentPhys();
  }

  // Takes the instrumentation out; the machine runs as before.
  stop(): void {
    for (const u of this.undo.reverse()) u();
    this.undo.length = 0;
  }

  // The seq the next event will get.
  get next(): number {
    return this.seq;
  }

  event(e: ModelEvent): void {
    if (this.quiet > 0) return;
    const st = this.fnStack;
    if (st !== null && st.length > 0) this.target.push({ seq: this.seq++, ev: e, fn: st[st.length - 1] as string });
    else this.target.push({ seq: this.seq++, ev: e });
  }

  // Names each event's kernel function from the coarse enter()/exit()
  // points the model already has for --by-function (profile.ts): a
  // sequential run only (interleaved kernel paths would share one stack),
  // and only when no profiler is installed. A driver calls resetFunctions()
  // at each step, as a kernel error can leave frames open.
  private fnStack: string[] | null = null;
  trackFunctions(): boolean {
    const m = this.m;
    if (m.prof !== null || this.fnStack !== null) return false;
    const st: string[] = [];
    this.fnStack = st;
    m.prof = {
      enter: (fn: string) => {
        st.push(fn);
      },
      exit: () => {
        st.pop();
      },
    };
    this.undo.push(() => {
      m.prof = null;
      this.fnStack = null;
    });
    return true;
  }
  resetFunctions(): void {
    if (this.fnStack !== null) this.fnStack.length = 0;
  }

  // Puts wrap(the method as it is now) in place of obj[name] (an instance
  // method another instrument installed, else the prototype's), and how to
  // take it out again.
  private override<F extends (...a: never[]) => unknown>(obj: object, name: string, wrap: (orig: F) => F): void {
    const o = obj as Record<string, unknown>;
    const own = Object.hasOwn(obj, name);
    const prev = o[name] as F;
    o[name] = wrap(prev.bind(obj) as F);
    this.undo.push(() => {
      if (own) o[name] = prev;
      else delete o[name];
    });
  }

  private wants(bit: number): boolean {
    const b = this.m.events;
    return b !== null && (b.mask & bit) !== 0 && this.quiet === 0;
  }

  // ---- page-table entries ----------------------------------------------------

  private instrumentTables(): void {
    const T = this.m.tables;
    const raws = new WeakMap<object, Float64Array>();
    const ptrs = T.ptrs;
    const rec = this;
    // The view's own raw chunk, whoever made the view (checked mode too).
    let unchecked = (e: Float64Array) => e;
    this.override<(e: Float64Array) => Float64Array>(T, "unchecked", (orig) => {
      unchecked = orig;
      return (e) => orig(raws.get(e) ?? e);
    });
    this.override<(slot: number) => Float64Array>(T, "chunkOf", (chunkOf) => (slot) => {
      const view = chunkOf(slot);
      const first = Math.floor(slot / TABLES_PER_CHUNK) * TABLES_PER_CHUNK;
      const p = new Proxy(view, {
        get(t, k) {
          const v = Reflect.get(t, k);
          return typeof v === "function" ? v.bind(t) : v;
        },
        set(t, k, v) {
          if (typeof k === "string") {
            const i = +k;
            if (!Number.isNaN(i)) {
              const old = unchecked(t)[i] as number;
              t[i] = v;
              if (old !== v) rec.entry(first + Math.floor(i / ptrs), i % ptrs, old, v);
              return true;
            }
          }
          return Reflect.set(t, k, v);
        },
      });
      raws.set(p, view);
      return p;
    });
    this.override<(gi: number, v: number) => void>(T, "set", (set) => (gi, v) => {
      const slot = Math.floor(gi / ptrs);
      const old = unchecked(TableStore.prototype.chunkOf.call(T, slot))[gi % (ptrs * TABLES_PER_CHUNK)] as number;
      set(gi, v);
      if (old !== v) rec.entry(slot, gi % ptrs, old, v);
    });
  }

  private entry(slot: number, idx: number, old: number, v: number): void {
    const m = this.m;
    const T = m.tables;
    // The root's slot carries LVL_PGD whatever the number of levels; walks
    // count levels from levels - 1 down.
    const level = Math.min(T.level[slot] as number, m.arch.levels - 1);
    if (level > 0 && (m.arch.entryIsTable(old) || m.arch.entryIsTable(v))) this.ownersStale = true;
    if (!this.wants(EV_ENTRY)) return;
    const o = this.ownerOf(slot);
    const G = m.geo;
    this.event({
      kind: "entry",
      cpu: m.curCpu,
      table: slot,
      tablePfn: T.pfn[slot] as number,
      level,
      idx,
      old,
      new: v,
      mm: o === undefined ? 0 : o.mm,
      addr: o === undefined ? -1 : o.base + idx * (G.span[level] as number) * G.pageSize,
    });
  }

  private ownerOf(slot: number): { mm: number; base: number } | undefined {
    let o = this.owner.get(slot);
    if (o === undefined && this.ownersStale) {
      this.walkOwners();
      o = this.owner.get(slot);
    }
    return o;
  }

  private walkOwners(): void {
    const m = this.m;
    const A = m.arch;
    const T = m.tables;
    const G = m.geo;
    const raw = (slot: number) => T.unchecked(TableStore.prototype.chunkOf.call(T, slot));
    this.owner.clear();
    this.ownersStale = false;
    this.quiet++;
    try {
      for (const mm of m.mms) {
        if (!mm.alive) continue;
        const visit = (slot: number, level: number, base: number) => {
          this.owner.set(slot, { mm: mm.id, base });
          if (level === 0) return;
          const e = raw(slot);
          const b = T.base(slot);
          for (let i = 0; i < G.ptrs; i++) {
            const v = e[b + i] as number;
            if (v === 0 || !A.entryIsTable(v)) continue;
            const child = T.slotOfPfn(A.ptePfn(v));
            if (child >= 0 && !this.owner.has(child)) visit(child, level - 1, base + i * (G.span[level] as number) * G.pageSize);
          }
        };
        visit(mm.pgd, A.levels - 1, 0);
      }
    } finally {
      this.quiet--;
    }
  }

  // ---- TLBs ----------------------------------------------------------------------

  private instrumentTlb(cpu: number, tlb: Tlb): void {
    let depth = 0;
    for (const name of TLB_METHODS)
      this.override<(...a: unknown[]) => unknown>(tlb, name, (orig) => (...args) => {
        // A method calling another (invlpg() dropping walk caches) is
        // compared once, by the outermost call.
        if (depth > 0 || !this.wants(EV_TLB_FILL | EV_TLB_DROP)) return orig(...args);
        const before = copyTlb(tlb);
        depth++;
        let r: unknown;
        try {
          r = orig(...args);
        } finally {
          depth--;
        }
        this.tlbChanges(cpu, tlb, before);
        return r;
      });
  }

  // The entries a TLB operation dropped and filled, slot by slot against a
  // copy from before it; an entry that only moved to another slot (a
  // replacement's reshuffle) is neither.
  private tlbChanges(cpu: number, t: Tlb, b: TlbCopy): void {
    const G = this.m.geo;
    const PS = G.pageSize;
    const drops = new Map<string, TlbEntry>();
    const fills = new Map<string, TlbEntry>();
    const page = (tag: number, pfn: number, perm: number) => ({
      key: `p${tag}:${pfn}:${perm}`,
      e: { asid: t.asidOfKey(tag), addr: t.vpnOfKey(tag) * PS, size: PS, level: 0, pfn },
    });
    for (let i = 0; i < t.tag.length; i++) {
      const k0 = b.tag[i] as number;
      const k1 = t.tag[i] as number;
      if (k0 === k1 && b.pfn[i] === t.pfn[i] && b.perm[i] === t.perm[i]) continue;
      if (k0 !== 0) {
        const x = page(k0, b.pfn[i] as number, b.perm[i] as number);
        drops.set(x.key, x.e);
      }
      if (k1 !== 0) {
        const x = page(k1, t.pfn[i] as number, t.perm[i] as number);
        fills.set(x.key, x.e);
      }
    }
    const huge = (tag: number, shift: number, pfn: number, perm: number, first: number) => ({
      key: `h${tag}:${shift}:${pfn}:${perm}`,
      e: { asid: t.asidOfKey(tag), addr: first * PS, size: 2 ** shift, level: -1, pfn },
    });
    for (let i = 0; i < t.htag.length; i++) {
      const k0 = b.htag[i] as number;
      const k1 = t.htag[i] as number;
      if (k0 === k1 && b.hpfn[i] === t.hpfn[i] && b.hperm[i] === t.hperm[i] && b.hshift[i] === t.hshift[i]) continue;
      if (k0 !== 0) {
        const x = huge(k0, b.hshift[i] as number, b.hpfn[i] as number, b.hperm[i] as number, b.hfirst[i] as number);
        drops.set(x.key, x.e);
      }
      if (k1 !== 0) {
        const x = huge(k1, t.hshift[i] as number, t.hpfn[i] as number, t.hperm[i] as number, t.hugeFirst(i));
        fills.set(x.key, x.e);
      }
    }
    const walk = (tag: number, level: number, pfn: number) => {
      const span = (G.span[level] as number) * PS;
      return { key: `w${tag}:${level}:${pfn}`, e: { asid: t.asidOfKey(tag), addr: t.vpnOfKey(tag) * span, size: span, level, pfn } };
    };
    for (let i = 0; i < t.ptag.length; i++) {
      const k0 = b.ptag[i] as number;
      const k1 = t.ptag[i] as number;
      if (k0 === k1 && b.ptbl[i] === t.ptbl[i] && b.plevel[i] === t.plevel[i]) continue;
      if (k0 !== 0) {
        const x = walk(k0, b.plevel[i] as number, b.ptbl[i] as number);
        drops.set(x.key, x.e);
      }
      if (k1 !== 0) {
        const x = walk(k1, t.plevel[i] as number, t.ptbl[i] as number);
        fills.set(x.key, x.e);
      }
    }
    for (const [k, e] of drops) if (!fills.has(k)) this.event({ kind: "tlb-drop", cpu, ...e });
    for (const [k, e] of fills) if (!drops.has(k)) this.event({ kind: "tlb-fill", cpu, ...e });
  }

  // ---- folios ------------------------------------------------------------------

  private instrumentPhys(): void {
    const ph = this.m.phys;
    // Page-table pages are told by their own events (a table linked,
    // handed to RCU, freed), not as folios.
    let tableAlloc = 0;
    this.override<(order: number) => number>(ph, "alloc", (alloc) => (order) => {
      const pfn = alloc(order);
      if (pfn >= 0 && tableAlloc === 0 && this.wants(EV_FOLIO)) this.event({ kind: "folio-alloc", cpu: this.m.curCpu, pfn, order });
      return pfn;
    });
    this.override<(head: number, n?: number) => boolean>(ph, "folioPut", (put) => (head, n) => {
      const order = ph.order[head] as number;
      const table = ((ph.flags[head] as number) & PG_PAGETABLE) !== 0;
      const freed = put(head, n);
      if (freed && !table && this.wants(EV_FOLIO)) this.event({ kind: "folio-free", cpu: this.m.curCpu, pfn: head, order });
      return freed;
    });
    this.override<(level: number) => number>(this.m.tables, "alloc", (alloc) => (level) => {
      tableAlloc++;
      try {
        return alloc(level);
      } finally {
        tableAlloc--;
      }
    });
  }
}

// A TLB's arrays as they were before an operation (typed-array copies).
interface TlbCopy {
  tag: Float64Array;
  pfn: Float64Array;
  perm: Uint8Array;
  htag: Float64Array;
  hpfn: Float64Array;
  hperm: Uint8Array;
  hshift: Uint8Array;
  hfirst: Float64Array; // first base page of each large entry
  ptag: Float64Array;
  ptbl: Float64Array;
  plevel: Uint8Array;
}

function copyTlb(t: Tlb): TlbCopy {
  const hfirst = new Float64Array(t.htag.length);
  for (let i = 0; i < t.htag.length; i++) if (t.htag[i] !== 0) hfirst[i] = t.hugeFirst(i);
  return {
    tag: t.tag.slice(),
    pfn: t.pfn.slice(),
    perm: t.perm.slice(),
    htag: t.htag.slice(),
    hpfn: t.hpfn.slice(),
    hperm: t.hperm.slice(),
    hshift: t.hshift.slice(),
    hfirst,
    ptag: t.ptag.slice(),
    ptbl: t.ptbl.slice(),
    plevel: t.plevel.slice(),
  };
}
