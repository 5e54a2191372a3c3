// GUP pins (pin_user_pages(FOLL_PIN | FOLL_LONGTERM), mm/gup.c) as the
// kernel's other paths must respect them, in the sequential cases of
// selftests/mm/cow.c: a R/W pin survives fork (copy_present_page() gives
// the child a copy, the parent keeps the pinned page); a R/O pin of a page
// the process shares with a child unshares it first (FAULT_FLAG_UNSHARE),
// so the process keeps seeing the pinned page; GUP-fast refuses what the
// slow path must handle; reclaim, migration and MADV_COLLAPSE leave a
// pinned page where it is; exit and munmap do not drop pins, the refcount
// keeps the page; bad input is a located error (exit 2).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type GupPin, unpinUserPages } from "../src/core/mm/gup.js";
import { PG_ANON_EXCLUSIVE } from "../src/core/mm/physmem.js";
import { pmdOffset } from "../src/core/mm/walk.js";
import { explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { Runner, ViolationError } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import type { Step } from "../src/scenario/types.js";
import { siteHits } from "./catalogue.js";

function runner(yaml: string, variants: Record<string, string> = {}): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, variants });
  r.runAll();
  return r;
}

// The pfn process `proc` maps at region+off (-1: nothing present).
function pfnAt(r: Runner, proc: string, region: string, off = 0): number {
  const p = r.procs.get(proc);
  assert.ok(p);
  const reg = p.regions.get(region);
  assert.ok(reg);
  const m = r.m;
  const a = reg.start + off;
  const pi = pmdOffset(m, p.mm, a, false);
  const pmdv = pi < 0 ? 0 : m.tables.get(pi);
  if (pmdv === 0) return -1;
  if (m.arch.entryIsLeaf(pmdv)) return m.arch.ptePfn(pmdv) + (a % m.geo.pmdSize) / m.geo.pageSize;
  const slot = m.tables.slotOfPfn(m.arch.ptePfn(pmdv));
  const v = m.tables.get(m.tables.base(slot) + ((a / m.geo.pageSize) & m.geo.ptrsMask));
  return v !== 0 && m.arch.ptePresent(v) ? m.arch.ptePfn(v) : -1;
}

// One step of thread A, as the loader builds it.
const step = (text: string) =>
  parseScenario(`name: t\nprocesses: [{ name: p, threads: [{ name: A, cpu: 0 }] }]\nsteps:\n  - ${text}\n`, "t.yaml").steps[0] as Step;

const head = (extra = "") => `
name: t
machine: { cpus: 2, thp: never${extra} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }]
steps:
  - mmap: { region: r, size: 2M, addr: 0x7f0000000000, flags: [private, anonymous, fixed], thread: A }
`;

describe("fork of a pinned page (copy_present_pte())", () => {
  const yaml = `${head()}
  - touch: { region: r, length: 8K }
  - pin: { region: r, length: 4K, write: true }
  - fork: { child: c }
  - touch: { region: r, length: 8K }
  - dma: { pin: r }
`;
  it("v6.17: the child gets a copy, the parent keeps the pinned page writable and exclusive across its store", () => {
    const r = runner(yaml);
    const pinned = r.pins.get("r")?.pfns[0] as number;
    assert.equal(pfnAt(r, "p", "r"), pinned, "the parent maps the pinned page");
    assert.notEqual(pfnAt(r, "c", "r"), pinned, "the child has a copy");
    assert.ok(((r.m.phys.flags[pinned] as number) & PG_ANON_EXCLUSIVE) !== 0);
    // The unpinned page was shared and copied on the parent's store as usual.
    assert.notEqual(pfnAt(r, "p", "r", 4096), pfnAt(r, "c", "r", 4096));
  });
  it("fork_pin=share (before 70e806e4e645): the parent's store copies the page away from the pin (pin-coherence)", () => {
    assert.throws(
      () => runner(yaml, { fork_pin: "share" }),
      (e: unknown) => e instanceof ViolationError && e.violations.some((v) => v.invariant === "pin-coherence"),
    );
  });
});

describe("a pinned anon page stays PageAnonExclusive (sanity_check_pinned_pages())", () => {
  // No store after the fork: only the state shows that the pin is broken.
  const yaml = `${head()}
  - touch: { region: r, length: 8K }
  - pin: { region: r, length: 4K, write: true }
  - fork: { child: c }
`;
  it("fork_pin=share: the fork step itself is a pin-coherence violation (the page lost AnonExclusive); v6.17 passes", () => {
    runner(yaml);
    assert.throws(
      () => runner(yaml, { fork_pin: "share" }),
      (e: unknown) =>
        e instanceof ViolationError &&
        e.where.startsWith("fork") &&
        e.violations.some((v) => v.invariant === "pin-coherence" && v.message.includes("PageAnonExclusive")),
    );
  });
  it("unpin_user_pages() checks it too: unpinning the page fork_pin=share's fork shared reports it; v6.17's unpin does not", () => {
    for (const variants of [{}, { fork_pin: "share" }] as Record<string, string>[]) {
      const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, variants });
      if (Object.keys(variants).length > 0) assert.throws(() => r.runAll(), ViolationError);
      else r.runAll();
      r.m.violations = [];
      unpinUserPages(r.m, r.pins.get("r") as GupPin);
      assert.equal(
        r.m.violations.some((v) => v.message.startsWith("unpin_user_pages()")),
        Object.keys(variants).length > 0,
      );
    }
  });
  // The catalogue's GUP-fast races without the store that shows them at a
  // user access: the explorer checks the pins still held at the end.
  for (const [file, variant] of [
    ["t-gup-fast-fork", { gup_fast_seq: "none" }],
    ["q-gup-fast-collapse", { gup_fast_recheck: "pte-only", collapse_sync: "none" }],
    ["p-fork-pin-share", { fork_pin: "share" }],
  ] as const) {
    it(`explore: ${file} without its last store is found at the end of an execution, and v6.17 stays clean`, () => {
      const FILE = `scenarios/concurrency/${file}.yaml`;
      const text = readFileSync(FILE, "utf8")
        .split("\n")
        .filter((l) => !/^\s+- touch: \{ region: r, length: 4K, thread: (B|T1) \}$/.test(l))
        .join("\n");
      assert.notEqual(text, readFileSync(FILE, "utf8"), "the store was removed");
      const sc = parseScenario(text, FILE);
      const base = defaultConfig(sc);
      const old = explore({ ...base, run: { ...base.run, variants: { ...variant } } });
      assert.ok(old.counterexample !== null, "not found");
      assert.equal(old.counterexample.invariant, "pin-coherence");
      assert.equal(explore(base).counterexample, null);
    });
  }
});

describe("fork of a pinned PMD-mapped THP (copy_huge_pmd())", () => {
  const yaml = `
name: t
machine: { cpus: 2, thp: always }
steps:
  - mmap: { region: r, size: 2M, addr: 0x7f0000000000, flags: [private, anonymous, fixed] }
  - touch: { region: r, length: 4K }
  - pin: { region: r, offset: 8K, length: 4K, write: true }
  - fork: { child: c }
  - touch: { region: r, offset: 8K, length: 4K }
`;
  it("v6.17: folio_try_dup_anon_rmap_pmd() refuses, the PMD is split and the child gets copies; the parent keeps the pinned page", () => {
    const r = runner(yaml);
    const pinned = r.pins.get("r")?.pfns[0] as number;
    assert.equal(pfnAt(r, "p0", "r", 8192), pinned);
    assert.notEqual(pfnAt(r, "c", "r", 8192), pinned);
    assert.equal(r.procs.get("c")?.mm.anonHugePmds, 0, "the child's copies are small pages");
  });
  it("fork_pin=share: the THP is shared and the parent's store copies the page away from the pin", () => {
    assert.throws(
      () => runner(yaml, { fork_pin: "share" }),
      (e: unknown) => e instanceof ViolationError && e.violations.some((v) => v.invariant === "pin-coherence"),
    );
  });
});

describe("GUP-fast of a PMD-mapped THP (gup_fast_pmd_leaf())", () => {
  const yaml = (write: boolean, fork: boolean) => `
name: t
machine: { cpus: 2, thp: always }
steps:
  - mmap: { region: r, size: 2M, addr: 0x7f0000000000, flags: [private, anonymous, fixed] }
  - touch: { region: r, length: 4K }
${fork ? "  - fork: { child: c }\n" : ""}  - pin: { region: r, offset: 8K, length: 4K, write: ${write}, fast: true }
`;
  it("a fast pin of page 2 of a THP pins that page and leaves the PMD a leaf (the slow path would too; the explore test below shows the PMD path runs)", () => {
    for (const write of [true, false]) {
      const r = runner(yaml(write, false));
      const pmdv = r.m.tables.get(pmdOffset(r.m, r.procs.get("p0")?.mm as never, 0x7f0000000000, false));
      assert.ok(r.m.arch.entryIsLeaf(pmdv), "the PMD is still a leaf");
      assert.deepEqual(r.pins.get("r")?.pfns, [r.m.arch.ptePfn(pmdv) + 2]);
    }
  });
  it("a R/O pin of a THP fork shared is refused by GUP-fast (gup_must_unshare()); the slow path unshares it", () => {
    const r = runner(yaml(false, true));
    const pinned = r.pins.get("r")?.pfns[0] as number;
    assert.equal(pfnAt(r, "p0", "r", 8192), pinned);
    assert.notEqual(pfnAt(r, "c", "r", 8192), pinned, "the parent got its own copy; the child keeps the shared page");
  });
  it("explore: the fast pin races fork and a split of the THP and stays coherent (clean-gup-fast-thp reaches the PMD path)", () => {
    const FILE = "scenarios/concurrency/clean-gup-fast-thp.yaml";
    const seen = siteHits("gup_fast_pmd_leaf");
    const base = defaultConfig(parseScenario(readFileSync(FILE, "utf8"), FILE));
    const res = explore({ ...base, preemptions: 1, onStart: seen.onStart });
    assert.equal(res.counterexample, null);
    assert.ok(seen.hits() > 0, "no execution stopped in gup_fast_pmd_leaf()");
  });
});

describe("R/O pins (gup_must_unshare(), FAULT_FLAG_UNSHARE)", () => {
  for (const fast of [false, true])
    it(`${fast ? "GUP-fast falls back and " : ""}a R/O pin of a page shared with a child unshares it: the parent maps the pinned page, also after its store`, () => {
      const r = runner(`${head()}
  - touch: { region: r, length: 4K }
  - fork: { child: c }
  - pin: { region: r, length: 4K, fast: ${fast} }
  - touch: { region: r, length: 4K }
`);
      const pinned = r.pins.get("r")?.pfns[0] as number;
      assert.equal(pfnAt(r, "p", "r"), pinned);
      assert.notEqual(pfnAt(r, "c", "r"), pinned, "the child keeps the old page");
    });
  it("a R/O pin of the shared zero page unshares it into an anon page of its own", () => {
    const r = runner(`${head()}
  - read: { region: r, length: 4K }
  - pin: { region: r, length: 4K }
`);
    const pinned = r.pins.get("r")?.pfns[0] as number;
    assert.notEqual(pinned, r.m.phys.zeroPfn);
    assert.equal(pfnAt(r, "p", "r"), pinned);
  });
});

describe("paths that must leave a pinned page alone", () => {
  it("MADV_PAGEOUT: try_to_unmap_one() fails folio_try_share_anon_rmap_pte(), the page stays mapped; its neighbour goes to swap", () => {
    const r = runner(`${head(", swap: 1M")}
  - touch: { region: r, length: 8K }
  - pin: { region: r, length: 4K, write: true }
  - madvise: { region: r, length: 8K, advice: pageout }
`);
    assert.equal(pfnAt(r, "p", "r"), r.pins.get("r")?.pfns[0]);
    assert.equal(pfnAt(r, "p", "r", 4096), -1, "the unpinned page was swapped out");
    assert.equal(r.procs.get("p")?.mm.swapEnts, 1);
    // shrink_folio_list() keeps a maybe-pinned folio before folio_alloc_swap():
    // no slot and no swap cache for it, only the neighbour's slot is used.
    const swap = r.m.swap;
    assert.ok(swap);
    assert.equal(swap.used, 1);
    assert.equal(swap.slotOf.has(r.pins.get("r")?.pfns[0] as number), false);
  });
  it("migration: folio_migrate_mapping()'s reference check fails for the pinned page; its neighbour moves", () => {
    const r = runner(`${head()}
  - touch: { region: r, length: 8K }
  - pin: { region: r, length: 4K, write: true }
`);
    const before = pfnAt(r, "p", "r", 4096);
    r.exec(step("migrate: { region: r, length: 8K }"), 0);
    assert.equal(pfnAt(r, "p", "r"), r.pins.get("r")?.pfns[0]);
    assert.notEqual(pfnAt(r, "p", "r", 4096), before);
  });
  it("MADV_COLLAPSE: is_refcount_suitable() fails while the pin is held, and succeeds after unpin", () => {
    const yaml = `${head()}
  - touch: { region: r, length: 8K }
  - pin: { region: r, length: 4K, write: true }
  - madvise: { region: r, advice: collapse }
`;
    const r = runner(yaml);
    assert.equal(r.procs.get("p")?.mm.anonHugePmds, 0);
    assert.equal(pfnAt(r, "p", "r"), r.pins.get("r")?.pfns[0]);
    const r2 = runner(`${yaml}  - unpin: { pin: r }\n  - madvise: { region: r, advice: collapse }\n`);
    assert.equal(r2.procs.get("p")?.mm.anonHugePmds, 1);
  });
  it("munmap and exit keep a pinned page allocated (refcount); unpin frees it", () => {
    const r = runner(`${head()}
  - touch: { region: r, length: 4K }
  - pin: { region: r, length: 4K, write: true }
  - munmap: { region: r }
`);
    const pinned = r.pins.get("r")?.pfns[0] as number;
    assert.equal(r.m.phys.isFree(pinned), false);
    r.exec(step("unpin: { pin: r }"), 0);
    assert.equal(r.m.phys.isFree(pinned), true);
    assert.deepEqual(r.finish(), []);
  });
});

describe("pins: bad input", () => {
  const cli = (body: string) => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-pin-"));
    const f = join(dir, "t.yaml");
    writeFileSync(f, `name: t\nsteps:\n  - mmap: { region: A, size: 64K, prot: rw }\n${body}`);
    return spawnSync(process.execPath, ["dist/src/cli/main.js", "run", f], { encoding: "utf8" });
  };
  it("a pin of an unmapped range is a located error, exit 2 (EFAULT)", () => {
    const p = cli("  - munmap: { region: A }\n  - pin: { region: A }\n");
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:5:5: pin of A\+0 \(length 65536\) in process \w+ failed: EFAULT: no readable mapping/);
    assert.equal(p.stderr.trim().split("\n").length, 1, "one line");
  });
  it("a DMA write through a R/O pin and an unknown pin name are located errors", () => {
    let p = cli("  - pin: { region: A, length: 4K }\n  - dma: { pin: A }\n");
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:5:5: pin "A" is read-only/);
    p = cli("  - unpin: { pin: B }\n");
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:4:5: no pin named "B"/);
  });
});
