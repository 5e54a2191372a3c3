// MADV_COLLAPSE against the kernel's rules, on x86-64 and arm64: a
// PTE-mapped range becomes a PMD-mapped THP (RSS grows by the none and
// zero-page entries, the old table is deposited so VmPTE stays, the old
// pages are freed and the contents copied); a page someone else holds a
// reference to makes the collapse fail with the PTE table put back; v6.17
// needs a writable entry (collapse_ro=any, v6.18, does not); a collapsed THP
// splits and unmaps without leaks; unaligned or file ranges are left alone;
// the call's result is 0 only when every range ends PMD-mapped, else EAGAIN
// or EINVAL for the last failure, and SCAN_PMD_NONE ends it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hpageCollapseScanPmd, MADVISE_CC, madviseCollapse } from "../src/core/mm/khugepaged.js";
import { run as runGen } from "../src/core/sync.js";
import { pmdOffset } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

function runText(yaml: string, variants: Record<string, string> = {}): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, variants });
  r.runAll();
  assert.deepEqual(r.m.violations, [], "no violations");
  assert.deepEqual(r.finish(), [], "no leaks at exit");
  return r;
}

function fig(r: Runner, label: string) {
  const row = r.rows.find((x) => x.label === label);
  assert.ok(row, `report ${label}`);
  return { ...row.processes[0]!.figures, c: row.counters };
}

for (const [arch, granule] of [
  ["x86_64", 4],
  ["arm64", 4],
  ["arm64", 16],
] as const) {
  const head = `
name: t
machine: { arch: ${arch}, cpus: 2, thp: never${arch === "arm64" ? `, arm64: { granule: ${granule} }` : ""} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
`;
  const pmd = granule === 4 ? 2048 : 32768; // kB
  const page = granule;
  describe(`MADV_COLLAPSE on ${arch} ${granule}K`, () => {
    it("a half-written range with zero-page entries becomes one THP; the rest of the call's range is left", () => {
      const r = runText(`${head}
steps:
  - mmap: { region: r, size: ${2 * pmd}K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${pmd / 2}K, thread: A }
  - read: { region: r, offset: ${pmd / 2}K, length: ${2 * page}K, thread: B }
  - report: before
  - madvise: { region: r, advice: collapse, thread: A }
  - report: after
  - munmap: { region: r, thread: A }
  - report: unmapped
`);
      const b = fig(r, "before");
      const a = fig(r, "after");
      assert.equal(b.rss_anon_kb, pmd / 2);
      assert.equal(a.rss_anon_kb, pmd);
      assert.equal(a.anon_huge_kb, pmd);
      assert.equal(a.vmpte_kb, b.vmpte_kb, "the old PTE table is deposited, still counted");
      assert.equal(a.c.thpCollapses, 1);
      assert.equal(a.c.thpCollapseFailed, 1, "the second PMD range maps nothing (SCAN_PMD_NULL)");
      assert.equal(a.c.pagesFree, pmd / 2 / page, "the old pages are freed");
      assert.equal(fig(r, "unmapped").vmpte_kb, 0);
    });

    it("a page with a reference nobody maps (a pin) makes the collapse fail and the PTE table come back", () => {
      const r = new Runner(
        parseScenario(
          `${head}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${4 * page}K, thread: A }
`,
          "t.yaml",
        ),
        { checkInvariants: true },
      );
      r.runAll();
      const m = r.m;
      const p = r.procs.get("p")!;
      const reg = p.regions.get("r")!;
      const pi = pmdOffset(m, p.mm, reg.start, false);
      const before = m.tables.get(pi);
      const slot = m.tables.slotOfPfn(m.arch.ptePfn(before));
      const pfn = m.arch.ptePfn(m.tables.get(m.tables.base(slot) + ((reg.start / m.geo.pageSize) & m.geo.ptrsMask)));
      m.phys.ref[pfn] = (m.phys.ref[pfn] as number) + 1; // GUP pin
      assert.equal(runGen(hpageCollapseScanPmd(m, p.mm, reg.start, MADVISE_CC)).result, "page-count");
      assert.equal(m.tables.get(pi), before, "PMD put back");
      assert.equal(p.mm.anonHugePmds, 0);
      m.phys.ref[pfn] = (m.phys.ref[pfn] as number) - 1;
      assert.equal(runGen(hpageCollapseScanPmd(m, p.mm, reg.start, MADVISE_CC)).result, "ok");
      assert.ok(m.arch.entryIsLeaf(m.tables.get(pi)));
      assert.deepEqual(m.violations, []);
    });

    it("v6.17 collapses no range without a writable entry; collapse_ro=any (v6.18) does", () => {
      const yaml = `${head}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${4 * page}K, thread: A }
  - mprotect: { region: r, prot: r, thread: A }
  - madvise: { region: r, advice: collapse, thread: A }
  - report: after
`;
      assert.equal(fig(runText(yaml), "after").anon_huge_kb, 0);
      const r2 = runText(yaml, { collapse_ro: "any" });
      assert.equal(fig(r2, "after").anon_huge_kb, pmd);
      // Read-only after the collapse too: the PMD is not writable.
      const p = r2.procs.get("p")!;
      const pmdv = r2.m.tables.get(pmdOffset(r2.m, p.mm, p.regions.get("r")!.start, false));
      assert.ok(!r2.m.arch.pteWrite(pmdv));
    });

    it("a collapsed THP splits on a partial MADV_DONTNEED and writes after it fault normally", () => {
      const r = runText(`${head}
steps:
  - mmap: { region: r, size: ${pmd}K, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${8 * page}K, thread: A }
  - madvise: { region: r, advice: collapse, thread: A }
  - madvise: { region: r, length: ${page}K, advice: dontneed, thread: B }
  - report: split
  - touch: { region: r, thread: B }
  - report: touched
`);
      const s = fig(r, "split");
      assert.equal(s.anon_huge_kb, 0);
      assert.equal(s.rss_anon_kb, pmd - page);
      assert.equal(fig(r, "touched").rss_anon_kb, pmd);
    });

    it("a range in a file mapping or not PMD-aligned inside the VMA is not collapsed", () => {
      const r = runText(`${head}
steps:
  - mmap: { region: f, size: ${2 * pmd}K, file: data, addr: 0x7e0000000000, thread: A }
  - touch: { region: f, thread: A }
  - madvise: { region: f, advice: collapse, thread: A }
  - mmap: { region: r, size: ${pmd + page}K, addr: 0x7f0000000000, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, offset: ${page}K, length: ${pmd}K, advice: collapse, thread: A }
  - report: after
`);
      const a = fig(r, "after");
      assert.equal(a.anon_huge_kb + a.c.thpCollapses, 0);
    });
  });
}

describe("MADV_COLLAPSE's result (madvise_collapse())", () => {
  const setup = (extra: string) =>
    new Runner(
      parseScenario(
        `
name: t
machine: { cpus: 1, thp: never }
steps:
  - mmap: { region: r, size: 6M, addr: 0x7e0000000000 }
  - touch: { region: r, length: 8K }
  - touch: { region: r, offset: 4M, length: 8K }
${extra}`,
        "t.yaml",
      ),
      { checkInvariants: true },
    );
  it("0 when every range ends PMD-mapped (one already was), EAGAIN after a page with an extra reference, EINVAL after a read-only or empty range", () => {
    const r = setup("");
    r.runAll();
    const m = r.m;
    const p = r.procs.values().next().value!;
    const start = p.regions.get("r")!.start;
    const PMD = m.geo.pmdSize;
    let s = runGen(madviseCollapse(m, p.mm, start, start + PMD));
    assert.deepEqual([s.collapsed, s.errno], [1, ""]);
    s = runGen(madviseCollapse(m, p.mm, start, start + PMD));
    assert.deepEqual([s.already, s.errno, s.lastFail], [1, "", null], "SCAN_PMD_MAPPED counts as done");
    // The middle range maps nothing: SCAN_PMD_NONE ends the call there,
    // before the third range.
    s = runGen(madviseCollapse(m, p.mm, start, start + 3 * PMD));
    assert.deepEqual([s.already, s.failed, s.collapsed, s.errno, s.lastFail], [1, 1, 0, "EINVAL", "pmd-none"]);
    // A reference nobody maps (a pin): SCAN_PAGE_COUNT, worth retrying.
    const third = start + 2 * PMD;
    const pi = pmdOffset(m, p.mm, third, false);
    const slot = m.tables.slotOfPfn(m.arch.ptePfn(m.tables.get(pi)));
    const pfn = m.arch.ptePfn(m.tables.get(m.tables.base(slot) + ((third / m.geo.pageSize) & m.geo.ptrsMask)));
    m.phys.ref[pfn] = (m.phys.ref[pfn] as number) + 1;
    s = runGen(madviseCollapse(m, p.mm, third, third + PMD));
    assert.deepEqual([s.failed, s.errno, s.lastFail], [1, "EAGAIN", "page-count"]);
    m.phys.ref[pfn] = (m.phys.ref[pfn] as number) - 1;
    s = runGen(madviseCollapse(m, p.mm, third, third + PMD));
    assert.deepEqual([s.collapsed, s.errno], [1, ""]);
    assert.deepEqual(m.violations, []);
  });
});
