// Differential tests against the host kernel: every scenario under
// scenarios/diff/ must agree on VmPTE, RssAnon and AnonHugePages.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { runDiff } from "../src/cli/diff-kernel.js";
import { ensureHelperBuilt, isHelperSkip } from "../src/host/helper.js";
import { parseScenario } from "../src/scenario/load.js";

const dir = "scenarios/diff";
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

describe("diff-kernel", async () => {
  const built = await ensureHelperBuilt();
  it("has at least 30 scenarios", () => assert.ok(files.length >= 30, `${files.length}`));
  for (const f of files) {
    it(f, async (t) => {
      if (isHelperSkip(built)) {
        t.skip(`host not usable: ${built.skip}`);
        return;
      }
      const sc = parseScenario(readFileSync(`${dir}/${f}`, "utf8"), `${dir}/${f}`);
      const res = await runDiff(sc);
      assert.ok(res.reports.length > 0, "compared at least one report");
      const bad = res.reports.flatMap((r) =>
        r.figures.filter((x) => !x.agree).map((x) => `${r.label}/${r.process}/${x.figure}: host ${x.host} model ${x.model}`),
      );
      assert.deepEqual(bad, []);
    });
  }
});
