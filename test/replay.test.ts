// Replay of the real recordings in ../shared/traces on the model, with
// invariants checked after every syscall.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { defaultReplayOptions, Replayer } from "../src/replay/replay.js";
import { parseTraceFile } from "../src/trace/open.js";

const TRACES = "../shared/traces";

async function replay(file: string, touch: Replayer["opts"]["touch"], arch: Replayer["opts"]["arch"] = "x86_64") {
  const { events } = await parseTraceFile(file, { reorder: file.endsWith(".gz") ? 0.05 : 0 });
  const r = new Replayer({ ...defaultReplayOptions(), touch, arch });
  for await (const e of events) r.apply(e);
  return r;
}

describe("replay", () => {
  it("replays the perf trace: faults become accesses, every process exits clean", async (t) => {
    const f = `${TRACES}/gcc-python.perftrace.gz`;
    if (!existsSync(f)) return t.skip("no ../shared/traces");
    const r = await replay(f, { kind: "none" });
    assert.deepEqual(r.violations, []);
    assert.equal(r.stats.faults, 44822);
    assert.ok(r.stats.faults - r.stats.unresolvedFaults > 35000, JSON.stringify(r.stats));
    assert.equal(r.stats.segv, 0);
    assert.ok(r.summaries.some((p) => p.peakVmpteKb > 0));
  });

  // exit_mmap() on arm64 frees pages with no TLBI while they are still in
  // TLBs under the dying ASID (cc1's exit_group did, 785 times): not reachable.
  it("replays the perf trace on arm64: exit_group() teardowns are clean", async (t) => {
    const f = `${TRACES}/gcc-python.perftrace.gz`;
    if (!existsSync(f)) return t.skip("no ../shared/traces");
    const r = await replay(f, { kind: "none" }, "arm64");
    assert.deepEqual(r.violations, []);
    assert.equal(r.stats.segv, 0);
  });

  it("replays the strace recording with a touch policy, deterministically", async (t) => {
    const f = `${TRACES}/gcc-python.strace`;
    if (!existsSync(f)) return t.skip("no ../shared/traces");
    const a = spawnSync("node", ["dist/src/cli/main.js", "replay", "--json", "--touch", "first:16", f], { encoding: "utf8" });
    const b = spawnSync("node", ["dist/src/cli/main.js", "replay", "--json", "--touch", "first:16", f], { encoding: "utf8" });
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    const j = JSON.parse(a.stdout);
    assert.deepEqual(j.violations, []);
    assert.ok(j.stats.touches > 0);
    const none = spawnSync("node", ["dist/src/cli/main.js", "replay", "--json", "--touch", "none", f], { encoding: "utf8" });
    assert.equal(JSON.parse(none.stdout).stats.touches, 0);
  });

  it("rejects a bad option with exit code 2", () => {
    const r = spawnSync("node", ["dist/src/cli/main.js", "replay", "--touch", "some", "x"], { encoding: "utf8" });
    assert.equal(r.status, 2);
  });
});
