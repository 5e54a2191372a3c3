// The web view in a real browser (Debian's chromium through playwright-core):
// the default scenario loads and steps, its page tables and TLBs show what
// the model holds (compared with the same session run here in Node), an
// editor error is shown inline while the run keeps its last good state, and
// the a-nested-gather counterexample opens, replays, and highlights the
// stale walk-cache entry; an exported page does the same from a file
// without a request; a compare report's charts and legends fit 1280 px and
// 800 px windows; the console stays free of errors. Screenshots go to
// $TMPDIR/ptlab-ui-browser. Skipped, with the reason, without chromium.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { parseScenario } from "../src/scenario/load.js";
import { treeStats } from "../src/ui/inspect.js";
import { startUiServer, type UiServer } from "../src/ui/server.js";
import { StepSession } from "../src/ui/session.js";

const CHROMIUM = process.env.PTLAB_CHROMIUM ?? "/usr/bin/chromium";
const skip = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM} (apt-get install chromium, or set PTLAB_CHROMIUM)`;
const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const repoFile = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), "utf8");
const SHOTS = join(tmpdir(), "ptlab-ui-browser");

// The line the page prints for a process's tree after n steps, from the same session in Node.
function expectedTables(n: number): string {
  const s = new StepSession(parseScenario(repoFile("scenarios/default.yaml"), "default.yaml"));
  s.goto(n);
  const st = treeStats(s.runner.m, s.runner.procs.get("app")!.mm);
  return `tables: ${st.tables.map((t) => `${t.level} ${t.count}`).join(", ")}`;
}

describe("web view in chromium", { skip }, () => {
  let ui: UiServer;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    ui = await startUiServer({ host: "127.0.0.1", port: 0, initial: { file: "default.yaml", text: repoFile("scenarios/default.yaml") } });
    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(ui.url);
  });
  after(async () => {
    await browser?.close();
    await ui?.close();
  });

  it("loads the default scenario and steps through it", async () => {
    await page.waitForSelector("#err.okmsg");
    assert.match((await page.textContent("#err")) ?? "", /^valid: pt-reclaim-demo, 9 steps/);
    assert.match((await page.textContent("#pos")) ?? "", /^0 of 10 steps done; x86_64, 2 CPUs, 4K pages/);
    await page.click("#b-step");
    assert.match((await page.textContent("#pos")) ?? "", /^1 of 10 /);
    await page.click("#b-report");
    assert.match((await page.textContent("#pos")) ?? "", /^4 of 10 /);
    const procs = (await page.textContent("#procs")) ?? "";
    assert.ok(procs.includes(expectedTables(4)), `${procs} lacks ${expectedTables(4)}`);
    assert.match(procs, /16,384 page/);
    const s = new StepSession(parseScenario(repoFile("scenarios/default.yaml"), "default.yaml"));
    s.goto(4);
    const vmpte = s.timeline[4]!.vmpteKb;
    assert.ok(vmpte > 0);
    assert.ok(((await page.textContent("#timeline")) ?? "").includes(`VmPTE kB: ${vmpte} (max ${vmpte})`));
    assert.match((await page.textContent("#tlb-1 h3")) ?? "", /^CPU1: 1,0\d\d entries/);
    await page.screenshot({ path: join(SHOTS, "1-touched.png") });
  });

  it("expands the tree down to a PTE table's grid", async () => {
    for (let depth = 1; depth <= 3; depth++) await page.click(`#procs ${"details ".repeat(depth)}> summary >> nth=0`);
    // A table's entries are drawn by the toggle event, which comes after the click.
    await page.waitForSelector("#procs .grid span.page");
    assert.equal(await page.locator("#procs .grid >> nth=0").locator("span.page").count(), 512);
    await page.locator("#procs .grid >> nth=0").locator("span >> nth=3").click();
    assert.match((await page.textContent("#entry")) ?? "", /^app 0x7effc0003000: PTE page: pfn=\d+ P\|RW\|U\|A\|D/);
  });

  it("MADV_DONTNEED and PT reclaim free the PTE tables; back replays", async () => {
    await page.click("#b-report");
    assert.match((await page.textContent("#pos")) ?? "", /^6 of 10 /);
    const procs = (await page.textContent("#procs")) ?? "";
    assert.ok(procs.includes(expectedTables(6)), `${procs} lacks ${expectedTables(6)}`);
    assert.notEqual(expectedTables(6), expectedTables(4));
    await page.click("#b-back");
    assert.match((await page.textContent("#pos")) ?? "", /^5 of 10 /);
    await page.screenshot({ path: join(SHOTS, "2-dontneed.png") });
  });

  it("shows an editor error inline with its position and keeps the last good run", async () => {
    const text = repoFile("scenarios/default.yaml").replace("prot: rw }", "prot: rwq }");
    const line = text.split("\n").findIndex((l) => l.includes("rwq")) + 1;
    await page.fill("#src", text);
    await page.waitForFunction(`document.querySelector("#err")?.textContent?.startsWith("default.yaml:")`);
    assert.match((await page.textContent("#err")) ?? "", new RegExp(`^default\\.yaml:${line}:\\d+: `));
    assert.match((await page.textContent("#pos")) ?? "", /^5 of 10 /);
    await page.screenshot({ path: join(SHOTS, "3-error.png") });
  });

  it("opens a-nested-gather's counterexample, replays it and highlights the stale walk-cache entry", async () => {
    const out = join(SHOTS, "a-nested-gather.json");
    const r = spawnSync(process.execPath, [MAIN, "explore", "scenarios/concurrency/a-nested-gather.yaml", "--historical", "--json", out, "--no-progress"], {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
    });
    assert.equal(r.status, 1, r.stderr);
    const cx = JSON.parse(readFileSync(out, "utf8")).counterexample as { trace: unknown[]; message: string };
    // The JSON alone (the editor holds another scenario): it carries its scenario and replays.
    await page.click("button[data-tab=cx]");
    await page.setInputFiles("#cx-file", out);
    await page.waitForSelector("#lanes");
    assert.equal(await page.locator("#lanes tr").count(), cx.trace.length + 1);
    assert.ok(((await page.textContent("#cx-head")) ?? "").includes(cx.message));
    await page.waitForSelector("#cx-state");
    const hit = (await page.locator("#cx-state td.hit").allTextContents()).join(" | ");
    assert.match(hit, /CPU2 asid \d+ walk-cache L1 0x[0-9a-f]+/);
    await page.screenshot({ path: join(SHOTS, "4-counterexample.png") });
    // The same token replayed on the editor's scenario.
    await page.click("button[data-tab=scenario]");
    await page.selectOption("#builtin", "a-nested-gather");
    await page.waitForFunction(`document.querySelector("#status")?.textContent === "a-nested-gather.yaml"`);
    assert.match((await page.textContent("#err")) ?? "", /^valid: /);
    await page.click("button[data-tab=cx]");
    await page.click("#cx-replay");
    await page.waitForSelector("#cx-state td.hit");
    assert.equal(await page.textContent("#cx-error"), "");
  });

  it("an exported page works from a file with no network", async () => {
    const out = join(SHOTS, "a-nested-gather.html");
    const r = spawnSync(process.execPath, [MAIN, "ui", "--export", out, "a-nested-gather"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const off = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const asked: string[] = [];
    await off.route("**/*", (route) => {
      if (route.request().url().startsWith("file:")) return route.continue();
      asked.push(route.request().url());
      return route.abort();
    });
    off.on("console", (m) => {
      if (m.type() === "error") errors.push(`export: ${m.text()}`);
    });
    off.on("pageerror", (e) => errors.push(`export: ${String(e)}`));
    await off.goto(pathToFileURL(out).href);
    await off.waitForSelector("#err.okmsg");
    assert.match((await off.textContent("#err")) ?? "", /^valid: nested-gather-walk-cache/);
    await off.click("button[data-tab=cx]");
    await off.setInputFiles("#cx-file", join(SHOTS, "a-nested-gather.json"));
    await off.click("#cx-replay");
    await off.waitForSelector("#cx-state td.hit");
    assert.deepEqual(asked, []);
    await off.close();
  });

  it("a compare report fits 1280 px and 800 px windows with its legends in view", async () => {
    // Five configurations over twelve report steps: wide enough that the
    // charts' legends fell outside a 1280 px window before they were bounded.
    const out = join(SHOTS, "compare-report.html");
    const cfgs = ["a", "b:pt_reclaim=off", "c:arch=arm64", "d:arch=arm64,tlbi_range=off", "e:thp=never"].flatMap((c) => ["--config", c]);
    const r = spawnSync(
      process.execPath,
      [MAIN, "compare", "--no-progress", "--workload", "tlb_flush2", "--param", "iterations=12", ...cfgs, "--report", out],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 0, r.stderr);
    for (const width of [1280, 800]) {
      const rep = await browser.newPage({ viewport: { width, height: 900 } });
      const asked: string[] = [];
      await rep.route("**/*", (route) => {
        if (route.request().url().startsWith("file:")) return route.continue();
        asked.push(route.request().url());
        return route.abort();
      });
      rep.on("console", (m) => {
        if (m.type() === "error") errors.push(`report: ${m.text()}`);
      });
      rep.on("pageerror", (e) => errors.push(`report: ${String(e)}`));
      await rep.goto(pathToFileURL(out).href);
      const page = Number(await rep.evaluate("document.documentElement.scrollWidth"));
      assert.ok(page <= width, `${width} px: the page is ${page} px wide`);
      const figures = rep.locator("figure");
      assert.equal(await figures.count(), 3);
      for (let i = 0; i < 3; i++) {
        const ch = await figures.nth(i).boundingBox();
        const legends = figures.nth(i).locator("svg .role-legend");
        assert.ok(ch !== null && (await legends.count()) >= 1, `chart ${i} has a legend`);
        for (let k = 0; k < (await legends.count()); k++) {
          const l = await legends.nth(k).boundingBox();
          assert.ok(
            l !== null && l.width > 20 && l.x >= ch.x && l.x + l.width <= ch.x + ch.width && l.x + l.width <= width,
            `${width} px, chart ${i}: legend ${JSON.stringify(l)} in ${JSON.stringify(ch)}`,
          );
        }
      }
      assert.deepEqual(asked, []);
      await rep.screenshot({ path: join(SHOTS, `5-compare-report-${width}.png`), fullPage: true });
      await rep.close();
    }
  });

  it("logged no error to the console", () => {
    assert.deepEqual(errors, []);
  });
});
