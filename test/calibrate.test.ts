// ptlab calibrate: the non-negative least-squares fit, the model's counts
// for each benchmark (derived from the kernel's rules), and the command
// end to end on measurements given as a file (no timing in tests: the
// "host" times are made from known weights, so the fit must find them).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CALIB_OPS, CALLS, FEATURES, type HostTraits, modelCounts, specName } from "../src/calibrate/bench.js";
import { calibrate, nnls } from "../src/calibrate/fit.js";
import { Counters } from "../src/core/counters.js";
import { parseCostTable } from "../src/core/cost.js";

const CLI = "dist/src/cli/main.js";
const M = 2 ** 20;
const HOST: HostTraits = { thp: "madvise", zeroPage: true, hugeZeroPage: false, ptReclaim: true };
const at = (name: string) => FEATURES.indexOf(name);

describe("nnls", () => {
  it("recovers non-negative weights from exact data", () => {
    const w = [3, 0, 0.5, 7];
    const rows = [
      [1, 2, 0, 1],
      [0, 1, 4, 0],
      [2, 0, 1, 3],
      [1, 1, 1, 1],
      [5, 0, 2, 0],
      [0, 3, 0, 2],
    ];
    const b = rows.map((r) => r.reduce((s, x, j) => s + x * (w[j] as number), 0));
    const x = nnls(rows, b);
    for (let j = 0; j < w.length; j++) assert.ok(Math.abs((x[j] as number) - (w[j] as number)) < 1e-6, `weight ${j}: ${x[j]} vs ${w[j]}`);
  });

  it("clamps at zero where least squares would go negative, and meets the optimality conditions", () => {
    // Unconstrained: b = 2*c0 - 1*c1 fits exactly; with x >= 0 the second weight is 0.
    const rows = [
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
    ];
    const b = rows.map((r) => 2 * (r[0] as number) - (r[1] as number));
    const x = nnls(rows, b);
    assert.equal(x[1], 0);
    assert.ok((x[0] as number) > 0);
    // KKT: the gradient A^T (b - A x) is 0 on the positive weight, <= 0 on the zero one.
    const r = b.map((bi, i) => bi - (rows[i] as number[]).reduce((s, a, j) => s + a * (x[j] as number), 0));
    const g = [0, 1].map((j) => rows.reduce((s, row, i) => s + (row[j] as number) * (r[i] as number), 0));
    assert.ok(Math.abs(g[0] as number) < 1e-9, `gradient on the free weight: ${g[0]}`);
    assert.ok((g[1] as number) <= 1e-9, `gradient on the clamped weight: ${g[1]}`);
  });

  it("gives a column of zeros no weight", () => {
    const x = nnls(
      [
        [1, 0],
        [2, 0],
      ],
      [3, 6],
    );
    assert.ok(Math.abs((x[0] as number) - 3) < 1e-9, String(x[0]));
    assert.equal(x[1], 0);
  });
});

describe("the model's counts per page", () => {
  const one = (op: (typeof CALIB_OPS)[number], mode: "4k" | "thp") => modelCounts({ op, mode, bytes: 2 * M }, HOST);

  it("a 4K write fault: one fault and one page per page; the first fault of the mm's 1 GiB range builds its PUD, PMD and PTE tables", () => {
    const c = one("fault", "4k");
    assert.equal(c[at("faults")], 1);
    assert.equal(c[at("pagesAlloc")], 1);
    assert.equal(c[at("ptAlloc")], 3 / 512);
    assert.equal(c[at(CALLS)], 0);
  });

  it("a THP write fault: one fault per 512 pages, 512 pages, and the deposited PTE table", () => {
    const c = one("fault", "thp");
    assert.equal(c[at("faults")], 1 / 512);
    assert.equal(c[at("pagesAlloc")], 1);
    // The PUD and PMD tables, and the PTE table do_huge_pmd_anonymous_page()
    // preallocates and deposits.
    assert.equal(c[at("ptAlloc")], 3 / 512);
  });

  it("a 4K read with the zero page allocates nothing; without it, a page each", () => {
    assert.equal(one("read", "4k")[at("pagesAlloc")], 0);
    assert.equal(modelCounts({ op: "read", mode: "4k", bytes: 2 * M }, { ...HOST, zeroPage: false })[at("pagesAlloc")], 1);
  });

  it("a 64K mTHP write fault: one fault per 16 pages; MADV_DONTNEED: folio atomics per batch of 16, not 2 per page", () => {
    const f = modelCounts({ op: "fault", mode: "64k", bytes: 2 * M }, HOST);
    assert.equal(f[at("faults")], 1 / 16);
    assert.equal(f[at("pagesAlloc")], 1);
    // zap_present_folio_ptes() on a batch of the folio's 16 entries:
    // folio_remove_rmap_ptes() decrements each page's _mapcount (16), then
    // _large_mapcount and _nr_pages_mapped once each; the gather drops the 16
    // references with one folio_put_refs(). 19 atomics for 16 pages, where
    // 4K pages take 2 each (_mapcount, then the reference).
    assert.equal(modelCounts({ op: "dontneed", mode: "64k", bytes: 2 * M }, HOST)[at("folioAtomics")], 19 / 16);
    assert.equal(one("dontneed", "4k")[at("folioAtomics")], 2);
  });

  it("one call per syscall benchmark, two for fork and exit", () => {
    assert.equal(one("mprotect_ro", "4k")[at(CALLS)], 1 / 512);
    assert.equal(one("munmap", "thp")[at(CALLS)], 1 / 512);
    assert.equal(one("fork_exit", "4k")[at(CALLS)], 2 / 512);
    assert.equal(one("swapin", "4k")[at(CALLS)], 0);
  });

  it("MADV_PAGEOUT of 4K pages writes each to swap; the swap-in faults each back", () => {
    const po = modelCounts({ op: "pageout", mode: "4k", bytes: 2 * M }, HOST);
    const si = modelCounts({ op: "swapin", mode: "4k", bytes: 2 * M }, HOST);
    assert.equal(po[at("pagesFree")], 1);
    assert.equal(po[at("faults")], 0);
    assert.equal(si[at("faults")], 1);
    assert.equal(si[at("pagesAlloc")], 1);
  });
});

describe("calibrate()", () => {
  it("fits exact data exactly, and predicts each benchmark left out", () => {
    const w = FEATURES.map(
      (f) =>
        ({ faults: 5000, pagesAlloc: 300, ptAlloc: 2000, pteReads: 3, pteWrites: 2, pteAtomics: 15, tlbFlushesPage: 200, pagesFree: 80, [CALLS]: 1500 })[f] ??
        0,
    );
    const bs = [];
    for (const op of CALIB_OPS)
      for (const mode of ["4k", "thp"] as const)
        for (const bytes of [2 * M, 8 * M]) {
          const counts = modelCounts({ op, mode, bytes }, HOST);
          bs.push({ name: specName({ op, mode, bytes }), time: counts.reduce((s, c, j) => s + c * (w[j] as number), 0), counts });
        }
    const fit = calibrate(bs);
    for (const e of fit.error) assert.ok(Math.abs(e) < 1e-6, `fit error ${e}`);
    for (const e of fit.looError) assert.ok(Math.abs(e) < 1e-3, `left-out error ${e}`);
  });
});

describe("ptlab calibrate --host-data", () => {
  const dir = mkdtempSync(join(tmpdir(), "ptlab-calib-"));
  const weights: Record<string, number> = {
    faults: 9000,
    pagesAlloc: 500,
    ptAlloc: 3000,
    pteReads: 2,
    pteWrites: 4,
    pteAtomics: 20,
    tlbFlushesPage: 150,
    pagesFree: 100,
    [CALLS]: 2000,
  };
  const times: Record<string, number> = {};
  for (const op of CALIB_OPS)
    for (const mode of ["4k", "thp"] as const)
      for (const bytes of [16 * M, 64 * M]) {
        const c = modelCounts({ op, mode, bytes }, HOST);
        times[specName({ op, mode, bytes })] = c.reduce((s, x, j) => s + x * (weights[FEATURES[j] as string] ?? 0), 0);
      }
  const data = join(dir, "host.json");
  writeFileSync(data, JSON.stringify({ ptlab: "calibrate-host", cpu: "test CPU", kernel: "6.17.0", traits: HOST, swap: true, times }));

  it("fits the saved measurements, prints the errors, and writes a table --cost accepts", () => {
    const out = join(dir, "table.json");
    const r = spawnSync("node", [CLI, "calibrate", "--host-data", data, "--out", out], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ptlab calibrate: test CPU, Linux 6\.17\.0; 40 benchmarks/);
    assert.match(r.stdout, /leave-one-out: median \|error\| 0\.0%, 40 of 40 benchmarks within 25%/);
    const t = parseCostTable(JSON.parse(readFileSync(out, "utf8")), Object.keys(new Counters()));
    assert.ok(typeof t !== "string", String(t));
    assert.equal(t.name, "calibrated-ns: test CPU, Linux 6.17.0");
    assert.ok(Math.abs((t.cycles.faults as number) - 9000) < 1, `faults ${t.cycles.faults}`);
    const j = spawnSync("node", [CLI, "calibrate", "--host-data", data, "--json", "--ops", "fault,munmap", "--sizes", "16M"], { encoding: "utf8" });
    assert.equal(j.status, 0, j.stderr);
    const v = JSON.parse(j.stdout) as { benchmarks: unknown[]; loo: { of: number } };
    assert.equal(v.benchmarks.length, 4);
    assert.equal(v.loo.of, 4);
  });

  it("bad input: one line, exit 2", () => {
    const cases: [string[], RegExp][] = [
      [["--sizes", "3M"], /--sizes.*expected sizes like 16M,64M.*got "3M"/],
      [["--ops", "fault,mremap"], /--ops.*expected operations among fault, read.*got "mremap"/],
      [["--modes", "2m"], /--modes.*expected 4k, thp or an mTHP size/],
      [["--modes", "64k"], /--modes 64k: an mTHP size is measured with that size alone enabled; give --setup-mthp/],
      [["--reps", "0"], /--reps.*expected an integer 1\.\.1000/],
      [["--host-data", join(dir, "missing.json")], /--host-data .*missing\.json: ENOENT/],
      [["--host-data", data, "--sizes", "32M"], /no measurement of "fault 4k 32M"/],
    ];
    for (const [args, re] of cases) {
      const r = spawnSync("node", [CLI, "calibrate", ...args], { encoding: "utf8" });
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  });
});
