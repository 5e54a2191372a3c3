// Swap read-ahead (swap_state.ts): a swap-in fault that misses the swap
// cache reads the swapped-out neighbours its VMA's window covers into the
// cache (swap_vma_readahead()), the window following __swapin_nr_pages()
// and swap_vma_ra_win(); a fault that finds a page read ahead counts a hit
// and widens the next window; vm.page-cluster bounds it; MADV_WILLNEED of
// an anonymous range reads its swapped-out pages into the cache
// (swapin_walk_pmd_entry()). The expected figures are worked out below from
// those functions' rules, with 4K pages and the default page_cluster 3
// (windows of at most 8 pages).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { run } from "../src/core/sync.js";
import { swapinNrPages } from "../src/core/mm/swap_state.js";
import { folioIsolateLru, reclaimPages } from "../src/core/mm/vmscan.js";
import { explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import type { Step } from "../src/scenario/types.js";

function runner(yaml: string): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  return r;
}
const step = (text: string) =>
  parseScenario(`name: t\nprocesses: [{ name: p, threads: [{ name: A, cpu: 0 }] }]\nsteps:\n  - ${text}\n`, "t.yaml").steps[0] as Step;

// 16 pages written and swapped out (each slot one reference), then `more`.
const swappedOut = (more: string, machine = "") => `
name: t
machine: { cpus: 2, thp: never, swap: 1M${machine} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }]
steps:
  - mmap: { region: r, size: 64K }
  - touch: { region: r }
  - madvise: { region: r, advice: pageout }
${more}`;
// Shared with a child: each slot has two references, so a fault goes
// through the swap cache (not the SWP_SYNCHRONOUS_IO path, which reads
// only the faulting page).
const shared = (machine = "") => swappedOut("  - fork: { child: c, cpu: 1 }\n", machine);

describe("__swapin_nr_pages()", () => {
  it("grows with the hits, tries 2 pages for a fault next to the last, and does not shrink below half the last window", () => {
    // No hits: 2 pages next to the last fault (either side), else 1.
    assert.equal(swapinNrPages(10, 11, 0, 8, 0), 2);
    assert.equal(swapinNrPages(10, 9, 0, 8, 0), 2);
    assert.equal(swapinNrPages(10, 14, 0, 8, 0), 1);
    // hits + 2 rounded up to a power of two from 4, at most max_pages.
    assert.equal(swapinNrPages(0, 5, 1, 8, 0), 4);
    assert.equal(swapinNrPages(0, 5, 2, 8, 0), 4);
    assert.equal(swapinNrPages(0, 5, 3, 8, 0), 8);
    assert.equal(swapinNrPages(0, 5, 4, 8, 0), 8); // the initial 4 hits: a full first window
    assert.equal(swapinNrPages(0, 5, 30, 32, 0), 32);
    assert.equal(swapinNrPages(0, 5, 30, 8, 0), 8);
    // Half the last window at least.
    assert.equal(swapinNrPages(10, 14, 0, 8, 8), 4);
    assert.equal(swapinNrPages(10, 14, 0, 32, 32), 16);
  });
});

describe("swap_vma_readahead() on a swap-in fault", () => {
  it("reads the window around the first fault ahead, counts hits, and a later miss gets the window the hits give", () => {
    const r = runner(shared());
    const m = r.m;
    const swap = m.swap;
    assert.ok(swap);
    const c = m.counters;
    const pswpin0 = c.pswpin;
    // First fault of the VMA, page 5: swap_readahead_info unset reads as 4
    // hits, so 4 + 2 = 6 rounds up to 8 pages; not next to the (unset)
    // last address, so the window is centred: (8 - 1) / 2 = 3 pages before
    // it, pages 2..9. Seven pages read ahead, the faulting one read too.
    r.exec(step("read: { region: r, offset: 20K, length: 4K }"), 0);
    assert.equal(c.pswpin - pswpin0, 8);
    assert.equal(c.swapRa, 7);
    assert.equal(c.swapRaHit, 0);
    assert.equal(swap.cache.size, 8);
    assert.equal(swap.readahead.size, 7);
    assert.equal(r.procs.get("p")?.mm.rssAnon, 1, "read-ahead pages are not mapped");
    // Pages 6 and 7 are in the cache, read ahead: two hits, no reads.
    r.exec(step("read: { region: r, offset: 24K, length: 8K }"), 0);
    assert.equal(c.pswpin - pswpin0, 8);
    assert.equal(c.swapRaHit, 2);
    assert.equal(swap.readahead.size, 5);
    // Page 12 misses: 2 hits give 4 pages (not below 8 / 2 = 4); the last
    // fault was page 7, not a neighbour: centred, (4 - 1) / 2 = 1 before,
    // pages 11..14: three more read ahead.
    r.exec(step("read: { region: r, offset: 48K, length: 4K }"), 0);
    assert.equal(c.pswpin - pswpin0, 12);
    assert.equal(c.swapRa, 10);
    assert.equal(swap.cache.size, 12);
    // Every page read back, every folio freed at exit: no leak, no stale slot.
    r.exec(step("read: { region: r }"), 0);
    assert.equal(c.pswpin - pswpin0, 16, "each slot read once");
    assert.deepEqual(r.finish(), []);
  });

  it("a window does not shrink below half the last one, and runs ahead of a fault that follows the last", () => {
    const r = runner(`${shared(", page_cluster: 3")}
  - read: { region: r, offset: 20K, length: 4K }
`);
    const c = r.m.counters;
    // The first fault (page 5) left window 8, no hits, last address page 5,
    // and pages 2..9 in the cache. Page 10 misses: no hits and not next to
    // page 5 would give 1 page, but not below 8 / 2 = 4; centred, 1 page
    // before it: 9..12, page 9 already cached, 11 and 12 read ahead.
    const ra0 = c.swapRa;
    r.exec(step("read: { region: r, offset: 40K, length: 4K }"), 0);
    assert.equal(c.swapRa - ra0, 2);
    // Pages 11 and 12 are hits (2), the last address now page 12. Page 13
    // misses: 2 hits give 4 pages, and it follows the last fault, so the
    // window runs ahead of it, 13..16, clipped to the VMA's end at 16: 14
    // and 15 read ahead.
    r.exec(step("read: { region: r, offset: 44K, length: 8K }"), 0);
    const ra1 = c.swapRa;
    r.exec(step("read: { region: r, offset: 52K, length: 4K }"), 0);
    assert.equal(c.swapRa - ra1, 2);
    assert.equal(c.swapRaHit, 2);
    assert.deepEqual(r.finish(), []);
  });

  it("page_cluster 0: no read-ahead, only the faulting page is read", () => {
    const r = runner(shared(", page_cluster: 0"));
    const c = r.m.counters;
    const pswpin0 = c.pswpin;
    r.exec(step("read: { region: r, offset: 20K, length: 4K }"), 0);
    assert.equal(c.pswpin - pswpin0, 1);
    assert.equal(c.swapRa, 0);
    assert.equal(r.m.swap?.cache.size, 1);
    assert.deepEqual(r.finish(), []);
  });

  it("a slot only this entry references skips the swap cache (SWP_SYNCHRONOUS_IO): no read-ahead", () => {
    const r = runner(swappedOut("  - read: { region: r, offset: 20K, length: 4K }\n"));
    assert.equal(r.m.counters.swapRa, 0);
    assert.equal(r.m.swap?.cache.size, 0);
    assert.deepEqual(r.finish(), []);
  });
});

describe("MADV_WILLNEED of swapped-out anonymous memory", () => {
  it("reads each swapped-out page of the range into the swap cache, maps none, and the faults that follow find them there", () => {
    const r = runner(swappedOut("  - madvise: { region: r, offset: 8K, length: 24K, advice: willneed }\n"));
    const m = r.m;
    const mm = r.procs.get("p")?.mm;
    assert.ok(mm && m.swap);
    const c = m.counters;
    assert.equal(c.pswpin, 6, "pages 2..7");
    assert.equal(c.swapRa, 0, "read_swap_cache_async(): not marked read-ahead");
    assert.equal(m.swap.cache.size, 6);
    assert.equal(mm.rssAnon, 0);
    assert.equal(mm.swapEnts, 16);
    // A fault on a page in the cache maps it without reading the slot.
    r.exec(step("read: { region: r, offset: 12K, length: 4K }"), 0);
    assert.equal(c.pswpin, 6);
    assert.equal(mm.rssAnon, 1);
    assert.equal(mm.swapEnts, 15);
    // The other five are clean, unmapped swap-cache folios on the LRU:
    // shrink_folio_list() removes them from the cache and frees them.
    const cached = [...new Set(m.swap.cache.values())].filter((h) => m.phys.mapcount[h] === 0);
    assert.equal(cached.length, 5);
    for (const h of cached) assert.ok(folioIsolateLru(m, h));
    const st = run(reclaimPages(m, cached));
    assert.equal(st.reclaimed, 5);
    assert.equal(m.swap.cache.size, 1);
    assert.equal(mm.swapEnts, 15, "their entries stay: the next fault reads the slot again");
    r.exec(step("read: { region: r, offset: 8K, length: 4K }"), 0);
    assert.equal(c.pswpin, 7);
    assert.deepEqual(r.finish(), []);
  });
});

describe("explore: read-ahead beside a zap, a COW fault and MADV_WILLNEED", () => {
  it("clean-swap-readahead explores clean at 2 preemptions, with read-ahead and read-ahead hits in its executions", () => {
    const file = "scenarios/concurrency/clean-swap-readahead.yaml";
    let ra = 0;
    let hits = 0;
    let n = 0;
    const res = explore({
      ...defaultConfig(parseScenario(readFileSync(file, "utf8"), file)),
      onEnd: (x) => {
        n++;
        if (x.m.counters.swapRa > 0) ra++;
        if (x.m.counters.swapRaHit > 0) hits++;
      },
    });
    assert.equal(res.counterexample, null);
    assert.ok(!res.stopped, "the bounded space is explored whole");
    assert.ok(ra > 0 && ra < n, `${ra} of ${n} executions read ahead (not those where the zap came first)`);
    assert.ok(hits > 0, "no execution found a page read ahead");
  });
});
