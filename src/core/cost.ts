// Modelled cycles: each counter is a count of one primitive, weighted by a
// per-primitive cost. The weights are documented estimates (docs/cost-table.md
// gives the reasoning for each); they were fixed before any comparison with a
// published figure and are never adjusted to reproduce one. Users pass their
// own table (JSON, same keys) to see how conclusions move with the weights.

import type { CounterName, Counters } from "./counters.js";

export interface CostTable {
  name: string;
  // cycles per event, by counter name; counters not listed cost nothing
  // (they are either accounted through other counters or not a CPU cost).
  cycles: Partial<Record<CounterName, number>>;
}

export const DEFAULT_COST_TABLE: CostTable = {
  name: "default-estimates-v1",
  cycles: {
    pteReads: 4,
    pteWrites: 2,
    pteAtomics: 20,
    folioAtomics: 20,
    walkSteps: 30,
    hwAdUpdates: 30,
    faults: 1000,
    cowCopies: 1000,
    pagesAlloc: 600,
    pagesFree: 150,
    ptAlloc: 600,
    ptFree: 150,
    // x86-64
    tlbFlushesPage: 150,
    tlbFlushesFull: 300,
    ipis: 3000,
    // arm64: the issue cost of each broadcast TLBI, and the wait for
    // completion at the DSB that follows a batch of them.
    tlbiVale1is: 40,
    tlbiVae1is: 40,
    tlbiRvale1is: 40,
    tlbiRvae1is: 40,
    tlbiAside1is: 40,
    tlbiVmalle1is: 40,
    dsb: 600,
  },
};

export function modelledCycles(c: Counters, t: CostTable = DEFAULT_COST_TABLE): number {
  let sum = 0;
  for (const k in t.cycles) {
    const w = t.cycles[k as CounterName] as number;
    sum += w * (c[k as CounterName] ?? 0);
  }
  return sum;
}

// Validates a user-supplied table (parsed JSON): returns an error message or
// the table.
export function parseCostTable(v: unknown, known: readonly string[]): CostTable | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return 'expected a JSON object with "name" and "cycles"';
  const o = v as Record<string, unknown>;
  if (typeof o.name !== "string") return 'expected "name": a string';
  if (typeof o.cycles !== "object" || o.cycles === null || Array.isArray(o.cycles)) return 'expected "cycles": an object of counter name -> cycles';
  const cycles: Partial<Record<CounterName, number>> = {};
  for (const [k, w] of Object.entries(o.cycles as Record<string, unknown>)) {
    if (!known.includes(k)) return `cycles: unknown counter "${k}" (known: ${known.join(", ")})`;
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0) return `cycles.${k}: expected a number >= 0`;
    cycles[k as CounterName] = w;
  }
  for (const k of Object.keys(o)) if (k !== "name" && k !== "cycles") return `unknown key "${k}" (expected "name" and "cycles")`;
  return { name: o.name, cycles };
}
