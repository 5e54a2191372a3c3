// THP split: pmdp_invalidate() leaves an entry that software still sees as a
// huge PMD (pmd_present(), pmd_trans_huge()) and the hardware walker faults
// on; the explorer's catalogue entries clean-thp-split-* race it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pmdOffset } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

function thpPmd(arch: string): { r: Runner; v: number } {
  const yaml = `name: t
machine: { arch: ${arch}, thp: always }
processes: [{ name: p }]
steps:
  - mmap: { region: s, size: 2M, addr: 0x7e1000000000 }
  - touch: { region: s, length: 4K }
`;
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  const mm = r.procs.get("p")?.mm;
  assert.ok(mm);
  const v = r.m.tables.get(pmdOffset(r.m, mm, 0x7e1000000000, false));
  return { r, v };
}

describe("THP split: pmd_mkinvalid()", () => {
  for (const arch of ["x86_64", "arm64"]) {
    it(`${arch}: the invalidated PMD is still a leaf for software, not for the hardware`, () => {
      const { r, v } = thpPmd(arch);
      const A = r.m.arch;
      assert.ok(A.entryIsLeaf(v), "a PMD-mapped THP");
      assert.ok(A.leafPerm(v) >= 0, "the hardware uses it");
      assert.equal(A.pmdLeafInvalid(v), false);
      const inv = A.pmdMkinvalid(v);
      assert.notEqual(inv, 0, "not pmd_none");
      assert.ok(A.entryIsLeaf(inv), "pmd_trans_huge()");
      assert.equal(A.entryIsTable(inv), false);
      assert.ok(A.pmdLeafInvalid(inv));
      assert.equal(A.leafPerm(inv), -1, "the walker faults");
      assert.equal(A.ptePfn(inv), A.ptePfn(v), "the same folio");
    });
  }
});

// mprotect_fixup() and madvise_update_vma() return before vma_modify_flags()
// when the flags stay the same: the VMA is not split, so a THP the range's
// boundary cuts stays PMD-mapped (scenarios/diff/mprotect-same-thp.yaml
// checks the same against the host). A change does split it.
describe("THP split: only a VMA whose flags change is split", () => {
  for (const arch of ["x86_64", "arm64"]) {
    it(`${arch}: same protection and same advice keep both THPs; a read-only page splits one`, () => {
      const r = new Runner(
        parseScenario(
          `name: t
machine: { arch: ${arch}, thp: madvise }
processes: [{ name: p }]
steps:
  - mmap: { region: s, size: 4M, addr: 0x7e1000000000 }
  - madvise: { region: s, advice: hugepage }
  - touch: { region: s }
  - mprotect: { region: s, offset: 4K, length: 4K, prot: rw }
  - madvise: { region: s, offset: 2052K, length: 4K, advice: hugepage }
  - report: same
  - mprotect: { region: s, offset: 4K, length: 4K, prot: r }
  - report: changed
`,
          "t.yaml",
        ),
        { checkInvariants: true },
      );
      r.runAll();
      const mm = r.procs.get("p")!.mm;
      const same = r.rows.find((x) => x.label === "same")!;
      assert.equal(same.processes[0]!.figures.anon_huge_kb, 4096);
      assert.equal(same.counters.thpSplits, 0);
      const changed = r.rows.find((x) => x.label === "changed")!;
      assert.equal(changed.processes[0]!.figures.anon_huge_kb, 2048);
      assert.equal(changed.counters.thpSplits, 1);
      assert.deepEqual(
        mm.vmas.map((v) => [v.start - 0x7e1000000000, v.end - 0x7e1000000000]),
        [
          [0, 0x1000],
          [0x1000, 0x2000],
          [0x2000, 0x400000],
        ],
      );
      assert.deepEqual(r.m.violations, []);
    });
  }
});
