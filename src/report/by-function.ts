// Modelled cycles and counters by kernel function (`--by-function`,
// `--folded FILE`): a profiler the drivers install on a machine
// (Machine.prof, src/core/profile.ts), the perf-report-like table, its JSON
// form and folded stacks ("a;b;c 1234" lines, as flamegraph.pl, inferno and
// speedscope read them). No Node APIs; the CLI writes the files.
//
// How. The model's coarse kernel functions call enter()/exit()
// (docs/cost-table.md lists them); the driver opens a root frame per step,
// named after the syscall or user access it runs (root()), and runs kswapd
// and RCU callbacks under roots of their own (aside()). At every boundary the
// counters' growth since the previous boundary is charged to the innermost
// open frame, a node of the call tree keyed by its whole stack. So every
// count lands in exactly one node: the nodes' self counts sum to the run's
// counters, and their modelled cycles (the cost table applied to each node's
// counts) to the run's modelled cycles, the cost being linear in the counts.
// A function's total is the sum over the nodes whose stack contains it
// (once, however often it recurs), as perf report's "Children".
//
// The architecture's TLB flush entry points (tlb_flush(), flush_tlb_range(),
// flush_tlb_page(), flush_tlb_mm(), arch_tlbbatch_flush(),
// switch_mm_irqs_off()) are wrapped from outside: the profiled machine gets
// its own copy of the shared Arch object, so unprofiled machines and the
// core stay as they are.

import type { Arch } from "../core/arch/arch.js";
import { type CostTable, DEFAULT_COST_TABLE, modelledCycles } from "../core/cost.js";
import { type CounterName, Counters, snakeCase } from "../core/counters.js";
import type { Machine } from "../core/machine.js";
import type { FnProfiler } from "../core/profile.js";

const KEYS = Object.keys(new Counters()) as CounterName[];

// chargeInto(c, last, self): adds the growth of every counter of `c` since
// `last` to `self` and brings `last` up to date. Generated once with one
// statement per field: a loop over the names makes every access a keyed
// (megamorphic) load, and the profiler runs this at every enter() and exit().
// The names are Counters' own fields, identifiers.
const chargeInto = new Function(
  "c",
  "last",
  "self",
  KEYS.map((k) => `if (c.${k} !== last.${k}) { self.${k} += c.${k} - last.${k}; last.${k} = c.${k}; }`).join("\n"),
) as (c: Counters, last: Counters, self: Counters) => void;

// The frame of counts that arrive with no frame open (a driver that forgot a
// root would show here rather than lose them).
export const OUTSIDE = "[outside_steps]";

class Frame {
  readonly children = new Map<string, Frame>();
  readonly self = new Counters();
  constructor(
    readonly name: string,
    readonly parent: Frame | null,
  ) {}
  child(name: string): Frame {
    let f = this.children.get(name);
    if (f === undefined) {
      f = new Frame(name, this);
      this.children.set(name, f);
    }
    return f;
  }
}

// Arch methods wrapped as kernel functions (name in the Arch -> C name).
const ARCH_FUNCTIONS = [
  ["tlbFlush", "tlb_flush"],
  ["flushTlbRange", "flush_tlb_range"],
  ["flushTlbPage", "flush_tlb_page"],
  ["flushTlbMm", "flush_tlb_mm"],
  ["tlbbatchFlush", "arch_tlbbatch_flush"],
  ["switchMm", "switch_mm_irqs_off"],
] as const;

export class FunctionProfiler implements FnProfiler {
  private readonly tree = new Frame("", null);
  private stack: Frame[] = [];
  private readonly last: Counters;
  private readonly c: Counters;
  private attached: { m: Machine; arch: Arch } | null = null;

  constructor(m: Machine) {
    this.c = m.counters;
    this.last = Object.assign(new Counters(), m.counters);
  }

  // Installs the profiler on its machine: from here on the counters' growth
  // is attributed. Counts from before are not (the caller starts it before
  // anything runs).
  attach(m: Machine): this {
    if (m.counters !== this.c) throw new Error("model bug: a profiler attached to another machine's counters");
    const arch = m.arch;
    const wrapped: Record<string, unknown> = { ...arch };
    for (const [key, name] of ARCH_FUNCTIONS) {
      const f = arch[key] as (...a: unknown[]) => unknown;
      wrapped[key] = (...a: unknown[]) => {
        this.enter(name);
        const r = f(...a);
        this.exit();
        return r;
      };
    }
    (m as { arch: Arch }).arch = wrapped as unknown as Arch;
    m.prof = this;
    this.attached = { m, arch };
    return this;
  }

  // Stops attributing: charges what is pending, closes every frame and gives
  // the machine back its architecture object.
  detach(): void {
    this.charge();
    this.stack = [];
    if (this.attached === null) return;
    const { m, arch } = this.attached;
    (m as { arch: Arch }).arch = arch;
    m.prof = null;
    this.attached = null;
  }

  private charge(): void {
    // Detached: the run's counted extent is over (the teardown after the
    // totals, under a root frame the driver still opens, is not counted).
    if (this.attached === null) return;
    const top = this.stack[this.stack.length - 1] ?? this.tree.child(OUTSIDE);
    chargeInto(this.c, this.last, top.self);
  }

  enter(fn: string): void {
    this.charge();
    const top = this.stack[this.stack.length - 1] ?? this.tree;
    this.stack.push(top.child(fn));
  }

  exit(): void {
    this.charge();
    this.stack.pop();
  }

  // A driver's step: closes whatever an error left open and opens the root
  // frame `name`.
  root(name: string): void {
    this.charge();
    this.stack = [this.tree.child(name)];
  }

  // Work of another context (kswapd, RCU callbacks) in the middle of a step:
  // runs f under its own root and comes back to the step's frames.
  aside<T>(name: string, f: () => T): T {
    this.charge();
    const saved = this.stack;
    this.stack = [this.tree.child(name)];
    try {
      return f();
    } finally {
      this.charge();
      this.stack = saved;
    }
  }

  // The stacks with their self counts, in first-seen order.
  stacks(): { stack: string[]; self: Counters }[] {
    const out: { stack: string[]; self: Counters }[] = [];
    const visit = (f: Frame, path: string[]) => {
      for (const ch of f.children.values()) {
        const p = [...path, ch.name];
        out.push({ stack: p, self: ch.self });
        visit(ch, p);
      }
    };
    visit(this.tree, []);
    return out;
  }
}

// Runs f under the profiler's root or aside frame `name` when there is one.
export function underRoot<T>(prof: FunctionProfiler | null, name: string, f: () => T): T {
  return prof === null ? f() : prof.aside(name, f);
}

// ---------------------------------------------------------------------------
// The table

export interface FunctionRow {
  name: string;
  selfCycles: number;
  totalCycles: number;
  self: Counters; // counts charged to the function itself
  total: Counters; // ... and to everything it called
}

export interface ByFunction {
  costTable: string;
  totalCycles: number; // the sum of every stack's self cycles
  functions: FunctionRow[]; // by total cycles, then self cycles, then name
  stacks: { stack: string[]; cycles: number; self: Counters }[]; // every stack with counts, in stack order
}

function addInto(a: Counters, b: Counters): void {
  for (const k of KEYS) a[k] += b[k];
}

export function byFunction(prof: FunctionProfiler, table: CostTable = DEFAULT_COST_TABLE): ByFunction {
  const rows = new Map<string, FunctionRow>();
  const row = (name: string): FunctionRow => {
    let r = rows.get(name);
    if (r === undefined) {
      r = { name, selfCycles: 0, totalCycles: 0, self: new Counters(), total: new Counters() };
      rows.set(name, r);
    }
    return r;
  };
  const stacks: ByFunction["stacks"] = [];
  let totalCycles = 0;
  for (const s of prof.stacks()) {
    const cycles = modelledCycles(s.self, table);
    const leaf = row(s.stack[s.stack.length - 1] as string);
    leaf.selfCycles += cycles;
    addInto(leaf.self, s.self);
    for (const name of new Set(s.stack)) {
      const r = row(name);
      r.totalCycles += cycles;
      addInto(r.total, s.self);
    }
    if (KEYS.some((k) => s.self[k] !== 0)) stacks.push({ stack: s.stack, cycles, self: s.self });
    totalCycles += cycles;
  }
  const functions = [...rows.values()]
    .filter((r) => KEYS.some((k) => r.total[k] !== 0))
    .sort((a, b) => b.totalCycles - a.totalCycles || b.selfCycles - a.selfCycles || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  stacks.sort((a, b) => {
    const x = a.stack.join(";");
    const y = b.stack.join(";");
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return { costTable: table.name, totalCycles, functions, stacks };
}

// The counters the text table shows (self counts), when any function has one.
const COLUMNS: [string, (c: Counters) => number][] = [
  ["pte_writes", (c) => c.pteWrites],
  ["pte_atomics", (c) => c.pteAtomics],
  ["folio_atomics", (c) => c.folioAtomics],
  ["faults", (c) => c.faults],
  ["pages_alloc", (c) => c.pagesAlloc],
  ["pages_free", (c) => c.pagesFree],
  ["walk_steps", (c) => c.walkSteps],
  ["tlbis", (c) => c.tlbiVale1is + c.tlbiVae1is + c.tlbiRvale1is + c.tlbiRvae1is + c.tlbiAside1is + c.tlbiVmalle1is],
  ["dsb", (c) => c.dsb],
  ["invlpg", (c) => c.tlbFlushesPage],
  ["full_flushes", (c) => c.tlbFlushesFull],
  ["ipis", (c) => c.ipis],
];

function pct(x: number, total: number): number {
  return total === 0 ? 0 : Math.round((x / total) * 10000) / 100;
}

function num(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

export function formatByFunction(b: ByFunction, title = "by function"): string {
  const cols = COLUMNS.filter(([, f]) => b.functions.some((r) => f(r.self) !== 0));
  const header = ["function", "self cycles", "self%", "total cycles", "total%", ...cols.map(([n]) => n)];
  const body = b.functions.map((r) => [
    r.name,
    num(r.selfCycles),
    pct(r.selfCycles, b.totalCycles).toFixed(2),
    num(r.totalCycles),
    pct(r.totalCycles, b.totalCycles).toFixed(2),
    ...cols.map(([, f]) => String(f(r.self))),
  ]);
  const w = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number))).join("  ");
  return [
    `== ${title}: modelled cycles (${b.costTable}), ${num(b.totalCycles)} in all; counters are the function's own (self)`,
    line(header),
    w.map((n) => "-".repeat(n)).join("  "),
    ...body.map(line),
    "",
  ].join("\n");
}

function nonZero(c: Counters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of KEYS) if (c[k] !== 0) out[snakeCase(k)] = c[k];
  return out;
}

export function byFunctionJson(b: ByFunction): unknown {
  return {
    cost_table: b.costTable,
    total_cycles: b.totalCycles,
    functions: b.functions.map((r) => ({
      function: r.name,
      self_cycles: r.selfCycles,
      self_pct: pct(r.selfCycles, b.totalCycles),
      total_cycles: r.totalCycles,
      total_pct: pct(r.totalCycles, b.totalCycles),
      self: nonZero(r.self),
      total: nonZero(r.total),
    })),
    stacks: b.stacks.map((s) => ({ stack: s.stack.join(";"), self_cycles: s.cycles, self: nonZero(s.self) })),
  };
}

// Folded stacks of modelled cycles, one "a;b;c N" line per stack with
// cycles, sorted; `prefix` (a compare configuration's label) becomes the
// outermost frame. Tools want integer weights: a cost table with fractional
// weights is rounded per line.
export function foldedStacks(b: ByFunction, prefix?: string): string {
  const out: string[] = [];
  for (const s of b.stacks) {
    const n = Math.round(s.cycles);
    if (n === 0) continue;
    const names = prefix === undefined ? s.stack : [prefix, ...s.stack];
    out.push(`${names.map((x) => x.replace(/[;\s]/g, "_")).join(";")} ${n}`);
  }
  return out.length > 0 ? `${out.join("\n")}\n` : "";
}
