// Memory pressure under machine.memory: the watermarks follow
// calculate_min_free_kbytes()/__setup_per_zone_wmarks(); kswapd keeps the
// model's frames under the limit by swapping out; memory it cannot free is
// a located out-of-memory error, and a limit too small is an input error.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { watermarks } from "../src/core/mm/page_alloc.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";

function cli(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), "ptlab-mem-"));
  const f = join(dir, "t.yaml");
  writeFileSync(f, yaml);
  return spawnSync(process.execPath, ["dist/src/cli/main.js", "run", f], { encoding: "utf8" });
}

describe("memory limit and kswapd", () => {
  it("kswapd's clock steps over the free frames of a block the allocator split (their order is stale) and returns", () => {
    // In a child process: the old clock looped for ever at the split block.
    const dist = new URL("../src/", import.meta.url).href;
    const code = `
      import { Runner } from "${dist}run/runner.js";
      import { parseScenario } from "${dist}scenario/load.js";
      import { kswapdBalance } from "${dist}core/mm/kswapd.js";
      const r = new Runner(parseScenario("name: t\\nmachine: { memory: 16M }\\nsteps: []\\n", "t.yaml"), { checkInvariants: true });
      const m = r.m;
      const big = m.phys.alloc(9);
      m.phys.freeFolio(big);
      let n = 0, pfn = -1;
      while (pfn !== big && n++ < 4096) pfn = m.phys.alloc(0); // drain the order-0 list, then split the block
      if (pfn !== big) throw new Error("the block was not split");
      m.reservedPages = m.config.memoryPages - m.watermarks.low; // below the high watermark whatever it frees
      const g = kswapdBalance(m);
      let s = g.next();
      while (!s.done) s = g.next();
      console.log(JSON.stringify(s.value));`;
    const res = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 20000 });
    assert.equal(res.signal, null, "kswapdBalance() did not return within 20 s");
    assert.equal(res.status, 0, res.stderr);
    assert.equal(typeof (JSON.parse(res.stdout) as { reclaimed: number }).reclaimed, "number");
  });
  it("watermarks of 1 GiB of 4K pages: min 4096 kB, gap max(min/4, 0.1%)", () => {
    assert.deepEqual(watermarks(262144, 4096), { min: 1024, low: 1286, high: 1548 });
    // 32 MiB: int_sqrt(32768 * 16) = 724 kB = 181 pages; gap max(45, 8).
    assert.deepEqual(watermarks(8192, 4096), { min: 181, low: 226, high: 271 });
  });
  for (const arch of ["x86_64", "arm64"] as const) {
    it(`${arch}: touching 48M under a 32M limit swaps out what does not fit, and reads bring it back`, () => {
      const r = new Runner(
        parseScenario(
          `name: t\nmachine: { arch: ${arch}, thp: never, memory: 32M, swap: 64M }\nsteps:\n  - mmap: { region: A, size: 48M, prot: rw }\n  - touch: { region: A }\n  - report: touched\n  - read: { region: A, length: 1M }\n  - report: read\n`,
          "t.yaml",
        ),
        { checkInvariants: true },
      );
      r.runAll();
      assert.deepEqual(r.m.violations, []);
      const m = r.m;
      assert.ok(m.phys.allocated <= m.config.memoryPages, `${m.phys.allocated} frames under a limit of ${m.config.memoryPages}`);
      const t = r.rows[0]!;
      const f = t.processes[0]!.figures;
      assert.equal(f.rss_anon_kb + f.vmswap_kb, 48 * 1024, "every page is resident or in swap");
      // Nothing is read back while touching: every page written out is in swap.
      assert.equal(t.counters.pswpout, f.vmswap_kb / 4);
      // kswapd wakes between accesses once free memory is below low (226
      // pages) and stops at high (271): 46 pages, two SWAP_CLUSTER_MAX (32)
      // batches, 64 pages a wake.
      assert.equal(t.counters.kswapdWakes * 64, t.counters.pswpout);
      // The clock hand starts at the lowest frames, the first 1M's: all of it
      // is in swap and read back, and 256 other pages go out (4 wakes).
      const rd = r.rows[1]!.counters;
      assert.deepEqual([rd.pswpin, rd.pswpout, rd.kswapdWakes], [256, 256, 4]);
    });
  }
  it("memory kswapd cannot free is a located out-of-memory error, exit 2", () => {
    const p = cli("name: t\nmachine: { memory: 16M }\nsteps:\n  - mmap: { region: A, size: 32M, prot: rw }\n  - touch: { region: A }\n");
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:5:5: out of memory: .* \(no swap device\)/);
  });
  it("a limit below 16M is an input error at its key", () => {
    const p = cli("name: t\nmachine: { memory: 8M }\nsteps: []\n");
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:2:20: machine\.memory: expected at least 16M/);
  });
});
