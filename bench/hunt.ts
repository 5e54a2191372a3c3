// npm run bench:hunt: how fast `ptlab hunt` finds each historical variant
// from a cold start, with no catalogue scenario: for every non-default value
// of every variant in VARIANTS (src/core/machine.ts), alone, a hunt with
// --first (the first finding that v6.17 does not share), then the v6.17
// code for the same time, which should find nothing. Variants that the
// catalogue (scenarios/concurrency) seeds as bugs are expected to be found;
// the others are old code that was slower, not wrong, and are expected to
// stay clean. Prints the CPU model; timings are this machine's, the 60 s
// goal is printed beside them, never asserted.
//
// One campaign per seed cannot tell a better generator from a luckier one
// (near the line every change moves every row): --seeds 1,2,3 runs each row
// at each seed and reports how many found it; --seeded-only skips the rows
// expected to stay clean (about half the time of a run).
//
//   node dist/bench/hunt.js [--time 60] [--workers 2] [--only NAME] [--seed 1 | --seeds 1,2,3] [--seeded-only] [--executions N]

import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs } from "./args.js";
import { VARIANTS } from "../src/core/machine.js";
import { parseScenario } from "../src/scenario/load.js";

const { values: args } = benchArgs(
  {
    options: {
      time: { type: "string", default: "60" },
      workers: { type: "string", default: String(Math.min(2, availableParallelism())) },
      only: { type: "string" },
      seed: { type: "string", default: "1" },
      seeds: { type: "string" }, // a list: each row at each seed
      "seeded-only": { type: "boolean", default: false },
      "no-fixed": { type: "boolean", default: false },
      executions: { type: "string" }, // per case (hunt's --executions)
    },
  },
  "node dist/bench/hunt.js [--time 60] [--workers 2] [--only NAME] [--seed 1 | --seeds 1,2,3] [--seeded-only] [--no-fixed] [--executions N]",
);
const seedList = (args.seeds ?? (args.seed as string)).split(",");
if (!seedList.every((x) => /^\d+$/.test(x))) {
  process.stderr.write(`--seeds: expected a comma-separated list of integers >= 0, e.g. 1,2,3, got "${args.seeds}"\n`);
  process.exit(2);
}

// Variants the catalogue seeds as bugs (with their companions there).
const DIR = "scenarios/concurrency";
const seeded = new Map<string, Record<string, string>>();
const alone = new Set<string>(); // seeded by an entry with no other variant
for (const f of readdirSync(DIR).filter((n) => n.endsWith(".yaml"))) {
  const sc = parseScenario(readFileSync(join(DIR, f), "utf8"), f);
  const v = sc.explore?.variant ?? {};
  for (const [k, val] of Object.entries(v)) {
    seeded.set(`${k}=${val}`, v);
    if (Object.keys(v).length === 1) alone.add(`${k}=${val}`);
  }
}

interface Row {
  label: string;
  expect: "found" | "clean" | "with companions";
  result: string;
  invariant: string;
  cases: string;
  other: string;
}

function hunt(
  variants: Record<string, string>,
  seed: string,
): {
  first: { foundAfterSeconds: number; invariant: string } | null;
  cases: number;
  others: number;
  seconds: number;
} {
  const out = mkdtempSync(join(tmpdir(), "ptlab-bench-hunt-"));
  const vargs = Object.entries(variants).flatMap(([k, v]) => ["--variant", `${k}=${v}`]);
  const r = spawnSync(
    process.execPath,
    [
      "dist/src/cli/main.js",
      "hunt",
      ...vargs,
      "--time",
      args.time as string,
      "--workers",
      args.workers as string,
      "--seed",
      seed,
      "--first",
      "--no-progress",
      ...(args.executions !== undefined ? ["--executions", args.executions] : []),
      "--out",
      out,
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0 && r.status !== 1) throw new Error(`hunt exited ${r.status}: ${r.stderr}`);
  const s = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as {
    cases: number;
    seconds: number;
    findings: { fixedToo: boolean | null; foundAfterSeconds: number; invariant: string }[];
  };
  const own = s.findings.find((f) => f.fixedToo !== true) ?? null;
  return { first: own, cases: s.cases, others: s.findings.filter((f) => f.fixedToo === true).length, seconds: s.seconds };
}

console.log(
  `cpu: ${cpus()[0]?.model ?? "unknown"}, ${availableParallelism()} cores; hunt --time ${args.time} --workers ${args.workers} --seed${seedList.length > 1 ? `s ${seedList.join(",")}` : ` ${seedList[0]}`}${args.executions !== undefined ? ` --executions ${args.executions}` : ""}`,
);
const configs: { label: string; variants: Record<string, string>; expect: "found" | "clean" | "with companions" }[] = [];
for (const [name, values] of Object.entries(VARIANTS))
  for (const v of values.slice(1)) {
    // A value the catalogue seeds only beside another (zap_batching=off with
    // contpte=intermediate) is the historical bug only in that combination.
    const combo = seeded.get(`${name}=${v}`);
    const expect = combo === undefined ? "clean" : alone.has(`${name}=${v}`) ? "found" : "with companions";
    configs.push({ label: `${name}=${v}`, variants: { [name]: v }, expect });
  }
// A variant the catalogue seeds together with another: also the historical combination.
for (const combo of seeded.values()) {
  const label = Object.entries(combo)
    .map(([a, b]) => `${a}=${b}`)
    .join("+");
  // Seeded once per variant it holds: list it once.
  if (Object.keys(combo).length > 1 && !configs.some((c) => c.label === label)) configs.push({ label, variants: combo, expect: "found" });
}
const rows: Row[] = [];
// found: the seeds whose campaign found it.
const found = new Map<string, number>();
for (const c of configs) {
  if (args.only !== undefined && !c.label.includes(args.only)) continue;
  if (args["seeded-only"] && c.expect !== "found") continue;
  const runs = seedList.map((seed) => {
    const h = hunt(c.variants, seed);
    const result = h.first !== null ? `found in ${h.first.foundAfterSeconds.toFixed(1)} s` : `not found in ${h.seconds} s`;
    console.log(
      `${c.label}${seedList.length > 1 ? ` (seed ${seed})` : ""}: ${result} (${h.first?.invariant ?? "-"}), ${h.cases} cases, ${h.others} findings v6.17 shares`,
    );
    return h;
  });
  const hits = runs.filter((h) => h.first !== null);
  found.set(c.label, hits.length);
  const one = (h: (typeof runs)[number]) => (h.first !== null ? `${h.first.foundAfterSeconds.toFixed(1)} s` : "-");
  rows.push({
    label: c.label,
    expect: c.expect,
    result:
      seedList.length === 1
        ? (runs[0] as (typeof runs)[number]).first !== null
          ? `found in ${one(runs[0] as (typeof runs)[number])}`
          : `not found in ${(runs[0] as (typeof runs)[number]).seconds} s`
        : `found ${hits.length}/${runs.length}: ${runs.map(one).join(", ")}`,
    invariant: [...new Set(hits.map((h) => h.first?.invariant as string))].join(", ") || "-",
    cases: runs.map((h) => h.cases).join("/"),
    other: runs.map((h) => h.others).join("/"),
  });
}
if (!args["no-fixed"] && args.only === undefined) {
  const runs = seedList.map((seed) => hunt({}, seed));
  const bad = runs.filter((h) => h.first !== null);
  rows.push({
    label: "v6.17 (no variant)",
    expect: "clean",
    result:
      bad.length > 0
        ? `FOUND in ${bad.length}/${runs.length}: ${bad.map((h) => `${h.first?.foundAfterSeconds.toFixed(1)} s`).join(", ")}`
        : `clean for ${runs.map((h) => h.seconds).join("/")} s`,
    invariant: [...new Set(bad.map((h) => h.first?.invariant as string))].join(", ") || "-",
    cases: runs.map((h) => h.cases).join("/"),
    other: "-",
  });
}
const table = [
  ["configuration", "expected", "result", "invariant", "cases", "v6.17 findings too"],
  ...rows.map((r) => [r.label, r.expect, r.result, r.invariant, r.cases, r.other]),
];
const w = (table[0] as string[]).map((_, i) => Math.max(...table.map((r) => (r[i] as string).length)));
console.log("");
for (const r of table) console.log(r.map((c, i) => c.padEnd(w[i] as number)).join("  "));
const target = rows.filter((r) => r.expect === "found");
const every = target.filter((r) => found.get(r.label) === seedList.length).length;
const some = target.filter((r) => (found.get(r.label) ?? 0) > 0).length;
console.log(
  seedList.length === 1
    ? `\nfound ${every} of ${target.length} seeded configurations (a variant alone, or the combination the catalogue seeds)`
    : `\nfound at every seed: ${every} of ${target.length} seeded configurations; at some seed: ${some}; finds over all runs: ${target.reduce((n, r) => n + (found.get(r.label) ?? 0), 0)} of ${target.length * seedList.length}`,
);
console.log(`goal: every seeded configuration found within 60 s on a 2-core machine, v6.17 clean.`);
