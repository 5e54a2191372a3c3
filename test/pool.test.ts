// The array pool (src/core/pool.ts) and the explorer's recycling of each
// execution's machine: a recycled array comes back zeroed, and exploring with
// recycling gives the same executions and counterexamples as without.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { makeArch } from "../src/core/arch/select.js";
import { defaultConfig } from "../src/core/machine.js";
import { giveArrays, takeArray } from "../src/core/pool.js";
import { type ExploreConfig, explore, scenarioConfig } from "../src/explore/explore.js";
import { parseScenario } from "../src/scenario/load.js";
import { newMachine } from "../src/core/index.js";

describe("array pool", () => {
  it("hands a given-back array out again, zeroed", () => {
    const a = takeArray(Float64Array, 777);
    a.fill(5);
    giveArrays(a);
    const b = takeArray(Float64Array, 777);
    assert.equal(b, a, "the same array is reused");
    assert.ok(
      b.every((x) => x === 0),
      "zeroed",
    );
    // Another length or type is another pool.
    giveArrays(b);
    assert.notEqual(takeArray(Float64Array, 778), b);
    assert.notEqual(takeArray(Int32Array, 777) as unknown, b);
  });

  it("a released machine's arrays serve the next machine, which starts as a fresh one", () => {
    for (const arch of ["x86_64", "arm64"] as const) {
      const cfg = { ...defaultConfig(), cpus: 2 };
      const m1 = newMachine(makeArch(arch, 4, cfg.arm64), cfg);
      const mm = m1.newMm(0x7f0000000000);
      m1.tables.set(mm.pgd * m1.geo.ptrs + 3, 12345);
      m1.phys.alloc(0);
      m1.cpus[0]?.tlb.insert(5, 1, 9, 1);
      const chunk = m1.tables.chunks[0];
      m1.release();
      const m2 = newMachine(makeArch(arch, 4, cfg.arm64), cfg);
      assert.equal(m2.tables.chunks.length, 0);
      const mm2 = m2.newMm(0x7f0000000000);
      assert.equal(m2.tables.chunks[0], chunk, `${arch}: the chunk is reused`);
      assert.ok(
        (m2.tables.chunks[0] as Float64Array).every((x) => x === 0),
        `${arch}: no entry survives`,
      );
      assert.equal(m2.tables.get(mm2.pgd * m2.geo.ptrs + 3), 0);
      assert.equal(m2.cpus[0]?.tlb.lookup(5, 1), -1, `${arch}: no TLB entry survives`);
      assert.equal(m2.phys.highWater, m1.phys.highWater - 1, `${arch}: frame state starts afresh`);
    }
  });
});

describe("explore with recycled machines", () => {
  const run = (file: string, variants: Record<string, string>, over: Partial<ExploreConfig>) => {
    const sc = parseScenario(readFileSync(file, "utf8"), file);
    const c = { ...scenarioConfig(sc, false), run: { variants }, shrink: true, ...over };
    const plain = explore(c);
    const recycled = explore({ ...c, recycle: true });
    return [plain, recycled] as const;
  };
  it("finds the same counterexample after the same executions (sweep, PCT, exhaustive)", () => {
    for (const mode of ["sweep", "pct", "exhaustive"] as const) {
      const [a, b] = run("scenarios/concurrency/a-nested-gather.yaml", { gather_nested: "none" }, { mode, executions: mode === "pct" ? 400 : 0 });
      assert.ok(a.counterexample !== null, `${mode}: the historical variant is found`);
      assert.equal(b.executions, a.executions, mode);
      assert.deepEqual(b.counterexample?.schedule, a.counterexample?.schedule, mode);
      assert.equal(b.counterexample?.invariant, a.counterexample?.invariant, mode);
    }
  });
  it("explores a clean entry to the same end on arm64", () => {
    const [a, b] = run("scenarios/concurrency/clean-arm64-contpte-split.yaml", {}, {});
    assert.equal(a.counterexample, null);
    assert.ok(a.complete);
    assert.deepEqual({ ...b }, { ...a });
  });
});
