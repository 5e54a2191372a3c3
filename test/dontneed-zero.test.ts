// The data oracle's zero-fill rule (invariant 5): after a MADV_DONTNEED of
// private anonymous memory returns, a page nobody stored to since reads as
// zeroes. With it the explorer sees a zap that skipped a mapping: the old
// madvise_free_huge_pmd() (madv_free_pmd=clear, before 58ceeb6bec86) and,
// as a model error found by hunt, the OOM reaper without MMF_UNSTABLE.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { siteHits } from "./catalogue.js";
import { parseScenario } from "../src/scenario/load.js";

const FILE = "scenarios/concurrency/r-madv-free-pmd-clear.yaml";

function cfg(text: string, variants: Record<string, string>, over: Partial<ExploreConfig> = {}): ExploreConfig {
  const sc = parseScenario(text, FILE);
  return { ...defaultConfig(sc), sc, run: { variants }, preemptions: 1, ...over };
}

describe("MADV_DONTNEED reads back zeroes", () => {
  const text = readFileSync(FILE, "utf8");
  it("madv_free_pmd=clear: the zap skips the emptied PMD and the read after it sees the set-up's data", () => {
    const res = explore(cfg(text, { madv_free_pmd: "clear" }));
    assert.equal(res.counterexample?.invariant, "read-not-last-write");
    assert.match(res.counterexample?.message ?? "", /not zeroes/);
  });
  it("v6.17: the zap finds the pmdp_invalidate()d entry, waits for the PMD lock, and the read sees zeroes (a fresh THP in frames that may have held the old one)", () => {
    const seen = siteHits("before set_pmd_at()");
    const res = explore(cfg(text, {}, { onStart: seen.onStart }));
    assert.equal(res.counterexample, null);
    assert.ok(seen.hits() > 0, "no execution preempted MADV_FREE between pmdp_invalidate() and set_pmd_at()");
  });
  it("a third thread's store before, during or after the MADV_DONTNEED: its own read sees zeroes or its store, never a false alarm", () => {
    // Before the zap began: zapped, zeroes expected. During it: either.
    // After the return: the store.
    const t2 = text
      .replace("threads: [{ name: F, cpu: 0 }, { name: D, cpu: 1 }]", "threads: [{ name: F, cpu: 0 }, { name: D, cpu: 1 }, { name: T, cpu: 2 }]")
      .replace("cpus: 2", "cpus: 3")
      .replace(
        "  - read: { region: r, length: 4K, thread: D }",
        "  - read: { region: r, length: 4K, thread: D }\n  - touch: { region: r, length: 4K, thread: T }\n  - read: { region: r, length: 4K, thread: T }",
      );
    const res = explore(cfg(t2, {}));
    assert.equal(res.counterexample, null);
  });
});
