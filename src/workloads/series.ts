// The microbenchmarks of the patch series the model follows, scaled down by
// default (the `size` parameter restores the published sizes).

import { fill, folioParam, folioRunOptions } from "./folio.js";
import { formatSize, GiB, MiB } from "./params.js";
import { PMD_SIZE, RO, RW, ScenarioBuilder } from "./builder.js";
import type { WorkloadDef } from "./types.js";

const BASE = 0x7e0000000000; // 1 GiB aligned: folios of every size fit naturally

const sizeParam = (def: number, published: string) =>
  ({
    name: "size",
    kind: "size",
    default: def,
    min: PMD_SIZE,
    max: 1024 * GiB,
    multipleOf: PMD_SIZE,
    description: `region size (published: ${published})`,
  }) as const;

const one = (name: string, description: string, cpus = 1) =>
  new ScenarioBuilder(name, description, { cpus, seed: 1 }, [{ name: "p0", threads: [{ name: "t0", cpu: 0 }] }]);

export const SERIES: WorkloadDef[] = [
  {
    name: "ryan-fork-dontneed-munmap",
    description:
      "Ryan Roberts' contpte microbenchmarks (David Hildenbrand's pte-mapped-folio-benchmarks): fill a region with PTE-mapped folios of a size, then fork (child exits), MADV_DONTNEED, refill, munmap",
    origin: "contpte v4 cover letter, LKML 20231218105100.172635-1-ryan.roberts@arm.com",
    params: [sizeParam(64 * MiB, "1G"), folioParam("64K", "folio size (2M: a PMD THP split to PTEs, as the benchmark's order-9 case)")],
    build(p) {
      const b = one(this.name, this.description, 2);
      const size = p.size as number;
      b.mmap({ thread: "t0", region: "A", size, addr: BASE });
      fill(b, { thread: "t0", region: "A", size, folio: p.folio as string, pteMapped: true });
      b.report("t0", "fill");
      b.fork({ thread: "t0", child: "c1", cpu: 1 });
      b.report("t0", "fork");
      b.exit({ thread: "t0", process: "c1" });
      b.report("t0", "child exit");
      b.madvise({ thread: "t0", region: "A", advice: "dontneed" });
      b.report("t0", "dontneed");
      fill(b, { thread: "t0", region: "A", size, folio: p.folio as string, pteMapped: true });
      b.report("t0", "refill");
      b.munmap({ thread: "t0", region: "A" });
      b.report("t0", "munmap");
      return b.build();
    },
    runOptions: (p) => folioRunOptions(p.folio as string),
  },
  {
    name: "david-munmap",
    description: "David Hildenbrand's munmap benchmark: fill a region with PTE-mapped folios of one size (4K/16K/64K/2M), then munmap it",
    origin: "pte-mapped-folio-benchmarks.c (gitlab.com/davidhildenbrand/scratchspace), rmap batching series",
    params: [
      sizeParam(64 * MiB, "1G"),
      folioParam("2M", "folio size; 2M is a PMD THP split to PTEs unless pmd=true"),
      { name: "pmd", kind: "bool", default: false, description: "keep 2M folios PMD-mapped (no split)" },
    ],
    build(p) {
      const b = one(this.name, this.description);
      b.mmap({ thread: "t0", region: "A", size: p.size as number, addr: BASE });
      fill(b, { thread: "t0", region: "A", size: p.size as number, folio: p.folio as string, pteMapped: !(p.pmd as boolean) });
      b.report("t0", "fill");
      b.munmap({ thread: "t0", region: "A" });
      b.report("t0", "munmap");
      return b.build();
    },
    runOptions: (p) => folioRunOptions(p.folio as string),
  },
  {
    name: "dev-mprotect",
    description:
      "Dev Jain's mprotect benchmark: map and write a region at a fixed address, then loop: mprotect(RO), mprotect(RW), rewrite every page. folio=2M is T1 (PMD THPs split to PTEs), 64K is T2, 4K is T3",
    origin: "mprotect PTE batching v4 cover letter, LKML 20250628113435.46678-1-dev.jain@arm.com",
    params: [
      sizeParam(32 * MiB, "1G"),
      { name: "iterations", kind: "int", default: 40, min: 1, max: 100000, description: "mprotect RO/RW loops (published: 40)" },
      folioParam("64K"),
    ],
    build(p) {
      const b = one(this.name, this.description);
      b.mmap({ thread: "t0", region: "A", size: p.size as number, addr: BASE });
      fill(b, { thread: "t0", region: "A", size: p.size as number, folio: p.folio as string, pteMapped: true });
      b.report("t0", "fill");
      b.repeat("t0", p.iterations as number, 0, () => {
        b.mprotect({ thread: "t0", region: "A", prot: RO });
        b.mprotect({ thread: "t0", region: "A", prot: RW });
        b.touch({ thread: "t0", region: "A" });
      });
      b.report("t0", `${p.iterations} x mprotect RO, RW, rewrite`);
      b.munmap({ thread: "t0", region: "A" });
      b.report("t0", "munmap");
      return b.build();
    },
    runOptions: (p) => folioRunOptions(p.folio as string),
  },
  {
    name: "qi-50g",
    description:
      "Qi Zheng's PT reclaim experiment: map a large region, then for each 2M chunk write it and MADV_DONTNEED it; VmPTE stays flat with PT reclaim, grows with the region without",
    origin: "PT reclaim v3 cover letter, LKML cover.1731566457.git.zhengqi.arch@bytedance.com (scenarios/pt-reclaim-50g.yaml at full size)",
    params: [
      sizeParam(1 * GiB, "50G"),
      { name: "reports", kind: "int", default: 8, min: 1, max: 1000, description: "report steps along the loop (the chunks are split evenly)" },
    ],
    build(p) {
      const b = one(this.name, this.description);
      const size = p.size as number;
      const chunks = size / PMD_SIZE;
      const reports = Math.min(p.reports as number, chunks);
      b.mmap({ thread: "t0", region: "A", size });
      let done = 0;
      for (let r = 1; r <= reports; r++) {
        const upto = Math.round((chunks * r) / reports);
        const off = done * PMD_SIZE;
        b.repeat("t0", upto - done, PMD_SIZE, () => {
          b.touch({ thread: "t0", region: "A", offset: off, length: PMD_SIZE });
          b.madvise({ thread: "t0", region: "A", offset: off, length: PMD_SIZE, advice: "dontneed" });
        });
        done = upto;
        b.report("t0", `${formatSize(done * PMD_SIZE)} done`);
      }
      return b.build();
    },
  },
];
