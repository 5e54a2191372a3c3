// Replay of the real recordings in ../shared/traces on the model, with
// invariants checked after every syscall.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, it } from "node:test";
import { defaultReplayOptions, Replayer } from "../src/replay/replay.js";
import { parseTraceFile } from "../src/trace/open.js";
import { pteOffset } from "../src/core/mm/walk.js";
import { sharedMissing, sharedPath } from "./shared-path.js";

const TRACES = sharedPath("traces");

async function replay(file: string, touch: Replayer["opts"]["touch"], arch: Replayer["opts"]["arch"] = "x86_64") {
  const { events } = await parseTraceFile(file, { reorder: file.endsWith(".gz") ? 0.05 : 0 });
  const r = new Replayer({ ...defaultReplayOptions(), touch, arch });
  for await (const e of events) r.apply(e);
  return r;
}

describe("replay: what execve and perf's fds hide (issue 15, item 8)", () => {
  // The fd of a mmap names no file in perf trace, and the descriptor is
  // reused for the next library; files execve mapped have no mmap at all.
  it("a fault naming a path binds the one unnamed fd mapping holding its offset; an execve-mapped file is placed where the faults need it", async () => {
    const line = (t: number, rest: string) => `     0.${t}00 ( 0.000 ms): t/100 ${rest}`;
    const text = [
      line(1, "mmap(len: 16384, prot: READ, flags: PRIVATE|DENYWRITE, fd: 3)       = 0x7f1000100000"),
      line(2, "mmap(len: 32768, prot: READ, flags: PRIVATE|DENYWRITE, fd: 3)       = 0x7f1000200000"),
      // Only the second mapping (32K) holds 0x6000: it is libB.
      line(3, "minfault [f+0x1] => /lib/libB.so@0x6000 (d.)"),
      // Both hold 0x2000, but the second is libB's: libA is the first.
      line(4, "minfault [f+0x1] => /lib/libA.so@0x2000 (d.)"),
      line(5, "minfault [f+0x1] => /usr/bin/prog@0x40 (d.)"),
      line(6, "minfault [f+0x1] => /usr/bin/prog@0x1000040 (d.)"),
      line(7, "minfault [f+0x1] => [vvar]@0x0 (d.)"),
      line(8, "minfault [f+0x1] => /lib/libA.so@0x3000 (d.)"),
    ].join("\n");
    const f = join(mkdtempSync(join(tmpdir(), "ptlab-replay-")), "t.perf");
    writeFileSync(f, `${text}\n`);
    const r = await replay(f, { kind: "none" });
    assert.deepEqual(r.violations, []);
    assert.equal(r.stats.faults, 6);
    assert.equal(r.stats.unresolvedFaults, 1, "[vvar] has no file to map");
    assert.equal(r.stats.inferredFdFiles, 2);
    assert.equal(r.stats.inferredExecFiles, 1);
    assert.equal(r.stats.inferredFaults, 5);
    assert.deepEqual(r.inferred(), {
      fdFiles: [
        ["/lib/libA.so", 1],
        ["/lib/libB.so", 1],
      ],
      execFiles: [["/usr/bin/prog", 1]],
    });
    const mm = r.m.mms[0]!;
    const present = (a: number) => {
      const pi = pteOffset(r.m, mm, a);
      return pi >= 0 && r.m.tables.get(pi) !== 0;
    };
    for (const a of [0x7f1000206000, 0x7f1000102000, 0x7f1000103000]) assert.ok(present(a), `0x${a.toString(16)} faulted in`);
    for (const a of [0x7f1000202000, 0x7f1000203000, 0x7f1000106000]) assert.ok(!present(a), `0x${a.toString(16)} untouched`);
    // prog: one window from offset 0 (16 MiB) and the next one right after it.
    const prog = mm.vmas.filter((v) => v.file?.name === "/usr/bin/prog");
    assert.equal(prog.length, 1, "the two windows merge");
    const base = prog[0]!.start;
    assert.equal(prog[0]!.end - base, (16 << 20) + (2 << 20));
    assert.ok(present(base) && present(base + 0x1000000));
  });

  it("on the perf trace, all but the special mappings' faults resolve, each file classed as fd-mapped or execve-mapped", async (t) => {
    const f = `${TRACES}/gcc-python.perftrace.gz`;
    const why = sharedMissing(f);
    if (why !== undefined) return t.skip(why);
    const r = await replay(f, { kind: "none" });
    // Before the inference 5167 of the 44822 faults were unresolved.
    assert.ok(r.stats.unresolvedFaults < 50, JSON.stringify(r.stats));
    const { fdFiles, execFiles } = r.inferred();
    const fd = new Set(fdFiles.map(([p]) => p.split("/").pop()));
    const exec = new Set(execFiles.map(([p]) => p.split("/").pop()));
    for (const lib of ["libc.so.6", "ld.so.cache", "libtinfo.so.6.4", "libpython3.11.so.1.0"]) assert.ok(fd.has(lib) && !exec.has(lib), lib);
    for (const prog of ["ld-linux-x86-64.so.2", "bash", "cc1", "x86_64-linux-gnu-as"]) assert.ok(exec.has(prog) && !fd.has(prog), prog);
    // Every process execve'd has its interpreter placed once.
    assert.equal(execFiles.find(([p]) => p.endsWith("/ld-linux-x86-64.so.2"))?.[1], 43);
  });
});

describe("replay", () => {
  it("replays the perf trace: faults become accesses, every process exits clean", async (t) => {
    const f = `${TRACES}/gcc-python.perftrace.gz`;
    const why = sharedMissing(f);
    if (why !== undefined) return t.skip(why);
    const r = await replay(f, { kind: "none" });
    assert.deepEqual(r.violations, []);
    assert.equal(r.stats.faults, 44822);
    assert.ok(r.stats.faults - r.stats.unresolvedFaults > 35000, JSON.stringify(r.stats));
    assert.equal(r.stats.segv, 0);
    assert.ok(r.summaries.some((p) => p.peakVmpteKb > 0));
    // perf trace prints execve's filename as a pointer: the processes are
    // named by the comm the exec gave them, not their parent shell's.
    const comms = new Set(r.summaries.map((p) => p.comm));
    for (const c of ["gcc", "cc1", "as", "python3"]) assert.ok(comms.has(c), `no ${c} among ${[...comms].join(", ")}`);
  });

  // exit_mmap() on arm64 frees pages with no TLBI while they are still in
  // TLBs under the dying ASID (cc1's exit_group did, 785 times): not reachable.
  it("replays the perf trace on arm64: exit_group() teardowns are clean", async (t) => {
    const f = `${TRACES}/gcc-python.perftrace.gz`;
    const why = sharedMissing(f);
    if (why !== undefined) return t.skip(why);
    const r = await replay(f, { kind: "none" }, "arm64");
    assert.deepEqual(r.violations, []);
    assert.equal(r.stats.segv, 0);
  });

  it("replays the strace recording with a touch policy, deterministically", async (t) => {
    const f = `${TRACES}/gcc-python.strace`;
    const why = sharedMissing(f);
    if (why !== undefined) return t.skip(why);
    const a = spawnSync("node", ["dist/src/cli/main.js", "replay", "--json", "--touch", "first:16", f], { encoding: "utf8" });
    const b = spawnSync("node", ["dist/src/cli/main.js", "replay", "--json", "--touch", "first:16", f], { encoding: "utf8" });
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    const j = JSON.parse(a.stdout);
    assert.deepEqual(j.violations, []);
    assert.ok(j.stats.touches > 0);
    const none = spawnSync("node", ["dist/src/cli/main.js", "replay", "--json", "--touch", "none", f], { encoding: "utf8" });
    assert.equal(JSON.parse(none.stdout).stats.touches, 0);
  });

  it("rejects a bad option with exit code 2", () => {
    const r = spawnSync("node", ["dist/src/cli/main.js", "replay", "--touch", "some", "x"], { encoding: "utf8" });
    assert.equal(r.status, 2);
  });

  it("a damaged, truncated, missing or endless input is one located line and exit 2; --lenient replays what came before the damage", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-replay-"));
    const lines: string[] = [];
    for (let i = 0; i < 4000; i++) {
      const a = (0x7f0000000000 + i * 0x10000).toString(16);
      lines.push(`100 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x${a}`, `100 munmap(0x${a}, 8192) = 0`);
    }
    const gz = gzipSync(`${lines.join("\n")}\n`);
    const cut = join(dir, "cut.strace.gz");
    writeFileSync(cut, gz.subarray(0, gz.length >> 1));
    const bad = Buffer.from(gz);
    bad.fill(0, gz.length - 400, gz.length - 200); // the tail: the data before it decodes, then the check fails
    const dmg = join(dir, "damaged.strace.gz");
    writeFileSync(dmg, bad);
    const long = join(dir, "long.strace");
    writeFileSync(long, `100 munmap(0x7f0000000000, 8192) = 0\n${"x".repeat(5 << 20)}\n`);
    const run = (...a: string[]) => spawnSync("node", ["dist/src/cli/main.js", "replay", ...a], { encoding: "utf8" });
    for (const [f, want] of [
      [cut, /cut\.strace\.gz:\d+:1: damaged gzip stream: unexpected end of file/],
      [dmg, /damaged\.strace\.gz:\d+:\d+: /],
      [dir, /:1:1: is a directory: expected a trace file/],
      [join(dir, "none"), /none:1:1: cannot read: no such file/],
      [long, /long\.strace:2:1: line longer than 4 MiB: not a trace/],
    ] as const) {
      const r = run(f);
      assert.equal(r.status, 2, `${f}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    const ok = run("--lenient", "--json", cut);
    assert.equal(ok.status, 0, ok.stderr);
    const j = JSON.parse(ok.stdout);
    assert.match(j.damaged, /damaged gzip stream: unexpected end of file/);
    assert.ok(j.parse.events > 100 && j.parse.events < 8000, `replayed ${j.parse.events} events before the cut`);
  });

  it("--memory-limit pushes a replay into reclaim: kswapd swaps out under --swap, and without swap the trace line that ran out of memory is named, exit 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-replay-"));
    const f = join(dir, "big.strace");
    // 64 MiB of anon memory written page by page (touch writable), then 4 MiB given back.
    writeFileSync(
      f,
      [
        "100 mmap(NULL, 67108864, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
        "100 madvise(0x7f0000000000, 4194304, MADV_DONTNEED) = 0",
        "100 exit_group(0) = ?",
        "",
      ].join("\n"),
    );
    const run = (...a: string[]) => spawnSync("node", ["dist/src/cli/main.js", "replay", "--touch", "writable", "--json", f, ...a], { encoding: "utf8" });
    const free = JSON.parse(run().stdout);
    assert.equal(free.totals.pswpout, 0);
    assert.equal(free.stats.kswapdRuns, 0);
    const lim = run("--memory-limit", "32M", "--swap", "128M");
    assert.equal(lim.status, 0, lim.stderr);
    const j = JSON.parse(lim.stdout);
    assert.deepEqual(j.violations, []);
    assert.ok(j.stats.kswapdRuns > 0);
    // 16384 pages written into 8192 pages of RAM: at least the difference went to swap.
    assert.ok(j.totals.pswpout >= 16384 - 8192, `pswpout ${j.totals.pswpout}`);
    assert.equal(j.totals.pswpout, j.totals.pgsteal);
    assert.equal(run("--memory-limit", "32M", "--swap", "128M").stdout, lim.stdout);
    const oom = run("--memory-limit", "32M");
    assert.equal(oom.status, 2);
    assert.match(oom.stderr, /big\.strace:1:1: out of memory: \d+ of the 8192 pages of --memory-limit in use .*no swap device/);
    assert.equal(oom.stderr.trim().split("\n").length, 1);
    for (const bad of [
      ["--memory-limit", "8M"],
      ["--memory-limit", "1000"],
      ["--swap", "lots"],
      ["--variant", "nope=x"],
      ["--mthp", "2M"],
      ["--thp", "sometimes"],
    ]) {
      const r = run(...bad);
      assert.equal(r.status, 2, `${bad.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  });

  it("machine options reach the model: --pt-reclaim, --mthp, --variant", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-replay-"));
    const f = join(dir, "m.strace");
    writeFileSync(
      f,
      "100 mmap(NULL, 8388608, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n100 madvise(0x7f0000000000, 4194304, MADV_DONTNEED) = 0\n100 exit_group(0) = ?\n",
    );
    const run = (...a: string[]) =>
      JSON.parse(spawnSync("node", ["dist/src/cli/main.js", "replay", "--touch", "writable", "--json", f, ...a], { encoding: "utf8" }).stdout);
    const base = run();
    assert.equal(base.totals.pt_reclaimed, 2);
    assert.equal(run("--pt-reclaim", "off").totals.pt_reclaimed, 0);
    assert.equal(base.totals.mthp_faults, 0);
    assert.equal(run("--mthp", "64K").totals.mthp_faults, 8388608 / 65536);
    // Zap of 64K folios with folio_pte_batch() and without it.
    const batched = run("--mthp", "64K");
    const unbatched = run("--mthp", "64K", "--variant", "zap_batching=off");
    assert.notDeepEqual(batched.totals, unbatched.totals);
  });
});
