// What the tests read back from a run: a report row's figures and counters,
// and the entries a region's pages map through.

import assert from "node:assert/strict";
import { pmdOffset } from "../src/core/mm/walk.js";
import type { Runner } from "../src/run/runner.js";

// A process's figures at a `report` step, with that row's counters as `c`.
export function fig(r: Runner, label: string, proc = "p") {
  const row = r.rows.find((x) => x.label === label);
  assert.ok(row, `report ${label}`);
  const p = row.processes.find((x) => x.name === proc);
  assert.ok(p, `process ${proc} in ${label}`);
  return { ...p.figures, c: row.counters };
}

// The entry each page of a process's region maps through: its PTE, the
// huge PMD's value where one maps it, 0 where there is neither.
export function regionPtes(r: Runner, region: string, proc = "p"): number[] {
  const p = r.procs.get(proc);
  assert.ok(p);
  const reg = p.regions.get(region);
  assert.ok(reg);
  const m = r.m;
  const out: number[] = [];
  for (let a = reg.start; a < reg.start + reg.len; a += m.geo.pageSize) {
    const pi = pmdOffset(m, p.mm, a, false);
    const pmdv = pi < 0 ? 0 : m.tables.get(pi);
    if (pmdv === 0 || m.arch.entryIsLeaf(pmdv)) {
      out.push(pmdv);
      continue;
    }
    const slot = m.tables.slotOfPfn(m.arch.ptePfn(pmdv));
    out.push(m.tables.get(m.tables.base(slot) + ((a / m.geo.pageSize) & m.geo.ptrsMask)));
  }
  return out;
}
