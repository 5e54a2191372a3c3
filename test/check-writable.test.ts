// Invariant 6 (checkWritableInVma(), src/core/check.ts) walks the page
// tables under each VMA without VM_WRITE once per table: a writable entry is
// reported wherever it sits in a mapping that spans several PTE tables and
// straddles PMD boundaries (first page, a middle table, last page), and a
// writable entry of a neighbouring VM_WRITE mapping is not.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkWritableInVma } from "../src/core/check.js";
import { pteOffset } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

const PS = 4096;
const TABLE = 512 * PS; // a PTE table's span with 4K pages

for (const arch of ["x86_64", "arm64"]) {
  describe(`checkWritableInVma on ${arch}`, () => {
    it("finds a writable entry in any PTE table of a read-only mapping, and only there", () => {
      // 3 tables and a bit, starting 5 pages below a PMD boundary; a
      // writable neighbour right above it and one right below it, in the
      // same PTE tables.
      const base = 0x7e0000000000 + TABLE - 5 * PS;
      const pages = 3 * 512 + 100;
      const r = new Runner(
        parseScenario(
          `name: wv
machine: { arch: ${arch}, cpus: 1, thp: never }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }]
steps:
  - mmap: { region: ro, size: ${pages * PS}, prot: r, addr: ${base}, thread: A }
  - mmap: { region: rw, size: 16K, addr: ${base + pages * PS}, thread: A }
  - mmap: { region: low, size: 16K, addr: ${base - 4 * PS}, thread: A }
  - read: { region: ro, length: 8K, thread: A }
  - read: { region: ro, offset: ${700 * PS}, length: 4K, thread: A }
  - read: { region: ro, offset: ${(pages - 1) * PS}, length: 4K, thread: A }
  - touch: { region: rw, thread: A }
  - touch: { region: low, thread: A }
`,
          "wv.yaml",
        ),
        { checkInvariants: true },
      );
      r.runAll();
      const m = r.m;
      const A = m.arch;
      const mm = r.procs.get("p")!.mm;
      const check = () =>
        checkWritableInVma(
          m,
          () => false,
          () => false,
        )
          .map((v) => `${v.invariant}@${(v.addr as number) - base}`)
          .sort();
      assert.deepEqual(check(), []);
      const mkwrite = (addr: number) => {
        const gi = pteOffset(m, mm, addr);
        assert.ok(gi >= 0 && A.ptePresent(m.tables.get(gi)), `a present entry at ${addr.toString(16)}`);
        m.tables.set(gi, A.pteMkwrite(m.tables.get(gi)));
      };
      for (const p of [0, 700, pages - 1]) mkwrite(base + p * PS);
      // The writable neighbours' entries (touched: writable already) are allowed.
      assert.ok(A.pteWrite(m.tables.get(pteOffset(m, mm, base - PS))) && A.pteWrite(m.tables.get(pteOffset(m, mm, base + pages * PS))));
      assert.deepEqual(check(), [0, 700, pages - 1].map((p) => `writable-without-vm-write@${p * PS}`).sort());
    });
  });
}
