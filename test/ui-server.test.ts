// `ptlab ui`: the server listens on 127.0.0.1 only, serves the page, the
// bundle (which imports nothing from Node), the scenario it was given and
// the built-in ones, and nothing else; the command prints its URL, stops on
// SIGINT with exit code 0, rejects bad options with one line and exit code
// 2, and --export writes the page with everything inside.

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { BUNDLE, BundleMissing, startUiServer, type UiServer } from "../src/ui/server.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const repoFile = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), "utf8");

// Waits for the command's first stdout line with the URL.
function urlOf(p: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    p.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /ptlab ui: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    });
    p.once("exit", (code) => reject(new Error(`exited with ${code} before printing a URL: ${out}`)));
  });
}

describe("ui server", () => {
  let ui: UiServer;
  const initial = { file: "mine.yaml", text: "name: mine\nsteps: []\n" };
  before(async () => {
    ui = await startUiServer({ host: "127.0.0.1", port: 0, initial });
  });
  after(async () => {
    await ui.close();
  });

  it("listens on 127.0.0.1 at the port the OS chose", () => {
    const a = ui.server.address();
    assert.ok(typeof a === "object" && a !== null);
    assert.equal(a.address, "127.0.0.1");
    assert.ok(a.port > 0);
    assert.equal(ui.url, `http://127.0.0.1:${a.port}/`);
  });

  it("serves the page and the bundle it loads", async () => {
    const page = await fetch(ui.url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/app\.js"><\/script>/);
    const js = await fetch(new URL("app.js", ui.url));
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
    const body = await js.text();
    assert.equal(body, readFileSync(BUNDLE, "utf8"));
    // The model runs in the page: the bundle holds the loader and the runner.
    assert.match(body, /\bScenarioError = class extends Error\b/);
    assert.match(body, /\bRunner = class\b/);
  });

  it("the bundle reaches for no Node module", () => {
    const body = readFileSync(BUNDLE, "utf8");
    assert.doesNotMatch(body, /from ["']node:|require\(["']|import\(["']node:/);
  });

  it("serves the initial scenario and the built-in ones, by name only", async () => {
    assert.deepEqual(await (await fetch(new URL("api/initial", ui.url))).json(), initial);
    const names = (await (await fetch(new URL("api/scenarios", ui.url))).json()) as string[];
    assert.ok(names.includes("default") && names.includes("a-nested-gather"));
    const d = (await (await fetch(new URL("api/scenario?name=default", ui.url))).json()) as { file: string; text: string };
    assert.equal(d.text, repoFile("scenarios/default.yaml"));
    const bad = await fetch(new URL("api/scenario?name=../package", ui.url));
    assert.equal(bad.status, 404);
    assert.match(((await bad.json()) as { error: string }).error, /no built-in scenario named/);
    assert.equal((await fetch(new URL("etc/passwd", ui.url))).status, 404);
  });

  it("answers GET and HEAD only, and only for its own host name", async () => {
    assert.equal((await fetch(ui.url, { method: "POST", body: "x" })).status, 405);
    const head = await fetch(ui.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    // A DNS-rebinding page reaches 127.0.0.1 under its own name.
    const port = new URL(ui.url).port;
    const r = await new Promise<number>((resolve, reject) => {
      import("node:http").then(({ request }) => {
        const q = request({ host: "127.0.0.1", port, path: "/api/initial", headers: { host: `evil.example:${port}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        q.on("error", reject);
        q.end();
      }, reject);
    });
    assert.equal(r, 421);
  });

  it("refuses to start without its bundle", async () => {
    await assert.rejects(startUiServer({ host: "127.0.0.1", port: 0, initial, bundle: "/nonexistent/app.js" }), (e: unknown) => {
      assert.ok(e instanceof BundleMissing);
      assert.match(e.message, /npm run build/);
      return true;
    });
  });
});

describe("ptlab ui", () => {
  it("prints its URL, serves the scenario it was given, and stops on SIGINT with exit code 0", async () => {
    const p = spawn(process.execPath, [MAIN, "ui", "a-nested-gather"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await urlOf(p);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const d = (await (await fetch(new URL("api/initial", url))).json()) as { file: string; text: string };
      assert.match(d.file, /scenarios\/concurrency\/a-nested-gather\.yaml$/);
      assert.equal(d.text, repoFile("scenarios/concurrency/a-nested-gather.yaml"));
      assert.equal((await fetch(url)).status, 200);
      const done = new Promise<number | null>((resolve) => p.once("exit", resolve));
      p.kill("SIGINT");
      assert.equal(await done, 0);
    } finally {
      if (p.exitCode === null) p.kill("SIGKILL");
    }
  });

  it("takes --port", async () => {
    // A port that was free a moment ago.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const a = s.address() as { port: number };
        s.close(() => resolve(a.port));
      });
    });
    const p = spawn(process.execPath, [MAIN, "ui", "--port", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      assert.equal(await urlOf(p), `http://127.0.0.1:${port}/`);
    } finally {
      p.kill("SIGINT");
    }
  });

  it("--export writes one offline page with the bundle and the scenario inside", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-ui-"));
    try {
      const out = join(dir, "view.html");
      const r = spawnSync(process.execPath, [MAIN, "ui", "--export", out, "default"], { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^ptlab ui: wrote .*view\.html \(\d+ bytes, /);
      const html = readFileSync(out, "utf8");
      assert.ok(html.includes(readFileSync(BUNDLE, "utf8")), "the bundle is inline");
      assert.doesNotMatch(html, /<script[^>]* src=|<link[^>]* href="(?!data:)/, "nothing to load");
      const json = /<script type="application\/json" id="ptlab-initial">(.*?)<\/script>/s.exec(html)?.[1];
      assert.ok(json !== undefined);
      assert.ok(!json.includes("<"), "no < inside the element");
      const initial = JSON.parse(json) as { file: string; text: string };
      assert.equal(initial.text, repoFile("scenarios/default.yaml"));
      const bad = spawnSync(process.execPath, [MAIN, "ui", "--export", join(dir, "no", "such", "dir.html")], { encoding: "utf8", timeout: 30_000 });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /^ptlab: cannot write .*dir\.html: ENOENT\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const bad: [string[], RegExp][] = [
    [["ui", "--port", "abc"], /--port.*expected an integer 0\.\.65535, got "abc"/],
    [["ui", "--port", "70000"], /expected an integer 0\.\.65535/],
    [["ui", "--port", "-1"], /expected an integer 0\.\.65535, got "-1"/],
    [["ui", "--bogus"], /unknown option '--bogus'/],
    [["ui", "no-such-scenario"], /^no-such-scenario:1:1: cannot read file/],
    [["ui", "a", "b"], /too many arguments/],
  ];
  for (const [args, msg] of bad)
    it(`rejects ${args.join(" ")} with one line and exit code 2`, () => {
      const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, msg);
    });

  it("a port in use is one line and exit code 2", async () => {
    const s = createServer();
    const port = await new Promise<number>((resolve) => s.listen(0, "127.0.0.1", () => resolve((s.address() as { port: number }).port)));
    try {
      const r = spawnSync(process.execPath, [MAIN, "ui", "--port", String(port)], { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr, `ptlab: cannot listen on 127.0.0.1 port ${port}: EADDRINUSE\n`);
    } finally {
      s.close();
    }
  });
});
