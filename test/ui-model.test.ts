// The web view's browser-side logic, run in Node: the editor's validation
// gives the loader's file:line:col; stepping runs what `ptlab run` runs
// (same report rows), back replays to the same state; the page-table and
// TLB views read back what the model holds.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { folioView, pgdView, tableView, tlbEntries, treeStats } from "../src/ui/inspect.js";
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
