// arm64 end to end: the generic mm code on the arm64 architecture with
// contpte, under every variant, plus the seeded behaviours the reproduce
// table relies on.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { Counters } from "../src/core/counters.js";
import { type ReportRow, Runner, type RunOptions, ViolationError } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import type { Scenario } from "../src/scenario/types.js";

function load(file: string): Scenario {
  return parseScenario(readFileSync(file, "utf8"), file);
}

function runSc(sc: Scenario, opts: RunOptions): { rows: ReportRow[]; violations: string[] } {
  const r = new Runner(sc, { checkInvariants: true, ...opts });
  try {
    r.runAll();
    return { rows: r.rows, violations: r.finish().map((v) => `[${v.invariant}] ${v.message}`) };
  } catch (e) {
    if (!(e instanceof ViolationError)) throw e;
    return { rows: r.rows, violations: e.violations.map((v) => `[${v.invariant}] ${v.message}`) };
  }
}

function row(rows: ReportRow[], label: string): Counters {
  const r = rows.find((x) => x.label === label);
  assert.ok(r, `report ${label}`);
  return r.counters;
}

function small(yaml: string): Scenario {
  return parseScenario(yaml, "t.yaml");
}

describe("arm64: every diff scenario under every contpte variant", () => {
  const dir = "scenarios/diff";
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml") && !f.includes("50g"));
  for (const contpte of ["batched", "off", "unfold-each", "intermediate"])
    it(`contpte=${contpte}, 64K mTHP: no invariant violation`, () => {
      for (const f of files) {
        const sc = load(`${dir}/${f}`);
        const res = runSc(sc, { arch: "arm64", mthp: { 64: "always" }, variants: { contpte } });
        assert.deepEqual(res.violations, [], `${f}`);
      }
    });
  it("without FEAT_HAFDBS (access-flag and dirty faults) and without FEAT_TLBIRANGE", () => {
    for (const f of files) {
      const sc = load(`${dir}/${f}`);
      const res = runSc(sc, { arch: "arm64", mthp: { 64: "always" }, arm64: { hafdbs: false, tlbiRange: false } });
      assert.deepEqual(res.violations, [], `${f}`);
    }
  });
});

describe("arm64: contpte in the generic paths", () => {
  const sc = small(`name: t
machine: { arch: arm64, cpus: 2, thp: never, mthp: { 64K: always } }
processes:
  - { name: keep, threads: [{ name: k, cpu: 0 }] }
  - { name: p, threads: [{ name: t, cpu: 1 }] }
steps:
  - mmap: { region: a, size: 1M, prot: rw, thread: t }
  - touch: { region: a, thread: t }
  - report: fault
  - mprotect: { region: a, prot: r, thread: t }
  - mprotect: { region: a, prot: rw, thread: t }
  - report: mprotect
  - exit: { process: p, thread: t }
  - report: exit
`);
  it("faults map 64K folios as contpte blocks (16 blocks per MiB, folded by set_ptes)", () => {
    const c = row(runSc(sc, {}).rows, "fault");
    assert.equal(c.mthpFaults, 16);
    // set_ptes(nr=16) writes CONT directly: no fold (a repaint) is needed.
    assert.equal(c.contFolds, 0);
    assert.equal(c.contUnfolds, 0);
  });
  it("mprotect: the batched code keeps blocks whole; before the series every block is unfolded and refolded", () => {
    const fixed = row(runSc(sc, { variants: { mprotect_batching: "fixed" } }).rows, "mprotect");
    const off = row(runSc(sc, { variants: { mprotect_batching: "off" } }).rows, "mprotect");
    assert.equal(fixed.contUnfolds, 0);
    assert.equal(off.contUnfolds, 32); // 16 blocks x 2 calls
    assert.equal(off.contFolds, 32);
    // One range flush (TLBI and DSB) per mprotect call; before the series
    // also one in contpte_convert() for each of the 32 unfolds and 32 refolds.
    assert.equal(fixed.dsb, 2);
    assert.equal(off.dsb, 2 + 32 + 32);
  });
  it("exit: unfold-each unfolds every block with a TLBI; batched and intermediate never do", () => {
    const each = row(runSc(sc, { variants: { contpte: "unfold-each" } }).rows, "exit");
    assert.equal(each.contUnfolds, 16);
    // One block TLBI in contpte_convert() per block unfolded.
    assert.equal(each.contBlockTlbis, 16);
    for (const v of ["batched", "intermediate"]) {
      const c = row(runSc(sc, { variants: { contpte: v } }).rows, "exit");
      assert.equal(c.contUnfolds, 0, v);
      // fullmm with tables freed: one ASIDE1IS at the end, nothing per page.
      assert.equal(c.tlbiVale1is + c.tlbiRvale1is, 0, v);
    }
  });
  it("BBML2-noabort elides the TLBI inside contpte_convert()", () => {
    const a = row(runSc(sc, { variants: { contpte: "unfold-each" } }).rows, "exit");
    const b = row(runSc(sc, { variants: { contpte: "unfold-each" }, arm64: { bbml2NoAbort: true } }).rows, "exit");
    assert.equal(b.contUnfolds, a.contUnfolds);
    // The exit's one ASIDE1IS, and without BBML2 the TLBI and DSB in
    // contpte_convert() for each of the 16 blocks.
    assert.equal(a.dsb, 1 + 16);
    assert.equal(b.dsb, 1);
  });
});

describe("arm64: munmap TLB maintenance (__flush_tlb_range)", () => {
  const mk = (size: string) =>
    small(`name: t
machine: { arch: arm64, cpus: 2, thp: never }
steps:
  - mmap: { region: a, size: ${size}, prot: rw }
  - touch: { region: a }
  - report: setup
  - munmap: { region: a }
  - report: munmap
`);
  it("with FEAT_TLBIRANGE a 1 MiB unmap is one range TLBI, without it 256 VALE1IS", () => {
    const r = row(runSc(mk("1M"), {}).rows, "munmap");
    // tlb_end_vma(): 256 pages, last level, in one range operation
    // (__flush_tlb_range_op(): scale 1, num 3, (3 + 1) << (5 * 1 + 1) = 256
    // pages); the flush after free_pgtables() falls back to ASIDE1IS.
    assert.deepEqual([r.tlbiRvale1is, r.tlbiRvae1is, r.tlbiVale1is, r.tlbiAside1is], [1, 0, 0, 1]);
    const n = row(runSc(mk("1M"), { arm64: { tlbiRange: false } }).rows, "munmap");
    assert.equal(n.tlbiRvae1is + n.tlbiRvale1is, 0);
    // tlb_end_vma() flushes the leaf entries (256 pages, last level); the
    // final flush after free_pgtables() covers a PMD span and falls back.
    assert.equal(n.tlbiVale1is, 256);
    assert.equal(n.tlbiAside1is, 1);
  });
  it("without FEAT_TLBIRANGE, 2 MiB or more falls back to one ASIDE1IS (MAX_DVM_OPS)", () => {
    const n = row(runSc(mk("4M"), { arm64: { tlbiRange: false } }).rows, "munmap");
    assert.equal(n.tlbiVale1is + n.tlbiVae1is, 0);
    // One at tlb_end_vma(), one after free_pgtables() freed the tables.
    assert.equal(n.tlbiAside1is, 2);
  });
});

describe("arm64: the mprotect sub-batch bug (cf1b80dc31a1)", () => {
  const sc = load("scenarios/reproduce/mprotect-first-page.yaml");
  it("fixed: pages 8-15 stay read-only, no violation", () => {
    assert.deepEqual(runSc(sc, { variants: { mprotect_batching: "fixed" } }).violations, []);
  });
  // Pages 8-15 (the mprotect range, 32K..64K of the folio), one violation
  // each (the run stops at the mprotect back to rw).
  const pages8to15 = (v: string[]) => {
    assert.equal(v.length, 8, v.join("\n"));
    const addrs = v.map((x) => {
      const m = /^\[writable-anon-not-exclusive\] mm1: writable PTE at 0x([0-9a-f]+) maps anon page pfn \d+ that is not AnonExclusive$/.exec(x);
      assert.ok(m, x);
      return Number.parseInt(m[1]!, 16);
    });
    assert.deepEqual(
      addrs.map((a) => a - addrs[0]!),
      [0, 1, 2, 3, 4, 5, 6, 7].map((k) => k * 4096),
    );
    assert.equal(addrs[0]! % 65536, 32768, "the first is page 8 of the 64K folio");
  };
  it("folio-first-page: a writable PTE maps a page that is not AnonExclusive", () => {
    pages8to15(runSc(sc, { variants: { mprotect_batching: "folio-first-page" } }).violations);
  });
  it("the same on x86-64 with 64K mTHP", () => {
    pages8to15(runSc(sc, { arch: "x86_64", variants: { mprotect_batching: "folio-first-page" } }).violations);
    assert.deepEqual(runSc(sc, { arch: "x86_64" }).violations, []);
  });
});
