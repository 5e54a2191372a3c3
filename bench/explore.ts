// npm run bench:explore: for every catalogue scenario (scenarios/concurrency),
// the time to the first counterexample under its historical variant (the
// exhaustive search, then shrinking), executions per second, and the time to
// explore the v6.17 code's whole bounded space. Timings are this machine's;
// the targets (first counterexample under 1 s, at most 5 s; exhaustion under
// 60 s) are printed beside them, never asserted.
//
//   node dist/bench/explore.js [--only PREFIX] [--no-cache]
//
// Then, for every scenario, the plain exhaustive search against the one with
// the state cache, at the scenario's bound and one preemption more.

import { readdirSync, readFileSync } from "node:fs";
import { benchArgs } from "./args.js";
import { type ExploreConfig, explore, scenarioConfig } from "../src/explore/explore.js";
import { parseScenario } from "../src/scenario/load.js";
import type { Scenario } from "../src/scenario/types.js";

const { values: args } = benchArgs(
  { options: { only: { type: "string" }, "no-cache": { type: "boolean", default: false } } },
  "node dist/bench/explore.js [--only NAME] [--no-cache]",
);
const DIR = "scenarios/concurrency";

function cfg(sc: Scenario, historical: boolean, shrink: boolean): ExploreConfig {
  return scenarioConfig(sc, historical, { shrink });
}

function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  return [r, (performance.now() - t0) / 1000];
}

const rows: string[][] = [["scenario", "variant", "first cex (s)", "with shrink (s)", "execs", "execs/s", "fixed: exhaust (s)", "execs", "execs/s"]];
for (const f of readdirSync(DIR)
  .filter((n) => n.endsWith(".yaml"))
  .sort()) {
  if (args.only !== undefined && !f.startsWith(args.only)) continue;
  const sc = parseScenario(readFileSync(`${DIR}/${f}`, "utf8"), `${DIR}/${f}`);
  const seeded = Object.keys(sc.explore?.variant ?? {}).length > 0 || sc.explore?.arch !== undefined;
  let cex = ["-", "-", "-", "-"];
  let vname = "-";
  if (seeded) {
    vname =
      Object.entries(sc.explore?.variant ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(",") || `arch=${sc.explore?.arch}`;
    const [r, t] = timed(() => explore(cfg(sc, true, false)));
    const [, ts] = timed(() => explore(cfg(sc, true, true)));
    cex = [r.counterexample !== null ? t.toFixed(2) : "none found", ts.toFixed(2), String(r.executions), (r.executions / t).toFixed(0)];
  }
  const [clean, tc] = timed(() => explore(cfg(sc, false, false)));
  const fixed = [
    clean.counterexample === null ? tc.toFixed(2) : `VIOLATION ${clean.counterexample.invariant}`,
    String(clean.executions),
    (clean.executions / tc).toFixed(0),
  ];
  rows.push([f.replace(/\.yaml$/, ""), vname, ...cex, ...fixed]);
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i] as number)).join("  "));
console.log("\ntargets: first counterexample < 1 s (at most 5 s); exhausting a fixed scenario's bound < 60 s. Machine: see `env`.");

// The state cache (--state-cache), side by side with the plain search on the
// fixed code: at the scenario's bound and one preemption more. Then, with no
// preemption bound, the plain search, sleep sets (--sleep-sets), the cache and
// both, each stopped after CAP executions (the biggest scenarios do not finish).
const CAP = 15000;
if (!args["no-cache"]) {
  // All plain runs first: instrumented objects leave the engine's inline
  // caches polymorphic, which would slow plain runs made after cached ones.
  type Job = { f: string; sc: Scenario; bound: number };
  const jobs: Job[] = [];
  for (const f of readdirSync(DIR)
    .filter((n) => n.endsWith(".yaml"))
    .sort()) {
    if (args.only !== undefined && !f.startsWith(args.only)) continue;
    const sc = parseScenario(readFileSync(`${DIR}/${f}`, "utf8"), `${DIR}/${f}`);
    const b = cfg(sc, false, false).preemptions;
    for (const bound of [b, b + 1, Number.POSITIVE_INFINITY]) jobs.push({ f, sc, bound });
  }
  const plain = jobs.map((j) =>
    timed(() => explore({ ...cfg(j.sc, false, false), preemptions: j.bound, executions: j.bound === Number.POSITIVE_INFINITY ? CAP : 0 })),
  );
  const t: string[][] = [["scenario", "bound", "execs plain", "execs cached", "cut", "plain (s)", "cached (s)", "cached/plain time"]];
  const u: string[][] = [["scenario", "plain", "sleep sets", "(blocked)", "cache", "cache + sleep sets"]];
  const cell = (r: ReturnType<typeof explore>, secs: number) => `${r.executions}${r.complete ? "" : " (cap)"} in ${secs.toFixed(1)} s`;
  jobs.forEach((j, i) => {
    const unbounded = j.bound === Number.POSITIVE_INFINITY;
    // Without a bound, at most CAP executions (the biggest scenarios do not finish).
    const [cached, tc] = timed(() => explore({ ...cfg(j.sc, false, false), preemptions: j.bound, stateCache: true, executions: unbounded ? CAP : 0 }));
    const p = plain[i] as [ReturnType<typeof explore>, number];
    if ((p[0].counterexample === null) !== (cached.counterexample === null)) throw new Error(`${j.f}: the state cache changed the verdict`);
    if (unbounded) {
      const over = { ...cfg(j.sc, false, false), preemptions: j.bound, executions: CAP, sleepSets: true };
      const [sl, ts] = timed(() => explore(over));
      const [both, tb] = timed(() => explore({ ...over, stateCache: true }));
      for (const r of [sl, both]) if (r.counterexample !== null) throw new Error(`${j.f}: sleep sets found ${r.counterexample.invariant} in the fixed code`);
      u.push([j.f.replace(/\.yaml$/, ""), cell(p[0], p[1]), cell(sl, ts), String(sl.sleepBlocked), cell(cached, tc), cell(both, tb)]);
      return;
    }
    t.push([
      j.f.replace(/\.yaml$/, ""),
      String(j.bound),
      String(p[0].executions),
      `${cached.executions}${cached.complete ? "" : " (cap)"}`,
      String(cached.pruned),
      p[1].toFixed(2),
      tc.toFixed(2),
      (tc / p[1]).toFixed(2),
    ]);
  });
  const tw = t[0]!.map((_, i) => Math.max(...t.map((r) => (r[i] as string).length)));
  console.log("\nstate cache (fixed code, whole space within the bound):");
  for (const r of t) console.log(r.map((c, i) => c.padEnd(tw[i] as number)).join("  "));
  const uw = u[0]!.map((_, i) => Math.max(...u.map((r) => (r[i] as string).length)));
  console.log(`\nno preemption bound (fixed code, every schedule within the step bound; at most ${CAP} executions):`);
  for (const r of u) console.log(r.map((c, i) => c.padEnd(uw[i] as number)).join("  "));
}
