// Differential tests against the host kernel: every scenario under
// scenarios/diff/ must agree on VmPTE, RssAnon and AnonHugePages, on VmSwap
// when the host has swap, and on the state of every page of its regions.
// Scenarios that set machine.swap need swap: the host's own, or (as root,
// the CI case) a zram device runDiff() sets up for the scenario and takes
// down again; without either they skip with the reason. Where the host
// helper cannot be built or run, every test skips, or fails under
// PTLAB_REQUIRE_HOST=1 (CI).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runDiff } from "../src/cli/diff-kernel.js";
import { compareRegion, hostStates, modelStates, type PageDiff, S_PRESENT, S_SWAP } from "../src/cli/diff-pages.js";
import type { Machine } from "../src/core/machine.js";
import { ensureHelperBuilt, type HostPageRun, isHelperSkip, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT, PM_SWAP } from "../src/host/helper.js";
import { parseProcSwaps, readHostSwap, zramUnavailable } from "../src/host/swap.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { hostSkip } from "./require-host.js";

const dir = "scenarios/diff";
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .sort();
const load = (f: string) => parseScenario(readFileSync(`${dir}/${f}`, "utf8"), `${dir}/${f}`);
const swapFiles = files.filter((f) => (load(f).machine.swapBytes ?? 0) > 0);

describe("diff-kernel", async () => {
  const built = await ensureHelperBuilt();
  const swapBefore = readHostSwap().devices;
  after(() => assert.deepEqual(readHostSwap().devices, swapBefore, "the host's swap is as it was"));
  it("has at least 30 scenarios, 20 of them with swap", () => {
    assert.ok(files.length >= 30, `${files.length}`);
    assert.ok(swapFiles.length >= 20, `${swapFiles.length}`);
  });
  for (const f of files) {
    it(f, async (t) => {
      if (isHelperSkip(built)) {
        t.skip(hostSkip(built.skip));
        return;
      }
      const sc = load(f);
      const res = await runDiff(sc, { setupSwap: (sc.machine.swapBytes ?? 0) > 0, log: (l) => t.diagnostic(l) });
      if (res.skipped !== undefined) {
        t.skip(res.skipped);
        return;
      }
      assert.ok(res.reports.length > 0, "compared at least one report");
      if ((sc.machine.swapBytes ?? 0) > 0)
        assert.ok(
          res.reports[0]?.figures.some((x) => x.figure === "vmswap_kb"),
          "VmSwap compared",
        );
      const bad = res.reports.flatMap((r) =>
        r.figures.filter((x) => !x.agree).map((x) => `${r.label}/${r.process}/${x.figure}: host ${x.host} model ${x.model}`),
      );
      for (const p of res.pages)
        for (const x of p.first) bad.push(`${p.label}/${p.process}/${x.region}+0x${x.offset.toString(16)}: host ${x.host}; model ${x.model}`);
      assert.deepEqual(bad, []);
      assert.ok(
        res.pages.every((p) => p.agree),
        "pages agree",
      );
    });
  }
});

// The comparison itself must be able to fail.
describe("diff-kernel: differences are reported", () => {
  const pd = (): PageDiff => ({ label: "r", process: "p0", regions: [], compared: 0, differ: 0, first: [], agree: true });
  const run = (flags: number, kpf?: bigint, kpc?: number): HostPageRun => ({ start: 0x10000, npages: 1, flags, kpf, kpc });

  it("page states: swapped vs present, swap cache, mapcount, the non-root and file-VMA rules", () => {
    // The model's side of a small scenario: 4 pages written, 2 paged out.
    const sc = parseScenario(
      `name: t
machine: { swap: 1M }
steps:
  - mmap: { region: A, size: 16K, prot: rw }
  - touch: { region: A }
  - madvise: { region: A, offset: 8K, advice: pageout }
`,
      "t.yaml",
    );
    const r = new Runner(sc, {});
    r.runAll();
    const mm = r.procs.get("p0")!.mm;
    const a = r.procs.get("p0")!.regions.get("A")!.start;
    const model = modelStates(r.m, mm, a, 4);
    assert.deepEqual(
      [...model].map((s) => s & (S_PRESENT | S_SWAP)),
      [S_PRESENT, S_PRESENT, S_SWAP, S_SWAP],
    );
    const anon = (kpc: number, kpf = 0n) => ({ flags: PM_PRESENT | PM_MMAP_EXCLUSIVE, kpf, kpc });
    const host = (runs: { flags: number; kpf?: bigint; kpc?: number }[]) =>
      hostStates(
        runs.map((x, i) => ({ start: a + i * 4096, npages: 1, ...x })),
        a,
        4,
        4096,
      );
    // The host as the model has it: agree.
    let d = pd();
    compareRegion(d, "A", a, 4096, host([anon(1), anon(1), { flags: PM_SWAP }, { flags: PM_SWAP }]), model, () => false);
    assert.equal(d.agree, true);
    assert.equal(d.compared, 4);
    // A page the host kept, one in its swap cache, one mapped twice: three differ.
    d = pd();
    compareRegion(d, "A", a, 4096, host([anon(1, 1n << 13n), { flags: PM_PRESENT }, anon(1), { flags: PM_SWAP }]), model, () => false);
    assert.equal(d.agree, false);
    assert.equal(d.differ, 3);
    assert.deepEqual(
      d.first.map((x) => `${x.region}+${x.offset}: ${x.host} / ${x.model}`),
      [
        "A+0: present anon excl swapcache mapcount=1 / present anon excl mapcount=1",
        "A+4096: present anon / present anon excl",
        "A+8192: present anon excl mapcount=1 / swapped",
      ],
    );
    // Not root: no kpageflags on the host, the model's are not compared.
    d = pd();
    compareRegion(
      d,
      "A",
      a,
      4096,
      host([{ flags: PM_PRESENT | PM_MMAP_EXCLUSIVE }, { flags: PM_PRESENT | PM_MMAP_EXCLUSIVE }, { flags: PM_SWAP }, { flags: PM_SWAP }]),
      model,
      () => false,
    );
    assert.equal(d.agree, true);
    // A file VMA: a page-cache page present on one side only is not compared
    // (the kernel's fault-around), anon and swapped pages are.
    d = pd();
    const file = { flags: PM_PRESENT | PM_FILE, kpf: 0n, kpc: 1 };
    compareRegion(d, "A", a, 4096, host([file, file, anon(1), { flags: PM_SWAP }]), host([{ flags: 0 }, anon(1), anon(1), anon(1)]), () => true);
    assert.equal(d.compared, 3);
    assert.equal(d.differ, 2);
    assert.deepEqual(hostStates([run(PM_PRESENT | PM_FILE)], 0x10000, 1, 4096)[0], S_PRESENT | 4);
  });

  it("a model that does not swap is reported as DIFFER (VmSwap, RssAnon and the pages)", async (t) => {
    const built = await ensureHelperBuilt();
    if (isHelperSkip(built)) {
      t.skip(hostSkip(built.skip));
      return;
    }
    const res = await runDiff(load("swap-pageout-whole.yaml"), {
      setupSwap: true,
      log: (l) => t.diagnostic(l),
      onMachine: (m: Machine) => {
        (m as { swap: Machine["swap"] }).swap = null;
      },
    });
    if (res.skipped !== undefined) {
      t.skip(res.skipped);
      return;
    }
    const last = res.reports[res.reports.length - 1]!;
    const fig = (n: string) => last.figures.find((x) => x.figure === n)!;
    assert.equal(fig("vmswap_kb").agree, false);
    assert.equal(fig("vmswap_kb").host, 8192);
    assert.equal(fig("vmswap_kb").model, 0);
    assert.equal(fig("rss_anon_kb").agree, false);
    const pages = res.pages[res.pages.length - 1]!;
    assert.equal(pages.agree, false);
    assert.equal(pages.differ, 2048);
    assert.match(pages.first[0]!.host, /^swapped$/);
    assert.match(pages.first[0]!.model, /^present anon excl/);
  });
});

describe("diff-kernel --setup-swap", () => {
  it("parses /proc/swaps", () => {
    assert.deepEqual(parseProcSwaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"), []);
    assert.deepEqual(parseProcSwaps("Filename Type Size Used Priority\n/dev/zram0                              partition\t65536\t\t1024\t\t-2\n"), [
      { name: "/dev/zram0", type: "partition", sizeKb: 65536, usedKb: 1024 },
    ]);
  });

  it("a bad option is one line and exit code 2", async () => {
    const r = await cli(["diff-kernel", "--setup-swap=yes", `${dir}/swap-in-read.yaml`]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "error: unknown option '--setup-swap=yes'\n");
  });

  it("SIGINT in the middle of a run: the zram device is taken down, exit 130", async (t) => {
    const why = zramUnavailable();
    if (why !== undefined || readHostSwap().devices.length > 0) {
      t.skip(why ?? "the host has swap already: --setup-swap would not set up a device");
      return;
    }
    const built = await ensureHelperBuilt();
    if (isHelperSkip(built)) {
      t.skip(hostSkip(built.skip));
      return;
    }
    const before = readHostSwap().devices;
    const d = mkdtempSync(join(tmpdir(), "ptlab-swap-"));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    const f = join(d, "long.yaml");
    writeFileSync(
      f,
      `name: long
machine: { swap: 64M }
steps:
  - mmap: { region: A, size: 64K, prot: rw }
  - madvise: { region: A, advice: nohugepage }
  - repeat:
      count: 1000000
      steps:
        - touch: { region: A }
        - madvise: { region: A, advice: pageout }
  - report: never
`,
    );
    let sent = false;
    const r = await cli(["diff-kernel", "--setup-swap", f], (stderr, kill) => {
      if (!sent && /swapon/.test(stderr)) {
        sent = true;
        setTimeout(kill, 300);
      }
    });
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /--setup-swap: the host had no swap; \/dev\/zram\d+ .*swapon\n/);
    assert.match(r.stderr, /--setup-swap: undone: swapoff \/dev\/zram\d+, zram\d+ reset \(disksize 0\).*; host swap now: none \(as found\)\n/);
    assert.deepEqual(readHostSwap().devices, before);
  });
});

// Runs the CLI; `watch` sees stderr as it grows and may send SIGINT.
function cli(args: string[], watch?: (stderr: string, kill: () => void) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, ["dist/src/cli/main.js", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    p.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      watch?.(stderr, () => p.kill("SIGINT"));
    });
    p.on("close", (code) => res({ code, stdout, stderr }));
  });
}
