// The khugepaged step against the kernel's rules for a khugepaged collapse
// (collapse_control.is_khugepaged), which MADV_COLLAPSE does not apply: the
// sysfs THP mode, max_ptes_shared (HPAGE_PMD_NR / 2), the young-entry
// requirement; and what both need (a writable entry). Counts are exact:
// each case derives them from HPAGE_PMD_NR of the granule.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";

function runText(yaml: string): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  assert.deepEqual(r.m.violations, [], "no violations");
  assert.deepEqual(r.finish(), [], "no leaks at exit");
  return r;
}

function fig(r: Runner, label: string, proc = 0) {
  const row = r.rows.find((x) => x.label === label);
  assert.ok(row, `report ${label}`);
  return { ...row.processes[proc]!.figures, c: row.counters };
}

for (const [arch, granule] of [
  ["x86_64", 4],
  ["arm64", 4],
  ["arm64", 16],
] as const) {
  const head = (thp: string) => `
name: t
machine: { arch: ${arch}, cpus: 2, thp: ${thp}${arch === "arm64" ? `, arm64: { granule: ${granule} }` : ""} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: K, cpu: 1 }]
`;
  const page = granule; // kB
  const nr = (granule * 1024) / 8; // HPAGE_PMD_NR: entries per PTE table
  const pmd = nr * page; // kB
  describe(`khugepaged on ${arch} ${granule}K`, () => {
    it("thp: madvise: a range is collapsed only once its VMA has VM_HUGEPAGE", () => {
      const r = runText(`${head("madvise")}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${2 * page}K, thread: A }
  - khugepaged: { region: r, thread: K }
  - report: plain
  - madvise: { region: r, advice: hugepage, thread: A }
  - khugepaged: { region: r, thread: K }
  - report: hugepage
`);
      const a = fig(r, "plain");
      assert.equal(a.c.thpCollapses + a.c.thpCollapseFailed, 0, "the VMA is not scanned at all");
      assert.equal(a.anon_huge_kb, 0);
      const b = fig(r, "hugepage");
      assert.equal(b.c.thpCollapses, 1);
      assert.equal(b.anon_huge_kb, pmd);
      assert.equal(b.rss_anon_kb, pmd, "the none entries are filled with zeroes");
    });

    it("thp: always scans every anonymous VMA but VM_NOHUGEPAGE ones", () => {
      const r = runText(`${head("always")}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - madvise: { region: r, advice: nohugepage, thread: A }
  - touch: { region: r, length: ${2 * page}K, thread: A }
  - khugepaged: { region: r, thread: K }
  - report: nohuge
  - madvise: { region: r, advice: hugepage, thread: A }
  - khugepaged: { region: r, thread: K }
  - report: huge
`);
      assert.equal(fig(r, "nohuge").c.thpCollapses + fig(r, "nohuge").c.thpCollapseFailed, 0);
      assert.equal(fig(r, "huge").c.thpCollapses, 1);
    });

    it("a range with no writable entry is left (SCAN_PAGE_RO), as by MADV_COLLAPSE", () => {
      const r = runText(`${head("madvise")}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - read: { region: r, length: ${2 * page}K, thread: A }
  - madvise: { region: r, advice: hugepage, thread: A }
  - khugepaged: { region: r, thread: K }
  - report: k
`);
      const k = fig(r, "k");
      assert.equal(k.c.thpCollapses, 0);
      assert.equal(k.c.thpCollapseFailed, 1);
    });

    it("a range with no young entry is left (SCAN_LACK_REFERENCED_PAGE); MADV_COLLAPSE takes it", () => {
      const r = runText(`${head("madvise")}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${2 * page}K, thread: A }
  - madvise: { region: r, advice: hugepage, thread: A }
  - madvise: { region: r, advice: cold, thread: A }
  - khugepaged: { region: r, thread: K }
  - report: cold
  - madvise: { region: r, advice: collapse, thread: A }
  - report: collapse
`);
      const c = fig(r, "cold");
      assert.equal(c.c.thpCollapses, 0);
      assert.equal(c.c.thpCollapseFailed, 1);
      assert.equal(c.anon_huge_kb, 0);
      assert.equal(fig(r, "collapse").c.thpCollapses, 1);
    });

    it(`max_ptes_shared: ${nr / 2} entries shared with a child are collapsed, ${nr / 2 + 1} are not`, () => {
      const r = runText(`${head("madvise")}
steps:
  - mmap: { region: a, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - mmap: { region: b, size: ${pmd}K, addr: 0x7f0000000000, thread: A }
  - touch: { region: a, length: ${(nr / 2 + 1) * page}K, thread: A }
  - touch: { region: b, length: ${(nr / 2 + 2) * page}K, thread: A }
  - madvise: { region: a, advice: hugepage, thread: A }
  - madvise: { region: b, advice: hugepage, thread: A }
  - fork: { child: c, thread: A }
  # a store copies the first page: one writable entry (else SCAN_PAGE_RO), one shared entry less
  - touch: { region: a, length: ${page}K, thread: A }
  - touch: { region: b, length: ${page}K, thread: A }
  - khugepaged: { region: a, thread: K }
  - report: a
  - khugepaged: { region: b, thread: K }
  - report: b
  - madvise: { region: b, advice: collapse, thread: A }
  - report: collapse
`);
      assert.equal(fig(r, "a").c.thpCollapses, 1, "at the limit");
      const b = fig(r, "b");
      assert.equal(b.c.thpCollapses, 0, "over the limit (SCAN_EXCEED_SHARED_PTE)");
      assert.equal(b.c.thpCollapseFailed, 1);
      assert.equal(fig(r, "collapse").c.thpCollapses, 1, "MADV_COLLAPSE has no such limit");
      assert.equal(fig(r, "collapse").anon_huge_kb, 2 * pmd);
    });
  });
}

// max_ptes_swap (HPAGE_PMD_NR / 8) and the rule that a range with swap
// entries needs half its entries young; the swap entries are swapped in
// before the copy (__collapse_huge_page_swapin()).
for (const arch of ["x86_64", "arm64"] as const) {
  const nr = 512;
  describe(`khugepaged and swap entries on ${arch} 4K`, () => {
    it(`${nr / 8} swap entries with ${nr / 2} young are swapped in and collapsed, ${nr / 8 + 1} are not; ${nr / 2 - 1} young are too few`, () => {
      const r = runText(`
name: t
machine: { arch: ${arch}, cpus: 2, thp: madvise, swap: 16M }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: K, cpu: 1 }]
steps:
  - mmap: { region: a, size: 2M, addr: 0x7e0000000000, thread: A }
  - mmap: { region: b, size: 2M, addr: 0x7e8000000000, thread: A }
  - mmap: { region: c, size: 2M, addr: 0x7f0000000000, thread: A }
  - touch: { region: a, length: ${(nr / 2 + nr / 8) * 4}K, thread: A }
  - touch: { region: b, length: ${(nr / 2 + nr / 8 + 1) * 4}K, thread: A }
  - touch: { region: c, length: ${(nr / 2 - 1 + 1) * 4}K, thread: A }
  - madvise: { region: a, offset: ${(nr / 2) * 4}K, length: ${(nr / 8) * 4}K, advice: pageout, thread: A }
  - madvise: { region: b, offset: ${(nr / 2) * 4}K, length: ${(nr / 8 + 1) * 4}K, advice: pageout, thread: A }
  - madvise: { region: c, offset: ${(nr / 2 - 1) * 4}K, length: 4K, advice: pageout, thread: A }
  - madvise: { region: a, advice: hugepage, thread: A }
  - madvise: { region: b, advice: hugepage, thread: A }
  - madvise: { region: c, advice: hugepage, thread: A }
  - report: swapped
  - khugepaged: { region: a, thread: K }
  - report: a
  - khugepaged: { region: b, thread: K }
  - report: b
  - khugepaged: { region: c, thread: K }
  - report: c
  - madvise: { region: c, advice: collapse, thread: A }
  - report: collapse
`);
      assert.equal(fig(r, "swapped").vmswap_kb, (nr / 8 + nr / 8 + 1 + 1) * 4);
      const a = fig(r, "a");
      assert.equal(a.c.thpCollapses, 1, "at both limits");
      assert.equal(a.vmswap_kb, (nr / 8 + 1 + 1) * 4, "a's swap entries were swapped in");
      assert.equal(fig(r, "b").c.thpCollapses, 0, "SCAN_EXCEED_SWAP_PTE");
      assert.equal(fig(r, "c").c.thpCollapses, 0, "SCAN_LACK_REFERENCED_PAGE");
      const c = fig(r, "collapse");
      assert.equal(c.c.thpCollapses, 1, "MADV_COLLAPSE has neither rule");
      assert.equal(c.vmswap_kb, (nr / 8 + 1) * 4);
      assert.equal(c.anon_huge_kb, 2 * 2048);
    });
  });
}

describe("khugepaged step: bad input", () => {
  it("thp: never is a located error (the kernel stops the thread)", () => {
    const sc = parseScenario(
      `name: t
machine: { cpus: 2, thp: never }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }]
steps:
  - mmap: { region: r, size: 2M, thread: A }
  - khugepaged: { region: r, thread: A }
`,
      "t.yaml",
    );
    const r = new Runner(sc, {});
    assert.throws(
      () => r.runAll(),
      (e: unknown) => e instanceof ScenarioError && e.line === 8 && e.col === 5 && /khugepaged does not run with thp: never/.test(e.message),
    );
  });
});
