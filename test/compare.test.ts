import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfig, parseMthp } from "../src/cli/compare.js";
import { DEFAULT_COST_TABLE } from "../src/core/cost.js";
import { Counters } from "../src/core/counters.js";
import { compare, comparisonRows, formatComparison } from "../src/report/compare.js";
import { instantiate, UsageError } from "../src/workloads/index.js";
import { sharedMissing, sharedPath } from "./shared-path.js";

const CLI = "dist/src/cli/main.js";
const W = ["--workload", "tlb_flush2", "--param", "size=64K", "--param", "iterations=1"];

describe("compare configurations", () => {
  it("parses labels, variants, on/off switches, mTHP sizes and arm64 features", () => {
    const c = parseConfig("lean:arch=arm64,tlbi_range=off,bbml2=on,hafdbs=off,granule=16K,mthp=64K+128K:madvise,contpte=off,pt_reclaim=off");
    assert.equal(c.label, "lean");
    assert.deepEqual(c.options, {
      arch: "arm64",
      ptReclaim: false,
      mthp: { 64: "always", 128: "madvise" },
      variants: { contpte: "off" },
      arm64: { tlbiRange: false, bbml2NoAbort: true, hafdbs: false, granule: 16 },
    });
    assert.deepEqual(parseConfig("base").options, {});
    assert.deepEqual(parseConfig("pt_reclaim=direct-always").options, { variants: { pt_reclaim: "direct-always" } });
    assert.deepEqual(parseMthp("none", 4096, "x"), {});
    assert.deepEqual(parseMthp("128K+256K:inherit", 16384, "x"), { 128: "always", 256: "inherit" }, "sizes in KiB, valid for the 16K granule");
    assert.throws(() => parseMthp("32K", 16384, "x"), /expected mTHP sizes 64K\.\.16M/, "32K is order 1 with 16K pages");
  });

  it("rejects bad configurations with what was expected", () => {
    const bad = (s: string, re: RegExp) =>
      assert.throws(
        () => parseConfig(s, () => "{}"),
        (e: unknown) => e instanceof UsageError && re.test(e.message),
        s,
      );
    bad("a:foo=1", /foo: unknown key \(expected one of: arch, thp, mthp, /);
    bad("a:arch=riscv", /arch: expected x86_64 or arm64, got "riscv"/);
    bad("a:mthp=48K", /mthp: expected mTHP sizes 16K\.\.1M/);
    bad("a:granule=64K,mthp=128K", /mthp: expected mTHP sizes 256K\.\.256M/);
    bad("a:tlbi_range=maybe", /expected on or off/);
    bad("a:contpte=sometimes", /contpte: expected one of batched, off, unfold-each, intermediate/);
    bad("a:thp=often", /expected never, madvise or always/);
    bad("a:granule=8K", /expected 4K, 16K or 64K/);
    bad("a:thp=never,thp=always", /given twice/);
    bad("a:thp", /expected key=value/);
    assert.throws(() => parseConfig("a:cost=/nonexistent/table.json"), /cannot read cost table/);
    assert.throws(() => parseConfig("a:cost=t.json", () => "{"), /is not valid JSON/);
    assert.throws(() => parseConfig("a:cost=t.json", () => '{"name":"x","cycles":{"bogus":1}}'), /cost table "t.json": cycles: unknown counter "bogus"/);
    const c = parseConfig("a:cost=t.json", () => '{"name":"x","cycles":{"ipis":1000}}');
    assert.deepEqual(c.costFile, { path: "t.json", table: { name: "x", cycles: { ipis: 1000 } } });
  });

  it("builds one row per non-zero counter with ratios against the first config, and new counters become rows", () => {
    const w = instantiate("tlb_flush2", { size: "64K", iterations: "1" });
    const c = compare(w.scenario, [parseConfig("on:pt_reclaim=on"), parseConfig("off:pt_reclaim=off")], w.options);
    const rows = comparisonRows(c);
    const faults = rows.find((r) => r.name === "faults");
    assert.deepEqual(faults?.ratios, [1, 1]);
    assert.ok(rows.some((r) => r.kind === "figure" && r.name === "peak_vmpte_kb"));
    const all = comparisonRows(c, { all: true }).filter((r) => r.kind === "counter");
    assert.equal(all.length, Object.keys(new Counters()).length, "every counter field is a row");
    const text = formatComparison(c, "t");
    assert.match(text, /faults\s+32\s+32\s+1\.00x/);
  });

  it("ptlab compare prints a side-by-side table with ratios; --json has them too", () => {
    const res = spawnSync("node", [CLI, "compare", ...W, "--config", "base:pt_reclaim=on", "--config", "noreclaim:pt_reclaim=off"], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /^ptlab compare workload tlb_flush2 \(tasks=2 mode=threads iterations=1 size=64K\): tlb_flush2, seed 1/);
    assert.match(res.stdout, /base\s+noreclaim\s+\/base/);
    assert.match(res.stdout, /ipis\s+\d+\s+\d+\s+\d+\.\d\dx/);
    const j = spawnSync("node", [CLI, "compare", ...W, "--json", "--config", "a:thp=never", "--config", "b:thp=always", "--config", "c"], { encoding: "utf8" });
    assert.equal(j.status, 0, j.stderr);
    const o = JSON.parse(j.stdout);
    assert.deepEqual(
      o.configs.map((x: { label: string }) => x.label),
      ["a", "b", "c"],
    );
    assert.equal(o.configs[1].ratios.faults, 1);
    assert.equal(o.configs[0].ratios, undefined);
    assert.equal(o.seed, 1);
    assert.equal(typeof o.ptlab_version, "string");
    // tlb_flush2 reports once per iteration.
    assert.equal(o.configs[0].reports.length, 1);
    // The default cost table applied to the totals printed beside it.
    const snake = (k: string) => k.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
    const cycles = Object.entries(DEFAULT_COST_TABLE.cycles).reduce((n, [k, w]) => n + w * o.configs[0].totals[snake(k)], 0);
    assert.equal(o.configs[0].figures.modelled_cycles, cycles, "modelled cycles from the default cost table");
  });

  it("runs a scenario file too", () => {
    const res = spawnSync("node", [CLI, "compare", "scenarios/diff/dontneed-full.yaml", "--config", "a:pt_reclaim=on", "--config", "b:pt_reclaim=off"], {
      encoding: "utf8",
    });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /pt_reclaimed\s+\d+\s+0\s+0\.00x/);
  });

  it("bad configurations and arguments: one line on stderr, exit code 2, no stack trace", () => {
    const cases: [string[], RegExp][] = [
      [[...W, "--config", "a:foo=1", "--config", "b"], /^ptlab compare: --config "a:foo=1": foo: unknown key/],
      [[...W, "--config", "a:mthp=3K", "--config", "b"], /mthp: expected mTHP sizes/],
      [[...W, "--config", "a"], /expected at least two --config/],
      [[...W, "--config", "a", "--config", "a"], /label "a" is used twice/],
      [["scenarios/default.yaml", ...W, "--config", "a", "--config", "b"], /exactly one/],
      [["--workload", "nope", "--config", "a", "--config", "b"], /unknown workload "nope"/],
      [[...W, "--config", "a", "--config", "b", "--report", "out.pdf"], /ending in \.html/],
      [["test/fixtures/bad-size.yaml", "--config", "a", "--config", "b"], /^test\/fixtures\/bad-size\.yaml:\d+:\d+: /],
    ];
    for (const [args, re] of cases) {
      const res = spawnSync("node", [CLI, "compare", "--no-progress", ...args], { encoding: "utf8" });
      assert.equal(res.status, 2, `${args.join(" ")}: ${res.stderr}`);
      assert.equal(res.stderr.trim().split("\n").length, 1, res.stderr);
      assert.match(res.stderr, re);
      assert.doesNotMatch(res.stderr, /\n\s+at /);
      assert.equal(res.stdout, "");
    }
  });
});

describe("compare --trace", () => {
  const TRACE = sharedPath("traces", "gcc-python.perftrace.gz");
  it("replays a real trace under x86-64, arm64 and a historical variant: the table, --json and the HTML report", (t) => {
    const why = sharedMissing(TRACE);
    if (why !== undefined) return t.skip(why);
    const dir = mkdtempSync(join(tmpdir(), "ptlab-compare-trace-"));
    const report = join(dir, "r.html");
    const args = [
      "compare",
      "--no-progress",
      "--trace",
      TRACE,
      "--config",
      "x86",
      "--config",
      "arm:arch=arm64,mthp=64K",
      "--config",
      "old:arch=arm64,mthp=64K,contpte=unfold-each",
    ];
    const res = spawnSync(process.execPath, [CLI, ...args, "--json", "--report", report], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    const j = JSON.parse(res.stdout);
    assert.equal(j.trace, TRACE);
    assert.ok(j.events > 10000, `${j.events} events`);
    assert.deepEqual(
      j.configs.map((c: { label: string }) => c.label),
      ["x86", "arm", "old"],
    );
    const [x86, arm, old] = j.configs as { totals: Record<string, number>; figures: Record<string, number>; reports: unknown[] }[];
    for (const c of [x86, arm, old]) {
      assert.equal(c?.reports.length, 10, "a report row at every tenth of the trace");
      assert.ok((c?.figures.peak_vmpte_kb ?? 0) > 0 && (c?.figures.modelled_cycles ?? 0) > 0);
    }
    // The same trace on different machines: x86 sends no TLBIs, arm64 does;
    // arm64 with 64K mTHP maps contpte blocks, and v6.9's helpers without
    // batched clearing unfold them one entry at a time where v6.17 clears
    // them in batches.
    const tlbi = (c: typeof x86) => ["tlbi_vale1is", "tlbi_vae1is", "tlbi_rvale1is", "tlbi_rvae1is"].reduce((n, k) => n + (c?.totals[k] ?? 0), 0);
    assert.equal(tlbi(x86), 0);
    assert.ok((x86?.totals.tlb_flush_requests ?? 0) > 0);
    assert.ok(tlbi(arm) > 0);
    assert.ok((arm?.totals.mthp_faults ?? 0) > 0, JSON.stringify(arm?.totals));
    assert.ok((old?.totals.cont_unfolds ?? 0) > (arm?.totals.cont_unfolds ?? 0), `unfolds ${old?.totals.cont_unfolds} vs ${arm?.totals.cont_unfolds}`);
    const html = readFileSync(report, "utf8");
    assert.match(html, /<h1>ptlab report: trace /);
    assert.match(html, /<svg/);
    // The text table.
    const txt = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
    assert.equal(txt.status, 0, txt.stderr);
    assert.match(txt.stdout, /^ptlab compare --trace .*perf trace|^ptlab compare --trace /);
    assert.match(txt.stdout, /peak_vmpte_kb/);
  });

  it("bad input: a missing trace, a damaged one, a granule the trace was not recorded with, --lenient without --trace", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-compare-trace-"));
    const bad = join(dir, "bad.gz");
    writeFileSync(bad, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    const cases: [string[], RegExp][] = [
      [["--trace", join(dir, "none.strace"), "--config", "a", "--config", "b"], /none\.strace:1:1: /],
      [["--trace", bad, "--config", "a", "--config", "b"], /bad\.gz:1:1: damaged gzip/],
      [["--trace", TRACE, "--config", "a", "--config", "b:arch=arm64,granule=16K"], /granule=16K: a trace replays at the 4K pages/],
      [[...W, "--lenient", "--config", "a", "--config", "b"], /--lenient applies to --trace only/],
      [["--trace", TRACE, "--workload", "tlb_flush2", "--config", "a", "--config", "b"], /exactly one/],
    ];
    for (const [args, re] of cases) {
      const res = spawnSync(process.execPath, [CLI, "compare", "--no-progress", ...args], { encoding: "utf8" });
      assert.equal(res.status, 2, `${args.join(" ")}: ${res.stderr}`);
      assert.equal(res.stderr.trim().split("\n").length, 1, res.stderr);
      assert.match(res.stderr, re);
      assert.doesNotMatch(res.stderr, /\n\s+at /);
    }
  });
});
