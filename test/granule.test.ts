// arm64 16K and 64K granules end to end: the generic mm code, the TLB and the
// TLBI operands in pages of the granule, with every invariant checked after
// every step.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { Counters } from "../src/core/counters.js";
import { type ReportRow, Runner, ViolationError } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";

function run(yaml: string): { r: Runner; rows: ReportRow[]; violations: string[] } {
  const r = new Runner(parseScenario(yaml, "g.yaml"), { checkInvariants: true });
  try {
    r.runAll();
    return { r, rows: r.rows, violations: r.finish().map((v) => `[${v.invariant}] ${v.message}`) };
  } catch (e) {
    if (!(e instanceof ViolationError)) throw e;
    return { r, rows: r.rows, violations: e.violations.map((v) => `[${v.invariant}] ${v.message}`) };
  }
}
const row = (rows: ReportRow[], label: string) => {
  const x = rows.find((y) => y.label === label);
  assert.ok(x, label);
  return x;
};
const c = (rows: ReportRow[], label: string): Counters => row(rows, label).counters;
// A process's figures at a report (the first process by default).
function fig(rows: ReportRow[], label: string, proc?: string) {
  const ps = row(rows, label).processes;
  const p = proc === undefined ? ps[0] : ps.find((x) => x.name === proc);
  assert.ok(p, `${label}: process ${proc ?? "(first)"}`);
  return p.figures;
}

// A process's life on one granule: mTHP faults, fork and COW, an mprotect
// round trip on a sub-range that splits a folio's block, MADV_DONTNEED over
// whole PTE tables (PT reclaim), munmap, exit.
function life(granule: number, vaBits: number, mthp: string, size: string, pmd: string): string {
  return `name: life-${granule}k
machine: { arch: arm64, arm64: { granule: ${granule}, va_bits: ${vaBits} }, cpus: 2, thp: never, mthp: { ${mthp}: always } }
processes:
  - name: p
    threads: [{ name: t0, cpu: 0 }, { name: t1, cpu: 1 }]
steps:
  - mmap: { region: A, size: ${size}, prot: rw }
  - touch: { region: A }
  - report: touched
  - mprotect: { region: A, offset: ${granule * 3}K, length: ${granule * 40}K, prot: r }
  - mprotect: { region: A, offset: ${granule * 3}K, length: ${granule * 40}K, prot: rw }
  - fork: { child: c }
  - touch: { region: A, length: ${mthp}, thread: t1 }
  - report: cow
  - madvise: { region: A, offset: ${pmd}, length: ${pmd}, advice: dontneed }
  - report: dontneed
  - munmap: { region: A }
  - exit: { process: c }
  - report: end
`;
}

describe("16K and 64K granules", () => {
  for (const [g, va, mthp, size, pmd, blocks, pageKb] of [
    [16, 48, "2M", "64M", "32M", 32, 16],
    [16, 47, "2M", "64M", "32M", 32, 16],
    [64, 48, "2M", "1G", "512M", 512, 64],
    [64, 42, "2M", "1G", "512M", 512, 64],
    [16, 52, "2M", "64M", "32M", 32, 16],
    [64, 52, "2M", "1G", "512M", 512, 64],
  ] as const) {
    it(`${g}K granule, ${va}-bit VA: a process's life keeps every invariant and frees everything`, () => {
      const { rows, violations } = run(life(g, va, mthp, size, pmd));
      assert.deepEqual(violations, []);
      const t = c(rows, "touched");
      // 2M mTHP = one CONT block (CONT_PTES 128 for 16K, 32 for 64K): one
      // fault per block, and the CONT TLB entry makes the rest of the block hit.
      assert.equal(t.mthpFaults, blocks);
      assert.equal(t.tlbMisses, 2 * blocks, "a miss before and after each fault");
      assert.equal(t.tlbHits, (blocks * 2048) / pageKb - blocks);
      assert.equal(t.contFolds, 0, "set_ptes() writes whole blocks with CONT");
      const f = fig(rows, "touched", "p");
      assert.equal(f.rss_anon_kb, blocks * 2048);
      // The mprotect sub-range starts 3 pages into a block: its blocks unfold.
      const cow = c(rows, "cow");
      // Pages 3..42 of the region, in blocks of CONT_PTES = 2M / page size
      // pages: each block they touch is covered in part and unfolds once
      // (1 with 128-page blocks, 2 with 32-page blocks); the way back to rw
      // folds nothing, fork and the COW copies unfold nothing more.
      const cont = 2048 / pageKb;
      assert.equal(cow.contUnfolds, Math.floor(42 / cont) - Math.floor(3 / cont) + 1);
      assert.equal(cow.cowCopies, 2048 / pageKb, "the child's write copies a 2M folio's pages one by one");
      const d = c(rows, "dontneed");
      assert.equal(d.ptReclaimed, 1, "one whole PTE table reclaimed");
    });
  }

  it("52-bit VAs: 5 levels with 4K pages (LPA2), 4 with 16K, 3 with 64K", () => {
    // One 2M region: a table at every level, each the granule's size.
    for (const [g, levels] of [
      [4, 5],
      [16, 4],
      [64, 3],
    ] as const) {
      const { r, rows, violations } = run(`name: t
machine: { arch: arm64, arm64: { granule: ${g}, va_bits: 52 }, thp: never }
steps:
  - mmap: { region: A, size: 2M, prot: rw }
  - touch: { region: A }
  - report: r
`);
      assert.deepEqual(violations, []);
      // VmPTE counts PTE, PMD and PUD tables (mm_pgtables_bytes()); a P4D table is not accounted.
      assert.equal(fig(rows, "r").vmpte_kb, Math.min(levels - 1, 3) * g, `${g}K/52: tables below the PGD`);
      assert.equal(r.m.arch.levels, levels);
    }
  });

  it("user addresses stay below TASK_SIZE: mmap_base scales with a small VA, MAP_FIXED above fails", () => {
    for (const [g, va] of [
      [4, 39],
      [16, 36],
      [64, 42],
    ] as const) {
      const sc = `name: t
machine: { arch: arm64, arm64: { granule: ${g}, va_bits: ${va} }, thp: never }
steps:
  - mmap: { region: A, size: 1M, prot: rw }
  - touch: { region: A }
  - brk: { delta: 1M }
`;
      const r = new Runner(parseScenario(sc, "t.yaml"));
      r.execSteps(r.sc.steps, 0);
      const mm = (r.procs.get("main") ?? [...r.procs.values()][0])?.mm;
      assert.ok(mm);
      for (const v of mm.vmas) assert.ok(v.end <= 2 ** va, `${g}K/${va}: VMA ${v.start.toString(16)}-${v.end.toString(16)} above 2^${va}`);
      // Region A and the heap brk() grew by 1M.
      assert.equal(mm.vmas.length, 2);
      const fixed = `${sc}  - mmap: { region: B, size: 1M, addr: 0x7f0000000000, flags: [private, fixed] }
`;
      assert.throws(() => run(fixed), /ENOMEM/);
    }
  });

  it("page-table memory counts tables of the granule's size at each level", () => {
    // 16K/48: PUD + PMD + two 32M PTE tables = 4 x 16K; 64K/48: PMD + one PTE table;
    // 64K/42 (two levels): the PTE table only.
    for (const [g, va, want] of [
      [16, 48, 64],
      [64, 48, 128],
      [64, 42, 64],
      [4, 48, 4 * (2 + 32)],
    ] as const) {
      const { rows, violations } = run(`name: t
machine: { arch: arm64, arm64: { granule: ${g}, va_bits: ${va} }, thp: never }
steps:
  - mmap: { region: A, size: 64M, prot: rw }
  - touch: { region: A }
  - report: r
`);
      assert.deepEqual(violations, []);
      assert.equal(fig(rows, "r").vmpte_kb, want, `${g}K/${va}`);
    }
  });

  it("PMD THPs are 32M (16K) and 512M (64K); a partial munmap splits one", () => {
    for (const [g, pmd, n] of [
      [16, "32M", 2],
      [64, "512M", 2],
    ] as const) {
      const { rows, violations } = run(`name: t
machine: { arch: arm64, arm64: { granule: ${g} }, thp: always }
steps:
  - mmap: { region: A, size: ${n === 2 ? (g === 16 ? "64M" : "1G") : pmd}, prot: rw }
  - touch: { region: A }
  - report: thp
  - munmap: { region: A, offset: ${g}K, length: ${g}K }
  - report: split
`);
      assert.deepEqual(violations, []);
      assert.equal(c(rows, "thp").thpFaults, n, `${g}K`);
      assert.equal(fig(rows, "thp").anon_huge_kb, n * (g === 16 ? 32 : 512) * 1024);
      assert.equal(c(rows, "split").thpSplits, 1);
    }
  });

  it("TLBI operands and gather batches count pages of the granule", () => {
    for (const [g, flushes] of [
      [4, 2],
      [16, 1],
      [64, 1],
    ] as const) {
      const { rows, violations } = run(`name: t
machine: { arch: arm64, arm64: { granule: ${g} }, thp: never, mthp: {} }
steps:
  - mmap: { region: A, size: 64M, prot: rw }
  - mmap: { region: B, size: 64M, prot: rw }
  - touch: { region: A }
  - touch: { region: B }
  - report: touched
  - madvise: { region: A, advice: dontneed }
  - report: dontneed
`);
      assert.deepEqual(violations, []);
      const d = c(rows, "dontneed");
      // 64M is 16384, 4096 or 1024 pages. A gather holds 8 + MAX_GATHER_BATCH *
      // MAX_GATHER_BATCH_COUNT pages, with (PAGE_SIZE - 16) / 8 per batch page:
      // 9698 with 4K pages (two flushes), 8192 with 16K, 8190 with 64K.
      assert.equal(d.gatherFlushes, flushes, `${g}K`);
      const ops = d.tlbiRvale1is + d.tlbiRvae1is;
      const byVa = d.tlbiVale1is + d.tlbiVae1is + d.tlbiAside1is;
      if (g === 4) assert.ok(ops >= flushes && byVa === 0);
      // (NUM+1) * 2^(5*SCALE+1) pages: 4096 and 1024 pages are one operation each.
      else assert.deepEqual([ops, byVa, d.dsb], [1, 0, 1], `${g}K`);
      // 64M is less than the 512M a 64K PTE table maps: no PT reclaim, so the
      // flush is last-level only.
      if (g === 64) assert.deepEqual([d.ptReclaimed, d.tlbiRvale1is], [0, 1]);
      else assert.equal(d.ptReclaimed, 64 / (g === 4 ? 2 : 32));
    }
  });

  it("an unaligned munmap fails with EINVAL, naming the step", () => {
    const sc = parseScenario(
      `name: t
machine: { arch: arm64, arm64: { granule: 64 } }
steps:
  - mmap: { region: A, size: 1M, prot: rw }
  - munmap: { region: A, offset: 4K, length: 64K }
`,
      "g.yaml",
    );
    assert.throws(
      () => new Runner(sc, {}).runAll(),
      (e: unknown) => e instanceof ScenarioError && /^g\.yaml:5:5: munmap failed: EINVAL: address must be page aligned$/.test(e.format()),
    );
  });

  it("every diff scenario runs clean on 16K and 64K pages, leaks included", () => {
    const dir = "scenarios/diff";
    for (const g of [16, 64] as const)
      for (const f of readdirSync(dir).filter((x) => x.endsWith(".yaml") && !x.includes("50g"))) {
        const sc = parseScenario(readFileSync(`${dir}/${f}`, "utf8"), f);
        sc.machine.arch = "arm64";
        sc.machine.arm64 = { granule: g, vaBits: 48, hafdbs: true, tlbiRange: true, bbml2NoAbort: false, asidBits: 16 };
        const r = new Runner(sc, { checkInvariants: true });
        r.runAll();
        assert.deepEqual(
          r.finish().map((v) => `[${v.invariant}] ${v.message}`),
          [],
          `${g}K ${f}`,
        );
      }
  });
});
