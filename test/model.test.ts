import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { describe, it } from "node:test";
import { checkAccounting, checkFreedFrames, checkLeaks, checkTlbs } from "../src/core/check.js";
import { checkContpte } from "../src/core/arch/arm64/contpte_check.js";
import { builtinScenarios } from "../src/cli/load.js";
import * as X from "../src/core/arch/x86/pgtable.js";
import { doBrk, doMmap } from "../src/core/mm/mmap.js";
import { pteOffset } from "../src/core/mm/walk.js";
import { parseScenario } from "../src/scenario/load.js";
import { Runner, ViolationError } from "../src/run/runner.js";
import type { Step } from "../src/scenario/types.js";
import { PROJECT_ROOT } from "./shared-path.js";

const CLI = "dist/src/cli/main.js";

function runText(yaml: string, opts: { checkInvariants?: boolean; variants?: Record<string, string>; ptReclaim?: boolean } = {}): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, ...opts });
  r.runAll();
  assert.deepEqual(r.finish(), [], "no leaks at exit");
  return r;
}

function fig(r: Runner, label: string, proc = "p0") {
  const row = r.rows.find((x) => x.label === label);
  assert.ok(row, `report ${label}`);
  const p = row.processes.find((x) => x.name === proc);
  assert.ok(p, `process ${proc} in ${label}`);
  return { ...p.figures, c: row.counters };
}

describe("x86-64 PTE encoding", () => {
  it("keeps NX apart from the PFN and round-trips to the real 64-bit layout", () => {
    const prot = X.vmGetPageProt(X.VM_READ | X.VM_WRITE | X.VM_SHARED);
    const v = X.pfnPte(0x12345, prot);
    assert.equal(X.ptePfn(v), 0x12345);
    assert.ok(!X.pteExec(v));
    assert.equal(X.toRaw64(v) >> 63n, 1n);
    assert.equal(X.toRaw64(v) & 0xfffn, BigInt(X._PAGE_PRESENT | X._PAGE_RW | X._PAGE_USER | X._PAGE_ACCESSED));
    const w = X.pteWrprotect(X.pteMkdirty(v));
    assert.ok(X.pteDirty(w) && !X.pteWrite(w), "wrprotect keeps dirty");
    assert.ok(!X.pteWrite(X.pteMkdirty(X.pteWrprotect(v))), "mkdirty never grants write");
    const none = X.pteModify(v, X.vmGetPageProt(0));
    assert.ok(X.ptePresent(none) && X.pteProtnone(none) && !X.pteHwPresent(none), "PROT_NONE is present to software only");
    assert.equal(X.ptePfn(none), 0x12345);
  });
});

describe("model runs", () => {
  it("counts page tables, RSS and reclaim like the kernel", () => {
    const r = runText(`
name: t
steps:
  - mmap: { region: A, size: 16M, prot: rw, addr: 0x7e0000000000 }
  - touch: { region: A }
  - report: touched
  - madvise: { region: A, offset: 2M, length: 2M, advice: dontneed }
  - report: one table reclaimed
  - madvise: { region: A, offset: 4M, length: 1M, advice: dontneed }
  - report: small dontneed
  - madvise: { region: A, offset: 6M, length: 2M, advice: free }
  - report: free
`);
    const a = fig(r, "touched");
    // 8 PTE tables + 1 PMD table + 1 PUD table.
    assert.equal(a.vmpte_kb, 40);
    assert.equal(a.rss_anon_kb, 16384);
    const b = fig(r, "one table reclaimed");
    assert.equal(b.vmpte_kb, 36);
    assert.equal(b.c.ptReclaimed, 1);
    assert.equal(b.rss_anon_kb, 16384 - 2048);
    const c = fig(r, "small dontneed");
    assert.equal(c.vmpte_kb, 36, "a range below PMD size reclaims nothing");
    const d = fig(r, "free");
    assert.equal(d.vmpte_kb, 36, "MADV_FREE reclaims no table");
    assert.equal(d.rss_anon_kb, 16384 - 2048 - 1024);
  });

  it("walks 5-level tables: the P4D level is allocated but, like the kernel, not counted in VmPTE", () => {
    const yaml = (levels: number) => `
name: t
machine: { levels: ${levels} }
steps:
  - mmap: { region: A, size: 16M, prot: rw, addr: 0x7e0000000000 }
  - touch: { region: A }
  - report: touched
  - munmap: { region: A }
  - report: unmapped
`;
    const four = runText(yaml(4));
    const five = runText(yaml(5));
    assert.equal(fig(five, "touched").vmpte_kb, fig(four, "touched").vmpte_kb);
    assert.equal(fig(five, "touched").c.ptAlloc, fig(four, "touched").c.ptAlloc + 1);
    assert.equal(fig(five, "unmapped").vmpte_kb, 0);
    assert.equal(fig(five, "unmapped").c.ptFree, fig(four, "unmapped").c.ptFree + 1);
  });

  it("keeps empty tables without PT reclaim", () => {
    const yaml = `
name: t
steps:
  - mmap: { region: A, size: 8M, prot: rw }
  - touch: { region: A }
  - madvise: { region: A, advice: dontneed }
  - report: r
`;
    assert.equal(fig(runText(yaml, { ptReclaim: false }), "r").vmpte_kb, 24);
    assert.equal(fig(runText(yaml, { ptReclaim: true }), "r").vmpte_kb, 8);
  });

  it("flushes per page up to 33 pages and fully above (tlb_single_page_flush_ceiling)", () => {
    const yaml = (pages: number) => `
name: t
machine: { cpus: 2 }
processes: [{ name: p0, threads: [{ name: a, cpu: 0 }, { name: b, cpu: 1 }] }]
steps:
  - mmap: { region: A, size: 1M, prot: rw }
  - touch: { region: A, thread: a }
  - read: { region: A, thread: b }
  - report: before
  - mprotect: { region: A, offset: 0, length: ${pages * 4096}, prot: r }
  - report: after
`;
    const small = fig(runText(yaml(33)), "after").c;
    assert.equal(small.tlbFlushesPage, 66, "33 INVLPGs on each of 2 CPUs");
    assert.equal(small.ipis, 1);
    const big = fig(runText(yaml(34)), "after").c;
    assert.equal(big.tlbFlushesPage, 0);
    assert.equal(big.tlbFlushesFull, 2);
    assert.equal(big.ipis, 1);
  });

  it("isolates parent and child after fork (COW)", () => {
    const r = runText(`
name: t
steps:
  - mmap: { region: A, size: 64K, prot: rw }
  - touch: { region: A }
  - fork: { child: c }
  - touch: { region: A }
  - report: r
`);
    assert.equal(fig(r, "r").c.cowCopies, 16);
    assert.equal(fig(r, "r", "c").rss_anon_kb, 64);
  });

  it("reports SIGSEGV and unknown regions at the step's position", () => {
    const bad = `
name: t
steps:
  - mmap: { region: A, size: 64K, prot: r }
  - touch: { region: A }
`;
    assert.throws(() => runText(bad), /t\.yaml|SIGSEGV/);
    try {
      runText(bad);
    } catch (e) {
      assert.equal((e as { line: number }).line, 5);
    }
    assert.throws(() => runText("name: t\nsteps:\n  - munmap: { region: B }\n"), /unknown region "B"/);
    // An offset past the end with no length: said as such, not as a negative length.
    assert.throws(
      () => runText("name: t\nsteps:\n  - mmap: { region: r, size: 16K }\n  - migrate: { region: r, offset: 64K }\n"),
      /offset 65536 is at or past the end of region "r" \(16384 bytes\)/,
    );
  });

  it("is deterministic: same scenario, byte-identical JSON", () => {
    const a = spawnSync("node", [CLI, "run", "--json", "scenarios/default.yaml"], { encoding: "utf8" });
    const b = spawnSync("node", [CLI, "run", "--json", "scenarios/default.yaml"], { encoding: "utf8" });
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    const j = JSON.parse(a.stdout);
    assert.deepEqual(j.violations, []);
    // 64 MiB touched: 32 PTE tables, one PMD and one PUD table, 4 kB each.
    assert.equal(j.reports[0].processes[0].vmpte_kb, (64 / 2 + 1 + 1) * 4);
  });
});

describe("mprotect over a hole", () => {
  // do_mprotect_pkey(), mm/mprotect.c: ENOMEM at once without a VMA at the
  // start; a hole further on stops the walk after the VMAs before it changed.
  const text = (off: string, mprotect: boolean) =>
    `name: t\nsteps:\n  - mmap: { region: A, size: 16K, prot: rw, addr: 0x7e0000000000 }\n  - touch: { region: A }\n  - munmap: { region: A, offset: ${off}, length: 4K }\n${mprotect ? "  - mprotect: { region: A, prot: r }\n" : ""}`;
  // The VMA flags at each address after the run without and with the mprotect.
  const flags = (off: string, addrs: number[]) => {
    const q = new Runner(parseScenario(text(off, false), "t.yaml"));
    q.runAll();
    const r = new Runner(parseScenario(text(off, true), "t.yaml"), { checkInvariants: true });
    assert.throws(() => r.runAll(), /ENOMEM/);
    const at = (x: Runner) => addrs.map((a) => x.procs.get("p0")!.mm.findVma(a)?.flags);
    return { before: at(q), after: at(r) };
  };
  it("changes the VMAs before a hole, then fails with ENOMEM", () => {
    const { before, after } = flags("8K", [0x7e0000000000, 0x7e0000003000]);
    assert.notEqual(after[0], before[0], "the VMA before the hole changed");
    assert.equal(after[1], before[1], "the VMA after the hole did not");
  });
  it("fails with ENOMEM and changes nothing when the start is unmapped", () => {
    const { before, after } = flags("0", [0x7e0000001000]);
    assert.deepEqual(after, before);
  });
});

describe("invariant checker", () => {
  it("catches a mapcount that disagrees with the page tables", () => {
    const r = new Runner(parseScenario("name: t\nsteps:\n  - mmap: { region: A, size: 64K, prot: rw }\n  - touch: { region: A }\n", "t.yaml"));
    r.runAll();
    assert.deepEqual(checkAccounting(r.m), []);
    const mm = r.procs.get("p0")!.mm;
    const pi = pteOffset(r.m, mm, r.procs.get("p0")!.regions.get("A")!.start);
    const pfn = r.m.arch.ptePfn(r.m.tables.get(pi));
    r.m.phys.mapcount[pfn] = 2;
    assert.ok(checkAccounting(r.m).some((v) => v.invariant === "mapcount"));
  });

  it("catches a stale TLB entry when a PTE is cleared without a flush", () => {
    const r = new Runner(parseScenario("name: t\nsteps:\n  - mmap: { region: A, size: 64K, prot: rw }\n  - touch: { region: A }\n", "t.yaml"));
    r.runAll();
    assert.deepEqual(checkTlbs(r.m), []);
    const mm = r.procs.get("p0")!.mm;
    const pi = pteOffset(r.m, mm, r.procs.get("p0")!.regions.get("A")!.start);
    r.m.tables.set(pi, 0); // clear without any flush
    assert.ok(checkTlbs(r.m).some((v) => v.invariant === "tlb-stale-mapping"));
  });

  it("flags a page freed while a TLB still maps it", () => {
    const r = new Runner(parseScenario("name: t\nsteps:\n  - mmap: { region: A, size: 64K, prot: rw }\n  - touch: { region: A }\n", "t.yaml"));
    r.runAll();
    const pi = pteOffset(r.m, r.procs.get("p0")!.mm, r.procs.get("p0")!.regions.get("A")!.start);
    const pfn = r.m.arch.ptePfn(r.m.tables.get(pi));
    assert.ok(checkFreedFrames(r.m, [pfn], "test").some((v) => v.invariant === "freed-before-flush"));
    r.m.arch.flushTlbMm(r.m, r.procs.get("p0")!.mm);
    assert.deepEqual(checkFreedFrames(r.m, [pfn], "test"), []);
  });

  it("stops a run at the first violating step", () => {
    const sc = parseScenario("name: t\nsteps:\n  - mmap: { region: A, size: 64K, prot: rw }\n  - touch: { region: A }\n", "t.yaml");
    const r = new Runner(sc);
    r.exec(sc.steps[0]!, 0);
    // Frame 1 is the zero page; stripped of PG_ZERO it is an ordinary page
    // that no PTE maps, so a mapcount of 5 is a violation.
    r.m.phys.mapcount[1] = 5;
    r.m.phys.flags[1] = 0;
    assert.throws(() => r.exec(sc.steps[1]!, 0), ViolationError);
  });
});

describe("CLI", () => {
  it("gives one positioned error and exit code 2 for bad input", () => {
    const res = spawnSync("node", [CLI, "run", "test/fixtures/bad-size.yaml"], { encoding: "utf8" });
    assert.equal(res.status, 2);
    assert.match(res.stderr, /^test\/fixtures\/bad-size\.yaml:4:\d+: .*size/);
    assert.equal(res.stderr.trim().split("\n").length, 1);
    const opt = spawnSync("node", [CLI, "run", "--variant", "bogus", "scenarios/default.yaml"], { encoding: "utf8" });
    assert.equal(opt.status, 2);
    const unk = spawnSync("node", [CLI, "run", "--variant", "gather_nested=nope", "scenarios/default.yaml"], { encoding: "utf8" });
    assert.equal(unk.status, 2);
    assert.match(unk.stderr, /expected one of: fixed, reset-range/);
  });

  it("an empty or blank integer option is refused, not read as 0; --version prints the package's version", () => {
    for (const seed of ["", " ", "1.5", "-1"]) {
      const res = spawnSync("node", [CLI, "explore", "scenarios/concurrency/clean-x86-mixed.yaml", "--seed", seed], { encoding: "utf8" });
      assert.equal(res.status, 2, `--seed "${seed}": ${res.stdout}${res.stderr}`);
      assert.match(res.stderr, /--seed.*expected an integer/);
    }
    const v = spawnSync("node", [CLI, "--version"], { encoding: "utf8" });
    assert.equal(v.status, 0);
    assert.equal(v.stdout.trim(), JSON.parse(readFileSync("package.json", "utf8")).version);
  });

  it("output to a closed pipe ends quietly with the command's own exit code (no EPIPE stack trace)", () => {
    // `ptlab run ... | head -c 1`: the reader goes away after one byte.
    const res = spawnSync("bash", ["-c", `node ${CLI} run scenarios/default.yaml | head -c 1 >/dev/null; echo "rc=\${PIPESTATUS[0]}" >&2`], {
      encoding: "utf8",
    });
    assert.doesNotMatch(res.stderr, /EPIPE|at .*\.js/, res.stderr);
    assert.match(res.stderr, /rc=0/);
  });
});

// Every built-in scenario (builtinScenarios(): what `ptlab run NAME` finds)
// runs to the end with the invariants checked after every step, no violation
// and no leak at exit, and one report row per report step. Scenarios with
// `concurrent` steps (concurrency/, open/) run their set-up `steps`, as
// `ptlab run` does; their races are explored in explore*.test.ts.
describe("built-in scenarios", () => {
  // Checked after every step, these take 5-10 s each (the checker walks the
  // 1 GiB of PTEs after each of the 1024 mprotect steps; pt-reclaim-50g's
  // 51200 steps would take minutes). They run in full with the invariants
  // checked at the end, and with every `repeat` cut to its first CAP
  // iterations with the invariants checked after every step.
  // pt-reclaim-50g.test.ts runs the 50 GB loop in full (without checks).
  const CAP = 8;
  const SLOW = new Map([
    ["reproduce/mprotect-2m-pte.yaml", "full"],
    ["reproduce/munmap-2m-pte.yaml", "full"],
    ["pt-reclaim-50g.yaml", "capped only"],
  ]);
  const rel = (p: string) => relative(join(PROJECT_ROOT, "scenarios"), p);
  const all = builtinScenarios().map(([name, p]) => ({ name, rel: rel(p), sc: parseScenario(readFileSync(p, "utf8"), p) }));
  // Report rows a run of these steps produces.
  const reportCount = (steps: Step[]): number =>
    steps.reduce((n, st) => n + (st.op === "report" ? 1 : st.op === "repeat" ? st.count * reportCount(st.steps) : 0), 0);
  const capRepeats = (steps: Step[]): Step[] =>
    steps.map((st) => (st.op === "repeat" ? { ...st, count: Math.min(st.count, CAP), steps: capRepeats(st.steps) } : st));

  it("finds the scenarios of every built-in folder, and only the explorer's have concurrent steps", () => {
    const dirs = (pred: (x: (typeof all)[number]) => boolean) => [...new Set(all.filter(pred).map((x) => dirname(x.rel)))].sort();
    assert.deepEqual(
      dirs(() => true),
      [".", "concurrency", "diff", "open", "reproduce"],
    );
    assert.deepEqual(
      dirs((x) => (x.sc.concurrent ?? []).length > 0),
      ["concurrency", "open"],
    );
    for (const f of SLOW.keys())
      assert.ok(
        all.some((x) => x.rel === f),
        `${f} is still built in`,
      );
  });

  for (const { rel: f, sc } of all) {
    const slow = SLOW.get(f);
    if (slow !== "capped only")
      it(`${f}${slow !== undefined ? ": in full, checked at the end" : ""}`, () => {
        const r = new Runner(sc, { checkInvariants: slow === undefined });
        if (slow === undefined) {
          assert.deepEqual(r.runToEnd().violations, []);
        } else {
          r.runAll();
          assert.deepEqual([...checkTlbs(r.m), ...checkAccounting(r.m), ...(r.m.arch.name === "arm64" ? checkContpte(r.m) : [])], []);
          r.finish();
          assert.deepEqual(checkLeaks(r.m), []);
        }
        assert.equal(r.rows.length, reportCount(sc.steps), "one row per report step");
      });
    if (slow !== undefined)
      it(`${f}: the first ${CAP} iterations of each repeat, checked after every step`, () => {
        const capped = { ...sc, steps: capRepeats(sc.steps) };
        const r = new Runner(capped, { checkInvariants: true });
        assert.deepEqual(r.runToEnd().violations, []);
        assert.equal(r.rows.length, reportCount(capped.steps));
      });
  }

  // default.yaml: "is deterministic" above.
  it("`ptlab run --json` exits 0 and prints the same JSON twice (a fork and swap scenario, a multi-process one)", () => {
    for (const f of ["scenarios/diff/swap-fork-both.yaml", "scenarios/reproduce/teardown.yaml"]) {
      const [a, b] = [0, 1].map(() => spawnSync(process.execPath, [CLI, "run", "--json", f], { encoding: "utf8" }));
      assert.equal(a!.status, 0, a!.stdout + a!.stderr);
      assert.equal(b!.stdout, a!.stdout, `${f}: two runs differ`);
      const j = JSON.parse(a!.stdout);
      assert.deepEqual(j.violations, [], f);
      assert.equal(j.reports.length, reportCount(all.find((x) => x.rel === relative("scenarios", f))!.sc.steps), f);
    }
  });
});

describe("brk limits", () => {
  for (const arch of ["x86_64", "arm64"] as const)
    it(`${arch}: a break past TASK_SIZE or into the page below the next mapping is refused, as check_brk_limits() and brk() refuse it`, () => {
      const sc = parseScenario(`name: b\nmachine: { arch: ${arch} }\nsteps:\n  - brk: { delta: 64K, region: h }\n`, "t.yaml");
      const r = new Runner(sc, { checkInvariants: true });
      r.runAll();
      const mm = r.procs.get("p0")!.mm;
      const T = r.m.arch.taskSize;
      const start = mm.brk;
      const PS = r.m.geo.pageSize;
      // Past TASK_SIZE (two addresses 256 TiB apart once aliased one page).
      assert.equal(doBrk(r.m, mm, T + PS), start);
      assert.equal(doBrk(r.m, mm, 2 ** 53 - 1), start);
      // A mapping a few pages above the break: up to a page below it, no further.
      const above = Math.ceil(start / PS) * PS + 8 * PS;
      doMmap(r.m, mm, { addr: above, len: PS, prot: { read: true, write: false, exec: false }, shared: false, fixed: true, file: null, pgoff: 0 });
      assert.equal(doBrk(r.m, mm, above - PS + 1), start);
      assert.equal(doBrk(r.m, mm, above - PS), above - PS);
      // Shrinking below start_brk is refused; to it, allowed.
      assert.equal(doBrk(r.m, mm, mm.startBrk - 1), above - PS);
      assert.equal(doBrk(r.m, mm, mm.startBrk), mm.startBrk);
      assert.deepEqual(r.finish(), []);
    });

  it("a brk step the kernel refuses is one located error, exit 2", () => {
    const f = join(mkdtempSync(join(tmpdir(), "ptlab-brk-")), "b.yaml");
    writeFileSync(f, "name: b\nsteps:\n  - brk: { delta: 1024T, region: h }\n  - touch: { region: h }\n");
    const r = spawnSync(process.execPath, [CLI, "run", f], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /b\.yaml:3:5: brk failed: the kernel kept the break at 0x/);
  });
});

describe("built-in scenarios by name", () => {
  it("ptlab scenarios lists them; run and explore take a name; an unknown name is one line, exit 2", () => {
    const list = spawnSync(process.execPath, [CLI, "scenarios"], { encoding: "utf8" });
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^default +default\.yaml /m);
    assert.match(list.stdout, /^k-mremap-batching-write +concurrency\/k-mremap-batching-write\.yaml /m);
    const byName = spawnSync(process.execPath, [CLI, "run", "--json", "default"], { encoding: "utf8" });
    const byPath = spawnSync(process.execPath, [CLI, "run", "--json", "scenarios/default.yaml"], { encoding: "utf8" });
    assert.equal(byName.status, 0, byName.stderr);
    const reports = (o: { stdout: string }) => JSON.parse(o.stdout).reports;
    assert.ok(reports(byName).length > 0);
    assert.deepEqual(reports(byName), reports(byPath));
    const ex = spawnSync(process.execPath, [CLI, "explore", "--historical", "k-mremap-batching-write"], { encoding: "utf8" });
    assert.equal(ex.status, 1, ex.stderr);
    const bad = spawnSync(process.execPath, [CLI, "run", "no-such-scenario"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /no-such-scenario:1:1: cannot read file: no such file, and no built-in scenario of that name/);
  });

  it("diff-kernel's helper is cached under XDG_CACHE_HOME, else ~/.cache/ptlab", async () => {
    const { cacheDir } = await import("../src/host/helper.js");
    const saved = process.env.XDG_CACHE_HOME;
    try {
      process.env.XDG_CACHE_HOME = "/tmp/xdg-test";
      assert.equal(cacheDir(), "/tmp/xdg-test/ptlab");
      delete process.env.XDG_CACHE_HOME;
      assert.match(cacheDir(), /\/\.cache\/ptlab$/);
    } finally {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
    }
  });
});
