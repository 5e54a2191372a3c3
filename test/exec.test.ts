// The exec step: a fresh address space, the old one torn down.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";

const sc = (steps: string) =>
  parseScenario(`name: t\nprocesses: [{ name: p, threads: [{ name: a, cpu: 0 }, { name: b, cpu: 1 }] }]\nsteps:\n${steps}`, "t.yaml");

describe("exec", () => {
  it("replaces the address space: old pages and tables freed, regions forgotten, nothing leaks", () => {
    const r = new Runner(
      sc(`  - mmap: { region: r, size: 4M, thread: a }
  - touch: { region: r, thread: a }
  - report: before
  - exec: { thread: a }
  - mmap: { region: s, size: 64K, thread: a }
  - touch: { region: s, thread: a }
  - report: after
`),
    );
    const { violations } = r.runToEnd();
    assert.deepEqual(violations, []);
    const [before, after] = r.rows;
    assert.equal(before?.processes[0]?.figures.rss_anon_kb, 4096);
    assert.equal(after?.processes[0]?.figures.rss_anon_kb, 64);
    // The old mm's 4M (1024 pages); the new one's stay mapped until the report.
    assert.equal(after?.counters.pagesFree, 1024, "the old mm's pages are freed");
  });
  it("leaves only the calling thread; the old regions are unknown", () => {
    const r = new Runner(
      sc(`  - mmap: { region: r, size: 64K, thread: a }
  - exec: { thread: a }
  - touch: { region: r, thread: a }
`),
    );
    assert.throws(
      () => r.runAll(),
      (e: unknown) => e instanceof ScenarioError && /unknown region "r"/.test(e.message) && e.line === 6,
    );
    const r2 = new Runner(sc(`  - exec: { thread: a }\n  - mmap: { region: r, size: 64K, thread: b }\n`));
    assert.throws(
      () => r2.runAll(),
      (e: unknown) => e instanceof ScenarioError && /thread "b" does not exist/.test(e.message),
    );
  });
});
