import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import fc from "fast-check";
import { TraceError } from "../src/trace/errors.js";
import type {
  BrkEvent,
  CloneEvent,
  ExecveEvent,
  ExitEvent,
  FaultEvent,
  MadviseEvent,
  MmapEvent,
  MprotectEvent,
  MremapEvent,
  MunmapEvent,
  ParseOptions,
  TraceEvent,
  TraceParser,
} from "../src/trace/events.js";
import { detectFormat, openTrace, parseTraceFile } from "../src/trace/open.js";
import { parsePerfTrace } from "../src/trace/perftrace.js";
import { parseStrace } from "../src/trace/strace.js";
import { sharedMissing, sharedPath } from "./shared-path.js";

const STRACE_FILE = sharedPath("traces", "gcc-python.strace");
const PERF_FILE = sharedPath("traces", "gcc-python.perftrace.gz");

async function collect(p: TraceParser): Promise<TraceEvent[]> {
  const out: TraceEvent[] = [];
  for await (const ev of p) out.push(ev);
  return out;
}

const strict = (file: string): ParseOptions => ({ file, lenient: false });

/** 1-based number of the first line containing `s`. */
function lineOf(lines: string[], s: string): number {
  const i = lines.findIndex((l) => l.includes(s));
  assert.ok(i >= 0, `excerpt has a line with ${s}`);
  return i + 1;
}

function pick<T extends TraceEvent>(ev: TraceEvent, kind: T["kind"]): T {
  assert.equal(ev.kind, kind, `event at line ${ev.line} is ${ev.kind}, expected ${kind}`);
  return ev as T;
}

// -----------------------------------------------------------------------------------------------
// strace

/** Copied verbatim from gcc-python.strace lines 14-23: vfork and the child's execve interleaved, unfinished/resumed. */
const STRACE_REAL = [
  "9314  08:28:44.755629 munmap(0x7f73a6a3c000, 34547) = 0",
  "9314  08:28:44.756756 brk(NULL)         = 0x560fef258000",
  "9314  08:28:44.756861 brk(0x560fef279000) = 0x560fef279000",
  "9314  08:28:44.759263 vfork( <unfinished ...>",
  '9315  08:28:44.759569 execve("/usr/bin/gcc", ["gcc", "-O2", "-c", "/build/lua/lvm.c", "-o", "/build/tmp/lvm.o"], 0x560fef2589d8 /* 35 vars */ <unfinished ...>',
  "9314  08:28:44.759838 <... vfork resumed>) = 9315",
  "9315  08:28:44.759913 <... execve resumed>) = 0",
  "9314  08:28:44.760003 wait4(-1,  <unfinished ...>",
  "9315  08:28:44.760021 brk(NULL)         = 0x2c666000",
  "9315  08:28:44.760346 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f73e1426000",
  // gcc-python.strace line 630 (a fork) and lines 2352-2356 (exit, wait4 resumed, SIGCHLD, failed wait4)
  "9318  08:28:46.664397 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f5bf76d2a10) = 9319",
  "9318  08:28:47.753747 exit_group(0)     = ?",
  "9314  08:28:47.755633 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 9318",
  "9314  08:28:47.755764 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=9318, si_uid=0, si_status=0, si_utime=7 /* 0.07 s */, si_stime=12 /* 0.12 s */} ---",
  "9314  08:28:47.756019 wait4(-1, 0x7ffef041291c, WNOHANG, NULL) = -1 ECHILD (No child processes)",
  "9314  08:28:47.756397 exit_group(0)     = ?",
];

/**
 * Hand-written in strace's documented formats (-f -ttt -T, one -y fd): the recording has no threads,
 * failed mmaps, +++ lines, clone3, mremap, escaped strings or restarts.
 */
const STRACE_SYNTH = [
  '1000  1700000000.000100 execve("/bin/say \\"hi\\"", ["say", "a\\"b, c)"...], 0x7ffd8 /* 3 vars */) = 0 <0.000300>',
  '1000  1700000000.000500 openat(AT_FDCWD, "/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3 <0.000010>',
  "1000  1700000000.000600 mmap(NULL, 2125824, PROT_READ, MAP_PRIVATE|MAP_DENYWRITE, 3, 0) = 0x7f0000000000 <0.000010>",
  "1000  1700000000.000700 close(3) = 0 <0.000005>",
  "1000  1700000000.000800 mmap(NULL, 4096, PROT_READ, MAP_SHARED, 4</dev/shm/x>, 0x1000) = 0x7f0000200000 <0.000010>",
  "1000  1700000000.000900 mmap(NULL, 1099511627776, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) = -1 ENOMEM (Cannot allocate memory) <0.000008>",
  "1000  1700000000.001000 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f0000401910, parent_tid=0x7f0000401910, exit_signal=0, stack=0x7f0000001000, stack_size=0x400000, tls=0x7f0000401640} => {parent_tid=[1001]}, 88) = 1001 <0.000050>",
  "1001  1700000000.001100 mmap(NULL, 134217728, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0 <unfinished ...>",
  "1000  1700000000.001150 munmap(0x7f0000200000, 4096 <unfinished ...>",
  "1001  1700000000.001200 <... mmap resumed>) = 0x7e0000000000 <0.000100>",
  "1000  1700000000.001250 <... munmap resumed>) = 0 <0.000100>",
  "1001  1700000000.001300 mprotect(0x7e0000000000, 135168, PROT_READ|PROT_WRITE) = 0 <0.000010>",
  "1001  1700000000.001400 mremap(0x7e0000000000, 135168, 270336, MREMAP_MAYMOVE) = 0x7d0000000000 <0.000010>",
  "1001  1700000000.001500 madvise(0x7d0000000000, 270336, MADV_DONTNEED) = 0 <0.000010>",
  "1001  1700000000.001600 exit(0) = ?",
  "1001  1700000000.001700 +++ exited with 0 +++",
  "1000  1700000000.001800 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f0000500000, stack_size=0x9000}, 88 <unfinished ...>",
  '1002  1700000000.001900 execve("/bin/true", ["true"], 0x7ffd8 /* 3 vars */) = 0 <0.000200>',
  "1000  1700000000.002000 <... clone3 resumed>) = 1002 <0.000200>",
  "1002  1700000000.002100 exit_group(0) = ?",
  "1002  1700000000.002200 +++ exited with 0 +++",
  "1000  1700000000.002300 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=1002, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---",
  "1000  1700000000.002400 brk(0x1000000) = 0x55d000 <0.000005>",
  "1000  1700000000.002500 wait4(-1,  <unfinished ...>",
  "1000  1700000000.002600 <... wait4 resumed>0x7ffd8, 0, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set) <0.000100>",
  "1000  1700000000.002700 +++ killed by SIGKILL +++",
];

describe("strace parser", () => {
  it("parses real interleaved unfinished/resumed lines, emitting each call at its start", async () => {
    const evs = await collect(parseStrace(STRACE_REAL, strict("real.strace")));
    assert.deepEqual(
      evs.map((e) => [e.kind, e.line, e.tid]),
      [
        ["munmap", 1, 9314],
        ["brk", 2, 9314],
        ["brk", 3, 9314],
        ["clone", 6, 9314], // vfork( <unfinished ...> at line 4: emitted before the child's execve
        ["execve", 7, 9315],
        ["brk", 9, 9315],
        ["mmap", 10, 9315],
        ["clone", 11, 9318],
        ["exit", 12, 9318],
        ["exit", 16, 9314],
      ],
    );
    const vf = pick<CloneEvent>(evs[3]!, "clone");
    assert.equal(vf.startLine, 4);
    assert.equal(vf.child, 9315);
    assert.equal(vf.syscall, "vfork");
    assert.deepEqual([vf.vfork, vf.thread, vf.sharesMm], [true, false, true]);
    assert.equal(vf.time, 8 * 3600 + 28 * 60 + 44.759263, "time is the entry time (the unfinished line)");
    const ex = pick<ExecveEvent>(evs[4]!, "execve");
    assert.deepEqual([ex.path, ex.success, ex.startLine, ex.pid], ["/usr/bin/gcc", true, 5, 9315]);
    const mm = pick<MmapEvent>(evs[6]!, "mmap");
    assert.deepEqual(
      { addr: mm.addr, hint: mm.hint, len: mm.len, prot: mm.prot, flags: mm.flags, fd: mm.fd, offset: mm.offset },
      { addr: 0x7f73e1426000, hint: 0, len: 8192, prot: { read: true, write: true, exec: false }, flags: ["MAP_PRIVATE", "MAP_ANONYMOUS"], fd: -1, offset: 0 },
    );
    const fork = pick<CloneEvent>(evs[7]!, "clone");
    assert.deepEqual([fork.child, fork.thread, fork.vfork, fork.sharesMm], [9319, false, false, false]);
    assert.deepEqual(fork.flags, ["CLONE_CHILD_CLEARTID", "CLONE_CHILD_SETTID", "SIGCHLD"]);
    const ex2 = pick<ExitEvent>(evs[8]!, "exit");
    assert.deepEqual([ex2.via, ex2.status, ex2.group, ex2.final], ["exit_group", 0, true, false]);
  });

  it("counts what it skips: wait4 (other syscall), the SIGCHLD line", async () => {
    const p = parseStrace(STRACE_REAL, strict("real.strace"));
    await collect(p);
    assert.deepEqual(p.stats.otherSyscalls, { wait4: 2 }, "the unfinished wait4 and its resume are one call");
    assert.equal(p.stats.ignoredByReason.signal, 1);
    assert.equal(p.stats.events, 10);
    assert.equal(p.stats.lines, STRACE_REAL.length);
    assert.equal(p.stats.skipped, 0);
  });

  it("handles threads, clone3, failed calls, +++ lines, -y fds, escaped strings, restarts", async () => {
    const L = STRACE_SYNTH;
    const evs = await collect(parseStrace(L, strict("synth.strace")));
    assert.deepEqual(
      evs.map((e) => [e.kind, e.line, e.pid, e.tid]),
      [
        ["execve", 1, 1000, 1000],
        ["mmap", 3, 1000, 1000],
        ["mmap", 5, 1000, 1000],
        ["mmap", 6, 1000, 1000],
        ["clone", 7, 1000, 1000],
        ["mmap", 10, 1000, 1001], // thread: pid is the creator's
        ["munmap", 11, 1000, 1000],
        ["mprotect", 12, 1000, 1001],
        ["mremap", 13, 1000, 1001],
        ["madvise", 14, 1000, 1001],
        ["exit", 15, 1000, 1001],
        ["exit", 16, 1000, 1001],
        ["clone", 19, 1000, 1000], // posix_spawn-style clone3, emitted at line 17, before the child's execve
        ["execve", 18, 1002, 1002],
        ["exit", 20, 1002, 1002],
        ["exit", 21, 1002, 1002],
        ["brk", 23, 1000, 1000],
        ["exit", 26, 1000, 1000],
      ],
    );
    const [exe, libc, shm, fail, thr, tmmap, unmap, , mrem, madv, texit, texited, spawn, , , , brk, killed] = evs;
    const e0 = pick<ExecveEvent>(exe!, "execve");
    assert.equal(e0.path, '/bin/say "hi"');
    assert.equal(e0.duration, 0.0003);
    assert.equal(e0.time, 1700000000.0001);
    assert.equal(pick<MmapEvent>(libc!, "mmap").file, "/lib/libc.so.6", "fd table from openat");
    const s = pick<MmapEvent>(shm!, "mmap");
    assert.deepEqual([s.file, s.fd, s.offset, s.flags], ["/dev/shm/x", 4, 4096, ["MAP_SHARED"]]);
    const f = pick<MmapEvent>(fail!, "mmap");
    assert.equal(f.error, "ENOMEM");
    assert.equal(f.addr, undefined);
    assert.equal(f.len, 1099511627776);
    const t = pick<CloneEvent>(thr!, "clone");
    assert.deepEqual([t.child, t.thread, t.vfork, t.sharesMm, t.syscall], [1001, true, false, true, "clone3"]);
    const tm = pick<MmapEvent>(tmmap!, "mmap");
    assert.deepEqual(
      [tm.startLine, tm.addr, tm.prot, tm.time, tm.duration],
      [8, 0x7e0000000000, { read: false, write: false, exec: false }, 1700000000.0011, 0.0001],
    );
    assert.deepEqual(unmap, {
      kind: "munmap",
      syscall: "munmap",
      line: 11,
      startLine: 9,
      pid: 1000,
      tid: 1000,
      time: 1700000000.00115,
      duration: 0.0001,
      addr: 0x7f0000200000,
      len: 4096,
    });
    const r = pick<MremapEvent>(mrem!, "mremap");
    assert.deepEqual(
      [r.oldAddr, r.oldLen, r.newLen, r.flags, r.newAddr, r.fixedAddr],
      [0x7e0000000000, 135168, 270336, ["MREMAP_MAYMOVE"], 0x7d0000000000, undefined],
    );
    assert.equal(pick<MadviseEvent>(madv!, "madvise").advice, "MADV_DONTNEED");
    const te = pick<ExitEvent>(texit!, "exit");
    assert.deepEqual([te.via, te.group, te.final, te.status], ["exit", false, false, 0]);
    const tx = pick<ExitEvent>(texited!, "exit");
    assert.deepEqual([tx.via, tx.group, tx.final, tx.status], ["exited", false, true, 0]);
    const sp = pick<CloneEvent>(spawn!, "clone");
    assert.deepEqual([sp.child, sp.thread, sp.vfork, sp.startLine, sp.flags], [1002, false, true, 17, ["CLONE_VM", "CLONE_VFORK", "SIGCHLD"]]);
    const b = pick<BrkEvent>(brk!, "brk");
    assert.deepEqual([b.requested, b.result, b.error], [0x1000000, 0x55d000, undefined], "a refused brk is not an error");
    const k = pick<ExitEvent>(killed!, "exit");
    assert.deepEqual([k.via, k.signal, k.group, k.final, k.status], ["killed", "SIGKILL", true, true, undefined]);
    assert.equal(lineOf(L, "ERESTARTSYS"), 25);
  });

  it("attributes unprefixed lines (stderr capture before the first fork) to pid 0 and aliases the tracee's later pid", async () => {
    const L = [
      'execve("/bin/sh", ["sh"], 0x7ffd /* 1 var */) = 0',
      "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>",
      "[pid  4243] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
      "[pid  4242] <... clone resumed>, child_tidptr=0x7f0000000a10) = 4243",
      "[pid  4242] brk(NULL) = 0x55d000",
    ];
    const evs = await collect(parseStrace(L, strict("stderr.strace")));
    assert.deepEqual(
      evs.map((e) => [e.kind, e.line, e.pid, e.tid]),
      [
        ["execve", 1, 0, undefined],
        ["clone", 4, 0, undefined],
        ["mmap", 3, 4243, 4243],
        ["brk", 5, 0, undefined],
      ],
    );
  });

  it("follows a non-leader thread's execve (<pid changed to ...>, +++ superseded +++), as in strace's threads-execve test", async () => {
    const L = [
      '1000  execve("./x", ["./x"], 0x7ffd /* 1 var */) = 0',
      "1000  clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f1, parent_tid=0x7f1, exit_signal=0, stack=0x7f2, stack_size=0x7fff00, tls=0x7f3} => {parent_tid=[1001]}, 88) = 1001",
      "1000  nanosleep({tv_sec=123, tv_nsec=0},  <unfinished ...>",
      '1001  execve("/bin/true", ["true"], NULL <pid changed to 1000 ...>',
      "1000  <... nanosleep resumed> <unfinished ...>) = ?",
      "1000  +++ superseded by execve in pid 1001 +++",
      "1000  <... execve resumed>) = 0",
      "1000  brk(NULL) = 0x55d000",
      "1000  exit_group(0) = ?",
      "1000  +++ exited with 0 +++",
    ];
    const evs = await collect(parseStrace(L, strict("thread-exec.strace")));
    assert.deepEqual(
      evs.map((e) => [e.kind, e.line, e.pid, e.tid]),
      [
        ["execve", 1, 1000, 1000],
        ["clone", 2, 1000, 1000],
        ["execve", 7, 1000, 1000], // started by 1001 on line 4, resumed under the leader's pid
        ["exit", 6, 1000, 1001], // tid 1001 is gone
        ["brk", 8, 1000, 1000],
        ["exit", 9, 1000, 1000],
        ["exit", 10, 1000, 1000],
      ],
    );
    const ex = pick<ExecveEvent>(evs[2]!, "execve");
    assert.deepEqual([ex.path, ex.success, ex.startLine], ["/bin/true", true, 4]);
    const sup = pick<ExitEvent>(evs[3]!, "exit");
    assert.deepEqual([sup.via, sup.final, sup.group, sup.leader], ["superseded", true, false, 1000]);
  });

  it("throws one TraceError naming the line and what was expected; lenient mode counts instead", async () => {
    const bad = [
      STRACE_REAL[0]!,
      "9314  08:28:44.752224 mmap(NULL, 8x92, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f73a6a45000",
      "hello world",
      "9314  08:28:44.752224 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 3, 0 = 0x7f73a6a45000",
      STRACE_REAL[1]!,
    ];
    await assert.rejects(collect(parseStrace(bad, strict("bad.strace"))), (e: unknown) => {
      assert.ok(e instanceof TraceError);
      const col = bad[1]!.indexOf("8x92") + 1;
      assert.equal(e.format(), `bad.strace:2:${col}: expected a number for length, got '8x92'`);
      assert.deepEqual([e.file, e.line, e.col, e.reason], ["bad.strace", 2, col, "bad-number"]);
      return true;
    });
    const p = parseStrace(bad, { file: "bad.strace", lenient: true });
    const evs = await collect(p);
    assert.deepEqual(
      evs.map((e) => e.line),
      [1, 5],
    );
    assert.equal(p.stats.skipped, 3);
    assert.deepEqual(p.stats.skippedByReason, { "bad-number": 1, "not-strace": 1, "bad-args": 1 });
  });
});

// -----------------------------------------------------------------------------------------------
// perf trace

/** Lines copied verbatim from gcc-python.perftrace.gz (a non-contiguous selection; original line numbers in comments). */
const PERF_REAL = [
  "     0.000 ( 0.000 ms): sh/9266 minfault [elf_load+0x28a] => 0x559aa19c6240 (?k)", // 1
  "     0.067 ( 0.000 ms): sh/9266 minfault [_copy_to_user+0x28] => 0x7ffd9508b739 (?k)", // 3
  "         ? (         ): sh/9266  ... [continued]: execve())                                           = 0", // 4
  "     0.475 ( 0.018 ms): sh/9266 mmap(len: 8192, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)           = 0x7ff115fc9000", // 19
  "     0.506 ( 0.000 ms): sh/9266 minfault [_dl_init_paths+0xce] => //anon@0x7ff115fc9008 (d.)", // 20
  "     0.627 ( 0.019 ms): sh/9266 mmap(addr: 0x7ff115e04000, len: 1400832, prot: READ|EXEC, flags: PRIVATE|FIXED|DENYWRITE, fd: 4, off: 0x26000) = 0x7ff115e04000", // 25
  "     1.085 ( 0.018 ms): sh/9266 mprotect(start: 0x7ff115fad000, len: 16384, prot: READ)               = 0", // 49
  "     1.383 ( 0.018 ms): sh/9266 munmap(addr: 0x7ff115fc0000, len: 34547)                              = 0", // 63
  "     1.446 ( 0.000 ms): sh/9266 minfault [0x4760] => /usr/bin/dash@0x4760 (d.)", // 66
  "     1.552 ( 0.011 ms): sh/9266 brk()                                                                 = 0x559ac8c90000", // 73
  "     1.573 ( 0.015 ms): sh/9266 brk(brk: 0x559ac8cb1000)                                              = 0x559ac8cb1000", // 74
  "         ? (         ): sh/9267  ... [continued]: vfork())                                            = 0", // 81
  "     1.813 (         ): sh/9266 vfork()                                                            ...", // 82
  "     1.813 ( 0.982 ms): sh/9266  ... [continued]: vfork())                                            = 9267", // 83
  "     6.051 ( 0.000 ms): gcc/9267 majfault [elf_load+0x28a] => 0x53d108 (?k)", // 84
  "     2.053 ( 4.126 ms): gcc/9267 execve(filename: 0xc8c90b68, argv: 0x559ac8c90a00, envp: 0x559ac8c90a38) = 0", // 87
  "     9.712 ( 0.000 ms): gcc/9267 minfault [__vdso_clock_gettime+0x36] => [vvar]@0x0 (d.)", // 198
  "  2024.903 (         ): bash/9270 clone(clone_flags: CHILD_CLEARTID|CHILD_SETTID|0x11, child_tidptr: 0x7f0f3dc4aa10) ...", // 19848
  "  2024.903 ( 0.250 ms): bash/9270  ... [continued]: clone())                                            = 9273 (bash)", // 19849
  "  2025.312 ( 0.000 ms): bash/9270 minfault [0x64623] => [stack]@0x7ffdee01b434 (d.)", // 19857
  "         ? (         ): bash/9273  ... [continued]: clone())                                            = 9274 (bash)", // 19858
  "  2026.828 ( 0.000 ms): bash/9273 minfault [__put_user_8+0xd] => 0x7f0f3dc4b068 (?k)", // 19859
  "  2026.165 ( 0.000 ms): :9273/9273 minfault [0x56025223563c] => 0x56025223563c (?.)", // 19846
  "         ? (         ): bash/9274  ... [continued]: clone())                                            = ", // 19872
  "  2026.210 (         ): :9273/9273 clone(clone_flags: CHILD_CLEARTID|CHILD_SETTID|0x11, child_tidptr: 0x7f0f3dc4aa10) ...", // 19935: the entry, printed late
  "  2034.819 (         ): bash/9276 exit_group(error_code: 1)                                             = ?", // 20151
  "  2788.556 ( 0.000 ms): python3/9270 minfault [__memmove_avx512_unaligned_erms+0x212] => /dev/zero (deleted)@0x7f3c1e17c040 (d.)", // 46841
  "  2794.441 ( 0.085 ms): python3/9270 madvise(start: 0x7f3c1e17c000, len_in: 67108864, behavior: MADV_DONTNEED) = 0", // 47097
  "  1970.559 ( 0.022 ms): gcc/9269 execve(filename: 0x64752f0, argv: 0x11e46c88, envp: 0x11e46d30)       = -1 ENOENT (No such file or directory)", // 18491
];

describe("perf trace parser", () => {
  it("parses syscall, continued, entry and fault lines from the real recording", async () => {
    const p = parsePerfTrace(PERF_REAL, strict("real.perftrace"));
    const evs = await collect(p);
    assert.deepEqual(
      evs.map((e) => [e.kind, e.line, e.pid, e.tid]),
      [
        ["fault", 1, 9266, 9266],
        ["fault", 2, 9266, 9266],
        ["execve", 3, 9266, 9266], // [continued] without entry: held until 9266's next syscall line, emitted without arguments
        ["mmap", 4, 9266, 9266],
        ["fault", 5, 9266, 9266],
        ["mmap", 6, 9266, 9266],
        ["mprotect", 7, 9266, 9266],
        ["munmap", 8, 9266, 9266],
        ["fault", 9, 9266, 9266],
        ["brk", 10, 9266, 9266],
        ["brk", 11, 9266, 9266],
        ["clone", 14, 9266, 9266], // line 12 is the child's side of vfork: no event
        ["fault", 15, 9267, 9267],
        ["execve", 16, 9267, 9267],
        ["fault", 17, 9267, 9267],
        ["clone", 19, 9270, 9270],
        ["fault", 20, 9270, 9270],
        ["clone", 21, 9273, 9273], // arguments recovered from the late entry on line 25
        ["fault", 22, 9273, 9273],
        ["fault", 23, 9273, 9273],
        ["exit", 26, 9276, 9276],
        ["fault", 27, 9270, 9270],
        ["madvise", 28, 9270, 9270],
        ["execve", 29, 9269, 9269],
      ],
    );
    assert.equal(p.stats.ignoredByReason["child-return"], 2);
    const [k1, k2, exe, anon, anonF, file, mprot, unmap, fetch, brk0, brk1, vf, maj, exe2, vvar, cl, stack, late, put8, unk, eg, zero, madv, enoent] = evs;
    const f1 = pick<FaultEvent>(k1!, "fault");
    assert.deepEqual(
      f1,
      {
        kind: "fault",
        line: 1,
        pid: 9266,
        tid: 9266,
        time: 0,
        comm: "sh",
        major: false,
        kernel: true,
        mapType: "?",
        addr: 0x559aa19c6240,
        ipSym: "elf_load+0x28a",
        write: true,
        fetch: undefined,
      },
      "kernel-mode fault in elf_load (bss clearing) is a write",
    );
    assert.equal(pick<FaultEvent>(k2!, "fault").write, true, "_copy_to_user writes");
    assert.equal(k2!.time, 0.000067);
    const e = pick<ExecveEvent>(exe!, "execve");
    assert.deepEqual([e.success, e.path, e.time, e.startLine], [true, undefined, undefined, undefined]);
    const a = pick<MmapEvent>(anon!, "mmap");
    assert.deepEqual(
      { hint: a.hint, len: a.len, fd: a.fd, offset: a.offset, flags: a.flags, addr: a.addr, time: a.time, duration: a.duration },
      { hint: 0, len: 8192, fd: -1, offset: 0, flags: ["MAP_PRIVATE", "MAP_ANONYMOUS"], addr: 0x7ff115fc9000, time: 0.000475, duration: 0.000018 },
      "omitted zero args: addr 0; ANONYMOUS hides fd/off",
    );
    const af = pick<FaultEvent>(anonF!, "fault");
    assert.deepEqual(
      [af.addr, af.map, af.mapOffset, af.write, af.kernel, af.ipSym],
      [0x7ff115fc9008, "//anon", 0x7ff115fc9008, undefined, false, "_dl_init_paths+0xce"],
    );
    const m = pick<MmapEvent>(file!, "mmap");
    assert.deepEqual(
      [m.hint, m.fd, m.offset, m.prot, m.flags],
      [0x7ff115e04000, 4, 0x26000, { read: true, write: false, exec: true }, ["MAP_PRIVATE", "MAP_FIXED", "MAP_DENYWRITE"]],
    );
    const mp = pick<MprotectEvent>(mprot!, "mprotect");
    assert.deepEqual([mp.addr, mp.len, mp.prot], [0x7ff115fad000, 16384, { read: true, write: false, exec: false }]);
    const um = pick<MunmapEvent>(unmap!, "munmap");
    assert.deepEqual([um.addr, um.len], [0x7ff115fc0000, 34547]);
    const fe = pick<FaultEvent>(fetch!, "fault");
    assert.deepEqual(
      [fe.fetch, fe.write, fe.addr, fe.map, fe.mapOffset, fe.ip],
      [true, false, undefined, "/usr/bin/dash", 0x4760, 0x4760],
      "ip == target: instruction fetch",
    );
    assert.deepEqual([pick<BrkEvent>(brk0!, "brk").requested, pick<BrkEvent>(brk1!, "brk").requested], [0, 0x559ac8cb1000]);
    const v = pick<CloneEvent>(vf!, "clone");
    assert.deepEqual([v.child, v.vfork, v.thread, v.startLine, v.time, v.duration], [9267, true, false, 13, 0.001813, 0.000982]);
    assert.equal(pick<FaultEvent>(maj!, "fault").major, true);
    assert.equal(pick<ExecveEvent>(exe2!, "execve").path, undefined, "perf printed a pointer, not the path");
    const vv = pick<FaultEvent>(vvar!, "fault");
    assert.deepEqual([vv.addr, vv.map, vv.mapOffset], [undefined, "[vvar]", 0], "[vvar] offsets are map-relative");
    const c = pick<CloneEvent>(cl!, "clone");
    assert.deepEqual([c.child, c.flags, c.thread, c.vfork, c.sharesMm], [9273, ["CLONE_CHILD_CLEARTID", "CLONE_CHILD_SETTID", "SIGCHLD"], false, false, false]);
    const st = pick<FaultEvent>(stack!, "fault");
    assert.deepEqual([st.addr, st.map, st.ip, st.fetch], [0x7ffdee01b434, "[stack]", 0x64623, undefined]);
    const lt = pick<CloneEvent>(late!, "clone");
    assert.deepEqual([lt.child, lt.startLine, lt.time, lt.flags], [9274, 25, 2.02621, ["CLONE_CHILD_CLEARTID", "CLONE_CHILD_SETTID", "SIGCHLD"]]);
    assert.equal(pick<FaultEvent>(put8!, "fault").write, true);
    const u = pick<FaultEvent>(unk!, "fault");
    assert.deepEqual([u.addr, u.mapType, u.fetch, u.write, u.comm], [0x56025223563c, "?", true, false, ":9273"]);
    const x = pick<ExitEvent>(eg!, "exit");
    assert.deepEqual([x.status, x.group, x.via, x.final], [1, true, "exit_group", false]);
    assert.equal(pick<FaultEvent>(zero!, "fault").addr, 0x7f3c1e17c040, "/dev/zero (deleted) is identity-mapped");
    const md = pick<MadviseEvent>(madv!, "madvise");
    assert.deepEqual([md.addr, md.len, md.advice], [0x7f3c1e17c000, 67108864, "MADV_DONTNEED"]);
    const en = pick<ExecveEvent>(enoent!, "execve");
    assert.deepEqual([en.success, en.error], [false, "ENOENT"]);
  });

  it("throws TraceError on malformed perf lines; lenient mode counts them", async () => {
    const bad = [
      PERF_REAL[0]!,
      "     0.475 ( 0.018 ms): sh/9266 mmap(len: 81z2, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)           = 0x7ff115fc9000",
      "     0.506 ( 0.000 ms): sh/9266 minfault [_dl_init_paths+0xce] => //anon@0x7ff115fc9008",
      "Summary of events:",
      PERF_REAL[1]!,
    ];
    await assert.rejects(collect(parsePerfTrace(bad, strict("bad.perf"))), (e: unknown) => {
      assert.ok(e instanceof TraceError);
      assert.equal(e.line, 2);
      assert.match(e.format(), /^bad\.perf:2:\d+: expected a number for len, got '81z2'$/);
      return true;
    });
    const p = parsePerfTrace(bad, { file: "bad.perf", lenient: true });
    assert.deepEqual(
      (await collect(p)).map((e) => e.line),
      [1, 5],
    );
    assert.deepEqual(p.stats.skippedByReason, { "bad-number": 1, "bad-fault": 1, "not-perftrace": 1 });
  });
});

// -----------------------------------------------------------------------------------------------
// whole recordings

function readLines(text: string): string[] {
  const l = text.split("\n");
  if (l.at(-1) === "") l.pop();
  return l;
}

describe("real recordings", () => {
  // Skipped when ../shared/traces is absent; a failure under PTLAB_REQUIRE_TRACES=1.
  const opts = { skip: sharedMissing(STRACE_FILE, PERF_FILE) ?? false };
  it("parses gcc-python.strace completely (non-lenient) with the counts grep gives", opts, async () => {
    const p = parseStrace(readLines(readFileSync(STRACE_FILE, "utf8")), strict(STRACE_FILE));
    const evs = await collect(p);
    console.log("strace:", JSON.stringify(p.stats));
    // Counts derived independently: grep -cE '^[0-9]+ +[0-9:.]+ NAME\(' gcc-python.strace
    // (a call is one line starting with NAME( — complete or <unfinished ...>).
    // mmap 1173, munmap 120, mprotect 172, madvise 1, brk 397, execve 249, clone 40 + vfork 4, exit_group 45.
    assert.deepEqual(p.stats.eventsByKind, { execve: 249, brk: 397, mmap: 1173, mprotect: 172, munmap: 120, clone: 44, exit: 45, madvise: 1 });
    assert.equal(evs.length, 2201);
    // grep -cE '^[0-9]+ +[0-9:.]+ wait4\(' = 86; grep -c -- '--- SIG' = 44
    assert.deepEqual(p.stats.otherSyscalls, { wait4: 86 });
    assert.equal(p.stats.ignoredByReason.signal, 44);
    assert.equal(p.stats.lines, 2356);
    // 43 of the 249 execve calls succeed: grep execve gcc-python.strace | grep -cE '\) = 0$' (complete or resumed lines)
    assert.equal(evs.filter((e) => e.kind === "execve" && e.success).length, 43);
    // no failed mmap in this recording: grep -E ' mmap\(' | grep -c '= -1' = 0
    assert.equal(evs.filter((e) => e.kind === "mmap" && e.error !== undefined).length, 0);
    assertLineage(evs, 45);
  });

  it("parses gcc-python.perftrace.gz completely (non-lenient) with the counts grep gives", opts, async () => {
    const lines = readLines(gunzipSync(readFileSync(PERF_FILE)).toString("utf8"));
    const t0 = performance.now();
    const p = parsePerfTrace(lines, strict(PERF_FILE));
    const evs = await collect(p);
    const ms = performance.now() - t0;
    console.log(`perf trace: ${lines.length} lines in ${ms.toFixed(1)} ms = ${Math.round((lines.length / ms) * 1000)} lines/s`);
    console.log("perf trace:", JSON.stringify(p.stats));
    // zcat gcc-python.perftrace.gz | grep -cE '^ *[0-9.]+ \( *[0-9.]+ ms\): [^ ]+ (min|maj)fault \[' = 44822 (majfault: 31)
    // grep -cE '\): [^ ]+ NAME\(' for mmap 1173, munmap 120, mprotect 172, madvise 1, brk 403, exit_group 45 (none [continued])
    // execve: 262 complete lines (grep -E '\): [^ ]+ execve\(' | grep -vc '\.\.\.$') + 4 '[continued]: execve(' lines = 266
    // clone: 44 parent-side results (= <pid>); 44 child-side '[continued]: clone|vfork()) = [0]' lines; 45 distinct tids
    assert.deepEqual(p.stats.eventsByKind, { fault: 44822, execve: 266, brk: 403, mmap: 1173, mprotect: 172, munmap: 120, clone: 44, exit: 45, madvise: 1 });
    assert.equal(evs.filter((e) => e.kind === "fault" && e.major).length, 31);
    assert.equal(p.stats.ignoredByReason["child-return"], 44);
    assert.equal(p.stats.lines, 47108);
    // fault classification totals (grep): '(?k)' 545 kernel-mode, all with a known helper -> write known;
    // ip == target: grep -cE '(min|maj)fault \[(0x[0-9a-f]+)\] => ([^ ]*@)?\2 \(' = 961 fetches
    const faults = evs.filter((e) => e.kind === "fault");
    assert.equal(faults.filter((f) => f.kernel).length, 545);
    assert.equal(faults.filter((f) => f.kernel && f.write === undefined).length, 0);
    assert.equal(faults.filter((f) => f.fetch).length, 961);
    // identity maps (//anon 28270, [heap] 9599, [stack] 258, /dev/zero 256) + bare addresses (727 + 545)
    assert.equal(faults.filter((f) => f.addr !== undefined).length, 28270 + 9599 + 258 + 256 + 727 + 545);
  });

  it("reorder: sorting perf output by time puts every child after the clone that created it", opts, async () => {
    const lines = readLines(gunzipSync(readFileSync(PERF_FILE)).toString("utf8"));
    const inOrder = await collect(parsePerfTrace(lines, strict(PERF_FILE)));
    assert.ok(firstSeenBeforeCreation(inOrder) > 0, "perf's own order is not causal across CPUs");
    const sorted = await collect(parsePerfTrace(lines, { ...strict(PERF_FILE), reorder: 0.05 }));
    assert.equal(sorted.length, inOrder.length);
    assertLineage(sorted, 45);
    let last = Number.NEGATIVE_INFINITY;
    for (const e of sorted) {
      if (e.time === undefined) continue;
      assert.ok(e.time >= last, `time goes back at line ${e.line}`);
      last = e.time;
    }
  });

  it("openTrace detects both formats and gunzips transparently", opts, async () => {
    for (const [file, format] of [
      [STRACE_FILE, "strace"],
      [PERF_FILE, "perftrace"],
    ] as const) {
      const t = await openTrace(file);
      assert.equal(t.format, format);
      let n = 0;
      for await (const _ of t.lines) n++;
      assert.equal(n, format === "strace" ? 2356 : 47108);
    }
    const t0 = performance.now();
    const { events } = await parseTraceFile(PERF_FILE);
    let n = 0;
    for await (const _ of events) n++;
    console.log(`perf trace via openTrace (gunzip + readline + parse): ${n} events in ${(performance.now() - t0).toFixed(1)} ms`);
    assert.equal(n, 47046);
    assert.equal(detectFormat(["", "hello"]), undefined);
  });
});

function firstSeenBeforeCreation(evs: TraceEvent[]): number {
  const created = new Set<number>();
  const seen = new Set<number>();
  let bad = 0;
  for (const e of evs) {
    const tid = e.tid ?? 0;
    if (!seen.has(tid)) {
      if (seen.size > 0 && !created.has(tid)) bad++;
      seen.add(tid);
    }
    if (e.kind === "clone" && e.child !== undefined) created.add(e.child);
  }
  return bad;
}

function assertLineage(evs: TraceEvent[], tids: number): void {
  assert.equal(firstSeenBeforeCreation(evs), 0, "every task appears after the clone that created it");
  assert.equal(new Set(evs.map((e) => e.tid)).size, tids);
  for (const e of evs) assert.equal(e.pid, e.tid, "no threads in these recordings: pid = tid");
}

// -----------------------------------------------------------------------------------------------
// robustness

const MUTANT_SOURCE = [...STRACE_REAL, ...STRACE_SYNTH, ...PERF_REAL];
const JUNK = [
  "(",
  ")",
  '"',
  "\\",
  "<",
  ">",
  "...",
  " <unfinished ...>",
  "<... mmap resumed>",
  "= ",
  "-1",
  "0x",
  "|",
  ",",
  "@",
  "[",
  "]",
  "+++",
  "---",
  "/*",
  "\t",
  "\u00e9",
  "9".repeat(30),
];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...JUNK), fc.string({ maxLength: 6 })) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("splice" as const), at: fc.nat(), other: fc.nat(), from: fc.nat() }),
);

type Mutation =
  | { op: "delete"; at: number; len: number }
  | { op: "insert"; at: number; text: string }
  | { op: "truncate"; at: number }
  | { op: "splice"; at: number; other: number; from: number };

function mutate(line: string, muts: Mutation[]): string {
  let s = line;
  for (const m of muts) {
    const at = s.length === 0 ? 0 : m.at % (s.length + 1);
    if (m.op === "delete") s = s.slice(0, at) + s.slice(at + m.len);
    else if (m.op === "insert") s = s.slice(0, at) + m.text + s.slice(at);
    else if (m.op === "truncate") s = s.slice(0, at);
    else {
      const o = MUTANT_SOURCE[m.other % MUTANT_SOURCE.length]!;
      s = s.slice(0, at) + o.slice(m.from % (o.length + 1));
    }
  }
  return s;
}

const traceArb = fc.array(
  fc.record({ src: fc.nat(), muts: fc.array(mutation, { maxLength: 3 }) }).map(({ src, muts }) => mutate(MUTANT_SOURCE[src % MUTANT_SOURCE.length]!, muts)),
  { minLength: 1, maxLength: 30 },
);

describe("robustness (fast-check)", () => {
  for (const [name, parse] of [
    ["strace", parseStrace],
    ["perf trace", parsePerfTrace],
  ] as const) {
    it(`${name}: mutated real lines throw only TraceError (strict) and never throw (lenient)`, async () => {
      await fc.assert(
        fc.asyncProperty(traceArb, async (lines) => {
          try {
            await collect(parse(lines, strict("fuzz")));
          } catch (e) {
            if (!(e instanceof TraceError)) throw e;
            assert.match(e.format(), /^fuzz:\d+:\d+: ./);
            assert.ok(e.line >= 1 && e.line <= lines.length);
          }
          const p = parse(lines, { file: "fuzz", lenient: true });
          const evs = await collect(p);
          assert.equal(p.stats.lines, lines.length);
          assert.equal(p.stats.events, evs.length);
          for (const ev of evs) assert.ok(Number.isInteger(ev.line) && ev.line >= 1 && ev.line <= lines.length);
        }),
        { numRuns: 400 },
      );
    });
  }
});
