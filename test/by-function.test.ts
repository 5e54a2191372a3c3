// --by-function and --folded: every count the run makes is charged to
// exactly one stack, so the stacks' self counters sum to the run's totals and
// their modelled cycles to its modelled cycles; profiling changes nothing
// the model computes; a known scenario (an mprotect of N pages on arm64)
// puts its TLBIs in __flush_tlb_range under change_protection; the folded
// output is what flame-graph tools read; the same input gives the same
// output; bad flag values are one line and exit code 2.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type CostTable, DEFAULT_COST_TABLE, modelledCycles } from "../src/core/cost.js";
import { type CounterName, Counters } from "../src/core/counters.js";
import { defaultReplayOptions, Replayer } from "../src/replay/replay.js";
import { type ByFunction, byFunction, foldedStacks } from "../src/report/by-function.js";
import { compare } from "../src/report/compare.js";
import { type RunOptions, Runner } from "../src/run/runner.js";
import { loadScenario } from "../src/cli/load.js";
import { parseScenario } from "../src/scenario/load.js";
import { parseTraceFile } from "../src/trace/open.js";

const CLI = "dist/src/cli/main.js";
const KEYS = Object.keys(new Counters()) as CounterName[];

const MPROTECT = (pages: number) => `
name: mprotect-${pages}
machine: { cpus: 2, arch: arm64 }
steps:
  - mmap: { region: A, size: ${pages * 4}K, prot: rw }
  - touch: { region: A }
  - report: touched
  - mprotect: { region: A, offset: 0, length: ${pages * 4}K, prot: r }
  - report: mprotected
`;

function profiled(yamlOrFile: string, opts: RunOptions = {}) {
  const sc = yamlOrFile.includes("\n") ? parseScenario(yamlOrFile, "t.yaml") : loadScenario(yamlOrFile);
  const r = new Runner(sc, { ...opts, byFunction: true });
  const { totals, violations } = r.runToEnd();
  assert.deepEqual(violations, []);
  assert.ok(r.prof !== null);
  return { r, totals, b: byFunction(r.prof) };
}

// The stacks' self counters add up to `totals`, their cycles to the table's
// cycles of `totals`, and so do the functions' self cycles.
function assertSums(b: ByFunction, totals: Counters, table: CostTable = DEFAULT_COST_TABLE): void {
  const sum = new Counters();
  for (const s of b.stacks) for (const k of KEYS) sum[k] += s.self[k];
  assert.deepEqual(sum, totals);
  assert.equal(b.totalCycles, modelledCycles(totals, table));
  assert.equal(
    b.stacks.reduce((n, s) => n + s.cycles, 0),
    b.totalCycles,
  );
  assert.equal(
    b.functions.reduce((n, f) => n + f.selfCycles, 0),
    b.totalCycles,
  );
  // A function's total is at least its self, and no more than the run's.
  for (const f of b.functions) assert.ok(f.selfCycles <= f.totalCycles && f.totalCycles <= b.totalCycles, f.name);
}

const tlbis = (c: Counters) => c.tlbiVale1is + c.tlbiVae1is + c.tlbiRvale1is + c.tlbiRvae1is + c.tlbiAside1is + c.tlbiVmalle1is;

describe("by function: sums", () => {
  const cases: [string, RunOptions][] = [
    ["scenarios/default.yaml", {}],
    ["scenarios/default.yaml", { arch: "arm64", mthp: { 64: "always" } }],
    ["scenarios/diff/fork-cow-parent.yaml", {}],
    ["scenarios/diff/swap-fork-both.yaml", { arch: "arm64" }],
    ["scenarios/diff/mremap-thp-move.yaml", {}],
  ];
  for (const [file, opts] of cases)
    it(`self counters and cycles sum to the run's totals: ${file} ${JSON.stringify(opts)}`, () => {
      const { totals, b } = profiled(file, opts);
      assertSums(b, totals);
    });

  it("profiling changes no count, row or figure of the run", () => {
    for (const opts of [{}, { arch: "arm64" as const, mthp: { 64: "always" as const } }]) {
      const plain = new Runner(loadScenario("scenarios/default.yaml"), opts);
      const a = plain.runToEnd();
      const { r, totals } = profiled("scenarios/default.yaml", opts);
      assert.deepEqual(totals, a.totals);
      assert.deepEqual(r.rows, plain.rows);
      // The teardown after the totals is not profiled but still runs the same.
      assert.deepEqual(r.m.counters, plain.m.counters);
      assert.equal(r.m.arch, plain.m.arch, "the machine has its shared Arch back");
      assert.equal(r.m.prof, null);
    }
  });

  it("compare: each configuration's self cycles sum to its modelled_cycles, with its own cost table", () => {
    const sc = loadScenario("scenarios/diff/dontneed-full.yaml");
    const table: CostTable = { name: "dsb-heavy", cycles: { ...DEFAULT_COST_TABLE.cycles, dsb: 5000, pteWrites: 3 } };
    const configs = [
      { label: "x86", settings: [] as [string, string][], options: {} },
      { label: "arm", settings: [] as [string, string][], options: { arch: "arm64" as const }, costFile: { path: "t.json", table } },
    ];
    const withProf = compare(sc, configs, { byFunction: true });
    const without = compare(sc, configs, {});
    for (const [i, run] of withProf.runs.entries()) {
      const b = run.byFunction;
      assert.ok(b !== undefined);
      assert.equal(b.totalCycles, modelledCycles(run.totals, i === 0 ? DEFAULT_COST_TABLE : table));
      assert.deepEqual(run.figures, without.runs[i]?.figures);
      assertSums(b, run.totals, i === 0 ? DEFAULT_COST_TABLE : table);
      assert.equal(without.runs[i]?.byFunction, undefined);
    }
    assert.equal(withProf.runs[1]?.byFunction?.costTable, "dsb-heavy");
  });

  it("replay: self counters sum to the trace's totals", async (t) => {
    const f = "../shared/traces/gcc-python.strace";
    if (!existsSync(f)) return t.skip("no ../shared/traces");
    const { events } = await parseTraceFile(f, {});
    const r = new Replayer({ ...defaultReplayOptions(), touch: { kind: "first", pages: 4 }, byFunction: true });
    for await (const e of events) r.apply(e);
    const totals = r.counters();
    assert.ok(r.prof !== null);
    r.prof.detach();
    const b = byFunction(r.prof);
    assertSums(b, totals);
    assert.ok(b.functions.some((x) => x.name === "sys_execve"));
    assert.ok(b.functions.some((x) => x.name === "exit_mmap"));
  });
});

describe("by function: attribution", () => {
  for (const tlbiRange of [false, true])
    it(`an mprotect of 16 pages on arm64 puts its TLBIs in __flush_tlb_range under change_protection (tlbi_range ${tlbiRange ? "on" : "off"})`, () => {
      const { r, b } = profiled(MPROTECT(16), { arm64: { tlbiRange } });
      const step = r.rows.find((x) => x.label === "mprotected")?.counters as Counters;
      // Without range operations one TLBI VALE1IS per page; with them one
      // TLBI RVALE1IS covers the 16; then one DSB.
      assert.equal(tlbiRange ? step.tlbiRvale1is : step.tlbiVale1is, tlbiRange ? 1 : 16);
      assert.equal(step.dsb, 1);
      const where = b.stacks.filter((s) => tlbis(s.self) > 0);
      assert.deepEqual(
        where.map((s) => s.stack.join(";")),
        ["sys_mprotect;change_protection;tlb_flush;__flush_tlb_range"],
      );
      assert.equal(tlbis(where[0]?.self as Counters), tlbis(step));
      const fn = (name: string) => b.functions.find((x) => x.name === name);
      assert.equal(tlbis(fn("__flush_tlb_range")?.self as Counters), tlbis(step));
      assert.equal(fn("__flush_tlb_range")?.self.dsb, 1);
      assert.equal(tlbis(fn("change_protection")?.self as Counters), 0);
      assert.equal(tlbis(fn("change_protection")?.total as Counters), tlbis(step));
      // change_pte_range writes the 16 entries (one atomic start and one
      // store each) and issues no TLBI itself.
      assert.equal(fn("change_pte_range")?.self.pteWrites, 16);
      assert.equal(tlbis(fn("change_pte_range")?.total as Counters), 0);
      // The mprotect step's whole cost is the syscall root's total.
      assert.equal(fn("sys_mprotect")?.totalCycles, modelledCycles(step));
    });

  it("page faults: handle_mm_fault counts the faults, do_anonymous_page the page allocations", () => {
    const { b, totals } = profiled(MPROTECT(16));
    const fn = (name: string) => b.functions.find((x) => x.name === name);
    assert.equal(fn("handle_mm_fault")?.self.faults, totals.faults);
    assert.equal(fn("do_anonymous_page")?.self.pagesAlloc, totals.pagesAlloc);
    assert.deepEqual(
      b.stacks.filter((s) => s.self.faults > 0).map((s) => s.stack.join(";")),
      ["[user];handle_mm_fault"],
    );
  });
});

describe("by function: output", () => {
  const dir = mkdtempSync(join(tmpdir(), "ptlab-byfn-"));
  const yaml = join(dir, "mp.yaml");
  writeFileSync(yaml, MPROTECT(16));

  it("folded stacks parse as flamegraph.pl reads them and sum to the total", () => {
    const { b } = profiled("scenarios/default.yaml", { arch: "arm64" });
    const text = foldedStacks(b);
    assert.ok(text.endsWith("\n"));
    let sum = 0;
    for (const line of text.trimEnd().split("\n")) {
      const m = /^([^;\s]+(?:;[^;\s]+)*) (\d+)$/.exec(line);
      assert.ok(m, `not a folded line: ${line}`);
      sum += Number(m[2]);
    }
    assert.equal(sum, b.totalCycles);
    assert.match(foldedStacks(b, "cfg"), /^cfg;/);
  });

  it("the CLI writes the same folded stacks and table twice (deterministic), and --json carries the table", () => {
    const f1 = join(dir, "a.folded");
    const f2 = join(dir, "b.folded");
    const run = (f: string, ...extra: string[]) =>
      spawnSync(process.execPath, [CLI, "run", yaml, "--by-function", "--folded", f, ...extra], { encoding: "utf8" });
    const a = run(f1);
    const c = run(f2);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, c.stdout);
    assert.equal(readFileSync(f1, "utf8"), readFileSync(f2, "utf8"));
    assert.match(a.stdout, /== by kernel function .*\nfunction +self cycles +self% +total cycles +total%/);
    assert.match(a.stdout, /\n__flush_tlb_range +640 /);
    const j = JSON.parse(run(f1, "--json").stdout) as {
      by_function: { total_cycles: number; functions: { function: string; self: Record<string, number> }[] };
    };
    assert.equal(j.by_function.functions.find((x) => x.function === "__flush_tlb_range")?.self.tlbi_rvale1is, 1);
    const plain = JSON.parse(spawnSync(process.execPath, [CLI, "run", yaml, "--json"], { encoding: "utf8" }).stdout) as Record<string, unknown>;
    assert.equal(plain.by_function, undefined);
    const folded = readFileSync(f1, "utf8")
      .trimEnd()
      .split("\n")
      .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    assert.equal(folded, j.by_function.total_cycles);
  });

  it("compare --by-function --folded: one table per configuration, folded stacks under each label", () => {
    const f = join(dir, "cmp.folded");
    const res = spawnSync(
      process.execPath,
      [CLI, "compare", yaml, "--no-progress", "--by-function", "--folded", f, "--config", "range", "--config", "norange:tlbi_range=off"],
      { encoding: "utf8" },
    );
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /by kernel function: range/);
    assert.match(res.stdout, /by kernel function: norange/);
    const lines = readFileSync(f, "utf8").trimEnd().split("\n");
    assert.ok(lines.some((l) => l.startsWith("range;sys_mprotect;change_protection;tlb_flush;__flush_tlb_range ")));
    assert.ok(lines.some((l) => l.startsWith("norange;sys_mprotect;change_protection;tlb_flush;__flush_tlb_range ")));
  });

  it("bad values: one line on stderr and exit code 2", () => {
    const cases: [string[], RegExp][] = [
      [["run", yaml, "--folded", ""], /expected a file name/],
      [["run", yaml, "--folded", join(dir, "no/such/dir/x.folded")], /^ptlab: --folded: cannot write ".*": ENOENT$/],
      [["run", yaml, "--by-function=yes"], /unknown option '--by-function=yes'/],
      [["run", yaml, "--folded"], /argument missing/],
      [["replay", "../shared/traces/gcc-python.strace", "--folded", join(dir, "nope/x")], /^ptlab: --folded: cannot write/],
      [["compare", yaml, "--no-progress", "--config", "a", "--config", "b", "--folded", join(dir, "nope/x")], /^ptlab compare: --folded: cannot write/],
      [["workload", "david-munmap", "--folded", join(dir, "nope/x")], /^ptlab workload: --folded: cannot write/],
    ];
    for (const [args, want] of cases) {
      const res = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
      assert.equal(res.status, 2, `${args.join(" ")}: ${res.stderr}`);
      assert.equal(res.stderr.trimEnd().split("\n").length, 1, res.stderr);
      assert.match(res.stderr.trimEnd(), want);
      assert.equal(res.stdout, "");
    }
  });
});
