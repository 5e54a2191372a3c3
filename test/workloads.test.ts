import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { Runner } from "../src/run/runner.js";
import { instantiate, listWorkloads, UsageError, WORKLOADS } from "../src/workloads/index.js";

const CLI = "dist/src/cli/main.js";

// Small parameters per workload so every one runs with invariant checks in well under a second.
const SMALL: Record<string, Record<string, string>> = {
  "kernel-compile": { processes: "5", heap: "256K", text: "256K" },
  page_fault1: { size: "256K", iterations: "1" },
  page_fault2: { size: "256K", iterations: "1", mode: "processes" },
  page_fault3: { size: "256K", iterations: "1" },
  mmap1: { size: "8M", iterations: "1", loops: "3" },
  mmap2: { size: "8M", iterations: "1", loops: "3", mode: "processes" },
  tlb_flush1: { size: "64K", iterations: "1" },
  tlb_flush2: { size: "64K", iterations: "1", tasks: "3" },
  tlb_flush3: { size: "64K", iterations: "1" },
  "ryan-fork-dontneed-munmap": { size: "4M" },
  "david-munmap": { size: "4M" },
  "dev-mprotect": { size: "4M", iterations: "2" },
  "qi-50g": { size: "32M", reports: "2" },
};

function run(name: string, params: Record<string, string>, extra: { ptReclaim?: boolean } = {}) {
  const w = instantiate(name, params);
  const r = new Runner(w.scenario, { checkInvariants: true, ...w.options, ...extra });
  r.runAll();
  assert.deepEqual(r.finish(), [], `${name}: no leaks at exit`);
  return r;
}

const vmpte = (r: Runner, i: number) => (r.rows[i]?.processes ?? []).reduce((s, p) => s + p.figures.vmpte_kb, 0);

describe("workload registry", () => {
  it("has every workload of the issue", () => {
    for (const n of Object.keys(SMALL)) assert.ok(WORKLOADS.has(n), n);
    assert.equal(WORKLOADS.size, Object.keys(SMALL).length);
  });

  for (const [name, params] of Object.entries(SMALL))
    it(`${name} builds a scenario that runs without invariant violations`, () => {
      const r = run(name, params);
      assert.ok(r.rows.length >= 1, "at least one report step");
      assert.equal(r.sc.file, `workload:${name}`);
      assert.ok(r.m.counters.faults > 0 || name.startsWith("mmap"), "faults taken");
    });

  it("defaults are valid and every parameter has a description", () => {
    for (const w of WORKLOADS.values()) {
      const inst = instantiate(w.name);
      assert.ok(inst.scenario.steps.length > 0, w.name);
      for (const p of w.params) assert.ok(p.description.length > 0, `${w.name}.${p.name}`);
    }
    const text = listWorkloads();
    for (const w of WORKLOADS.keys()) assert.match(text, new RegExp(`^${w}$`, "m"));
  });

  it("kernel-compile is deterministic in its seed", () => {
    const a = instantiate("kernel-compile", { processes: "6", seed: "7" }).scenario;
    const b = instantiate("kernel-compile", { processes: "6", seed: "7" }).scenario;
    const c = instantiate("kernel-compile", { processes: "6", seed: "8" }).scenario;
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.steps, c.steps);
  });

  it("folio sizes reach the machine: mTHP faults, split PMD THPs", () => {
    const m = run("ryan-fork-dontneed-munmap", { size: "4M", folio: "64K" });
    // 4M of 64K folios, touched before and after the MADV_DONTNEED: 2 x 64.
    assert.equal(m.m.counters.mthpFaults, 2 * 64, "64K folios faulted as mTHP");
    const d = run("david-munmap", { size: "8M", folio: "2M" });
    assert.equal(d.m.counters.thpFaults, 4);
    assert.equal(d.m.counters.thpSplits, 4, "every PMD split to PTEs");
    const pmd = run("david-munmap", { size: "8M", folio: "2M", pmd: "true" });
    assert.equal(pmd.m.counters.thpSplits, 0);
    const small = run("david-munmap", { size: "4M", folio: "4K" });
    assert.equal(small.m.counters.faults, 1024);
  });

  it("qi-50g: VmPTE stays flat with PT reclaim and grows without", () => {
    const on = run("qi-50g", { size: "64M", reports: "2" }, { ptReclaim: true });
    const off = run("qi-50g", { size: "64M", reports: "2" }, { ptReclaim: false });
    assert.equal(vmpte(on, 0), vmpte(on, 1));
    assert.ok(vmpte(off, 1) > vmpte(off, 0) && vmpte(off, 1) >= 32 * 4, "one PTE table per 2M chunk");
  });

  it("threads share one mm: a munmap sends IPIs to the other CPUs", () => {
    const t = run("tlb_flush2", { size: "64K", iterations: "1", tasks: "2", mode: "threads" });
    const p = run("tlb_flush2", { size: "64K", iterations: "1", tasks: "2", mode: "processes" });
    // Each thread's 16 MADV_DONTNEEDs (one per 4K page) and its munmap flush
    // the other CPU by IPI once the mm ran there: 2 x (16 + 1), less t0's
    // first MADV_DONTNEED, before t1 first ran on CPU 1.
    assert.equal(t.m.counters.ipis, 2 * (16 + 1) - 1);
    assert.equal(p.m.counters.ipis, 0);
  });
});

describe("workload parameters", () => {
  const err = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof UsageError && re.test(e.message));
  it("rejects unknown workloads, unknown parameters and bad values with what was expected", () => {
    err(() => instantiate("nope"), /unknown workload "nope" \(expected one of: kernel-compile, /);
    err(() => instantiate("page_fault1", { sise: "1M" }), /unknown parameter "sise" \(expected one of: tasks, mode, iterations, size\)/);
    err(() => instantiate("page_fault1", { size: "1X" }), /parameter size: expected size 4K\.\.64G, a multiple of 4K, got "1X"/);
    err(() => instantiate("page_fault1", { size: "6K" }), /multiple of 4K/);
    err(() => instantiate("page_fault1", { tasks: "0" }), /parameter tasks: expected integer 1\.\.64, got "0"/);
    err(() => instantiate("page_fault1", { mode: "fibers" }), /expected threads\|processes/);
    err(() => instantiate("david-munmap", { pmd: "maybe" }), /expected true\|false/);
    err(() => instantiate("qi-50g", { size: "3M" }), /multiple of 2M/);
  });

  it("the CLI prints one line and exits 2", () => {
    for (const args of [
      ["workload", "nope"],
      ["workload", "page_fault1", "--param", "size=1X"],
      ["workload", "page_fault1", "--param", "size"],
      ["workload"],
    ]) {
      const res = spawnSync("node", [CLI, ...args], { encoding: "utf8" });
      assert.equal(res.status, 2, args.join(" "));
      assert.equal(res.stderr.trim().split("\n").length, 1, res.stderr);
      assert.match(res.stderr, /^ptlab workload: /);
      assert.equal(res.stdout, "");
    }
  });

  it("ptlab workload prints the run output, --json too, and --list", () => {
    const res = spawnSync("node", [CLI, "workload", "page_fault1", "--param", "size=256K", "--param", "iterations=1"], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /^ptlab workload page_fault1 tasks=2 mode=threads iterations=1 size=256K/);
    assert.match(res.stdout, /== iter 1: touched/);
    assert.match(res.stdout, /== total/);
    const j = spawnSync("node", [CLI, "workload", "tlb_flush2", "--json", "--param", "size=64K", "--param", "iterations=1"], { encoding: "utf8" });
    assert.equal(j.status, 0, j.stderr);
    const o = JSON.parse(j.stdout);
    assert.equal(o.workload, "tlb_flush2");
    assert.equal(o.params.size, 65536);
    assert.equal(o.totals.faults, 32);
    assert.deepEqual(o.violations, []);
    const l = spawnSync("node", [CLI, "workload", "--list"], { encoding: "utf8" });
    assert.equal(l.status, 0);
    assert.match(l.stdout, /^dev-mprotect$/m);
  });
});
