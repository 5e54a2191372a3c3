// Writeback of shared file pages (page_writeback.ts): on both architectures
// it write-protects and cleans every shared mapping of a dirty page and
// clears the page's dirty flag, leaves private copies and clean pages
// alone, and the next store faults and dirties the page again. Under the
// explorer (scenarios/concurrency/clean-writeback-store.yaml) a store racing
// writeback ends either written back or dirty again, never writable over a
// clean page; the writable-clean-file check reports that state when it is
// made by hand.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkWritableInVma } from "../src/core/check.js";
import { PG_DIRTY } from "../src/core/mm/physmem.js";
import { pteOffset } from "../src/core/mm/walk.js";
import type { Execution } from "../src/explore/execution.js";
import { explore, scenarioConfig } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { load } from "./catalogue.js";

const PS = 4096;

// One process, threads A and B on CPUs 0 and 1.
const head = (name: string, arch: string) => `name: ${name}
machine: { arch: ${arch}, cpus: 2 }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
steps:
`;

function scenario(arch: string, more: string): Runner {
  const r = new Runner(
    parseScenario(
      `${head("wb", arch)}  - mmap: { region: s, size: 16K, flags: [shared], file: data, thread: A }
  - mmap: { region: q, size: 16K, file: data, thread: A }
  - touch: { region: s, length: 8K, thread: A }
  - read: { region: s, offset: 8K, length: 4K, thread: B }
  - touch: { region: q, offset: 12K, length: 4K, thread: A }
${more}`,
      "wb.yaml",
    ),
    { checkInvariants: true },
  );
  r.runAll();
  return r;
}

function entry(r: Runner, region: string, page: number): number {
  const p = r.procs.get("p")!;
  const gi = pteOffset(r.m, p.mm, p.regions.get(region)!.start + page * PS);
  assert.ok(gi >= 0, `${region} page ${page} has a PTE table`);
  return r.m.tables.get(gi);
}

for (const arch of ["x86_64", "arm64"]) {
  describe(`writeback on ${arch}`, () => {
    it("cleans and write-protects the shared mappings of dirty pages, clears their dirty flag, leaves private copies and clean pages alone", () => {
      const before = scenario(arch, "");
      const after = scenario(arch, "  - writeback: { file: data, thread: B }\n");
      const A = after.m.arch;
      for (const k of [0, 1]) {
        const v0 = entry(before, "s", k);
        assert.ok(A.pteWrite(v0) && A.pteDirty(v0), "written: writable and dirty");
        assert.ok((before.m.phys.flags[A.ptePfn(v0)]! & PG_DIRTY) !== 0);
        const v = entry(after, "s", k);
        assert.ok(A.ptePresent(v) && !A.pteWrite(v) && !A.pteDirty(v), `page ${k}: ${A.describeEntry(v)}`);
        assert.equal(A.ptePfn(v), A.ptePfn(v0));
        assert.equal(after.m.phys.flags[A.ptePfn(v)]! & PG_DIRTY, 0, "written back");
      }
      // Never written: unchanged. The private copy is anon memory: untouched.
      assert.equal(entry(after, "s", 2), entry(before, "s", 2));
      const q = entry(after, "q", 3);
      assert.ok(A.pteWrite(q) && A.pteDirty(q));
      assert.equal(entry(after, "q", 3), entry(before, "q", 3));
      // No CPU keeps a writable entry for a cleaned page: the TLB check is clean.
      assert.deepEqual(after.m.violations, []);
    });

    it("the next store faults (wp_page_shared()) and dirties the page again", () => {
      const r = scenario(
        arch,
        "  - writeback: { file: data, thread: B }\n  - report: clean\n  - touch: { region: s, length: 4K, thread: A }\n  - report: stored\n",
      );
      const row = r.rows.find((x) => x.label === "stored")!;
      assert.equal(row.counters.faults, 1);
      const A = r.m.arch;
      const v = entry(r, "s", 0);
      assert.ok(A.pteWrite(v) && A.pteDirty(v));
      assert.ok((r.m.phys.flags[A.ptePfn(v)]! & PG_DIRTY) !== 0);
      assert.ok(!A.pteWrite(entry(r, "s", 1)), "page 1 stays clean");
    });

    it("writable-clean-file: a writable shared entry over a clean page is reported", () => {
      const r = scenario(arch, "");
      const A = r.m.arch;
      assert.deepEqual(
        checkWritableInVma(
          r.m,
          () => false,
          () => false,
        ),
        [],
      );
      const pfn = A.ptePfn(entry(r, "s", 1));
      r.m.phys.flags[pfn] = r.m.phys.flags[pfn]! & ~PG_DIRTY; // writeback without folio_mkclean()
      const v = checkWritableInVma(
        r.m,
        () => false,
        () => false,
      );
      assert.deepEqual(
        v.map((x) => x.invariant),
        ["writable-clean-file"],
      );
    });
  });
}

describe("explore: writeback races stores and mprotect", () => {
  it("clean-writeback-store: clean; the store ends written back in some executions and dirty again in others", () => {
    const sc = load("clean-writeback-store.yaml");
    const seen = new Set<string>();
    const r = explore({
      ...scenarioConfig(sc, false),
      onFinal: (x: Execution) => {
        const m = x.m;
        const A = m.arch;
        const p = [...m.mms][0]!;
        const f = m.files.get("data")!;
        const pfn = f.pages.get(0)!;
        const v = m.tables.get(pteOffset(m, p, [...p.vmas].find((u) => u.file === f)!.start));
        const dirty = (m.phys.flags[pfn]! & PG_DIRTY) !== 0;
        // Writable implies a dirty page (the check holds at every step; here at the end too).
        if (A.pteWrite(v)) assert.ok(dirty);
        seen.add(dirty ? "dirty again" : "written back");
      },
    });
    assert.equal(r.counterexample, null, r.counterexample ? `${r.counterexample.invariant}: ${r.counterexample.message}` : "");
    assert.ok(r.complete);
    assert.deepEqual([...seen].sort(), ["dirty again", "written back"]);
  });
});

describe("explore: lost-dirty fires when a dirty bit vanishes without the folio marked dirty", () => {
  // A kernel path that dropped the information is simulated by clearing the
  // entry's dirty bit and the folio's flag by hand before the first step.
  const base = (arch: string, more: string) =>
    parseScenario(
      `${head("ld", arch)}${more}
concurrent:
  - read: { region: r, length: 4K, thread: A }
  - read: { region: r, length: 4K, thread: B }
explore: { preemptions: 0 }
`,
      "ld.yaml",
    );
  const drop = (x: Execution) => {
    let done = false;
    x.onDecide = () => {
      if (done) return;
      done = true;
      const m = x.m;
      const p = [...m.mms][0]!;
      const gi = pteOffset(m, p, p.vmas[0]!.start);
      const v = m.tables.get(gi);
      m.tables.set(gi, m.arch.pteMkclean(m.arch.pteWrprotect(v)));
      const pfn = m.arch.ptePfn(v);
      m.phys.flags[pfn] = m.phys.flags[pfn]! & ~PG_DIRTY;
    };
  };
  for (const arch of ["x86_64", "arm64"]) {
    it(`${arch}: a shared file page and a lazily freed anon page written again`, () => {
      for (const setup of [
        "  - mmap: { region: r, size: 4K, flags: [shared], file: data, thread: A }\n  - touch: { region: r, thread: A }",
        "  - mmap: { region: r, size: 4K, thread: A }\n  - touch: { region: r, thread: A }\n  - madvise: { region: r, advice: free, thread: A }\n  - touch: { region: r, thread: A }",
      ]) {
        const sc = base(arch, setup);
        const clean = explore({ ...scenarioConfig(sc, false) });
        assert.equal(clean.counterexample, null);
        const r = explore({ ...scenarioConfig(sc, false), onStart: drop });
        assert.equal(r.counterexample?.invariant, "lost-dirty", setup);
      }
    });
  }
});
