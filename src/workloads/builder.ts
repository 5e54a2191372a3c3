// Builds Scenario ASTs (the same structure the YAML loader produces) from code.
// Each generated step gets a distinct position {line: n, col: 1}, n counting
// the steps in generation order, so a runtime error names the step:
// "workload:NAME:17:1: ...".

import type { Advice, MachineSpec, MmapFlag, ProcessSpec, Prot, Scenario, Step, ThpPolicy } from "../scenario/types.js";

export const PAGE = 4096;
export const PMD_SIZE = 2 * 1024 * 1024;

export const RW: Prot = { read: true, write: true, exec: false };
export const RO: Prot = { read: true, write: false, exec: false };
export const RX: Prot = { read: true, write: false, exec: true };

export interface MachineOpts {
  cpus: number;
  thp?: ThpPolicy;
  ptReclaim?: boolean;
  seed?: number;
}

interface RangeArgs {
  thread: string;
  region: string;
  offset?: number;
  length?: number;
}

// Deterministic PRNG (mulberry32) for seeded variation inside a workload.
export function rng(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pageRound = (bytes: number): number => Math.max(PAGE, Math.ceil(bytes / PAGE) * PAGE);

export class ScenarioBuilder {
  private n = 0;
  readonly steps: Step[] = [];
  private stack: Step[][] = [];

  constructor(
    readonly workload: string,
    readonly description: string,
    readonly machine: MachineOpts,
    readonly processes: ProcessSpec[],
  ) {}

  private pos() {
    return { line: ++this.n, col: 1 };
  }

  private push(s: Step): void {
    (this.stack.at(-1) ?? this.steps).push(s);
  }

  mmap(a: { thread: string; region: string; size: number; prot?: Prot; file?: string; shared?: boolean; addr?: number; populate?: boolean }): this {
    const flags: MmapFlag[] = [a.shared ? "shared" : "private"];
    if (a.file === undefined) flags.push("anonymous");
    if (a.addr !== undefined) flags.push("fixed");
    if (a.populate) flags.push("populate");
    this.push({
      op: "mmap",
      pos: this.pos(),
      thread: a.thread,
      region: a.region,
      size: a.size,
      prot: a.prot ?? RW,
      flags,
      ...(a.addr !== undefined ? { addr: a.addr } : {}),
      ...(a.file !== undefined ? { file: a.file } : {}),
      offset: 0,
    });
    return this;
  }

  private range(a: RangeArgs) {
    return { pos: this.pos(), thread: a.thread, region: a.region, offset: a.offset ?? 0, ...(a.length !== undefined ? { length: a.length } : {}) };
  }

  touch(a: RangeArgs & { stride?: number }): this {
    this.push({ op: "touch", ...this.range(a), write: true, stride: a.stride ?? 0 });
    return this;
  }
  read(a: RangeArgs & { stride?: number }): this {
    this.push({ op: "touch", ...this.range(a), write: false, stride: a.stride ?? 0 });
    return this;
  }
  madvise(a: RangeArgs & { advice: Advice }): this {
    this.push({ op: "madvise", ...this.range(a), advice: a.advice });
    return this;
  }
  mprotect(a: RangeArgs & { prot: Prot }): this {
    this.push({ op: "mprotect", ...this.range(a), prot: a.prot });
    return this;
  }
  munmap(a: RangeArgs): this {
    this.push({ op: "munmap", ...this.range(a) });
    return this;
  }
  fork(a: { thread: string; child: string; cpu: number }): this {
    this.push({ op: "fork", pos: this.pos(), thread: a.thread, child: a.child, childThread: `${a.child}.t0`, cpu: a.cpu });
    return this;
  }
  exec(a: { thread: string }): this {
    this.push({ op: "exec", pos: this.pos(), thread: a.thread });
    return this;
  }
  exit(a: { thread: string; process: string }): this {
    this.push({ op: "exit", pos: this.pos(), thread: a.thread, process: a.process });
    return this;
  }
  report(thread: string, label: string): this {
    this.push({ op: "report", pos: this.pos(), thread, label });
    return this;
  }
  /** Steps added inside `body` run `count` times, range offsets shifted by i * advance. */
  repeat(thread: string, count: number, advance: number, body: () => void): this {
    const steps: Step[] = [];
    const pos = this.pos();
    this.stack.push(steps);
    body();
    this.stack.pop();
    if (steps.length > 0) this.push({ op: "repeat", pos, thread, count, advance, steps });
    return this;
  }

  build(): Scenario {
    const m: MachineSpec = {
      arch: "x86_64",
      cpus: this.machine.cpus,
      levels: 4,
      thp: this.machine.thp ?? "madvise",
      thpUseZeroPage: true,
      ptReclaim: this.machine.ptReclaim ?? true,
      variants: {},
      seed: this.machine.seed ?? 1,
    };
    return { file: `workload:${this.workload}`, name: this.workload, description: this.description, machine: m, processes: this.processes, steps: this.steps };
  }
}

/** N processes with one thread each (p0..), or one process with N threads (t0..), thread i on CPU i. */
export function tasks(n: number, mode: "threads" | "processes"): { processes: ProcessSpec[]; threads: string[] } {
  if (mode === "threads") {
    const threads = Array.from({ length: n }, (_, i) => ({ name: `t${i}`, cpu: i }));
    return { processes: [{ name: "p0", threads }], threads: threads.map((t) => t.name) };
  }
  const processes = Array.from({ length: n }, (_, i) => ({ name: `p${i}`, threads: [{ name: `p${i}.t0`, cpu: i }] }));
  return { processes, threads: processes.map((p) => (p.threads[0] as { name: string }).name) };
}
