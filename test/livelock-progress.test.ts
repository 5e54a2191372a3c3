// The livelock check in userAccessGen() (src/core/hw/walker.ts) counts a
// fault as alone when no other thread moved since the last retry. A thread
// that goes on from a point() inside its plain function (contpteConvert()'s
// per-entry points, a walk) moves without taking a scheduler step; before
// that counted, hunt seed 13 reported a `livelock` for a write fault
// waiting on another thread's swap-in (swapcache_prepare() failed) while a
// third thread unfolded a contpte block: a false positive of the checker.
// The schedule is the one hunt found and minimised.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseToken, replay, scenarioConfig } from "../src/explore/explore.js";
import { parseScenario } from "../src/scenario/load.js";

const FILE = "test/fixtures/swapin-wait-beside-unfold.yaml";
const TOKEN = "v1.1b4b712a..2*8-0*8-1-0*5-1*2-0-1-0*4-1-0-1-0*4-1-0-1-0*4-1*2-0-1-0*4-1-0-1-0*4-1-0-1-0*4-1-0-1-0*4-1-0-1-0";

describe("livelock check: progress inside another thread's plain function", () => {
  const sc = parseScenario(readFileSync(FILE, "utf8"), FILE);
  it("a fault retrying on a swap-in beside a contpte unfold is not a livelock", () => {
    const { schedule } = parseToken(TOKEN);
    const x = replay(scenarioConfig(sc, false, {}), schedule, false);
    assert.equal(x.violation, null, x.violation?.message);
    // The schedule still has T1 retry while c1.t0 goes through the unfold's points.
    assert.ok(x.decisions.length >= schedule.length);
  });
});
