// The per-VMA lock under the explorer (src/core/mm/mmap_lock.ts): a fault,
// or a MADV_DONTNEED inside one VMA, runs beside an mmap_lock writer that
// has not write-locked its VMA, and waits (through mmap_lock) for one that
// has; fork write-locks each parent VMA (fb49c455323f), and without that
// (fork_vma_lock=none, v6.4) a fault copies a page another CPU still writes.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { siteName } from "../src/core/sync.js";
import type { Execution } from "../src/explore/execution.js";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { parseScenario } from "../src/scenario/load.js";
import { load } from "./catalogue.js";

function cfg(text: string, over: Partial<ExploreConfig> = {}): ExploreConfig {
  const sc = parseScenario(text, "vma-lock.yaml");
  return { ...defaultConfig(sc), sc, run: { variants: {} }, preemptions: 1, ...over };
}

// Counts decisions at which thread F stands at a site containing `fAt` while
// thread W stands at one containing `wAt` (W then holds mmap_lock for
// writing and has write-locked the VMAs it changes).
function beside(fAt: string, wAt: string): { onStart: (x: Execution) => void; hits: () => number } {
  let n = 0;
  return {
    onStart: (x: Execution) => {
      x.onDecide = () => {
        const f = x.threads.find((u) => u.name === "F");
        const w = x.threads.find((u) => u.name === "W");
        if (f !== undefined && w !== undefined && !f.done && !w.done && siteName(f.site).includes(fAt) && siteName(w.site).includes(wAt)) n++;
      };
    },
    hits: () => n,
  };
}

// Two VMAs in different PMD ranges, their first pages populated; W changes
// one of them while F faults on the second page of one (or zaps it).
const scenario = (writerStep: string, accessStep: string): string => `
name: vma-lock
machine: { cpus: 2 }
processes:
  - name: p
    threads: [{ name: W, cpu: 0 }, { name: F, cpu: 1 }]
steps:
  - mmap: { region: a, size: 8K, addr: 0x7d0000000000, flags: [private, anonymous, fixed], thread: W }
  - mmap: { region: b, size: 8K, addr: 0x7e0000000000, flags: [private, anonymous, fixed], thread: W }
  - touch: { region: a, length: 4K, thread: W }
  - touch: { region: b, length: 4K, thread: W }
concurrent:
  - ${writerStep}
  - ${accessStep}
`;

describe("per-VMA locks", () => {
  it("a fault in another VMA runs while mprotect() holds mmap_lock for writing", () => {
    const text = scenario("mprotect: { region: b, length: 4K, prot: r, thread: W }", "touch: { region: a, offset: 4K, length: 4K, thread: F }");
    const seen = beside("handle_pte_fault", "change_pte_range");
    const res = explore(cfg(text, { onStart: seen.onStart }));
    assert.equal(res.counterexample, null);
    assert.ok(seen.hits() > 0, "no execution had F's fault in handle_pte_fault() while W's mprotect() changed PTEs");
  });

  it("a fault in the VMA mprotect() write-locked waits for it", () => {
    const text = scenario("mprotect: { region: a, length: 4K, prot: r, thread: W }", "read: { region: a, offset: 4K, length: 4K, thread: F }");
    const seen = beside("handle_pte_fault", "change_pte_range");
    const res = explore(cfg(text, { onStart: seen.onStart }));
    assert.equal(res.counterexample, null);
    assert.equal(seen.hits(), 0, "F's fault ran in handle_pte_fault() while W's mprotect() changed the PTEs of its VMA");
  });

  it("MADV_DONTNEED inside one VMA runs beside an mmap_lock writer of another", () => {
    const text = scenario("mprotect: { region: b, length: 4K, prot: r, thread: W }", "madvise: { region: a, advice: dontneed, thread: F }");
    const seen = beside("zap_pte_range", "change_pte_range");
    const res = explore(cfg(text, { onStart: seen.onStart }));
    assert.equal(res.counterexample, null);
    assert.ok(seen.hits() > 0, "no execution had F's zap running while W's mprotect() changed PTEs");
  });

  it("a MADV_DONTNEED range that leaves its VMA takes mmap_lock instead", () => {
    // a is split in two VMAs (its second half read-only): a range over both
    // is not inside one VMA.
    const text = scenario("mprotect: { region: b, length: 4K, prot: r, thread: W }", "madvise: { region: a, advice: dontneed, thread: F }")
      .replace("region: a, size: 8K", "region: a, size: 16K")
      .replace(
        "  - touch: { region: b, length: 4K, thread: W }",
        "  - touch: { region: b, length: 4K, thread: W }\n  - mprotect: { region: a, offset: 8K, length: 8K, prot: r, thread: W }",
      );
    const seen = beside("zap_pte_range", "change_pte_range");
    const res = explore(cfg(text, { onStart: seen.onStart }));
    assert.equal(res.counterexample, null);
    assert.equal(seen.hits(), 0);
  });

  it("fork_vma_lock=none (v6.4): the copy with T1's writable entry still cached is seen with one preemption; v6.17 explores clean", () => {
    const sc = load("u-fork-vma-lock.yaml");
    const base = { ...defaultConfig(sc), sc, preemptions: 1, ignore: [] };
    const bad = explore({ ...base, run: { variants: { fork_vma_lock: "none" } } });
    assert.equal(bad.counterexample?.invariant, "cow-copy-writable");
    assert.match(bad.counterexample?.message ?? "", /CPU1, running T1 in user mode/);
    const fixed = explore({ ...base, run: { variants: {} } });
    assert.equal(fixed.counterexample, null);
  });

  it("fork_vma_lock=none (v6.4): looking past that, T1's store is lost; v6.17 explores it clean", () => {
    const sc = load("u-fork-vma-lock.yaml");
    const base = { ...defaultConfig(sc), sc, preemptions: 2, ignore: ["cow-copy-writable"] };
    const bad = explore({ ...base, run: { variants: { fork_vma_lock: "none" } } });
    assert.equal(bad.counterexample?.invariant, "read-not-last-write");
    assert.match(bad.counterexample?.message ?? "", /first half/);
    const fixed = explore({ ...base, run: { variants: {} } });
    assert.equal(fixed.counterexample, null);
  });
});
