// Unit tests of the arm64 descriptor encoding (src/core/arch/arm64/pgtable.ts)
// against exact 64-bit images. Expected images are written out by hand from the
// v6.17 bit positions (pgtable-hwdef.h / pgtable-prot.h), not computed with the
// module's own constants, so a wrong constant or a wrong packing shows up here.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import * as A from "../src/core/arch/arm64/pgtable.js";
import { TLB_D, TLB_U, TLB_W, TLB_X } from "../src/core/hw/tlb.js";

const raw = (v: number) => A.toRaw64(v);
const bit = (b: number) => 1n << BigInt(b);
const GRANULES: A.Granule[] = [4, 16, 64];

describe("arm64 packing", () => {
  it("every single-bit constant lands on its v6.17 bit", () => {
    const cases: [string, number, number][] = [
      ["VALID", A.PTE_VALID, 0],
      ["TABLE", A.PTE_TABLE_BIT, 1],
      ["NS", A.PTE_NS, 5],
      ["USER", A.PTE_USER, 6],
      ["RDONLY", A.PTE_RDONLY, 7],
      ["AF", A.PTE_AF, 10],
      ["nG", A.PTE_NG, 11],
      ["PRESENT_INVALID", A.PTE_PRESENT_INVALID, 11],
      ["GP", A.PTE_GP, 50],
      ["DBM", A.PTE_DBM, 51],
      ["WRITE", A.PTE_WRITE, 51],
      ["CONT", A.PTE_CONT, 52],
      ["PXN", A.PTE_PXN, 53],
      ["UXN", A.PTE_UXN, 54],
      ["DIRTY", A.PTE_DIRTY, 55],
      ["SPECIAL", A.PTE_SPECIAL, 56],
      ["bit 57", A.PTE_SW_57, 57],
      ["UFFD_WP", A.PTE_UFFD_WP, 58],
      ["PMD_TABLE_PXN", A.PMD_TABLE_PXN, 59],
      ["PO_IDX_0", A.PTE_PO_IDX_0, 60],
      ["PMD_TABLE_UXN", A.PMD_TABLE_UXN, 60],
      ["PO_IDX_1", A.PTE_PO_IDX_1, 61],
      ["PO_IDX_2", A.PTE_PO_IDX_2, 62],
      ["bit 63", A.PTE_SW_63, 63],
      ["SWP_EXCLUSIVE", A.PTE_SWP_EXCLUSIVE, 2],
      ["SWP_UFFD_WP", A.PTE_SWP_UFFD_WP, 3],
    ];
    for (const [name, v, b] of cases) assert.equal(raw(v), bit(b), name);
    assert.equal(raw(A.PTE_SHARED), 0x300n);
    assert.equal(raw(A.PTE_ATTRINDX_MASK), 0x1cn);
    assert.equal(raw(A.PTE_SWBITS_MASK), bit(63) | 0x0780_0000_0000_0000n); // BIT(63) | GENMASK(58, 55)
    assert.equal(raw(A.PTE_PO_IDX_MASK), 0x7000_0000_0000_0000n);
    for (const [name, b] of Object.entries(A.RAW_BIT)) if (b >= 39 || b < 12) assert.equal(raw(A.packedBit(b)), bit(b), name);
  });

  it("is exact at the edges and rejects the unmodelled bits 39..49", () => {
    assert.equal(raw(Number.MAX_SAFE_INTEGER), 0xfffc_007f_ffff_ffffn);
    assert.equal(A.fromRaw64(0xfffc_007f_ffff_ffffn), Number.MAX_SAFE_INTEGER);
    assert.equal(A.fromRaw64(0n), 0);
    for (let b = 39; b <= 49; b++) {
      assert.throws(() => A.fromRaw64(bit(b)), RangeError, `bit ${b}`);
      assert.throws(() => A.packedBit(b), RangeError);
    }
    assert.throws(() => A.fromRaw64(-1n), RangeError);
    assert.throws(() => A.fromRaw64(1n << 64n), RangeError);
    assert.throws(() => A.toRaw64(2 ** 53), RangeError);
    assert.throws(() => A.toRaw64(-1), RangeError);
  });

  it("bitAnd/bitOr/bitAndNot/bitXor agree with BigInt on packed values", () => {
    const packed = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    fc.assert(
      fc.property(packed, packed, (a, b) => {
        const ra = raw(a);
        const rb = raw(b);
        assert.equal(raw(A.bitAnd(a, b)), ra & rb);
        assert.equal(raw(A.bitOr(a, b)), ra | rb);
        assert.equal(raw(A.bitAndNot(a, b)), ra & ~rb);
        assert.equal(raw(A.bitXor(a, b)), ra ^ rb);
      }),
      { numRuns: 500 },
    );
  });

  it("pteModify and pteWrprotect agree with their definitions through the bit helpers", () => {
    // The definitions: pte_modify() and pte_wrprotect() as mask operations.
    const hwDirty = (v: number) => A.pteWrite(v) && !A.pteRdonly(v);
    const modify = (v: number, prot: number) => {
      if (hwDirty(v)) v = A.bitOr(v, A.PTE_DIRTY);
      v = A.bitOr(A.bitAndNot(v, A.PTE_MODIFY_MASK), A.bitAnd(prot, A.PTE_MODIFY_MASK));
      return A.pteSwDirty(v) && A.pteWrite(v) ? A.bitAndNot(v, A.PTE_RDONLY) : v;
    };
    const wrprotect = (v: number) => A.bitOr(A.bitAndNot(hwDirty(v) ? A.bitOr(v, A.PTE_DIRTY) : v, A.PTE_WRITE), A.PTE_RDONLY);
    // Random descriptors plus ones built from the protections and the bits pte_modify() cares about.
    const prots = [A.PAGE_NONE, A.PAGE_READONLY, A.PAGE_READONLY_EXEC, A.PAGE_EXECONLY, A.PAGE_SHARED, A.PAGE_SHARED_EXEC];
    const flags = [A.PTE_DIRTY, A.PTE_WRITE, A.PTE_RDONLY, A.PTE_AF, A.PTE_CONT, A.PTE_SPECIAL, A.PTE_GP, A.PTE_UFFD_WP];
    const built = fc
      .tuple(fc.constantFrom(...prots), fc.subarray(flags), fc.integer({ min: 0, max: 2 ** 27 - 1 }))
      .map(([p, fs, pfn]) => fs.reduce((v, f) => A.bitOr(v, f), p) + pfn * 4096);
    const desc = fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), built);
    fc.assert(
      fc.property(desc, fc.oneof(fc.constantFrom(...prots), desc), (v, prot) => {
        assert.equal(A.pteModify(v, prot), modify(v, prot));
        assert.equal(A.pteWrprotect(v), wrprotect(v));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("arm64 geometry per granule", () => {
  const MiB = 2 ** 20;
  const GiB = 2 ** 30;
  const expect = {
    4: {
      pageSize: 4096,
      ptrs: 512,
      pmdSize: 2 * MiB,
      contPtes: 16,
      contPteSize: 64 * 1024,
      contPmds: 16,
      contPmdSize: 32 * MiB,
      levels: { 39: 3, 48: 4, 52: 5 },
    },
    16: {
      pageSize: 16384,
      ptrs: 2048,
      pmdSize: 32 * MiB,
      contPtes: 128,
      contPteSize: 2 * MiB,
      contPmds: 32,
      contPmdSize: GiB,
      levels: { 36: 2, 47: 3, 48: 4, 52: 4 },
    },
    64: {
      pageSize: 65536,
      ptrs: 8192,
      pmdSize: 512 * MiB,
      contPtes: 32,
      contPteSize: 2 * MiB,
      contPmds: 32,
      contPmdSize: 16 * GiB,
      levels: { 42: 2, 48: 3, 52: 3 },
    },
  } as const;
  for (const g of GRANULES) {
    it(`${g}K`, () => {
      const e = A.arm64Encoding(g);
      const x = expect[g];
      assert.equal(e.pageSize, x.pageSize);
      assert.equal(e.ptrsPerTable, x.ptrs);
      assert.equal(e.pmdSize, x.pmdSize);
      assert.equal(e.contPtes, x.contPtes);
      assert.equal(e.contPteSize, x.contPteSize);
      assert.equal(e.contPmds, x.contPmds);
      assert.equal(e.contPmdSize, x.contPmdSize);
      assert.equal(e.ptrsPerTable * 8, e.pageSize, "a table is one page of 8-byte entries");
      assert.equal(e.pudSectSupported, g === 4);
      for (const [va, lv] of Object.entries(x.levels)) assert.equal(e.levels(Number(va)), lv, `${va}-bit VA`);
      assert.throws(() => e.levels(40), RangeError);
      assert.equal(e.maxPfn * e.pageSize, 2 ** 39);
    });
  }
});

describe("arm64 protections (v6.17 pgtable-prot.h, mmap.c)", () => {
  it("have the expected images", () => {
    assert.equal(raw(A.PAGE_NONE), 0x0060_0000_0000_0f82n);
    assert.equal(raw(A.PAGE_READONLY), 0x0060_0000_0000_0fc3n);
    assert.equal(raw(A.PAGE_READONLY_EXEC), 0x0020_0000_0000_0fc3n);
    assert.equal(raw(A.PAGE_EXECONLY), 0x0020_0000_0000_0f83n);
    assert.equal(raw(A.PAGE_SHARED), 0x0068_0000_0000_0fc3n);
    assert.equal(raw(A.PAGE_SHARED_EXEC), 0x0028_0000_0000_0fc3n);
    assert.equal(raw(A.PAGE_KERNEL), 0x0068_0000_0000_0703n);
    assert.equal(raw(A.PAGE_KERNEL_RO), 0x0060_0000_0000_0783n);
  });

  it("protection_map, with and without EPAN", () => {
    const { VM_READ: R, VM_WRITE: W, VM_EXEC: X, VM_SHARED: S } = A;
    const table: [number, number, number][] = [
      [0, A.PAGE_NONE, A.PAGE_NONE],
      [R, A.PAGE_READONLY, A.PAGE_READONLY],
      [W, A.PAGE_READONLY, A.PAGE_READONLY],
      [W | R, A.PAGE_READONLY, A.PAGE_READONLY],
      [X, A.PAGE_READONLY_EXEC, A.PAGE_EXECONLY],
      [X | R, A.PAGE_READONLY_EXEC, A.PAGE_READONLY_EXEC],
      [X | W, A.PAGE_READONLY_EXEC, A.PAGE_READONLY_EXEC],
      [X | W | R, A.PAGE_READONLY_EXEC, A.PAGE_READONLY_EXEC],
      [S, A.PAGE_NONE, A.PAGE_NONE],
      [S | R, A.PAGE_READONLY, A.PAGE_READONLY],
      [S | W, A.PAGE_SHARED, A.PAGE_SHARED],
      [S | W | R, A.PAGE_SHARED, A.PAGE_SHARED],
      [S | X, A.PAGE_READONLY_EXEC, A.PAGE_EXECONLY],
      [S | X | R, A.PAGE_READONLY_EXEC, A.PAGE_READONLY_EXEC],
      [S | X | W, A.PAGE_SHARED_EXEC, A.PAGE_SHARED_EXEC],
      [S | X | W | R, A.PAGE_SHARED_EXEC, A.PAGE_SHARED_EXEC],
    ];
    for (const [f, plain, epan] of table) {
      assert.equal(A.vmGetPageProt(f), plain, `flags ${f}`);
      assert.equal(A.vmGetPageProt(f, { epan: true }), epan, `flags ${f} with EPAN`);
    }
    assert.equal(raw(A.vmGetPageProt(R, { bti: true, mte: true })), 0x0064_0000_0000_0fc7n);
  });

  it("PAGE_NONE entries are present, PROT_NONE and not accessible", () => {
    const p = A.arm64Encoding(4).pfnPte(7, A.PAGE_NONE);
    assert.ok(A.ptePresent(p) && !A.pteValid(p) && A.pteProtnone(p) && A.ptePresentInvalid(p));
    assert.equal(A.leafPerm(p), -1);
    // pmd_mkinvalid() of a user entry is present-invalid but not PROT_NONE.
    const inv = A.pteMkinvalid(A.arm64Encoding(4).pfnPte(7, A.PAGE_READONLY));
    assert.ok(A.ptePresent(inv) && !A.pteValid(inv) && !A.pteProtnone(inv));
  });
});

describe("arm64 pfn <-> descriptor, per granule", () => {
  const images: Record<A.Granule, [number, bigint]> = {
    4: [0x12345, 0x0068_0000_1234_5fc3n],
    16: [0x1234, 0x0068_0000_048d_0fc3n],
    64: [0x123, 0x0068_0000_0123_0fc3n],
  };
  for (const g of GRANULES) {
    it(`${g}K`, () => {
      const e = A.arm64Encoding(g);
      const [pfn, image] = images[g];
      const p = e.pfnPte(pfn, A.PAGE_SHARED);
      assert.equal(raw(p), image);
      assert.equal(A.fromRaw64(image), p);
      assert.equal(e.ptePfn(p), pfn);
      assert.equal(e.ptePgprot(p), A.PAGE_SHARED);
      assert.equal(raw(e.pteAdvancePfn(p, 1)), image + BigInt(e.pageSize));
      const top = e.pfnPte(e.maxPfn - 1, 0);
      assert.equal(raw(top), (1n << 39n) - BigInt(e.pageSize));
      assert.throws(() => e.pfnPte(e.maxPfn, 0), RangeError);
      assert.throws(() => e.pfnPte(-1, 0), RangeError);
      assert.throws(() => e.pfnPte(1, e.pageSize), RangeError, "pgprot with OA bits");
      assert.match(e.describeEntry(p), /USER\|RDONLY\|AF\|nG\|WRITE\|PXN\|UXN/);
    });
  }
});

describe("arm64 DBM dirty scheme (kernel-facts A.2, I.2)", () => {
  const e = A.arm64Encoding(4);
  const PFN = 0x12345;
  const cleanRW = e.pfnPte(PFN, A.PAGE_SHARED); // WRITE=1 RDONLY=1
  const cleanRO = e.pfnPte(PFN, A.PAGE_READONLY); // WRITE=0 RDONLY=1
  const dirtyRW = e.hwMkyoungDirty(cleanRW, true); // WRITE=1 RDONLY=0
  const dirtyRO = A.pteWrprotect(dirtyRW); // WRITE=0 RDONLY=1 DIRTY=1

  it("has the four states of the kernel's table", () => {
    assert.equal(raw(cleanRW), 0x0068_0000_1234_5fc3n);
    assert.equal(raw(cleanRO), 0x0060_0000_1234_5fc3n);
    assert.equal(raw(dirtyRW), 0x0068_0000_1234_5f43n);
    assert.equal(raw(dirtyRO), 0x00e0_0000_1234_5fc3n);
    assert.deepEqual([A.pteWrite(cleanRW), A.pteDirty(cleanRW), A.pteRdonly(cleanRW)], [true, false, true], "clean+writable => RDONLY set");
    assert.deepEqual([A.pteWrite(cleanRO), A.pteDirty(cleanRO)], [false, false]);
    assert.deepEqual([A.pteWrite(dirtyRW), A.pteDirty(dirtyRW), A.pteHwDirty(dirtyRW), A.pteSwDirty(dirtyRW)], [true, true, true, false]);
    assert.deepEqual([A.pteWrite(dirtyRO), A.pteDirty(dirtyRO), A.pteHwDirty(dirtyRO), A.pteSwDirty(dirtyRO)], [false, true, false, true]);
  });

  it("wrprotect keeps dirtiness (moves hardware dirty into PTE_DIRTY)", () => {
    assert.ok(A.pteDirty(dirtyRO));
    assert.equal(A.pteWrprotect(cleanRW), cleanRO, "a clean entry stays clean");
    assert.equal(A.pteWrprotect(dirtyRO), dirtyRO, "idempotent");
  });

  it("mkdirty never grants write", () => {
    const d = A.pteMkdirty(cleanRO);
    assert.equal(raw(d), 0x00e0_0000_1234_5fc3n, "DIRTY set, RDONLY kept");
    assert.ok(A.pteDirty(d) && !A.pteWrite(d) && !e.hwWritable(d));
    assert.equal(e.leafPerm(d), TLB_U, "no TLB_W, no TLB_X");
    // On a writable entry it also clears RDONLY, making it hardware-dirty.
    const dw = A.pteMkdirty(cleanRW);
    assert.equal(raw(dw), 0x00e8_0000_1234_5f43n);
  });

  it("mkclean sets RDONLY and clears PTE_DIRTY", () => {
    assert.equal(A.pteMkclean(dirtyRW), cleanRW);
    assert.equal(A.pteMkclean(dirtyRO), cleanRO);
  });

  it("mkwrite: v6.17 clears RDONLY unconditionally; the later variant keeps clean entries clean", () => {
    const w = A.pteMkwrite(cleanRO);
    assert.equal(raw(w), 0x0068_0000_1234_5f43n);
    assert.ok(A.pteWrite(w) && A.pteDirty(w), "v6.17: mkwrite of a clean entry makes it hardware-dirty");
    const k = A.pteMkwriteKeepClean(cleanRO);
    assert.equal(k, cleanRW);
    assert.ok(A.pteWrite(k) && !A.pteDirty(k));
    assert.equal(A.pteMkwriteKeepClean(dirtyRO), A.bitOr(A.bitAndNot(dirtyRO, A.PTE_RDONLY), A.PTE_WRITE), "sw-dirty: RDONLY cleared");
    assert.equal(A.arm64Encoding(4).pteMkwrite, A.pteMkwrite);
    assert.equal(A.arm64Encoding(4, { mkwriteKeepsClean: true }).pteMkwrite, A.pteMkwriteKeepClean);
  });

  it("pte_modify keeps dirtiness across a round trip through a read-only prot", () => {
    const ro = A.pteModify(dirtyRW, A.PAGE_READONLY);
    assert.equal(raw(ro), 0x00e0_0000_1234_5fc3n);
    const back = A.pteModify(ro, A.PAGE_SHARED);
    assert.equal(raw(back), 0x00e8_0000_1234_5f43n, "sw-dirty + writable => hardware dirty again");
    assert.equal(A.pteModify(cleanRW, A.PAGE_READONLY), cleanRO);
    // AF, CONT, SPECIAL, SH are kept; nG (PRESENT_INVALID) and VALID come from newprot.
    const x = A.pteMkspecial(A.pteMkcont(A.pteMkold(cleanRW)));
    const none = A.pteModify(x, A.PAGE_NONE);
    assert.ok(A.pteProtnone(none) && A.pteCont(none) && A.pteSpecial(none) && !A.pteYoung(none));
    assert.equal(A.pteModify(none, A.PAGE_SHARED), x);
  });

  it("hardware view: DBM makes a clean writable entry writable without a fault", () => {
    assert.equal(e.leafPerm(cleanRW), TLB_U | TLB_W);
    assert.equal(e.leafPerm(dirtyRW), TLB_U | TLB_W | TLB_D);
    assert.equal(e.leafPerm(e.pfnPte(1, A.PAGE_SHARED_EXEC)), TLB_U | TLB_W | TLB_X);
    assert.equal(e.leafPerm(e.pfnPte(1, A.PAGE_EXECONLY)), -1, "exec-only: no EL0 data access");
    const noDbm = A.arm64Encoding(4, { hwDbm: false });
    assert.equal(noDbm.leafPerm(cleanRW), TLB_U, "without hardware DBM a write faults");
    assert.equal(noDbm.hwMkyoungDirty(cleanRW, true), cleanRW);
    const noAf = A.arm64Encoding(4, { hwAf: false });
    assert.equal(noAf.leafPerm(A.pteMkold(cleanRW)), -1, "access-flag fault");
    assert.equal(e.hwMkyoungDirty(A.pteMkold(cleanRO), true), cleanRO, "write to a non-DBM entry only sets AF");
  });

  it("batch normalisation ignores AF, and dirty/write unless respected", () => {
    const swDirtyOld = A.pteMkold(dirtyRO);
    assert.equal(A.pteBatchNorm(dirtyRW, true, false), A.pteBatchNorm(swDirtyOld, true, false), "hw-dirty == sw-dirty once write is ignored");
    assert.equal(A.pteBatchNorm(dirtyRW, false, false), A.pteMkold(cleanRO));
    assert.notEqual(A.pteBatchNorm(dirtyRW, false, true), A.pteBatchNorm(cleanRO, false, true));
  });
});

describe("arm64 contiguous bit", () => {
  const e = A.arm64Encoding(16);
  it("sets and clears bit 52", () => {
    const p = e.pfnPte(0x80, A.PAGE_READONLY);
    const c = A.pteMkcont(p);
    assert.equal(raw(c) - raw(p), bit(52));
    assert.ok(A.pteCont(c) && A.pteValidCont(c));
    assert.ok(!A.pteValidCont(A.pteMkcont(e.pfnPte(0x80, A.PAGE_NONE))), "present-invalid is not valid-cont");
    assert.equal(A.pteMknoncont(c), p);
    assert.equal(A.pteMkcont(c), c);
    assert.ok(A.pteCont(A.pteWrprotect(A.pteMkdirty(c))), "a/d and write helpers keep CONT");
  });
});

describe("arm64 swap entries", () => {
  it("have the v6.17 layout", () => {
    const s = A.mkSwapEntry(3, 0x1234);
    assert.equal(raw(s), (3n << 6n) | (0x1234n << 12n));
    assert.equal(A.swpType(s), 3);
    assert.equal(A.swpOffset(s), 0x1234);
    assert.ok(A.isSwapPte(s) && !A.ptePresent(s) && !A.pteNone(s));
    const x = A.pteSwpMkexclusive(s);
    assert.equal(raw(x) - raw(s), bit(2));
    assert.ok(A.pteSwpExclusive(x) && !A.pteSwpExclusive(s));
    assert.equal(A.pteSwpClearExclusive(x), s);
    assert.equal(A.swpType(x), 3);
    assert.equal(A.swpOffset(x), 0x1234);
    const u = A.pteSwpMkuffdWp(x);
    assert.equal(raw(u) - raw(x), bit(3));
    assert.ok(A.pteSwpUffdWp(u) && A.pteSwpExclusive(u));
    assert.equal(A.pteSwpClearUffdWp(u), x);
    assert.equal(A.swpType(A.mkSwapEntry(31, 1)), 31);
    assert.equal(A.swpOffset(A.mkSwapEntry(0, A.SWP_OFFSET_LIMIT - 1)), 2 ** 27 - 1);
  });
  it("reject what the model cannot hold, and read the kernel's 50-bit offset field", () => {
    assert.throws(() => A.mkSwapEntry(32, 1), RangeError);
    assert.throws(() => A.mkSwapEntry(0, 2 ** 27), RangeError);
    assert.throws(() => A.fromRaw64(BigInt(2 ** 27) << 12n), RangeError, "offset bit 27 lands on unmodelled bit 39");
    assert.equal(A.swpOffset(A.fromRaw64((1n << 61n) | (5n << 12n))), 2 ** 49 + 5);
  });
});

describe("arm64 table and block descriptors", () => {
  for (const g of GRANULES) {
    it(`${g}K`, () => {
      const e = A.arm64Encoding(g);
      const shift = BigInt(e.pageShift);
      const t = e.mkTableEntry(0x55);
      assert.equal(raw(t), (0x55n << shift) | 0x3n | bit(10) | bit(59), "pmd_populate: TABLE | TABLE_AF | PXNTable");
      assert.equal(raw(e.mkTableEntry(0x55, true)), (0x55n << shift) | 0x3n | bit(10) | bit(60), "kernel: UXNTable");
      assert.ok(A.entryIsTable(t) && !A.entryIsLeaf(t) && !A.pmdBad(t));
      assert.equal(e.ptePfn(t), 0x55);

      const pmdPages = e.pmdSize / e.pageSize;
      const pfn = 3 * pmdPages;
      const blk = A.pmdMkhuge(e.pfnPmd(pfn, A.PAGE_READONLY));
      assert.equal(raw(blk), (BigInt(pfn) << shift) | 0x0060_0000_0000_0fc1n, "block: bit 1 clear");
      assert.ok(A.entryIsLeaf(blk) && !A.entryIsTable(blk) && A.pmdBad(blk) && A.pmdSect(blk) && A.pmdTransHuge(blk));
      const inv = A.pmdMkinvalid(blk);
      assert.ok(A.entryIsLeaf(inv) && A.pmdTransHuge(inv) && A.ptePresent(inv) && !A.pteValid(inv));
      assert.equal(A.pmdMkhuge(inv), inv, "mkhuge keeps present-invalid");
      assert.equal(e.pmdPfn(blk), pfn);

      const sub = e.pmdLeafToPte(A.pteMkcont(A.pteMkdirty(blk)), 5);
      assert.equal(e.ptePfn(sub), pfn + 5);
      assert.ok((sub & A.PTE_TABLE_BIT) !== 0 && !A.pteCont(sub) && A.pteDirty(sub) && !A.pteWrite(sub));
      assert.equal(e.ptePgprot(sub), A.pteMkdirty(A.PAGE_READONLY));
    });
  }
});

describe("pgattr_change_is_safe (v6.17 arch/arm64/mm/mmu.c)", () => {
  const e = A.arm64Encoding(4);
  const k = e.pfnPte(0x100, A.PAGE_KERNEL);
  const u = e.pfnPte(0x100, A.PAGE_READONLY);
  const safe = A.pgattrChangeIsSafe;
  it("creating or removing a mapping is always safe", () => {
    assert.ok(safe(0, k) && safe(k, 0));
    assert.ok(safe(A.pteMkcont(k) - 1, e.pfnPte(0x999, A.PAGE_KERNEL)), "old invalid");
    assert.ok(safe(k, A.pteMkinvalid(A.pteMkcont(k))), "new invalid");
  });
  it("permission-only changes are safe", () => {
    assert.ok(safe(k, e.pfnPte(0x100, A.PAGE_KERNEL_RO)), "RW -> RO (WRITE, RDONLY)");
    assert.ok(safe(e.pfnPte(0x100, A.PAGE_KERNEL_RO), e.pfnPte(0x100, A.PAGE_KERNEL_ROX)), "PXN");
    assert.ok(safe(k, k + A.PTE_NG), "global -> nG");
    assert.ok(safe(u, A.pteMkspecial(A.pteMkdirty(u + A.PTE_UFFD_WP))), "software bits");
    assert.ok(safe(u, u + A.pteAttrindx(A.MT_NORMAL_TAGGED)), "Normal <-> Normal-Tagged");
  });
  it("everything else needs break-before-make", () => {
    assert.ok(!safe(k + A.PTE_NG, k), "nG -> global");
    assert.ok(!safe(k, e.pfnPte(0x101, A.PAGE_KERNEL)), "output address");
    assert.ok(!safe(A.pteMkcont(k), A.pteMkcont(k)), "live contiguous mappings may not be touched at all");
    assert.ok(!safe(k, A.pteMkcont(k)) && !safe(A.pteMkcont(k), k), "CONT in either side");
    assert.ok(!safe(u, A.pteMkold(u)), "AF");
    assert.ok(!safe(e.pfnPte(0x100, A.PAGE_READONLY_EXEC), u), "UXN");
    assert.ok(!safe(u, u - A.PTE_USER), "USER");
    assert.ok(!safe(u, u + A.pteAttrindx(A.MT_NORMAL_NC)), "Normal -> Normal-NC");
    assert.ok(!safe(u, u + A.PTE_GP), "GP");
  });
  it("__check_safe_pte_update warnings", () => {
    const w = e.pfnPte(0x100, A.PAGE_SHARED);
    assert.deepEqual(A.checkSafePteUpdate(u, A.pteMkdirty(u)), []);
    // A plain store over a writable entry could lose a hardware DBM update
    // (the kernel uses cmpxchg in ptep_set_wrprotect for that reason).
    assert.deepEqual(A.checkSafePteUpdate(w, A.pteWrprotect(w)), ["racy dirty state clearing"]);
    assert.deepEqual(A.checkSafePteUpdate(e.hwMkyoungDirty(w, true), A.pteMkclean(w)), ["racy dirty state clearing"]);
    assert.deepEqual(A.checkSafePteUpdate(u, A.pteMkold(u)), ["racy access flag clearing", "unsafe attribute change"]);
    assert.deepEqual(A.checkSafePteUpdate(0, A.pteMkold(w)), []);
  });
});
