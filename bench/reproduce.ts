// npm run reproduce: every published result of the seed threads that ptlab
// reproduces from first principles, in one table: the model's figure, the
// published one, their ratio, and the configuration. The model's figures are
// modelled cycles (src/core/cost.ts, docs/cost-table.md) or counts; nothing
// here is fitted to the published numbers.
//
//   node dist/bench/reproduce.js [--json] [--quick] [--cost FILE.json]

import { readFileSync } from "node:fs";
import { benchArgs } from "./args.js";
import { type CostTable, DEFAULT_COST_TABLE, modelledCycles, parseCostTable } from "../src/core/cost.js";
import { Counters, diffCounters, snapshotCounters } from "../src/core/counters.js";
import { runOnce } from "../src/explore/explore.js";
import { type ReportRow, Runner, type RunOptions, ViolationError } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import type { Scenario } from "../src/scenario/types.js";

function loadScenario(file: string): Scenario {
  return parseScenario(readFileSync(file, "utf8"), file);
}

const { values: args } = benchArgs(
  {
    options: {
      json: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      cost: { type: "string" },
    },
  },
  "node dist/bench/reproduce.js [--json] [--quick] [--cost FILE]",
);

let table: CostTable = DEFAULT_COST_TABLE;
if (args.cost !== undefined) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(args.cost, "utf8"));
  } catch (e) {
    console.error(`${args.cost}:1:1: cannot read a JSON cost table: ${(e as Error).message}`);
    process.exit(2);
  }
  const t = parseCostTable(parsed, Object.keys(new Counters()));
  if (typeof t === "string") {
    console.error(`${args.cost}:1:1: ${t}`);
    process.exit(2);
  }
  table = t;
}

const DIR = "scenarios/reproduce";

interface Line {
  experiment: string;
  config: string;
  metric: string;
  model: number;
  published: number | null;
  publishedText: string;
  source: string;
}
const lines: Line[] = [];

// --quick shrinks the 1 GiB scenarios to 64 MiB (the ratios are per-page
// figures and barely move; the table says when it was used).
function shrink(sc: Scenario): Scenario {
  if (!args.quick) return sc;
  const text = JSON.stringify(sc.steps).replaceAll('"size":1073741824', '"size":67108864');
  const steps = JSON.parse(text) as Scenario["steps"];
  const fix = (ss: Scenario["steps"]): void => {
    for (const s of ss)
      if (s.op === "repeat") {
        if (s.count === 512 && s.advance === 2 * 1024 * 1024) s.count = 32;
        fix(s.steps);
      }
  };
  fix(steps);
  return { ...sc, steps };
}

interface Result {
  rows: ReportRow[];
  violations: string[];
  vmpteKb: number;
}

function run(file: string, opts: RunOptions): Result {
  const sc = shrink(loadScenario(`${DIR}/${file}`));
  const r = new Runner(sc, { checkInvariants: false, ...opts });
  let violations: string[] = [];
  try {
    r.runAll();
    violations = r.finish().map((v) => `[${v.invariant}] ${v.message}`);
  } catch (e) {
    if (!(e instanceof ViolationError)) throw e;
    violations = e.violations.map((v) => `[${v.invariant}] ${v.message}`);
  }
  const last = r.rows[r.rows.length - 1];
  return { rows: r.rows, violations, vmpteKb: last?.processes[0]?.figures.vmpte_kb ?? 0 };
}

function rowCycles(res: Result, label: string): number {
  const row = res.rows.find((x) => x.label === label);
  if (row === undefined) throw new Error(`no report "${label}"`);
  return modelledCycles(row.counters, table);
}

// 1. Teardown with contpte (thread 1): exit cost relative to no contpte.
{
  const exitCost = (v: string) => rowCycles(run("teardown.yaml", { checkInvariants: true, variants: { contpte: v } }), "exit");
  const off = exitCost("off");
  const pub: [string, number, string][] = [
    ["unfold-each", 2.9, "+190% (1 node) / +768% (2 nodes)"],
    ["intermediate", 1.08, "+8% / +29%"],
    ["batched", 1.13, "+13% / +9%"],
  ];
  for (const [v, p, text] of pub)
    lines.push({
      experiment: "teardown: exit cost vs contpte=off",
      config: `arm64, 64K mTHP, contpte=${v}`,
      metric: "cycles ratio",
      model: exitCost(v) / off,
      published: p,
      publishedText: text,
      source: "contpte v3 clear_ptes thread, Dec 2023 (Altra)",
    });
  lines.push({
    experiment: "teardown: exit_group 'exploded'",
    config: "arm64, 64K mTHP, contpte=unfold-each vs off",
    metric: "cycles ratio",
    model: exitCost("unfold-each") / off,
    published: 32,
    publishedText: "32x",
    source: "contpte v1 12/14, v2 14/14 commit messages",
  });
}

// 2. mprotect batching (thread 4): time with the series / time before.
{
  const pub: Record<string, { arm: [number, string]; x86: [number, string] }> = {
    "mprotect-2m-pte.yaml": { arm: [0.65 / 2.1, "2.1 s -> 0.65 s"], x86: [3.7 / 3.75, "3.75 s -> 3.7 s"] },
    "mprotect-64k.yaml": { arm: [0.7 / 2.0, "2.0 s -> 0.7 s"], x86: [3.7 / 3.7, "3.7 s -> 3.7 s"] },
    "mprotect-4k.yaml": { arm: [1.1 / 1.0, "1.0 s -> 1.1 s"], x86: [3.9 / 3.85, "3.85 s -> 3.9 s"] },
  };
  for (const [file, p] of Object.entries(pub))
    for (const arch of ["arm64", "x86_64"] as const) {
      const c = (v: string) => rowCycles(run(file, { arch, variants: { mprotect_batching: v } }), "mprotect loop");
      const [pv, text] = arch === "arm64" ? p.arm : p.x86;
      lines.push({
        experiment: "mprotect batching: fixed / off",
        config: `${arch}, ${file.replace(/^mprotect-|\.yaml$/g, "")}`,
        metric: "cycles ratio",
        model: c("fixed") / c("off"),
        published: pv,
        publishedText: text,
        source: `v5 cover (${arch === "arm64" ? "Apple M3" : "x86"})`,
      });
    }
}

// 3. The folio-first-page bug (H.4): invariant violations.
for (const v of ["fixed", "folio-first-page"]) {
  const res = run("mprotect-first-page.yaml", { checkInvariants: true, variants: { mprotect_batching: v } });
  const n = res.violations.filter((x) => x.startsWith("[writable-anon-not-exclusive]")).length;
  lines.push({
    experiment: "mprotect sub-batch bug (cf1b80dc31a1)",
    config: `arm64, 64K mTHP, mprotect_batching=${v}`,
    metric: "writable non-exclusive anon PTEs",
    model: n,
    published: v === "fixed" ? 0 : null,
    publishedText: v === "fixed" ? "0 (fixed)" : "> 0 (syzbot: page_table_check BUG)",
    source: "David Hildenbrand, Aug 6 2025; fix cf1b80dc31a1",
  });
}

// 4. Zap batching (David Hildenbrand, 2024): munmap time batched / unbatched.
{
  const pub: [string, number, string][] = [
    ["munmap-4k.yaml", 0.99, "-1%"],
    ["munmap-16k.yaml", 0.8, "-20%"],
    ["munmap-64k.yaml", 0.63, "-37%"],
    ["munmap-2m-pte.yaml", 0.42, "-58%"],
  ];
  for (const [file, p, text] of pub) {
    const c = (v: string) => rowCycles(run(file, { variants: { zap_batching: v } }), "munmap");
    lines.push({
      experiment: "zap batching: batched / off",
      config: `x86_64, ${file.replace(/^munmap-|\.yaml$/g, "")}`,
      metric: "cycles ratio",
      model: c("batched") / c("off"),
      published: p,
      publishedText: text,
      source: "lore 20240214204435.167852-1-david@redhat.com (Intel Xeon)",
    });
  }
}

// 5. PT reclaim (thread 5): VmPTE after the 50 GB touch/DONTNEED loop.
if (!args.quick) {
  for (const [on, p] of [
    [false, 102640],
    [true, 240],
  ] as const) {
    const sc = loadScenario("scenarios/pt-reclaim-50g.yaml");
    const r = new Runner(sc, { checkInvariants: false, ptReclaim: on });
    r.runAll();
    const last = r.rows[r.rows.length - 1];
    lines.push({
      experiment: "PT reclaim: VmPTE after 50 GB loop",
      config: `x86_64, pt_reclaim=${on ? "on" : "off"}`,
      metric: "kB",
      model: last?.processes[0]?.figures.vmpte_kb ?? Number.NaN,
      published: p,
      publishedText: `${p} kB`,
      source: "PT reclaim cover letter (Qi Zheng); the published process had ~40 kB more",
    });
  }
}

// 6. Nested mmu_gather (7a30df49f63a, thread 3): the TLB maintenance of the
// munmap whose tlb_finish_mmu() finds MADV_DONTNEED's gather in flight
// (scenarios/concurrency/a-nested-gather.yaml, arm64), run by the explorer
// under one nesting schedule: munmap zaps, MADV_DONTNEED starts its gather,
// munmap finishes, then MADV_DONTNEED finishes.
{
  const file = "scenarios/concurrency/a-nested-gather.yaml";
  const sc = loadScenario(file);
  for (const v of ["fixed", "reset-range"]) {
    let before: Counters | null = null;
    const cfg = {
      sc,
      run: { variants: { gather_nested: v } },
      mode: "exhaustive" as const,
      preemptions: 2,
      maxSteps: 5000,
      executions: 1,
      seed: 1,
      pctDepth: 3,
      shard: { index: 0, count: 1 },
      shrink: false,
      ignore: ["stale-tlb-after-return", "freed-before-flush"],
    };
    // munmap (thread 0) to its first PTE, MADV_DONTNEED (1) into its gather, munmap to the end.
    const order = [0, 0, 0, 0, 0, 1, 1];
    const ex = runOnce(
      cfg,
      (d, cands, cur) => {
        const want = d < order.length ? (order[d] as number) : cur >= 0 && cands.includes(cur) ? cur : (cands[0] as number);
        return cands.includes(want) ? want : (cands[0] as number);
      },
      false,
      (x) => {
        before = snapshotCounters(x.m.counters);
      },
    );
    const c = diffCounters(before ?? new Counters(), snapshotCounters(ex.m.counters));
    lines.push({
      experiment: "nested mmu_gather (7a30df49f63a)",
      config: `arm64, munmap || MADV_DONTNEED, gather_nested=${v}`,
      metric: "ASID-wide TLBIs (ASIDE1IS), whole run",
      model: c.tlbiAside1is,
      published: v === "fixed" ? 1 : 0,
      publishedText: v === "fixed" ? "1: fullmm, flush_tlb_mm()" : "0: range reset, leaf-only TLBIs",
      source: "commit 7a30df49f63a; Will Deacon's review (fullmm is the cheapest full invalidate on arm64)",
    });
    lines.push({
      experiment: "nested mmu_gather (7a30df49f63a)",
      config: `arm64, munmap || MADV_DONTNEED, gather_nested=${v}`,
      metric: "leaf-only TLBIs (VALE1IS + RVALE1IS), whole run",
      model: c.tlbiVale1is + c.tlbiRvale1is,
      published: null,
      publishedText: v === "fixed" ? "the zaps' own flushes only" : "the nested flush is leaf-only: walk cache survives",
      source: "commit 7a30df49f63a (LTP mtest06 hangs on aarch64)",
    });
  }
}

if (args.json) {
  process.stdout.write(`${JSON.stringify({ costTable: table.name, quick: args.quick, lines }, null, 2)}\n`);
} else {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(3));
  const head = ["experiment", "configuration", "metric", "model", "published", "model/published"];
  const body = lines.map((l) => [
    l.experiment,
    l.config,
    l.metric,
    fmt(l.model),
    `${l.published === null ? "" : `${fmt(l.published)} `}(${l.publishedText})`,
    l.published === null || l.published === 0 ? "-" : fmt(l.model / l.published),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const row = (r: string[]) => r.map((c, i) => c.padEnd(w[i] as number)).join("  ");
  const out = [
    `ptlab reproduce (cost table ${table.name}${args.quick ? ", --quick: 64 MiB instead of 1 GiB" : ""})`,
    "",
    row(head),
    row(w.map((n) => "-".repeat(n))),
  ];
  for (const r of body) out.push(row(r));
  out.push("", "Sources:");
  for (const s of [...new Set(lines.map((l) => `  ${l.experiment}: ${l.source}`))]) out.push(s);
  process.stdout.write(`${out.join("\n")}\n`);
}
