// The compare report's honesty: each configuration's own machine, modelled
// cycles charted per operation and adding up to the run's figure, a
// direction (better lower, higher or neither) for every counter that colours
// its ratios, thousands separators, charts whose width is bounded whatever
// the number of steps and configurations, and lines that coincide named.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../src/cli/compare.js";
import { Counters, snakeCase } from "../src/core/counters.js";
import { COUNTER_BETTER, direction, FIGURE_BETTER, verdict } from "../src/report/better.js";
import { CHART_TITLES, coincidingLines, costSpec, cyclesData, REST, renderCharts } from "../src/report/charts.js";
import { type Comparison, compare, comparisonRows } from "../src/report/compare.js";
import { groupDigits, renderReport } from "../src/report/html.js";
import { instantiate } from "../src/workloads/index.js";

function run(workload: string, params: Record<string, string>, configs: string[]): Comparison {
  const w = instantiate(workload, params);
  return compare(
    w.scenario,
    configs.map((c) => parseConfig(c, () => '{"name":"ipis-only","cycles":{"ipis":1000,"faults":10}}')),
    w.options,
  );
}

const RYAN = () => run("ryan-fork-dontneed-munmap", { size: "4M" }, ["base:mthp=none", "64K:mthp=64K", "no-reclaim:pt_reclaim=off,mthp=64K"]);

describe("compare report", () => {
  it("has a direction with a reason for every counter and figure, and colours ratios by it", () => {
    for (const k of Object.keys(new Counters())) {
      const d = direction(snakeCase(k));
      assert.equal(d, COUNTER_BETTER[k as keyof Counters], k);
      assert.ok(d.why.length > 10, `${k}: a reason`);
    }
    for (const [k, d] of Object.entries(FIGURE_BETTER)) assert.equal(direction(k), d);
    assert.equal(direction("tlb_misses").better, "lower");
    assert.equal(direction("tlb_hits").better, "higher");
    assert.equal(direction("walk_cache_hits").better, "neither");
    assert.equal(direction("pt_reclaimed").better, "neither");
    assert.equal(direction("constructor").better, "neither", "not Object.prototype's");
    assert.equal(verdict("lower", 0.5, 5), "better");
    assert.equal(verdict("lower", 2, 20), "worse");
    assert.equal(verdict("higher", 0.5, 5), "worse");
    assert.equal(verdict("higher", null, 3), "better", "new, where more is better");
    assert.equal(verdict("lower", null, 3), "worse");
    assert.equal(verdict("lower", null, 0), "same");
    assert.equal(verdict("neither", 0.2, 1), "neutral");
    assert.equal(verdict("lower", 1.004, 1004), "same", "printed as 1.00x");
    assert.equal(verdict("lower", 1.006, 1006), "worse", "printed as 1.01x");
  });

  it("shows each configuration's machine, and colours ratios by direction", async () => {
    const c = run("tlb_flush2", { size: "64K", iterations: "2" }, ["x86", "arm:arch=arm64,tlbi_range=off,mthp=64K", "old:contpte=unfold-each,arch=arm64"]);
    assert.match(c.runs[0]?.machine ?? "", /^x86_64, 2 CPUs, 4K pages, 4-level paging, THP madvise, mTHP none, PT reclaim on$/);
    assert.match(
      c.runs[1]?.machine ?? "",
      /^arm64, 2 CPUs, 4K granule, \d-level paging, THP madvise, mTHP 64K, PT reclaim on, tlbi_range off, hafdbs on, bbml2 off$/,
    );
    assert.match(c.runs[2]?.machine ?? "", /tlbi_range on, .*contpte=unfold-each$/);
    const html = await renderReport(c, { version: "t", title: "t" });
    assert.match(html, /<dt>machine<\/dt><dd>per configuration, below \(they differ\)<\/dd>/);
    for (const r of c.runs) assert.ok(html.includes(`<td style="text-align:left">${r.machine}</td>`), r.machine);
    // One machine under two cost tables: the header names it.
    const same = await renderReport(run("tlb_flush2", { size: "64K", iterations: "1" }, ["a", "b:cost=t.json"]), { version: "t", title: "t" });
    assert.match(same, /<dt>machine<\/dt><dd>x86_64, 2 CPUs, 4K pages, 4-level paging, THP madvise, mTHP none, PT reclaim on<\/dd>/);
  });

  it("charts modelled cycles first, per operation, adding up to each configuration's modelled_cycles", () => {
    const c = run("ryan-fork-dontneed-munmap", { size: "4M" }, ["base:mthp=none", "64K:mthp=64K", "ipis:cost=t.json"]);
    const { data, steps } = cyclesData(c);
    assert.deepEqual(steps.slice(0, 6), ["1. fill", "2. fork", "3. child exit", "4. dontneed", "5. refill", "6. munmap"]);
    for (const r of c.runs) {
      const mine = data.filter((d) => d.config === r.config.label);
      assert.equal(mine.length, steps.length);
      assert.equal(
        mine.reduce((s, d) => s + d.cycles, 0),
        r.figures.modelled_cycles,
        r.config.label,
      );
    }
    // The third configuration's own table: 1000 a shootdown IPI, 10 a fault.
    const ipis = c.runs[2] as Comparison["runs"][number];
    assert.equal(ipis.figures.modelled_cycles, ipis.totals.ipis * 1000 + ipis.totals.faults * 10);
    assert.ok((ipis.figures.modelled_cycles ?? 0) < (c.runs[0]?.figures.modelled_cycles ?? 0));
    const fill = data.find((d) => d.config === "base" && d.step === "1. fill");
    assert.ok(fill !== undefined && fill.cycles > 0);
    if (steps.length > 6) assert.equal(steps[6], `7. ${REST}`);
    const spec = costSpec(c) as unknown as { vconcat: { encoding: { y: { field: string; title: string } } }[] };
    assert.equal(spec.vconcat[0]?.encoding.y.field, "cycles");
    assert.equal(spec.vconcat[0]?.encoding.y.title, "modelled cycles");
  });

  it("names lines that coincide and draws each configuration with its own width, dash and shape", async () => {
    const c = RYAN();
    assert.deepEqual(coincidingLines(c), [["base", "64K"]]);
    const html = await renderReport(c, { version: "t", title: "t" });
    assert.match(html, /base and 64K coincide at every step/);
    assert.deepEqual(coincidingLines(run("ryan-fork-dontneed-munmap", { size: "4M" }, ["base:mthp=none", "no-reclaim:pt_reclaim=off"])), []);
    const svg = (await renderCharts(c))[1]?.svg ?? "";
    const widths = new Set([...svg.matchAll(/<path[^>]*stroke-width="([\d.]+)"[^>]*stroke-dasharray/g)].map((m) => m[1]));
    assert.ok(widths.size >= 2, `lines of different widths: ${[...widths].join(" ")}`);
  });

  it("groups digits in the tables and on the chart axes", async () => {
    assert.equal(groupDigits(0), "0");
    assert.equal(groupDigits(999), "999");
    assert.equal(groupDigits(1000), "1,000");
    assert.equal(groupDigits(4004682), "4,004,682");
    assert.equal(groupDigits(-1234.5), "-1,234.5");
    const c = RYAN();
    const html = await renderReport(c, { version: "t", title: "t" });
    const table = html.slice(html.indexOf("<h2>Comparison</h2>"), html.indexOf("<h2>Charts</h2>"));
    assert.doesNotMatch(table, /<td>\d{4,}<\/td>/, "no long number without separators");
    assert.ok(table.includes(`<td>${groupDigits(c.runs[0]?.figures.modelled_cycles ?? 0)}</td>`));
    // Ratios: fewer TLB misses is better (green), fewer walk-cache hits neither (grey).
    const row = (name: string) => table.split("\n").find((l) => l.startsWith(`<tr class="counter"><td>${name}</td>`)) ?? "";
    assert.match(row("tlb_misses"), /<td class="ratio better">0\.53x<\/td>/);
    assert.match(row("walk_cache_hits"), /<td class="ratio neutral">0\.53x<\/td>/);
    assert.match(row("pt_reclaimed"), /<td class="ratio neutral">0\.00x<\/td>/);
    assert.match(html, /<summary>Why each direction<\/summary>/);
    const axes = (await renderCharts(c))[0]?.svg ?? "";
    assert.match(axes, />\d{1,3}(,\d{3})+</);
    assert.doesNotMatch(axes, />\d+e\+\d+</, "no exponent notation");
  });

  it("keeps every chart within a 1200 px page, whatever the number of steps and configurations", async () => {
    const c = run("tlb_flush2", { size: "64K", iterations: "12" }, ["a", "b:pt_reclaim=off", "c:arch=arm64", "d:arch=arm64,tlbi_range=off", "e:thp=never"]);
    assert.equal(c.runs[0]?.rows.length, 12);
    const charts = await renderCharts(c);
    assert.deepEqual(
      charts.map((ch) => ch.title),
      Object.values(CHART_TITLES),
    );
    for (const ch of charts) {
      const w = Number(/<svg[^>]* width="(\d+)"/.exec(ch.svg)?.[1]);
      assert.ok(w > 300 && w <= 1100, `${ch.title}: ${w} px`);
      assert.match(ch.svg, /viewBox="0 0 \d+ \d+"/, "scales down to narrower windows");
    }
    const html = await renderReport(c, { version: "t", title: "t" });
    assert.match(html, /figure svg \{ max-width: 100%; height: auto; \}/);
    const rows = comparisonRows(c);
    assert.ok(rows.every((r) => r.better === direction(r.name).better));
  });
});
