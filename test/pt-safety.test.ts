// Checked page-table access (TableStore.checkAccess()): a kernel path's load
// or store outside the table it mapped is `pt-out-of-bounds`, and one to a
// table that is free, or was freed and reallocated since the path obtained
// its pointer, is `pt-use-after-free`; the report names the kernel function
// and the access is not made. A table freed by RCU may be read until the
// grace period ends. Under the explorer the check is on with the invariant
// checks, and `ptlab run` never installs it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { x86_64 } from "../src/core/arch/x86/index.js";
import { defaultConfig, type Machine } from "../src/core/machine.js";
import type { KGen } from "../src/core/mm/memory.js";
import { LVL_PGD, LVL_PTE, TableStore, type TableAccessCheck } from "../src/core/mm/pgtable.js";
import type { Mm } from "../src/core/mm/types.js";
import { pmdOffset, pteTableOf } from "../src/core/mm/walk.js";
import { site } from "../src/core/sync.js";
import type { Execution } from "../src/explore/execution.js";
import { type ExploreConfig, explore, runOnce, scenarioConfig } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { files, load } from "./catalogue.js";
import { newMachine } from "../src/core/index.js";

// A checker standing in for the explorer: `path` is the running kernel path's
// set of held tables.
function checker() {
  const reports: { invariant: string; message: string }[] = [];
  const c = {
    path: new Map<number, number>() as Map<number, number> | null,
    reports,
    held: () => c.path,
    roots: new Set<number>(), // slots standing for live mms' PGDs
    isLiveRoot: (slot: number) => c.roots.has(slot),
    bad(invariant: string, message: string) {
      reports.push({ invariant, message });
      return true;
    },
  };
  return c satisfies TableAccessCheck;
}

function machine(): Machine {
  return newMachine(x86_64(4), defaultConfig());
}

describe("checked page-table access: TableStore", () => {
  it("an index past the end of the mapped table is reported and neither reads nor writes the neighbour", () => {
    const m = machine();
    const T = m.tables;
    const a = T.alloc(LVL_PTE);
    const b = T.alloc(LVL_PTE);
    assert.equal(b, a + 1, "adjacent slots: an overrun of a lands in b");
    T.set(b * T.ptrs, 1234);
    const c = checker();
    T.checkAccess(c);
    const e = T.chunkOf(a);
    const base = T.base(a);
    e[base + 3] = 7; // in bounds
    assert.equal(e[base + 3], 7);
    assert.equal(c.reports.length, 0);
    assert.equal(e[base + T.ptrs], 0, "the load past the end gives 0, not b's entry");
    e[base + T.ptrs] = 99;
    assert.equal(e[base - 1], 0);
    assert.equal(T.unchecked(e)[T.base(b)], 1234, "b's entry 0 is untouched");
    assert.deepEqual(
      c.reports.map((r) => r.invariant),
      ["pt-out-of-bounds", "pt-out-of-bounds", "pt-out-of-bounds"],
    );
    assert.match(c.reports[0]?.message ?? "", new RegExp(`loads index ${T.ptrs} of the PTE table in slot ${a} .*outside \\[0, ${T.ptrs}\\)`));
    assert.match(c.reports[2]?.message ?? "", /loads index -1 /);
    // By global index: only an index in no table at all is out of bounds.
    assert.equal(T.get(-1), 0);
    assert.equal(c.reports.at(-1)?.invariant, "pt-out-of-bounds");
  });

  it("a stale pointer to a freed table, and to one reallocated since, is a use-after-free", () => {
    const m = machine();
    const T = m.tables;
    const a = T.alloc(LVL_PTE);
    T.alloc(LVL_PTE);
    const c = checker();
    T.checkAccess(c);
    const p1 = new Map<number, number>();
    const p2 = new Map<number, number>();
    // Path 1 reads the table pointer from its parent entry.
    c.path = p1;
    assert.equal(T.slotOfPfn(T.pfn[a] as number), a);
    const e = T.chunkOf(a);
    const i = T.base(a) + 5;
    assert.equal(e[i], 0);
    // Another path frees it: path 1's pointer dangles.
    c.path = p2;
    T.free(a);
    c.path = p1;
    assert.equal(T.get(a * T.ptrs + 5), 0);
    e[i] = 42;
    assert.deepEqual(
      c.reports.map((r) => r.invariant),
      ["pt-use-after-free", "pt-use-after-free"],
    );
    assert.match(c.reports[0]?.message ?? "", new RegExp(`loads entry 5 of the PTE table in slot ${a} .*which is free`));
    // The slot is reused for another table: still path 1's stale pointer.
    c.path = p2;
    assert.equal(T.alloc(LVL_PTE), a, "the freed slot is reused");
    T.chunkOf(a)[T.base(a) + 5] = 8; // path 2's own table: fine
    assert.equal(c.reports.length, 2);
    c.path = p1;
    assert.equal(e[i], 0, "the stale load does not see the new table's entry");
    assert.match(c.reports[2]?.message ?? "", /loads entry 5 of the PTE table .* freed and reallocated since the path obtained its pointer/);
    // Once path 1 reads the pointer again, the new table is its own.
    T.slotOfPfn(T.pfn[a] as number);
    assert.equal(T.chunkOf(a)[T.base(a) + 5], 8);
    assert.equal(c.reports.length, 3);
    // Code that is no kernel path (explorer checks) is not checked.
    c.path = null;
    T.free(a);
    assert.equal(e[i], 8);
    assert.equal(c.reports.length, 3);
  });

  it("a slot a path used before, reallocated as a live mm's PGD, is reached afresh through mm->pgd", () => {
    const m = machine();
    const T = m.tables;
    const a = T.alloc(LVL_PTE);
    const c = checker();
    T.checkAccess(c);
    const p1 = new Map<number, number>();
    c.path = p1;
    T.slotOfPfn(T.pfn[a] as number);
    T.chunkOf(a)[T.base(a)] = 0; // path 1 used a as a PTE table
    c.path = new Map();
    T.free(a);
    assert.equal(T.alloc(LVL_PGD), a, "the slot becomes a PGD (a fork's new mm)");
    c.path = p1;
    // Not a root: path 1's pointer from before is stale.
    assert.equal(T.get(a * T.ptrs + 3), 0);
    assert.equal(c.reports.length, 1);
    // A live mm's PGD: path 1 reached it through mm->pgd.
    c.roots.add(a);
    T.set(a * T.ptrs + 3, 5);
    assert.equal(T.get(a * T.ptrs + 3), 5);
    assert.equal(c.reports.length, 1);
  });

  it("`ptlab run` leaves the plain accessors in place", () => {
    const sc = parseScenario(
      `name: plain
processes: [{ name: p, threads: [{ name: t, cpu: 0 }] }]
steps:
  - mmap: { region: r, size: 4M }
  - touch: { region: r, length: 64K }
  - munmap: { region: r }
`,
      "plain.yaml",
    );
    const r = new Runner(sc, { checkInvariants: true });
    const out = r.runToEnd();
    assert.deepEqual(out.violations, []);
    for (const k of ["get", "set", "chunkOf", "slotOfPfn", "alloc"]) assert.equal(Object.hasOwn(r.m.tables, k), false, k);
    assert.equal(r.m.tables.get, TableStore.prototype.get);
  });
});

// ---- under the explorer ---------------------------------------------------------

// A deliberately broken kernel path: it reads the PTE table pointer for addr
// from the PMD with no lock and no RCU read section, stops, then loads the
// PTE (`rcu`: the same inside rcu_read_lock(), which makes it legal).
const S_STALE = site("stale_pte_reader", "between the PMD load and the PTE load");
function* staleReader(m: Machine, mm: Mm, addr: number, rcu: boolean): KGen<number> {
  const il = m.il;
  if (il === null) throw new Error("explorer only");
  if (rcu) il.rcuReadLock();
  const slot = pteTableOf(m, m.tables.get(pmdOffset(m, mm, addr, false)));
  yield S_STALE;
  const e = m.tables.chunkOf(slot);
  const v = m.arch.ptepGet(m, e, m.tables.base(slot) + ((addr / m.geo.pageSize) & m.geo.ptrsMask));
  if (rcu) il.rcuReadUnlock();
  return v;
}

// Another: it loads `n` PTEs from addr on without stopping at the end of the
// PTE table (the pmd_addr_end() clamp is missing).
const S_OVERRUN = site("overrun_pte_range", "the PTE table is mapped");
function* overrun(m: Machine, mm: Mm, addr: number, n: number): KGen {
  const slot = pteTableOf(m, m.tables.get(pmdOffset(m, mm, addr, false)));
  yield S_OVERRUN;
  const e = m.tables.chunkOf(slot);
  const i = m.tables.base(slot) + ((addr / m.geo.pageSize) & m.geo.ptrsMask);
  for (let k = 0; k < n; k++) m.arch.ptepGet(m, e, i + k);
}

// Z empties the PTE table of the first 2M with MADV_DONTNEED (PT reclaim
// frees it), then touches the range again (a new PTE table, which takes the
// freed slot). S is the extra thread under test. Without `race`, Z only
// touches the second 2M.
const RACE = `  - madvise: { region: r, offset: 0, length: 2M, advice: dontneed, thread: Z }
  - touch: { region: r, offset: 0, length: 4K, thread: Z }`;
function raceConfig(tableFree: "rcu" | "semi-rcu", race = true): ExploreConfig {
  const sc = parseScenario(
    `name: stale
machine: { cpus: 2 }
processes:
  - name: p
    threads: [{ name: Z, cpu: 0 }, { name: S, cpu: 1 }]
steps:
  - mmap: { region: r, size: 4M, thread: Z }
  - touch: { region: r, offset: 0, length: 8K, thread: Z }
concurrent:
${race ? RACE : "  - touch: { region: r, offset: 2M, length: 4K, thread: Z }"}
`,
    "stale.yaml",
  );
  return { ...scenarioConfig(sc, false), run: { variants: { table_free: tableFree } } };
}

// Runs S to its point, then everyone else (RCU grace periods first) to the
// end, then S.
function runStale(cfg: ExploreConfig, body: (m: Machine, mm: Mm, addr: number) => KGen<unknown>, sSite: number): Execution {
  let x: Execution | null = null;
  let s = -1;
  return runOnce(
    cfg,
    (_d, cands) => {
      const t = (x as Execution).threads[s];
      if (t !== undefined && t.site !== sSite && cands.includes(s)) return s;
      const others = cands.filter((c) => c !== s).sort((a, b) => b - a); // the RCU agent has the highest id
      return others[0] ?? (cands[0] as number);
    },
    false,
    (e) => {
      x = e;
      const mm = e.m.mms[0] as Mm;
      const addr = (mm.vmas[0] as { start: number }).start;
      s = e.addThread("S", 1, body(e.m, mm, addr)).id;
    },
  );
}

describe("checked page-table access: under the explorer", () => {
  it("a stale PTE-table pointer used after the table was freed and reallocated names its function", () => {
    const x = runStale(raceConfig("rcu"), (m, mm, a) => staleReader(m, mm, a + 4096, false), S_STALE);
    assert.equal(x.violation?.invariant, "pt-use-after-free", x.violation?.message);
    assert.match(
      x.violation?.message ?? "",
      /^stale_pte_reader: S on CPU1 loads entry 1 of the PTE table in slot \d+ \(pfn \d+\), which was freed and reallocated since/,
    );
    // Only the first 2M was touched: its PTE table is the one table Z's MADV_DONTNEED reclaims.
    assert.equal(x.m.counters.ptReclaimed, 1);
    const s = x.threads.find((t) => t.name === "S");
    assert.match(s?.killed ?? "", /pt-use-after-free in stale_pte_reader/, "the bad load stopped the path");
  });

  it("inside rcu_read_lock() the same load is legal: the grace period waits for the reader", () => {
    const x = runStale(raceConfig("rcu"), (m, mm, a) => staleReader(m, mm, a + 4096, true), S_STALE);
    assert.equal(x.violation, null, x.violation?.message);
    assert.ok(x.ranToEnd());
    assert.ok(x.threads.every((t) => t.done && t.killed === null));
  });

  it("with table_free=semi-rcu the RCU reader's load is a use-after-free (the table is already free)", () => {
    const x = runStale(raceConfig("semi-rcu"), (m, mm, a) => staleReader(m, mm, a + 4096, true), S_STALE);
    assert.equal(x.violation?.invariant, "pt-use-after-free", x.violation?.message);
    assert.match(x.violation?.message ?? "", /^stale_pte_reader: S on CPU1 loads entry 1 of the PTE table/);
  });

  it("a loop that runs past the end of its PTE table is out of bounds, named", () => {
    const cfg = raceConfig("rcu", false);
    // From the table's last entry, three loads: the second leaves the table.
    const x = runStale(cfg, (m, mm, a) => overrun(m, mm, a + m.geo.pmdSize - 4096, 3), S_OVERRUN);
    assert.equal(x.violation?.invariant, "pt-out-of-bounds", x.violation?.message);
    assert.match(x.violation?.message ?? "", /^overrun_pte_range: S on CPU1 loads index 512 of the PTE table in slot \d+ \(pfn \d+\), outside \[0, 512\)/);
  });

  it("the semi-RCU catalogue bug is also a pt-use-after-free when walk-freed-table is not checked", () => {
    const sc = load("f-semi-rcu.yaml");
    const r = explore(scenarioConfig(sc, true, { ignore: ["walk-freed-table"] }));
    assert.equal(r.counterexample?.invariant, "pt-use-after-free");
    assert.match(r.counterexample?.message ?? "", /^gup_fast\/pte_offset_map: R on CPU1 loads entry 1 of the PTE table .* which is free/);
  });

  it("the explorer installs the check; the v6.17 catalogue runs its default schedule clean with it", () => {
    for (const f of files) {
      const x = runOnce(scenarioConfig(load(f), false), (_d, cands, cur) => (cands.includes(cur) ? cur : (cands[0] as number)), false);
      assert.ok(Object.hasOwn(x.m.tables, "chunkOf"), f);
      assert.equal(x.violation, null, `${f}: ${x.violation?.message}`);
    }
    const off = runOnce(
      scenarioConfig(load(files[0] as string), false, { ignore: ["pt-out-of-bounds", "pt-use-after-free"] }),
      (_d, cands) => cands[0] as number,
      false,
    );
    assert.equal(Object.hasOwn(off.m.tables, "chunkOf"), false, "ignoring both leaves the plain accessors");
  });
});
