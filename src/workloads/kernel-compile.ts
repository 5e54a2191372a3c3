// Kernel-compile-like process churn: a `make` process forks short-lived
// compiler processes, `jobs` at a time. Each child does what exec gives a
// compiler: exec replaces the address space copied from make (the old mm is
// torn down), then it maps its text and
// libc from files and read-faults part of them, writes an anonymous heap
// (optionally MADV_HUGEPAGE, or with mTHP folios) and a stack, and exits.
// Sizes vary per process, deterministically from `seed`.

import { PAGE, pageRound, RW, RX, rng, ScenarioBuilder } from "./builder.js";
import { FOLIO_SIZES, folioRunOptions } from "./folio.js";
import { GiB, KiB, MiB } from "./params.js";
import type { WorkloadDef } from "./types.js";

export const KERNEL_COMPILE: WorkloadDef = {
  name: "kernel-compile",
  description:
    "Process churn like make -jN: short-lived processes forked from a parent, each with fresh file text (read-faulted), libc, an anon heap and stack written, then exit",
  origin: "kernbench / the contpte cover letter's kernel compile (-j8, -j80)",
  params: [
    { name: "processes", kind: "int", default: 24, min: 1, max: 100000, description: "compiler processes forked in total" },
    { name: "jobs", kind: "int", default: 2, min: 1, max: 64, description: "processes alive at a time (make -j), one CPU each" },
    { name: "heap", kind: "size", default: 2 * MiB, min: PAGE, max: 16 * GiB, multipleOf: PAGE, description: "mean anon heap per process (varies 0.5x..1.5x)" },
    { name: "text", kind: "size", default: 4 * MiB, min: PAGE, max: 4 * GiB, multipleOf: PAGE, description: "compiler text size (a 40%..100% part is read)" },
    { name: "hugepage", kind: "bool", default: false, description: "MADV_HUGEPAGE on the heap (PMD THPs where 2M-aligned ranges fit)" },
    { name: "folio", kind: "enum", default: "4K", values: FOLIO_SIZES.filter((f) => f !== "2M"), description: "mTHP folio size for anon faults" },
    { name: "seed", kind: "int", default: 1, min: 0, max: 2 ** 31 - 1, description: "seed of the per-process size variation" },
  ],
  build(p) {
    const jobs = p.jobs as number;
    const nproc = p.processes as number;
    const random = rng(p.seed as number);
    const b = new ScenarioBuilder(this.name, this.description, { cpus: jobs, seed: p.seed as number }, [
      { name: "make", threads: [{ name: "make.t0", cpu: 0 }] },
    ]);
    const mk = "make.t0";
    b.mmap({ thread: mk, region: "make_text", size: 256 * KiB, prot: RX, file: "make" });
    b.read({ thread: mk, region: "make_text" });
    b.mmap({ thread: mk, region: "make_heap", size: 512 * KiB });
    b.touch({ thread: mk, region: "make_heap" });
    b.report(mk, "make started");

    const waves = Math.ceil(nproc / jobs);
    const reportEvery = Math.ceil(waves / 8);
    let k = 0;
    for (let w = 0; w < waves; w++) {
      const kids: { name: string; thread: string; heap: number; textRead: number; libcRead: number }[] = [];
      for (let j = 0; j < jobs && k < nproc; j++, k++) {
        const name = `cc${k + 1}`;
        kids.push({
          name,
          thread: `${name}.t0`,
          heap: pageRound((p.heap as number) * (0.5 + random())),
          textRead: pageRound((p.text as number) * (0.4 + 0.6 * random())),
          libcRead: pageRound(512 * KiB * (0.5 + random())),
        });
        b.fork({ thread: mk, child: name, cpu: j });
      }
      // exec: a fresh address space; the copy of make's goes.
      for (const c of kids) b.exec({ thread: c.thread });
      for (const c of kids) {
        b.mmap({ thread: c.thread, region: "text", size: p.text as number, prot: RX, file: "cc1" });
        b.mmap({ thread: c.thread, region: "libc", size: 2 * MiB, prot: RX, file: "libc.so.6" });
        b.mmap({ thread: c.thread, region: "heap", size: c.heap, prot: RW });
        b.mmap({ thread: c.thread, region: "stack", size: 128 * KiB, prot: RW });
        if (p.hugepage as boolean) b.madvise({ thread: c.thread, region: "heap", advice: "hugepage" });
      }
      for (const c of kids) {
        b.read({ thread: c.thread, region: "text", length: Math.min(c.textRead, p.text as number) });
        b.read({ thread: c.thread, region: "libc", length: c.libcRead });
        b.touch({ thread: c.thread, region: "stack", offset: 96 * KiB });
        b.touch({ thread: c.thread, region: "heap" });
      }
      if ((w + 1) % reportEvery === 0 || w === waves - 1) b.report(mk, `${k} processes`);
      for (const c of kids) b.exit({ thread: mk, process: c.name });
    }
    b.report(mk, "all exited");
    return b.build();
  },
  runOptions: (p) => folioRunOptions(p.folio as string),
};
