// dup_mmap()'s VMA loop (src/core/mm/fork.ts, kernel/fork.c and
// mm/rmap.c's anon_vma_fork()): what the child's VMAs carry for rmap, on
// both architectures. Written for mutants `npm run mutate` left alive in
// fork.ts: no fast test looked at the child's anon_vma, so a fork that
// never linked it passed them all.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { anonVmaRoot, rmapWalk } from "../src/core/mm/rmap.js";
import { pteOffset } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

const SC = `
name: fork-rmap
processes:
  - name: p
steps:
  - mmap: { region: a, size: 16K }
  - touch: { region: a, length: 8K }
  - mmap: { region: b, size: 8K, prot: r }
  - fork: { child: c }
`;

describe("fork: the child's VMAs and rmap", () => {
  for (const arch of ["x86_64", "arm64"] as const)
    it(`${arch}: a faulted anon VMA gets a child anon_vma under the parent's root, so rmap finds both mms; one never faulted gets none`, () => {
      const r = new Runner(parseScenario(SC, "t.yaml"), { checkInvariants: true, arch });
      for (const s of r.sc.steps) r.exec(s, 0);
      const p = r.procs.get("p")!.mm;
      const c = r.procs.get("c")!.mm;
      assert.equal(c.vmas.length, p.vmas.length);
      const pa = p.findVma(r.procs.get("p")!.regions.get("a")!.start)!;
      const ca = c.findVma(pa.start)!;
      assert.notEqual(pa.anonVma, 0);
      assert.notEqual(ca.anonVma, 0);
      assert.notEqual(ca.anonVma, pa.anonVma);
      assert.equal(anonVmaRoot(r.m, ca.anonVma), anonVmaRoot(r.m, pa.anonVma));
      const pb = p.findVma(r.procs.get("p")!.regions.get("b")!.start)!;
      assert.equal(pb.anonVma, 0);
      assert.equal(c.findVma(pb.start)!.anonVma, 0);
      // The parent's first page: found in both mms at the same address.
      const head = r.m.phys.folioHead(r.m.arch.ptePfn(r.m.tables.get(pteOffset(r.m, p, pa.start))));
      const hits = rmapWalk(r.m, head).map((h) => [h.mm === p ? "p" : h.mm === c ? "c" : "?", h.addr]);
      assert.deepEqual(hits.sort(), [
        ["c", pa.start],
        ["p", pa.start],
      ]);
      assert.deepEqual(r.finish(), []);
    });

  const FILE = `
name: fork-file
processes:
  - name: p
steps:
  - mmap: { region: f, size: 16K, prot: r, flags: [private], file: data.bin }
  - read: { region: f }
  - fork: { child: c }
`;
  for (const arch of ["x86_64", "arm64"] as const)
    it(`${arch}: a file VMA with no anon_vma is not copied (vma_needs_copy()): the child faults its pages in`, () => {
      const r = new Runner(parseScenario(FILE, "t.yaml"), { checkInvariants: true, arch });
      for (const s of r.sc.steps) r.exec(s, 0);
      const p = r.procs.get("p")!.mm;
      const c = r.procs.get("c")!.mm;
      const start = r.procs.get("p")!.regions.get("f")!.start;
      assert.equal(p.findVma(start)!.anonVma, 0);
      assert.notEqual(pteOffset(r.m, p, start), -1);
      assert.ok(r.m.tables.get(pteOffset(r.m, p, start)) !== 0);
      const ci = pteOffset(r.m, c, start);
      assert.ok(ci === -1 || r.m.tables.get(ci) === 0);
      assert.deepEqual(r.finish(), []);
    });
});
