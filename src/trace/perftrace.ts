/**
 * `perf trace -F all` (or `--pf=all`) output parser. No Node APIs. See docs/trace-events.md.
 *
 * Line kinds:
 *   `   0.475 ( 0.018 ms): sh/9266 mmap(len: 8192, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)  = 0x7ff115fc9000`
 *   `   1.813 (         ): sh/9266 vfork()                                     ...`   (entry, result follows later)
 *   `   1.813 ( 0.982 ms): sh/9266  ... [continued]: vfork())                  = 9267`
 *   `       ? (         ): sh/9267  ... [continued]: vfork())                  = 0`  (child side / entry never seen)
 *   `   0.506 ( 0.000 ms): sh/9266 minfault [_dl_init_paths+0xce] => //anon@0x7ff115fc9008 (d.)`
 *
 * perf omits zero-valued arguments, so a missing `addr:` is 0, a missing `off:` is 0, a missing
 * `prot:` is PROT_NONE; with MAP_ANONYMOUS perf hides `fd:`/`off:` (fd is then -1).
 *
 * Ordering: events are emitted in file order, except that a call split into an entry line and a
 * `... [continued]` line is emitted at the entry line's position (later events wait for it), and a
 * `[continued]` line whose entry was not seen yet waits (at its own position) for the same task's
 * next syscall line, which perf sometimes prints late, to recover the arguments. perf's output is
 * not globally time-ordered across CPUs; pass `reorder` (seconds) to sort by time.
 */
import type { FaultEvent, ParseOptions, SyscallEvent, TraceEvent, TraceParser } from "./events.js";
import { LineError } from "./errors.js";
import {
  clip,
  cloneKind,
  drive,
  FdTables,
  type LineHandler,
  num,
  type Output,
  parseAdvice,
  parseFlags,
  parseRet,
  protOf,
  type Ret,
  type Slot,
  toNum,
  trackFds,
} from "./common.js";

const EVENT_SYSCALLS = new Set([
  "mmap",
  "mmap2",
  "munmap",
  "mprotect",
  "pkey_mprotect",
  "madvise",
  "brk",
  "mremap",
  "clone",
  "clone3",
  "fork",
  "vfork",
  "execve",
  "execveat",
]);
const FD_SYSCALLS = new Set(["open", "openat", "openat2", "creat", "close", "dup", "dup2", "dup3", "fcntl", "memfd_create"]);
const CLONE_FAMILY = new Set(["clone", "clone3", "fork", "vfork"]);
/** Calls whose event is meaningful from the result alone (arguments lost). */
const RESULT_ONLY = new Set(["clone", "clone3", "fork", "vfork", "execve", "execveat"]);

/**
 * Kernel helpers that fault on user memory, by direction. A fault taken in kernel mode (level k)
 * whose ip symbol is one of these gets write = true / false; everything else is unknown.
 */
const KERNEL_WRITES = new Set([
  "_copy_to_user",
  "copy_to_user",
  "__copy_to_user",
  "__arch_copy_to_user",
  "_copy_to_iter",
  "copy_to_iter",
  "__put_user_1",
  "__put_user_2",
  "__put_user_4",
  "__put_user_8",
  "__put_user_nocheck_1",
  "__put_user_nocheck_2",
  "__put_user_nocheck_4",
  "__put_user_nocheck_8",
  "clear_user",
  "__clear_user",
  "padzero",
  "elf_load",
  "copy_fpstate_to_sigframe",
  "x64_setup_rt_frame",
  "setup_rt_frame",
  "__setup_rt_frame",
  "filldir",
  "filldir64",
  "fillonedir",
  "copy_siginfo_to_user",
]);
const KERNEL_READS = new Set([
  "_copy_from_user",
  "copy_from_user",
  "__copy_from_user",
  "__arch_copy_from_user",
  "_copy_from_iter",
  "copy_from_iter",
  "__get_user_1",
  "__get_user_2",
  "__get_user_4",
  "__get_user_8",
  "__get_user_nocheck_1",
  "__get_user_nocheck_2",
  "__get_user_nocheck_4",
  "__get_user_nocheck_8",
  "strncpy_from_user",
  "strnlen_user",
]);

const HEADER = /^ *(\?|\d+(?:\.\d+)?) (?:\( *(?:(\d+(?:\.\d+)?) ms)? *\): )?/;
const TASK = /(?:(.{0,32}?)\/)?(\d+) +/y;
const CALL_NAME = /^[A-Za-z_][A-Za-z0-9_]*\(/;
const CONTINUED = /^\.\.\. \[continued\]: ([A-Za-z_][A-Za-z0-9_]*)\(\)\) *=(?: (.*))?$/;
const RESULT_SEP = /\) *=(?: (.*))?$/;
const ENTRY_TAIL = /\) +\.\.\.$/;
const ARG_KEY = /(?:^|, )([A-Za-z_][A-Za-z0-9_]*): /g;

/** Named arguments; undefined when the tracer lost them. */
type Args = Map<string, string> | undefined;

interface Task {
  tid: number;
  comm?: string;
  time?: number;
  duration?: number;
}

interface Pending {
  name: string;
  args: Map<string, string>;
  line: number;
  time?: number;
  slot?: Slot;
}

interface Held {
  name: string;
  ret: Ret;
  line: number;
  task: Task;
  slot?: Slot;
}

/** Parse `perf trace` output. `lines` are raw lines without newline (a trailing CR is ignored). */
export function parsePerfTrace(lines: Iterable<string> | AsyncIterable<string>, opts: ParseOptions): TraceParser {
  return drive(lines, opts, (out) => new PerfHandler(out));
}

class PerfHandler implements LineHandler {
  private readonly pending = new Map<number, Pending>();
  private readonly held = new Map<number, Held>();
  private readonly fds = new FdTables();

  constructor(private readonly out: Output) {}

  line(raw: string, lineNo: number): void {
    const text = raw.trimEnd();
    if (text.length === 0) {
      this.out.ignore("blank");
      return;
    }
    const h = HEADER.exec(text);
    if (h === null) throw new LineError(1, `expected a perf trace line 'TIME ( DUR ms): comm/tid ...', got '${clip(text)}'`, "not-perftrace");
    TASK.lastIndex = h[0].length;
    const t = TASK.exec(text);
    if (t === null) throw new LineError(h[0].length + 1, `expected 'comm/tid' after the time column, got '${clip(text.slice(h[0].length))}'`, "bad-task");
    const tid = Number(t[2]);
    if (!Number.isSafeInteger(tid)) throw new LineError(h[0].length + 1, "tid out of range", "bad-task");
    const task: Task = { tid };
    if (t[1] !== undefined) task.comm = t[1];
    if (h[1] !== "?") task.time = msToSeconds(h[1]!);
    if (h[2] !== undefined) task.duration = msToSeconds(h[2]);
    const pos = TASK.lastIndex;
    const body = text.slice(pos);
    const col0 = pos + 1;

    if (body.startsWith("minfault [") || body.startsWith("majfault [")) {
      this.out.push(this.fault(body, task, lineNo, col0));
      return;
    }
    if (body.startsWith("... [continued]: ")) {
      const m = CONTINUED.exec(body);
      if (m === null) throw new LineError(col0, `expected '... [continued]: name()) = result', got '${clip(body)}'`, "bad-continued");
      const ret = parseRet((m[2] ?? "").trim(), col0 + body.indexOf("=") + 2);
      this.continued(m[1]!, ret, task, lineNo, col0);
      return;
    }
    const nm = CALL_NAME.exec(body);
    if (nm === null)
      throw new LineError(col0, `expected 'minfault', 'majfault', '... [continued]' or a syscall 'name(args) = result', got '${clip(body)}'`, "not-perftrace");
    const name = nm[0].slice(0, -1);
    const e = ENTRY_TAIL.exec(body);
    if (e !== null) {
      const args = parseArgs(body.slice(name.length + 1, e.index), col0 + name.length + 1);
      this.entry(name, args, task, lineNo, col0);
      return;
    }
    const r = RESULT_SEP.exec(body);
    if (r === null || r.index < name.length)
      throw new LineError(col0, `expected ') = result' or ') ...' after the arguments of ${name}, got '${clip(body)}'`, "bad-result");
    const args = parseArgs(body.slice(name.length + 1, r.index), col0 + name.length + 1);
    const ret = parseRet((r[1] ?? "").trim(), col0 + r.index + 1);
    const ev = this.build(name, args, ret, task, lineNo, col0);
    this.settleHeld(tid);
    this.dropPending(tid);
    if (ev !== null) this.out.push(ev);
  }

  end(): void {
    for (const tid of [...this.held.keys()]) this.settleHeld(tid);
    for (const tid of [...this.pending.keys()]) this.dropPending(tid);
  }

  // -------------------------------------------------------------------------------------------

  private entry(name: string, args: Map<string, string>, task: Task, lineNo: number, col0: number): void {
    const tid = task.tid;
    const held = this.held.get(tid);
    if (held !== undefined && held.name === name) {
      // The entry printed after its [continued] line: complete the held call with these arguments.
      let ev: TraceEvent | null;
      try {
        ev = this.build(name, args, held.ret, { ...held.task, time: task.time }, held.line, col0);
      } catch (e) {
        this.settleHeld(tid);
        throw e;
      }
      this.held.delete(tid);
      if (ev !== null) ev.startLine = lineNo;
      if (held.slot !== undefined) this.out.fill(held.slot, ev);
      else if (ev !== null) this.out.push(ev);
      return;
    }
    if (name === "exit" || name === "exit_group") {
      // Never returns: emit now (validates before any state change).
      const ev = this.build(name, args, { error: "?", empty: false }, task, lineNo, col0);
      this.settleHeld(tid);
      this.dropPending(tid);
      if (ev !== null) this.out.push(ev);
      return;
    }
    this.settleHeld(tid);
    this.dropPending(tid);
    const p: Pending = { name, args, line: lineNo };
    if (task.time !== undefined) p.time = task.time;
    if (EVENT_SYSCALLS.has(name)) {
      const slot = this.out.reserve();
      slot.onEvict = () => {
        if (this.pending.get(tid) === p) this.pending.delete(tid);
      };
      p.slot = slot;
    }
    this.pending.set(tid, p);
  }

  private continued(name: string, ret: Ret, task: Task, lineNo: number, col0: number): void {
    const tid = task.tid;
    const p = this.pending.get(tid);
    if (p !== undefined && p.name === name) {
      let ev: TraceEvent | null;
      try {
        ev = this.build(name, p.args, ret, { ...task, time: p.time }, lineNo, col0);
      } catch (e) {
        this.dropPending(tid); // a malformed completion must not hold the stream back
        throw e;
      }
      this.pending.delete(tid);
      if (ev !== null) ev.startLine = p.line;
      if (p.slot !== undefined) this.out.fill(p.slot, ev);
      else if (ev !== null) this.out.push(ev);
      return;
    }
    this.settleHeld(tid);
    this.dropPending(tid);
    if (CLONE_FAMILY.has(name) && (ret.empty || ret.value === 0)) {
      this.out.ignore("child-return");
      return;
    }
    if (EVENT_SYSCALLS.has(name) || FD_SYSCALLS.has(name)) {
      // Wait for a late entry line from this task.
      const hd: Held = { name, ret, line: lineNo, task };
      if (EVENT_SYSCALLS.has(name)) {
        const slot = this.out.reserve();
        slot.onEvict = () => {
          if (this.held.get(tid) === hd) this.held.delete(tid);
        };
        hd.slot = slot;
      }
      this.held.set(tid, hd);
      return;
    }
    this.out.otherSyscall(name);
  }

  /** The task's held [continued] call gets no late entry: emit it with unknown arguments if that means something. */
  private settleHeld(tid: number): void {
    const hd = this.held.get(tid);
    if (hd === undefined) return;
    this.held.delete(tid);
    let ev: TraceEvent | null = null;
    if (RESULT_ONLY.has(hd.name)) ev = this.build(hd.name, undefined, hd.ret, hd.task, hd.line, 1);
    else this.out.ignore("orphan-continued");
    if (hd.slot !== undefined) this.out.fill(hd.slot, ev);
    else if (ev !== null) this.out.push(ev);
  }

  private dropPending(tid: number): void {
    const p = this.pending.get(tid);
    if (p === undefined) return;
    this.pending.delete(tid);
    if (p.slot !== undefined) {
      this.out.ignore("entry-dropped");
      this.out.fill(p.slot, null);
    }
  }

  private fault(body: string, task: Task, lineNo: number, col0: number): FaultEvent {
    const i = body.indexOf("] => ", 10);
    if (i < 0) throw new LineError(col0, "expected '[ip] => target (xy)' after the fault kind", "bad-fault");
    const ipText = body.slice(10, i);
    const rest = body.slice(i + 5);
    const n = rest.length;
    if (n < 6 || rest.charCodeAt(n - 1) !== 41 || rest.charCodeAt(n - 4) !== 40 || rest.charCodeAt(n - 5) !== 32)
      throw new LineError(col0 + i + 5, `expected 'target (xy)' (map type and level), got '${clip(rest)}'`, "bad-fault");
    const mapType = rest[n - 3]!;
    const level = rest[n - 2]!;
    if (mapType === " " || level === " ") throw new LineError(col0 + i + 5 + n - 4, "expected a map type and a level in '(xy)'", "bad-fault");
    const target = rest.slice(0, n - 5);
    const ev: FaultEvent = {
      kind: "fault",
      line: lineNo,
      pid: 0,
      tid: task.tid,
      major: body.charCodeAt(1) === 97 /* a: maj */,
      kernel: level === "k",
      mapType,
      write: undefined,
      fetch: undefined,
    };
    if (task.time !== undefined) ev.time = task.time;
    if (task.comm !== undefined) ev.comm = task.comm;
    let printed: string;
    const at = target.lastIndexOf("@");
    if (at < 0) {
      printed = target;
      ev.addr = num(target, "fault address", col0 + i + 5);
    } else {
      const map = target.slice(0, at);
      printed = target.slice(at + 1);
      const off = num(printed, "map offset", col0 + i + 5 + at + 1);
      if (map === "") throw new LineError(col0 + i + 5, "expected a map name before '@'", "bad-fault");
      ev.map = map;
      ev.mapOffset = off;
      if (isIdentityMap(map)) ev.addr = off;
    }
    if (ipText === "") throw new LineError(col0 + 10, "expected the faulting ip inside '[...]'", "bad-fault");
    const ip = toNum(ipText);
    if (ip !== undefined) ev.ip = ip;
    else ev.ipSym = ipText;
    if (ipText === printed) {
      ev.fetch = true;
      ev.write = false;
    } else if (ev.kernel && ev.ipSym !== undefined) {
      const plus = ev.ipSym.lastIndexOf("+0x");
      const fn = plus > 0 ? ev.ipSym.slice(0, plus) : ev.ipSym;
      if (KERNEL_WRITES.has(fn)) ev.write = true;
      else if (KERNEL_READS.has(fn)) ev.write = false;
    }
    return ev;
  }

  /** Build the event for a call; args undefined when lost. null when the call yields no event. */
  private build(name: string, args: Args, ret: Ret, task: Task, lineNo: number, col0: number): TraceEvent | null {
    const get = (...keys: string[]): string | undefined => {
      if (args === undefined) return undefined;
      for (const k of keys) {
        const v = args.get(k);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    const n = (what: string, ...keys: string[]): number => {
      const v = get(...keys);
      return v === undefined ? 0 : num(v, what, col0);
    };
    const ok = ret.error === undefined && ret.value !== undefined;
    const base: { line: number; pid: number; syscall: string; tid: number; time?: number; duration?: number; comm?: string } = {
      line: lineNo,
      pid: 0,
      syscall: name,
      tid: task.tid,
    };
    if (task.time !== undefined) base.time = task.time;
    if (task.duration !== undefined) base.duration = task.duration;
    if (task.comm !== undefined) base.comm = task.comm;
    const err = (ev: SyscallEvent): SyscallEvent => {
      if (ret.error !== undefined) ev.error = ret.error;
      else if (ret.value === undefined) ev.error = "?";
      return ev;
    };
    switch (name) {
      case "mmap":
      case "mmap2": {
        const flags = parseFlags(get("flags") ?? "", "map", true, col0);
        const anon = flags.includes("MAP_ANONYMOUS");
        const fdText = get("fd");
        const fd = fdText !== undefined ? num(fdText, "fd", col0) : anon ? -1 : 0;
        let offset = anon && get("off", "offset", "pgoff") === undefined ? 0 : n("offset", "off", "offset", "pgoff");
        if (name === "mmap2") offset *= 4096;
        const ev = err({
          ...base,
          kind: "mmap",
          hint: n("addr", "addr"),
          len: n("len", "len"),
          prot: protOf(parseFlags(get("prot") ?? "", "prot", true, col0)),
          flags,
          fd,
          offset,
        });
        if (ev.kind !== "mmap") return ev;
        if (ok) ev.addr = ret.value!;
        const file = fd >= 0 ? this.fds.path(task.tid, fd) : undefined;
        if (file !== undefined) ev.file = file;
        return ev;
      }
      case "munmap":
        return err({ ...base, kind: "munmap", addr: n("addr", "addr", "start"), len: n("len", "len") });
      case "mprotect":
      case "pkey_mprotect": {
        const ev = err({
          ...base,
          kind: "mprotect",
          addr: n("start", "start", "addr"),
          len: n("len", "len"),
          prot: protOf(parseFlags(get("prot") ?? "", "prot", true, col0)),
        });
        if (name === "pkey_mprotect" && ev.kind === "mprotect") ev.pkey = n("pkey", "pkey");
        return ev;
      }
      case "madvise":
        return err({
          ...base,
          kind: "madvise",
          addr: n("start", "start", "addr"),
          len: n("len", "len_in", "len"),
          advice: parseAdvice(get("behavior", "advice") ?? "", col0),
        });
      case "brk": {
        const ev = err({ ...base, kind: "brk", requested: n("brk", "brk", "addr") });
        if (ok && ev.kind === "brk") ev.result = ret.value!;
        return ev;
      }
      case "mremap": {
        const ev = err({
          ...base,
          kind: "mremap",
          oldAddr: n("addr", "addr", "old_address"),
          oldLen: n("old_len", "old_len", "old_size"),
          newLen: n("new_len", "new_len", "new_size"),
          flags: parseFlags(get("flags") ?? "", "mremap", true, col0),
        });
        if (ev.kind !== "mremap") return ev;
        if (get("new_addr", "new_address") !== undefined) ev.fixedAddr = n("new_addr", "new_addr", "new_address");
        if (ok) ev.newAddr = ret.value!;
        return ev;
      }
      case "clone":
      case "clone3":
      case "fork":
      case "vfork": {
        let flags: string[] | undefined;
        if (name === "fork") flags = ["SIGCHLD"];
        else if (name === "vfork") flags = ["CLONE_VM", "CLONE_VFORK", "SIGCHLD"];
        else if (name === "clone" && args !== undefined) flags = parseFlags(get("clone_flags", "flags") ?? "", "clone", true, col0);
        if (ok && ret.value === 0) {
          this.out.ignore("child-return");
          return null;
        }
        const ev = err({ ...base, kind: "clone", ...cloneKind(flags, name) });
        if (ev.kind !== "clone") return ev;
        if (flags !== undefined) ev.flags = flags;
        if (ok) {
          ev.child = ret.value!;
          this.fds.clone(task.tid, ev.child, flags?.includes("CLONE_FILES") ?? false);
        }
        return ev;
      }
      case "execve":
      case "execveat": {
        const f = get("filename", "pathname");
        const success = ret.error === undefined && ret.value === 0;
        const ev = err({ ...base, kind: "execve", success });
        if (ev.kind !== "execve") return ev;
        if (f !== undefined && !f.startsWith("0x")) ev.path = f.startsWith('"') && f.endsWith('"') && f.length >= 2 ? f.slice(1, -1) : f;
        if (success) this.fds.exec(task.tid);
        return ev;
      }
      case "exit":
      case "exit_group": {
        const status = n("error_code", "error_code", "status");
        const ev: TraceEvent = { kind: "exit", via: name, status, group: name === "exit_group", final: false, line: lineNo, pid: 0, tid: task.tid };
        if (task.time !== undefined) ev.time = task.time;
        if (task.comm !== undefined) ev.comm = task.comm;
        return ev;
      }
      default:
        if (FD_SYSCALLS.has(name)) {
          if (args !== undefined) {
            const keys = FD_KEYS[name] ?? [];
            trackFds(this.fds, task.tid, name, (i, k) => args.get(k) ?? (keys[i] === undefined ? undefined : args.get(keys[i]!)), ret, plainPath);
          }
          this.out.ignore("other-syscall");
          return null;
        }
        this.out.otherSyscall(name);
        return null;
    }
  }
}

/** perf's tracepoint field names for the fd syscalls, by position. */
const FD_KEYS: Record<string, string[]> = {
  open: ["filename", "flags"],
  openat: ["dfd", "filename", "flags"],
  openat2: ["dfd", "filename", "how"],
  creat: ["pathname"],
  close: ["fd"],
  dup: ["fildes"],
  dup2: ["oldfd", "newfd"],
  dup3: ["oldfd", "newfd", "flags"],
  fcntl: ["fd", "cmd", "arg"],
  memfd_create: ["uname", "flags"],
};

/** "0.042" (ms) -> 0.000042 (s) without binary noise (via integer nanoseconds). */
function msToSeconds(ms: string): number {
  return Math.round(Number(ms) * 1e6) / 1e9;
}

/** perf prints strings bare (or quoted); a hex value is an unread pointer. */
function plainPath(s: string): string | undefined {
  if (s.startsWith("0x") || s === "") return undefined;
  return s.startsWith('"') && s.endsWith('"') && s.length >= 2 ? s.slice(1, -1) : s;
}

/** perf maps whose `@` number is the virtual address itself (perf's identity__map_ip maps). */
function isIdentityMap(map: string): boolean {
  return (
    map === "//anon" ||
    map === "[heap]" ||
    map.startsWith("[stack") ||
    map.startsWith("/dev/zero") ||
    map.startsWith("/anon_hugepage") ||
    map.startsWith("/SYSV")
  );
}

/** `addr: 0x7ff115e04000, len: 1400832, prot: READ|EXEC` -> Map. Blank text -> empty map. */
function parseArgs(text: string, col: number): Map<string, string> {
  const m = new Map<string, string>();
  const s = text.trim();
  if (s === "") return m;
  ARG_KEY.lastIndex = 0;
  let prevKey: string | undefined;
  let prevEnd = 0;
  let first = true;
  for (let k = ARG_KEY.exec(s); k !== null; k = ARG_KEY.exec(s)) {
    if (first && k.index !== 0) break;
    if (prevKey !== undefined) m.set(prevKey, s.slice(prevEnd, k.index).trim());
    prevKey = k[1]!;
    prevEnd = ARG_KEY.lastIndex;
    first = false;
  }
  if (prevKey === undefined) throw new LineError(col, `expected 'name: value' arguments, got '${clip(s)}'`, "bad-args");
  m.set(prevKey, s.slice(prevEnd).trim());
  return m;
}
