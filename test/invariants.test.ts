// The list of invariant names (src/core/invariants.ts) against the names the
// sources report, and the places that take a name: explore --ignore and a
// scenario's explore.ignore / explore.expect.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { INVARIANTS } from "../src/core/invariants.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (n.endsWith(".ts") && !p.endsWith("invariants.ts")) out.push(p);
  }
  return out;
}

describe("invariant names", () => {
  const text = sources("src")
    .map((f) => readFileSync(f, "utf8"))
    .join("\n");
  it("every name a violation reports is in the list", () => {
    const reported = new Set([...text.matchAll(/invariant: "([a-z0-9-]+)"/g)].map((m) => m[1] as string));
    // Reported through Execution.bad(invariant, ...), whose parameter type lists them.
    for (const m of text.matchAll(/bad\(invariant: ((?:"[a-z-]+"(?: \| )?)+)/g))
      for (const n of m[1]?.matchAll(/"([a-z-]+)"/g) ?? []) reported.add(n[1] as string);
    assert.ok(reported.size >= 30, `only ${reported.size} names found: the pattern no longer matches the sources`);
    const missing = [...reported].filter((n) => !(INVARIANTS as readonly string[]).includes(n));
    assert.deepEqual(missing, []);
  });
  it("every name in the list is reported somewhere", () => {
    const stale = INVARIANTS.filter((n) => !text.includes(`"${n}"`));
    assert.deepEqual(stale, []);
  });
  it("explore --ignore and a scenario's explore.ignore take only known names; --shard N is bounded (one line, exit 2)", () => {
    const CLI = "dist/src/cli/main.js";
    const entry = "scenarios/concurrency/clean-swap-data.yaml";
    for (const args of [
      ["--ignore", "nonsense"],
      ["--shard", "0/99999999999999999999"],
    ]) {
      const r = spawnSync(process.execPath, [CLI, "explore", entry, ...args], { encoding: "utf8" });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.equal(r.stdout, "");
    }
    const ok = spawnSync(process.execPath, [CLI, "explore", entry, "--ignore", "lost-dirty"], { encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
  });

  it("a scenario naming an unknown invariant gets a located error", () => {
    const text = readFileSync("scenarios/concurrency/clean-swap-data.yaml", "utf8").replace("preemptions: 2", "preemptions: 2\n  ignore: [bogus]");
    assert.throws(
      () => parseScenario(text, "x.yaml"),
      (e: unknown) => e instanceof ScenarioError && /^x\.yaml:\d+:\d+: explore\.ignore\[0\]: expected an invariant name/.test(e.format()),
    );
  });
});
