// will-it-scale's page-table tests (antonblanchard/will-it-scale, tests/*.c):
// every task (a thread of one process, or a process) loops over its own
// mapping. Tasks run on CPUs 0..N-1 and are interleaved step by step: each
// phase (mmap, touch, madvise, munmap) runs for task 0, then task 1, ...

import { GiB, type ParamSpec, type Params, MiB } from "./params.js";
import { PAGE, ScenarioBuilder, tasks } from "./builder.js";
import type { WorkloadDef } from "./types.js";

type Kind = "anon" | "private-file" | "shared-file";

const common = (size: number, iterations: number): ParamSpec[] => [
  { name: "tasks", kind: "int", default: 2, min: 1, max: 64, description: "threads or processes (one per CPU)" },
  { name: "mode", kind: "enum", default: "threads", values: ["threads", "processes"], description: "tasks share one mm (threads) or have one each" },
  { name: "iterations", kind: "int", default: iterations, min: 1, max: 10000, description: "loop iterations per task (one report step each)" },
  {
    name: "size",
    kind: "size",
    default: size,
    min: PAGE,
    max: 64 * GiB,
    multipleOf: PAGE,
    description: "mapping size per task (will-it-scale: 128M, 1M for tlb_flush2)",
  },
];

function setup(name: string, description: string, p: Params) {
  const t = tasks(p.tasks as number, p.mode as "threads" | "processes");
  const b = new ScenarioBuilder(name, description, { cpus: p.tasks as number }, t.processes);
  return { b, threads: t.threads, size: p.size as number, iterations: p.iterations as number };
}

function mapFor(b: ScenarioBuilder, kind: Kind, thread: string, i: number, size: number): void {
  if (kind === "anon") b.mmap({ thread, region: `R${i}`, size });
  // mkstemp() per task: each has its own file.
  else b.mmap({ thread, region: `R${i}`, size, file: `willitscale.${i}`, shared: kind === "shared-file" });
}

// page_fault1/2/3: mmap, write every page, munmap.
function pageFault(name: string, kind: Kind, description: string): WorkloadDef {
  return {
    name,
    description,
    origin: `will-it-scale tests/${name}.c (MEMSIZE 128M)`,
    params: common(8 * MiB, 3),
    build(p) {
      const { b, threads, size, iterations } = setup(name, description, p);
      for (let it = 1; it <= iterations; it++) {
        threads.forEach((t, i) => void mapFor(b, kind, t, i, size));
        threads.forEach((t, i) => void b.touch({ thread: t, region: `R${i}` }));
        b.report(threads[0] as string, `iter ${it}: touched`);
        threads.forEach((t, i) => void b.munmap({ thread: t, region: `R${i}` }));
        b.report(threads[0] as string, `iter ${it}: munmap`);
      }
      return b.build();
    },
  };
}

// mmap1/2: mmap and munmap without touching.
function mmapLoop(name: string, kind: Kind, description: string): WorkloadDef {
  return {
    name,
    description,
    origin: `will-it-scale tests/${name}.c (MEMSIZE 128M)`,
    params: [
      ...common(128 * MiB, 4),
      { name: "loops", kind: "int", default: 16, min: 1, max: 1000000, description: "mmap/munmap pairs per task per iteration" },
    ],
    build(p) {
      const { b, threads, size, iterations } = setup(name, description, p);
      for (let it = 1; it <= iterations; it++) {
        b.repeat(threads[0] as string, p.loops as number, 0, () => {
          threads.forEach((t, i) => {
            mapFor(b, kind, t, i, size);
            b.munmap({ thread: t, region: `R${i}` });
          });
        });
        b.report(threads[0] as string, `iter ${it}`);
      }
      return b.build();
    },
  };
}

// tlb_flush1/2/3: mmap; per page: write it, MADV_DONTNEED it; munmap.
function tlbFlush(name: string, kind: Kind, size: number, description: string): WorkloadDef {
  return {
    name,
    description,
    origin: `will-it-scale tests/${name}.c`,
    params: common(size, 2),
    build(p) {
      const { b, threads, size, iterations } = setup(name, description, p);
      for (let it = 1; it <= iterations; it++) {
        threads.forEach((t, i) => void mapFor(b, kind, t, i, size));
        b.repeat(threads[0] as string, size / PAGE, PAGE, () => {
          threads.forEach((t, i) => {
            b.touch({ thread: t, region: `R${i}`, length: PAGE });
            b.madvise({ thread: t, region: `R${i}`, length: PAGE, advice: "dontneed" });
          });
        });
        threads.forEach((t, i) => void b.munmap({ thread: t, region: `R${i}` }));
        b.report(threads[0] as string, `iter ${it}`);
      }
      return b.build();
    },
  };
}

export const WILL_IT_SCALE: WorkloadDef[] = [
  pageFault("page_fault1", "anon", "Separate anonymous private mapping page fault: mmap, write every page, munmap"),
  pageFault("page_fault2", "private-file", "Separate file private mapping page fault: mmap a file MAP_PRIVATE, write every page (COW), munmap"),
  pageFault("page_fault3", "shared-file", "Separate file shared mapping page fault: mmap a file MAP_SHARED, write every page, munmap"),
  mmapLoop("mmap1", "anon", "Separate anonymous mmap/munmap (nothing touched)"),
  mmapLoop("mmap2", "private-file", "Separate file mmap/munmap (nothing touched)"),
  tlbFlush("tlb_flush1", "private-file", 4 * MiB, "TLB flush of separated file private mapping: per page, write then MADV_DONTNEED"),
  tlbFlush("tlb_flush2", "anon", 1 * MiB, "TLB flush of anonymous memory private mapping: per page, write then MADV_DONTNEED"),
  tlbFlush("tlb_flush3", "shared-file", 4 * MiB, "TLB flush of separated file shared mapping: per page, write then MADV_DONTNEED"),
];
