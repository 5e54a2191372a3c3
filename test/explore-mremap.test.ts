// mremap and brk as concurrent steps. Checked: v6.17 explores clean when a
// user thread, a lockless reader and a brk shrink race mremap moving PTEs
// (4K pages, arm64 contpte blocks, a PMD-mapped THP with move_huge_pmd(), a
// whole PTE table with move_normal_pmd()), and the moves really happen in
// every final state; a sequential move flushes once per moved extent, under
// the lock, as v6.17 does; the CVE-2018-18281 catalogue entry's
// counterexample runs through move_ptes()'s unlocked window and the
// truncation, and the fixed code stays clean with more preemptions.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Machine } from "../src/core/machine.js";
import type { Mm } from "../src/core/mm/types.js";
import { pmdOffset } from "../src/core/mm/walk.js";
import type { Execution } from "../src/explore/execution.js";
import { type ExploreConfig, explore, scenarioConfig } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import type { Scenario } from "../src/scenario/types.js";
import { load } from "./catalogue.js";

function sc(yaml: string): Scenario {
  return parseScenario(yaml, "inline.yaml");
}

function cfg(s: Scenario, variants: Record<string, string>, over: Partial<ExploreConfig> = {}): ExploreConfig {
  return { ...scenarioConfig(s, false), run: { variants }, ...over };
}

const MREMAP_FREE = `
name: read-past-end
machine: { cpus: 2 }
processes:
  - name: p
    threads: [{ name: M, cpu: 0 }, { name: U, cpu: 1 }]
steps:
  - mmap: { region: r, size: 8K, thread: M }
concurrent:
  - touch: { region: r, thread: M }
  - read: { region: r, offset: 16K, length: 8K, thread: U }
`;

const ANON = sc(`
name: mremap-anon
machine: { cpus: 2 }
processes:
  - name: p
    threads: [{ name: M, cpu: 0 }, { name: U, cpu: 1 }]
steps:
  - mmap: { region: above, size: 4K, prot: r, thread: M }
  - mmap: { region: r, size: 16K, prot: rw, thread: M }
  - touch: { region: r, thread: U }
  - brk: { delta: 16K, region: heap, thread: U }
  - touch: { region: heap, thread: U }
concurrent:
  - mremap: { region: r, new_size: 32K, may_move: true, thread: M }
  - read: { region: r, length: 8K, thread: U }
  - brk: { delta: -8K, thread: U }
explore:
  preemptions: 2
`);

const CONTPTE = sc(`
name: mremap-contpte
machine: { arch: arm64, cpus: 2, thp: never, mthp: { 64K: always } }
processes:
  - name: p
    threads: [{ name: M, cpu: 0 }, { name: U, cpu: 1 }]
steps:
  - mmap: { region: above, size: 64K, prot: r, thread: M }
  - mmap: { region: r, size: 64K, prot: rw, thread: M }
  - touch: { region: r, thread: U }
concurrent:
  - mremap: { region: r, new_size: 128K, may_move: true, thread: M }
  - lockless: { region: r, offset: 4K, via: gup_fast, thread: U }
  - read: { region: r, length: 4K, thread: U }
explore:
  preemptions: 2
`);

const PMD_STEPS = `
machine: { cpus: 2, thp: madvise }
processes:
  - name: p
    threads: [{ name: M, cpu: 0 }, { name: U, cpu: 1 }]
steps:
  - mmap: { region: above, size: 2M, prot: r, thread: M }
  - mmap: { region: h, size: 2M, prot: rw, thread: M }
  - madvise: { region: h, advice: hugepage, thread: M }
  - touch: { region: h, length: 4K, thread: U }
  - mmap: { region: mid, size: 4K, prot: r, thread: M }
  - mmap: { region: t, size: 2M, prot: rw, thread: M }
  - touch: { region: t, length: 8K, thread: U }`;

const PMD = sc(`name: mremap-pmd${PMD_STEPS}
concurrent:
  - mremap: { region: h, new_size: 4M, may_move: true, thread: M }
  - mremap: { region: t, new_size: 4M, may_move: true, thread: M }
  - lockless: { region: t, offset: 4K, via: gup_fast, thread: U }
explore:
  preemptions: 2
`);

// Where the first page of a region's mapping lives: the PMD entry's value
// (a leaf or a table pointer) and, for a table, the PTE's pfn.
function firstPfn(x: { m: Machine }, mm: Mm, addr: number): number {
  const m = x.m;
  const pi = pmdOffset(m, mm, addr, false);
  if (pi < 0) return -1;
  const v = m.tables.get(pi);
  if (v === 0) return -1;
  if (m.arch.entryIsLeaf(v)) return m.arch.ptePfn(v);
  const slot = m.tables.slotOfPfn(m.arch.ptePfn(v));
  const pte = m.tables.get(slot * m.geo.ptrs + ((addr / m.geo.pageSize) & m.geo.ptrsMask));
  return pte === 0 ? -1 : m.arch.ptePfn(pte);
}

describe("explore: mremap and brk in concurrent steps", () => {
  for (const [s, moved] of [
    [ANON, ["r"]],
    [CONTPTE, ["r"]],
    [PMD, ["h", "t"]],
  ] as const) {
    it(`${s.name}: v6.17 explores the whole bounded space clean, and every execution moved ${moved.join(", ")}`, () => {
      // Where the regions were before the concurrent steps.
      const seq = new Runner(s, {});
      seq.execSteps(s.steps, 0);
      const olds = moved.map((n) => seq.procs.get("p")!.regions.get(n)!.start);
      let finals = 0;
      const r = explore(
        cfg(
          s,
          {},
          {
            onFinal: (x: Execution) => {
              finals++;
              const mm = x.m.mms[0]!;
              for (const a of olds) {
                assert.equal(mm.findVma(a), null, `0x${a.toString(16)} still mapped`);
                assert.equal(firstPfn(x, mm, a), -1);
              }
            },
          },
        ),
      );
      assert.equal(r.counterexample, null, r.counterexample ? `${r.counterexample.invariant}: ${r.counterexample.message}` : "");
      assert.ok(r.complete);
      assert.equal(r.truncated, 0);
      assert.ok(r.executions > 10, `${r.executions} executions`);
      assert.equal(finals, r.executions, "every execution reached its final state and was checked");
    });
  }

  it("the brk shrink happens unless the reader was killed first, and r grew to 32K", () => {
    const seen = new Set<string>();
    explore(
      cfg(
        ANON,
        {},
        {
          onFinal: (x: Execution) => {
            const mm = x.m.mms[0]!;
            const u = x.threads.find((t) => t.name === "U")!;
            seen.add(`${u.killed === null ? "ran" : "killed"} brk-${mm.brk - mm.startBrk} ${mm.vmas.map((v) => (v.end - v.start) / 1024).join(",")}`);
          },
        },
      ),
    );
    // A read of r that faults while mremap moves it finds the old range gone
    // afterwards (SIGSEGV), and U stops before its brk.
    for (const s of seen) {
      assert.match(s, /^(ran brk-8192|killed brk-16384) /, s);
      assert.ok(s.split(" ")[2]!.split(",").includes("32"), s);
    }
    assert.ok([...seen].some((s) => s.startsWith("ran ")));
    assert.ok([...seen].some((s) => s.startsWith("killed ")));
  });

  it("sequential moves flush once per moved extent under the lock (move_huge_pmd(), move_normal_pmd()) and keep the pages", () => {
    const s = sc(`name: seq${PMD_STEPS}
  - mremap: { region: h, new_size: 4M, may_move: true, thread: M }
  - mremap: { region: t, new_size: 4M, may_move: true, thread: M }
`);
    const r = new Runner(s, {});
    const p = r.procs.get("p")!;
    const steps = s.steps;
    r.execSteps(steps.slice(0, steps.length - 2), 0);
    const h = p.regions.get("h")!.start;
    const t = p.regions.get("t")!.start;
    const hPfn = firstPfn(r, p.mm, h);
    const tPfn = firstPfn(r, p.mm, t);
    assert.ok(hPfn > 0 && tPfn > 0);
    const C = r.m.counters;
    for (const [i, name, pfn] of [
      [steps.length - 2, "h", hPfn],
      [steps.length - 1, "t", tPfn],
    ] as const) {
      const req = C.tlbFlushRequests;
      const writes = C.pteWrites;
      r.exec(steps[i]!, 0);
      const na = p.regions.get(name)!.start;
      assert.notEqual(na, name === "h" ? h : t, `${name} moved`);
      assert.equal(firstPfn(r, p.mm, na), pfn, `${name}: the same page at the new address`);
      assert.equal(firstPfn(r, p.mm, name === "h" ? h : t), -1, `${name}: nothing at the old address`);
      // One flush_tlb_range() for the one PMD moved; the old range's unmap
      // finds nothing left to flush.
      assert.equal(C.tlbFlushRequests - req, 1, `${name}: flushes`);
      assert.equal(C.pteWrites - writes, 2, `${name}: the PMD entry cleared and set`);
    }
  });

  it("i-mremap-flush: the old code's counterexample frees the page in the window after move_ptes() unlocked", () => {
    const s = load("i-mremap-flush.yaml");
    const r = explore(scenarioConfig(s, true));
    const cx = r.counterexample;
    assert.ok(cx !== null);
    assert.equal(cx.invariant, "freed-before-flush");
    const sites = cx.trace.map((t) => `${t.thread} ${t.site}`);
    const unlocked = sites.indexOf("M move_ptes: after pte_unmap_unlock()");
    const truncated = sites.indexOf("T truncate_inode_pages: after i_mmap_unlock_read()");
    assert.ok(unlocked >= 0 && truncated > unlocked, sites.join("\n"));
    assert.ok(!sites.some((x) => x.includes("deferred flush_tlb_range")), "the deferred flush never ran");
  });

  it("i-mremap-flush: v6.17 stays clean with three preemptions", () => {
    const s = load("i-mremap-flush.yaml");
    const r = explore(scenarioConfig(s, false, { preemptions: 3 }));
    assert.equal(r.counterexample, null);
    assert.ok(r.complete && r.executions > 100, `${r.executions}`);
  });

  // A thread's later step may still name the part of a region that another
  // thread's mremap cut off: the access meets the unmapped range (SIGSEGV)
  // in the schedules where the shrink came first, instead of ending the
  // exploration with a scenario error.
  it("a read past the end of a region a concurrent mremap shrank is killed with SIGSEGV, not a scenario error", () => {
    const s = sc(`
name: mremap-shrink
machine: { cpus: 2 }
processes:
  - name: p
    threads: [{ name: M, cpu: 0 }, { name: U, cpu: 1 }]
steps:
  - mmap: { region: r, size: 32K, thread: M }
  - touch: { region: r, thread: M }
concurrent:
  - mremap: { region: r, new_size: 8K, thread: M }
  - read: { region: r, offset: 16K, length: 8K, thread: U }
explore:
  preemptions: 1
`);
    const seen = new Set<string>();
    const r = explore(cfg(s, {}, { onFinal: (x: Execution) => seen.add(x.threads.find((t) => t.name === "U")!.killed === null ? "ran" : "killed") }));
    assert.equal(r.counterexample, null);
    assert.ok(r.complete);
    assert.deepEqual([...seen].sort(), ["killed", "ran"]);
    // Without a concurrent mremap the same range is the author's error.
    const bad = sc(MREMAP_FREE);
    assert.throws(() => explore(cfg(bad, {})), /outside region "r"/);
  });
});
