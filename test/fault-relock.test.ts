// A fault path that drops the PTE lock and takes it again
// (finish_mkwrite_fault(), do_swap_page() on a SWP_SYNCHRONOUS_IO device)
// maps the table afresh from the PMD, as pte_offset_map_lock() does: with PT
// reclaim the page it mapped before may hold a new table by then. The
// schedule is the one ptlab hunt found (seed 13), where the model loaded
// through its view of the freed table (pt-use-after-free).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { explore, replay, scenarioConfig } from "../src/explore/explore.js";
import { parseScenario } from "../src/scenario/load.js";
import { siteHits } from "./catalogue.js";

const FILE = "test/fixtures/mkwrite-ptreclaim.yaml";
// v1.f27c462b..2*13-1*11-3-1*4-2*2 (the scenario's hash aside)
const SCHEDULE = [...Array(13).fill(2), ...Array(11).fill(1), 3, ...Array(4).fill(1), 2, 2];

describe("fault paths that take the PTE lock again", () => {
  const sc = parseScenario(readFileSync(FILE, "utf8"), FILE);
  it("finish_mkwrite_fault() after PT reclaim freed and reused the table: no access through the old view", () => {
    const x = replay(scenarioConfig(sc, false, {}), SCHEDULE, false);
    assert.equal(x.violation, null, x.violation?.message);
    // The schedule reaches the relock after the table was replaced.
    assert.ok(x.decisions.length >= SCHEDULE.length);
  });
});

describe("pmd_install() under the PMD lock", () => {
  const FILE = "test/fixtures/pmd-install-vs-zero-wp.yaml";
  const sc = parseScenario(readFileSync(FILE, "utf8"), FILE);
  it("a fault does not put a PTE table into a PMD a huge zero page write fault cleared for its flush (hunt's schedule)", () => {
    // v1.928d015f..0*6-1*6-0*2: T1 runs while T0 waits for its flush's IPI.
    const x = replay(scenarioConfig(sc, false, {}), [...Array(6).fill(0), ...Array(6).fill(1), 0, 0], false);
    assert.equal(x.violation, null, x.violation?.message);
    const seen = siteHits("pmd_install");
    const res = explore({ ...scenarioConfig(sc, false, {}), onStart: seen.onStart });
    assert.equal(res.counterexample, null, res.counterexample?.message);
    assert.ok(seen.hits() > 0, "no fault waited for the PMD lock in pmd_install()");
  });
});
