// The modelled machine: physical memory, page-table pages, CPUs with their
// translation caches, the architecture, and the policies (sysfs knobs,
// Kconfig options, named historical variants) the kernel code consults.

import type { Arch } from "./arch/arch.js";
import { checkFreedFrames } from "./check.js";
import { Counters } from "./counters.js";
import { Tlb } from "./hw/tlb.js";
import { PhysMem } from "./mm/physmem.js";
import { TableStore } from "./mm/pgtable.js";
import { FileObj, Mm } from "./mm/types.js";

export type ThpPolicy = "never" | "madvise" | "always";

// Named historical variants: each value selects a real code path.
export const VARIANTS = {
  // tlb_finish_mmu() when another gather on the mm is in flight.
  gather_nested: ["fixed", "reset-range"],
  // zap_pte_range() PT-reclaim tail: "fixed" (v6.14 fix: direct path only when
  // the loop never broke out), "direct-always" (before the fix).
  pt_reclaim: ["fixed", "direct-always"],
} as const satisfies Record<string, readonly string[]>;
export type VariantName = keyof typeof VARIANTS;

export interface MachineConfig {
  cpus: number;
  levels: 4 | 5;
  thp: ThpPolicy;
  thpUseZeroPage: boolean;
  // The shared zero page backs read faults (false: mm_forbids_zeropage(), as
  // on hosts booted with pvm_no_zero_page).
  zeroPage: boolean;
  ptReclaim: boolean;
  variants: { [K in VariantName]: (typeof VARIANTS)[K][number] };
  tlbSinglePageFlushCeiling: number; // x86 debugfs knob, 33
  checkInvariants: boolean;
}

export function defaultConfig(): MachineConfig {
  return {
    cpus: 2,
    levels: 4,
    thp: "madvise",
    thpUseZeroPage: true,
    zeroPage: true,
    ptReclaim: true,
    variants: { gather_nested: "fixed", pt_reclaim: "fixed" },
    tlbSinglePageFlushCeiling: 33,
    checkInvariants: true,
  };
}

export class Cpu {
  tlb = new Tlb();
  loadedMm: Mm | null = null; // mm whose page tables are loaded (CR3)
  running: Mm | null = null; // mm of the user thread running here; null = lazy/idle
  asid = 0; // ASID slot in use
  asidMm: (Mm | null)[];
  asidGen: number[];
  nextAsid = 0;
  constructor(
    readonly id: number,
    nrAsids: number,
  ) {
    this.asidMm = new Array(nrAsids).fill(null);
    this.asidGen = new Array(nrAsids).fill(0);
  }
}

export interface Violation {
  invariant: string;
  message: string;
  cpu?: number;
  addr?: number;
}

export class Machine {
  readonly phys = new PhysMem();
  readonly tables: TableStore;
  readonly cpus: Cpu[];
  readonly counters = new Counters();
  readonly files = new Map<string, FileObj>();
  readonly mms: Mm[] = [];
  // Tables handed to call_rcu(), freed at the next grace period.
  rcuPending: number[] = [];
  // Set by the concurrency explorer; kernel paths yield at interleaving points
  // only when it is true, so sequential runs pay one branch per point.
  interleave = false;
  // Violations found while a kernel path ran (checks that must look at the
  // moment something happens, not at the end of a step).
  violations: Violation[] = [];
  curCpu = 0; // CPU executing the current kernel path
  private nextMmId = 1;
  private nextAnonVma = 1;
  private nextFileId = 1;

  constructor(
    readonly arch: Arch,
    readonly config: MachineConfig,
  ) {
    this.tables = new TableStore(this.phys, arch.ptrsPerTable);
    this.cpus = [];
    for (let i = 0; i < config.cpus; i++) this.cpus.push(new Cpu(i, 6));
  }

  newMm(mmapBase: number): Mm {
    const pgd = this.tables.alloc(this.arch.levels);
    const mm = new Mm(this.nextMmId++, pgd, this.config.cpus, mmapBase);
    this.mms.push(mm);
    return mm;
  }

  newAnonVma(): number {
    return this.nextAnonVma++;
  }

  file(name: string, size: number, shmem: boolean): FileObj {
    let f = this.files.get(name);
    if (f === undefined) {
      f = new FileObj(this.nextFileId++, name, size, shmem);
      this.files.set(name, f);
    } else if (f.size < size) f.size = size;
    return f;
  }

  // A grace period elapses (all CPUs passed a quiescent state): RCU-deferred
  // table frees run (models tlb_remove_table_rcu() callbacks).
  rcuGracePeriod(): void {
    const p = this.rcuPending;
    if (p.length === 0) return;
    if (this.config.checkInvariants)
      this.violations.push(
        ...checkFreedFrames(
          this,
          p.map((slot) => this.tables.pfn[slot] as number),
          "RCU table free",
        ),
      );
    for (const slot of p) this.tables.free(slot);
    this.counters.ptFree += p.length;
    this.rcuPending = [];
  }
}
