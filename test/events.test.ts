// The event stream (src/core/events.ts) and its recorder (src/core/record.ts):
// what a sequential munmap emits, that nobody pays for events nobody listens
// to, and counterexamples that tell what happened inside their steps.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { x86_64 } from "../src/core/arch/x86/index.js";
import { EV_FRAMES_FREED, EV_PINS_RELEASED, type ModelEvent } from "../src/core/events.js";
import { newMachine } from "../src/core/index.js";
import { defaultConfig, Machine } from "../src/core/machine.js";
import { TableStore } from "../src/core/mm/pgtable.js";
import { Recorder } from "../src/core/record.js";
import { explore, scenarioConfig } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { PROJECT_ROOT } from "./shared-path.js";

const SCENARIO = `
name: munmap-events
machine: { arch: x86_64, cpus: 2 }
processes:
  - name: p
    threads: [{ name: main, cpu: 0 }, { name: worker, cpu: 1 }]
steps:
  - mmap: { region: r, size: 64K, prot: rw }
  - touch: { region: r, offset: 0, length: 64K }
  - read: { region: r, offset: 0, length: 4K, thread: worker }
  - munmap: { region: r }
`;

function recordMunmap(): { r: Runner; events: ModelEvent[]; base: number } {
  const sc = parseScenario(SCENARIO, "events.yaml");
  const r = new Runner(sc, {});
  r.execSteps(sc.steps.slice(0, 3), 0);
  const base = (r.m.mms[0]?.vmas[0]?.start ?? -1) as number;
  const rec = new Recorder(r.m);
  r.execSteps(sc.steps.slice(3), 0);
  rec.stop();
  return { r, events: rec.target.map((e) => e.ev), base };
}

describe("events: a munmap told by the stream", () => {
  const { r, events, base } = recordMunmap();
  const A = r.m.arch;
  const of = <K extends ModelEvent["kind"]>(k: K) => events.filter((e): e is ModelEvent & { kind: K } => e.kind === k);

  it("zap_pte_range() clears the 16 PTEs in address order, each once", () => {
    const clears = of("entry").filter((e) => e.level === 0 && e.new === 0);
    assert.deepEqual(
      clears.map((e) => e.addr),
      Array.from({ length: 16 }, (_, i) => base + i * 4096),
    );
    assert.ok(clears.every((e) => A.ptePresent(e.old) && e.mm === r.m.mms[0]?.id));
  });

  it("the frames those PTEs mapped are freed, after the gather's flush", () => {
    const clears = of("entry").filter((e) => e.level === 0 && e.new === 0);
    const pfns = clears.map((e) => A.ptePfn(e.old)).sort((a, b) => a - b);
    const freed = of("folio-free").map((e) => e.pfn);
    assert.deepEqual(
      [...freed].sort((a, b) => a - b),
      pfns,
    );
    const firstFlush = events.findIndex((e) => e.kind === "gather-flush");
    const firstFree = events.findIndex((e) => e.kind === "folio-free");
    assert.ok(firstFlush >= 0 && firstFlush < firstFree, "a folio was freed before the gather flushed");
    const g = of("gather-flush")[0];
    assert.ok(g !== undefined && g.start <= base && g.end >= base + 65536 && (g.levels & 1) === 1);
  });

  it("x86: 16 pages are under the 33-page ceiling: INVLPGs on both CPUs, an IPI to the worker's", () => {
    const fl = of("flush");
    assert.ok(fl.some((e) => e.op === "ipi (flush_tlb_func)" && e.cpu === 0 && e.to === 1));
    const inv = fl.filter((e) => e.op === "invlpg");
    assert.deepEqual(
      inv.map((e) => [e.cpu, e.start, e.end]),
      [
        [0, base, base + 65536],
        [1, base, base + 65536],
      ],
    );
    // The worker read one page: its CPU drops exactly that translation.
    const drops1 = of("tlb-drop").filter((e) => e.cpu === 1 && e.level === 0);
    assert.deepEqual(
      drops1.map((e) => e.addr),
      [base],
    );
  });

  it("the PTE table free_pgtables() unlinks goes to RCU and is freed at the grace period after the step", () => {
    const unlink = of("entry").find((e) => e.level === 1 && e.new === 0);
    assert.ok(unlink !== undefined && A.entryIsTable(unlink.old));
    const pfn = A.ptePfn(unlink.old);
    // The runner lets a grace period pass after each step.
    const queued = events.findIndex((e) => e.kind === "table-rcu" && e.pfn === pfn && e.level === 0);
    const freed = events.findIndex((e) => e.kind === "table-free" && e.pfn === pfn && e.via === "tlb_remove_table_rcu");
    assert.ok(queued >= 0 && freed > queued);
    // Table pages are not told as folios.
    assert.ok(!of("folio-free").some((e) => e.pfn === pfn));
  });
});

describe("events: nobody pays for what nobody listens to", () => {
  it("a plain machine has no listener; newMachine()'s checks want only their two kinds", () => {
    const cfg = defaultConfig();
    const plain = new Machine(x86_64(4), cfg);
    assert.equal(plain.evMask, 0);
    assert.equal(plain.events, null);
    const m = newMachine(x86_64(4), cfg);
    assert.equal(m.evMask, EV_FRAMES_FREED | EV_PINS_RELEASED);
  });
  it("a recorder, once stopped, leaves the machine's methods as they were", () => {
    const m = newMachine(x86_64(4), defaultConfig());
    const mask = m.evMask;
    const rec = new Recorder(m);
    assert.ok(Object.hasOwn(m.tables, "chunkOf") && Object.hasOwn(m.cpus[0]?.tlb ?? {}, "insert"));
    rec.stop();
    assert.equal(m.evMask, mask);
    for (const k of ["chunkOf", "set", "unchecked"]) assert.ok(!Object.hasOwn(m.tables, k), k);
    assert.equal(m.tables.chunkOf, TableStore.prototype.chunkOf);
    for (const c of m.cpus) for (const k of ["insert", "insertPsc", "invalidateVa", "flushAsid"]) assert.ok(!Object.hasOwn(c.tlb, k), k);
    for (const k of ["alloc", "folioPut"]) assert.ok(!Object.hasOwn(m.phys, k), k);
  });
});

describe("events: counterexamples that explain themselves", () => {
  const FILE = "scenarios/concurrency/a-nested-gather.yaml";
  const sc = parseScenario(readFileSync(FILE, "utf8"), FILE);
  const res = explore(scenarioConfig(sc, true, { shrink: true }));
  const cx = res.counterexample;

  it("a-nested-gather: the PMD clear, the flush and the table handed to RCU appear, where they happened", () => {
    assert.ok(cx !== null);
    const text = cx.text.join("\n");
    const unlink = text.search(/mm1 PMD 0x[0-9a-f]+: clear \(unlinks table pfn \d+\)/);
    const bBegins = text.search(/ B +CPU1 +\[madvise\(dontneed\)[^\]]*\] \(begin\)/);
    const violation = text.indexOf("VIOLATION [stale-tlb-after-return]");
    const cont = text.search(/\(\d+\) +A .*\.\.\. continues/);
    assert.ok(unlink >= 0 && bBegins >= 0 && violation >= 0 && cont >= 0, text);
    // A unlinks its table and issues its TLBI, B runs inside A's DSB wait
    // and returns, then A continues.
    assert.ok(unlink < bBegins && bBegins < violation && violation < cont, text);
    assert.match(text, /tlbi rvale1is asid \d+ \[0x[0-9a-f]+, 0x[0-9a-f]+\), last level only \(walk caches kept\)/);
    assert.match(text, /PTE table pfn \d+ handed to RCU \(tlb_table_flush\)/);
  });

  it("per step (the web view's lanes): the step B ran inside of says where", () => {
    assert.ok(cx !== null);
    const a = cx.trace.find((s) => s.thread === "A" && s.explained.some((l) => l.includes("ran inside this one")));
    assert.ok(a !== undefined);
    const at = a.explained.findIndex((l) => l.includes("ran inside this one"));
    const bSteps = cx.trace.filter((s) => s.thread === "B").map((s) => s.n);
    assert.equal(a.explained[at], `... here steps ${Math.min(...bSteps)}-${Math.max(...bSteps)} (B) ran inside this one ...`);
    assert.ok(a.explained.slice(0, at).some((l) => /PMD .*: clear \(unlinks table pfn \d+\)/.test(l)));
    assert.ok(a.explained.slice(at + 1).some((l) => l.includes("dsb ish")));
  });

  it("lock transitions: mmap_lock taken for writing, downgraded, released", () => {
    assert.ok(cx !== null);
    const locks = cx.trace
      .filter((s) => s.thread === "A")
      .flatMap((s) => s.events)
      .filter((e): e is Extract<ModelEvent, { kind: "lock" }> & { seq: number } => e.kind === "lock" && e.lock === 0)
      .map((e) => e.op);
    assert.deepEqual(locks, ["take", "downgrade", "release"]);
  });

  it("structured events in order: seqs rise within each step", () => {
    assert.ok(cx !== null);
    for (const s of cx.trace) {
      assert.ok(s.start >= 0);
      for (let i = 0; i < s.events.length; i++) assert.ok((s.events[i]?.seq ?? -1) >= (i === 0 ? s.start : (s.events[i - 1]?.seq ?? 0) + 1));
    }
    // JSON-safe: numbers, strings and booleans only.
    assert.deepEqual(JSON.parse(JSON.stringify(cx.trace)), cx.trace);
  });

  it("b-lockless-no-retry: a reader's loads with nothing happening are merged into one line", () => {
    const f = "scenarios/concurrency/b-lockless-no-retry.yaml";
    const r = explore(scenarioConfig(parseScenario(readFileSync(f, "utf8"), f), true, { shrink: true }));
    const text = r.counterexample?.text.join("\n") ?? "";
    assert.match(text, /contpte_ptep_get_lockless: load a block entry ×\d+/);
  });
});

describe("events: ptlab run --events", () => {
  const CLI = join(PROJECT_ROOT, "dist", "src", "cli", "main.js");
  const dir = mkdtempSync(join(tmpdir(), "ptlab-events-"));
  const yaml = join(dir, "s.yaml");
  writeFileSync(
    yaml,
    `name: small
machine: { cpus: 2, pt_reclaim: true }
processes:
  - name: app
    threads: [{ name: main, cpu: 0 }]
steps:
  - mmap: { region: heap, size: 4M, prot: rw }
  - touch: { region: heap, offset: 0, length: 2M }
  - madvise: { region: heap, offset: 0, length: 2M, advice: dontneed }
  - munmap: { region: heap }
`,
  );
  it("writes each event with its step: 512 faults and folios, the PTE table PT reclaim frees", () => {
    const out = join(dir, "ev.jsonl");
    const res = spawnSync(process.execPath, [CLI, "run", yaml, "--events", out], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    const evs = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as ModelEvent & { at: string; step: number; seq: number; fn?: string });
    const count = (at: string, f: (e: (typeof evs)[number]) => boolean) => evs.filter((e) => e.at === at && f(e)).length;
    // 2M of 4K pages, touched for writing outside a MADV_HUGEPAGE range.
    assert.equal(
      count("touch", (e) => e.kind === "fault"),
      512,
    );
    assert.equal(
      count("touch", (e) => e.kind === "folio-alloc"),
      512,
    );
    assert.equal(
      count("touch", (e) => e.kind === "entry" && e.level === 0 && e.old === 0),
      512,
    );
    assert.equal(
      count("madvise", (e) => e.kind === "entry" && e.level === 0 && e.new === 0),
      512,
    );
    assert.equal(
      count("madvise", (e) => e.kind === "folio-free"),
      512,
    );
    // CONFIG_PT_RECLAIM: the emptied PTE table is unlinked and goes to RCU.
    assert.equal(
      count("madvise", (e) => e.kind === "entry" && e.level === 1 && e.new === 0),
      1,
    );
    assert.equal(
      count("madvise", (e) => e.kind === "table-rcu" && e.level === 0),
      1,
    );
    // Each names the kernel function it happened in (the coarse points the
    // model has for --by-function).
    const fnOf = (at: string, f: (e: (typeof evs)[number]) => boolean) => new Set(evs.filter((e) => e.at === at && f(e)).map((e) => e.fn));
    assert.deepEqual(
      fnOf("touch", (e) => e.kind === "entry" && e.level === 0),
      new Set(["do_anonymous_page"]),
    );
    assert.deepEqual(
      fnOf("madvise", (e) => e.kind === "entry"),
      new Set(["zap_pte_range"]),
    );
    // seq rises over the whole file.
    assert.ok(evs.every((e, i) => i === 0 || e.seq > (evs[i - 1] as (typeof evs)[number]).seq));
  });
  it("an unwritable file is one line, exit 2", () => {
    const res = spawnSync(process.execPath, [CLI, "run", yaml, "--events", join(dir, "no", "such", "dir")], { encoding: "utf8" });
    assert.equal(res.status, 2);
    assert.equal(res.stderr.trim().split("\n").length, 1);
    assert.match(res.stderr, /--events .*: cannot write: ENOENT/);
  });
});
