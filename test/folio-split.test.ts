// Large folio split (split_folio(), mm/huge_memory.c) and MADV_FREE over
// part of a large folio (madvise_free_pte_range(), mm/madvise.c, v6.17):
// - the split unmaps the folio before splitting it and maps the pages again
//   afterwards, so on arm64 no contpte block ever maps small folios, not even
//   while a concurrent access waits for the split (explored);
// - MADV_FREE marks a large folio lazily freeable only when the range covers
//   it whole; a folio covered in part (PTE-mapped mTHP, PMD-mapped THP, or one
//   spanning two VMAs) is split first, so the pages outside the range stay
//   dirty and swap-backed; a folio another mm maps is left alone.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as P from "../src/core/arch/arm64/pgtable.js";
import { PG_DIRTY, PG_SWAPBACKED } from "../src/core/mm/physmem.js";
import { pmdOffset } from "../src/core/mm/walk.js";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

function run(yaml: string): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  assert.deepEqual(r.m.violations, [], "no violations");
  return r;
}

// The PTE values mapping [addr, addr + n pages) of process p's region, or
// the PMD value when a huge PMD maps it.
function ptes(r: Runner, region: string, n: number, proc = "p"): number[] {
  const p = r.procs.get(proc);
  assert.ok(p);
  const reg = p.regions.get(region);
  assert.ok(reg);
  const m = r.m;
  const A = m.arch;
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const a = reg.start + k * m.geo.pageSize;
    const pi = pmdOffset(m, p.mm, a, false);
    assert.ok(pi >= 0);
    const pmdv = m.tables.get(pi);
    if (A.entryIsLeaf(pmdv)) {
      out.push(pmdv);
      continue;
    }
    const slot = m.tables.slotOfPfn(A.ptePfn(pmdv));
    out.push(m.tables.get(m.tables.base(slot) + ((a / m.geo.pageSize) & m.geo.ptrsMask)));
  }
  return out;
}

const ARM64_64K = "{ arch: arm64, cpus: 2, thp: never, mthp: { 64K: always }, swap: 1M }";
const HEAD = (machine: string) => `name: t
machine: ${machine}
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
`;

describe("split_folio() of a contpte-mapped mTHP (arm64)", () => {
  for (const advice of ["cold", "pageout"]) {
    it(`MADV_${advice.toUpperCase()} of 4K of a 64K folio leaves 16 small folios mapped without CONT, access/dirty kept`, () => {
      const r = run(`${HEAD(ARM64_64K)}steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, length: 4K, advice: ${advice}, thread: A }
`);
      const m = r.m;
      const v = ptes(r, "r", 16);
      assert.equal(m.counters.thpSplits, 1);
      // The 64K folio is one contpte block (16 x 4K).
      assert.equal(m.counters.contUnfolds, 1, "the block was unfolded");
      const first = m.arch.ptePfn(v[advice === "pageout" ? 1 : 0] as number);
      for (let k = advice === "pageout" ? 1 : 0; k < 16; k++) {
        const x = v[k] as number;
        assert.ok(P.pteValid(x), `entry ${k} present`);
        assert.equal(P.pteCont(x), false, `entry ${k} has no CONT`);
        assert.equal(m.arch.ptePfn(x), first + k - (advice === "pageout" ? 1 : 0));
        assert.equal(m.phys.order[m.arch.ptePfn(x)], 0, "small folio");
        assert.ok(m.arch.pteDirty(x), `entry ${k} still dirty`);
        if (k > 0) assert.ok(m.arch.pteYoung(x), `entry ${k} still young`);
      }
      if (advice === "cold") assert.equal(m.arch.pteYoung(v[0] as number), false, "MADV_COLD made the advised page old");
      else assert.ok(m.arch.isSwapPte(v[0] as number), "MADV_PAGEOUT swapped the advised page out");
    });
  }

  // The folio's anon_vma is the parent's; the child's VMA is found through
  // its anon_vma's parent (anon_vma_fork()). Before that link the split's
  // rmap walk missed the child, whose block stayed CONT over small folios.
  it("after fork and the parent's munmap, the child's MADV_FREE of 4K splits the folio and unfolds the child's block", () => {
    const r = run(`${HEAD(ARM64_64K)}steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, thread: A }
  - fork: { child: c, thread: B }
  - munmap: { region: r, thread: A }
  - madvise: { region: r, length: 4K, advice: free, thread: c.t0 }
`);
    const m = r.m;
    const v = ptes(r, "r", 16, "c");
    assert.equal(m.counters.thpSplits, 1);
    const first = m.arch.ptePfn(v[0] as number);
    for (let k = 0; k < 16; k++) {
      const x = v[k] as number;
      assert.ok(P.pteValid(x), `entry ${k} present`);
      assert.equal(P.pteCont(x), false, `entry ${k} has no CONT`);
      assert.equal(m.arch.ptePfn(x), first + k);
      assert.equal(m.phys.order[first + k], 0, "small folio");
    }
  });

  // Thread A advises one page (the split) while thread B stores to another
  // page of the same block. The old split changed the folio into small ones
  // first and unfolded the block afterwards, so B (or a check) found a
  // contpte block over small folios in between.
  for (const [granule, size, page] of [
    [4, "64K", "4K"],
    [16, "2M", "16K"],
  ] as const) {
    it(`${granule}K granule: MADV_PAGEOUT of one page of a ${size} contpte folio against a store explores clean`, () => {
      const sc = parseScenario(
        `${HEAD(`{ arch: arm64, cpus: 2, thp: never, mthp: { ${size}: always }, swap: 4M, arm64: { granule: ${granule} } }`)}steps:
  - mmap: { region: r, size: ${size}, thread: A }
  - touch: { region: r, length: ${page}, thread: A }
concurrent:
  - madvise: { region: r, length: ${page}, advice: pageout, thread: A }
  - touch: { region: r, offset: ${granule * 4}K, length: ${page}, thread: B }
`,
        "t.yaml",
      );
      const cfg: ExploreConfig = {
        sc,
        run: {},
        mode: "exhaustive",
        preemptions: 1,
        maxSteps: 5000,
        executions: 0,
        seed: 1,
        pctDepth: 3,
        shard: { index: 0, count: 1 },
        shrink: false,
        ignore: [],
      };
      const res = explore(cfg);
      assert.equal(res.counterexample, null, res.counterexample?.message);
      assert.ok(res.complete);
    });
  }
});

// The folio flags of the page mapped by v.
function folioFlags(r: Runner, v: number): number {
  const pfn = r.m.arch.ptePfn(v);
  return r.m.phys.flags[r.m.phys.folioHead(pfn)] as number;
}
const lazy = (f: number) => (f & (PG_SWAPBACKED | PG_DIRTY)) === 0;

for (const arch of ["x86_64", "arm64"] as const) {
  describe(`MADV_FREE over part of a large folio (${arch})`, () => {
    const mthp = `{ arch: ${arch}, cpus: 2, thp: never, mthp: { 64K: always } }`;
    it("a 64K mTHP advised in part is split: the advised pages are lazy-free and clean, the rest stay dirty and swap-backed", () => {
      const r = run(`${HEAD(mthp)}steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, length: 16K, advice: free, thread: A }
`);
      const v = ptes(r, "r", 16);
      assert.equal(r.m.counters.thpSplits, 1);
      for (let k = 0; k < 16; k++) {
        const x = v[k] as number;
        assert.equal(r.m.phys.order[r.m.arch.ptePfn(x)], 0, `page ${k} is a small folio`);
        if (k < 4) {
          assert.ok(lazy(folioFlags(r, x)), `page ${k} lazy-free`);
          assert.equal(r.m.arch.pteDirty(x), false, `page ${k} clean`);
        } else {
          assert.equal(folioFlags(r, x) & (PG_SWAPBACKED | PG_DIRTY), PG_SWAPBACKED | PG_DIRTY, `page ${k} keeps dirty and swap-backed`);
          assert.ok(r.m.arch.pteDirty(x), `page ${k} still mapped dirty`);
        }
      }
    });

    it("a 64K mTHP advised whole stays large and becomes lazy-free with every entry clean", () => {
      const r = run(`${HEAD(mthp)}steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: free, thread: A }
`);
      const v = ptes(r, "r", 16);
      assert.equal(r.m.counters.thpSplits, 0);
      const head = r.m.arch.ptePfn(v[0] as number);
      assert.equal(r.m.phys.order[head], 4);
      assert.ok(lazy(folioFlags(r, v[0] as number)));
      for (const x of v) assert.equal(r.m.arch.pteDirty(x), false);
    });

    it("a 64K mTHP spanning two VMAs, advised over one of them, is split", () => {
      const r = run(`${HEAD(mthp)}steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, thread: A }
  - mprotect: { region: r, offset: 32K, length: 32K, prot: r, thread: A }
  - madvise: { region: r, length: 32K, advice: free, thread: A }
`);
      const v = ptes(r, "r", 16);
      for (let k = 0; k < 16; k++) {
        const f = folioFlags(r, v[k] as number);
        if (k < 8) assert.ok(lazy(f), `page ${k} lazy-free`);
        else assert.equal(f & (PG_SWAPBACKED | PG_DIRTY), PG_SWAPBACKED | PG_DIRTY, `page ${k} (other VMA) keeps dirty and swap-backed`);
      }
    });

    it("a 64K mTHP another process maps too is left alone", () => {
      const r = run(`${HEAD(mthp)}steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, thread: A }
  - fork: { child: c, thread: B }
  - madvise: { region: r, length: 16K, advice: free, thread: A }
`);
      const v = ptes(r, "r", 16);
      assert.equal(r.m.counters.thpSplits, 0);
      assert.equal(r.m.phys.order[r.m.arch.ptePfn(v[0] as number)], 4);
      assert.equal(folioFlags(r, v[0] as number) & PG_SWAPBACKED, PG_SWAPBACKED, "not lazy-free");
      for (const x of v) assert.ok(r.m.arch.pteDirty(x));
    });

    it("a PMD-mapped THP advised in part is split; the rest stays dirty and swap-backed", () => {
      const r = run(`${HEAD(`{ arch: ${arch}, cpus: 2, thp: always }`)}steps:
  - mmap: { region: r, size: 2M, addr: 0x7e1000000000, thread: A }
  - touch: { region: r, length: 4K, thread: A }
  - madvise: { region: r, offset: 8K, length: 8K, advice: free, thread: A }
`);
      const v = ptes(r, "r", 8);
      assert.equal(r.m.arch.entryIsLeaf(v[0] as number), false, "PTE-mapped now");
      for (let k = 0; k < 8; k++) {
        const x = v[k] as number;
        assert.equal(r.m.phys.order[r.m.arch.ptePfn(x)], 0, `page ${k} is a small folio`);
        const f = folioFlags(r, x);
        if (k === 2 || k === 3) assert.ok(lazy(f), `page ${k} lazy-free`);
        else assert.equal(f & (PG_SWAPBACKED | PG_DIRTY), PG_SWAPBACKED | PG_DIRTY, `page ${k} keeps dirty and swap-backed`);
      }
    });
  });
}

// can_split_folio() counts a PMD mapping once (it holds one reference): the
// split of a PMD-mapped THP used to fail, so reclaim kept it and MADV_COLD of
// part of it left it whole.
for (const arch of ["x86_64", "arm64"] as const) {
  describe(`split_folio() of a PMD-mapped THP (${arch})`, () => {
    const machine = `{ arch: ${arch}, cpus: 2, thp: always, swap: 4M }`;
    it("MADV_PAGEOUT of the whole THP splits it and swaps all 512 pages out", () => {
      const r = run(`${HEAD(machine)}steps:
  - mmap: { region: r, size: 2M, addr: 0x7e1000000000, thread: A }
  - touch: { region: r, length: 4K, thread: A }
  - madvise: { region: r, advice: pageout, thread: A }
`);
      const mm = r.procs.get("p")?.mm;
      assert.ok(mm);
      assert.equal(mm.swapEnts, 512);
      assert.equal(mm.rssAnon, 0);
      assert.equal(mm.anonHugePmds, 0);
    });
    it("MADV_COLD of 4K of it splits it into small folios, the advised page made old", () => {
      const r = run(`${HEAD(machine)}steps:
  - mmap: { region: r, size: 2M, addr: 0x7e1000000000, thread: A }
  - touch: { region: r, length: 4K, thread: A }
  - madvise: { region: r, offset: 4K, length: 4K, advice: cold, thread: A }
`);
      const v = ptes(r, "r", 4);
      assert.equal(r.m.arch.entryIsLeaf(v[0] as number), false, "PTE-mapped now");
      for (const x of v) assert.equal(r.m.phys.order[r.m.arch.ptePfn(x)], 0);
      assert.equal(r.m.arch.pteYoung(v[1] as number), false);
      assert.ok(r.m.arch.pteYoung(v[0] as number));
    });
  });
}
