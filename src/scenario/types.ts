// The validated, normalised form of a scenario file. Loaders (YAML, JSON) produce
// this; the runner and the host driver consume it. Sizes are bytes, already
// parsed from "4K"/"2M"/"1G" forms. Every step keeps the source position of the
// YAML node it came from, so runtime errors (e.g. an unknown region) can name
// file:line:column too.

export interface SourcePos {
  line: number; // 1-based
  col: number; // 1-based
}

export type Prot = { read: boolean; write: boolean; exec: boolean };

export type ThpPolicy = "never" | "madvise" | "always";

export interface Arm64Spec {
  granule: 4 | 16 | 64;
  vaBits: number; // one arch/arm64/Kconfig offers for the granule
  hafdbs: boolean;
  tlbiRange: boolean;
  bbml2NoAbort: boolean;
  asidBits: 8 | 16;
}

export type MthpPolicy = "always" | "madvise" | "inherit";

export interface MachineSpec {
  arch: "x86_64" | "arm64";
  arm64?: Arm64Spec; // default: every feature of a recent core (see schema)
  // Enabled anon mTHP sizes (in KiB, e.g. 64 for hugepages-64kB) and their
  // policy; default none. The machine turns them into folio orders for its
  // page size.
  mthp?: Record<number, MthpPolicy>;
  cpus: number; // 1..64
  levels: 4 | 5; // x86-64 paging levels
  thp: ThpPolicy;
  thpUseZeroPage: boolean; // /sys/kernel/mm/transparent_hugepage/use_zero_page
  ptReclaim: boolean; // CONFIG_PT_RECLAIM
  // Named historical variants: variant name -> selected value.
  variants: Record<string, string>;
  seed: number;
  nowaitAllocFails?: boolean;
  swapBytes?: number; // size of the swap device, 0 or absent: none
  pageCluster?: number; // vm.page-cluster (swap read-ahead), default 3
  memoryBytes?: number; // machine.memory: a memory limit kswapd keeps, absent: none
  headroomBytes?: number; // machine.headroom: free above the low watermark after the set-up
}

export interface ThreadSpec {
  name: string;
  cpu: number;
}

export interface ProcessSpec {
  name: string;
  threads: ThreadSpec[];
}

export type MmapFlag = "private" | "shared" | "anonymous" | "fixed" | "populate" | "noreserve";

export type Advice = "dontneed" | "free" | "hugepage" | "nohugepage" | "willneed" | "cold" | "pageout" | "collapse";

interface StepBase {
  pos: SourcePos;
  thread: string; // thread name; defaults to the first thread of the first process
}

export interface MmapStep extends StepBase {
  op: "mmap";
  region: string; // name the mapping is bound to in the process of `thread`
  size: number;
  prot: Prot;
  flags: MmapFlag[];
  addr?: number; // hint, or exact with "fixed"
  file?: string; // file name for file-backed mappings (created, size = offset + size)
  offset: number; // file offset, default 0
}

// Steps that act on [region.start + offset, region.start + offset + length).
// length defaults to the rest of the region.
interface RangeStepBase extends StepBase {
  region: string;
  offset: number;
  length?: number;
}

export interface MunmapStep extends RangeStepBase {
  op: "munmap";
}
export interface MprotectStep extends RangeStepBase {
  op: "mprotect";
  prot: Prot;
}
export interface MadviseStep extends RangeStepBase {
  op: "madvise";
  advice: Advice;
}
export interface TouchStep extends RangeStepBase {
  op: "touch";
  write: boolean; // "touch" writes by default, "read" is touch with write: false
  stride: number; // 0: the page size
}
export interface MremapStep extends StepBase {
  op: "mremap";
  region: string;
  newSize: number;
  mayMove: boolean;
  newRegion?: string; // rebind the result to this name (default: same name)
}
export interface BrkStep extends StepBase {
  op: "brk";
  delta: number; // may be negative
  region?: string; // bind the heap [start_brk, brk) to this name
}
export interface ForkStep extends StepBase {
  op: "fork";
  child: string; // new process name
  childThread: string; // name of its single thread
  cpu: number; // CPU the child's thread runs on
}
export interface ExitStep extends StepBase {
  op: "exit";
  process: string;
}
export interface LocklessStep extends StepBase {
  op: "lockless";
  region: string;
  offset: number;
  via: "rcu" | "gup_fast";
}
export interface ExecStep extends StepBase {
  op: "exec";
}
export interface OomReapStep extends StepBase {
  op: "oom_reap";
  process: string;
}
export interface TruncateStep extends StepBase {
  op: "truncate";
  file: string;
  size: number;
}
export interface WritebackStep extends StepBase {
  op: "writeback";
  file: string;
}
export interface ReclaimStep extends RangeStepBase {
  op: "reclaim";
  process?: string; // whose region (default: the thread's process)
}
export interface MigrateStep extends RangeStepBase {
  op: "migrate";
  process?: string; // whose region (default: the thread's process)
}
export interface KhugepagedStep extends RangeStepBase {
  op: "khugepaged";
  process?: string; // whose region (default: the thread's process)
}
// pin_user_pages(FOLL_PIN | FOLL_LONGTERM) of the range; `name` (default: the
// region) identifies the pin for unpin and dma.
export interface PinStep extends RangeStepBase {
  op: "pin";
  write: boolean;
  fast: boolean;
  name: string;
}
export interface UnpinStep extends StepBase {
  op: "unpin";
  pin: string;
}
// A device access to one page of a pin.
export interface DmaStep extends StepBase {
  op: "dma";
  pin: string;
  offset: number;
  write: boolean;
}
export interface ReportStep extends StepBase {
  op: "report";
  label: string;
}
export interface RepeatStep extends StepBase {
  op: "repeat";
  count: number;
  // Added to the `offset` of every range step inside, times the iteration index.
  advance: number;
  steps: Step[];
}

export type Step =
  | MmapStep
  | MunmapStep
  | MprotectStep
  | MadviseStep
  | TouchStep
  | MremapStep
  | BrkStep
  | ForkStep
  | ExitStep
  | ReportStep
  | RepeatStep
  | LocklessStep
  | OomReapStep
  | TruncateStep
  | ReclaimStep
  | MigrateStep
  | KhugepagedStep
  | WritebackStep
  | PinStep
  | UnpinStep
  | DmaStep
  | ExecStep;

export interface ExploreSpec {
  preemptions: number;
  maxSteps: number;
  variant: Record<string, string>;
  expect?: string;
  arch?: "x86_64" | "arm64"; // architecture of the counterexample run (with the variant)
  ignore: string[];
  speculate?: number; // speculative TLB fills per execution (absent: 0)
}

export interface Scenario {
  file: string; // path as given, for error messages
  name: string;
  description: string;
  machine: MachineSpec;
  processes: ProcessSpec[];
  steps: Step[];
  concurrent?: Step[]; // run by the explorer, one sequence per thread
  explore?: ExploreSpec;
}

// An input error with a position; the CLI prints `file:line:col: message` and exits 2.
/**
 * `s` on one line: control characters (a newline in a name or a key, say)
 * and the Unicode line separators as JSON escapes, so an error message
 * stays one line whatever the input quoted in it holds.
 */
export function oneLine(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: they are what this replaces
  return s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) =>
    c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    message: string,
  ) {
    super(message);
    this.name = "ScenarioError";
  }
  format(): string {
    return oneLine(`${this.file}:${this.line}:${this.col}: ${this.message}`);
  }
}
