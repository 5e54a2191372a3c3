// Property tests of the PTE helper identities mm/debug_vm_pgtable.c checks at
// boot (kernel-facts.md I.3), plus "dirty never implies writable" (I.2,
// selftests/mm/mkdirty.c), on the arm64 encoding (4K/16K/64K) and on x86-64.
//
// PTEs are not random bit patterns: each one starts as pfn_pte(pfn,
// vm_get_page_prot(flags)) and then goes through a random sequence of the
// helpers the kernel applies (mkwrite, wrprotect, mkdirty, mkclean, mkyoung,
// mkold, mkspecial, pte_modify, hardware A/D updates, ...), so only entries the
// kernel could build are tested. Raw-bit round trips of toRaw64/fromRaw64 are
// tested separately over all representable bit patterns.
//
// The properties can fail: the last suite runs the same property code on
// deliberately broken helpers (a naive arm64 mkdirty that clears RDONLY
// unconditionally, a wrprotect that drops hardware dirtiness, an x86 mkdirty
// that sets RW) and asserts fast-check finds a counterexample.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import * as A from "../src/core/arch/arm64/pgtable.js";
import * as X from "../src/core/arch/x86/pgtable.js";

const RUNS = { numRuns: 300 };

// One encoding under test, seen through the kernel helper names.
interface Enc {
  name: string;
  maxPfn: number;
  pmdPages: number;
  vmProt(flags: number): number;
  pfnPte(pfn: number, prot: number): number;
  ptePfn(v: number): number;
  ptePgprot(v: number): number;
  present(v: number): boolean;
  valid(v: number): boolean; // present and hardware-valid
  protnone(v: number): boolean;
  write(v: number): boolean;
  dirty(v: number): boolean;
  young(v: number): boolean;
  mkwrite(v: number): number;
  wrprotect(v: number): number;
  mkdirty(v: number): number;
  mkclean(v: number): number;
  mkyoung(v: number): number;
  mkold(v: number): number;
  mkspecial(v: number): number;
  modify(v: number, prot: number): number;
  // Hardware: can a user write go through without a fault, and the A/D update it makes.
  hwWritable(v: number): boolean;
  hwAccess(v: number, write: boolean): number;
  mkhuge(v: number): number;
  isTable(v: number): boolean;
  isLeaf(v: number): boolean;
  toRaw64(v: number): bigint;
  fromRaw64(b: bigint): number;
  extraOps: Record<string, (v: number) => number>;
}

function arm64Enc(g: A.Granule, opts: A.Arm64Options = {}, label = ""): Enc {
  const e = A.arm64Encoding(g, opts);
  return {
    name: `arm64 ${g}K${label}`,
    maxPfn: e.maxPfn,
    pmdPages: e.pmdSize / e.pageSize,
    vmProt: e.vmGetPageProt,
    pfnPte: e.pfnPte,
    ptePfn: e.ptePfn,
    ptePgprot: e.ptePgprot,
    present: A.ptePresent,
    valid: A.pteValid,
    protnone: A.pteProtnone,
    write: A.pteWrite,
    dirty: A.pteDirty,
    young: A.pteYoung,
    mkwrite: e.pteMkwrite,
    wrprotect: A.pteWrprotect,
    mkdirty: A.pteMkdirty,
    mkclean: A.pteMkclean,
    mkyoung: A.pteMkyoung,
    mkold: A.pteMkold,
    mkspecial: A.pteMkspecial,
    modify: A.pteModify,
    hwWritable: e.hwWritable,
    hwAccess: e.hwMkyoungDirty,
    mkhuge: A.pmdMkhuge,
    isTable: A.entryIsTable,
    isLeaf: A.entryIsLeaf,
    toRaw64: A.toRaw64,
    fromRaw64: A.fromRaw64,
    extraOps: { mkcont: A.pteMkcont, mknoncont: A.pteMknoncont, mkuffdWp: A.pteMkuffdWp, clearUffdWp: A.pteClearUffdWp },
  };
}

// x86 has no fromRaw64; its packing moves bit 63 (NX) to bit 52.
function x86FromRaw64(b: bigint): number {
  const nx = (b >> 63n) & 1n;
  const low = b & ((1n << 52n) - 1n);
  if ((b & ~((1n << 52n) - 1n) & ~(1n << 63n)) !== 0n) throw new RangeError("bits 52..62 are not modelled on x86");
  return Number(low) + (nx === 1n ? X.NX : 0);
}

const x86: Enc = {
  name: "x86-64",
  maxPfn: 2 ** 40, // PFN field bits 12..51
  pmdPages: 512,
  vmProt: X.vmGetPageProt,
  pfnPte: X.pfnPte,
  ptePfn: X.ptePfn,
  ptePgprot: X.ptePgprot,
  present: X.ptePresent,
  valid: X.pteHwPresent,
  protnone: X.pteProtnone,
  write: X.pteWrite,
  dirty: X.pteDirty,
  young: X.pteYoung,
  mkwrite: X.pteMkwrite,
  wrprotect: X.pteWrprotect,
  mkdirty: X.pteMkdirty,
  mkclean: X.pteMkclean,
  mkyoung: X.pteMkyoung,
  mkold: X.pteMkold,
  mkspecial: X.pteMkspecial,
  modify: X.pteModify,
  // x86 hardware: present, user and RW; the access sets A, a write sets D.
  hwWritable: (v) => (v & (X._PAGE_PRESENT | X._PAGE_USER | X._PAGE_RW)) === (X._PAGE_PRESENT | X._PAGE_USER | X._PAGE_RW),
  hwAccess: (v, write) => {
    const n = X.pteMkyoung(v);
    return write && (n & X._PAGE_DIRTY) === 0 ? n + X._PAGE_DIRTY : n;
  },
  mkhuge: X.pteMkhuge,
  isTable: X.entryIsTable,
  isLeaf: X.entryIsLeaf,
  toRaw64: X.toRaw64,
  fromRaw64: x86FromRaw64,
  extraOps: {},
};

const ENCODINGS: Enc[] = [arm64Enc(4), arm64Enc(16), arm64Enc(64), arm64Enc(4, { mkwriteKeepsClean: true }, " (post-v6.17 mkwrite)"), x86];

// --- Generators -------------------------------------------------------------

type Op = { op: string; flags: number };
const VM_FLAGS = fc.integer({ min: 0, max: 15 }); // VM_READ|VM_WRITE|VM_EXEC|VM_SHARED

function opArb(enc: Enc): fc.Arbitrary<Op> {
  const names = ["mkwrite", "wrprotect", "mkdirty", "mkclean", "mkyoung", "mkold", "mkspecial", "modify", "hwRead", "hwWrite", ...Object.keys(enc.extraOps)];
  return fc.record({ op: fc.constantFrom(...names), flags: VM_FLAGS });
}

function applyOp(enc: Enc, v: number, o: Op): number {
  switch (o.op) {
    case "mkwrite":
      return enc.mkwrite(v);
    case "wrprotect":
      return enc.wrprotect(v);
    case "mkdirty":
      return enc.mkdirty(v);
    case "mkclean":
      return enc.mkclean(v);
    case "mkyoung":
      return enc.mkyoung(v);
    case "mkold":
      return enc.mkold(v);
    case "mkspecial":
      return enc.mkspecial(v);
    case "modify":
      return enc.modify(v, enc.vmProt(o.flags));
    case "hwRead":
      return enc.valid(v) ? enc.hwAccess(v, false) : v;
    case "hwWrite":
      return enc.hwWritable(v) ? enc.hwAccess(v, true) : v; // a faulting write changes nothing
    default: {
      const f = enc.extraOps[o.op];
      assert.ok(f, `unknown op ${o.op}`);
      return f(v);
    }
  }
}

interface Gen {
  pfn: number;
  flags: number;
  ops: Op[];
}
function genArb(enc: Enc): fc.Arbitrary<Gen> {
  return fc.record({
    pfn: fc.oneof(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: enc.maxPfn - 1 })),
    flags: VM_FLAGS,
    ops: fc.array(opArb(enc), { maxLength: 10 }),
  });
}
function build(enc: Enc, g: Gen): number {
  let v = enc.pfnPte(g.pfn, enc.vmProt(g.flags));
  for (const o of g.ops) v = applyOp(enc, v, o);
  return v;
}
/** A reachable PTE plus a second protection, for pte_modify and friends. */
function pteArb(enc: Enc) {
  return genArb(enc).map((g) => ({ g, v: build(enc, g) }));
}

// --- Properties, written once, run on real and (below) broken helpers --------

/** mkdirty.c: dirtying a present, non-writable entry must not make it writable, logically or in hardware. */
function propDirtyNeverWritable(enc: Enc, mkdirty: (v: number) => number) {
  return fc.property(pteArb(enc), ({ v }) => {
    if (!enc.present(v) || enc.write(v)) return true;
    const d = mkdirty(v);
    return !enc.write(d) && !enc.hwWritable(d);
  });
}
/** wrprotect never loses dirtiness (nor invents it). */
function propWrprotectKeepsDirty(enc: Enc, wrprotect: (v: number) => number) {
  return fc.property(pteArb(enc), ({ v }) => enc.dirty(wrprotect(v)) === enc.dirty(v));
}

for (const enc of ENCODINGS) {
  describe(`debug_vm_pgtable identities: ${enc.name}`, () => {
    it("pte_basic_tests on fresh entries for every vm_flags combination", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: enc.maxPfn - 1 }), VM_FLAGS, (pfn, flags) => {
          const p = enc.pfnPte(pfn, enc.vmProt(flags));
          assert.ok(!enc.dirty(enc.wrprotect(p)), "fresh entries are clean");
          // pte_same(pte, pte) compares an entry with itself, which a number
          // always passes; what it relies on is that an entry is its pfn and
          // pgprot: rebuilt from them, and through the raw 64-bit layout, it
          // is the same entry.
          assert.equal(enc.pfnPte(enc.ptePfn(p), enc.ptePgprot(p)), p);
          assert.equal(enc.fromRaw64(enc.toRaw64(p)), p);
          assert.ok(enc.young(enc.mkyoung(enc.mkold(p))));
          assert.ok(enc.dirty(enc.mkdirty(enc.mkclean(p))));
          assert.ok(enc.write(enc.mkwrite(enc.wrprotect(p))));
          assert.ok(!enc.young(enc.mkold(enc.mkyoung(p))));
          assert.ok(!enc.dirty(enc.mkclean(enc.mkdirty(p))));
          assert.ok(!enc.write(enc.wrprotect(enc.mkwrite(p))));
          assert.ok(!enc.dirty(enc.wrprotect(enc.mkclean(p))));
          assert.ok(enc.dirty(enc.wrprotect(enc.mkdirty(p))));
        }),
        RUNS,
      );
    });

    it("the same identities on any reachable entry", () => {
      fc.assert(
        fc.property(pteArb(enc), ({ v }) => {
          assert.ok(enc.write(enc.mkwrite(v)));
          assert.ok(!enc.write(enc.wrprotect(v)));
          assert.ok(enc.dirty(enc.mkdirty(v)));
          assert.ok(!enc.dirty(enc.mkclean(v)));
          assert.ok(enc.young(enc.mkyoung(v)));
          assert.ok(!enc.young(enc.mkold(v)));
          assert.ok(enc.young(enc.mkyoung(enc.mkold(v))));
          assert.ok(enc.dirty(enc.mkdirty(enc.mkclean(v))));
          assert.ok(!enc.dirty(enc.mkclean(enc.mkdirty(v))));
          assert.ok(enc.write(enc.mkwrite(enc.wrprotect(v))));
          assert.ok(!enc.write(enc.wrprotect(enc.mkwrite(v))));
          assert.ok(!enc.dirty(enc.wrprotect(enc.mkclean(v))));
          assert.ok(enc.dirty(enc.wrprotect(enc.mkdirty(v))));
          // The a/d helpers leave write alone, the write helpers leave young alone.
          assert.equal(enc.write(enc.mkdirty(v)), enc.write(v));
          assert.equal(enc.write(enc.mkclean(v)), enc.write(v));
          assert.equal(enc.write(enc.mkold(v)), enc.write(v));
          assert.equal(enc.young(enc.wrprotect(v)), enc.young(v));
          assert.equal(enc.young(enc.mkwrite(v)), enc.young(v));
        }),
        RUNS,
      );
    });

    it("dirty never implies writable (mkdirty.c)", () => {
      fc.assert(propDirtyNeverWritable(enc, enc.mkdirty), RUNS);
    });

    it("wrprotect keeps dirtiness: pte_dirty(pte_wrprotect(p)) == pte_dirty(p)", () => {
      fc.assert(propWrprotectKeepsDirty(enc, enc.wrprotect), RUNS);
    });

    it("reachable entries are never hardware-writable without pte_write", () => {
      fc.assert(
        fc.property(pteArb(enc), ({ v }) => !enc.hwWritable(v) || enc.write(v)),
        RUNS,
      );
    });

    it("pfn and pgprot round trips; every helper keeps the pfn", () => {
      fc.assert(
        fc.property(pteArb(enc), opArb(enc), ({ g, v }, o) => {
          assert.equal(enc.ptePfn(v), g.pfn);
          assert.equal(enc.pfnPte(enc.ptePfn(v), enc.ptePgprot(v)), v);
          assert.equal(enc.ptePfn(applyOp(enc, v, o)), g.pfn);
          assert.equal(enc.ptePgprot(enc.pfnPte(0, enc.vmProt(g.flags))), enc.vmProt(g.flags));
        }),
        RUNS,
      );
    });

    it("pte_modify keeps pfn, young and dirty and takes write and presence from the new prot", () => {
      fc.assert(
        fc.property(pteArb(enc), VM_FLAGS, ({ v }, nf) => {
          const prot = enc.vmProt(nf);
          const m = enc.modify(v, prot);
          const fresh = enc.pfnPte(0, prot);
          assert.equal(enc.ptePfn(m), enc.ptePfn(v));
          assert.equal(enc.young(m), enc.young(v));
          assert.equal(enc.dirty(m), enc.dirty(v));
          assert.equal(enc.write(m), enc.write(fresh));
          assert.equal(enc.present(m), enc.present(fresh));
          assert.equal(enc.valid(m), enc.valid(fresh));
          assert.equal(enc.protnone(m), enc.protnone(fresh));
        }),
        RUNS,
      );
    });

    it("PROT_NONE entries are present and protnone; the others are not protnone", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: enc.maxPfn - 1 }), VM_FLAGS, (pfn, flags) => {
          const p = enc.pfnPte(pfn, enc.vmProt(flags));
          const none = (flags & 7) === 0;
          assert.ok(enc.present(p));
          assert.equal(enc.protnone(p), none);
          assert.equal(enc.valid(p), !none);
          if (none) assert.ok(!enc.hwWritable(enc.mkdirty(enc.mkwrite(p))), "PROT_NONE is never hardware-accessible");
        }),
        RUNS,
      );
    });

    it("a huge (block) entry is a leaf and pmd_bad, never a table", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: Math.floor(enc.maxPfn / enc.pmdPages) - 1 }), VM_FLAGS, (n, flags) => {
          const h = enc.mkhuge(enc.pfnPte(n * enc.pmdPages, enc.vmProt(flags)));
          assert.ok(enc.isLeaf(h));
          assert.ok(!enc.isTable(h));
          assert.equal(enc.ptePfn(h), n * enc.pmdPages);
        }),
        RUNS,
      );
    });

    it("toRaw64 round-trips reachable entries", () => {
      fc.assert(
        fc.property(pteArb(enc), ({ v }) => enc.fromRaw64(enc.toRaw64(v)) === v),
        RUNS,
      );
    });
  });
}

describe("arm64-only identities", () => {
  for (const g of [4, 16, 64] as const) {
    const e = A.arm64Encoding(g);
    const enc = arm64Enc(g);
    it(`${g}K: swap entries round-trip, with and without the exclusive and uffd-wp bits`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 31 }),
          fc.integer({ min: 1, max: A.SWP_OFFSET_LIMIT - 1 }),
          fc.boolean(),
          fc.boolean(),
          (type, offset, excl, uffd) => {
            let s = A.mkSwapEntry(type, offset);
            if (excl) s = A.pteSwpMkexclusive(s);
            if (uffd) s = A.pteSwpMkuffdWp(s);
            assert.equal(A.swpType(s), type);
            assert.equal(A.swpOffset(s), offset);
            assert.equal(A.pteSwpExclusive(s), excl);
            assert.equal(A.pteSwpUffdWp(s), uffd);
            assert.ok(A.isSwapPte(s) && !A.ptePresent(s) && !A.pteNone(s));
            assert.ok(!A.pteSwpExclusive(A.pteSwpClearExclusive(s)));
            assert.ok(A.pteSwpExclusive(A.pteSwpMkexclusive(s)));
            assert.equal(A.pteSwpClearExclusive(A.pteSwpMkexclusive(s)), A.pteSwpClearExclusive(s));
            assert.equal(A.fromRaw64(A.toRaw64(s)), s);
          },
        ),
        RUNS,
      );
    });

    it(`${g}K: pmd_mkinvalid keeps trans_huge, present and leaf`, () => {
      fc.assert(
        fc.property(pteArb(enc), ({ v }) => {
          if (!A.pteValid(v)) return true;
          const blk = A.pmdMkhuge(v);
          const inv = A.pmdMkinvalid(blk);
          return A.pmdTransHuge(inv) && A.ptePresent(inv) && A.entryIsLeaf(inv) && !A.pteValid(inv) && e.ptePfn(inv) === e.ptePfn(v);
        }),
        RUNS,
      );
    });

    it(`${g}K: contiguous bit is independent of the a/d/write helpers`, () => {
      fc.assert(
        fc.property(pteArb(enc), opArb(enc), ({ v }, o) => {
          if (o.op === "mkcont" || o.op === "mknoncont") return true;
          return A.pteCont(applyOp(enc, v, o)) === A.pteCont(v);
        }),
        RUNS,
      );
    });
  }

  it("hardware-dirty and software-dirty entries differ only in the bits pte_wrprotect reconciles", () => {
    const e = A.arm64Encoding(4);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: e.maxPfn - 1 }), fc.boolean(), (pfn, exec) => {
        const w = e.pfnPte(pfn, A.vmGetPageProt(A.VM_READ | A.VM_WRITE | A.VM_SHARED | (exec ? A.VM_EXEC : 0)));
        const hw = e.hwMkyoungDirty(w, true);
        const sw = A.pteMkdirty(w);
        assert.ok(A.pteHwDirty(hw) && !A.pteSwDirty(hw) && A.pteSwDirty(sw));
        assert.equal(A.pteWrprotect(hw), A.pteWrprotect(sw));
      }),
      RUNS,
    );
  });

  it("pgattr_change_is_safe accepts every a/d/permission helper on non-contiguous entries and rejects any CONT", () => {
    const enc = arm64Enc(4);
    const helpers = [A.pteWrprotect, A.pteMkdirty, A.pteMkclean, A.pteMkwrite, A.pteMkspecial];
    fc.assert(
      fc.property(pteArb(enc), fc.constantFrom(...helpers), ({ v }, h) => {
        const n = h(v);
        if (A.pteCont(v)) return !A.pteValid(v) || !A.pteValid(n) || !A.pgattrChangeIsSafe(v, n);
        return A.pgattrChangeIsSafe(v, n);
      }),
      RUNS,
    );
  });
});

describe("raw-bit round trips", () => {
  const modelled = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((b) => b & ~A.UNMODELLED_RAW_MASK);
  it("arm64: fromRaw64 then toRaw64 is the identity on every representable descriptor", () => {
    fc.assert(
      fc.property(modelled, (b) => A.toRaw64(A.fromRaw64(b)) === b),
      { numRuns: 1000 },
    );
  });
  it("arm64: toRaw64 then fromRaw64 is the identity on every packed value", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (v) => A.fromRaw64(A.toRaw64(v)) === v),
      { numRuns: 1000 },
    );
  });
  it("arm64: a descriptor using any of bits 39..49 is rejected", () => {
    fc.assert(
      fc.property(modelled, fc.integer({ min: 39, max: 49 }), (b, k) => {
        assert.throws(() => A.fromRaw64(b | (1n << BigInt(k))), RangeError);
      }),
      { numRuns: 200 },
    );
  });
  it("arm64: flag predicates read the real bit positions", () => {
    fc.assert(
      fc.property(modelled, (b) => {
        const v = A.fromRaw64(b);
        const at = (k: number) => ((b >> BigInt(k)) & 1n) === 1n;
        assert.equal(A.pteValid(v), at(0));
        assert.equal(A.pteWrite(v), at(51));
        assert.equal(A.pteCont(v), at(52));
        assert.equal(A.pteKernelExec(v), !at(53));
        assert.equal(A.pteUserExec(v), !at(54));
        assert.equal(A.pteSwDirty(v), at(55));
        assert.equal(A.pteSpecial(v), at(56));
        assert.equal(A.pteUffdWp(v), at(58));
        assert.equal(A.pteYoung(v), at(10));
        assert.equal(A.pteHwDirty(v), at(51) && !at(7));
        assert.equal(A.ptePresent(v), at(0) || at(11));
        assert.equal(A.swpType(v), Number((b >> 6n) & 31n));
        assert.equal(A.swpOffset(v), Number((b >> 12n) & ((1n << 50n) - 1n)));
        for (const g of [4, 16, 64] as const) {
          const e = A.arm64Encoding(g);
          assert.equal(e.ptePfn(v), Number((b & ((1n << 50n) - 1n)) >> BigInt(e.pageShift)), `${g}K pfn`);
        }
      }),
      { numRuns: 1000 },
    );
  });
  it("x86: toRaw64 is inverted by moving bit 63 back to bit 52", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (v) => x86FromRaw64(X.toRaw64(v)) === v),
      { numRuns: 1000 },
    );
  });
});

describe("the properties can fail (self-check on broken helpers)", () => {
  const arm = arm64Enc(4);
  it("a naive arm64 mkdirty that clears RDONLY unconditionally grants hardware write", () => {
    const naive = (v: number) => A.bitAndNot(A.bitOr(v, A.PTE_DIRTY), A.PTE_RDONLY);
    const r = fc.check(propDirtyNeverWritable(arm, naive), RUNS);
    assert.ok(r.failed, "fast-check must find a read-only entry that the naive mkdirty makes writable");
  });
  it("an arm64 wrprotect that forgets hardware dirtiness loses dirty state", () => {
    const lossy = (v: number) => A.bitOr(A.bitAndNot(v, A.PTE_WRITE), A.PTE_RDONLY);
    const r = fc.check(propWrprotectKeepsDirty(arm, lossy), RUNS);
    assert.ok(r.failed, "fast-check must find a hardware-dirty entry");
  });
  it("an x86 mkdirty that also sets RW is caught", () => {
    const bad = (v: number) => X.pteMkwrite(X.pteMkdirty(v));
    const r = fc.check(propDirtyNeverWritable(x86, bad), RUNS);
    assert.ok(r.failed);
  });
});
