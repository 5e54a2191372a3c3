/**
 * strace output parser (`strace -f [-tt|-ttt|-t] [-T] [-y] -e trace=%memory,%process ...`).
 * No Node APIs. See docs/trace-events.md.
 *
 * Ordering: an event is emitted at the position of the line where its call started. A call split
 * into `<unfinished ...>` / `<... x resumed>` holds back every later event until it resumes (its
 * result is only known then); `line` is the resumed line, `startLine` the unfinished one. So a
 * child's events never precede the clone/vfork that created it.
 */
import type { ExitEvent, ParseOptions, SyscallEvent, TraceEvent, TraceParser } from "./events.js";
import { LineError } from "./errors.js";
import {
  clip,
  cloneKind,
  decodeCString,
  drive,
  FdTables,
  fdPath,
  type LineHandler,
  namedValue,
  num,
  type Output,
  parseAdvice,
  parseFlags,
  parseRet,
  protOf,
  type Ret,
  type Slot,
  scanArgs,
  stripFdPath,
  trackFds,
} from "./common.js";

/** Syscalls that become events. */
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
  "clone2",
  "clone3",
  "fork",
  "vfork",
  "execve",
  "execveat",
]);
/** Syscalls that only feed the fd table. */
const FD_SYSCALLS = new Set(["open", "openat", "openat2", "creat", "close", "dup", "dup2", "dup3", "fcntl", "memfd_create"]);

interface Pending {
  name: string;
  /** Argument text printed before `<unfinished ...>`. */
  prefix: string;
  line: number;
  time?: number;
  slot?: Slot;
}

interface Leader {
  /** undefined: no pid prefix. */
  tid: number | undefined;
  time?: number;
  pos: number;
}

const PID_BRACKET = /\[pid +(\d+)(?:<[^>]*>)?\] +/y;
const PID_PLAIN = /(\d+)(?:<[^>]*>)? +/y;
const TS_CLOCK = /(\d{1,2}):(\d\d):(\d\d)(?:\.(\d+))? +/y;
const TS_EPOCH = / *(\d+)\.(\d+) +/y;
const DURATION = / <(\d+(?:\.\d+)?)>$/;
const CALL_NAME = /^[A-Za-z_][A-Za-z0-9_]*\(/;
const RESUMED = /^<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>/;
const UNFINISHED = " <unfinished ...>";
/** A non-leader thread's execve: `<pid changed to LEADER ...>` instead of `<unfinished ...>`. */
const PID_CHANGED = / <pid changed to \d+ \.\.\.>$/;
const EXITED = /^\+\+\+ exited with (\d+) \+\+\+$/;
const KILLED = /^\+\+\+ killed by (SIG[A-Z0-9+-]+|\d+)( \(core dumped\))? \+\+\+$/;
const SUPERSEDED = /^\+\+\+ superseded by execve in pid (\d+) \+\+\+$/;
const RESULT = /^ *= ?/;

/** Parse strace output. `lines` are raw lines without newline (a trailing CR is ignored). */
export function parseStrace(lines: Iterable<string> | AsyncIterable<string>, opts: ParseOptions): TraceParser {
  return drive(lines, opts, (out) => new StraceHandler(out));
}

class StraceHandler implements LineHandler {
  private readonly pending = new Map<number, Pending>();
  private readonly fds = new FdTables();
  /** tid printed in brackets that turned out to be the unprefixed initial tracee (key 0). */
  private alias: number | undefined;
  private sawUnprefixed = false;
  private lastClock = -1;
  private dayOffset = 0;

  constructor(private readonly out: Output) {}

  line(raw: string, lineNo: number): void {
    const text = raw.trimEnd();
    if (text.length === 0) {
      this.out.ignore("blank");
      return;
    }
    const ld = this.leader(text);
    let body = text.slice(ld.pos);
    const col0 = ld.pos + 1;
    if (ld.tid === undefined) this.sawUnprefixed = true;
    let key = ld.tid ?? 0;
    if (key === this.alias) key = 0;

    const c = body.charCodeAt(0);
    if (c === 60 /* < */) {
      const m = RESUMED.exec(body);
      if (m === null) throw new LineError(col0, `expected '<... NAME resumed>', got '${clip(body)}'`, "bad-resumed");
      let duration: number | undefined;
      const d = DURATION.exec(body);
      if (d !== null) {
        duration = Number(d[1]);
        body = body.slice(0, d.index);
      }
      const name = m[1]!;
      const rest = body.slice(m[0].length);
      let p = this.pending.get(key);
      if (p === undefined && key !== 0 && this.sawUnprefixed && this.alias === undefined) {
        // `[pid N] <... x resumed>` finishing a call the unprefixed initial tracee started: N is that tracee.
        const p0 = this.pending.get(0);
        if (p0 !== undefined && p0.name === name) {
          this.alias = key;
          key = 0;
          p = p0;
        }
      }
      if (rest.startsWith(" <unfinished ...>)")) {
        // The task died inside the call: `<... wait4 resumed> <unfinished ...>) = ?`
        if (!RESULT.test(rest.slice(UNFINISHED.length + 1))) throw new LineError(col0, "expected ' = ?' after '<unfinished ...>)'", "bad-result");
        if (p !== undefined && p.name === name) this.drop(key, p, "unfinished-dropped");
        else this.out.ignore("orphan-resumed");
        return;
      }
      if (rest.endsWith(UNFINISHED)) {
        // resumed and interrupted again: keep collecting
        if (p !== undefined && p.name === name) p.prefix += rest.slice(0, -UNFINISHED.length);
        else this.out.ignore("orphan-resumed");
        return;
      }
      if (p === undefined || p.name !== name) {
        // Still validate the shape so garbage is reported.
        const probe: string[] = [];
        if (scanArgs(`${name}(${rest}`, name.length + 1, probe, []) === -2) throw new LineError(col0, "unbalanced brackets in resumed arguments", "bad-args");
        this.out.ignore("orphan-resumed");
        return;
      }
      const full = `${name}(${p.prefix}${rest}`;
      try {
        this.call(full, name, key, tidOf(key), lineNo, col0, p.time, duration, p);
      } catch (e) {
        this.drop(key, p, "unfinished-dropped"); // a malformed resume must not hold the stream back
        throw e;
      }
      return;
    }
    if (c === 43 /* + */) {
      this.status(body, key, ld, lineNo, col0);
      return;
    }
    if (c === 45 /* - */) {
      if (body.startsWith("--- ") && body.endsWith(" ---")) {
        this.out.ignore("signal");
        return;
      }
      throw new LineError(col0, `expected a signal line '--- SIG... ---', got '${clip(body)}'`, "bad-signal");
    }
    if (body.startsWith("strace: ") || body.startsWith("[ Process PID=")) {
      this.out.ignore("noise");
      return;
    }
    const nm = CALL_NAME.exec(body);
    if (nm === null)
      throw new LineError(
        col0,
        `expected a syscall 'name(args) = result', '<... name resumed>', '+++ ... +++' or '--- ... ---', got '${clip(body)}'`,
        "not-strace",
      );
    const name = nm[0].slice(0, -1);
    const pc = body.endsWith("...>") ? PID_CHANGED.exec(body) : null;
    if (body.endsWith(UNFINISHED) || pc !== null) {
      const prefix = body.slice(name.length + 1, pc !== null ? pc.index : body.length - UNFINISHED.length);
      const probe: string[] = [];
      const end = scanArgs(`${prefix})`, 0, probe, []);
      if (end === -2) throw new LineError(col0, "unbalanced brackets before '<unfinished ...>'", "bad-args");
      this.unfinished(name, prefix, key, ld, lineNo, col0);
      return;
    }
    let duration: number | undefined;
    const d = DURATION.exec(body);
    if (d !== null) {
      duration = Number(d[1]);
      body = body.slice(0, d.index);
    }
    const old = this.pending.get(key);
    this.call(body, name, key, tidOf(key), lineNo, col0, ld.time, duration, undefined);
    if (old !== undefined) this.drop(key, old, "unfinished-dropped");
  }

  end(): void {
    for (const [key, p] of this.pending) this.drop(key, p, "unfinished-dropped");
  }

  // -------------------------------------------------------------------------------------------

  private leader(text: string): Leader {
    let pos = 0;
    let tid: number | undefined;
    if (text.charCodeAt(0) === 91 /* [ */) {
      PID_BRACKET.lastIndex = 0;
      const m = PID_BRACKET.exec(text);
      if (m !== null) {
        tid = Number(m[1]);
        pos = PID_BRACKET.lastIndex;
      }
    } else {
      PID_PLAIN.lastIndex = 0;
      const m = PID_PLAIN.exec(text);
      if (m !== null) {
        tid = Number(m[1]);
        pos = PID_PLAIN.lastIndex;
      }
    }
    if (tid !== undefined && !Number.isSafeInteger(tid)) throw new LineError(1, "pid out of range", "bad-leader");
    const ld: Leader = { tid, pos };
    TS_CLOCK.lastIndex = pos;
    const t = TS_CLOCK.exec(text);
    if (t !== null) {
      let secs = Number(t[1]) * 3600 + Number(t[2]) * 60 + Number(t[3]) + (t[4] ? Number(`0.${t[4]}`) : 0);
      if (this.lastClock >= 0 && secs + this.dayOffset < this.lastClock - 43200) this.dayOffset += 86400;
      secs += this.dayOffset;
      this.lastClock = secs;
      ld.time = secs;
      ld.pos = TS_CLOCK.lastIndex;
      return ld;
    }
    TS_EPOCH.lastIndex = pos;
    const e = TS_EPOCH.exec(text);
    if (e !== null) {
      ld.time = Number(`${e[1]}.${e[2]}`);
      ld.pos = TS_EPOCH.lastIndex;
    }
    return ld;
  }

  private status(body: string, key: number, ld: Leader, lineNo: number, col0: number): void {
    let ev: ExitEvent;
    const base = { line: lineNo, pid: 0, tid: tidOf(key), time: ld.time, final: true } as const;
    let m = EXITED.exec(body);
    if (m !== null) ev = { ...base, kind: "exit", via: "exited", status: num(m[1]!, "exit status", col0), group: false };
    else if ((m = KILLED.exec(body)) !== null) {
      ev = { ...base, kind: "exit", via: "killed", group: true, signal: m[1]! };
      if (m[2]) ev.coreDumped = true;
    } else if ((m = SUPERSEDED.exec(body)) !== null) {
      // Printed under the leader pid L: thread T exec'd and took over pid L; its execve resumes under L.
      const t = num(m[1]!, "pid", col0);
      const p = this.pending.get(t);
      if (p !== undefined) {
        this.pending.delete(t);
        const mine = this.pending.get(key);
        if (mine !== undefined) this.drop(key, mine, "unfinished-dropped");
        this.pending.set(key, p);
      }
      this.fds.exit(t);
      this.out.push(clean({ ...base, tid: t, kind: "exit", via: "superseded", group: false, leader: key }));
      return;
    } else
      throw new LineError(
        col0,
        `expected '+++ exited with N +++', '+++ killed by SIG... +++' or '+++ superseded by execve in pid N +++', got '${clip(body)}'`,
        "bad-status",
      );
    const p = this.pending.get(key);
    if (p !== undefined) this.drop(key, p, "unfinished-dropped");
    this.fds.exit(key);
    this.out.push(clean(ev));
  }

  private unfinished(name: string, prefix: string, key: number, ld: Leader, lineNo: number, col0: number): void {
    const old = this.pending.get(key);
    const p: Pending = { name, prefix, line: lineNo, time: ld.time };
    if (name === "exit" || name === "exit_group") {
      // The result is always '?': emit now, swallow the resume if any.
      const args: string[] = [];
      const offs: number[] = [];
      scanArgs(`${prefix})`, 0, args, offs);
      const status = args.length > 0 && args[0] !== "" ? num(args[0]!, "exit status", col0 + name.length + 1) : 0;
      if (old !== undefined) this.drop(key, old, "unfinished-dropped");
      this.pending.set(key, p);
      this.out.push(
        clean({ kind: "exit", via: name, status, group: name === "exit_group", final: false, line: lineNo, pid: 0, tid: tidOf(key), time: ld.time }),
      );
      return;
    }
    if (old !== undefined) this.drop(key, old, "unfinished-dropped");
    if (EVENT_SYSCALLS.has(name)) {
      const slot = this.out.reserve();
      slot.onEvict = () => {
        for (const [k, v] of this.pending) if (v === p) this.pending.delete(k);
      };
      p.slot = slot;
    }
    this.pending.set(key, p);
  }

  private drop(key: number, p: Pending, reason: string): void {
    if (this.pending.get(key) === p) this.pending.delete(key);
    if (p.slot !== undefined) {
      this.out.ignore(reason);
      this.out.fill(p.slot, null);
    }
  }

  /** A complete call text `name(args) = result` (for resumed calls: reassembled). */
  private call(
    text: string,
    name: string,
    key: number,
    tid: number | undefined,
    lineNo: number,
    col0: number,
    time: number | undefined,
    duration: number | undefined,
    p: Pending | undefined,
  ): void {
    const args: string[] = [];
    const offs: number[] = [];
    const close = scanArgs(text, name.length + 1, args, offs);
    const colOf = (i: number) => (p === undefined ? col0 + (offs[i] ?? 0) : col0);
    if (close < 0) throw new LineError(col0, close === -2 ? "unbalanced brackets in arguments" : "expected ')' closing the argument list", "bad-args");
    const tail = text.slice(close + 1);
    const rm = RESULT.exec(tail);
    if (rm === null) throw new LineError(p === undefined ? col0 + close + 1 : col0, `expected ' = result' after ')', got '${clip(tail)}'`, "bad-result");
    const ret = parseRet(tail.slice(rm[0].length), p === undefined ? col0 + close + rm[0].length + 1 : col0);

    if (p !== undefined) {
      this.pending.delete(key);
      // exit/exit_group were emitted at their unfinished line
      if (name === "exit" || name === "exit_group") return;
    }
    const ev = this.build(name, args, colOf, ret, key, lineNo, col0);
    if (ev === null) {
      if (p?.slot !== undefined) this.out.fill(p.slot, null);
      return;
    }
    if (tid !== undefined) ev.tid = tid;
    if (time !== undefined) ev.time = time;
    if (duration !== undefined) ev.duration = duration;
    if (p !== undefined) ev.startLine = p.line;
    if (p?.slot !== undefined) this.out.fill(p.slot, ev);
    else this.out.push(ev);
  }

  /**
   * Build the event for a complete call; null when the call produces none (fd bookkeeping, other
   * syscalls, the child side of a clone).
   * Throws LineError before changing any state.
   */
  private build(name: string, a: string[], col: (i: number) => number, ret: Ret, key: number, lineNo: number, col0: number): TraceEvent | null {
    const need = (n: number) => {
      if (a.length < n) throw new LineError(col0, `${name}: expected ${n} arguments, got ${a.length}`, "bad-args");
    };
    const ok = ret.error === undefined && ret.value !== undefined;
    const base = { line: lineNo, pid: 0, syscall: name };
    const err = (ev: SyscallEvent): SyscallEvent => {
      if (ret.error !== undefined) ev.error = ret.error;
      else if (ret.value === undefined) ev.error = "?";
      return ev;
    };
    switch (name) {
      case "mmap":
      case "mmap2": {
        need(6);
        const hint = num(a[0]!, "addr", col(0));
        const len = num(a[1]!, "length", col(1));
        const prot = protOf(parseFlags(a[2]!, "prot", false, col(2)));
        const flags = parseFlags(a[3]!, "map", false, col(3));
        const fd = num(stripFdPath(a[4]!), "fd", col(4));
        let offset = num(a[5]!, "offset", col(5));
        if (name === "mmap2") offset *= 4096;
        const ev = err({ ...base, kind: "mmap", hint, len, prot, flags, fd, offset });
        if (ok && ev.kind === "mmap") ev.addr = ret.value!;
        const file = fdPath(a[4]!) ?? (fd >= 0 ? this.fds.path(key, fd) : undefined);
        if (file !== undefined && ev.kind === "mmap") ev.file = file;
        return ev;
      }
      case "munmap":
        need(2);
        return err({ ...base, kind: "munmap", addr: num(a[0]!, "addr", col(0)), len: num(a[1]!, "length", col(1)) });
      case "mprotect":
      case "pkey_mprotect": {
        need(name === "mprotect" ? 3 : 4);
        const ev = err({
          ...base,
          kind: "mprotect",
          addr: num(a[0]!, "addr", col(0)),
          len: num(a[1]!, "length", col(1)),
          prot: protOf(parseFlags(a[2]!, "prot", false, col(2))),
        });
        if (name === "pkey_mprotect" && ev.kind === "mprotect") ev.pkey = num(a[3]!, "pkey", col(3));
        return ev;
      }
      case "madvise":
        need(3);
        return err({ ...base, kind: "madvise", addr: num(a[0]!, "addr", col(0)), len: num(a[1]!, "length", col(1)), advice: parseAdvice(a[2]!, col(2)) });
      case "brk": {
        need(1);
        const ev = err({ ...base, kind: "brk", requested: num(a[0]!, "addr", col(0)) });
        if (ok && ev.kind === "brk") ev.result = ret.value!;
        return ev;
      }
      case "mremap": {
        need(4);
        const flags = parseFlags(a[3]!, "mremap", false, col(3));
        const ev = err({
          ...base,
          kind: "mremap",
          oldAddr: num(a[0]!, "old_address", col(0)),
          oldLen: num(a[1]!, "old_size", col(1)),
          newLen: num(a[2]!, "new_size", col(2)),
          flags,
        });
        if (ev.kind !== "mremap") return ev;
        if (a.length >= 5) ev.fixedAddr = num(a[4]!, "new_address", col(4));
        if (ok) ev.newAddr = ret.value!;
        return ev;
      }
      case "clone":
      case "clone2":
      case "clone3":
      case "fork":
      case "vfork": {
        let flags: string[] | undefined;
        if (name === "fork") flags = ["SIGCHLD"];
        else if (name === "vfork") flags = ["CLONE_VM", "CLONE_VFORK", "SIGCHLD"];
        else {
          const joined = a.join(", ");
          const f = namedValue(joined, "flags");
          if (f !== undefined) flags = parseFlags(f, "clone", false, col0);
          else if (name === "clone" && a.length >= 2) {
            // raw or old layouts: clone(flags, stack, ...) on some ABIs prints the flags first
            flags = parseFlags(a[0]!.includes("=") ? "" : a[0]!, "clone", false, col(0));
          } else flags = undefined;
          if (name === "clone3") {
            const sig = namedValue(joined, "exit_signal");
            if (sig !== undefined && flags !== undefined && sig !== "0" && /^SIG[A-Z0-9]+$/.test(sig)) flags.push(sig);
          }
        }
        const ev = err({ ...base, kind: "clone", ...cloneKind(flags, name) });
        if (ev.kind !== "clone") return ev;
        if (flags !== undefined) ev.flags = flags;
        if (ok && ret.value! > 0) {
          ev.child = ret.value!;
          this.fds.clone(key, ev.child, flags?.includes("CLONE_FILES") ?? false);
        } else if (ok) {
          // strace never shows the child's return; a 0 here would be a child side: no event.
          this.out.ignore("child-return");
          return null;
        }
        return ev;
      }
      case "execve":
      case "execveat": {
        const pi = name === "execve" ? 0 : 1;
        need(pi + 1);
        const path = decodeCString(a[pi]!);
        const success = ret.error === undefined && ret.value === 0;
        const ev = err({ ...base, kind: "execve", success });
        if (path !== undefined && ev.kind === "execve") ev.path = path;
        if (success) this.fds.exec(key);
        return ev;
      }
      case "exit":
      case "exit_group": {
        const status = a.length > 0 ? num(a[0]!, "exit status", col(0)) : 0;
        return { kind: "exit", via: name, status, group: name === "exit_group", final: false, line: lineNo, pid: 0 };
      }
      default:
        if (FD_SYSCALLS.has(name)) {
          trackFds(this.fds, key, name, (i) => a[i], ret, decodeCString);
          this.out.ignore("other-syscall");
          return null;
        }
        this.out.otherSyscall(name);
        return null;
    }
  }
}

/** Key 0 is the unprefixed initial tracee: its tid is unknown. */
function tidOf(key: number): number | undefined {
  return key === 0 ? undefined : key;
}

/** Drop undefined optional fields so events compare cleanly. */
function clean<T extends object>(ev: T): T {
  for (const k of Object.keys(ev) as (keyof T)[]) if (ev[k] === undefined) delete ev[k];
  return ev;
}
