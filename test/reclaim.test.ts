// Reclaim, rmap and swap against the kernel's rules, on x86-64 and arm64:
// MADV_PAGEOUT of N private anon pages moves N pages from RssAnon to VmSwap
// with one deferred flush per dirty page (try_to_unmap_flush_dirty() before
// each pageout()), a read brings them back through do_swap_page() and maps
// them writable (the exclusive marker), fork makes swap entries shared and
// the swap cache serves the second reader, zap frees the slots, kswapd-style
// reclaim keeps a referenced page once, large folios go to swap whole, dirty
// file folios are left to the flusher, and a
// scenario asking for reclaim without swap is an input error.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { checkAccounting } from "../src/core/check.js";
import { PG_DIRTY } from "../src/core/mm/physmem.js";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import { Runner, type RunOptions } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";
import { fig } from "./inspect.js";

const CLI = "dist/src/cli/main.js";
const N = 16;

function runText(yaml: string, opts: RunOptions = {}): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, ...opts });
  r.runAll();
  assert.deepEqual(r.finish(), [], "no leaks at exit");
  return r;
}

const HEAD = `
name: t
machine: { cpus: 2, swap: 1M }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
`;

for (const arch of ["x86_64", "arm64"] as const) {
  describe(`reclaim on ${arch}`, () => {
    it("MADV_PAGEOUT moves N pages to swap with one deferred flush per dirty page; a read brings them back writable", () => {
      const r = runText(
        `${HEAD}
steps:
  - mmap: { region: r, size: ${N * 4}K, thread: A }
  - touch: { region: r, thread: A }
  - read: { region: r, thread: B }
  - report: before
  - madvise: { region: r, advice: pageout, thread: A }
  - report: paged out
  - read: { region: r, thread: A }
  - report: read back
  - touch: { region: r, thread: A }
  - report: written
`,
        { arch },
      );
      const b = fig(r, "before");
      assert.equal(b.rss_anon_kb, N * 4);
      assert.equal(b.vmswap_kb, 0);
      const o = fig(r, "paged out");
      assert.equal(o.rss_anon_kb, 0);
      assert.equal(o.vmswap_kb, N * 4);
      assert.equal(o.c.pswpout, N);
      assert.equal(o.c.pgsteal, N);
      assert.equal(o.c.pagesFree, N);
      // Every page was dirty: try_to_unmap_flush_dirty() flushes the batch
      // before each pageout(), so there are N batch flushes of one entry.
      assert.equal(o.c.tlbBatchFlushes, N);
      if (arch === "x86_64") {
        // arch_tlbbatch_flush(): a full flush on A's CPU and, by IPI, on B's
        // (it has the mm loaded); no INVLPG.
        assert.equal(o.c.tlbFlushesFull, 2 * N);
        assert.equal(o.c.ipis, N);
        assert.equal(o.c.tlbFlushesPage, 0);
      } else {
        // arch_tlbbatch_add_pending(): one TLBI VALE1IS per page, no DSB;
        // arch_tlbbatch_flush(): the DSB.
        assert.equal(o.c.tlbiVale1is, N);
        assert.equal(o.c.dsb, N);
        assert.equal(o.c.tlbiAside1is, 0);
      }
      const rb = fig(r, "read back");
      assert.equal(rb.rss_anon_kb, N * 4);
      assert.equal(rb.vmswap_kb, 0);
      assert.equal(rb.c.faults, N);
      assert.equal(rb.c.pswpin, N);
      assert.equal(rb.c.cowCopies, 0);
      // The swap entries carried the exclusive marker: do_swap_page() mapped
      // the pages writable, so the stores take no fault.
      const w = fig(r, "written");
      assert.equal(w.c.faults, 0);
      assert.equal(r.m.swap?.used, 0, "every slot was freed on swap-in");
    });

    it("the deferred flush: x86-64 drops every entry of the mm on the CPUs in the batch, arm64 only the pages reclaimed", () => {
      // kswapd or MADV_PAGEOUT reclaiming one page takes B's TLB entry for an
      // unrelated page with it on x86-64: arch_tlbbatch_flush()
      // (arch/x86/mm/tlb.c) sends flush_tlb_multi() a TLB_FLUSH_ALL
      // flush_tlb_info, so each CPU in the mask flushes its loaded mm whole.
      // arm64's arch_tlbbatch_add_pending() issued a TLBI per page and the
      // flush is only the DSB. (The full flush seen beside kswapd's lazyfree
      // THP handling was this.)
      const sc = parseScenario(
        `${HEAD}
steps:
  - mmap: { region: keep, size: 4K, thread: A }
  - mmap: { region: v, size: 4K, thread: A }
  - touch: { region: keep, thread: A }
  - touch: { region: v, thread: A }
  - read: { region: keep, thread: B }
  - madvise: { region: v, advice: pageout, thread: A }
`,
        "t.yaml",
      );
      const r = new Runner(sc, { checkInvariants: true, arch });
      r.runAll();
      const cpu1 = r.m.cpus[1]!;
      const vpn = r.procs.get("p")!.regions.get("keep")!.start / r.m.geo.pageSize;
      assert.equal(r.m.counters.pswpout, 1);
      assert.equal(cpu1.tlb.lookup(vpn, cpu1.asid) >= 0, arch === "arm64", "B's entry for the page kept");
      assert.deepEqual(r.finish(), []);
    });

    it("pages shared with a forked child are not paged out (folio_mapcount() != nr pages)", () => {
      const r = runText(
        `${HEAD}
steps:
  - mmap: { region: r, size: ${N * 4}K, thread: A }
  - touch: { region: r, thread: A }
  - fork: { child: c, thread: A }
  - madvise: { region: r, advice: pageout, thread: A }
  - report: after
`,
        { arch },
      );
      const a = fig(r, "after");
      assert.equal(a.rss_anon_kb, N * 4);
      assert.equal(a.vmswap_kb, 0);
      assert.equal(a.c.pswpout, 0);
    });

    it("swap entries copied at fork lose the exclusive marker; the swap cache serves the second reader", () => {
      const r = runText(
        `${HEAD}
steps:
  - mmap: { region: r, size: ${N * 4}K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: pageout, thread: A }
  - fork: { child: c, thread: A, child_thread: C }
  - report: forked
  - read: { region: r, thread: A }
  - report: parent read
  - read: { region: r, thread: C }
  - report: child read
  - touch: { region: r, thread: A }
  - report: parent write
`,
        { arch },
      );
      const f = fig(r, "forked", "c");
      assert.equal(f.vmswap_kb, N * 4);
      assert.equal(f.rss_anon_kb, 0);
      const pr = fig(r, "parent read");
      assert.equal(pr.c.pswpin, N, "read from the device into the swap cache");
      assert.equal(pr.vmswap_kb, 0);
      const cr = fig(r, "child read", "c");
      assert.equal(cr.c.pswpin, 0, "found in the swap cache");
      assert.equal(cr.c.pagesAlloc, 0);
      assert.equal(cr.rss_anon_kb, N * 4);
      // Not exclusive and shared with the child: the write copies.
      const pw = fig(r, "parent write");
      assert.equal(pw.c.faults, N);
      assert.equal(pw.c.cowCopies, N);
    });

    it("munmap zaps swap entries and frees their slots", () => {
      const r = runText(
        `${HEAD}
steps:
  - mmap: { region: r, size: ${N * 4}K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: pageout, thread: A }
  - report: out
  - munmap: { region: r, thread: A }
  - report: gone
`,
        { arch },
      );
      assert.equal(fig(r, "out").vmswap_kb, N * 4);
      assert.equal(fig(r, "gone").vmswap_kb, 0);
      assert.equal(r.m.swap?.used, 0);
    });

    it("kswapd-style reclaim keeps a referenced page once (folio_referenced() clears the flag), then reclaims it", () => {
      const r = runText(
        `${HEAD}
steps:
  - mmap: { region: r, size: ${N * 4}K, thread: A }
  - touch: { region: r, thread: A }
  - reclaim: { region: r, thread: B }
  - report: first pass
  - reclaim: { region: r, thread: B }
  - report: second pass
`,
        { arch },
      );
      const a = fig(r, "first pass");
      assert.equal(a.c.pgsteal, 0);
      assert.equal(a.rss_anon_kb, N * 4);
      const b = fig(r, "second pass");
      assert.equal(b.c.pgsteal, N);
      assert.equal(b.vmswap_kb, N * 4);
    });

    it("MADV_PAGEOUT drops clean file folios, unmaps dirty ones and leaves them to the flusher, and keeps shmem", () => {
      const r = runText(
        `${HEAD}
steps:
  - mmap: { region: f, size: 64K, flags: [shared], file: data.bin, thread: A }
  - mmap: { region: g, size: 64K, flags: [private], prot: r, file: text.bin, thread: A }
  - mmap: { region: s, size: 16K, flags: [shared], thread: A }
  - touch: { region: f, thread: A }
  - read: { region: g, thread: A }
  - touch: { region: s, thread: A }
  - report: before
  - madvise: { region: f, advice: pageout, thread: A }
  - madvise: { region: g, advice: pageout, thread: A }
  - madvise: { region: s, advice: pageout, thread: A }
  - report: after
`,
        { arch },
      );
      assert.equal(fig(r, "before").rss_file_kb, 128);
      const a = fig(r, "after");
      assert.equal(a.rss_file_kb, 0, "every file folio unmapped");
      assert.equal(a.rss_shmem_kb, 16, "shmem writeout is not modelled: kept");
      // shrink_folio_list(): only kswapd writes file folios, so a dirty one
      // MADV_PAGEOUT unmapped is activated (folio_set_reclaim()) and stays
      // in the page cache, dirty; the 16 clean ones of text.bin are freed.
      assert.equal(a.c.pgsteal, 16);
      assert.equal(a.c.pswpout, 0);
      // Only A's CPU has the mm: x86 does not defer (arch_tlbbatch_should_defer()),
      // arm64 always does and flushes once per madvise, at the end (no
      // pageout() needs the dirty flush first).
      assert.equal(a.c.tlbBatchFlushes, arch === "x86_64" ? 0 : 2);
      for (const f of r.m.files.values()) {
        if (f.shmem) continue;
        if (f.name === "data.bin") {
          assert.equal(f.pages.size, 16, "dirty folios left to the flusher");
          for (const pfn of f.pages.values()) assert.ok((r.m.phys.flags[pfn]! & PG_DIRTY) !== 0);
        } else assert.equal(f.pages.size, 0, `${f.name} left the page cache`);
      }
    });

    it("a large folio goes to swap whole (THP_SWAP): no split, every page swapped", () => {
      const r = runText(
        `${HEAD.replace("swap: 1M", "swap: 1M, mthp: { 64K: always }")}
steps:
  - mmap: { region: r, size: 64K, addr: 0x7f0000000000, thread: A }
  - touch: { region: r, thread: A }
  - report: before
  - madvise: { region: r, advice: pageout, thread: A }
  - report: out
`,
        { arch },
      );
      assert.equal(fig(r, "before").c.mthpFaults, 1);
      const o = fig(r, "out");
      assert.equal(o.c.thpSplits, 0);
      assert.equal(o.c.mthpSwpout, 1);
      assert.equal(o.c.pswpout, 16);
      assert.equal(o.vmswap_kb, 64);
      // arm64: the 64K folio is one contpte block (16 x 4K), unfolded once
      // when try_to_unmap_one() clears its first entry.
      assert.equal(o.c.contUnfolds, arch === "arm64" ? 1 : 0, "the contpte block was unfolded");
    });
  });
}

describe("reclaim: the deferred flush against munmap (explore)", () => {
  // munmap of half a PTE table (the table stays, so no freed-table flush
  // covers for it) while reclaim has the other page's flush deferred.
  const yaml = `name: reclaim-vs-munmap
machine: { cpus: 3, swap: 1M }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: K, cpu: 1 }, { name: M, cpu: 2 }]
steps:
  - mmap: { region: r, size: 8K, thread: A }
  - touch: { region: r, thread: A }
  - reclaim: { region: r, length: 4K, thread: K }
concurrent:
  - reclaim: { region: r, length: 4K, process: p, thread: K }
  - munmap: { region: r, length: 4K, thread: M }
`;
  const sc = parseScenario(yaml, "t.yaml");
  const cfg = (variants: Record<string, string>, arch: "x86_64" | "arm64"): ExploreConfig => ({
    sc,
    run: { variants, arch },
    mode: "exhaustive",
    preemptions: 2,
    maxSteps: 5000,
    executions: 0,
    seed: 1,
    pctDepth: 3,
    shard: { index: 0, count: 1 },
    shrink: false,
    ignore: [],
  });
  for (const arch of ["x86_64", "arm64"] as const) {
    it(`${arch}: v6.17 (zap_pte_range() calls flush_tlb_batched_pending()) explores clean`, () => {
      const r = explore(cfg({}, arch));
      assert.equal(r.counterexample, null, r.counterexample?.message);
      assert.ok(r.complete);
    });
    it(`${arch}: tlb_batch_pending=none returns from munmap with a writable TLB entry left`, () => {
      const r = explore(cfg({ tlb_batch_pending: "none" }, arch));
      assert.equal(r.counterexample?.invariant, "stale-tlb-after-return");
    });
  }
});

describe("reclaim: the swap invariants see broken state", () => {
  it("VmSwap, slot counts and freed slots are checked against the tables", () => {
    const r = new Runner(
      parseScenario(
        `${HEAD}
steps:
  - mmap: { region: r, size: 16K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: pageout, thread: A }
`,
        "t.yaml",
      ),
      { checkInvariants: true },
    );
    r.runAll();
    const m = r.m;
    const mm = [...r.procs.values()][0]?.mm;
    assert.ok(mm && m.swap);
    assert.deepEqual(checkAccounting(m), []);
    mm.swapEnts++;
    assert.deepEqual(
      checkAccounting(m).map((v) => v.invariant),
      ["vmswap"],
    );
    mm.swapEnts--;
    m.swap.count[1] = (m.swap.count[1] as number) + 1;
    assert.ok(checkAccounting(m).some((v) => v.invariant === "swap-count"));
    // The slot released while a swap entry still names it.
    m.swap.count[1] = 0;
    m.swap.used--;
    assert.ok(checkAccounting(m).some((v) => v.invariant === "swap-entry-freed-slot"));
    m.swap.count[1] = 1;
    m.swap.used++;
    assert.deepEqual(checkAccounting(m), []);
  });
});

describe("reclaim: bad input", () => {
  it("a reclaim step without a swap device is an input error at the step", () => {
    const yaml = `name: t
steps:
  - mmap: { region: r, size: 4K }
  - reclaim: { region: r }
`;
    const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
    assert.throws(
      () => r.runAll(),
      (e: unknown) => e instanceof ScenarioError && e.line === 4 && e.col === 5 && /swap device/.test(e.message),
    );
    const dir = mkdtempSync(join(tmpdir(), "ptlab-reclaim-"));
    const f = join(dir, "t.yaml");
    writeFileSync(f, yaml);
    const p = spawnSync(process.execPath, [CLI, "run", f], { encoding: "utf8" });
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:4:5: reclaim needs a swap device/);
  });
  it("an unknown key in reclaim is rejected with its position", () => {
    assert.throws(
      () => parseScenario("name: t\nmachine: { swap: 1M }\nsteps:\n  - reclaim: { region: r, pages: 3 }\n", "t.yaml"),
      (e: unknown) => e instanceof ScenarioError && e.line === 4 && /unknown key "pages" in reclaim step/.test(e.message),
    );
  });
});
