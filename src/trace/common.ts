/**
 * Internals shared by the strace and perf-trace parsers: number and flag decoding, the output
 * pipeline (placeholder sequencing -> optional time reorder -> pid lineage), fd tables and the
 * driver that turns a line handler into a TraceParser. No Node APIs.
 */
import type { CloneEvent, ParseOptions, ParseStats, Prot, TraceEvent, TraceParser } from "./events.js";
import { LineError, TraceError } from "./errors.js";

// ---------------------------------------------------------------------------------------------
// numbers

const DEC = /^-?\d+$/;
const HEX = /^0x[0-9a-fA-F]+$/;

/** "NULL" -> 0, "0x1f" -> 31, "-1", "4096". undefined when not a number or not a safe integer. */
export function toNum(s: string): number | undefined {
  let v: number;
  if (HEX.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (DEC.test(s)) v = Number(s);
  else if (s === "NULL") return 0;
  else return undefined;
  return Number.isSafeInteger(v) ? v : undefined;
}

/** Like toNum but throws a LineError naming what was expected. */
export function num(s: string, what: string, col: number): number {
  const v = toNum(stripComment(s));
  if (v === undefined) throw new LineError(col, `expected a number for ${what}, got '${clip(s)}'`, "bad-number");
  return v;
}

/** Remove a trailing strace comment (`0x22 /* MAP_PRIVATE|MAP_ANONYMOUS *\/`) and surrounding blanks. */
export function stripComment(s: string): string {
  const i = s.indexOf("/*");
  return (i >= 0 ? s.slice(0, i) : s).trim();
}

export function clip(s: string, n = 40): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}

// ---------------------------------------------------------------------------------------------
// symbolic flags

type BitTable = ReadonlyArray<readonly [string, number]>;

const PROT_BITS: BitTable = [
  ["PROT_READ", 0x1],
  ["PROT_WRITE", 0x2],
  ["PROT_EXEC", 0x4],
  ["PROT_SEM", 0x8],
  ["PROT_GROWSDOWN", 0x01000000],
  ["PROT_GROWSUP", 0x02000000],
];

const MAP_BITS: BitTable = [
  ["MAP_FIXED", 0x10],
  ["MAP_ANONYMOUS", 0x20],
  ["MAP_32BIT", 0x40],
  ["MAP_GROWSDOWN", 0x100],
  ["MAP_DENYWRITE", 0x800],
  ["MAP_EXECUTABLE", 0x1000],
  ["MAP_LOCKED", 0x2000],
  ["MAP_NORESERVE", 0x4000],
  ["MAP_POPULATE", 0x8000],
  ["MAP_NONBLOCK", 0x10000],
  ["MAP_STACK", 0x20000],
  ["MAP_HUGETLB", 0x40000],
  ["MAP_SYNC", 0x80000],
  ["MAP_FIXED_NOREPLACE", 0x100000],
  ["MAP_UNINITIALIZED", 0x4000000],
];

const CLONE_BITS: BitTable = [
  ["CLONE_VM", 0x100],
  ["CLONE_FS", 0x200],
  ["CLONE_FILES", 0x400],
  ["CLONE_SIGHAND", 0x800],
  ["CLONE_PIDFD", 0x1000],
  ["CLONE_PTRACE", 0x2000],
  ["CLONE_VFORK", 0x4000],
  ["CLONE_PARENT", 0x8000],
  ["CLONE_THREAD", 0x10000],
  ["CLONE_NEWNS", 0x20000],
  ["CLONE_SYSVSEM", 0x40000],
  ["CLONE_SETTLS", 0x80000],
  ["CLONE_PARENT_SETTID", 0x100000],
  ["CLONE_CHILD_CLEARTID", 0x200000],
  ["CLONE_DETACHED", 0x400000],
  ["CLONE_UNTRACED", 0x800000],
  ["CLONE_CHILD_SETTID", 0x1000000],
  ["CLONE_NEWCGROUP", 0x2000000],
  ["CLONE_NEWUTS", 0x4000000],
  ["CLONE_NEWIPC", 0x8000000],
  ["CLONE_NEWUSER", 0x10000000],
  ["CLONE_NEWPID", 0x20000000],
  ["CLONE_NEWNET", 0x40000000],
  ["CLONE_IO", 0x80000000],
];

const MREMAP_BITS: BitTable = [
  ["MREMAP_MAYMOVE", 1],
  ["MREMAP_FIXED", 2],
  ["MREMAP_DONTUNMAP", 4],
];

const MADV_NAMES: Record<number, string> = {
  0: "MADV_NORMAL",
  1: "MADV_RANDOM",
  2: "MADV_SEQUENTIAL",
  3: "MADV_WILLNEED",
  4: "MADV_DONTNEED",
  8: "MADV_FREE",
  9: "MADV_REMOVE",
  10: "MADV_DONTFORK",
  11: "MADV_DOFORK",
  12: "MADV_MERGEABLE",
  13: "MADV_UNMERGEABLE",
  14: "MADV_HUGEPAGE",
  15: "MADV_NOHUGEPAGE",
  16: "MADV_DONTDUMP",
  17: "MADV_DODUMP",
  18: "MADV_WIPEONFORK",
  19: "MADV_KEEPONFORK",
  20: "MADV_COLD",
  21: "MADV_PAGEOUT",
  22: "MADV_POPULATE_READ",
  23: "MADV_POPULATE_WRITE",
  24: "MADV_DONTNEED_LOCKED",
  25: "MADV_COLLAPSE",
  100: "MADV_HWPOISON",
  101: "MADV_SOFT_OFFLINE",
  102: "MADV_GUARD_INSTALL",
  103: "MADV_GUARD_REMOVE",
};

const SIGNALS = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

function signalName(n: number): string {
  return SIGNALS[n] || `SIG${n}`;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function decodeBits(v: number, table: BitTable, out: string[]): number {
  let rest = v;
  for (const [name, bit] of table) {
    if (rest >= bit && Math.floor(rest / bit) % 2 === 1) {
      out.push(name);
      rest -= bit;
    }
  }
  return rest;
}

type FlagKind = "prot" | "map" | "clone" | "mremap";

const FLAG_PREFIX: Record<FlagKind, string> = { prot: "PROT_", map: "MAP_", clone: "CLONE_", mremap: "MREMAP_" };
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Numeric flag word -> names (known bits by name, the rest as one hex string). */
function decodeNumericFlags(v: number, kind: FlagKind, out: string[]): void {
  let rest = v;
  if (kind === "map") {
    const type = v % 4;
    if (type === 1) out.push("MAP_SHARED");
    else if (type === 2) out.push("MAP_PRIVATE");
    else if (type === 3) out.push("MAP_SHARED_VALIDATE");
    rest = decodeBits(v - type, MAP_BITS, out);
  } else if (kind === "clone") {
    const sig = v % 256;
    rest = decodeBits(v - sig, CLONE_BITS, out);
    if (sig !== 0) out.push(signalName(sig));
  } else {
    rest = decodeBits(v, kind === "prot" ? PROT_BITS : MREMAP_BITS, out);
  }
  if (rest !== 0) out.push(hex(rest));
}

/**
 * Parse a flag word as strace (`MAP_PRIVATE|MAP_ANONYMOUS`, `0x22`, `0x22 /* ... *\/`) or perf
 * (`PRIVATE|ANONYMOUS`, `CHILD_SETTID|0x11`) prints it. `addPrefix` adds the kind's prefix to bare
 * names (perf). Returns the list of names; "0" / "PROT_NONE" / "" give [].
 */
export function parseFlags(text: string, kind: FlagKind, addPrefix: boolean, col: number): string[] {
  const s = stripComment(text);
  const out: string[] = [];
  if (s === "" || s === "0") return out;
  const prefix = FLAG_PREFIX[kind];
  for (const part of s.split("|")) {
    const p = part.trim();
    const n = toNum(p);
    if (n !== undefined && n >= 0) {
      decodeNumericFlags(n, kind, out);
      continue;
    }
    if (!NAME.test(p)) throw new LineError(col, `expected ${prefix}* flags, got '${clip(s)}'`, "bad-flags");
    if (p === "PROT_NONE" || (addPrefix && kind === "prot" && p === "NONE")) continue;
    if (kind === "clone" && p.startsWith("SIG")) out.push(p);
    else if (addPrefix && !p.startsWith(prefix)) out.push(prefix + p);
    else out.push(p);
  }
  return out;
}

export function protOf(names: string[]): Prot {
  return { read: names.includes("PROT_READ"), write: names.includes("PROT_WRITE"), exec: names.includes("PROT_EXEC") };
}

/** `MADV_DONTNEED`, `DONTNEED` (perf), `4`, `0x4` -> "MADV_DONTNEED". "" -> MADV_NORMAL (perf omits 0). */
export function parseAdvice(text: string, col: number): string {
  const s = stripComment(text);
  if (s === "") return "MADV_NORMAL";
  const n = toNum(s);
  if (n !== undefined) return MADV_NAMES[n] ?? `MADV_${n}`;
  if (!NAME.test(s)) throw new LineError(col, `expected an MADV_* advice, got '${clip(s)}'`, "bad-flags");
  return s.startsWith("MADV_") ? s : `MADV_${s}`;
}

/** Classify clone flags (see CloneEvent). */
export function cloneKind(flags: string[] | undefined, syscall: string): Pick<CloneEvent, "thread" | "vfork" | "sharesMm"> {
  if (flags === undefined) {
    const vfork = syscall === "vfork";
    return { thread: false, vfork, sharesMm: vfork };
  }
  const vm = flags.includes("CLONE_VM") || syscall === "vfork";
  const thread = flags.includes("CLONE_THREAD");
  return { thread, vfork: vm && !thread, sharesMm: vm };
}

// ---------------------------------------------------------------------------------------------
// results

export interface Ret {
  /** The numeric result; undefined for `?`, an empty result (perf child side) or an error. */
  value?: number;
  /** errno name for failures (`-1 ENOMEM (...)`, `? ERESTARTSYS (...)`), "?" for a bare `?`. */
  error?: string;
  /** Path decoded by strace -y (`3</etc/ld.so.cache>`). */
  path?: string;
  /** perf printed nothing after `=` (the child's side of clone). */
  empty: boolean;
}

const RET = /^(\?|-?\d+|0x[0-9a-fA-F]+)(?:<([^>]*)>)?(?: ([A-Z][A-Z0-9_]*|E\?\?\?))?(?: \(.*\))?(?: <unavailable>)?$/;

/** Parse what follows `= ` (trailing blanks already removed). */
export function parseRet(text: string, col: number): Ret {
  if (text === "") return { empty: true };
  const m = RET.exec(text);
  if (m === null) throw new LineError(col, `expected a result ('= 0x...', '= -1 ENOMEM (...)', '= ?'), got '= ${clip(text)}'`, "bad-result");
  const [, v, path, errno] = m;
  const r: Ret = { empty: false };
  if (path !== undefined) r.path = path;
  if (v === "?") {
    r.error = errno ?? "?";
    return r;
  }
  const n = toNum(v!);
  if (n === undefined) throw new LineError(col, `result out of range: '${clip(v!)}'`, "bad-number");
  if (errno !== undefined && n < 0) r.error = errno;
  else if (n === -1 && errno === undefined && text.startsWith("-1 (")) r.error = "E???";
  else r.value = n;
  return r;
}

// ---------------------------------------------------------------------------------------------
// fd tables (cheap file names for mmap fds)

interface FdEntry {
  path: string;
  cloexec: boolean;
}

/** Per-task fd -> path tables. Tasks created with CLONE_FILES share one table; fork copies it. */
export class FdTables {
  private readonly byTid = new Map<number, Map<number, FdEntry>>();

  private table(tid: number): Map<number, FdEntry> {
    let t = this.byTid.get(tid);
    if (t === undefined) {
      t = new Map();
      this.byTid.set(tid, t);
    }
    return t;
  }
  path(tid: number, fd: number): string | undefined {
    return this.byTid.get(tid)?.get(fd)?.path;
  }
  open(tid: number, fd: number, path: string, cloexec: boolean): void {
    this.table(tid).set(fd, { path, cloexec });
  }
  close(tid: number, fd: number): void {
    this.byTid.get(tid)?.delete(fd);
  }
  dup(tid: number, from: number, to: number, cloexec: boolean): void {
    const e = this.byTid.get(tid)?.get(from);
    if (e) this.table(tid).set(to, { path: e.path, cloexec });
    else this.close(tid, to);
  }
  clone(parent: number, child: number, shareFiles: boolean): void {
    const t = this.byTid.get(parent);
    if (t === undefined) return;
    this.byTid.set(child, shareFiles ? t : new Map(t));
  }
  exec(tid: number): void {
    const t = this.byTid.get(tid);
    if (t === undefined) return;
    const fresh = new Map<number, FdEntry>();
    for (const [fd, e] of t) if (!e.cloexec) fresh.set(fd, e);
    this.byTid.set(tid, fresh);
  }
  exit(tid: number): void {
    this.byTid.delete(tid);
  }
}

// ---------------------------------------------------------------------------------------------
// output pipeline

/** A reserved position in the output stream, filled later (or dropped). */
export interface Slot {
  ev: TraceEvent | null;
  done: boolean;
  /** Called if the slot is evicted because the queue grew too long. */
  onEvict?: () => void;
}

const MAX_QUEUE = 1 << 16;

interface HeapItem {
  key: number;
  seq: number;
  ev: TraceEvent;
}

export function newStats(): ParseStats {
  return { lines: 0, events: 0, eventsByKind: {}, skipped: 0, skippedByReason: {}, ignored: 0, ignoredByReason: {}, otherSyscalls: {} };
}

function bump(r: Record<string, number>, k: string, n = 1): void {
  r[k] = (r[k] ?? 0) + n;
}

/**
 * Events go: push()/reserve()+fill() -> sequencing (a reserved slot holds back everything after it
 * until it is filled) -> optional time reorder -> lineage (sets `pid`) -> `ready`.
 */
export class Output {
  ready: TraceEvent[] = [];
  private slots: Slot[] = [];
  private head = 0;
  private readonly heap: HeapItem[] = [];
  private seq = 0;
  private watermark = Number.NEGATIVE_INFINITY;
  private readonly lastKey = new Map<number, number>();
  private readonly tgid = new Map<number, number>();

  constructor(
    readonly stats: ParseStats,
    private readonly window: number,
  ) {}

  ignore(reason: string): void {
    this.stats.ignored++;
    bump(this.stats.ignoredByReason, reason);
  }

  otherSyscall(name: string): void {
    this.ignore("other-syscall");
    bump(this.stats.otherSyscalls, name);
  }

  push(ev: TraceEvent): void {
    if (this.head === this.slots.length) this.release(ev);
    else {
      this.slots.push({ ev, done: true });
      this.checkCap();
    }
  }

  reserve(): Slot {
    const s: Slot = { ev: null, done: false };
    this.slots.push(s);
    this.checkCap();
    return s;
  }

  fill(slot: Slot, ev: TraceEvent | null): void {
    if (slot.done) return;
    slot.ev = ev;
    slot.done = true;
    this.drain();
  }

  /** End of input: every open slot is dropped (its owner already counted why), the reorder buffer is flushed. */
  finish(): void {
    for (let i = this.head; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (!s.done) {
        s.done = true;
        s.ev = null;
      }
    }
    this.drain();
    while (this.heap.length > 0) this.lineage(this.heapPop().ev);
  }

  private checkCap(): void {
    if (this.slots.length - this.head <= MAX_QUEUE) return;
    const s = this.slots[this.head]!;
    if (!s.done) {
      s.done = true;
      s.ev = null;
      s.onEvict?.();
      this.ignore("evicted");
    }
    this.drain();
  }

  private drain(): void {
    const slots = this.slots;
    while (this.head < slots.length && slots[this.head]!.done) {
      const ev = slots[this.head]!.ev;
      this.head++;
      if (ev !== null) this.release(ev);
    }
    if (this.head === slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > slots.length) {
      this.slots = slots.slice(this.head);
      this.head = 0;
    }
  }

  private release(ev: TraceEvent): void {
    if (this.window <= 0) {
      this.lineage(ev);
      return;
    }
    const tid = ev.tid ?? 0;
    let key: number;
    if (ev.time !== undefined) {
      key = ev.time;
      if (key > this.watermark) this.watermark = key;
    } else {
      key = this.lastKey.get(tid) ?? this.watermark;
    }
    this.lastKey.set(tid, key);
    this.heapPush({ key, seq: this.seq++, ev });
    const limit = this.watermark - this.window;
    while (this.heap.length > 0 && this.heap[0]!.key <= limit) this.lineage(this.heapPop().ev);
  }

  private lineage(ev: TraceEvent): void {
    const pid = ev.tid === undefined ? 0 : (this.tgid.get(ev.tid) ?? ev.tid);
    ev.pid = pid;
    if (ev.kind === "clone" && ev.child !== undefined) this.tgid.set(ev.child, ev.thread ? pid : ev.child);
    this.stats.events++;
    bump(this.stats.eventsByKind, ev.kind);
    this.ready.push(ev);
  }

  private less(a: HeapItem, b: HeapItem): boolean {
    return a.key < b.key || (a.key === b.key && a.seq < b.seq);
  }

  private heapPush(it: HeapItem): void {
    const h = this.heap;
    h.push(it);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private heapPop(): HeapItem {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

// ---------------------------------------------------------------------------------------------
// driver

export interface LineHandler {
  /** Handle one line (1-based number). Throw LineError for a malformed line, before changing any state. */
  line(text: string, lineNo: number): void;
  /** End of input. */
  end(): void;
}

export function drive(lines: Iterable<string> | AsyncIterable<string>, opts: ParseOptions, make: (out: Output) => LineHandler): TraceParser {
  const stats = newStats();
  const out = new Output(stats, opts.reorder ?? 0);
  return new EventStream(lines, opts, make(out), out, stats);
}

const DONE: IteratorReturnResult<void> = { value: undefined, done: true };

/**
 * The async generator returned by the parsers, written by hand: an `async function*` costs several
 * promise hops per yielded event (about 4x slower under node:test's async context tracking); this
 * one resolves each next() with one already-settled promise and reads sync sources synchronously.
 */
class EventStream implements TraceParser {
  private buf: TraceEvent[] = [];
  private pos = 0;
  private n = 0;
  private finished = false;
  private readonly sync?: Iterator<string>;
  private readonly async?: AsyncIterator<string>;

  constructor(
    lines: Iterable<string> | AsyncIterable<string>,
    private readonly opts: ParseOptions,
    private readonly handler: LineHandler,
    private readonly out: Output,
    readonly stats: ParseStats,
  ) {
    if (Symbol.asyncIterator in lines) this.async = lines[Symbol.asyncIterator]();
    else this.sync = lines[Symbol.iterator]();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<TraceEvent, void>> {
    if (this.pos < this.buf.length) return Promise.resolve({ value: this.buf[this.pos++]!, done: false });
    if (this.finished) return Promise.resolve(DONE);
    if (this.async !== undefined) return this.pullAsync(this.async);
    try {
      const it = this.sync!;
      while (this.out.ready.length === 0) {
        const r = it.next();
        if (r.done) {
          this.end();
          break;
        }
        this.feed(r.value);
      }
      return Promise.resolve(this.take());
    } catch (e) {
      this.finished = true;
      return Promise.reject(e);
    }
  }

  private async pullAsync(it: AsyncIterator<string>): Promise<IteratorResult<TraceEvent, void>> {
    try {
      while (this.out.ready.length === 0) {
        const r = await it.next();
        if (r.done) {
          this.end();
          break;
        }
        this.feed(r.value);
      }
      return this.take();
    } catch (e) {
      this.finished = true;
      try {
        await it.return?.();
      } catch {
        // keep the parse error, not the source's close error
      }
      throw e;
    }
  }

  async return(): Promise<IteratorResult<TraceEvent, void>> {
    this.stop();
    await this.async?.return?.();
    return DONE;
  }

  async throw(e?: unknown): Promise<IteratorResult<TraceEvent, void>> {
    this.stop();
    await this.async?.return?.();
    throw e;
  }

  private stop(): void {
    if (!this.finished) this.sync?.return?.();
    this.finished = true;
    this.buf = [];
    this.pos = 0;
  }

  private feed(text: string): void {
    const n = ++this.n;
    this.stats.lines = n;
    try {
      this.handler.line(text, n);
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      const err = new TraceError(this.opts.file, n, e.col, e.message, e.reason);
      if (!this.opts.lenient) throw err;
      this.stats.skipped++;
      bump(this.stats.skippedByReason, e.reason);
    }
  }

  private end(): void {
    this.finished = true;
    this.handler.end();
    this.out.finish();
  }

  /** Move out.ready into the buffer and return its first event (or DONE). */
  private take(): IteratorResult<TraceEvent, void> {
    this.buf = this.out.ready;
    this.out.ready = [];
    this.pos = 0;
    if (this.buf.length === 0) return DONE;
    return { value: this.buf[this.pos++]!, done: false };
  }
}

// ---------------------------------------------------------------------------------------------
// strace-style argument scanning

/**
 * Scan a C-like argument list starting at s[start] (just after the opening parenthesis), splitting
 * top-level commas. Strings ("..." with backslash escapes, possibly followed by `...`), nested
 * ()[]{} and comments are skipped over; `N<...>` (strace -y fd decoration) is one token.
 * Pushes trimmed args and their start offsets; returns the index of the closing ')' or -1 when the
 * list does not close on this text. Throws on an unterminated string or comment when `complete`.
 */
export function scanArgs(s: string, start: number, args: string[], offs: number[]): number {
  let depth = 0;
  let argStart = start;
  const n = s.length;
  let i = start;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 34 /* " */) {
      i++;
      while (i < n) {
        const d = s.charCodeAt(i);
        if (d === 92 /* \ */) i += 2;
        else if (d === 34) break;
        else i++;
      }
      if (i >= n) return -1;
      i++;
      continue;
    }
    if (c === 47 /* / */ && s.charCodeAt(i + 1) === 42 /* * */) {
      const e = s.indexOf("*/", i + 2);
      if (e < 0) return -1;
      i = e + 2;
      continue;
    }
    if (c === 60 /* < */ && i > start) {
      const p = s.charCodeAt(i - 1);
      if (p >= 48 && p <= 57) {
        const e = s.indexOf(">", i + 1);
        if (e < 0) return -1;
        i = e + 1;
        continue;
      }
    }
    if (c === 40 || c === 91 || c === 123) depth++;
    else if (c === 41 || c === 93 || c === 125) {
      if (depth === 0) {
        if (c !== 41) return -2;
        pushArg(s, argStart, i, args, offs);
        return i;
      }
      depth--;
    } else if (c === 44 /* , */ && depth === 0) {
      pushArg(s, argStart, i, args, offs);
      argStart = i + 1;
    }
    i++;
  }
  return -1;
}

function pushArg(s: string, from: number, to: number, args: string[], offs: number[]): void {
  let a = from;
  while (a < to && s.charCodeAt(a) === 32) a++;
  let b = to;
  while (b > a && s.charCodeAt(b - 1) === 32) b--;
  if (a === b && args.length === 0 && s.charCodeAt(to) === 41) return; // f()
  args.push(s.slice(a, b));
  offs.push(a);
}

/** Decode a strace string literal `"..."` (optionally followed by `...`). undefined when not a string. */
export function decodeCString(arg: string): string | undefined {
  if (arg.charCodeAt(0) !== 34) return undefined;
  let end = arg.length;
  if (arg.endsWith("...")) end -= 3;
  if (end < 2 || arg.charCodeAt(end - 1) !== 34) return undefined;
  const body = arg.slice(1, end - 1);
  if (!body.includes("\\")) return body;
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const d = body[++i];
    if (d === undefined) break;
    if (d === "n") out += "\n";
    else if (d === "t") out += "\t";
    else if (d === "r") out += "\r";
    else if (d === "v") out += "\v";
    else if (d === "f") out += "\f";
    else if (d === "x") {
      const h = body.slice(i + 1, i + 3);
      out += String.fromCharCode(Number.parseInt(h, 16) || 0);
      i += h.length;
    } else if (d >= "0" && d <= "7") {
      let j = i;
      while (j < i + 3 && j < body.length && body[j]! >= "0" && body[j]! <= "7") j++;
      out += String.fromCharCode(Number.parseInt(body.slice(i, j), 8));
      i = j - 1;
    } else out += d;
  }
  return out;
}

/** Find `name=VALUE` inside an argument list text (strace clone/clone3 `flags=`); VALUE stops at ',', '}' or ')'. */
export function namedValue(text: string, name: string): string | undefined {
  const key = `${name}=`;
  let i = text.indexOf(key);
  while (i > 0) {
    const p = text.charCodeAt(i - 1);
    if (p === 32 || p === 123 || p === 44 || p === 40) break;
    i = text.indexOf(key, i + 1);
  }
  if (i < 0) return undefined;
  let j = i + key.length;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === 44 || c === 125 || c === 41) break;
    j++;
  }
  return text.slice(i + key.length, j).trim();
}

/** Bookkeeping used by the syscalls both formats know: fd tables. Returns true when handled. */
export function trackFds(
  fds: FdTables,
  tid: number,
  name: string,
  get: (i: number, key: string) => string | undefined,
  ret: Ret,
  decodePath: (s: string) => string | undefined,
): boolean {
  const ok = ret.value !== undefined && ret.error === undefined;
  switch (name) {
    case "open":
    case "openat":
    case "openat2":
    case "creat": {
      if (!ok || ret.value! < 0) return true;
      const pathArg = name === "openat" || name === "openat2" ? get(1, "filename") : get(0, "filename");
      const path = ret.path ?? (pathArg === undefined ? undefined : decodePath(pathArg));
      const flagArg = name === "creat" ? "" : ((name === "openat" || name === "openat2" ? get(2, "flags") : get(1, "flags")) ?? "");
      if (path !== undefined) fds.open(tid, ret.value!, path, flagArg.includes("CLOEXEC"));
      else fds.close(tid, ret.value!);
      return true;
    }
    case "memfd_create": {
      if (!ok) return true;
      const p = get(0, "uname");
      const s = p === undefined ? undefined : decodePath(p);
      fds.open(tid, ret.value!, `/memfd:${s ?? "?"}`, (get(1, "flags") ?? "").includes("CLOEXEC"));
      return true;
    }
    case "close": {
      const fd = toNum(stripFdPath(get(0, "fd") ?? ""));
      if (fd !== undefined) fds.close(tid, fd);
      return true;
    }
    case "dup":
    case "dup2":
    case "dup3":
    case "fcntl": {
      if (!ok) return true;
      const from = toNum(stripFdPath(get(0, "fildes") ?? get(0, "oldfd") ?? get(0, "fd") ?? ""));
      if (from === undefined) return true;
      if (name === "fcntl") {
        const cmd = get(1, "cmd") ?? "";
        if (!cmd.includes("DUPFD")) return true;
        fds.dup(tid, from, ret.value!, cmd.includes("CLOEXEC"));
      } else fds.dup(tid, from, ret.value!, name === "dup3" && (get(2, "flags") ?? "").includes("CLOEXEC"));
      return true;
    }
    default:
      return false;
  }
}

/** `3</etc/ld.so.cache>` -> "3" */
export function stripFdPath(s: string): string {
  const i = s.indexOf("<");
  return i > 0 ? s.slice(0, i) : s;
}

/** `3</etc/ld.so.cache>` -> "/etc/ld.so.cache" */
export function fdPath(s: string): string | undefined {
  const i = s.indexOf("<");
  if (i <= 0 || !s.endsWith(">")) return undefined;
  return s.slice(i + 1, -1);
}
