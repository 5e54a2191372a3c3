// do_swap_page()'s SWP_SYNCHRONOUS_IO path (a slot read into a folio of its
// own, outside the swap cache): the slot pin of swapcache_prepare() /
// swapcache_clear() in the swap device, and under the explorer the read
// with the PTE lock dropped, where a second swap-in of the same entry waits
// for the first (v6.17) or, before 13ddaf26be32 (swapin_direct=unpinned),
// races it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { SwapDevice } from "../src/core/mm/swap.js";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { siteHits } from "./catalogue.js";
import { parseScenario } from "../src/scenario/load.js";

describe("swap device: the swapcache_prepare() pin", () => {
  it("pins a slot one entry references; a second prepare, a cached slot and a free slot fail", () => {
    const d = new SwapDevice(4);
    const s = d.allocSlot(100); // in the swap cache for folio 100
    d.duplicate(s);
    assert.equal(d.prepare(s), false, "a slot with a folio in the swap cache has SWAP_HAS_CACHE");
    d.deleteFromCache(100);
    assert.equal(d.prepare(s), true);
    assert.equal(d.prepare(s), false, "a second swap-in of the same entry");
    assert.equal(d.prepare(2), false, "a slot no entry references");
  });
  it("keeps a pinned slot allocated after its last entry is freed, until swapcache_clear()", () => {
    const d = new SwapDevice(1);
    const s = d.allocSlot(100);
    d.duplicate(s);
    d.deleteFromCache(100);
    assert.equal(d.used, 1);
    assert.ok(d.prepare(s));
    assert.equal(d.free(s), false, "the pin holds the slot");
    assert.ok(d.allocated(s));
    assert.equal(d.allocSlot(200), -1, "a full device: the pinned slot is not handed out");
    d.clearPin(s);
    assert.equal(d.used, 0);
    assert.equal(d.allocSlot(200), s, "released, the slot is handed out again");
  });
});

// The configuration `ptlab explore FILE` would use, with a variant and overrides.
function cfg(file: string, variants: Record<string, string>, over: Partial<ExploreConfig> = {}): ExploreConfig {
  const base = defaultConfig(parseScenario(readFileSync(file, "utf8"), file));
  return { ...base, run: { variants }, preemptions: 2, ...over };
}

describe("explore: two swap-ins of one entry", () => {
  const FILE = "scenarios/concurrency/o-swapin-skip-cache.yaml";
  it("v6.17: the second waits for the first's pin (some execution does), and no store is lost at 2 preemptions", () => {
    const seen = siteHits("swapcache_prepare() failed");
    const res = explore(cfg(FILE, {}, { onStart: seen.onStart }));
    assert.equal(res.counterexample, null);
    assert.ok(seen.hits() > 0, "no execution waited on another swap-in's pin");
  });
  it("unpinned (before 13ddaf26be32): a swap-out reuses the freed slot and the first swap-in maps its stale copy", () => {
    const res = explore(cfg(FILE, { swapin_direct: "unpinned" }, { preemptions: 1 }));
    assert.equal(res.counterexample?.invariant, "read-not-last-write");
  });
  it("unpinned with a device of two slots: the swap-out takes the other slot, pte_same() fails, nothing is lost", () => {
    const text = readFileSync(FILE, "utf8").replace("swap: 4K", "swap: 8K");
    const sc = parseScenario(text, FILE);
    const res = explore({ ...cfg(FILE, { swapin_direct: "unpinned" }), sc });
    assert.equal(res.counterexample, null);
  });
});
