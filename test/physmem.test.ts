// PhysMem's per-frame folio->index: 48 bits in two arrays (a Uint32Array
// and a Uint16Array instead of a Float64Array). An anon folio's index is
// its address over the page size, above 2^32 for addresses above 16 TiB
// with 4K pages; the split must give back every value a VA can make.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PhysMem } from "../src/core/mm/physmem.js";

describe("folio->index storage", () => {
  it("round-trips indexes below and above 2^32, up to 2^48 - 1", () => {
    const p = new PhysMem();
    const pfn = p.alloc(0);
    // 0x7fff_ffff_f000 >> 12 (x86-64 4-level top), 2^45 - 1 (LA57 top), a file offset, 0.
    for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, 0x7ffffffff, 2 ** 45 - 1, 2 ** 48 - 1, 123456789012]) {
      p.setIndex(pfn, v);
      assert.equal(p.index(pfn), v);
    }
  });

  it("refuses what no VA or file offset gives, as a model bug", () => {
    const p = new PhysMem();
    const pfn = p.alloc(0);
    for (const v of [-1, 2 ** 48, 0.5, Number.NaN]) assert.throws(() => p.setIndex(pfn, v), /model bug: folio index/);
  });

  it("keeps each frame's index through growth", () => {
    const p = new PhysMem();
    const pfns: number[] = [];
    for (let k = 0; k < 40000; k++) {
      const pfn = p.alloc(0);
      p.setIndex(pfn, 2 ** 40 + k);
      pfns.push(pfn);
    }
    assert.ok(p.cap >= 40000);
    for (let k = 0; k < pfns.length; k++) assert.equal(p.index(pfns[k] as number), 2 ** 40 + k);
  });
});
