// kswapd as a thread under `ptlab explore` (machine.memory). Checked: the
// thread exists only under a memory limit, on a CPU no scenario thread
// uses, asleep until an allocation takes free memory below the low
// watermark (wakeup_kswapd()), and asleep again at the end; a limit never
// reached adds no execution; in every clean-kswapd-* catalogue entry some
// executions have kswapd clear a PTE while another thread is in the middle
// of its step (and PT reclaim frees a table in clean-kswapd-ptreclaim);
// memory kswapd cannot free below the min watermark is the out-of-memory
// violation, with a counterexample that replays.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Execution } from "../src/explore/execution.js";
import { explore, parseToken, replay, runOnce, scenarioConfig } from "../src/explore/explore.js";
import { siteName } from "../src/core/sync.js";
import { freePages } from "../src/core/mm/page_alloc.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";
import { files, load } from "./catalogue.js";

const ENTRIES = files.filter((f) => f.startsWith("clean-kswapd-"));
const firstChoice = (_d: number, cands: number[], cur: number) => (cands.includes(cur) ? cur : (cands[0] as number));

describe("explore: kswapd as a thread", () => {
  it("the catalogue has kswapd entries on x86-64 and arm64", () => {
    for (const e of ["fault", "zap", "mprotect", "fork", "ptreclaim", "arm64"]) assert.ok(ENTRIES.includes(`clean-kswapd-${e}.yaml`), e);
  });

  it("exists only under a memory limit, on a CPU of its own, woken by an allocation, asleep at the end", () => {
    const x = runOnce(scenarioConfig(load("clean-kswapd-fault.yaml"), false), firstChoice, false);
    const k = x.kswapd as NonNullable<Execution["kswapd"]>;
    assert.ok(k !== null);
    assert.equal(k.name, "kswapd0");
    assert.equal(k.cpu, 2);
    assert.equal(x.threads.indexOf(k), x.threads.length - 1, "after the scenario's threads");
    assert.ok(x.m.counters.kswapdWakes >= 1, "balance_pgdat() ran");
    assert.ok(k.asleep && !k.done);
    assert.ok(x.ranToEnd());
    assert.ok(x.m.config.memoryPages - x.m.phys.allocated >= x.m.watermarks.high, "balanced");
    const plain = runOnce(scenarioConfig(load("clean-swap-data.yaml"), false), firstChoice, false);
    assert.equal(plain.kswapd, null);
    assert.ok(plain.threads.every((t) => !t.asleep));
  });

  it("a limit the concurrent part never reaches adds no execution", () => {
    const text = (mem: string) =>
      [
        "name: kswapd-idle",
        `machine: { cpus: 3${mem} }`,
        "processes: [{ name: p, threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }] }]",
        "steps:",
        "  - mmap: { region: r, size: 8K, thread: A }",
        "  - touch: { region: r, thread: A }",
        "concurrent:",
        "  - madvise: { region: r, length: 4K, advice: dontneed, thread: A }",
        "  - touch: { region: r, thread: B }",
        "",
      ].join("\n");
    const limited = explore(scenarioConfig(parseScenario(text(", memory: 64M"), "idle.yaml"), false));
    const free = explore(scenarioConfig(parseScenario(text(""), "idle.yaml"), false));
    assert.equal(limited.counterexample, null);
    assert.ok(limited.complete && free.complete);
    assert.equal(limited.executions, free.executions);
  });

  for (const f of ENTRIES) {
    it(`${f}: kswapd clears a PTE while another thread is in the middle of its step`, () => {
      let hit = 0;
      let now = false;
      const r = explore(
        scenarioConfig(load(f), false, {
          onStart: (x: Execution) => {
            now = false;
            x.onDecide = (c) => {
              const t = x.threads[c];
              if (t === undefined || t !== x.kswapd || !siteName(t.site).includes("PTE cleared")) return;
              if (x.threads.some((u) => u !== t && !u.done && u.ownMoves > 0 && u.syscalls > 0)) now = true;
            };
          },
          onEnd: () => {
            if (now) hit++;
          },
        }),
      );
      assert.equal(r.counterexample, null);
      assert.ok(r.complete);
      assert.ok(hit > 0, `${hit} of ${r.executions} executions`);
    });
  }

  it("clean-kswapd-ptreclaim: PT reclaim frees the table in executions where kswapd ran", () => {
    let both = 0;
    const r = explore(
      scenarioConfig(load("clean-kswapd-ptreclaim.yaml"), false, {
        onFinal: (x: Execution) => {
          if (x.m.counters.ptReclaimed > 0 && x.m.counters.kswapdWakes > 0) both++;
        },
      }),
    );
    assert.equal(r.counterexample, null);
    assert.ok(both > 0);
  });

  it("machine.headroom: after the set-up the rest of the system takes what is free beyond it above the low watermark, so the concurrent part wakes kswapd", () => {
    const text = (hr: string) =>
      [
        "name: kswapd-headroom",
        `machine: { cpus: 3, memory: 16M, swap: 1M${hr} }`,
        "processes: [{ name: p, threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }] }]",
        "steps:",
        "  - mmap: { region: r, size: 64K, thread: A }",
        "  - touch: { region: r, thread: A }",
        "  - mmap: { region: s, size: 64K, thread: A }",
        "concurrent:",
        "  - touch: { region: s, length: 16K, thread: A }",
        "  - munmap: { region: r, length: 8K, thread: B }",
        "explore: { preemptions: 1 }",
        "",
      ].join("\n");
    const tight = scenarioConfig(parseScenario(text(", headroom: 4K"), "hr.yaml"), false);
    let free = -1;
    const x = runOnce(tight, firstChoice, false, (e) => {
      free = freePages(e.m);
    });
    assert.equal(free, x.m.watermarks.low + 1, "one page above the low watermark when the concurrent part starts");
    assert.ok(x.m.reservedPages > 3000, "the rest of the system holds most of the 4096 pages");
    assert.ok(x.m.counters.kswapdWakes >= 1, "the 16K store woke kswapd");
    assert.ok(x.ranToEnd());
    // Not balanced: 20 user pages are all it can take, the high watermark is 32 above the low one.
    assert.ok(x.m.counters.pswpout > 0, "kswapd swapped pages out");
    const loose = runOnce(scenarioConfig(parseScenario(text(""), "hr.yaml"), false), firstChoice, false);
    assert.equal(loose.m.reservedPages, 0);
    assert.equal(loose.m.counters.kswapdWakes, 0);
    assert.equal(explore(tight).counterexample, null);
    assert.throws(
      () => parseScenario(text(", headroom: 4K").replace("memory: 16M, ", ""), "hr.yaml"),
      (e: unknown) => e instanceof ScenarioError && e.line === 2 && /^hr\.yaml:2:\d+: machine\.headroom: needs machine\.memory/.test(e.format()),
    );
    // `run` has no concurrent part: it says it ignores the headroom.
    const dir = mkdtempSync(join(tmpdir(), "ptlab-hr-"));
    writeFileSync(join(dir, "hr.yaml"), text(", headroom: 4K"));
    const res = spawnSync(process.execPath, ["dist/src/cli/main.js", "run", join(dir, "hr.yaml")], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stderr, /^note: .*hr\.yaml: `machine\.headroom` applies before the concurrent steps, which only `ptlab explore` runs; `run` ignores it$/m);
  });

  it("a folio reclaim freed stays off the LRU until it is freed: kswapd does not take T1's MADV_PAGEOUT folios again (hunt's schedule)", () => {
    const FILE = "test/fixtures/kswapd-beside-pageout-file.yaml";
    const sc = parseScenario(readFileSync(FILE, "utf8"), FILE);
    const { schedule } = parseToken("v1.3bac42bb..0*15-1*38-0*6-2*250-1-0-2*2");
    const x = replay(scenarioConfig(sc, false), schedule, false);
    assert.equal(x.violation, null, x.violation?.message);
    assert.ok(x.m.counters.kswapdWakes >= 1 && x.m.counters.pgsteal > 0, "kswapd and MADV_PAGEOUT reclaimed beside each other");
  });

  it("memory kswapd cannot free below the min watermark is out-of-memory, with a counterexample", () => {
    // No swap: the anon pages stay; the two file pages are all kswapd finds.
    // The set-up leaves free memory one page above the low watermark
    // (page tables of zero-page reads fill it without adding LRU folios).
    const text = [
      "name: kswapd-oom",
      "machine: { cpus: 3, memory: 16M, thp: madvise }",
      "processes: [{ name: p, threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }] }]",
      "steps:",
      "  - mmap: { region: f, size: 8K, file: data.bin, thread: A }",
      "  - read: { region: f, thread: A }",
      "  - mmap: { region: big, size: 14M, addr: 0x7f0000000000, flags: [private, anonymous, fixed], thread: A }",
      "  - madvise: { region: big, advice: hugepage, thread: A }",
      "  - touch: { region: big, stride: 2M, thread: A }",
      "  - mmap: { region: pad, size: 666M, addr: 0x600000000000, flags: [private, anonymous, fixed], thread: A }",
      "  - read: { region: pad, stride: 2M, thread: A }",
      "  - mmap: { region: w, size: 144K, thread: A }",
      "concurrent:",
      "  - touch: { region: w, thread: A }",
      "  - read: { region: f, thread: B }",
      "explore: { preemptions: 1 }",
      "",
    ].join("\n");
    const c = scenarioConfig(parseScenario(text, "oom.yaml"), false);
    const r = explore(c);
    const cx = r.counterexample;
    assert.ok(cx !== null);
    assert.equal(cx.invariant, "out-of-memory");
    assert.match(
      cx.message,
      /out of memory: \d+ of the 4096 pages of machine.memory in use, kswapd, woken by A's allocation \(write w\+0\), freed nothing more \(no swap device\)/,
    );
    assert.equal(replay(c, cx.schedule, false).violation?.invariant, "out-of-memory");
    // Ignored, the allocations go on past the limit (the model's allocator never fails).
    const x = runOnce({ ...c, ignore: ["out-of-memory"] }, firstChoice, false);
    assert.ok(x.ranToEnd());
    assert.ok(x.m.config.memoryPages - x.m.phys.allocated < x.m.watermarks.min);
  });
});
