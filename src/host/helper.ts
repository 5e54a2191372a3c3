// Host side of `ptlab diff-kernel`: builds and drives native/ptlab-host.c, a
// small C process that executes page-table-relevant syscalls on the real
// kernel and reports its figures (VmPTE, RSS counters, VMAs, present pages).
//
// Node-only. The wire protocol is documented at the top of ptlab-host.c; this
// module mirrors it with typed async methods. Commands are strictly
// sequential: each method call waits for the previous one's reply.

import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { access, constants, mkdir, mkdtemp, readdir, readFile, rename, rm, statfs, unlink } from "node:fs/promises";
import { homedir, tmpdir, release as osRelease } from "node:os";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import type { Advice, MmapFlag, Prot, ThpPolicy } from "../scenario/types.js";

// ---------------------------------------------------------------- types

export interface HelperSkip {
  skip: string;
}

export function isHelperSkip(v: string | HelperSkip): v is HelperSkip {
  return typeof v !== "string";
}

/** Figures of one process, all in kB (from /proc/self/status and smaps_rollup). */
export interface HostStats {
  vmpte_kb: number;
  rss_anon_kb: number;
  rss_file_kb: number;
  rss_shmem_kb: number;
  anon_huge_kb: number;
  vm_rss_kb: number;
  vm_size_kb: number;
  /** VmSwap: swap entries in the page tables (MM_SWAPENTS) */
  vmswap_kb: number;
}

/** A run of pages in the same state, from `k G` (/proc/self/pagemap, and for
 * a present page whose PFN is visible, /proc/kpageflags and /proc/kpagecount). */
export interface HostPageRun {
  start: number;
  npages: number;
  /** bits 55..63 of the pagemap entry, shifted down (see PM_* below) */
  flags: number;
  /** the kpageflags word and the kpagecount of a present page; undefined when
   * the PFN is hidden (no CAP_SYS_ADMIN) or the files are unreadable */
  kpf?: bigint;
  kpc?: number;
}

// pagemap bits of HostPageRun.flags (Documentation/admin-guide/mm/pagemap.rst: bit 55 + n)
export const PM_SOFT_DIRTY = 1 << 0;
export const PM_MMAP_EXCLUSIVE = 1 << 1;
export const PM_FILE = 1 << 6;
export const PM_SWAP = 1 << 7;
export const PM_PRESENT = 1 << 8;
// kpageflags bits (include/uapi/linux/kernel-page-flags.h)
export const KPF_DIRTY = 4;
export const KPF_ANON = 12;
export const KPF_SWAPCACHE = 13;
export const KPF_SWAPBACKED = 14;
export const KPF_THP = 22;
export const KPF_ZERO_PAGE = 24;

export interface HostVma {
  start: number;
  end: number;
  perms: string; // e.g. "rw-p"
  offset: number;
  path: string; // "" for anonymous, "[heap]", "[stack]", a file path...
}

/** A maximal run of present pages inside one VMA (runs never cross VMAs). */
export interface HostPresentRun {
  start: number;
  npages: number;
  /** a: anonymous page; f: file page or shared anonymous (shmem) page */
  kind: "a" | "f";
  /** mapped to the shared zero page (only detectable with PAGEMAP_SCAN, Linux 6.7+) */
  zero: boolean;
}

export interface HostSnapshot {
  vmas: HostVma[];
  present: HostPresentRun[];
  /** start addresses of PMD-mapped huge pages (needs PAGEMAP_SCAN, Linux 6.7+) */
  thp: number[];
}

/** Results of `ptlab-host probe` (run in a separate scratch process). */
export interface HostProbe {
  /** a read fault on private anonymous memory maps the shared zero page */
  zeroPage: boolean;
  /** same for a MADV_HUGEPAGE 2 MiB block; undefined when THP is "never" */
  hugeZeroPage: boolean | undefined;
  /** MADV_DONTNEED of a whole populated PTE table freed it (observed) */
  ptReclaim: boolean;
}

export interface HostEnv {
  thp: ThpPolicy;
  thpUseZeroPage: boolean;
  /** one entry per /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB with an
   * `enabled` file; setting is the selected value ("always", "inherit", "madvise", "never") */
  mthpEnabled: { sizeKb: number; setting: string }[];
  /** CONFIG_PT_RECLAIM from /proc/config.gz or /boot/config-<release>; undefined if unknown */
  ptReclaim: boolean | undefined;
  kernel: string;
  pageSize: number;
  /** x86 paging levels in use (from the la57 CPU flag); undefined if unknown */
  levels: 4 | 5 | undefined;
  /** CPUs the helper may run on */
  cpus: number | undefined;
  /** behaviour checks; undefined if the probe failed */
  probe: HostProbe | undefined;
}

export type HostMmapFlag = MmapFlag | "fixed_noreplace";

export type BenchOp = "fault" | "mprotect_ro" | "mprotect_rw" | "fork_exit" | "dontneed" | "munmap";
export const BENCH_OPS: readonly BenchOp[] = ["fault", "mprotect_ro", "mprotect_rw", "fork_exit", "dontneed", "munmap"];

/** An `E <errno-name> <message>` reply; `code` is the errno name (e.g. "EINVAL"),
 * or "SIGSEGV"/"SIGBUS" for a faulting touch, or "ECHILD" if the slot process died. */
export class HostError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly command: string,
  ) {
    super(message);
    this.name = "HostError";
  }
}

// ---------------------------------------------------------------- constants

export const MAP_FLAG_BITS: Record<HostMmapFlag, number> = {
  shared: 0x1,
  private: 0x2,
  fixed: 0x10,
  anonymous: 0x20,
  noreserve: 0x4000,
  populate: 0x8000,
  fixed_noreplace: 0x100000,
};

export const ADVICE_NUMBERS: Record<Advice, number> = {
  willneed: 3,
  dontneed: 4,
  free: 8,
  hugepage: 14,
  nohugepage: 15,
  cold: 20,
  pageout: 21,
  collapse: 25,
};

export const MREMAP_MAYMOVE = 1;

export function protBits(p: Prot): number {
  return (p.read ? 1 : 0) | (p.write ? 2 : 0) | (p.exec ? 4 : 0);
}

export function mmapFlagBits(flags: readonly HostMmapFlag[]): number {
  let v = 0;
  for (const f of flags) {
    const b = MAP_FLAG_BITS[f];
    if (b === undefined) throw new Error(`unknown mmap flag: ${String(f)}`);
    v |= b;
  }
  return v;
}

// ---------------------------------------------------------------- build

const CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"];
// Static first: fewer VMAs, no lazy binding; fall back to an eagerly bound dynamic binary.
const LINK_VARIANTS = [["-static"], ["-Wl,-z,now"]];

/** The directory holding package.json and native/ptlab-host.c, found by walking up
 * from this module (src/host/ when run from source, dist/src/host/ when built). */
export function findProjectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  let firstPkg: string | undefined;
  for (;;) {
    if (existsSync(join(dir, "package.json"))) {
      if (existsSync(join(dir, "native", "ptlab-host.c"))) return dir;
      firstPkg ??= dir;
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  if (firstPkg) return firstPkg;
  throw new Error("ptlab: cannot find the project root (no package.json above the host driver)");
}

export function helperSourcePath(): string {
  return join(findProjectRoot(), "native", "ptlab-host.c");
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  spawnError?: NodeJS.ErrnoException;
}

function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
      if (e && typeof e.code === "string") {
        res({ code: null, stdout: String(stdout), stderr: String(stderr), spawnError: e });
        return;
      }
      const code = e ? (typeof e.code === "number" ? e.code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let builtPromise: Promise<string | HelperSkip> | undefined;

/**
 * Compile native/ptlab-host.c into `.cache/ptlab-host-<hash>` under the project
 * root (once per source version; cached across runs). Resolves to the binary's
 * path, or `{skip}` when the host cannot run it (not Linux x86-64, no C
 * compiler). Rejects if the compiler exists but compilation fails.
 */
export function ensureHelperBuilt(): Promise<string | HelperSkip> {
  builtPromise ??= buildHelper().catch((e: unknown) => {
    builtPromise = undefined;
    throw e;
  });
  return builtPromise;
}

async function buildHelper(): Promise<string | HelperSkip> {
  if (process.platform !== "linux") {
    return { skip: `the host helper needs Linux (this is ${process.platform})` };
  }
  if (process.arch !== "x64") {
    return { skip: `the host helper needs x86-64 (this is ${process.arch})` };
  }
  const root = findProjectRoot();
  const src = join(root, "native", "ptlab-host.c");
  let source: Buffer;
  try {
    source = await readFile(src);
  } catch {
    return { skip: `host helper source not found: ${src}` };
  }
  const hash = createHash("sha256")
    .update(source)
    .update(JSON.stringify([CFLAGS, LINK_VARIANTS]))
    .digest("hex")
    .slice(0, 16);
  const out = join(cacheDir(), `ptlab-host-${hash}`);
  try {
    await access(out, constants.X_OK);
    return out;
  } catch {
    // not built yet
  }
  await mkdir(dirname(out), { recursive: true });
  const failures: string[] = [];
  let haveCompiler = false;
  for (const cc of ["cc", "gcc"]) {
    for (const link of LINK_VARIANTS) {
      const tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
      const r = await run(cc, [...CFLAGS, ...link, "-o", tmp, src]);
      if (r.spawnError) {
        if (r.spawnError.code === "ENOENT") break; // no such compiler: try the next one
        failures.push(`${cc}: ${r.spawnError.message}`);
        continue;
      }
      haveCompiler = true;
      if (r.code === 0) {
        await rename(tmp, out); // atomic: concurrent builders agree on the result
        await removeStaleBuilds(dirname(out), out);
        return out;
      }
      await unlink(tmp).catch(() => undefined);
      failures.push(`${cc} ${link.join(" ")}:\n${r.stderr.trim()}`);
    }
  }
  if (!haveCompiler) return { skip: "no C compiler found (tried cc and gcc)" };
  throw new Error(`ptlab: compiling ${src} failed:\n${failures.join("\n")}`);
}

/** Remove binaries built from older versions of the source (best effort). */
async function removeStaleBuilds(dir: string, keep: string): Promise<void> {
  try {
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      if (p !== keep && /^ptlab-host-[0-9a-f]{16}$/.test(name)) await unlink(p).catch(() => undefined);
    }
  } catch {
    // ignore
  }
}

async function requireHelper(helperPath?: string): Promise<string> {
  if (helperPath) return helperPath;
  const h = await ensureHelperBuilt();
  if (isHelperSkip(h)) throw new Error(`ptlab: host helper unavailable: ${h.skip}`);
  return h;
}

// ---------------------------------------------------------------- kernel config

async function readKernelConfig(release: string): Promise<string | undefined> {
  try {
    return gunzipSync(await readFile("/proc/config.gz")).toString("latin1");
  } catch {
    // not available
  }
  try {
    return await readFile(`/boot/config-${release}`, "latin1");
  } catch {
    return undefined;
  }
}

/** CONFIG_PT_RECLAIM of the running kernel, or undefined if its config is unreadable. */
export async function detectPtReclaim(release: string = osRelease()): Promise<boolean | undefined> {
  const cfg = await readKernelConfig(release);
  if (cfg === undefined) return undefined;
  return /^CONFIG_PT_RECLAIM=y$/m.test(cfg);
}

// ---------------------------------------------------------------- parsing helpers

function num(n: number, what: string): string {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 64) {
    throw new RangeError(`ptlab host: ${what} must be a non-negative integer, got ${n}`);
  }
  return BigInt(n).toString();
}

function signedNum(n: number, what: string): string {
  if (!Number.isInteger(n) || Math.abs(n) >= 2 ** 63) {
    throw new RangeError(`ptlab host: ${what} must be an integer, got ${n}`);
  }
  return BigInt(n).toString();
}

function slotArg(slot: number): string {
  if (!Number.isInteger(slot) || slot < 0 || slot > 31) {
    throw new RangeError(`ptlab host: slot must be 0..31, got ${slot}`);
  }
  return String(slot);
}

function hex(s: string | undefined, line: string): number {
  if (s === undefined || !/^[0-9a-f]+$/.test(s)) throw new Error(`ptlab host: bad reply: ${line}`);
  return Number.parseInt(s, 16);
}

function dec(s: string | undefined, line: string): number {
  if (s === undefined || !/^\d+$/.test(s)) throw new Error(`ptlab host: bad reply: ${line}`);
  return Number(s);
}

function expectTag(line: string, tag: string): string[] {
  const parts = line.split(" ");
  if (parts[0] !== tag) throw new Error(`ptlab host: expected "${tag} ..." reply, got: ${line}`);
  return parts;
}

function selected(line: string): string | undefined {
  return /\[([^\]]+)\]/.exec(line)?.[1];
}

export function parseSnapshot(lines: readonly string[]): HostSnapshot {
  const snap: HostSnapshot = { vmas: [], present: [], thp: [] };
  for (const line of lines) {
    const t = line.split(" ");
    switch (t[0]) {
      case "m":
        snap.vmas.push({
          start: hex(t[1], line),
          end: hex(t[2], line),
          perms: t[3] ?? "",
          offset: hex(t[4], line),
          path: t.slice(5).join(" "),
        });
        break;
      case "p": {
        const kind = t[3];
        if (kind !== "a" && kind !== "f") throw new Error(`ptlab host: bad reply: ${line}`);
        snap.present.push({
          start: hex(t[1], line),
          npages: dec(t[2], line),
          kind,
          zero: t[4] === "1",
        });
        break;
      }
      case "h":
        snap.thp.push(hex(t[1], line));
        break;
      default:
        throw new Error(`ptlab host: unexpected snapshot line: ${line}`);
    }
  }
  return snap;
}

export function parsePages(lines: readonly string[]): HostPageRun[] {
  const out: HostPageRun[] = [];
  for (const line of lines) {
    const t = line.split(" ");
    if (t[0] !== "g" || t.length !== 6) throw new Error(`ptlab host: unexpected page-state line: ${line}`);
    const run: HostPageRun = { start: hex(t[1], line), npages: dec(t[2], line), flags: hex(t[3], line) };
    if (t[4] !== "-") {
      if (!/^[0-9a-f]+$/.test(t[4] as string)) throw new Error(`ptlab host: bad reply: ${line}`);
      run.kpf = BigInt(`0x${t[4]}`);
      run.kpc = dec(t[5], line);
    }
    out.push(run);
  }
  return out;
}

export function parseProbe(text: string): HostProbe {
  const v = new Map<string, string>();
  for (const line of text.split("\n")) {
    const [k, val] = line.trim().split(" ");
    if (k && val !== undefined) v.set(k, val);
  }
  const need = (k: string) => {
    const x = v.get(k);
    if (x === undefined) throw new Error(`ptlab host: probe output lacks "${k}":\n${text}`);
    return x;
  };
  const hz = need("huge_zero_page");
  return {
    zeroPage: need("zero_page") === "1",
    hugeZeroPage: hz === "-" ? undefined : hz === "1",
    ptReclaim: need("pt_reclaim") === "1",
  };
}

// ---------------------------------------------------------------- probe & bench

const probeCache = new Map<string, Promise<HostProbe>>();

/** Run `ptlab-host probe` (scratch process; cached per helper binary). */
export function runHostProbe(helperPath?: string): Promise<HostProbe> {
  return requireHelper(helperPath).then((h) => {
    let p = probeCache.get(h);
    if (!p) {
      p = run(h, ["probe"], 30_000).then((r) => {
        if (r.spawnError || r.code !== 0) {
          throw new Error(`ptlab host: probe failed: ${r.spawnError?.message ?? r.stderr ?? r.stdout}`);
        }
        return parseProbe(r.stdout);
      });
      p.catch(() => probeCache.delete(h));
      probeCache.set(h, p);
    }
    return p;
  });
}

/**
 * Micro-benchmark of the host kernel: for an anonymous private mapping of
 * `bytes` (4 KiB pages, MADV_NOHUGEPAGE), the median over `reps` repetitions
 * of the nanoseconds per page of each operation.
 */
export async function runHostBench(bytes: number, reps: number, helperPath?: string): Promise<Record<BenchOp, number>> {
  const h = await requireHelper(helperPath);
  const r = await run(h, ["bench", num(bytes, "bytes"), num(reps, "reps")], 600_000);
  if (r.spawnError || r.code !== 0) {
    throw new Error(`ptlab host: bench failed: ${r.spawnError?.message ?? (r.stdout + r.stderr).trim()}`);
  }
  const out: Partial<Record<BenchOp, number>> = {};
  for (const line of r.stdout.split("\n")) {
    const t = line.trim().split(" ");
    if (t[0] !== "bench" || t.length !== 3) continue;
    const op = t[1] as BenchOp;
    if (BENCH_OPS.includes(op)) out[op] = Number(t[2]);
  }
  for (const op of BENCH_OPS) {
    if (out[op] === undefined || !Number.isFinite(out[op])) {
      throw new Error(`ptlab host: bench output lacks "${op}":\n${r.stdout}`);
    }
  }
  return out as Record<BenchOp, number>;
}

/** The actors' bench (ns per page): MADV_COLLAPSE, and with swap also
 * MADV_PAGEOUT and the swap-in write faults; a call that failed is NaN. */
export type ActorBenchOp = "collapse" | "pageout" | "swapin";
export async function runHostActorsBench(bytes: number, reps: number, swap: boolean, helperPath?: string): Promise<Partial<Record<ActorBenchOp, number>>> {
  const h = await requireHelper(helperPath);
  const r = await run(h, ["bench-actors", num(bytes, "bytes"), num(reps, "reps"), swap ? "1" : "0"], 600_000);
  if (r.spawnError || r.code !== 0) {
    throw new Error(`ptlab host: bench-actors failed: ${r.spawnError?.message ?? (r.stdout + r.stderr).trim()}`);
  }
  const out: Partial<Record<ActorBenchOp, number>> = {};
  for (const line of r.stdout.split("\n")) {
    const t = line.trim().split(" ");
    if (t[0] !== "bench" || t.length !== 3) continue;
    out[t[1] as ActorBenchOp] = t[2] === "-" ? Number.NaN : Number(t[2]);
  }
  return out;
}

/** One benchmark of `ptlab calibrate` (native `calib`): the median ns per
 * page of `op` over `bytes` of PMD-aligned private anon memory, 4K pages
 * (MADV_NOHUGEPAGE) or THP (MADV_HUGEPAGE); NaN when a call failed. */
export async function runHostCalib(op: string, mode: "4k" | "thp", bytes: number, reps: number, helperPath?: string): Promise<number> {
  const h = await requireHelper(helperPath);
  const r = await run(h, ["calib", op, mode, num(bytes, "bytes"), num(reps, "reps")], 600_000);
  if (r.spawnError || r.code !== 0) {
    throw new Error(`ptlab host: calib failed: ${r.spawnError?.message ?? (r.stdout + r.stderr).trim()}`);
  }
  for (const line of r.stdout.split("\n")) {
    const t = line.trim().split(" ");
    if (t[0] === "calib" && t.length === 4 && t[1] === op && t[2] === mode) return t[3] === "-" ? Number.NaN : Number(t[3]);
  }
  throw new Error(`ptlab host: calib output lacks "${op} ${mode}":\n${r.stdout}`);
}

// ---------------------------------------------------------------- session

export interface HostSessionOptions {
  /** a prebuilt helper binary (default: ensureHelperBuilt()) */
  helperPath?: string;
  /** where the temp dir for file-backed mappings is created (default: os.tmpdir()) */
  tmpBase?: string;
  /** per-command timeout; the session is killed when it expires (default 120 s) */
  timeoutMs?: number;
  /** extra environment for the helper, e.g. {PTLAB_NO_PAGEMAP_SCAN: "1"} to force the
   * /proc/self/pagemap fallback used on kernels older than 6.7 */
  env?: Record<string, string>;
}

const TMPFS_MAGIC = 0x01021994;

// Sessions not yet closed: their temp dirs are removed if Node exits without
// close(). (The helper itself exits on stdin EOF and takes its slots along.)
const liveSessions = new Set<HostSession>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const s of liveSessions) {
      try {
        rmSync(s.tmpDir, { recursive: true, force: true });
      } catch {
        // ignore
      }
    }
  });
}

/**
 * One running helper process tree. Slot 0 is the initial process; `fork`
 * creates slots 1..31. Every method sends one command and waits for its reply;
 * calls are queued, so they may be issued without awaiting each other.
 */
export class HostSession {
  private readonly lines: string[] = [];
  private partial = "";
  private waiter: { resolve: (l: string) => void; reject: (e: Error) => void } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private dead: Error | undefined;
  private stderrTail = "";
  private closing: Promise<void> | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    /** temp dir for file-backed mappings; removed by close() */
    readonly tmpDir: string,
    readonly helperPath: string,
    /** true if tmpDir is on tmpfs: file pages then count as RssShmem, not RssFile */
    readonly tmpIsTmpfs: boolean,
    private readonly timeoutMs: number,
  ) {
    child.stdout.setEncoding("latin1");
    child.stdout.on("data", (chunk: string) => this.onData(chunk));
    child.stderr.setEncoding("latin1");
    child.stderr.on("data", (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4096);
    });
    child.stdin.on("error", () => undefined); // EPIPE after the helper died: reported via exit
    this.exited = new Promise((res) => {
      // "close" (not "exit"): fires after stdout is drained, so a last reply is not lost
      child.on("close", (code, signal) => {
        this.fail(new Error(`ptlab host: helper exited (${signal ?? `code ${code}`})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ""}`));
        res();
      });
      child.on("error", (e) => {
        this.fail(new Error(`ptlab host: helper failed: ${e.message}`));
        res();
      });
    });
  }

  static async create(opts: HostSessionOptions = {}): Promise<HostSession> {
    const helper = await requireHelper(opts.helperPath);
    const tmpDir = await mkdtemp(join(opts.tmpBase ?? tmpdir(), "ptlab-host-"));
    let tmpIsTmpfs = false;
    try {
      tmpIsTmpfs = Number((await statfs(tmpDir)).type) === TMPFS_MAGIC;
    } catch {
      // unknown
    }
    const child = spawn(helper, [], {
      stdio: ["pipe", "pipe", "pipe"],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    const session = new HostSession(child, tmpDir, helper, tmpIsTmpfs, opts.timeoutMs ?? 120_000);
    liveSessions.add(session);
    installExitHook();
    return session;
  }

  /** pid of the initial process (slot 0) */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolve a scenario file name to a path inside tmpDir (absolute paths pass through). */
  filePath(name: string): string {
    if (isAbsolute(name)) return name;
    const p = resolve(this.tmpDir, name);
    const rel = relative(this.tmpDir, p);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
      throw new Error(`ptlab host: file name escapes the temp dir: ${name}`);
    }
    return p;
  }

  // ------------------------------------------------ protocol plumbing

  private onData(chunk: string): void {
    const parts = (this.partial + chunk).split("\n");
    this.partial = parts.pop() ?? "";
    for (const l of parts) {
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.resolve(l);
      } else {
        this.lines.push(l);
      }
    }
  }

  private fail(e: Error): void {
    this.dead ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.dead);
  }

  private nextLine(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private async exchange(line: string, block: boolean): Promise<string[]> {
    if (this.dead) throw this.dead;
    const timer = setTimeout(() => {
      this.fail(new Error(`ptlab host: no reply to "${line}" within ${this.timeoutMs} ms`));
      this.child.kill("SIGKILL");
    }, this.timeoutMs);
    try {
      this.child.stdin.write(`${line}\n`);
      const out: string[] = [];
      for (;;) {
        const l = await this.nextLine();
        if (l.startsWith("E ")) {
          const sp = l.indexOf(" ", 2);
          const code = sp < 0 ? l.slice(2) : l.slice(2, sp);
          const msg = sp < 0 ? code : l.slice(sp + 1);
          throw new HostError(code, `ptlab host: "${line}": ${code}: ${msg}`, line);
        }
        if (!block) return [l];
        if (l === ".") return out;
        out.push(l);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Send one raw protocol line; resolves to the reply line(s) (block: without the "."). */
  request(line: string, block = false): Promise<string[]> {
    const p = this.queue.then(() => this.exchange(line, block));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async one(line: string): Promise<string> {
    const r = await this.request(line);
    return r[0] ?? "";
  }

  private async ok(line: string): Promise<void> {
    const r = await this.one(line);
    if (r !== "O") throw new Error(`ptlab host: expected "O" reply to "${line}", got: ${r}`);
  }

  private async addr(line: string): Promise<number> {
    const r = await this.one(line);
    return hex(expectTag(r, "A")[1], r);
  }

  // ------------------------------------------------ commands

  /** mmap; resolves to the mapped address. `file` is created (sparse) in tmpDir and
   * grown to `size` if smaller; its fd is closed again after mapping. */
  async mmap(
    slot: number,
    len: number,
    prot: Prot,
    flags: readonly HostMmapFlag[],
    addr?: number,
    file?: { path: string; size: number },
    offset = 0,
  ): Promise<number> {
    const s = slotArg(slot);
    let fd = -1;
    if (file) {
      const path = this.filePath(file.path);
      const r = await this.one(`${s} F ${path} ${num(file.size, "file size")}`);
      fd = dec(expectTag(r, "D")[1], r);
    }
    try {
      return await this.addr(`${s} M ${num(len, "len")} ${protBits(prot)} ${mmapFlagBits(flags)} ${num(addr ?? 0, "addr")} ${fd} ${num(offset, "offset")}`);
    } finally {
      if (fd >= 0) await this.ok(`${s} R ${fd}`);
    }
  }

  munmap(slot: number, addr: number, len: number): Promise<void> {
    return this.ok(`${slotArg(slot)} U ${num(addr, "addr")} ${num(len, "len")}`);
  }

  mprotect(slot: number, addr: number, len: number, prot: Prot): Promise<void> {
    return this.ok(`${slotArg(slot)} P ${num(addr, "addr")} ${num(len, "len")} ${protBits(prot)}`);
  }

  madvise(slot: number, addr: number, len: number, advice: Advice): Promise<void> {
    const a = ADVICE_NUMBERS[advice];
    if (a === undefined) throw new Error(`ptlab host: unknown advice ${String(advice)}`);
    return this.ok(`${slotArg(slot)} V ${num(addr, "addr")} ${num(len, "len")} ${a}`);
  }

  /** mremap; resolves to the (possibly moved) address. */
  mremap(slot: number, addr: number, oldLen: number, newLen: number, mayMove = false): Promise<number> {
    return this.addr(`${slotArg(slot)} Q ${num(addr, "addr")} ${num(oldLen, "oldLen")} ${num(newLen, "newLen")} ${mayMove ? MREMAP_MAYMOVE : 0}`);
  }

  /** Move the program break by `delta` bytes (0: query); resolves to the new break. */
  brk(slot: number, delta: number): Promise<number> {
    return this.addr(`${slotArg(slot)} B ${signedNum(delta, "delta")}`);
  }

  /** Access one byte at addr, addr+stride, ... < addr+len; a fault rejects with
   * HostError code "SIGSEGV" or "SIGBUS" (accesses before it have happened). */
  touch(slot: number, addr: number, len: number, stride = 4096, write = true): Promise<void> {
    if (stride <= 0) throw new RangeError("ptlab host: stride must be positive");
    return this.ok(`${slotArg(slot)} T ${num(addr, "addr")} ${num(len, "len")} ${num(stride, "stride")} ${write ? 1 : 0}`);
  }

  /** Process `slot` forks; the child serves `newSlot`. Resolves to the child's pid. */
  async fork(slot: number, newSlot: number): Promise<number> {
    if (newSlot === 0) throw new RangeError("ptlab host: slot 0 is the initial process");
    const r = await this.one(`${slotArg(slot)} K ${slotArg(newSlot)}`);
    return dec(expectTag(r, "C")[1], r);
  }

  /** Process `slot` exits; resolves once it is gone (its mm torn down).
   * Exiting slot 0 ends the session (same as close()). */
  async exit(slot: number): Promise<void> {
    if (slot === 0) return this.close();
    return this.ok(`${slotArg(slot)} X`);
  }

  async stats(slot: number): Promise<HostStats> {
    const r = await this.one(`${slotArg(slot)} S`);
    const t = expectTag(r, "S");
    return {
      vmpte_kb: dec(t[1], r),
      rss_anon_kb: dec(t[2], r),
      rss_file_kb: dec(t[3], r),
      rss_shmem_kb: dec(t[4], r),
      anon_huge_kb: dec(t[5], r),
      vm_rss_kb: t[6] === undefined ? 0 : dec(t[6], r),
      vm_size_kb: t[7] === undefined ? 0 : dec(t[7], r),
      vmswap_kb: t[8] === undefined ? 0 : dec(t[8], r),
    };
  }

  /** Page states of [addr, addr + npages pages) in process `slot`, as runs. */
  async pages(slot: number, addr: number, npages: number): Promise<HostPageRun[]> {
    return parsePages(await this.request(`${slotArg(slot)} G ${num(addr, "addr")} ${num(npages, "npages")}`, true));
  }

  /** VMAs and present pages of process `slot`, as the kernel sees them now
   * (including the helper's own mappings). */
  async snapshot(slot: number): Promise<HostSnapshot> {
    return parseSnapshot(await this.request(`${slotArg(slot)} Z`, true));
  }

  /** Host environment (THP settings, kernel, PT reclaim) plus a behaviour probe. */
  async env(): Promise<HostEnv> {
    const lines = await this.request("0 E", true);
    const kv = new Map<string, string>();
    const mthp: { sizeKb: number; setting: string }[] = [];
    for (const l of lines) {
      const sp = l.indexOf(" ");
      const k = sp < 0 ? l : l.slice(0, sp);
      const v = sp < 0 ? "" : l.slice(sp + 1);
      if (k === "mthp") {
        const sp2 = v.indexOf(" ");
        mthp.push({ sizeKb: Number(v.slice(0, sp2)), setting: selected(v.slice(sp2 + 1)) ?? v.slice(sp2 + 1) });
      } else {
        kv.set(k, v);
      }
    }
    mthp.sort((a, b) => a.sizeKb - b.sizeKb);
    const thpSel = selected(kv.get("thp") ?? "");
    const thp: ThpPolicy = thpSel === "always" || thpSel === "madvise" ? thpSel : "never";
    const kernel = kv.get("kernel") ?? osRelease();
    const pr = kv.get("pt_reclaim");
    const ptReclaim = pr === "yes" ? true : pr === "no" ? false : await detectPtReclaim(kernel);
    const levels = kv.get("levels");
    const cpus = kv.get("cpus");
    let probe: HostProbe | undefined;
    try {
      probe = await runHostProbe(this.helperPath);
    } catch {
      probe = undefined;
    }
    return {
      thp,
      thpUseZeroPage: kv.get("thp_zero") === "1",
      mthpEnabled: mthp,
      ptReclaim,
      kernel,
      pageSize: Number(kv.get("page_size") ?? 4096),
      levels: levels === "5" ? 5 : levels === "4" ? 4 : undefined,
      cpus: cpus === undefined ? undefined : Number(cpus),
      probe,
    };
  }

  /** End the session: all helper processes exit, the temp dir is removed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (!this.dead) {
      const bye = this.request("0 X").catch(() => undefined);
      const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await bye;
      this.child.stdin.end();
      await this.exited;
      clearTimeout(t);
    } else if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
    await rm(this.tmpDir, { recursive: true, force: true });
    liveSessions.delete(this);
  }
}

// Where the compiled helper is kept: $XDG_CACHE_HOME/ptlab, else
// ~/.cache/ptlab (the XDG default), else a folder under the temporary
// directory; never the install folder, which a user may not own.
export function cacheDir(): string {
  const x = process.env.XDG_CACHE_HOME;
  if (x !== undefined && isAbsolute(x)) return join(x, "ptlab");
  let home = "";
  try {
    home = homedir();
  } catch {
    // no home directory (a system user)
  }
  return home !== "" ? join(home, ".cache", "ptlab") : join(tmpdir(), "ptlab-cache");
}
