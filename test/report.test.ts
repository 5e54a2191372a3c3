import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CHART_TITLES } from "../src/report/charts.js";
import { escapeHtml } from "../src/report/html.js";

const CLI = "dist/src/cli/main.js";

function report(out: string) {
  const res = spawnSync(
    "node",
    [
      CLI,
      "compare",
      "--workload",
      "ryan-fork-dontneed-munmap",
      "--param",
      "size=4M",
      "--config",
      "base:mthp=none",
      "--config",
      "64K <mTHP>:mthp=64K",
      "--config",
      "no-reclaim:pt_reclaim=off,mthp=64K",
      "--report",
      out,
    ],
    { encoding: "utf8" },
  );
  assert.equal(res.status, 0, res.stderr);
  assert.match(res.stdout, new RegExp(`report written to ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  return readFileSync(out);
}

describe("HTML report", () => {
  const dir = mkdtempSync(join(tmpdir(), "ptlab-report-"));
  const a = report(join(dir, "a.html"));
  const b = report(join(dir, "b.html"));
  const html = a.toString("utf8");

  it("is byte-identical across two runs", () => {
    assert.ok(a.equals(b));
  });

  it("is self-contained: no scripts, no external sources or links", () => {
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i);
    assert.doesNotMatch(html, /@import|url\(\s*["']?https?:/i);
    assert.doesNotMatch(html, /<link /i);
  });

  it("contains the three charts as inline SVG with their titles", () => {
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    assert.equal(svgs.length, 3);
    for (const title of Object.values(CHART_TITLES)) {
      assert.ok(
        svgs.some((s) => s.includes(escapeHtml(title))),
        `a chart titled "${title}"`,
      );
    }
    // The bars and lines are there for every config.
    assert.match(svgs[0] as string, /role-mark/);
    assert.match(html, /64K &lt;mTHP&gt;/, "labels are escaped");
  });

  it("names the configuration, seed, parameters and ptlab version", () => {
    const version = (JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version;
    assert.match(html, new RegExp(`<dt>ptlab version</dt><dd>${version.replace(/\./g, "\\.")}</dd>`));
    assert.match(html, /<dt>seed<\/dt><dd>1<\/dd>/);
    assert.match(html, /<code>size=4M folio=64K<\/code>/);
    assert.match(html, /pt_reclaim=off, mthp=64K/);
    assert.match(html, /<td class="ratio[^"]*">\d+\.\d+x<\/td>/, "ratios in the comparison table");
  });
});
