// Faults that cannot resolve (issue 13, 4(c)). A write-only shared file
// mapping used to fault forever: vm_page_prot was computed with VM_WRITE
// cleared instead of VM_SHARED (vma_set_page_prot(), mm/mmap.c), which gives
// PROT_WRITE alone PAGE_NONE. And a fault that never resolves is a
// `livelock` violation of handle_mm_fault(), not a thrown model bug.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ExploreConfig, explore } from "../src/explore/explore.js";
import type { Machine } from "../src/core/machine.js";
import { PG_DIRTY } from "../src/core/mm/physmem.js";
import { defaultReplayOptions, Replayer } from "../src/replay/replay.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { parseStrace } from "../src/trace/strace.js";

const ARCHES = ["x86_64", "arm64"] as const;

function pteAt(m: Machine, r: Runner, addr: number): number {
  const mm = r.procs.get("p0")!.mm;
  const A = m.arch;
  const G = m.geo;
  let slot = mm.pgd;
  for (let level = A.levels - 1; ; level--) {
    const v = m.tables.get(slot * G.ptrs + (Math.floor(addr / ((G.span[level] as number) * G.pageSize)) % G.ptrs));
    if (level === 0 || !A.entryIsTable(v)) return v;
    slot = m.tables.slotOfPfn(A.ptePfn(v));
  }
}

describe("write-only shared file mapping (prot w, MAP_SHARED)", () => {
  for (const arch of ARCHES)
    for (const readFirst of [false, true])
      it(`${arch}: ${readFirst ? "read, then written" : "written"}: do_shared_fault() maps the page writable and dirty`, () => {
        const yaml = `
name: write-only-shared
steps:
  - mmap: { region: F, size: 64K, prot: w, flags: [shared], file: data }
${readFirst ? "  - read: { region: F }\n" : ""}  - touch: { region: F }
  - read: { region: F }
`;
        const sc = parseScenario(yaml, "t.yaml");
        const r = new Runner(sc, { checkInvariants: true, arch });
        const m = r.m;
        const faults: number[] = [];
        for (const s of sc.steps) {
          const before = m.counters.faults;
          r.exec(s, 0);
          faults.push(m.counters.faults - before);
        }
        const A = m.arch;
        const PS = m.geo.pageSize;
        const F = r.procs.get("p0")!.regions.get("F")!;
        const pages = F.len / PS;
        // A read (write implies read on both architectures) maps the page
        // read-only for dirty tracking (the private protection: x86 PAGE_COPY,
        // arm64 PAGE_READONLY); the write then goes through wp_page_shared().
        // Written first, do_shared_fault() maps it writable at once.
        assert.deepEqual(faults, readFirst ? [0, pages, pages, 0] : [0, pages, 0]);
        for (let a = F.start; a < F.start + F.len; a += PS) {
          const v = pteAt(m, r, a);
          assert.ok(A.ptePresent(v) && A.pteWrite(v) && A.pteDirty(v), `${A.describeEntry(v)} at 0x${a.toString(16)}`);
          assert.ok(((m.phys.flags[A.ptePfn(v)] as number) & PG_DIRTY) !== 0, "the page cache page is dirty");
        }
        assert.equal(r.procs.get("p0")!.mm.rssFile, pages);
        assert.deepEqual(r.finish(), []);
      });
});

// No kernel path the model has livelocks once the mapping above is fixed,
// so the tests stand in hardware whose access/dirty update never completes
// (onMachine): each fault's handler sets the flag in the PTE and returns
// success, and the access faults again.
const neverAccessed = (m: Machine) => {
  m.arch.hwMkyoungDirty = () => -1;
};

describe("a fault that never resolves", () => {
  const yaml = `
name: never-resolves
steps:
  - mmap: { region: A, size: 16K }
  - touch: { region: A }
`;
  for (const arch of ARCHES)
    it(`${arch}: ptlab run reports a livelock of handle_mm_fault() at the address`, () => {
      const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true, arch, onMachine: neverAccessed });
      const { violations } = r.runToEnd();
      assert.equal(violations.length, 1, violations.join("\n"));
      const a = r.procs.get("p0")!.regions.get("A")!.start;
      assert.match(
        violations[0]!,
        new RegExp(`^\\[livelock\\] handle_mm_fault\\(\\) livelock: CPU0's write at 0x${a.toString(16)} still faults .*\\(after touch at t\\.yaml:5:5\\)$`),
      );
    });

  // Unchecked (--no-check) the run still stops there: the thread never got
  // past the access.
  for (const arch of ARCHES)
    it(`${arch}: an unchecked run reports it too`, () => {
      const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: false, arch, onMachine: neverAccessed });
      const { violations } = r.runToEnd();
      assert.equal(violations.length, 1, violations.join("\n"));
      assert.match(violations[0]!, /^\[livelock\] handle_mm_fault\(\) livelock: CPU0's write at 0x[0-9a-f]+ still faults/);
    });

  // A replayed access (here the writable touch policy after an mmap) that
  // never resolves: reported with the trace line, checked or not.
  for (const checkInvariants of [true, false])
    it(`replay${checkInvariants ? "" : " --no-check"}: reported with the trace line`, async () => {
      const lines = [
        "100 mmap(NULL, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
        "100 exit_group(0) = ?",
        "100 +++ exited with 0 +++",
      ];
      const r = new Replayer({ ...defaultReplayOptions(), checkInvariants, touch: { kind: "writable" } });
      neverAccessed(r.m);
      for await (const e of parseStrace(lines, { file: "t.strace", lenient: false })) r.apply(e);
      assert.equal(r.violations.length, 1, r.violations.map((v) => v.message).join("\n"));
      assert.equal(r.violations[0]!.invariant, "livelock");
      assert.match(r.violations[0]!.message, /^line 1: handle_mm_fault\(\) livelock: CPU0's write at 0x7f0000000000 still faults/);
      assert.equal(r.stats.touches, 1);
    });

  // Under the explorer the retrying thread runs alone only when nothing else
  // can run; MAX_FAULT_RETRIES faults in a row that way are the livelock.
  it("the explorer reports it as a counterexample", () => {
    const sc = parseScenario(
      `
name: never-resolves
machine: { cpus: 2 }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
steps:
  - mmap: { region: r, size: 8K, thread: A }
concurrent:
  - touch: { region: r, length: 4K, thread: A }
  - madvise: { region: r, offset: 4K, advice: dontneed, thread: B }
`,
      "t.yaml",
    );
    const cfg: ExploreConfig = {
      sc,
      run: { onMachine: neverAccessed },
      mode: "exhaustive",
      preemptions: 1,
      maxSteps: 5000,
      executions: 0,
      seed: 1,
      pctDepth: 3,
      shard: { index: 0, count: 1 },
      shrink: false,
      ignore: [],
    };
    const r = explore(cfg);
    const cx = r.counterexample;
    assert.ok(cx !== null, `no counterexample in ${r.executions} executions (${r.truncated} cut off)`);
    assert.equal(cx.invariant, "livelock");
    assert.match(cx.message, /^handle_mm_fault\(\) livelock: CPU0's write at 0x[0-9a-f]+ still faults/);
  });
});
