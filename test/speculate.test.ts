// Speculative TLB fills (explore.speculate, --speculate): the walker's
// speculative walk caches only what hardware may cache (valid leaves, the
// Access flag set, never dirty; nothing for an old entry without hardware AF
// management), a fill is what makes the nested-gather race reachable when
// no access walks the freed table, and exploration with fills is
// deterministic and replays from its token.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { speculativeFill } from "../src/core/hw/walker.js";
import { TLB_D } from "../src/core/hw/tlb.js";
import { idxAt } from "../src/core/geometry.js";
import type { Machine } from "../src/core/machine.js";
import type { Mm } from "../src/core/mm/types.js";
import { configKey, type ExploreConfig, explore, fnv1a, parseToken, replay, runOnce, scenarioConfig } from "../src/explore/explore.js";
import { isSpec } from "../src/explore/execution.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";

// The global index of the leaf entry for addr and its level, or null.
function leafOf(m: Machine, mm: Mm, addr: number): { ei: number; level: number } | null {
  const A = m.arch;
  const T = m.tables;
  const vpn = addr / m.geo.pageSize;
  let slot = mm.pgd;
  for (let level = A.levels - 1; level >= 0; level--) {
    const ei = slot * T.ptrs + idxAt(m.geo, vpn, level);
    const v = T.get(ei);
    if (v === 0) return null;
    if (level > 0 && A.entryIsTable(v)) {
      slot = T.slotOfPfn(A.ptePfn(v));
      continue;
    }
    return { ei, level };
  }
  return null;
}

function machineAfter(yaml: string): { r: Runner; mm: Mm; base: number } {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  const p = r.procs.get("p");
  assert.ok(p !== undefined);
  return { r, mm: p.mm, base: (p.regions.get("r") as { start: number }).start };
}

const twoCpus = (machine: string, extra = "") => `
name: t
machine: ${machine}
processes:
  - { name: p, threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }] }
steps:
  - mmap: { region: r, size: 128K, thread: A }
  - touch: { region: r, length: 8K, thread: A }
  - read: { region: r, offset: 64K, length: 4K, thread: B }
${extra}`;

describe("speculativeFill(): what a speculative walk caches", () => {
  for (const arch of ["x86_64", "arm64"]) {
    it(`${arch}: sets the Access flag of the leaf, never the dirty state, and fills the TLB`, () => {
      const { r, mm, base } = machineAfter(twoCpus(`{ arch: ${arch}, cpus: 2 }`));
      const m = r.m;
      const A = m.arch;
      const at = leafOf(m, mm, base + 4096);
      assert.ok(at !== null);
      // Page 1 as if never used since it was mapped: old and clean, in no TLB.
      m.tables.set(at.ei, A.pteMkclean(A.pteMkold(m.tables.get(at.ei))));
      m.cpus[0]?.tlb.invalidateAll();
      const vpn = (base + 4096) / m.geo.pageSize;
      assert.equal(m.cpus[1]?.tlb.lookup(vpn, m.cpus[1].asid), -1);
      assert.ok(speculativeFill(m, 1, mm, vpn));
      const v = m.tables.get(at.ei);
      assert.ok(A.pteYoung(v), "the walk set the Access flag");
      assert.ok(!A.pteDirty(v), "a speculative walk sets no dirty state");
      const tlb = m.cpus[1]?.tlb;
      assert.ok(tlb !== undefined);
      const i = tlb.lookup(vpn, m.cpus[1]?.asid as number);
      assert.ok(i >= 0, "CPU 1 caches the translation");
      assert.equal((tlb.perm[i] as number) & TLB_D, 0);
      assert.deepEqual(r.finish(), []);
    });
    it(`${arch}: fills nothing for a page that is not mapped, and adds the walk cache on the way`, () => {
      const { r, mm, base } = machineAfter(twoCpus(`{ arch: ${arch}, cpus: 2 }`));
      const m = r.m;
      const vpn = (base + 32 * 1024) / m.geo.pageSize;
      assert.equal(leafOf(m, mm, base + 32 * 1024), null);
      assert.equal(speculativeFill(m, 1, mm, vpn), false);
      assert.equal(m.cpus[1]?.tlb.lookup(vpn, m.cpus[1].asid), -1);
      assert.equal(m.cpus[1]?.tlb.lookupHuge(vpn, m.cpus[1].asid), -1);
    });
  }
  it("arm64 without hardware AF management: an old entry is not cached and stays old", () => {
    const { r, mm, base } = machineAfter(twoCpus("{ arch: arm64, cpus: 2, arm64: { hafdbs: false } }"));
    const m = r.m;
    const A = m.arch;
    const at = leafOf(m, mm, base + 4096);
    assert.ok(at !== null);
    const old = A.pteMkold(m.tables.get(at.ei));
    m.tables.set(at.ei, old);
    const vpn = (base + 4096) / m.geo.pageSize;
    assert.equal(speculativeFill(m, 1, mm, vpn), false);
    assert.equal(m.tables.get(at.ei), old);
    assert.equal(m.cpus[1]?.tlb.lookup(vpn, m.cpus[1].asid), -1);
  });
  it("arm64 contpte: a 64K entry from any PTE of the block", () => {
    const { r, mm, base } = machineAfter(twoCpus("{ arch: arm64, cpus: 2, mthp: { 64K: always } }"));
    const m = r.m;
    const vpn = (base + 5 * 4096) / m.geo.pageSize;
    assert.ok(speculativeFill(m, 1, mm, vpn));
    const tlb = m.cpus[1]?.tlb;
    assert.ok(tlb !== undefined);
    const h = tlb.lookupHuge(vpn, m.cpus[1]?.asid as number);
    assert.ok(h >= 0, "a contiguous entry");
    assert.equal(tlb.hshift[h], 16);
    assert.deepEqual(r.finish(), []);
  });
});

const FIXTURE = "test/fixtures/speculate-nested-gather.yaml";
const nested = () => parseScenario(readFileSync(FIXTURE, "utf8"), FIXTURE);

function cfgOf(speculate: number, historical = true, over: Partial<ExploreConfig> = {}): ExploreConfig {
  return scenarioConfig(nested(), historical, { speculate, shrink: true, ...over });
}

describe("explore with speculative fills", () => {
  it("nested gather, reset-range: clean without fills (no access walks the freed table)", () => {
    const r = explore(cfgOf(0));
    assert.equal(r.counterexample, null, r.counterexample?.message);
    assert.ok(r.complete);
  });
  it("nested gather, reset-range: one speculative fill makes the freed table reachable", () => {
    const r = explore(cfgOf(1));
    const cx = r.counterexample;
    assert.ok(cx !== null, "a counterexample");
    assert.ok(["freed-before-flush", "stale-tlb-after-return"].includes(cx.invariant), cx.invariant);
    assert.ok(
      cx.trace.some((s) => s.thread === "hw" && s.site.includes("speculative walk")),
      "the trace shows the fill",
    );
    assert.ok(cx.shrunk);
  });
  it("nested gather, v6.17: clean with one speculative fill", () => {
    const r = explore(cfgOf(1, false));
    assert.equal(r.counterexample, null, r.counterexample?.message);
    assert.ok(r.complete);
  });
  it("the same search twice gives the same counterexample; its token replays it", () => {
    const a = explore(cfgOf(1));
    const b = explore(cfgOf(1));
    assert.ok(a.counterexample !== null && b.counterexample !== null);
    assert.equal(JSON.stringify(a.counterexample), JSON.stringify(b.counterexample));
    assert.equal(a.executions, b.executions);
    const tok = parseToken(a.counterexample.token);
    assert.equal(tok.key, configKey(cfgOf(1)));
    const x = replay(cfgOf(1), tok.schedule, false);
    assert.equal(x.violation?.invariant, a.counterexample.invariant);
    // Without fills the schedule does not run: its fill is not a choice.
    const y = replay(cfgOf(0), tok.schedule, false);
    assert.equal(y.violation, null);
  });
  it("replay tokens: the key names the fill budget; without it the key is as before", () => {
    assert.notEqual(configKey(cfgOf(1)), configKey(cfgOf(0)));
    assert.notEqual(configKey(cfgOf(1)), configKey(cfgOf(2)));
    const c = cfgOf(0);
    const legacy = fnv1a(JSON.stringify([{ ...c.sc, file: "" }, { ...c.run, onStep: undefined }, c.maxSteps]))
      .toString(16)
      .padStart(8, "0");
    assert.equal(configKey(c), legacy);
  });
  it("random mode with fills is deterministic for a seed", () => {
    const a = explore(cfgOf(2, true, { mode: "random", executions: 40, seed: 7, shrink: false }));
    const b = explore(cfgOf(2, true, { mode: "random", executions: 40, seed: 7, shrink: false }));
    assert.equal(JSON.stringify(a), JSON.stringify(b));
  });
  it("after a fill every other candidate is offered again (two fills in one stretch)", () => {
    // At the first two decisions take a fill if one is offered.
    const x = runOnce(
      cfgOf(2, false),
      (d, cands, cur) => {
        const f = cands.find(isSpec);
        if (d < 2 && f !== undefined) return f;
        return cur >= 0 && cands.includes(cur) ? cur : (cands[0] as number);
      },
      false,
    );
    assert.ok(isSpec(x.decisions[0]?.chosen as number));
    assert.ok(isSpec(x.decisions[1]?.chosen as number), "a second fill right after the first");
    assert.notEqual(x.decisions[0]?.chosen, x.decisions[1]?.chosen);
    assert.equal(x.specUsed, 2);
  });
  it("sleep sets refuse fills", () => {
    assert.throws(() => explore(cfgOf(1, true, { sleepSets: true, preemptions: Number.POSITIVE_INFINITY })), ScenarioError);
  });
});

describe("bad input", () => {
  const CLI = "dist/src/cli/main.js";
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, "explore", ...args, "--no-progress"], { encoding: "utf8" });
  it("explore.speculate: not an integer 0..8 is a ScenarioError at its position", () => {
    const text = readFileSync(FIXTURE, "utf8").replace("  preemptions: 2\n", "  preemptions: 2\n  speculate: x\n");
    const lines = text.split("\n");
    const line = lines.findIndex((l) => l.includes("speculate: x")) + 1;
    try {
      parseScenario(text, "t.yaml");
      assert.fail("no error");
    } catch (e) {
      assert.ok(e instanceof ScenarioError, String(e));
      assert.equal(e.line, line);
      assert.equal(e.col, 14);
      assert.match(e.message, /explore\.speculate: expected an integer from 0 to 8/);
    }
  });
  it("--speculate -1, --speculate x and --speculate with --sleep-sets: one line, exit 2", () => {
    for (const v of ["-1", "x", "9"]) {
      const r = run([FIXTURE, "--speculate", v]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /--speculate/);
    }
    const s = run([FIXTURE, "--speculate", "1", "--sleep-sets"]);
    assert.equal(s.status, 2, s.stderr);
    assert.match(s.stderr, /sleep-sets does not combine with speculative fills/);
  });
});
