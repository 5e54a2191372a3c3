// TLB entries left under a dying mm's ASID (issue 13, 4(d)). On arm64,
// exit_mmap()'s fullmm gather frees pages with no TLBI until tables are freed
// (tlb_flush(), arch/arm64/include/asm/tlb.h): the entries are unreachable
// because no thread runs in the mm again and the ASID allocator
// (arch/arm64/mm/context.c) hands the ASID to another mm only after a
// rollover has made every CPU invalidate its TLB. These tests check that such
// entries are not reported, and that a stale entry someone can still use is.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { switchMm } from "../src/core/arch/arm64/context.js";
import { arm64 } from "../src/core/arch/arm64/index.js";
import * as P from "../src/core/arch/arm64/pgtable.js";
import { checkFreedFrames, checkTlbs } from "../src/core/check.js";
import { userAccess } from "../src/core/arch/fault.js";
import { type Arm64Features, defaultConfig, type Machine } from "../src/core/machine.js";
import type { Mm } from "../src/core/mm/types.js";
import { pmdOffset, pteAlloc } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
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

// A PTE by hand; returns the PTE table's slot.
function setPte(m: Machine, mm: Mm, addr: number, v: number): number {
  const slot = pteAlloc(m, mm, pmdOffset(m, mm, addr, true));
  m.tables.set(slot * 512 + ((addr / PS) & 511), v);
  return slot;
}

// Four processes (a parent and three forked children on their own CPUs)
// touch 64 pages each and exit. With GFP_NOWAIT failing the gather keeps its
// 8-entry batch, so exit_mmap() frees pages every 7 while their TLB entries,
// under the dying ASID, are still there.
const exitMany = `
name: exit-many
machine: { cpus: 4, nowait_alloc_fails: true }
processes:
  - name: p0
    threads: [{ name: t0, cpu: 0 }]
steps:
  - mmap: { region: A, size: 256K, prot: rw }
  - touch: { region: A }
  - fork: { child: p1, cpu: 1 }
  - fork: { child: p2, cpu: 2 }
  - fork: { child: p3, cpu: 3 }
  - touch: { region: A, thread: p1.t0 }
  - touch: { region: A, thread: p2.t0 }
  - read: { region: A, thread: p3.t0 }
  - exit: { process: p1 }
  - exit: { process: p2 }
  - exit: { process: p3 }
  - exit: { process: p0 }
`;

describe("exit_mmap() and the dying ASID", () => {
  for (const arch of ["arm64", "x86_64"] as const)
    it(`${arch}: many processes exit with pages freed mid-teardown, no violation`, () => {
      const r = new Runner(parseScenario(exitMany, "t.yaml"), { checkInvariants: true, arch });
      const c = r.m.counters;
      let before = { flushes: 0, va: 0, asid: 0 };
      for (const s of r.sc.steps) {
        if (s.op === "exit" && s.process === "p1")
          before = { flushes: c.gatherFlushes, va: c.tlbiVale1is + c.tlbiVae1is + c.tlbiRvale1is + c.tlbiRvae1is, asid: c.tlbiAside1is };
        r.exec(s, 0);
      }
      assert.deepEqual(r.finish(), []);
      // Each exit queues its 64 PTEs' pages (p3's map p0's pages, queued all
      // the same). The on-stack batch has MMU_GATHER_BUNDLE = 8 slots and
      // asks tlb_next_batch() for more at batch->nr == max - 1 = 7, which
      // GFP_NOWAIT refuses: a flush every 7 pages, ceil(64 / 7) = 10 per mm.
      assert.equal(c.gatherFlushes - before.flushes, 4 * Math.ceil(64 / 7), "pages freed in batches of 7");
      if (arch === "arm64") {
        // The exits issue only the table-freeing flush_tlb_mm(): one TLBI ASIDE1IS per mm.
        assert.equal(c.tlbiAside1is - before.asid, 4);
        assert.equal(c.tlbiVale1is + c.tlbiVae1is + c.tlbiRvale1is + c.tlbiRvae1is, before.va);
      }
    });

  it("arm64: leaf entries of an exiting mm are unreachable, its walk-cache entries are not while it is loaded", () => {
    const m = machine();
    const mm = m.newMm(BASE);
    switchMm(m, 0, mm);
    const page = m.phys.alloc(0);
    const table = m.tables.pfn[setPte(m, mm, BASE, enc.pfnPte(page, RW))] as number;
    assert.equal(userAccess(m, 0, mm, BASE, true), "ok");
    const kinds = (pfn: number) => checkFreedFrames(m, [pfn], "test").map((v) => `${v.invariant} ${v.message.includes("paging-structure") ? "walk" : "leaf"}`);
    // A live mm (it could still run here): freeing either is a real violation.
    assert.deepEqual(kinds(page), ["freed-before-flush leaf"]);
    assert.deepEqual(kinds(table), ["freed-before-flush walk"]);
    m.cpus[0]!.running = null; // exit_mm(): lazy
    assert.deepEqual(kinds(page), ["freed-before-flush leaf"], "lazy, but a thread may come back");
    mm.exiting = true; // exit_mmap()
    assert.deepEqual(kinds(page), []);
    assert.deepEqual(kinds(table), ["freed-before-flush walk"], "TTBR0 still holds the tables: speculative walks");
    switchMm(m, 0, null);
    switchMm(m, 0, m.newMm(BASE));
    assert.deepEqual(kinds(table), [], "another ASID loaded: the walker cannot use them");
  });

  // The rollover's local flush is what keeps a dead ASID's entries away from
  // the next mm that gets the ASID. Take it away (the test plays a broken
  // allocator) and the check must see the stale entry.
  for (const broken of [false, true])
    it(`arm64: an ASID reused after a rollover ${broken ? "without" : "with"} the local flush ${broken ? "is" : "is not"} reported`, () => {
      const m = machine({ asidBits: 8 });
      switchMm(m, 1, m.newMm(BASE)); // ASID 1
      const dead = m.newMm(BASE);
      switchMm(m, 0, dead); // ASID 2
      const asid = m.cpus[0]!.asid;
      const page = m.phys.alloc(0);
      setPte(m, dead, BASE, enc.pfnPte(page, RW));
      assert.equal(userAccess(m, 0, dead, BASE, false), "ok");
      switchMm(m, 0, m.newMm(BASE)); // ASID 3: CPU0 no longer holds 2 reserved
      // The dead mm's entry stays in CPU0's TLB (as exit_mmap() may leave it).
      dead.exiting = true;
      dead.alive = false;
      for (let i = 4; i <= 255; i++) switchMm(m, 1, m.newMm(BASE));
      switchMm(m, 1, m.newMm(BASE)); // rollover on CPU1: it takes ASID 1
      assert.equal(m.counters.asidRollovers, 1);
      assert.equal(m.cpus[0]!.tlbFlushPending, true);
      assert.deepEqual(checkTlbs(m), []);
      if (broken) m.cpus[0]!.tlbFlushPending = false;
      const next = m.newMm(BASE);
      switchMm(m, 0, next);
      assert.equal(m.cpus[0]!.asid, asid, "the dead mm's ASID went to the next mm");
      const v = checkTlbs(m).map((x) => x.invariant);
      assert.deepEqual(v, broken ? ["tlb-stale-mapping"] : []);
    });
});
