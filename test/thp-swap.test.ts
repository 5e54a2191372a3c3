// Large folios through swap (CONFIG_THP_SWAP, v6.17): a large anon folio is
// written whole to a naturally aligned run of slots, one swap entry per page
// naming its own slot; a PMD mapping is split first; a partially mapped
// folio is split before swap-out and one with no free run falls back to
// order-0 pages. On zram (SWP_SYNCHRONOUS_IO) a fault on an entry only this
// process references reads a whole mTHP back when the entries of the
// aligned range are contiguous and alike (alloc_swap_folio(),
// can_swapin_thp()), else an order-0 folio; slots shared after fork go
// through the swap cache as small pages. VmSwap, RssAnon, the slot counts
// and the frame accounting agree throughout (the runner checks the
// invariants after every step), and under the explorer the catalogue's
// clean-swap-mthp-* entries reach the large swap-in and its fallback.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { checkAccounting } from "../src/core/check.js";
import { SwapDevice } from "../src/core/mm/swap.js";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { siteHits } from "./catalogue.js";
import { fig, regionPtes } from "./inspect.js";

// Runs the scenario; look() sees the machine before the processes exit.
function runText(yaml: string, look: (r: Runner) => void = () => {}): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  look(r);
  assert.deepEqual(r.finish(), [], "no leaks at exit");
  return r;
}

// The order of the folio each present PTE of the region maps (-1: swap
// entry or none).
function orders(r: Runner, region: string, proc = "p"): number[] {
  const A = r.m.arch;
  return regionPtes(r, region, proc).map((v) => (v !== 0 && A.ptePresent(v) ? (r.m.phys.order[r.m.phys.folioHead(A.ptePfn(v))] as number) : -1));
}

// The slot each swap entry of the region names (-1 elsewhere).
function slots(r: Runner, region: string, proc = "p"): number[] {
  const A = r.m.arch;
  return regionPtes(r, region, proc).map((v) => (v !== 0 && A.isSwapPte(v) ? A.swpOffset(v) : -1));
}

const MTHP = (swap: string, extra = "") => `
name: t
machine: { swap: ${swap}, mthp: { 64K: always } }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }]
steps:
  - mmap: { region: r, size: 256K, addr: 0x40000000, thread: A }
  - touch: { region: r, thread: A }
  - report: in
${extra}`;

describe("swap device: runs of slots for large folios", () => {
  it("folio_alloc_swap(): a naturally aligned free run, never the header's, in the swap cache for the folio", () => {
    const d = new SwapDevice(16);
    assert.equal(d.allocRun(100, 2), 4, "slots 0..3 hold the header");
    assert.equal(d.cachedPage(6), 102);
    assert.equal(d.used, 4);
    assert.equal(d.allocRun(200, 4), -1, "16 slots with the header: no free aligned run of 16");
    assert.equal(d.allocRun(300, 3), 8);
    d.deleteFromCache(100, 4);
    assert.equal(d.used, 8);
    assert.ok(d.prepare(4, 1) === false, "a slot no entry references cannot be pinned");
  });
  it("swapcache_prepare(entry, nr) pins all slots or none", () => {
    const d = new SwapDevice(8);
    const s = d.allocRun(100, 2);
    for (let k = 0; k < 4; k++) d.duplicate(s + k);
    d.deleteFromCache(100, 4);
    assert.ok(d.prepare(s + 2, 1));
    assert.equal(d.prepare(s, 4), false, "one slot of the run is pinned");
    assert.equal(d.pinned[s], 0, "nothing pinned by the failed attempt");
    d.clearPin(s + 2, 1);
    assert.ok(d.prepare(s, 4));
    d.clearPin(s, 4);
    assert.equal(d.used, 4);
  });
});

describe("THP_SWAP: swap-out of a large folio whole", () => {
  it("64K mTHPs: each written whole to 16 contiguous aligned slots, one entry per page", () => {
    const r = runText(
      `${MTHP("1M")}
  - madvise: { region: r, advice: pageout, thread: A }
  - report: out
`,
      (r) => {
        const s = slots(r, "r");
        for (let k = 0; k < 64; k += 16) {
          assert.equal((s[k] as number) % 16, 0, "the run is naturally aligned");
          for (let j = 1; j < 16; j++) assert.equal(s[k + j], (s[k] as number) + j, "page j names slot first + j");
        }
        assert.equal(r.m.swap?.used, 64);
      },
    );
    const out = fig(r, "out");
    assert.equal(out.rss_anon_kb, 0);
    assert.equal(out.vmswap_kb, 256);
    assert.equal(out.c.mthpSwpout, 4);
    assert.equal(out.c.pswpout, 64);
    assert.equal(out.c.mthpSwpoutFallback, 0);
  });
  it("a PMD-mapped THP: the PMD is split (its deposited table used), the folio goes to 512 slots whole", () => {
    const r = runText(`
name: t
machine: { swap: 4M }
steps:
  - mmap: { region: r, size: 4M, addr: 0x40000000 }
  - madvise: { region: r, advice: hugepage }
  - touch: { region: r, length: 2M }
  - report: thp
  - madvise: { region: r, advice: pageout, length: 2M }
  - report: out
  - read: { region: r, offset: 4K, length: 4K }
  - report: one back
`);
    const thp = fig(r, "thp", "p0");
    const out = fig(r, "out", "p0");
    assert.equal(thp.anon_huge_kb, 2048);
    assert.equal(out.anon_huge_kb, 0);
    assert.equal(out.vmswap_kb, 2048);
    assert.equal(out.vmpte_kb, thp.vmpte_kb, "the deposited table maps the swap entries");
    assert.equal(out.c.thpSwpout, 1);
    assert.equal(out.c.thpSplits, 1, "split_huge_pmd_locked() in try_to_unmap_one()");
    assert.equal(out.c.pswpout, 512);
    // No PMD-order swap-in, no mTHP size enabled: a small page comes back.
    const back = fig(r, "one back", "p0");
    assert.equal(back.rss_anon_kb, 4);
    assert.equal(back.c.mthpSwpin, 0);
  });
  it("no free aligned run (a 64K device: slot 0 is the header): the folio is split and its pages go one by one", () => {
    const r = runText(
      `
name: t
machine: { swap: 64K, mthp: { 64K: always } }
steps:
  - mmap: { region: r, size: 64K, addr: 0x40000000 }
  - touch: { region: r }
  - madvise: { region: r, advice: pageout }
  - report: out
`,
      (r) => assert.equal(r.m.swap?.used, 16),
    );
    const out = fig(r, "out", "p0");
    assert.equal(out.c.mthpSwpout, 0);
    assert.equal(out.c.mthpSwpoutFallback, 1);
    assert.equal(out.c.thpSplits, 1);
    assert.equal(out.c.pswpout, 16);
    assert.equal(out.vmswap_kb, 64);
  });
  // kswapd-style reclaim: MADV_PAGEOUT splits a folio it does not find
  // wholly mapped itself, before reclaim sees it (the first pass clears the
  // access flags, the second reclaims).
  it("a partially mapped folio is split first (deferred split), the rest swapped page by page", () => {
    const r = runText(`${MTHP("1M")}
  - madvise: { region: r, offset: 4K, length: 4K, advice: dontneed, thread: A }
  - reclaim: { region: r, length: 64K, thread: A }
  - reclaim: { region: r, length: 64K, thread: A }
  - report: out
`);
    const out = fig(r, "out");
    assert.equal(out.c.mthpSwpout, 0);
    assert.equal(out.c.mthpSwpoutFallback, 0, "split before folio_alloc_swap(), not for want of slots");
    assert.equal(out.c.pswpout, 15);
    assert.equal(out.vmswap_kb, 60);
    assert.equal(out.rss_anon_kb, 192);
  });
});

describe("large-folio swap-in (alloc_swap_folio())", () => {
  it("contiguous entries referenced once: a fault reads the whole 64K folio; a read maps it clean and writable, a write dirty", () => {
    const r = runText(
      `${MTHP("1M")}
  - madvise: { region: r, advice: pageout, thread: A }
  - read: { region: r, offset: 4K, length: 4K, thread: A }
  - report: read
  - touch: { region: r, offset: 64K, length: 4K, thread: A }
  - report: written
`,
      (r) => {
        const o = orders(r, "r");
        assert.deepEqual(o.slice(0, 32), Array(32).fill(4));
        assert.deepEqual(o.slice(32), Array(32).fill(-1));
        const A = r.m.arch;
        const p = regionPtes(r, "r");
        for (let k = 0; k < 16; k++) {
          assert.ok(A.pteWrite(p[k] as number), "exclusive: writable");
          assert.ok(!A.pteDirty(p[k] as number), "a read fault leaves the PTEs clean");
        }
        for (let k = 16; k < 32; k++) assert.ok(A.pteDirty(p[k] as number), "a write fault dirties every PTE of the batch");
        assert.equal(r.m.swap?.used, 32);
      },
    );
    const rd = fig(r, "read");
    assert.equal(rd.rss_anon_kb, 64);
    assert.equal(rd.vmswap_kb, 192);
    assert.equal(rd.c.mthpSwpin, 1);
    assert.equal(rd.c.pswpin, 16);
    assert.equal(rd.c.faults, 1);
  });
  it("a none entry in the range (MADV_DONTNEED of one page) or MADV_NOHUGEPAGE: order-0 swap-in", () => {
    const r = runText(
      `${MTHP("1M")}
  - madvise: { region: r, advice: pageout, thread: A }
  - madvise: { region: r, offset: 8K, length: 4K, advice: dontneed, thread: A }
  - read: { region: r, length: 4K, thread: A }
  - report: holed
  - madvise: { region: r, offset: 128K, length: 64K, advice: nohugepage, thread: A }
  - read: { region: r, offset: 128K, length: 4K, thread: A }
  - report: nohugepage
`,
      (r) => {
        const o = orders(r, "r");
        assert.equal(o[0], 0);
        assert.equal(o[32], 0);
      },
    );
    const h = fig(r, "holed");
    assert.equal(h.c.mthpSwpin, 0);
    assert.equal(h.rss_anon_kb, 4);
    const n = fig(r, "nohugepage");
    assert.equal(n.c.mthpSwpin, 0);
    assert.equal(n.rss_anon_kb, 8);
  });
  it("fork shares the entries (count 2): both processes swap in small pages through the swap cache; after the child exits the parent reads whole folios", () => {
    const r = runText(
      `
name: t
machine: { swap: 1M, mthp: { 64K: always } }
steps:
  - mmap: { region: r, size: 256K, addr: 0x40000000 }
  - touch: { region: r }
  - madvise: { region: r, advice: pageout }
  - fork: { child: c }
  - read: { region: r, length: 4K, thread: c.t0 }
  - touch: { region: r, offset: 4K, length: 4K }
  - report: shared
  - exit: { process: c }
  - read: { region: r, offset: 64K, length: 4K }
  - report: alone
`,
      (r) => assert.equal(orders(r, "r", "p0")[16], 4),
    );
    const sh = fig(r, "shared", "p0");
    const shc = fig(r, "shared", "c");
    assert.equal(sh.c.mthpSwpin, 0);
    assert.equal(sh.rss_anon_kb, 4);
    assert.equal(shc.rss_anon_kb, 4);
    assert.equal(sh.vmswap_kb, 252);
    const al = fig(r, "alone", "p0");
    assert.equal(al.c.mthpSwpin, 1);
    assert.equal(al.rss_anon_kb, 68);
  });
});

function cfg(file: string, over: Partial<ExploreConfig> = {}): ExploreConfig {
  const base = defaultConfig(parseScenario(readFileSync(file, "utf8"), file));
  return { ...base, ...over };
}

describe("swap-count sees a large swap-cache folio off its run", () => {
  it("a slot cached for a folio whose run (folio->swap, 2^order slots, aligned) does not hold it is reported", () => {
    runText(`${MTHP("1M")}`, (r) => {
      const m = r.m;
      assert.ok(m.swap);
      assert.deepEqual(checkAccounting(m), []);
      const head = m.phys.folioHead(m.arch.ptePfn(regionPtes(r, "r")[0] as number));
      assert.equal(m.phys.order[head], 4);
      const s0 = m.swap.allocRun(head, 4);
      m.phys.ref[head] = (m.phys.ref[head] as number) + 1; // the cache's reference
      assert.deepEqual(checkAccounting(m), [], "a whole aligned run");
      m.swap.slotOf.set(head, s0 + 1);
      assert.ok(checkAccounting(m).some((v) => v.invariant === "swap-count" && /whose run starts at slot/.test(v.message)));
      m.swap.slotOf.set(head, s0);
      m.swap.deleteFromCache(head, 16);
      m.phys.ref[head] = (m.phys.ref[head] as number) - 1;
      assert.deepEqual(checkAccounting(m), []);
    });
  });
});

describe("explore: large-folio swap-in races", () => {
  it("clean-swap-mthp-zap: clean; some execution reads the 16K folio whole, some drops it after the zap and reads order 0", () => {
    let large = 0;
    let fallback = 0;
    const res = explore(
      cfg("scenarios/concurrency/clean-swap-mthp-zap.yaml", {
        onEnd: (x) => {
          const c = x.m.counters;
          if (c.mthpSwpin > 0) large++;
          if (c.mthpSwpin > 0 && c.pswpin > 4 * c.mthpSwpin) fallback++;
        },
      }),
    );
    assert.equal(res.counterexample, null);
    assert.ok(large > 0, "no execution read a large folio");
    assert.ok(fallback > 0, "no execution dropped a large read and fell back to order 0");
  });
  it("clean-swap-mthp-fault: clean; the folio is read whole exactly once in every execution, and some fault waits for the other's pin", () => {
    const seen = siteHits("swapcache_prepare() failed");
    let bad = 0;
    const res = explore(
      cfg("scenarios/concurrency/clean-swap-mthp-fault.yaml", {
        onStart: seen.onStart,
        onEnd: (x) => {
          const c = x.m.counters;
          if (c.mthpSwpin !== 1 || c.pswpin !== 4) bad++;
        },
      }),
    );
    assert.equal(res.counterexample, null);
    assert.equal(bad, 0);
    assert.ok(seen.hits() > 0, "no fault waited on the other's pin");
  });
});
