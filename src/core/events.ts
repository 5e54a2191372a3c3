// The model's event stream: what kernel paths and the hardware did, as plain
// records of numbers and ids, for whoever listens (the invariant checks, the
// explorer's counterexamples, `ptlab run --events`, the web view). A leaf:
// it imports nothing from the model.
//
// Machine.events is null until someone subscribes, so an emitting site costs
// one load and one branch when nobody listens (as Machine.il does for the
// explorer). A sink names the kinds it wants in a mask; a site builds its
// record only when some sink wants that kind. Sites are coarse (a TLBI, a
// gather flush, a fault, a table freed), never per entry; stores of entries,
// TLB fills and drops, and folio allocation are seen by the recorder
// (record.ts), which instruments the machine's stores instead.

// One bit per kind, for sinks' masks.
export const EV_FRAMES_FREED = 1 << 0;
export const EV_PINS_RELEASED = 1 << 1;
export const EV_ENTRY = 1 << 2;
export const EV_TLB_FILL = 1 << 3;
export const EV_TLB_DROP = 1 << 4;
export const EV_FLUSH = 1 << 5; // TLBI, DSB, INVLPG, full flushes, IPIs
export const EV_GATHER = 1 << 6;
export const EV_TABLE = 1 << 7;
export const EV_FAULT = 1 << 8;
export const EV_FOLIO = 1 << 9;
export const EV_LOCK = 1 << 10;
export const EV_VIOLATION = 1 << 11;
export const EV_ALL = (1 << 12) - 1;

// Frames that just lost their last reference (the checks look for TLB
// entries and walk caches still pointing at them).
export interface FramesFreedEvent {
  kind: "frames-freed";
  cpu: number;
  pfns: readonly number[];
  what: string; // the kernel function that freed them
}

// GUP pins given back (unpin_user_pages()).
export interface PinsReleasedEvent {
  kind: "pins-released";
  cpu: number;
  pins: readonly unknown[]; // GupPin records (mm/gup.ts)
  where: string;
}

// A store to a page-table entry. level 0 is a PTE; table is the slot of the
// table written, idx the entry's index in it.
export interface EntryEvent {
  kind: "entry";
  cpu: number;
  table: number;
  tablePfn: number;
  level: number;
  idx: number;
  old: number;
  new: number;
  mm: number; // the mm whose tree holds the table, 0 when none does (a withdrawn or deposited table)
  addr: number; // the virtual address the entry maps, -1 when unknown
}

// A TLB or walk-cache entry filled or dropped on a CPU. level: 0 for a page
// entry, -1 for a block (contiguous or huge) entry, n >= 1 for a walk-cache
// entry pointing to a table of level n - 1.
export interface TlbEntryEvent {
  kind: "tlb-fill" | "tlb-drop";
  cpu: number; // whose TLB
  asid: number;
  addr: number;
  size: number; // bytes covered (walk cache: what the table maps)
  level: number;
  pfn: number; // frame, or the table's PFN for a walk-cache entry
}

// TLB maintenance. op names the instruction or kernel primitive:
// arm64 "tlbi vale1is" ... "tlbi vmalle1is", "dsb ish"; x86 "invlpg",
// "flush all", "flush pcid", "ipi". For a broadcast TLBI cpu is the issuer;
// for x86 local flushes it is the CPU flushed; for an IPI, `to`.
export interface FlushEvent {
  kind: "flush";
  cpu: number;
  op: string;
  asid: number; // -1: not tagged by ASID/PCID
  start: number; // -1: whole address space
  end: number;
  leafOnly: boolean; // last level only: walk caches kept
  to: number; // IPI target, otherwise -1
}

// tlb_flush_mmu_tlbonly() handing a gathered range to tlb_flush().
export interface GatherEvent {
  kind: "gather-flush";
  cpu: number;
  mm: number;
  start: number;
  end: number;
  fullmm: boolean;
  freedTables: boolean;
  levels: number; // bit 0: PTEs cleared, 1: PMDs, 2: PUDs, 3: P4Ds
}

// A page-table page leaving the tree's life: queued for an RCU grace
// period, or freed (given back to the page allocator).
export interface TableEvent {
  kind: "table-rcu" | "table-free";
  cpu: number;
  table: number;
  pfn: number;
  level: number;
  via: string; // the kernel function
}

// A page fault entering handle_mm_fault() (the VMA was found and allows
// the access); what it does follows as other events.
export interface FaultEvent {
  kind: "fault";
  cpu: number;
  mm: number;
  addr: number;
  write: boolean;
}

export interface FolioEvent {
  kind: "folio-alloc" | "folio-free";
  cpu: number;
  pfn: number;
  order: number;
}

// Lock transitions as the explorer's scheduler sees them.
export interface LockEvent {
  kind: "lock";
  cpu: number;
  op: "take" | "take-read" | "release" | "downgrade" | "trylock-failed";
  lock: number; // lock class (sync.ts LK_*)
  id: number;
}

export interface ViolationEvent {
  kind: "violation";
  cpu: number;
  invariant: string;
  message: string;
}

export type ModelEvent =
  | FramesFreedEvent
  | PinsReleasedEvent
  | EntryEvent
  | TlbEntryEvent
  | FlushEvent
  | GatherEvent
  | TableEvent
  | FaultEvent
  | FolioEvent
  | LockEvent
  | ViolationEvent;

export const EVENT_BIT: Record<ModelEvent["kind"], number> = {
  "frames-freed": EV_FRAMES_FREED,
  "pins-released": EV_PINS_RELEASED,
  entry: EV_ENTRY,
  "tlb-fill": EV_TLB_FILL,
  "tlb-drop": EV_TLB_DROP,
  flush: EV_FLUSH,
  "gather-flush": EV_GATHER,
  "table-rcu": EV_TABLE,
  "table-free": EV_TABLE,
  fault: EV_FAULT,
  "folio-alloc": EV_FOLIO,
  "folio-free": EV_FOLIO,
  lock: EV_LOCK,
  violation: EV_VIOLATION,
};

export interface ModelSink {
  readonly mask: number; // EV_* bits of the kinds it wants
  event(e: ModelEvent): void;
}

// The subscribers of one machine. emit() is called only by sites that
// tested `mask` first.
export class EventBus {
  mask = 0;
  private sinks: ModelSink[] = [];

  add(s: ModelSink): void {
    this.sinks.push(s);
    this.mask |= s.mask;
  }
  remove(s: ModelSink): void {
    this.sinks = this.sinks.filter((x) => x !== s);
    this.mask = 0;
    for (const x of this.sinks) this.mask |= x.mask;
  }
  get empty(): boolean {
    return this.sinks.length === 0;
  }
  emit(e: ModelEvent): void {
    const bit = EVENT_BIT[e.kind];
    for (const s of this.sinks) if ((s.mask & bit) !== 0) s.event(e);
  }
}
