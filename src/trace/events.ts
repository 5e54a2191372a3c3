/**
 * The normalized event model shared by the trace parsers (strace, perf trace).
 *
 * Pure types plus a few constants: no Node APIs, so this runs in a browser.
 * See docs/trace-events.md for the rules (ordering of split calls, clone flag
 * interpretation, the fault read/write rule, failed calls, what is skipped).
 */

/** Page protection as three booleans (PROT_NONE = all false). */
export interface Prot {
  read: boolean;
  write: boolean;
  exec: boolean;
}

/** Fields every event carries. */
export interface EventBase {
  /**
   * 1-based line number of the line that completed the event: the syscall line itself, the
   * `<... x resumed>` line (strace) or the `... [continued]` line (perf). For faults and exit
   * status lines, the line itself.
   */
  line: number;
  /** For calls split over two lines: the line of the first half (`<unfinished ...>` or the perf entry line `...`). */
  startLine?: number;
  /**
   * Thread-group id (the process), inferred from clone lineage: a child created with CLONE_THREAD
   * gets its creator's pid, everything else is its own process (pid = tid). Tids never seen being
   * created are taken as their own process. strace lines without a pid prefix get tid 0 (the
   * initial tracee, whose real pid strace does not print).
   */
  pid: number;
  /** The task id printed by the tracer (strace's "pid" prefix, perf's comm/tid). */
  tid?: number;
  /**
   * Seconds. For syscalls this is the entry time (strace prints the timestamp of the entry; for split
   * calls it is the time on the `<unfinished ...>` line; perf prints the entry time). strace -tt/-t:
   * seconds since midnight (wraps are unrolled); -ttt: epoch seconds; perf: seconds since the start of
   * the session. Absent when the tracer printed none (perf's `?` lines, strace without -t).
   */
  time?: number;
  /** Syscall duration in seconds (strace -T `<0.000012>`, perf `( 0.015 ms)`), when printed. */
  duration?: number;
  /** Command name (perf only: the `comm` in `comm/tid`). */
  comm?: string;
}

/** Fields of every syscall event. */
export interface SyscallBase extends EventBase {
  /** The syscall as named in the trace (e.g. "mmap", "mmap2", "clone3", "vfork", "exit_group"). */
  syscall: string;
  /**
   * Set when the call failed or its result is unknown: the errno name ("ENOMEM", "ERESTARTSYS")
   * for `= -1 ENOMEM (...)` / `= ? ERESTARTSYS (...)`, or "?" for a bare `= ?`. Result fields are
   * then absent. The replayer skips such events (except exit, whose result is always "?" — exit
   * events never carry `error`).
   */
  error?: string;
}

export interface MmapEvent extends SyscallBase {
  kind: "mmap";
  /** The result: start of the new mapping. Absent iff `error` is set. */
  addr?: number;
  /** The address argument (hint, or the target with MAP_FIXED*); 0 for NULL. */
  hint: number;
  len: number;
  prot: Prot;
  /** MAP_* names ("MAP_PRIVATE", "MAP_ANONYMOUS", ...); unknown bits as hex strings ("0x40000000"). */
  flags: string[];
  /** -1 for none (and always -1 with MAP_ANONYMOUS). */
  fd: number;
  /** Byte offset into the file (mmap2's page offset is converted to bytes). */
  offset: number;
  /** Path of `fd` when known (strace -y `3</path>`, or the parser's per-process fd table). */
  file?: string;
}

export interface MunmapEvent extends SyscallBase {
  kind: "munmap";
  addr: number;
  len: number;
}

export interface MprotectEvent extends SyscallBase {
  kind: "mprotect";
  addr: number;
  len: number;
  prot: Prot;
  /** Protection-key (pkey_mprotect only). */
  pkey?: number;
}

export interface MadviseEvent extends SyscallBase {
  kind: "madvise";
  addr: number;
  len: number;
  /** "MADV_DONTNEED", "MADV_FREE", ...; unknown values as "MADV_<n>". */
  advice: string;
}

export interface BrkEvent extends SyscallBase {
  kind: "brk";
  /** The argument (0 for NULL: a query). */
  requested: number;
  /** The new (or, when the request failed, the unchanged) break. brk never reports -1. */
  result?: number;
}

export interface MremapEvent extends SyscallBase {
  kind: "mremap";
  oldAddr: number;
  oldLen: number;
  newLen: number;
  /** MREMAP_* names. */
  flags: string[];
  /** The 5th argument (only with MREMAP_FIXED). */
  fixedAddr?: number;
  /** The result. Absent iff `error` is set. */
  newAddr?: number;
}

export interface CloneEvent extends SyscallBase {
  kind: "clone";
  /** The new task's id (the parent's return value). Absent iff `error` is set. */
  child?: number;
  /** CLONE_THREAD: the child is a thread of the caller's process (same mm, same pid). */
  thread: boolean;
  /** CLONE_VM without CLONE_THREAD (vfork, posix_spawn): a new process that borrows the caller's mm until it execs or exits. */
  vfork: boolean;
  /** CLONE_VM: the child shares the caller's mm (thread || vfork). Otherwise the mm is copied (fork). */
  sharesMm: boolean;
  /**
   * CLONE_* names plus the exit signal ("SIGCHLD") as printed; undefined when the tracer lost the
   * arguments (perf `... [continued]: clone())` without an entry line, perf clone3). With unknown
   * flags, fork/vfork are still classified by name and clone/clone3 default to a plain fork.
   */
  flags?: string[];
}

export interface ExecveEvent extends SyscallBase {
  kind: "execve";
  /** The program path when printed as a string (strace always; perf only with the vfs_getname probe). */
  path?: string;
  /** True when the call returned 0: the caller's mm was replaced. */
  success: boolean;
}

export interface ExitEvent extends EventBase {
  kind: "exit";
  /**
   * exit / exit_group: the syscall (the task or the whole group is about to go away).
   * exited / killed: strace's `+++ exited with N +++` / `+++ killed by SIGx +++` status lines (the task is gone).
   * superseded: strace's `L +++ superseded by execve in pid T +++`: thread T exec'd and took over the
   *   leader's pid L (its execve resumes under L). The event has tid T (gone as a task of its own) and
   *   `leader` L.
   */
  via: "exit" | "exit_group" | "exited" | "killed" | "superseded";
  /** Exit status (the syscall argument or the reported status); absent for killed/superseded. */
  status?: number;
  /** exit_group, or a fatal signal: every thread of the process goes. */
  group: boolean;
  /** True for the status lines (`+++ ... +++`): no further events for this tid. */
  final: boolean;
  /** The fatal signal for via = "killed" ("SIGKILL"). */
  signal?: string;
  coreDumped?: boolean;
  /** For via = "superseded": the leader pid the exec'ing thread continues as. */
  leader?: number;
}

export interface FaultEvent extends EventBase {
  kind: "fault";
  /**
   * The faulting virtual address, when the trace shows it: a bare address (no map known to perf),
   * or an identity-mapped map (//anon, [heap], [stack], /dev/zero, /anon_hugepage, /SYSV...).
   * Undefined for file-backed and special maps, where perf prints only `map@offset` (`mapOffset`)
   * relative to the map; the replayer must resolve those from its own view of the mappings.
   */
  addr?: number;
  /** The mapping name perf printed before `@` ("//anon", "[heap]", "/usr/lib/x86_64-linux-gnu/libc.so.6"). */
  map?: string;
  /** The number perf printed after `@` (equal to addr for identity maps). */
  mapOffset?: number;
  /** Write access? undefined when the trace does not tell (see the rule in docs/trace-events.md). */
  write: boolean | undefined;
  /** Instruction fetch? true when ip and target print identically; undefined otherwise. */
  fetch: boolean | undefined;
  major: boolean;
  /** perf's level 'k': the fault was taken in kernel mode (copy_to_user, elf_load, ...) on a user address. */
  kernel: boolean;
  /** perf's map type: 'd' (a map was found), 'x' (found as code: old perf only), '?' (no map). */
  mapType: string;
  /** The faulting ip when printed as a bare number (map-relative for file-backed code). */
  ip?: number;
  /** The faulting ip as printed when symbolic ("_dl_start+0x3d"). */
  ipSym?: string;
}

export type SyscallEvent = MmapEvent | MunmapEvent | MprotectEvent | MadviseEvent | BrkEvent | MremapEvent | CloneEvent | ExecveEvent;

export type TraceEvent = SyscallEvent | ExitEvent | FaultEvent;

export type TraceEventKind = TraceEvent["kind"];

export const TRACE_EVENT_KINDS: readonly TraceEventKind[] = ["mmap", "munmap", "mprotect", "madvise", "brk", "mremap", "clone", "execve", "exit", "fault"];

/** Counters a parser keeps while it runs (read them from the generator's `stats` after iterating). */
export interface ParseStats {
  /** Lines read (including blank and ignored ones). */
  lines: number;
  /** Events yielded. */
  events: number;
  eventsByKind: Record<string, number>;
  /** Malformed lines skipped (lenient mode only; non-lenient mode throws on the first one). */
  skipped: number;
  /** Malformed lines by reason (the TraceError `reason`). */
  skippedByReason: Record<string, number>;
  /**
   * Well-formed lines and half-calls that produce no event, by reason: "other-syscall", "signal",
   * "noise", "blank", "child-return", "orphan-resumed", "orphan-continued", "unfinished-dropped",
   * "entry-dropped".
   */
  ignored: number;
  ignoredByReason: Record<string, number>;
  /** Syscalls seen but not modelled, by name (wait4: 86, ...). */
  otherSyscalls: Record<string, number>;
}

export interface ParseOptions {
  /** File name used in error messages. */
  file: string;
  /** Skip malformed lines (counting them in `stats`) instead of throwing a TraceError. */
  lenient: boolean;
  /**
   * Reorder window in seconds (default 0: trace order). With w > 0, events are re-sorted by `time`
   * (entry time for syscalls) using a bounded buffer: an event is released once an event at least
   * w seconds later has been read. perf trace output is not globally time-ordered across CPUs
   * (up to ~4 ms in the sample recording); 0.05 is a safe choice there. Untimed events sort with the
   * previous event of the same tid. pid lineage is computed after reordering.
   */
  reorder?: number;
}

/** What parseStrace / parsePerfTrace return: an async generator with live counters. */
export interface TraceParser extends AsyncGenerator<TraceEvent, void, undefined> {
  readonly stats: ParseStats;
}

export type TraceFormat = "strace" | "perftrace";

export function emptyProt(): Prot {
  return { read: false, write: false, exec: false };
}
