// The host's swap for `ptlab diff-kernel`: what is active (/proc/swaps,
// /proc/meminfo), and the zram device `--setup-swap` provides when there is
// none: an unused /dev/zramN (initstate 0), or one hot-added through
// /sys/class/zram-control, sized to the scenario's machine.swap plus the
// header page, given a swap header and swapped on with the C helper
// (`ptlab-host mkswap|swapon|swapoff`, no util-linux needed). Every way out
// undoes it: the normal return, an exception, SIGINT/SIGTERM/SIGHUP and
// process exit all run swapoff, write the device's `reset` (disksize back to
// 0) and hot_remove a device that was hot-added. What is done to the host is
// printed through the caller's log. Everything here is synchronous, so the
// signal and exit paths can use it. Node-only.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

export interface HostSwapDevice {
  name: string;
  type: string;
  sizeKb: number;
  usedKb: number;
}

export interface HostSwap {
  devices: HostSwapDevice[];
  totalKb: number;
  freeKb: number;
}

export function parseProcSwaps(text: string): HostSwapDevice[] {
  const out: HostSwapDevice[] = [];
  for (const line of text.split("\n").slice(1)) {
    const t = line.trim().split(/\s+/);
    if (t.length < 4 || t[0] === "") continue;
    out.push({ name: t[0] as string, type: t[1] as string, sizeKb: Number(t[2]), usedKb: Number(t[3]) });
  }
  return out;
}

export function readHostSwap(): HostSwap {
  let devices: HostSwapDevice[] = [];
  try {
    devices = parseProcSwaps(readFileSync("/proc/swaps", "latin1"));
  } catch {
    // no /proc/swaps: no swap (or not Linux)
  }
  let totalKb = 0;
  let freeKb = 0;
  try {
    const mi = readFileSync("/proc/meminfo", "latin1");
    totalKb = Number(/^SwapTotal:\s+(\d+)/m.exec(mi)?.[1] ?? 0);
    freeKb = Number(/^SwapFree:\s+(\d+)/m.exec(mi)?.[1] ?? 0);
  } catch {
    // unknown
  }
  return { devices, totalKb, freeKb };
}

export function describeHostSwap(s: HostSwap): string {
  if (s.devices.length === 0) return "none";
  return `${s.devices.map((d) => `${d.name} ${d.sizeKb} kB (${d.usedKb} kB used)`).join(", ")}`;
}

/** A zram swap device set up by setupZramSwap(). */
export interface ZramSwap {
  id: number;
  device: string; // /dev/zramN
  hotAdded: boolean;
  bytes: number; // usable swap (disksize minus the header page)
  helper: string;
  log: (line: string) => void;
  restored: boolean;
}

const PAGE = 4096;
const SYS_BLOCK = "/sys/block";
const ZRAM_CONTROL = "/sys/class/zram-control";
const live = new Set<ZramSwap>();

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readTrim(path: string): string | undefined {
  try {
    return readFileSync(path, "latin1").trim();
  } catch {
    return undefined;
  }
}

function helperRun(helper: string, args: string[]): string | undefined {
  const r = spawnSync(helper, args, { encoding: "latin1", timeout: 120_000 });
  if (r.error !== undefined) return r.error.message;
  if (r.status !== 0) return (r.stderr || r.stdout || `exit ${r.status ?? r.signal}`).trim();
  return undefined;
}

// Why --setup-swap cannot set up a device here, or undefined.
export function zramUnavailable(): string | undefined {
  if (process.platform !== "linux") return `--setup-swap needs Linux (this is ${process.platform})`;
  const uid = process.getuid?.();
  if (uid !== 0) return `--setup-swap needs root to set up a zram swap device (uid ${uid ?? "unknown"})`;
  if (!existsSync(ZRAM_CONTROL) && !existsSync(`${SYS_BLOCK}/zram0`)) return "--setup-swap: no zram on this host (no /sys/class/zram-control; modprobe zram)";
  return undefined;
}

// An unused zram device (initstate 0), lowest number first.
function unusedZram(): number | undefined {
  let ids: number[] = [];
  try {
    ids = readdirSync(SYS_BLOCK)
      .map((n) => /^zram(\d+)$/.exec(n)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return undefined;
  }
  return ids.find((id) => readTrim(`${SYS_BLOCK}/zram${id}/initstate`) === "0" && readTrim(`${SYS_BLOCK}/zram${id}/disksize`) === "0");
}

/**
 * Swap on a zram device of `bytes` usable bytes (the scenario's
 * machine.swap). Call only when the host has no swap. Returns the device or
 * the reason it could not be set up (the host is then as it was).
 */
export function setupZramSwap(bytes: number, helper: string, log: (line: string) => void): ZramSwap | { skip: string } {
  const why = zramUnavailable();
  if (why !== undefined) return { skip: why };
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes % PAGE !== 0) return { skip: `--setup-swap: bad swap size ${bytes}` };
  let id = unusedZram();
  let hotAdded = false;
  if (id === undefined) {
    if (!existsSync(`${ZRAM_CONTROL}/hot_add`)) return { skip: "--setup-swap: every zram device is in use and zram-control cannot add one" };
    const got = readTrim(`${ZRAM_CONTROL}/hot_add`);
    if (got === undefined || !/^\d+$/.test(got)) return { skip: "--setup-swap: zram hot_add failed" };
    id = Number(got);
    hotAdded = true;
  }
  const z: ZramSwap = { id, device: `/dev/zram${id}`, hotAdded, bytes, helper, log, restored: false };
  live.add(z);
  installHandlers();
  const fail = (what: string): { skip: string } => {
    restoreZramSwap(z);
    return { skip: `--setup-swap: ${what}` };
  };
  for (let i = 0; i < 100 && !existsSync(z.device); i++) sleepMs(20); // udev creates the node
  if (!existsSync(z.device)) return fail(`${z.device} did not appear`);
  const disk = bytes + PAGE;
  try {
    writeFileSync(`${SYS_BLOCK}/zram${id}/disksize`, String(disk));
  } catch (e) {
    return fail(`setting the disksize of zram${id}: ${(e as Error).message}`);
  }
  const mk = helperRun(helper, ["mkswap", z.device]);
  if (mk !== undefined) return fail(mk);
  const on = helperRun(helper, ["swapon", z.device]);
  if (on !== undefined) return fail(on);
  log(
    `ptlab: --setup-swap: the host had no swap; ${z.device} (${hotAdded ? "hot-added" : "unused zram device"}): disksize ${disk} (${bytes / 1024} kB of swap, the scenario's machine.swap, + the header page), swap header written, swapon`,
  );
  return z;
}

/** Undo setupZramSwap() (idempotent): swapoff, reset, hot_remove. */
export function restoreZramSwap(z: ZramSwap): void {
  if (z.restored) return;
  z.restored = true;
  live.delete(z);
  if (live.size === 0) removeHandlers();
  const done: string[] = [];
  const problems: string[] = [];
  const active = readHostSwap().devices.some((d) => d.name === z.device);
  if (active) {
    const off = helperRun(z.helper, ["swapoff", z.device]);
    if (off === undefined) done.push(`swapoff ${z.device}`);
    else problems.push(off);
  }
  let reset = false;
  for (let i = 0; i < 100 && !reset; i++) {
    try {
      writeFileSync(`${SYS_BLOCK}/zram${z.id}/reset`, "1");
      reset = true;
    } catch {
      sleepMs(20); // EBUSY while the device is still open
    }
  }
  if (reset) done.push(`zram${z.id} reset (disksize 0)`);
  else problems.push(`zram${z.id} reset failed (still busy)`);
  if (z.hotAdded && reset) {
    try {
      writeFileSync(`${ZRAM_CONTROL}/hot_remove`, String(z.id));
      done.push(`zram${z.id} removed (hot_remove)`);
    } catch (e) {
      problems.push(`hot_remove zram${z.id}: ${(e as Error).message}`);
    }
  }
  const now = readHostSwap();
  const asFound = now.devices.length === 0 ? " (as found)" : "";
  const msg = `ptlab: --setup-swap: undone: ${done.join(", ") || "nothing"}; host swap now: ${describeHostSwap(now)}${asFound}`;
  z.log(problems.length === 0 ? msg : `${msg}; PROBLEM: ${problems.join("; ")}`);
}

// Signals and exit: undo every live device first.
const SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
let installed = false;
function restoreAll(): void {
  for (const z of [...live]) restoreZramSwap(z);
}
function onSignal(sig: NodeJS.Signals): void {
  restoreAll();
  process.exit(SIGNALS[sig as keyof typeof SIGNALS] ?? 1);
}
function installHandlers(): void {
  if (installed) return;
  installed = true;
  for (const s of Object.keys(SIGNALS)) process.on(s as NodeJS.Signals, onSignal);
  process.on("exit", restoreAll);
}
function removeHandlers(): void {
  if (!installed) return;
  installed = false;
  for (const s of Object.keys(SIGNALS)) process.off(s as NodeJS.Signals, onSignal);
  process.off("exit", restoreAll);
}
