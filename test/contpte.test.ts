// Unit and property tests of the arm64 contpte layer (src/core/arch/arm64/
// contpte.ts): the hooks are driven directly on one PTE table of an arm64
// Machine, as generic mm code would call them with the PTL held.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { arm64 } from "../src/core/arch/arm64/index.js";
import { x86_64 } from "../src/core/arch/x86/index.js";
import { checkContpte } from "../src/core/arch/arm64/contpte_check.js";
import * as P from "../src/core/arch/arm64/pgtable.js";
import { type Machine, defaultConfig, type MachineConfig } from "../src/core/machine.js";
import { LVL_PTE } from "../src/core/mm/pgtable.js";
import type { Mm } from "../src/core/mm/types.js";
import { run } from "../src/core/sync.js";
import { CYD_DIRTY, CYD_YOUNG } from "../src/core/arch/arch.js";
import { newMachine } from "../src/core/index.js";

const PS = 4096;
const CONT = 16;
const BASE = 0x7f0000000000; // 2M aligned: entry i of the table maps BASE + i * PS
const enc = P.arm64Encoding(4);
// A private writable mapping after a write fault: writable, dirty, young.
const RW = P.pteMkdirty(P.vmGetPageProt(P.VM_READ | P.VM_WRITE | P.VM_SHARED));

type Variant = MachineConfig["variants"]["contpte"];

interface Rig {
  m: Machine;
  mm: Mm;
  e: Float64Array;
  b: number; // index of entry 0 of the table in e
}

function rig(opts: { variant?: Variant; bbml2?: boolean; lockless?: "retry" | "no-retry" } = {}): Rig {
  const cfg = defaultConfig();
  cfg.variants.contpte = opts.variant ?? "batched";
  if (opts.lockless) cfg.variants.contpte_lockless = opts.lockless;
  cfg.arm64 = { ...cfg.arm64, bbml2NoAbort: opts.bbml2 ?? false };
  const m = newMachine(arm64(cfg.arm64), cfg);
  const mm = m.newMm(BASE);
  const slot = m.tables.alloc(LVL_PTE);
  return { m, mm, e: m.tables.chunkOf(slot), b: m.tables.base(slot) };
}

const pte = (pfn: number, prot = RW) => enc.pfnPte(pfn, prot);
const at = (r: Rig, i: number) => r.e[r.b + i] as number;
const addrOf = (i: number) => BASE + i * PS;

// set_ptes(nr = 1) for entries [from, from + n), page k mapping pfn0 + k.
function mapOneByOne(r: Rig, from: number, n: number, pfn0: number, prot = RW) {
  for (let k = 0; k < n; k++) r.m.arch.setPtes(r.m, r.mm, addrOf(from + k), r.e, r.b + from + k, pte(pfn0 + k, prot), 1);
}
function mapBatch(r: Rig, from: number, n: number, pfn0: number, prot = RW) {
  r.m.arch.setPtes(r.m, r.mm, addrOf(from), r.e, r.b + from, pte(pfn0, prot), n);
}
function contCount(r: Rig, from = 0, n = 512): number {
  let c = 0;
  for (let i = from; i < from + n; i++) if (P.pteValidCont(at(r, i))) c++;
  return c;
}
function counts(r: Rig) {
  const c = r.m.counters;
  return { reads: c.pteReads, writes: c.pteWrites, atomics: c.pteAtomics, folds: c.contFolds, unfolds: c.contUnfolds, tlbis: c.contBlockTlbis };
}
function reset(r: Rig) {
  const c = r.m.counters;
  c.pteReads = c.pteWrites = c.pteAtomics = c.contFolds = c.contUnfolds = c.contBlockTlbis = c.contLocklessRetries = 0;
}

describe("contpte fold (set_ptes nr = 1)", () => {
  it("folds when the 16th entry of an aligned block is written, not before", () => {
    const r = rig();
    const head = r.m.phys.alloc(4);
    mapOneByOne(r, 0, 15, head);
    assert.equal(contCount(r), 0);
    assert.equal(r.m.counters.contFolds, 0);
    mapOneByOne(r, 15, 1, head + 15);
    assert.equal(contCount(r), 16);
    assert.equal(r.m.counters.contFolds, 1);
    assert.equal(r.m.counters.contBlockTlbis, 1);
    for (let k = 0; k < CONT; k++) {
      assert.equal(enc.ptePfn(at(r, k)), head + k);
      assert.ok(P.pteDirty(at(r, k)) && P.pteYoung(at(r, k)), "gathered a/d written to every entry");
    }
    assert.deepEqual(checkContpte(r.m), []);
  });

  it("does not fold a block whose PFNs are not CONT_PTES aligned", () => {
    const r = rig();
    const head = r.m.phys.alloc(5); // 32 pages: the block fits in the folio, shifted by one
    mapOneByOne(r, 0, 16, head + 1);
    assert.equal(contCount(r), 0);
    assert.equal(r.m.counters.contFolds, 0);
  });

  it("does not fold special entries, a hole, mismatched attributes or a folio smaller than the block", () => {
    const r = rig();
    const head = r.m.phys.alloc(6); // 64 pages: four aligned blocks
    // special
    for (let k = 0; k < 16; k++) r.m.arch.setPtes(r.m, r.mm, addrOf(k), r.e, r.b + k, P.pteMkspecial(pte(head + k)), 1);
    // the next block, a normal one, folds
    mapOneByOne(r, 16, 16, head + 16);
    assert.equal(r.m.counters.contFolds, 1, "the clean second block folded");
    const r2 = rig();
    const h2 = r2.m.phys.alloc(4);
    mapOneByOne(r2, 0, 7, h2);
    mapOneByOne(r2, 7, 1, h2 + 9);
    mapOneByOne(r2, 8, 8, h2 + 8);
    assert.equal(r2.m.counters.contFolds, 0, "pfn hole");
    // read-only entry among writable ones
    const r3 = rig();
    const h3 = r3.m.phys.alloc(4);
    mapOneByOne(r3, 0, 3, h3);
    mapOneByOne(r3, 3, 1, h3 + 3, P.pteWrprotect(RW));
    mapOneByOne(r3, 4, 12, h3 + 4);
    assert.equal(r3.m.counters.contFolds, 0, "attributes differ");
    // four order-2 folios where one order-4 would be
    const r4 = rig();
    const h4 = r4.m.phys.alloc(4);
    for (let k = 0; k < 16; k++) r4.m.phys.order[h4 + k] = 2;
    mapOneByOne(r4, 0, 16, h4);
    assert.equal(r4.m.counters.contFolds, 0, "folio smaller than the block");
    assert.equal(contCount(r) + contCount(r2) + contCount(r3) + contCount(r4), 16);
  });

  it("ignores access and dirty when deciding to fold, and ORs them into the block", () => {
    const r = rig();
    const head = r.m.phys.alloc(4);
    const clean = P.pteMkold(P.pteMkclean(pte(head)));
    for (let k = 0; k < 16; k++) {
      const v = k === 3 ? P.pteMkdirty(enc.pteAdvancePfn(clean, k)) : k === 9 ? P.pteMkyoung(enc.pteAdvancePfn(clean, k)) : enc.pteAdvancePfn(clean, k);
      r.m.arch.setPtes(r.m, r.mm, addrOf(k), r.e, r.b + k, v, 1);
    }
    assert.equal(contCount(r), 16);
    for (let k = 0; k < 16; k++) assert.ok(P.pteDirty(at(r, k)) && P.pteYoung(at(r, k)));
  });

  it("BBML2 (no-abort) elides the block TLBI of a fold and of an unfold", () => {
    const r = rig({ bbml2: true });
    const head = r.m.phys.alloc(4);
    mapOneByOne(r, 0, 16, head);
    r.m.arch.ptepGetAndClearFull(r.m, r.mm, addrOf(4), r.e, r.b + 4, false);
    assert.equal(r.m.counters.contFolds, 1);
    assert.equal(r.m.counters.contUnfolds, 1);
    assert.equal(r.m.counters.contBlockTlbis, 0);
    const r2 = rig();
    mapOneByOne(r2, 0, 16, r2.m.phys.alloc(4));
    r2.m.arch.ptepGetAndClearFull(r2.m, r2.mm, addrOf(4), r2.e, r2.b + 4, false);
    assert.equal(r2.m.counters.contBlockTlbis, 2);
  });
});

describe("contpte_set_ptes (nr > 1)", () => {
  it("a 2M folio mapped with one set_ptes(512) gets CONT on all 32 blocks, without folds or TLBIs", () => {
    const r = rig();
    const head = r.m.phys.alloc(9);
    mapBatch(r, 0, 512, head);
    assert.equal(contCount(r), 512);
    for (let i = 0; i < 512; i++) assert.equal(enc.ptePfn(at(r, i)), head + i);
    assert.deepEqual(counts(r), { reads: 0, writes: 512, atomics: 0, folds: 0, unfolds: 0, tlbis: 0 });
    assert.deepEqual(checkContpte(r.m), []);
  });

  it("only block-aligned sub-ranges with aligned PFNs get CONT", () => {
    const r = rig();
    const head = r.m.phys.alloc(6);
    mapBatch(r, 8, 36, head + 8); // [8,16) partial, [16,32) whole, [32,44) partial
    assert.equal(contCount(r, 8, 8), 0);
    assert.equal(contCount(r, 16, 16), 16);
    assert.equal(contCount(r, 32, 12), 0);
    const r2 = rig();
    const h2 = r2.m.phys.alloc(6);
    mapBatch(r2, 0, 32, h2 + 1); // VA aligned, PA not
    assert.equal(contCount(r2), 0);
  });

  it("with contpte off nothing is ever CONT", () => {
    const r = rig({ variant: "off" });
    const head = r.m.phys.alloc(9);
    mapBatch(r, 0, 512, head);
    const h2 = r.m.phys.alloc(4);
    const r2 = rig({ variant: "off" });
    mapOneByOne(r2, 0, 16, h2);
    assert.equal(contCount(r) + contCount(r2), 0);
    assert.equal(r.m.counters.contFolds + r2.m.counters.contFolds, 0);
  });

  it("with contpte off every hook does to the entries what the contpte layer does to entries that are not CONT", () => {
    // An 8-page folio never folds: both layers see plain entries.
    const ops: [string, (r: Rig) => unknown][] = [
      ["set_ptes", (r) => mapBatch(r, 8, 4, r.m.phys.alloc(2))],
      ["ptep_get_and_clear_full", (r) => r.m.arch.ptepGetAndClearFull(r.m, r.mm, addrOf(2), r.e, r.b + 2, false)],
      ["get_and_clear_full_ptes", (r) => r.m.arch.getAndClearFullPtes(r.m, r.mm, addrOf(1), r.e, r.b + 1, 3, true)],
      ["wrprotect_ptes", (r) => r.m.arch.wrprotectPtes(r.m, r.mm, addrOf(0), r.e, r.b, 5)],
      ["ptep_set_wrprotect", (r) => r.m.arch.ptepSetWrprotect(r.m, r.mm, addrOf(6), r.e, r.b + 6)],
      ["modify_prot_start_ptes", (r) => r.m.arch.modifyProtStartPtes(r.m, r.mm, addrOf(3), r.e, r.b + 3, 2)],
      [
        "modify_prot_start/commit_ptes",
        (r) => {
          const old = r.m.arch.modifyProtStartPtes(r.m, r.mm, addrOf(4), r.e, r.b + 4, 2);
          r.m.arch.modifyProtCommitPtes(r.m, r.mm, addrOf(4), r.e, r.b + 4, old, P.pteWrprotect(old), 2);
          return old;
        },
      ],
      ["ptep_test_and_clear_young", (r) => r.m.arch.ptepTestAndClearYoung(r.m, r.mm, addrOf(5), r.e, r.b + 5)],
      ["clear_young_dirty_ptes", (r) => r.m.arch.clearYoungDirtyPtes(r.m, r.mm, addrOf(0), r.e, r.b, 7, CYD_YOUNG | CYD_DIRTY)],
      ["pte_batch_hint", (r) => r.m.arch.pteBatchHint(r.e, r.b + 1, at(r, 1))],
    ];
    for (const [name, op] of ops) {
      const out: { ret: unknown; ptes: number[] }[] = [];
      for (const variant of ["batched", "off"] as const) {
        const r = rig({ variant });
        mapOneByOne(r, 0, 8, r.m.phys.alloc(3), P.pteMkyoung(RW));
        const ret = op(r);
        out.push({ ret, ptes: Array.from({ length: 12 }, (_, i) => at(r, i)) });
      }
      assert.deepEqual(out[1], out[0], name);
      // And the operation did something.
      const r = rig({ variant: "off" });
      mapOneByOne(r, 0, 8, r.m.phys.alloc(3), P.pteMkyoung(RW));
      const before = Array.from({ length: 12 }, (_, i) => at(r, i));
      const ret = op(r);
      if (name !== "pte_batch_hint")
        assert.notDeepEqual(
          Array.from({ length: 12 }, (_, i) => at(r, i)),
          before,
          name,
        );
      else assert.equal(ret, 1);
    }
  });
});

describe("contpte reads", () => {
  it("ptep_get returns the entry's own PFN with access/dirty ORed over its block (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(0, 1, 2, 3), { minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 15 }),
        fc.constantFrom<"retry" | "no-retry">("retry", "no-retry"),
        (ad, idx, lockless) => {
          const r = rig({ lockless });
          const head = r.m.phys.alloc(4);
          mapBatch(r, 0, 16, head, P.pteMkold(P.pteMkclean(RW)));
          // Per-entry access/dirty as hardware would set them.
          for (let k = 0; k < 16; k++) {
            let v = at(r, k);
            if (ad[k]! & 1) v = P.pteMkyoung(v);
            if (ad[k]! & 2) v = P.hwMkyoungDirty(v, true);
            r.e[r.b + k] = v;
          }
          const dirty = ad.some((x) => (x & 2) !== 0);
          const young = ad.some((x) => x !== 0);
          const g = r.m.arch.ptepGet(r.m, r.e, r.b + idx);
          assert.equal(enc.ptePfn(g), head + idx);
          assert.equal(P.pteDirty(g), dirty);
          assert.equal(P.pteYoung(g), young);
          assert.equal(run(r.m.arch.ptepGetLockless(r.m, r.e, r.b + idx)), g, "lockless agrees on a consistent block");
          assert.equal(r.m.counters.contLocklessRetries, 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("ptep_get_lockless retries on an inconsistent block (and reports the livelock a sequential run would be)", () => {
    // Old and clean, so the gather reads the whole block (v6.17 stops at the
    // first entry that is both young and dirty, checking no further).
    const OLD = P.pteMkold(P.pteMkclean(RW));
    const r = rig();
    const head = r.m.phys.alloc(4);
    mapBatch(r, 0, 16, head, OLD);
    r.e[r.b + 7] = P.pteMknoncont(at(r, 7)); // a block caught mid-repaint
    const v = run(r.m.arch.ptepGetLockless(r.m, r.e, r.b + 2));
    // The first pass sees entry 7 without CONT; the one retry finds the block
    // as it was, which in a sequential run is the livelock.
    assert.equal(r.m.counters.contLocklessRetries, 1);
    assert.equal(v, at(r, 2));
    assert.ok(r.m.violations.some((x) => x.invariant === "contpte-lockless-livelock"));
    const r2 = rig({ lockless: "no-retry" });
    mapBatch(r2, 0, 16, r2.m.phys.alloc(4), OLD);
    r2.e[r2.b + 7] = P.pteMknoncont(at(r2, 7));
    run(r2.m.arch.ptepGetLockless(r2.m, r2.e, r2.b + 2));
    assert.equal(r2.m.counters.contLocklessRetries, 0, "no-retry never checks");
    assert.equal(r2.m.violations.length, 0);
  });

  it("pte_batch_hint gives the entries left in a CONT block, 1 otherwise", () => {
    const r = rig();
    const head = r.m.phys.alloc(5);
    mapBatch(r, 0, 16, head);
    mapBatch(r, 16, 8, head + 16);
    assert.equal(r.m.arch.pteBatchHint(r.e, r.b, at(r, 0)), 16);
    assert.equal(r.m.arch.pteBatchHint(r.e, r.b + 5, at(r, 5)), 11);
    assert.equal(r.m.arch.pteBatchHint(r.e, r.b + 15, at(r, 15)), 1);
    assert.equal(r.m.arch.pteBatchHint(r.e, r.b + 16, at(r, 16)), 1);
  });
});

describe("contpte clearing", () => {
  it("a single clear unfolds the block and keeps the gathered access/dirty on the survivors", () => {
    const r = rig();
    const head = r.m.phys.alloc(4);
    mapBatch(r, 0, 16, head, P.pteMkold(P.pteMkclean(RW)));
    r.e[r.b + 11] = P.hwMkyoungDirty(at(r, 11), true);
    const old = r.m.arch.ptepGetAndClearFull(r.m, r.mm, addrOf(5), r.e, r.b + 5, false);
    assert.equal(enc.ptePfn(old), head + 5);
    assert.equal(at(r, 5), 0);
    assert.equal(r.m.counters.contUnfolds, 1);
    assert.equal(contCount(r), 0);
    for (let k = 0; k < 16; k++) if (k !== 5) assert.ok(P.pteDirty(at(r, k)) && P.pteYoung(at(r, k)) && enc.ptePfn(at(r, k)) === head + k);
    assert.deepEqual(checkContpte(r.m), []);
  });

  it("clear_full_ptes unfolds only the partially covered end blocks", () => {
    const r = rig();
    const head = r.m.phys.alloc(9);
    mapBatch(r, 0, 512, head);
    reset(r);
    r.m.arch.clearFullPtes(r.m, r.mm, addrOf(8), r.e, r.b + 8, 32, false); // [8,40)
    assert.equal(r.m.counters.contUnfolds, 2);
    assert.equal(r.m.counters.contBlockTlbis, 2);
    for (let i = 8; i < 40; i++) assert.equal(at(r, i), 0);
    assert.equal(contCount(r, 0, 8), 0);
    assert.equal(contCount(r, 40, 8), 0, "end block unfolded");
    assert.equal(contCount(r, 48, 464), 464, "blocks outside the range untouched");
    assert.deepEqual(checkContpte(r.m), []);
    // A block-aligned whole-block batch unfolds nothing.
    reset(r);
    const got = r.m.arch.getAndClearFullPtes(r.m, r.mm, addrOf(48), r.e, r.b + 48, 32, true);
    assert.equal(enc.ptePfn(got), head + 48);
    assert.ok(P.pteDirty(got) && P.pteYoung(got));
    assert.deepEqual(counts(r), { reads: 0, writes: 0, atomics: 32, folds: 0, unfolds: 0, tlbis: 0 });
  });

  const variants: [Variant, ReturnType<typeof counts>][] = [
    ["off", { reads: 0, writes: 0, atomics: 16, folds: 0, unfolds: 0, tlbis: 0 }],
    // first entry: read, unfold (16 xchg + block TLBI + 16 stores), xchg; then 15 x (read, xchg)
    ["unfold-each", { reads: 16, writes: 16, atomics: 32, folds: 0, unfolds: 1, tlbis: 1 }],
    // every entry: read (still valid+CONT), xchg of that entry alone
    ["intermediate", { reads: 16, writes: 0, atomics: 16, folds: 0, unfolds: 0, tlbis: 0 }],
    ["batched", { reads: 0, writes: 0, atomics: 16, folds: 0, unfolds: 0, tlbis: 0 }],
  ];
  for (const [variant, want] of variants)
    it(`clearing a whole 64K folio with full = true: ${variant}`, () => {
      const r = rig({ variant });
      const head = r.m.phys.alloc(4);
      mapBatch(r, 0, 16, head);
      assert.equal(contCount(r), variant === "off" ? 0 : 16);
      reset(r);
      r.m.arch.clearFullPtes(r.m, r.mm, addrOf(0), r.e, r.b, 16, true);
      assert.deepEqual(counts(r), want);
      for (let k = 0; k < 16; k++) assert.equal(at(r, k), 0);
      assert.deepEqual(checkContpte(r.m), []);
    });

  it("intermediate: a fullmm clear of one entry leaves its neighbours valid and CONT (I-CONT-1 broken until the rest go)", () => {
    const r = rig({ variant: "intermediate" });
    const head = r.m.phys.alloc(4);
    mapBatch(r, 0, 16, head);
    r.m.arch.ptepGetAndClearFull(r.m, r.mm, addrOf(0), r.e, r.b, true);
    assert.equal(at(r, 0), 0);
    assert.equal(contCount(r), 15);
    const v = checkContpte(r.m);
    assert.equal(v.length, 1);
    assert.equal(v[0]!.invariant, "contpte-block");
    // Without full it unfolds as before.
    r.m.arch.ptepGetAndClearFull(r.m, r.mm, addrOf(1), r.e, r.b + 1, false);
    assert.equal(r.m.counters.contUnfolds, 1);
  });

  it("unfold-each: modify_prot start unfolds every block entry by entry and commit refolds", () => {
    for (const variant of ["unfold-each", "batched"] as const) {
      const r = rig({ variant });
      const head = r.m.phys.alloc(4);
      mapBatch(r, 0, 16, head);
      reset(r);
      const old = r.m.arch.modifyProtStartPtes(r.m, r.mm, addrOf(0), r.e, r.b, 16);
      const nv = P.pteWrprotect(P.pteMknoncont(old));
      r.m.arch.modifyProtCommitPtes(r.m, r.mm, addrOf(0), r.e, r.b, old, nv, 16);
      assert.equal(contCount(r), 16, `${variant}: CONT again after commit`);
      for (let k = 0; k < 16; k++) assert.ok(!P.pteWrite(at(r, k)));
      if (variant === "batched") assert.deepEqual([r.m.counters.contUnfolds, r.m.counters.contFolds], [0, 0]);
      else assert.deepEqual([r.m.counters.contUnfolds, r.m.counters.contFolds], [1, 1]);
    }
  });
});

describe("contpte modifiers", () => {
  it("contpte_try_unfold_partial(): a range unfolds exactly the blocks it covers in part, at either end", () => {
    // A 64-entry folio in four CONT blocks, write-protected over [s, s + n).
    for (let s = 0; s < 20; s++)
      for (const n of [1, 2, 12, 15, 16, 17, 24, 28, 31, 32, 33, 40, 44]) {
        if (s + n > 64) continue;
        const r = rig();
        mapBatch(r, 0, 64, r.m.phys.alloc(6));
        reset(r);
        r.m.arch.wrprotectPtes(r.m, r.mm, addrOf(s), r.e, r.b + s, n);
        const first = Math.floor(s / CONT);
        const last = Math.floor((s + n - 1) / CONT);
        const partial = new Set<number>();
        if (s % CONT !== 0 || n < CONT) partial.add(first);
        if ((s + n) % CONT !== 0) partial.add(last);
        for (let blk = 0; blk < 4; blk++) assert.equal(contCount(r, blk * CONT, CONT), partial.has(blk) ? 0 : CONT, `[${s}, +${n}): block ${blk}`);
        assert.equal(r.m.counters.contUnfolds, partial.size, `[${s}, +${n})`);
        for (let k = 0; k < 64; k++) assert.equal(P.pteWrite(at(r, k)), k < s || k >= s + n, `[${s}, +${n}): entry ${k}`);
        assert.deepEqual(checkContpte(r.m), []);
      }
  });

  it("wrprotect_ptes keeps CONT on whole blocks, unfolds partial ends and single entries", () => {
    const r = rig();
    const head = r.m.phys.alloc(6);
    mapBatch(r, 0, 64, head);
    r.m.arch.wrprotectPtes(r.m, r.mm, addrOf(0), r.e, r.b, 32);
    assert.equal(contCount(r, 0, 32), 32);
    assert.equal(r.m.counters.contUnfolds, 0);
    for (let k = 0; k < 32; k++) assert.ok(!P.pteWrite(at(r, k)) && P.pteDirty(at(r, k)), "write-protected, dirtiness kept");
    r.m.arch.wrprotectPtes(r.m, r.mm, addrOf(36), r.e, r.b + 36, 4);
    assert.equal(r.m.counters.contUnfolds, 1);
    r.m.arch.ptepSetWrprotect(r.m, r.mm, addrOf(50), r.e, r.b + 50);
    assert.equal(r.m.counters.contUnfolds, 2);
    assert.equal(contCount(r), 32);
    assert.deepEqual(checkContpte(r.m), []);
  });

  it("ptep_set_access_flags updates the whole block when write is unchanged, unfolds when write is gained", () => {
    const r = rig();
    const head = r.m.phys.alloc(4);
    mapBatch(r, 0, 16, head, P.pteMkold(P.pteMkclean(RW)));
    const entry = P.pteMkyoung(P.pteMkdirty(pte(head + 3, P.pteMkold(P.pteMkclean(RW)))));
    assert.equal(r.m.arch.ptepSetAccessFlags(r.m, r.mm, addrOf(3), r.e, r.b + 3, entry, true), true);
    assert.equal(r.m.counters.contUnfolds, 0);
    assert.equal(contCount(r), 16);
    for (let k = 0; k < 16; k++) {
      assert.ok(P.pteYoung(at(r, k)) && P.pteDirty(at(r, k)));
      assert.equal(enc.ptePfn(at(r, k)), head + k);
    }
    // Nothing to do: the gathered entry already equals the request.
    assert.equal(r.m.arch.ptepSetAccessFlags(r.m, r.mm, addrOf(3), r.e, r.b + 3, P.pteMknoncont(r.m.arch.ptepGet(r.m, r.e, r.b + 3)), false), false);
    // A read-only block made writable: unfold, then only the one entry.
    const r2 = rig();
    const h2 = r2.m.phys.alloc(4);
    const ro = P.pteWrprotect(RW);
    mapBatch(r2, 0, 16, h2, ro);
    const w = enc.pteMkwrite(pte(h2 + 6, ro));
    assert.equal(r2.m.arch.ptepSetAccessFlags(r2.m, r2.mm, addrOf(6), r2.e, r2.b + 6, w, true), true);
    assert.equal(r2.m.counters.contUnfolds, 1);
    assert.ok(P.pteWrite(at(r2, 6)));
    for (let k = 0; k < 16; k++) if (k !== 6) assert.ok(!P.pteWrite(at(r2, k)));
    assert.equal(contCount(r2), 0);
  });

  it("ptep_test_and_clear_young ages the whole block without unfolding", () => {
    const r = rig();
    const head = r.m.phys.alloc(4);
    mapBatch(r, 0, 16, head, P.pteMkold(RW));
    r.e[r.b + 12] = P.pteMkyoung(at(r, 12));
    assert.equal(r.m.arch.ptepTestAndClearYoung(r.m, r.mm, addrOf(2), r.e, r.b + 2), true);
    assert.equal(r.m.arch.ptepTestAndClearYoung(r.m, r.mm, addrOf(2), r.e, r.b + 2), false);
    assert.equal(contCount(r), 16);
    assert.equal(r.m.counters.contUnfolds, 0);
  });

  it("ptep_clear_flush_young: one block TLBI (leaf, level 3) for a young block, left for a later DSB; a plain entry gets VALE1IS", () => {
    const r = rig();
    const head = r.m.phys.alloc(4);
    mapBatch(r, 0, 16, head, P.pteMkold(RW));
    r.e[r.b + 12] = P.pteMkyoung(at(r, 12));
    const c = r.m.counters;
    const before = { range: c.tlbiRvale1is, page: c.tlbiVale1is, dsb: c.dsb };
    assert.equal(r.m.arch.ptepClearFlushYoung(r.m, r.mm, addrOf(2), r.e, r.b + 2), true);
    assert.equal(c.tlbiRvale1is - before.range, 1, "one range TLBI over the 64K block");
    assert.equal(c.dsb, before.dsb, "no DSB: the kernel elides it");
    const q = r.m.cpus[r.m.curCpu]!.tlbiQueue;
    assert.deepEqual(q.slice(2, 5), [BASE / PS, 16, 3], "queued: first page, 16 pages, TTL level 3");
    for (let k = 0; k < CONT; k++) assert.ok(!P.pteYoung(at(r, k)));
    assert.equal(contCount(r), 16, "no unfold");
    // Old: nothing to flush.
    assert.equal(r.m.arch.ptepClearFlushYoung(r.m, r.mm, addrOf(2), r.e, r.b + 2), false);
    assert.equal(c.tlbiRvale1is - before.range, 1);
    // A non-contiguous young entry: __ptep_clear_flush_young(), one VALE1IS.
    mapOneByOne(r, 20, 1, r.m.phys.alloc(0));
    assert.equal(r.m.arch.ptepClearFlushYoung(r.m, r.mm, addrOf(20), r.e, r.b + 20), true);
    assert.equal(c.tlbiVale1is - before.page, 1);
  });

  it("ptep_clear_flush_young on x86 clears the accessed bit without any flush", () => {
    const m = newMachine(x86_64(4), defaultConfig());
    const mm = m.newMm(BASE);
    const slot = m.tables.alloc(LVL_PTE);
    const e = m.tables.chunkOf(slot);
    const b = m.tables.base(slot);
    m.arch.setPtes(m, mm, BASE, e, b, m.arch.pteMkyoung(m.arch.pfnPte(m.phys.alloc(0), m.arch.vmGetPageProt(P.VM_READ))), 1);
    assert.equal(m.arch.ptepClearFlushYoung(m, mm, BASE, e, b), true);
    assert.equal(m.arch.pteYoung(e[b] as number), false);
    assert.equal(m.counters.tlbFlushesPage + m.counters.tlbFlushesFull + m.counters.tlbFlushRequests, 0);
  });

  it("clear_young_dirty_ptes widens to whole CONT blocks without unfolding", () => {
    const r = rig();
    const head = r.m.phys.alloc(6);
    mapBatch(r, 0, 48, head);
    r.m.arch.clearYoungDirtyPtes(r.m, r.mm, addrOf(10), r.e, r.b + 10, 12, CYD_YOUNG | CYD_DIRTY); // [10,22) → [0,32)
    for (let k = 0; k < 32; k++) assert.ok(!P.pteYoung(at(r, k)) && !P.pteDirty(at(r, k)), `entry ${k} cleaned`);
    for (let k = 32; k < 48; k++) assert.ok(P.pteYoung(at(r, k)) && P.pteDirty(at(r, k)), `entry ${k} untouched`);
    r.m.arch.clearYoungDirtyPtes(r.m, r.mm, addrOf(40), r.e, r.b + 40, 1, CYD_YOUNG);
    for (let k = 32; k < 48; k++) assert.ok(!P.pteYoung(at(r, k)) && P.pteDirty(at(r, k)));
    assert.equal(contCount(r), 48);
    assert.equal(r.m.counters.contUnfolds, 0);
  });
});

describe("contpte invariant check", () => {
  it("detects a hand-broken block: wrong PFN, missing CONT, misaligned base, different attributes", () => {
    const breakers: [string, (r: Rig) => void][] = [
      ["pfn", (r) => (r.e[r.b + 3] = enc.pteAdvancePfn(at(r, 3), 1))],
      ["non-cont neighbour", (r) => (r.e[r.b + 9] = P.pteMknoncont(at(r, 9)))],
      ["cleared neighbour", (r) => (r.e[r.b + 15] = 0)],
      ["attributes", (r) => (r.e[r.b + 4] = P.pteWrprotect(at(r, 4)))],
      [
        "misaligned base",
        (r) => {
          for (let k = 0; k < 16; k++) r.e[r.b + k] = enc.pteAdvancePfn(at(r, k), 1);
        },
      ],
    ];
    for (const [name, brk] of breakers) {
      const r = rig();
      mapBatch(r, 0, 16, r.m.phys.alloc(5));
      assert.deepEqual(checkContpte(r.m), [], `${name}: healthy first`);
      brk(r);
      const v = checkContpte(r.m);
      assert.equal(v.length, 1, name);
      assert.equal(v[0]!.invariant, "contpte-block");
    }
  });

  it("the arm64 object: CONT TLB entries cover 64K; without HAFDBS the hardware update is a fault", () => {
    const cfg = defaultConfig();
    const a = arm64(cfg.arm64) as ReturnType<typeof arm64> & { tlbEntryShift(v: number, level: number): number };
    const v = P.pteMkcont(pte(0x100));
    assert.equal(a.tlbEntryShift(v, 0), 16);
    assert.equal(a.tlbEntryShift(P.pteMknoncont(v), 0), 12);
    assert.equal(a.tlbEntryShift(v, 1), 21);
    assert.equal(a.levels, 4);
    assert.equal(a.pteNeedsFlush(v, v), true);
    const noHw = arm64({ ...cfg.arm64, hafdbs: false });
    const clean = pte(0x100, P.pteMkclean(RW)); // writable-clean: WRITE and RDONLY
    assert.equal(noHw.hwMkyoungDirty(P.pteMkold(clean), false), -1, "access flag fault");
    assert.equal(noHw.hwMkyoungDirty(clean, true), -1, "dirty-bit (permission) fault");
    assert.equal(noHw.hwMkyoungDirty(clean, false), clean);
    assert.ok(P.pteHwDirty(a.hwMkyoungDirty(clean, true)));
    // 16K: CONT_PTES 128 (2M), 32M PMD blocks, 4 levels at 48 bits;
    // 64K: CONT_PTES 32 (2M), 512M PMD blocks, 3 levels.
    const a16 = arm64({ ...cfg.arm64, granule: 16, vaBits: 48 });
    const a64 = arm64({ ...cfg.arm64, granule: 64, vaBits: 48 });
    assert.deepEqual([a16.pageShift, a16.ptrsPerTable, a16.levels, a16.tlbEntryShift(a16.pfnPte(0x100, 0) + 0, 1)], [14, 2048, 4, 25]);
    assert.deepEqual([a64.pageShift, a64.ptrsPerTable, a64.levels, a64.tlbEntryShift(a64.pfnPte(0x100, 0) + 0, 1)], [16, 8192, 3, 29]);
    assert.equal(arm64({ ...cfg.arm64, granule: 64, vaBits: 42 }).levels, 2);
  });
});
