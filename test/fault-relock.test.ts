// A fault path that drops the PTE lock and takes it again
// (finish_mkwrite_fault(), do_swap_page() on a SWP_SYNCHRONOUS_IO device)
// maps the table afresh from the PMD, as pte_offset_map_lock() does: with PT
// reclaim the page it mapped before may hold a new table by then. The
// schedule is the one ptlab hunt found (seed 13), where the model loaded
// through its view of the freed table (pt-use-after-free).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { replay, scenarioConfig } from "../src/explore/explore.js";
import { parseScenario } from "../src/scenario/load.js";

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
