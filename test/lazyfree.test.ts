// Reclaim of lazily freed (MADV_FREE) anon memory, try_to_unmap_one()'s
// MADV_FREE branch (mm/rmap.c, v6.17) and shrink_folio_list()'s lazyfree
// case (mm/vmscan.c): a clean lazyfree folio is dropped without swap,
// whole if large (no split); one written since MADV_FREE is mapped again,
// becomes swap-backed and later goes to swap; large folios are unmapped in
// runs bounded by the VMA and the PTE table (folio_unmap_pte_batch()) and
// with one write bit (29f40594a281); v6.17 as released
// (lazyfree_batch=ignore-write) sets a run back with its first entry's write
// bit, and the v6.15 logic (whole-folio, fixed by ddd05742b45b) reads past
// the PTE table when mremap() moved the folio across a PMD boundary.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Runner, type RunOptions } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

function run(yaml: string, opts: RunOptions = {}): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, ...opts });
  r.runAll();
  return r;
}

function row(r: Runner, label: string) {
  const x = r.rows.find((y) => y.label === label);
  assert.ok(x, `report ${label}`);
  const p = x.processes.find((y) => y.name === "p");
  assert.ok(p);
  return { ...p.figures, c: x.counters };
}

const head = (arch: string, mthp = "") => `
name: t
machine: { arch: ${arch}, cpus: 2, thp: never, swap: 16M${mthp} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
`;

for (const arch of ["x86_64", "arm64"] as const) {
  describe(`lazyfree reclaim on ${arch}`, () => {
    it("a clean lazyfree page is dropped, not swapped; one stored to after MADV_FREE is mapped again and swapped on the next pass", () => {
      const r = run(`${head(arch)}
steps:
  - mmap: { region: r, size: 32K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: free, thread: A }
  - touch: { region: r, offset: 8K, length: 4K, thread: B }
  - madvise: { region: r, advice: pageout, thread: A }
  - report: first
  - madvise: { region: r, advice: pageout, thread: A }
  - report: second
`);
      const a = row(r, "first");
      // 7 clean pages dropped; the written one kept, mapped (swap-backed again).
      assert.equal(a.c.pglazyfreed, 7);
      assert.equal(a.c.pswpout, 0);
      assert.equal(a.rss_anon_kb, 4);
      assert.equal(a.vmswap_kb, 0);
      const b = row(r, "second");
      assert.equal(b.c.pglazyfreed, 0);
      assert.equal(b.c.pswpout, 1);
      assert.equal(b.rss_anon_kb, 0);
      assert.equal(b.vmswap_kb, 4);
      assert.deepEqual(r.finish(), []);
    });

    it("a 64K lazyfree folio is dropped whole in one batch; one PTE at a time (before v6.15) gives the same result", () => {
      const yaml = `${head(arch, ", mthp: { 64K: always }")}
steps:
  - mmap: { region: r, size: 64K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: free, thread: A }
  - reclaim: { region: r, process: p, thread: B }
  - report: reclaimed
`;
      const batched = run(yaml);
      const single = run(yaml, { variants: { lazyfree_batch: "none" } });
      for (const r of [batched, single]) {
        const x = row(r, "reclaimed");
        assert.equal(x.c.pglazyfreed, 16);
        assert.equal(x.c.pgsteal, 16); // pages (shrink_folio_list()'s nr_reclaimed), not folios
        assert.equal(x.rss_anon_kb, 0);
        assert.equal(x.c.pswpout, 0);
        assert.deepEqual(r.finish(), []);
      }
      const b = row(batched, "reclaimed").c;
      const s = row(single, "reclaimed").c;
      if (arch === "arm64") {
        // The block is cleared whole, not unfolded first (contpte_convert()).
        assert.equal(b.contUnfolds, 0);
        assert.equal(s.contUnfolds, 1);
      } else assert.ok(b.tlbFlushesPage <= s.tlbFlushesPage);
    });

    it("lazyfree_batch=whole-folio (v6.15) reads past the PTE table for a folio mremap() moved across a PMD boundary; v6.17 does not", () => {
      const yaml = `${head(arch, ", mthp: { 64K: always }")}
steps:
  - mmap: { region: r, size: 64K, addr: 0x7e0000000000, thread: A }
  - mmap: { region: above, size: 4K, prot: r, addr: 0x7e0000010000, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: free, thread: A }
  # Moved below mmap_base: its first page 8K under a PMD boundary.
  - mremap: { region: r, new_size: 2056K, may_move: true, thread: A }
  - reclaim: { region: r, process: p, thread: B }
  - report: reclaimed
`;
      const fixed = run(yaml);
      assert.equal(row(fixed, "reclaimed").c.pglazyfreed, 16);
      assert.deepEqual(fixed.finish(), []);
      const old = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, variants: { lazyfree_batch: "whole-folio" } });
      const res = old.runToEnd();
      assert.equal(res.violations.length, 1, res.violations.join("\n"));
      assert.match(
        res.violations[0] as string,
        /^\[pt-out-of-bounds\] folio_pte_batch\(\) asked to scan 16 entries from entry 510 of a PTE table of 512: 14 past/,
      );
    });
  });
}

for (const arch of ["x86_64", "arm64"] as const) {
  it(`${arch}: a lazyfree run set back after a store keeps each entry's write bit; v6.17 as released (ignore-write) makes read-only entries writable`, () => {
    const yaml = `${head(arch, ", mthp: { 32K: always }")}
steps:
  - mmap: { region: r, size: 32K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: free, thread: A }
  - fork: { child: c, cpu: 1, thread: A }
  - exit: { process: c, thread: c.t0 }
  - touch: { region: r, length: 4K, thread: A }
  # The first pass finds the store's access flag and keeps the folio.
  - reclaim: { region: r, process: p, thread: B }
  - reclaim: { region: r, process: p, thread: B }
  - report: reclaimed
`;
    const fixed = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
    assert.deepEqual(fixed.runToEnd().violations, []);
    const x = row(fixed, "reclaimed");
    // Written since MADV_FREE: kept, mapped again, swap-backed.
    assert.equal(x.c.pglazyfreed, 0);
    assert.equal(x.rss_anon_kb, 32);
    const old = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, variants: { lazyfree_batch: "ignore-write" } });
    const res = old.runToEnd();
    assert.ok(res.violations.length > 0);
    assert.match(res.violations[0] as string, /^\[writable-anon-not-exclusive\] mm1: writable PTE at 0x7e0000001000 /);
  });
}

describe("lazyfree reclaim of a PMD-mapped THP (x86_64)", () => {
  it("a clean lazily freed THP has its PMD split and its 512 pages dropped, the PTE table kept; one written since MADV_FREE stays mapped", () => {
    const r = run(`${head("x86_64").replace("thp: never", "thp: madvise")}
steps:
  - mmap: { region: r, size: 4M, addr: 0x7e0000000000, thread: A }
  - madvise: { region: r, advice: hugepage, thread: A }
  - touch: { region: r, thread: A }
  - report: faulted
  - madvise: { region: r, advice: free, thread: A }
  - touch: { region: r, offset: 2M, length: 4K, thread: B }
  - madvise: { region: r, advice: pageout, thread: A }
  - report: pageout
`);
    const a = row(r, "faulted");
    const b = row(r, "pageout");
    assert.equal(a.anon_huge_kb, 4096);
    assert.equal(b.c.pglazyfreed, 512);
    assert.equal(b.c.thpSplits, 2);
    assert.equal(b.rss_anon_kb, 2048);
    assert.equal(b.anon_huge_kb, 0);
    assert.equal(b.vmpte_kb, a.vmpte_kb);
    assert.deepEqual(r.finish(), []);
  });
});
