import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { parseConfig, parseMthp } from "../src/cli/compare.js";
import { Counters } from "../src/core/counters.js";
import { compare, comparisonRows, formatComparison } from "../src/report/compare.js";
import { instantiate, UsageError } from "../src/workloads/index.js";

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
    assert.ok(o.configs[0].reports.length >= 1);
    assert.ok(o.configs[0].figures.modelled_cycles > 0, "modelled cycles from the default cost table");
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
