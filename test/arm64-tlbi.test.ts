// arm64 TLB maintenance (src/core/arch/arm64/tlbflush.ts), the ASID
// allocator (context.ts) and the TLB hardware under them (src/core/hw/tlb.ts,
// walker.ts): range-TLBI encoding, limit-excess fallbacks, DSB completion,
// ASID rollover, TLB conflicts, tlb_flush() decisions.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { asidGeneration, asidReachable, switchMm } from "../src/core/arch/arm64/context.js";
import { arm64 } from "../src/core/arch/arm64/index.js";
import * as P from "../src/core/arch/arm64/pgtable.js";
import {
  dsb,
  flushTlbMm,
  flushTlbPage,
  flushTlbPageNosync,
  flushTlbRange,
  flushTlbRangeArm64,
  MAX_TLBI_RANGE_PAGES,
  TLBI_RECORD,
  TLBI_TTL_UNKNOWN,
  tlbFlush,
  tlbGetLevel,
  tlbiRangeOps,
} from "../src/core/arch/arm64/tlbflush.js";
import { CONFLICT_OA, CONFLICT_OA_OR_SIZE, Tlb, TLB_U } from "../src/core/hw/tlb.js";
import { userAccess } from "../src/core/arch/fault.js";
import { type Arm64Features, defaultConfig, type Machine } from "../src/core/machine.js";
import { tlbGatherMmu } from "../src/core/mm/mmu_gather.js";
import type { Mm } from "../src/core/mm/types.js";
import { pmdOffset, pteAlloc } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { checkTlbs } from "../src/core/check.js";
import { newMachine } from "../src/core/index.js";

const PS = 4096;
const BASE = 0x7f0000000000;
const enc = P.arm64Encoding(4);
const RW = P.pteMkyoung(P.pteMkdirty(P.vmGetPageProt(P.VM_READ | P.VM_WRITE | P.VM_SHARED)));

function machine(f: Partial<Arm64Features> = {}, cpus = 2): Machine {
  const cfg = defaultConfig();
  cfg.cpus = cpus;
  cfg.arm64 = { ...cfg.arm64, ...f };
  return newMachine(arm64(cfg.arm64), cfg);
}

// Install a PTE by hand (no VMA needed: the walker only consults VMAs on a fault).
function setPte(m: Machine, mm: Mm, addr: number, v: number): void {
  const slot = pteAlloc(m, mm, pmdOffset(m, mm, addr, true));
  m.tables.set(slot * 512 + ((addr / PS) & 511), v);
}

function tlbiCounts(m: Machine) {
  const c = m.counters;
  return { vale1is: c.tlbiVale1is, vae1is: c.tlbiVae1is, rvale1is: c.tlbiRvale1is, rvae1is: c.tlbiRvae1is, aside1is: c.tlbiAside1is, dsb: c.dsb };
}
const none = { vale1is: 0, vae1is: 0, rvale1is: 0, rvae1is: 0, aside1is: 0, dsb: 0 };

describe("range TLBI encoding (__flush_tlb_range_op)", () => {
  it("encodes the examples as the formula gives", () => {
    // 512 pages: scale 3 and 2 give NUM -1; scale 1: 512 >> 6 = 8, NUM 7.
    assert.deepEqual(tlbiRangeOps(0, 512, 12, true), [{ op: "range", page: 0, num: 7, scale: 1, pages: 512 }]);
    // 3 pages: one range of 2 (scale 0, NUM 0), then one page.
    assert.deepEqual(tlbiRangeOps(10, 3, 12, true), [
      { op: "range", page: 10, num: 0, scale: 0, pages: 2 },
      { op: "page", page: 12, pages: 1 },
    ]);
    assert.deepEqual(tlbiRangeOps(7, 1, 12, true), [{ op: "page", page: 7, pages: 1 }]);
    assert.deepEqual(tlbiRangeOps(0, MAX_TLBI_RANGE_PAGES, 12, true), [{ op: "range", page: 0, num: 31, scale: 3, pages: 2 ** 21 }]);
    // 100 pages = 64 (scale 1, NUM 0) + 36 (scale 0, NUM 17).
    assert.deepEqual(tlbiRangeOps(0, 100, 12, true), [
      { op: "range", page: 0, num: 0, scale: 1, pages: 64 },
      { op: "range", page: 64, num: 17, scale: 0, pages: 36 },
    ]);
    assert.throws(() => tlbiRangeOps(0, MAX_TLBI_RANGE_PAGES + 2, 12, true), RangeError);
  });

  it("with LPA2, issues by-VA operations until the start is 64K aligned", () => {
    // 4K pages: 16 pages per 64K. Start at page 13: pages 13..15 one by one, then ranges.
    assert.deepEqual(tlbiRangeOps(13, 35, 12, true, 12, true), [
      { op: "page", page: 13, pages: 1 },
      { op: "page", page: 14, pages: 1 },
      { op: "page", page: 15, pages: 1 },
      { op: "range", page: 16, num: 15, scale: 0, pages: 32 },
    ]);
    // Without LPA2 the same flush starts with a range at page 13.
    assert.equal(tlbiRangeOps(13, 35, 12, true, 12, false)[0]?.op, "range");
    // 16K pages: 4 per 64K; pages 5..7 to align, a range of 4, the odd page last. 64K pages: always aligned.
    assert.deepEqual(
      tlbiRangeOps(5, 8, 14, true, 14, true).map((o) => `${o.op}@${o.page}`),
      ["page@5", "page@6", "page@7", "range@8", "page@12"],
    );
    assert.equal(tlbiRangeOps(5, 8, 16, true, 16, true)[0]?.op, "range");
  });

  it("issues one by-VA operation per stride without FEAT_TLBIRANGE", () => {
    assert.equal(tlbiRangeOps(0, 5, 12, false).length, 5);
    assert.deepEqual(tlbiRangeOps(512, 1024, 21, false), [
      { op: "page", page: 512, pages: 512 },
      { op: "page", page: 1024, pages: 512 },
    ]);
  });

  it("covers exactly the range, contiguously, one range per scale from 3 down, the odd page last (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 35 }), fc.integer({ min: 1, max: MAX_TLBI_RANGE_PAGES }), (start, pages) => {
        const ops = tlbiRangeOps(start, pages, 12, true);
        let next = start;
        let left = pages;
        let lastScale = 4;
        ops.forEach((o, i) => {
          assert.equal(o.page, next, "operations are contiguous");
          if (o.op === "range") {
            const num = o.num as number;
            const scale = o.scale as number;
            assert.ok(num >= 0 && num <= 31 && scale >= 0 && scale <= 3, "NUM is 5 bits, SCALE 0..3");
            assert.ok(scale < lastScale, "scales strictly decrease");
            lastScale = scale;
            assert.equal(o.pages, (num + 1) * 2 ** (5 * scale + 1));
            assert.equal(o.pages % 2 ** (5 * scale + 1), 0);
            left -= o.pages;
            assert.ok(left < 2 ** (5 * scale + 1), "greedy: what is left fits the next scale down");
          } else {
            assert.equal(i, ops.length - 1, "a by-VA operation only for the last odd page");
            assert.equal(o.pages, 1);
            left -= 1;
          }
          next += o.pages;
        });
        assert.equal(left, 0, "covered pages sum to the range");
        assert.ok(ops.length <= 5);
      }),
    );
  });

  it("covers stride-aligned ranges one stride at a time without range support (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 20 }), fc.integer({ min: 1, max: 600 }), fc.constantFrom(12, 21), (s, n, shift) => {
        const sp = 2 ** (shift - 12);
        const ops = tlbiRangeOps(s * sp, n * sp, shift, false);
        assert.equal(ops.length, n);
        ops.forEach((o, i) => {
          assert.equal(o.op, "page");
          assert.equal(o.page, (s + i) * sp);
        });
      }),
    );
  });
});

describe("__flush_tlb_range limits", () => {
  const run = (f: Partial<Arm64Features>, pages: number, stride: number, sync = true) => {
    const m = machine(f);
    const mm = m.newMm(BASE);
    switchMm(m, 0, mm);
    flushTlbRangeArm64(m, mm, BASE, BASE + pages * PS, stride, true, 3, sync);
    return tlbiCounts(m);
  };

  it("without FEAT_TLBIRANGE: per page below MAX_DVM_OPS strides, flush_tlb_mm() from 512", () => {
    assert.deepEqual(run({ tlbiRange: false }, 511, PS), { ...none, vale1is: 511, dsb: 1 });
    assert.deepEqual(run({ tlbiRange: false }, 512, PS), { ...none, aside1is: 1, dsb: 2 });
    // PMD stride: 511 PMDs per PMD, 512 PMDs (1 GiB) becomes an ASID flush.
    assert.deepEqual(run({ tlbiRange: false }, 511 * 512, 2 ** 21), { ...none, vale1is: 511, dsb: 1 });
    assert.deepEqual(run({ tlbiRange: false }, 512 * 512, 2 ** 21), { ...none, aside1is: 1, dsb: 2 });
  });

  it("with FEAT_TLBIRANGE: range operations up to MAX_TLBI_RANGE_PAGES, flush_tlb_mm() above", () => {
    assert.deepEqual(run({ tlbiRange: true }, 512, PS), { ...none, rvale1is: 1, dsb: 1 });
    assert.deepEqual(run({ tlbiRange: true }, 513, PS), { ...none, rvale1is: 1, vale1is: 1, dsb: 1 });
    assert.deepEqual(run({ tlbiRange: true }, MAX_TLBI_RANGE_PAGES, PS), { ...none, rvale1is: 1, dsb: 1 });
    assert.deepEqual(run({ tlbiRange: true }, MAX_TLBI_RANGE_PAGES + 1, PS), { ...none, aside1is: 1, dsb: 2 });
  });

  it("nosync leaves the TLBIs queued, but its flush_tlb_mm() fallback completes", () => {
    assert.deepEqual(run({ tlbiRange: false }, 4, PS, false), { ...none, vale1is: 4 });
    assert.deepEqual(run({ tlbiRange: false }, 512, PS, false), { ...none, aside1is: 1, dsb: 1 });
  });

  it("rounds to the stride and records the TTL hint", () => {
    const m = machine({ tlbiRange: false });
    const mm = m.newMm(BASE);
    switchMm(m, 0, mm);
    flushTlbRangeArm64(m, mm, BASE + 5 * PS, BASE + 2 ** 21 + 1, 2 ** 21, false, 2, false);
    const q = m.cpus[0]!.tlbiQueue;
    assert.equal(q.length, 2 * TLBI_RECORD, "two PMD-stride operations after round_down/round_up");
    assert.equal(q[2], BASE / PS);
    assert.equal(q[TLBI_RECORD + 2], BASE / PS + 512);
    assert.equal(q[4], 2, "TTL level 2 kept in the record");
    assert.equal(q[1], mm.asidId % 65536, "tagged with the mm's ASID");
  });

  it("Arch.flushTlbRange: flush_pmd_tlb_range() strides by PMD, flush_tlb_range() by page, never leaf-only", () => {
    const m = machine({ tlbiRange: false });
    const mm = m.newMm(BASE);
    switchMm(m, 0, mm);
    flushTlbRange(m, mm, BASE, BASE + 2 ** 21, 21, false);
    assert.deepEqual(tlbiCounts(m), { ...none, vae1is: 1, dsb: 1 });
    flushTlbRange(m, mm, BASE, BASE + 3 * PS, 12, false);
    assert.deepEqual(tlbiCounts(m), { ...none, vae1is: 4, dsb: 2 });
    const r = machine({ tlbiRange: true });
    const mm2 = r.newMm(BASE);
    flushTlbRange(r, mm2, BASE, BASE + 2 ** 21, 21, false);
    assert.deepEqual(tlbiCounts(r), { ...none, rvae1is: 1, dsb: 1 });
  });
});

describe("TLBI completes at the issuing CPU's DSB, on every CPU", () => {
  it("a queued VALE1IS changes no TLB until the issuer's DSB; then all CPUs lose the entry", () => {
    const m = machine({}, 3);
    const mm = m.newMm(BASE);
    const head = m.phys.alloc(0);
    setPte(m, mm, BASE, enc.pfnPte(head, RW));
    for (let c = 0; c < 3; c++) assert.equal(userAccess(m, c, mm, BASE, true), "ok");
    const asid = m.cpus[0]!.asid;
    for (let c = 0; c < 3; c++) assert.equal(m.cpus[c]!.asid, asid, "one ASID on every CPU");
    const has = (c: number) => m.cpus[c]!.tlb.lookup(BASE / PS, asid) >= 0;
    m.curCpu = 0;
    flushTlbPageNosync(m, mm, BASE);
    assert.equal(m.counters.tlbiVale1is, 1);
    assert.ok(has(0) && has(1) && has(2), "not yet complete");
    const hits = m.counters.tlbHits;
    assert.equal(userAccess(m, 1, mm, BASE, false), "ok");
    assert.equal(m.counters.tlbHits, hits + 1, "CPU1 still translates through the old entry");
    dsb(m, 1);
    assert.ok(has(0) && has(1) && has(2), "another CPU's DSB does not complete CPU0's TLBI");
    dsb(m, 0);
    assert.ok(!has(0) && !has(1) && !has(2), "broadcast on DSB");
    assert.equal(m.cpus[0]!.tlbiQueue.length, 0);
    assert.equal(m.counters.tlbiVale1is, 1, "counted once, not per CPU");
  });

  it("flush_tlb_mm() removes every entry of the ASID, walk caches included, and no other ASID's", () => {
    const m = machine();
    const a = m.newMm(BASE);
    const b = m.newMm(BASE);
    const pa = m.phys.alloc(0);
    const pb = m.phys.alloc(0);
    setPte(m, a, BASE, enc.pfnPte(pa, RW));
    setPte(m, b, BASE, enc.pfnPte(pb, RW));
    userAccess(m, 0, a, BASE, false);
    userAccess(m, 0, b, BASE, false);
    const t = m.cpus[0]!.tlb;
    const asA = a.asidId % 65536;
    const asB = b.asidId % 65536;
    assert.notEqual(asA, asB);
    flushTlbMm(m, a);
    assert.equal(t.lookup(BASE / PS, asA), -1);
    assert.equal(t.lookupPsc(BASE / PS, asA), -1);
    assert.ok(t.lookup(BASE / PS, asB) >= 0);
    assert.ok(t.lookupPsc(BASE / PS, asB) >= 0);
    flushTlbPage(m, b, BASE);
    assert.equal(t.lookup(BASE / PS, asB), -1);
    assert.ok(t.lookupPsc(BASE / PS, asB) >= 0, "VALE1IS leaves the walk cache");
  });
});

describe("TLB hardware (src/core/hw/tlb.ts)", () => {
  it("VALE1IS keeps walk caches; VAE1IS drops those covering the VA only; range ops drop overlapping blocks", () => {
    const t = new Tlb(128, 12, 32, 32, 256, CONFLICT_OA_OR_SIZE, 48);
    const v = 0x12345 * 512 + 7;
    t.insert(v, 3, 100, TLB_U);
    t.insertPsc(v, 3, 1, 55);
    t.insertPsc(v + 512, 3, 1, 56);
    t.insertPsc(v, 3, 2, 57);
    t.invalidateVa(v, 3, true);
    assert.equal(t.lookup(v, 3), -1);
    assert.equal(t.ptag.filter((x) => x !== 0).length, 3);
    t.invalidateVa(v, 3, false);
    assert.equal(t.ptag.filter((x) => x !== 0).length, 1, "only the next 2M's PMD-level cache survives");
    assert.equal(t.ptbl[t.lookupPsc(v + 512, 3)], 56);
    t.insertHuge(v, 3, 16, 0x4000, TLB_U);
    t.insertHuge(v + 4096, 3, 21, 0x8000, TLB_U);
    t.invalidateRange(v - (v % 16) + 15, 2, 3, true);
    assert.equal(t.lookupHuge(v, 3), -1, "a 64K entry partly in the range is invalidated");
    assert.ok(t.lookupHuge(v + 4096, 3) >= 0);
    t.invalidateAsid(4);
    assert.ok(t.lookupHuge(v + 4096, 3) >= 0);
    t.invalidateAll();
    assert.equal(t.lookupHuge(v + 4096, 3), -1);
  });

  it("keeps keys exact: 16-bit ASIDs with 48-bit VAs, refused with 52-bit VAs", () => {
    const t = new Tlb(128, 12, 32, 32, 65536, CONFLICT_OA_OR_SIZE, 48);
    const top = 2 ** 36 - 1;
    t.insert(top, 65535, 9, TLB_U);
    t.insert(top, 0, 8, TLB_U);
    assert.equal(t.pfn[t.lookup(top, 65535)], 9);
    assert.equal(t.pfn[t.lookup(top, 0)], 8);
    assert.equal(t.vpnOfKey(t.tag[t.lookup(top, 65535)] as number), top);
    assert.equal(t.asidOfKey(t.tag[t.lookup(top, 65535)] as number), 65535);
    assert.throws(() => new Tlb(128, 12, 32, 32, 65536, CONFLICT_OA_OR_SIZE, 52), RangeError);
  });

  it("finds conflicts: overlap with another size, or another output address", () => {
    const t = new Tlb(128, 12, 32, 32, 256, CONFLICT_OA_OR_SIZE, 48);
    t.insert(0x1003, 1, 0x5003, TLB_U);
    assert.equal(t.findConflict(0x1000, 16, 0x5000, 1) >= 0, true, "64K over a 4K entry: size differs");
    assert.equal(t.findConflict(0x1000, 16, 0x5000, 2), -1, "other ASID");
    assert.equal(t.findConflict(0x1010, 16, 0x5010, 1), -1, "no overlap");
    t.insertHuge(0x2000, 1, 16, 0x6000, TLB_U);
    assert.equal(t.findConflict(0x2000, 16, 0x6000, 1), -1, "the same entry again");
    assert.ok(t.findConflict(0x2000, 16, 0x7000, 1) < -1, "same size, other output");
    assert.ok(t.findConflict(0x2005, 12, 0x6005, 1) < -1, "4K under a 64K entry");
    const b = new Tlb(128, 12, 32, 32, 256, CONFLICT_OA, 48);
    b.insert(0x1003, 1, 0x5003, TLB_U);
    assert.equal(b.findConflict(0x1000, 16, 0x5000, 1), -1, "BBML2 no-abort: a size change alone is fine");
    assert.ok(b.findConflict(0x1000, 16, 0x9000, 1) >= 0, "but not another output address");
  });
});

describe("TLB conflicts on fill (walker)", () => {
  const setup = (bbml2: boolean) => {
    const m = machine({ bbml2NoAbort: bbml2 });
    const mm = m.newMm(BASE);
    const head = m.phys.alloc(4);
    for (let k = 0; k < 16; k++) setPte(m, mm, BASE + k * PS, enc.pfnPte(head + k, RW));
    assert.equal(userAccess(m, 0, mm, BASE + 3 * PS, false), "ok");
    return { m, mm, head };
  };
  const fold = (m: Machine, mm: Mm, head: number) => {
    for (let k = 0; k < 16; k++) setPte(m, mm, BASE + k * PS, P.pteMkcont(enc.pfnPte(head + k, RW)));
  };

  it("a CONT fold without break-before-make conflicts with the cached 4K entry", () => {
    const { m, mm, head } = setup(false);
    fold(m, mm, head);
    assert.equal(userAccess(m, 0, mm, BASE + 5 * PS, false), "ok");
    assert.equal(m.counters.tlbConflicts, 1);
    assert.equal(m.violations.length, 1);
    assert.equal(m.violations[0]!.invariant, "tlb-conflict");
    assert.equal(m.violations[0]!.cpu, 0);
    assert.match(m.violations[0]!.message, /64K entry .* overlaps a 4K entry/);
  });

  it("no conflict after the TLBI (BBM), and one 64K entry serves the block", () => {
    const { m, mm, head } = setup(false);
    fold(m, mm, head);
    flushTlbRangeArm64(m, mm, BASE, BASE + 16 * PS, PS, true, 3, true);
    assert.equal(userAccess(m, 0, mm, BASE + 5 * PS, false), "ok");
    assert.equal(m.counters.tlbConflicts, 0);
    const misses = m.counters.tlbMisses;
    for (let k = 0; k < 16; k++) userAccess(m, 0, mm, BASE + k * PS, false);
    assert.equal(m.counters.tlbMisses, misses, "all 16 pages hit the contiguous entry");
    const t = m.cpus[0]!.tlb;
    const h = t.lookupHuge(BASE / PS + 9, m.cpus[0]!.asid);
    assert.equal(t.hshift[h], 16);
    assert.equal(t.hpfn[h], head, "block base output address");
    assert.deepEqual(checkTlbs(m), []);
  });

  it("BBML2 no-abort: a size change alone is no conflict, another output address is", () => {
    const { m, mm, head } = setup(true);
    fold(m, mm, head);
    userAccess(m, 0, mm, BASE + 5 * PS, false);
    assert.equal(m.counters.tlbConflicts, 0);
    const other = m.phys.alloc(4);
    for (let k = 0; k < 16; k++) setPte(m, mm, BASE + k * PS, P.pteMkcont(enc.pfnPte(other + k, RW)));
    m.cpus[0]!.tlb.invalidateRange(BASE / PS + 8, 8, m.cpus[0]!.asid, true); // drops the 64K entry only
    userAccess(m, 0, mm, BASE + 9 * PS, false);
    assert.equal(m.counters.tlbConflicts, 1, "the stale 4K entry maps another frame");
  });

  it("checkTlbs compares every page of a contiguous entry", () => {
    const { m, mm, head } = setup(false);
    fold(m, mm, head);
    flushTlbRangeArm64(m, mm, BASE, BASE + 16 * PS, PS, true, 3, true);
    userAccess(m, 0, mm, BASE, true);
    assert.deepEqual(checkTlbs(m), []);
    // Page 11 write-protected without a flush: the 64K entry still grants write.
    setPte(m, mm, BASE + 11 * PS, P.pteWrprotect(P.pteMkcont(enc.pfnPte(head + 11, RW))));
    assert.deepEqual(
      checkTlbs(m).map((v) => v.invariant),
      ["tlb-stale-write"],
    );
    // Page 12 remapped: stale mapping.
    setPte(m, mm, BASE + 12 * PS, P.pteMkcont(enc.pfnPte(head + 100, RW)));
    assert.deepEqual(
      checkTlbs(m).map((v) => v.invariant),
      ["tlb-stale-mapping"],
    );
  });
});

describe("hardware without FEAT_HAFDBS", () => {
  it("an old entry faults instead of being filled (the walker leaves AF to software)", () => {
    const m = machine({ hafdbs: false });
    const mm = m.newMm(BASE);
    const head = m.phys.alloc(0);
    setPte(m, mm, BASE, P.pteMkold(enc.pfnPte(head, RW)));
    // No VMA: the access-flag fault finds none and is a SIGSEGV; what matters
    // is that the walker did not fill the TLB or set AF itself.
    assert.equal(userAccess(m, 0, mm, BASE, false), "segv");
    assert.equal(m.counters.hwAdUpdates, 0);
    assert.equal(m.cpus[0]!.tlb.lookup(BASE / PS, m.cpus[0]!.asid), -1);
  });
});

describe("ASID allocator (context.c)", () => {
  it("8-bit ASIDs: the 256th mm rolls over; live ASIDs stay unique; each CPU flushes once at its next switch", () => {
    const m = machine({ asidBits: 8 });
    const mms: Mm[] = [];
    const keep = m.newMm(BASE);
    switchMm(m, 1, keep); // CPU1 keeps running it across the rollover
    const keptAsid = m.cpus[1]!.asid;
    const head = m.phys.alloc(0);
    setPte(m, keep, BASE, enc.pfnPte(head, RW));
    userAccess(m, 1, keep, BASE, false);
    for (let i = 0; i < 300; i++) {
      const mm = m.newMm(BASE);
      mms.push(mm);
      switchMm(m, 0, mm);
      // Fill a TLB entry tagged with this mm's ASID on CPU0.
      setPte(m, mm, BASE, enc.pfnPte(head, RW));
      userAccess(m, 0, mm, BASE, false);
      if (i === 253) assert.equal(m.counters.asidRollovers, 0, "ASIDs 1..255 last 255 mms");
      if (i === 254) {
        assert.equal(m.counters.asidRollovers, 1);
        assert.equal(m.cpus[1]!.tlbFlushPending, true, "CPU1 owes a flush");
        assert.equal(m.cpus[0]!.tlbFlushPending, false, "CPU0 flushed at the switch");
        assert.equal(m.counters.tlbiVmalle1is, 1);
      }
    }
    assert.equal(asidGeneration(m), 2);
    assert.equal(m.counters.asidRollovers, 1);
    // Generation-2 ASIDs are unique and avoid the one CPU1 keeps reserved.
    const cur = mms.slice(255).map((x) => x.asidId % 256);
    assert.equal(new Set(cur).size, cur.length);
    assert.ok(!cur.includes(keptAsid), "the reserved ASID is not handed out");
    assert.ok(!cur.includes(0), "ASID 0 is init_mm's");
    // CPU1 still runs `keep` with its old ASID and can use its TLB entries.
    assert.equal(asidReachable(m, 1, keptAsid), keep);
    const other = (keptAsid % 255) + 1;
    assert.equal(asidReachable(m, 1, other), null, "anything else on CPU1 is flushed before use");
    // Moving `keep` to CPU0 keeps its ASID (check_update_reserved_asid).
    switchMm(m, 0, keep);
    assert.equal(m.cpus[0]!.asid, keptAsid);
    assert.equal(Math.floor(keep.asidId / 256), 2);
    // CPU1's next switch performs its local flush.
    switchMm(m, 1, mms[299]!);
    assert.equal(m.cpus[1]!.tlbFlushPending, false);
    assert.equal(m.counters.tlbiVmalle1is, 2);
    assert.equal(m.cpus[1]!.tlb.lookup(BASE / PS, keptAsid), -1);
    assert.deepEqual(checkTlbs(m), []);
  });

  it("an old generation's mm gets its ASID back when free, a new one otherwise", () => {
    const m = machine({ asidBits: 8 }, 1);
    const first = m.newMm(BASE);
    switchMm(m, 0, first);
    const a1 = first.asidId % 256;
    for (let i = 0; i < 255; i++) switchMm(m, 0, m.newMm(BASE)); // rolls over, reuses 1.. for the newest
    assert.equal(m.counters.asidRollovers, 1);
    switchMm(m, 0, first);
    assert.equal(Math.floor(first.asidId / 256), 2);
    assert.notEqual(first.asidId % 256, a1, "its old ASID went to a newer mm");
    assert.equal(m.cpus[0]!.asid, first.asidId % 256);
    // One that nobody took in the new generation comes back unchanged.
    const m2 = machine({ asidBits: 8 }, 1);
    const early = m2.newMm(BASE);
    const mms2: Mm[] = [];
    for (let i = 0; i < 200; i++) mms2.push(m2.newMm(BASE));
    for (const x of mms2) switchMm(m2, 0, x);
    switchMm(m2, 0, early); // ASID 201
    for (let i = 0; i < 60; i++) switchMm(m2, 0, m2.newMm(BASE)); // rollover at the 55th
    assert.equal(m2.counters.asidRollovers, 1);
    switchMm(m2, 0, early);
    assert.equal(early.asidId, 2 * 256 + 201);
  });

  it("a dead mm's entries and an unknown ASID are unreachable", () => {
    const m = machine();
    const mm = m.newMm(BASE);
    switchMm(m, 0, mm);
    const asid = m.cpus[0]!.asid;
    switchMm(m, 0, null);
    assert.equal(asidReachable(m, 0, asid), mm, "not loaded, but it would get its ASID back");
    assert.equal(mm.cpumask[0], 0);
    mm.alive = false;
    assert.equal(asidReachable(m, 0, asid), null);
    assert.equal(asidReachable(m, 0, 1234), null);
  });
});

describe("tlb_flush() (asm/tlb.h)", () => {
  const gather = (f: Partial<Arm64Features>, fullmm: boolean) => {
    const m = machine(f);
    const mm = m.newMm(BASE);
    switchMm(m, 0, mm);
    const tlb = tlbGatherMmu(m, mm, fullmm);
    return { m, tlb };
  };

  it("full-mm teardown without freed tables issues no TLBI at all", () => {
    const { m, tlb } = gather({}, true);
    tlb.clearedPtes = true;
    tlbFlush(m, tlb);
    assert.deepEqual(tlbiCounts(m), none);
  });

  it("full-mm teardown with freed tables is one flush_tlb_mm()", () => {
    const { m, tlb } = gather({}, true);
    tlb.clearedPtes = true;
    tlb.freedTables = true;
    tlb.clearedPmds = true;
    tlbFlush(m, tlb);
    assert.deepEqual(tlbiCounts(m), { ...none, aside1is: 1, dsb: 1 });
  });

  it("freed tables make a range flush non-leaf (VAE1IS, not VALE1IS)", () => {
    for (const range of [false, true]) {
      const { m, tlb } = gather({ tlbiRange: range }, false);
      tlb.clearedPtes = true;
      tlb.freedTables = true;
      tlb.clearedPmds = true;
      tlb.adjustRange(BASE, 4 * PS);
      tlbFlush(m, tlb);
      assert.deepEqual(tlbiCounts(m), range ? { ...none, rvae1is: 1, dsb: 1 } : { ...none, vae1is: 4, dsb: 1 });
    }
  });

  it("cleared PTEs only: leaf-only by page, TTL level 3", () => {
    const { m, tlb } = gather({ tlbiRange: false }, false);
    tlb.clearedPtes = true;
    tlb.adjustRange(BASE + PS, 2 * PS);
    assert.equal(tlbGetLevel(tlb), 3);
    tlbFlush(m, tlb);
    assert.deepEqual(tlbiCounts(m), { ...none, vale1is: 2, dsb: 1 });
  });

  it("only a PTE table freed: PMD stride, walk caches included", () => {
    const { m, tlb } = gather({ tlbiRange: false }, false);
    tlb.freedTables = true;
    tlb.clearedPmds = true;
    tlb.adjustRange(BASE + 5 * PS, PS);
    assert.equal(tlbGetLevel(tlb), TLBI_TTL_UNKNOWN);
    tlbFlush(m, tlb);
    assert.deepEqual(tlbiCounts(m), { ...none, vae1is: 1, dsb: 1 });
  });

  it("TTL hint: one level cleared gives its level, mixed gives none", () => {
    const { tlb } = gather({}, false);
    tlb.clearedPmds = true;
    assert.equal(tlbGetLevel(tlb), 2);
    tlb.clearedPtes = true;
    assert.equal(tlbGetLevel(tlb), TLBI_TTL_UNKNOWN);
  });
});

describe("arm64 scenarios end to end", () => {
  const yaml = `
name: t
machine: { cpus: 2 }
steps:
  - mmap: { region: A, size: 4M, prot: rw }
  - touch: { region: A }
  - munmap: { region: A, offset: 0, length: 64K }
  - mprotect: { region: A, offset: 1M, length: 1M, prot: r }
  - report: r
`;
  for (const tlbiRange of [true, false])
    it(`runs with invariant checks and issues TLBIs, tlbi_range ${tlbiRange ? "on" : "off"}`, () => {
      const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, arch: "arm64", arm64: { tlbiRange } });
      r.runAll();
      assert.deepEqual(r.finish(), []);
      const c = r.m.counters;
      // The munmap of 64K (16 pages, no table freed) and the mprotect of 1M
      // (256 pages) flush the last level only: one range operation each with
      // FEAT_TLBIRANGE (16 = (7 + 1) << 1, 256 = (3 + 1) << (5 + 1)), else
      // one VALE1IS per page (both under MAX_DVM_OPS = 512).
      assert.deepEqual([c.tlbiRvale1is, c.tlbiRvae1is, c.tlbiVale1is, c.tlbiVae1is], tlbiRange ? [2, 0, 0, 0] : [0, 0, 16 + 256, 0]);
      assert.equal(c.tlbConflicts, 0);
      for (const cpu of r.m.cpus) assert.equal(cpu.tlbiQueue.length, 0, "every TLBI completed");
    });
});
