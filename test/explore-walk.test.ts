// Hardware page walks interleave with the kernel while the explorer runs: a
// walk that loaded a table pointer and has not yet read the next level may see
// another CPU free that table. The flush that precedes the free drops the
// walker's cached pointer, so the walk restarts and faults instead of reading
// the freed table.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ExploreConfig, explore, runOnce } from "../src/explore/explore.js";
import type { Execution } from "../src/explore/execution.js";
import { siteName } from "../src/core/sync.js";
import { parseScenario } from "../src/scenario/load.js";

function scenario(arch: string): string {
  return `name: walk-vs-reclaim
machine: { arch: ${arch}, cpus: 2, thp: never }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
steps:
  - mmap: { region: r, size: 2M, thread: B }
  - touch: { region: r, length: 8K, thread: B }
concurrent:
  - read: { region: r, length: 4K, thread: A }
  - madvise: { region: r, advice: dontneed, thread: B }
`;
}

function cfg(arch: string): ExploreConfig {
  return {
    sc: parseScenario(scenario(arch), "walk.yaml"),
    run: {},
    mode: "exhaustive",
    preemptions: 2,
    maxSteps: 5000,
    executions: 0,
    seed: 1,
    pctDepth: 3,
    shard: { index: 0, count: 1 },
    shrink: false,
  };
}

let walkSite = -1;
for (let i = 0; i < 1000 && walkSite < 0; i++) if (siteName(i).startsWith("page walker:")) walkSite = i;

describe("explore: page walks are not atomic", () => {
  for (const arch of ["x86_64", "arm64"]) {
    it(`${arch}: MADV_DONTNEED reclaims the PTE table mid-walk; the walk restarts and faults`, () => {
      assert.ok(walkSite > 0, "the walker's interleaving site exists");
      let x: Execution | null = null;
      let paused = 0;
      // B runs its whole madvise while A's walk holds the PTE-table pointer.
      const ex = runOnce(
        cfg(arch),
        (_d, cands, cur) => {
          const a = (x as Execution).threads[0];
          if (a?.onStack && a.site === walkSite && cands.includes(1)) {
            paused++;
            return 1;
          }
          return cands.includes(cur) ? cur : (cands[0] as number);
        },
        false,
        (e) => {
          x = e;
        },
      );
      assert.equal(ex.violation, null, ex.violation?.message);
      assert.ok(paused > 0, "the walk stopped between levels");
      const m = ex.m;
      // The 2 MiB region has one PTE table: the one A's walk pointed to.
      assert.equal(m.counters.ptReclaimed, 1, "the table A's walk pointed to was reclaimed");
      // A faulted after the restart: a fresh table, and A's read went through
      // it. Faults: B's touch of 8K (two pages, no fault-around for anon
      // memory) and A's read.
      assert.equal(m.counters.faults, 2 + 1);
      assert.ok(ex.threads.every((t) => t.done && t.killed === null));
    });

    it(`${arch}: the whole bounded space of the race explores clean`, () => {
      const r = explore(cfg(arch));
      assert.equal(r.counterexample, null, r.counterexample?.message);
      assert.ok(r.complete);
    });
  }
});

describe("explore: a CPU in a walk or under a spinlock runs nothing else", () => {
  // Two threads of one CPU: while A is between two levels of its walk, or
  // holds the PTE lock, B (same CPU) is never a candidate; on CPU 1 it is.
  for (const bCpu of [0, 1]) {
    it(`B on CPU${bCpu}: ${bCpu === 0 ? "never runs" : "may run"} while A is mid-walk`, () => {
      const c = cfg("x86_64");
      // C (CPU 2) populates: A's TLB and walk caches start cold.
      const text = scenario("x86_64")
        .replace("cpus: 2", "cpus: 3")
        .replace("{ name: B, cpu: 1 }]", `{ name: B, cpu: ${bCpu} }, { name: C, cpu: 2 }]`)
        .replace("size: 2M, thread: B", "size: 2M, thread: C")
        .replace("length: 8K, thread: B", "length: 8K, thread: C");
      c.sc = parseScenario(text, "walk.yaml");
      let x: Execution | null = null;
      let offered = 0;
      const ex = runOnce(
        c,
        (_d, cands, cur) => {
          const a = (x as Execution).threads[0];
          if (a?.onStack && a.site === walkSite && cands.includes(1)) offered++;
          return cands.includes(cur) ? cur : (cands[0] as number);
        },
        false,
        (e) => {
          x = e;
        },
      );
      assert.equal(ex.violation, null, ex.violation?.message);
      if (bCpu === 0) assert.equal(offered, 0, "B was offered A's CPU in the middle of A's walk");
      else assert.ok(offered > 0, "B could run beside A's walk");
    });
  }
});
