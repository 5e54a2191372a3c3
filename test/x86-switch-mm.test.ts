// switch_mm_irqs_off() (arch/x86/mm/tlb.c) when the CPU already has the mm
// loaded: a thread of that mm entering the kernel flushes nothing, so the
// entries a deferred flush (reclaim's arch_tlbbatch_add_pending()) has not
// reached stay until the batch's IPI; only a CPU coming back from lazy mode
// checks the mm's tlb_gen and flushes (was_lazy).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

const YAML = `name: t
processes: [{ name: p, threads: [{ name: A, cpu: 0 }, { name: K, cpu: 1 }] }]
steps:
  - mmap: { region: r, size: 4K, thread: A }
  - touch: { region: r, thread: A }
`;

function setUp() {
  const r = new Runner(parseScenario(YAML, "t.yaml"), { checkInvariants: true });
  r.runAll();
  const p = r.procs.get("p")!;
  const m = r.m;
  const cpu = m.cpus[0]!;
  const vpn = p.regions.get("r")!.start / m.geo.pageSize;
  const cached = () => cpu.tlb.lookup(vpn, cpu.asid) >= 0;
  assert.ok(cached(), "A's store left a TLB entry on CPU 0");
  // Reclaim on CPU 1 batches a flush for the mm.
  const batch = new Uint8Array(m.cpus.length);
  m.curCpu = 1;
  m.arch.tlbbatchAddPending(m, batch, p.mm, 0, 0);
  return { m, mm: p.mm, cpu, cached, batch };
}

describe("x86-64: switch_mm_irqs_off() to the loaded mm", () => {
  it("a thread of the running mm enters with its entries; the batch's IPI flushes them", () => {
    const { m, mm, cached, batch } = setUp();
    m.arch.switchMm(m, 0, mm);
    assert.ok(cached(), "no flush on entry");
    m.arch.tlbbatchFlush(m, batch);
    assert.ok(!cached(), "arch_tlbbatch_flush() reached CPU 0");
  });
  it("a CPU back from lazy mode checks tlb_gen and flushes", () => {
    const { m, mm, cpu, cached } = setUp();
    cpu.running = null; // a kernel thread borrowed the mm
    m.arch.switchMm(m, 0, mm);
    assert.ok(!cached(), "was_lazy: the generation moved, the TLB is flushed");
  });
});
