// The explorer's state cache (--state-cache): it may only cut an execution at
// a state whose future it has already explored. Checked three ways on the
// catalogue: the verdict is the same with and without it; wherever it cut,
// the two schedules it took for the same state behave the same under the
// same continuation (final page tables, TLBs, locks, violation); and every
// object reachable from the machine is tracked.
//
// The catalogue's entries are split over explore-cache-{0,1,2}.test.ts (every
// third file each), so that node --test can run the shares side by side.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import type { Execution } from "../src/explore/execution.js";
import { type ExploreConfig, explore, runOnce, scenarioConfig } from "../src/explore/explore.js";
import { Counters } from "../src/core/counters.js";
import { snapshot } from "../src/explore/snapshot.js";
import { DIR, files, isSeeded, load } from "./catalogue.js";
import type { Scenario } from "../src/scenario/types.js";

const cfg = scenarioConfig;

// Runs `prefix`, then always the lowest (or highest) thread id that can run
// (a choice that does not depend on who ran last), to the end; returns what
// the run left behind.
function outcome(c: ExploreConfig, prefix: number[], high: boolean): string {
  let x: Execution | null = null;
  const e = runOnce(
    c,
    (d, cands) => (d < prefix.length ? (prefix[d] as number) : (cands[high ? cands.length - 1 : 0] as number)),
    false,
    (ex) => {
      x = ex;
    },
  );
  const s = snapshot(e.m, x as unknown as Execution);
  const flat = (m: Map<string, string>) => [...m].sort().join("\n");
  return [
    e.violation?.invariant ?? "ok",
    e.infeasible,
    e.truncated,
    flat(s.ptes),
    flat(s.tlbs),
    flat(s.locks),
    e.threads.map((t) => `${t.done}/${t.killed}`).join(),
  ].join("\n--\n");
}

// The model's state after exactly `prefix` (the execution stops there).
function stateAt(c: ExploreConfig, prefix: number[]): Execution {
  return runOnce(c, (d) => (d < prefix.length ? (prefix[d] as number) : -1), false);
}

// First difference between two model states, walking both object graphs in
// step (statistics, configuration and functions left out), or "".
function difference(a: unknown, b: unknown, path: string, seen = new Set<unknown>()): string {
  if (typeof a === "function" || typeof b === "function") return "";
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return Object.is(a, b) ? "" : `${path}: ${String(a)} vs ${String(b)}`;
  if (a instanceof Counters || seen.has(a)) return "";
  seen.add(a);
  if (ArrayBuffer.isView(a)) {
    const x = a as unknown as ArrayLike<number>;
    const y = b as unknown as ArrayLike<number>;
    if (x.length !== y.length) return `${path}.length: ${x.length} vs ${y.length}`;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return `${path}[${i}]: ${x[i]} vs ${y[i]}`;
    return "";
  }
  const entries = (o: object): [unknown, unknown][] =>
    o instanceof Map
      ? [...o]
      : o instanceof Set
        ? [...o].map((v, i) => [i, v])
        : Object.keys(o)
            .filter((k) => k !== "il" && k !== "config" && k !== "arch" && k !== "geo")
            .map((k) => [k, (o as Record<string, unknown>)[k]]);
  const ea = entries(a);
  const eb = entries(b);
  if (ea.length !== eb.length) return `${path}: ${ea.length} vs ${eb.length} entries`;
  for (let i = 0; i < ea.length; i++) {
    const [ka, va] = ea[i] as [unknown, unknown];
    const [kb, vb] = eb[i] as [unknown, unknown];
    if (typeof ka !== "object" && ka !== kb) return `${path}: key ${String(ka)} vs ${String(kb)}`;
    const d = difference(va, vb, `${path}.${String(ka)}`, seen);
    if (d !== "") return d;
  }
  return "";
}

// Explores with and without the cache and checks the cache's cuts.
function compareWithCache(f: string, sc: Scenario, historical: boolean, over: Partial<ExploreConfig>): void {
  const plain = explore(cfg(sc, historical, over));
  const cuts: [number[], number[]][] = [];
  const cached = explore(
    cfg(sc, historical, {
      ...over,
      stateCache: true,
      onPrune: (now, before) => {
        cuts.push([now, before]);
      },
    }),
  );
  const what = `${f} ${historical ? "variant" : "fixed"}`;
  assert.equal(cached.counterexample?.invariant, plain.counterexample?.invariant, what);
  assert.equal(cached.complete, plain.complete);
  assert.ok(cached.executions <= plain.executions, "the cache never adds executions");
  if (!historical) assert.ok(cached.pruned > 0, `${what}: some execution was cut`);
  const c = cfg(sc, historical, over);
  // Up to 200 cuts spread over the run: the same model state...
  const every = Math.max(1, Math.floor(cuts.length / 200));
  for (let i = 0; i < cuts.length; i += every) {
    const [now, before] = cuts[i] as [number[], number[]];
    const x = stateAt(c, now);
    const y = stateAt(c, before);
    assert.equal(difference(x.m, y.m, "m"), "", `${what}: cut at ${now.join(",")} (state met at ${before.join(",")})`);
    // Which locks are held, in whatever order they were taken.
    assert.deepEqual([...x.lockHolders()].sort(), [...y.lockHolders()].sort());
  }
  // ...and 16 of them continued two ways: the same future.
  const step = Math.max(1, Math.floor(cuts.length / 16));
  for (let i = 0; i < cuts.length; i += step) {
    const [now, before] = cuts[i] as [number[], number[]];
    for (const high of [false, true])
      assert.equal(outcome(c, now, high), outcome(c, before, high), `${what}: cut at ${now.join(",")} (state met at ${before.join(",")})`);
  }
}

// The state-cache suite over every `of`-th catalogue entry from `share`; share 0
// also runs the tests that are not per entry.
export function stateCacheSuite(share: number, of: number): void {
  describe(`explore: state cache (share ${share + 1} of ${of})`, () => {
    files.forEach((f, i) => {
      if (i % of === share) entryTest(f);
    });
    if (share === 0) extraTests();
  });
}

function entryTest(f: string): void {
  const sc = load(f);
  const seeded = isSeeded(sc);
  it(`${f}: same verdict with the cache; the schedules it merged behave alike`, () => {
    for (const historical of seeded ? [false, true] : [false]) compareWithCache(f, sc, historical, {});
  });
}

function extraTests(): void {
  it("with no preemption bound too (the small catalogue entries)", () => {
    for (const f of ["c-contpte-intermediate.yaml", "d-mprotect-fork.yaml", "f-semi-rcu.yaml"])
      for (const historical of [false, true]) compareWithCache(f, load(f), historical, { preemptions: Number.POSITIVE_INFINITY });
  });

  it("every object reachable from the machine is tracked after each step", () => {
    for (const f of ["clean-x86-mixed.yaml", "clean-arm64-contpte.yaml", "e-pt-reclaim-direct.yaml"]) {
      const c = cfg(load(f), false);
      for (let k = 0; k < 20; k++) {
        let x: Execution | null = null;
        let bad = 0;
        let what = "";
        let i = 0;
        runOnce(
          c,
          (_d, cands) => {
            const t = (x as unknown as { tracker: { unknownReachable(): number; lastUnknown: string } | null }).tracker;
            if (t !== null && t.unknownReachable() > 0) {
              bad++;
              what = t.lastUnknown;
            }
            return cands[(i++ * 7 + k) % cands.length] as number;
          },
          false,
          (ex) => {
            x = ex;
          },
          true,
        );
        assert.equal(bad, 0, `${f}: untracked: ${what}`);
      }
    }
  });
}

export function stateCacheCliSuite(): void {
  describe("explore: --state-cache on the command line", () => {
    it("reports the cut executions and still finds the counterexample", () => {
      const run = (args: string[]) => spawnSync(process.execPath, ["dist/src/cli/main.js", "explore", ...args, "--no-progress"], { encoding: "utf8" });
      const clean = run([`${DIR}/h-dontneed-race.yaml`, "--state-cache"]);
      assert.equal(clean.status, 0, clean.stderr);
      assert.match(clean.stdout, /state cache: \d+ executions stopped at a state already explored/);
      const bug = run([`${DIR}/h-dontneed-race.yaml`, "--state-cache", "--historical"]);
      assert.equal(bug.status, 1, bug.stderr);
      assert.match(bug.stdout, /COUNTEREXAMPLE/);
    });
  });
}
