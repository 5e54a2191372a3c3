// The web view's browser-side logic, run in Node: the editor's validation
// gives the loader's file:line:col; stepping runs what `ptlab run` runs
// (same report rows), back replays to the same state; the page-table and
// TLB views read back what the model holds; a counterexample's token
// replayed in the view gives the trace `ptlab explore` printed.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { explore, scenarioConfig } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { addressesIn, CxError, crossLane, lanes, lockSpans, mentions, openCxJson, parseCxJson, replayToken, tokenInText } from "../src/ui/counterexample.js";
import { folioView, pgdView, tableView, tlbEntries, tlbRuns, treeStats } from "../src/ui/inspect.js";
import { flattenSteps, MAX_UNROLLED, StepSession } from "../src/ui/session.js";
import { validateScenario } from "../src/ui/validate.js";

const repoFile = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), "utf8");

const small = `name: small
machine: { cpus: 2 }
processes:
  - name: app
    threads: [{ name: main, cpu: 0 }, { name: worker, cpu: 1 }]
steps:
  - mmap: { region: buf, size: 4M, prot: rw }
  - touch: { region: buf, offset: 0, length: 64K }
  - read: { region: buf, offset: 0, length: 8K, thread: worker }
  - report: touched
  - madvise: { region: buf, offset: 0, length: 64K, advice: dontneed }
  - report: dropped
`;

describe("editor validation", () => {
  it("accepts a good scenario and returns the loader's AST", () => {
    const v = validateScenario(small, "s.yaml");
    assert.ok(v.ok);
    assert.equal(v.scenario.name, "small");
    assert.equal(v.scenario.steps.length, 6);
  });

  it("reports the loader's first error as file:line:col", () => {
    const bad = small.replace("prot: rw", "prot: rwz");
    const v = validateScenario(bad, "s.yaml");
    assert.ok(!v.ok);
    assert.equal(v.error.line, 7);
    assert.match(v.error.text, /^s\.yaml:7:\d+: /);
    let cli = "";
    try {
      parseScenario(bad, "s.yaml");
    } catch (e) {
      cli = (e as Error & { format(): string }).format();
    }
    assert.equal(v.error.text, cli, "the same line the CLI prints");
  });

  it("reports a YAML syntax error with its position", () => {
    const v = validateScenario("name: x\nsteps: [\n", "y.yaml");
    assert.ok(!v.ok);
    assert.equal(v.error.file, "y.yaml");
    assert.ok(v.error.line >= 2, v.error.text);
  });
});

describe("step session", () => {
  it("stepping to the end gives the report rows of a whole run", () => {
    const sc = parseScenario(small, "s.yaml");
    const s = new StepSession(sc);
    assert.equal(s.items.length, 7, "six steps and the teardown");
    while (s.forward());
    assert.equal(s.stopped, null);
    const whole = new Runner(parseScenario(small, "s.yaml"));
    whole.runAll();
    assert.deepEqual(s.runner.rows, whole.rows);
    assert.equal(s.runner.m.tables.live, 0, "the teardown freed every table");
  });

  it("back replays to the same state", () => {
    const s = new StepSession(parseScenario(small, "s.yaml"));
    s.goto(2);
    const mm = s.runner.procs.get("app")!.mm;
    const before = JSON.stringify([treeStats(s.runner.m, mm), tlbEntries(s.runner.m, 0), tlbEntries(s.runner.m, 1)]);
    s.goto(4);
    s.back();
    s.back();
    assert.equal(s.done, 2);
    const mm2 = s.runner.procs.get("app")!.mm;
    assert.equal(JSON.stringify([treeStats(s.runner.m, mm2), tlbEntries(s.runner.m, 0), tlbEntries(s.runner.m, 1)]), before);
  });

  it("keeps a timeline of the figures after every step, the same after going back", () => {
    const s = new StepSession(parseScenario(small, "s.yaml"));
    while (s.forward());
    assert.equal(s.timeline.length, s.items.length + 1);
    const whole = new Runner(parseScenario(small, "s.yaml"));
    whole.runAll();
    // Step 4 is the first report: its figures are the timeline's after 4 steps.
    const f = whole.rows[0]!.processes[0]!.figures;
    assert.equal(s.timeline[4]!.vmpteKb, f.vmpte_kb);
    assert.equal(s.timeline[4]!.rssKb, f.rss_anon_kb + f.rss_file_kb + f.rss_shmem_kb);
    assert.ok(s.timeline[4]!.rssKb > 0);
    assert.deepEqual(s.timeline.at(-1)!.vmpteKb, 0, "all freed by the teardown");
    for (let k = 1; k < s.timeline.length; k++) assert.ok(s.timeline[k]!.cycles >= s.timeline[k - 1]!.cycles);
    assert.ok(s.timeline[5]!.tlbFlushes > s.timeline[4]!.tlbFlushes, "MADV_DONTNEED flushed");
    const all = JSON.stringify(s.timeline);
    s.goto(3);
    assert.equal(JSON.stringify(s.timeline), JSON.stringify(JSON.parse(all).slice(0, 4)));
  });

  it("a runtime error stops the run with the step's position", () => {
    const sc = parseScenario(`${small}  - touch: { region: nope, offset: 0 }\n`, "s.yaml");
    const s = new StepSession(sc);
    s.goto(100);
    assert.equal(s.stopped?.kind, "error");
    assert.equal(s.stopped?.error?.line, 13);
    assert.match(s.stopped?.text ?? "", /^s\.yaml:13:\d+: unknown region "nope"/);
    assert.equal(s.done, 7, "stopped at the failing step");
  });

  it("unrolls short repeats and keeps long ones whole", () => {
    const sc = parseScenario(
      `name: r
steps:
  - mmap: { region: a, size: 64M, prot: rw }
  - repeat: { count: 3, advance: 4K, steps: [ { touch: { region: a, offset: 0, length: 4K } } ] }
  - repeat: { count: ${MAX_UNROLLED + 1}, advance: 4K, steps: [ { touch: { region: a, offset: 0, length: 4K } } ] }
`,
      "r.yaml",
    );
    const items = flattenSteps(sc.steps);
    assert.equal(items[0]!.label, "mmap (t0) region=a size=0x4000000 prot=rw offset=0");
    assert.match(items[3]!.label, /^touch \(t0\) region=a offset=0 length=0x1000 .*\[repeat \+0x2000\]$/);
    assert.deepEqual(
      items.map((i) => [i.kind, i.base]),
      [
        ["step", 0],
        ["step", 0],
        ["step", 4096],
        ["step", 8192],
        ["repeat", 0],
      ],
    );
    const s = new StepSession(sc);
    s.goto(5);
    assert.equal(s.stopped, null);
    assert.equal(s.runner.procs.get("p0")!.mm.rssAnon, MAX_UNROLLED + 1, "the long repeat touched each of its pages; the short one the first three again");
  });
});

describe("page-table and TLB views", () => {
  it("shows the tree from the PGD down to the PTEs that touch made", () => {
    const s = new StepSession(parseScenario(small, "s.yaml"));
    s.goto(2); // mmap, touch 64K
    const m = s.runner.m;
    const p = s.runner.procs.get("app")!;
    const base = p.regions.get("buf")!.start;
    let t = pgdView(m, p.mm);
    assert.equal(t.levelName, "PGD");
    const names: string[] = [t.levelName];
    while (t.level > 0) {
      const hit = t.entries.filter((e) => e.va <= base && base < e.va + m.geo.span[t.level]! * m.geo.pageSize);
      assert.equal(hit.length, 1);
      assert.equal(hit[0]!.kind, "table");
      t = tableView(m, hit[0]!.childSlot, t.level - 1, hit[0]!.va);
      names.push(t.levelName);
    }
    assert.deepEqual(names, ["PGD", "PUD", "PMD", "PTE"]);
    const pages = t.entries.filter((e) => e.kind === "page");
    assert.equal(pages.length, 16, "64K of 4K pages");
    assert.deepEqual(
      pages.map((e) => e.va),
      Array.from({ length: 16 }, (_, i) => base + i * 4096),
    );
    const f = pages[0]!.folio!;
    assert.ok(f.flags.includes("anon"), f.flags.join(","));
    assert.equal(f.mapcount, 1);
    assert.match(pages[0]!.desc, /RW/);
    const st = treeStats(m, p.mm);
    assert.deepEqual(st.tables, [
      { level: "PGD", count: 1 },
      { level: "PUD", count: 1 },
      { level: "PMD", count: 1 },
      { level: "PTE", count: 1 },
    ]);
    assert.equal(st.leaves.page, 16);
    assert.equal(folioView(m, 0), null, "pfn 0 is no folio");
  });

  it("lists the TLB entries each CPU filled, tagged with their mm", () => {
    const s = new StepSession(parseScenario(small, "s.yaml"));
    s.goto(3); // ... and the worker on CPU 1 reads 8K
    const m = s.runner.m;
    const p = s.runner.procs.get("app")!;
    const base = p.regions.get("buf")!.start;
    const c1 = tlbEntries(m, 1).filter((e) => e.kind === "page");
    assert.deepEqual(
      c1.map((e) => e.va),
      [base, base + 4096],
    );
    assert.ok(c1.every((e) => e.mm === p.mm.id && e.perm.startsWith("w")));
    assert.ok(
      tlbEntries(m, 1).some((e) => e.kind === "walk" && e.level === 1),
      "a PDE cache entry for the PTE table",
    );
    assert.equal(tlbEntries(m, 0).filter((e) => e.kind === "page").length, 16);
    s.goto(5); // MADV_DONTNEED flushed both CPUs
    assert.equal(tlbEntries(m, 1).filter((e) => e.kind === "page" && e.va >= base && e.va < base + 65536).length, 0);
  });

  it("marks contpte blocks on arm64", () => {
    const sc = parseScenario(
      `name: c
machine: { arch: arm64, mthp: { 64K: always } }
steps:
  - mmap: { region: a, size: 2M, prot: rw }
  - touch: { region: a, offset: 0, length: 64K }
`,
      "c.yaml",
    );
    const s = new StepSession(sc);
    s.goto(2);
    const m = s.runner.m;
    const mm = s.runner.procs.get("p0")!.mm;
    assert.equal(treeStats(m, mm).cont, 16);
  });

  it("the built-in default scenario steps to the end without a violation", () => {
    const s = new StepSession(parseScenario(repoFile("scenarios/default.yaml"), "default.yaml"));
    while (s.forward());
    assert.equal(s.stopped, null, s.stopped?.text);
    assert.equal(s.runner.rows.length, 3);
  });
});

describe("TLB runs", () => {
  it("merges entries contiguous in VA and PFN with equal tags and keeps the rest apart", () => {
    const e = (va: number, pfn: number, perm = "wd-u", kind: "page" | "walk" = "page") => ({ kind, asid: 0, va, bytes: 4096, pfn, perm, level: 0, mm: 1 });
    const runs = tlbRuns(
      [e(0x1000, 10), e(0x2000, 11), e(0x3000, 12), e(0x4000, 20), e(0x5000, 21, "----"), e(0x6000, 0, "", "walk"), e(0x7000, 1, "", "walk")],
      4096,
    );
    assert.deepEqual(
      runs.map((r) => [r.va, r.pfn, r.count]),
      [
        [0x1000, 10, 3],
        [0x4000, 20, 1],
        [0x5000, 21, 1],
        [0x6000, 0, 1],
        [0x7000, 1, 1],
      ],
    );
  });
});

describe("counterexamples: arrows between lanes", () => {
  it("i-mremap-flush (x86): the flush IPI into the lane of the thread on the CPU it interrupts", () => {
    const f = "scenarios/concurrency/i-mremap-flush.yaml";
    const sc = parseScenario(repoFile(f), f);
    const cx = explore(scenarioConfig(sc, true, { shrink: true })).counterexample;
    assert.ok(cx !== null);
    const cross = crossLane(cx);
    const ipis = cx.trace.flatMap((s, i) => s.events.filter((e) => e.kind === "flush" && e.to >= 0).map((e) => ({ i, s, e })));
    assert.ok(ipis.length > 0);
    for (const { i, s, e } of ipis) {
      if (e.kind !== "flush") continue;
      const lanesThere = [...new Set(cx.trace.filter((t) => t.cpu === e.to && t.thread !== s.thread).map((t) => t.thread))];
      for (const l of lanesThere)
        assert.ok(
          (cross[i]?.get(l) ?? []).some((x) => x.startsWith(`◀ ${e.op} from ${s.thread} (CPU${e.cpu})`)),
          `${l} at step ${s.n}`,
        );
    }
  });
});

describe("counterexamples", () => {
  const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const A = "scenarios/concurrency/a-nested-gather.yaml";

  it("replaying explore's token on the scenario gives explore's trace, and the state shows the stale entry it names", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-ui-"));
    try {
      const out = join(dir, "a.json");
      const r = spawnSync(process.execPath, [MAIN, "explore", A, "--historical", "--json", out, "--no-progress"], { encoding: "utf8", timeout: 120_000 });
      assert.equal(r.status, 1, r.stderr);
      const doc = parseCxJson(readFileSync(out, "utf8"));
      assert.equal(doc.states, null);
      assert.equal(doc.cx.invariant, "stale-tlb-after-return");
      const re = replayToken(parseScenario(repoFile(A), A), doc.cx.token);
      assert.deepEqual(re.cx.trace, doc.cx.trace);
      assert.equal(re.cx.message, doc.cx.message);
      assert.equal(re.variants, "gather_nested=reset-range");
      assert.equal(re.states?.length, doc.cx.trace.length);
      const marks = addressesIn(doc.cx.message);
      assert.ok(marks.length > 0, doc.cx.message);
      // The violation is B's, when its madvise() returned: after B's last step.
      const bLast = doc.cx.trace.findLastIndex((s) => s.thread === "B");
      assert.ok(bLast > 0);
      assert.ok(
        re.states?.[bLast]?.tlbs.some(([k, v]) => mentions(`${k} ${v}`, marks)),
        `the state after step ${bLast + 1} holds the entry "${doc.cx.message}" names`,
      );
      assert.deepEqual(lanes(doc.cx), ["A", "B"]);
      // Lock spans from the steps' lock events: A takes mmap_lock for
      // writing, downgrades it, and holds it for reading to its last step.
      const spans = lockSpans(doc.cx);
      assert.equal(spans.length, doc.cx.trace.length);
      const at = (op: string) => doc.cx.trace.findIndex((s) => s.thread === "A" && s.events.some((e) => e.kind === "lock" && e.lock === 0 && e.op === op));
      const take = at("take");
      const down = at("downgrade");
      const rel = at("release");
      assert.ok(take >= 0 && down > take && rel > down, `${take} ${down} ${rel}`);
      assert.ok(spans[take]?.get("A")?.includes("mmap_lock(mm1)"));
      assert.ok(spans[down]?.get("A")?.includes("mmap_lock(mm1) (read)"));
      assert.ok(!(spans[rel]?.get("A") ?? []).some((x) => x.startsWith("mmap_lock")));
      // B's PTE lock spans its zap of one table, and only that.
      const bLocks = spans.map((m) => m.get("B") ?? []);
      assert.ok(bLocks.some((l) => l.some((x) => x.startsWith("ptl(table"))));
      assert.deepEqual(bLocks[bLast], []);
      // arm64 sends no IPIs, and every TLB entry the flushes drop here is
      // CPU2's, which runs no thread of the scenario: no arrows.
      assert.ok(crossLane(doc.cx).every((m) => m.size === 0));
      // The JSON carries its scenario: opened alone, it replays the same.
      const text = readFileSync(out, "utf8");
      const alone = openCxJson(text);
      assert.equal(alone.replayNote, undefined);
      assert.deepEqual(alone.states, re.states);
      assert.deepEqual(alone.cx.trace, doc.cx.trace);
      const bare = JSON.parse(text) as Record<string, unknown>;
      delete bare.scenario_text;
      const old = openCxJson(JSON.stringify(bare));
      assert.equal(old.states, null);
      assert.match(old.replayNote ?? "", /does not carry its scenario/);
      bare.scenario_text = repoFile(A).replace("length: 2M", "length: 4M");
      assert.match(openCxJson(JSON.stringify(bare)).replayNote ?? "", /could not be replayed: the token was made for another/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("replays a hunt finding's own token as explore --replay does", () => {
    // A finding since explained away (test/explore.test.ts): its schedule
    // runs, through madvise(pageout), and breaks nothing.
    const text = repoFile("test/fixtures/hunt-pageout-brk-shrink.yaml");
    const tok = tokenInText(text);
    assert.equal(tok, "v1.5209e3df..2-3-0-3-2*2-3-0*2-3-0*2-3");
    const re = replayToken(parseScenario(text, "h.yaml"), tok as string);
    assert.equal(re.cx.invariant, "(none)");
    assert.ok(re.cx.trace.some((s) => s.op === "madvise(pageout) h+0"));
    assert.ok(re.cx.trace.some((s) => /zap_pte_range: load a PTE/.test(s.site)));
  });

  it("says what is wrong with bad input", () => {
    const sc = parseScenario(repoFile(A), A);
    const err = (f: () => unknown, re: RegExp) =>
      assert.throws(f, (e: unknown) => {
        assert.ok(e instanceof CxError, String(e));
        assert.match(e.message, re);
        return true;
      });
    err(() => parseCxJson("{"), /^not JSON/);
    err(() => parseCxJson("[1]"), /expected the JSON object/);
    err(() => parseCxJson('{"counterexample": null, "executions": 9}'), /found no counterexample \(9 executions\)/);
    err(
      () => parseCxJson('{"counterexample": {"invariant": "x", "message": "m", "token": "t", "threads": ["A"], "trace": [{"n": 1}]}}'),
      /counterexample\.trace\[0\]\.thread/,
    );
    err(() => replayToken(sc, "v2.x"), /malformed replay token/);
    err(() => replayToken(sc, "v1.00000000..0-1"), /made for another scenario.*token 00000000/);
    err(() => replayToken(parseScenario(small, "s.yaml"), "v1.00000000..0-1"), /no `concurrent` steps/);
  });

  it("matches addresses and frames exactly", () => {
    const marks = addressesIn("CPU2 4K TLB entry 0x7f000 -> pfn 5 but the tables say table pfn=12");
    assert.deepEqual(marks, ["0x7f000", "pfn 5", "pfn=12"]);
    assert.ok(mentions("tlb 0x7f000: - pfn 9", marks));
    assert.ok(!mentions("tlb 0x7f0001: pfn 50", marks));
    assert.ok(mentions("table pfn 12", marks));
    assert.ok(mentions("pfn=5 V|T", marks));
  });
});
