// `ptlab calibrate`: time each benchmark on the host kernel (the native
// helper's calib command), count the same operation's primitives on the
// model, fit a weight per primitive (src/calibrate/fit.ts), and report the
// fit and leave-one-out errors. The weights are nanoseconds per event on
// the measured host; `--out` writes them as a cost table (`--cost` of
// compare and reproduce), in which "modelled cycles" are then nanoseconds.

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { type Benchmark, calibrate } from "../calibrate/fit.js";
import {
  CALIB_OPS,
  CALLS,
  type CalibMode,
  type CalibOp,
  type CalibSpec,
  FEATURES,
  type HostTraits,
  modelCounts,
  SWAP_OPS,
  isMthpMode,
  MTHP_MODES,
  specName,
} from "../calibrate/bench.js";
import { detectPtReclaim, ensureHelperBuilt, isHelperSkip, runHostCalib, runHostProbe } from "../host/helper.js";
import { InvalidArgumentError } from "commander";
import { UsageError } from "./explore.js";

export interface CalibrateOpts {
  sizes: number[]; // bytes, multiples of 2 MiB
  reps: number;
  ops: CalibOp[];
  modes: CalibMode[];
  out?: string;
  json?: boolean;
  hostData?: string;
  saveHost?: string;
  setupMthp?: boolean;
}

// Measurements of one host: what `--save-host` writes and `--host-data` reads.
interface HostData {
  ptlab: "calibrate-host";
  cpu: string;
  kernel: string;
  traits: HostTraits;
  swap: boolean;
  times: Record<string, number | null>; // specName -> ns per page (null: a call failed)
}

const MiB = 2 ** 20;

// A comma-separated option: each item converted, or the option refused
// with what was expected.
function parseList<T>(v: string, one: (part: string) => T | null, expected: string): T[] {
  return v.split(",").map((part) => {
    const x = one(part.trim());
    if (x === null) throw new InvalidArgumentError(`expected ${expected}, got "${part}"`);
    return x;
  });
}

export function parseSizes(v: string): number[] {
  return parseList(
    v,
    (part) => {
      const m = /^(\d+)M$/.exec(part);
      const n = m ? Number(m[1]) * MiB : Number.NaN;
      return n >= 2 * MiB && n % (2 * MiB) === 0 && n <= 4096 * MiB ? n : null;
    },
    "sizes like 16M,64M (multiples of 2M, 2M..4096M)",
  );
}

export function parseOps(v: string): CalibOp[] {
  return parseList(v, (part) => ((CALIB_OPS as readonly string[]).includes(part) ? (part as CalibOp) : null), `operations among ${CALIB_OPS.join(", ")}`);
}

export function parseModes(v: string): CalibMode[] {
  return parseList(
    v,
    (part) => (part === "4k" || part === "thp" || isMthpMode(part as CalibMode) ? (part as CalibMode) : null),
    `4k, thp or an mTHP size (${MTHP_MODES.join(", ")})`,
  );
}

function readHostData(file: string): HostData {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`--host-data ${file}: ${(e as Error).message}`);
  }
  const d = v as Partial<HostData>;
  const t = d.traits as Partial<HostTraits> | undefined;
  if (
    typeof v !== "object" ||
    v === null ||
    d.ptlab !== "calibrate-host" ||
    typeof d.cpu !== "string" ||
    typeof d.kernel !== "string" ||
    typeof d.swap !== "boolean" ||
    typeof d.times !== "object" ||
    d.times === null ||
    t === undefined ||
    (t.thp !== "always" && t.thp !== "madvise" && t.thp !== "never") ||
    typeof t.zeroPage !== "boolean" ||
    typeof t.hugeZeroPage !== "boolean" ||
    typeof t.ptReclaim !== "boolean"
  )
    throw new UsageError(`--host-data ${file}: expected what --save-host writes ({"ptlab": "calibrate-host", cpu, kernel, traits, swap, times})`);
  for (const [k, x] of Object.entries(d.times))
    if (x !== null && !(typeof x === "number" && x > 0)) throw new UsageError(`--host-data ${file}: times["${k}"]: expected ns per page > 0 or null`);
  return d as HostData;
}

function readThp(): HostTraits["thp"] {
  try {
    const m = /\[(always|madvise|never)\]/.exec(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"));
    return (m?.[1] as HostTraits["thp"] | undefined) ?? "never";
  } catch {
    return "never";
  }
}

function swapActive(): boolean {
  try {
    return readFileSync("/proc/swaps", "utf8").trim().split("\n").length > 1;
  } catch {
    return false;
  }
}

async function measure(o: CalibrateOpts, log: (s: string) => void): Promise<HostData> {
  const mtModes = o.modes.filter(isMthpMode);
  if (mtModes.length > 0 && o.setupMthp !== true)
    throw new UsageError(
      `--modes ${mtModes.join(",")}: an mTHP size is measured with that size alone enabled; give --setup-mthp (root: the sysfs settings are changed for the run and restored)`,
    );
  const h = await ensureHelperBuilt();
  if (isHelperSkip(h)) throw new UsageError(`calibrate needs the host helper (${h.skip}), or --host-data FILE with measurements saved elsewhere`);
  const probe = await runHostProbe(h);
  const thp = readThp();
  const traits: HostTraits = {
    thp,
    zeroPage: probe.zeroPage,
    hugeZeroPage: probe.hugeZeroPage ?? false,
    ptReclaim: (await detectPtReclaim()) ?? probe.ptReclaim,
  };
  const swap = swapActive();
  const times: Record<string, number | null> = {};
  const all = specs(o, swap, traits);
  const mt = [...new Set(all.filter((s) => isMthpMode(s.mode)).map((s) => s.mode))];
  const saved = mt.length > 0 ? saveMthp() : null;
  // An interrupt puts the host's settings back first.
  const onSignal = (sig: NodeJS.Signals) => {
    if (saved !== null) restoreMthp(saved);
    process.stderr.write(`calibrate: interrupted (${sig}); the host's mTHP settings are restored\n`);
    process.exit(130);
  };
  if (saved !== null) {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }
  try {
    for (const s of all) {
      if (isMthpMode(s.mode)) setMthpAlone(saved as Map<string, string>, s.mode);
      else if (saved !== null) restoreMthp(saved);
      log(`calibrate: host ${specName(s)}`);
      const t = await runHostCalib(s.op, s.mode === "4k" ? "4k" : "thp", s.bytes, o.reps, h);
      times[specName(s)] = Number.isFinite(t) ? t : null;
    }
  } finally {
    if (saved !== null) {
      restoreMthp(saved);
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
    }
  }
  return { ptlab: "calibrate-host", cpu: cpus()[0]?.model ?? "unknown", kernel: release(), traits, swap, times };
}

// The anon mTHP sizes' enabled settings (hugepages-<size>kB/enabled, the
// PMD size's too), by file.
const MTHP_DIR = "/sys/kernel/mm/transparent_hugepage";
function saveMthp(): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(MTHP_DIR).filter((n) => /^hugepages-\d+kB$/.test(n));
  } catch (e) {
    throw new UsageError(`--setup-mthp: cannot read ${MTHP_DIR}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  for (const n of names) {
    const f = `${MTHP_DIR}/${n}/enabled`;
    try {
      const m = /\[(\w+)\]/.exec(readFileSync(f, "utf8"));
      if (m !== null) out.set(f, m[1] as string);
    } catch {
      // a size without an enabled file (file-backed only): not ours to set
    }
  }
  return out;
}
function writeSetting(f: string, v: string): void {
  try {
    writeFileSync(f, v);
  } catch (e) {
    throw new UsageError(`--setup-mthp: cannot write "${v}" to ${f}: ${(e as NodeJS.ErrnoException).code ?? String(e)} (run as root)`);
  }
}
// That size "madvise", every other size (the PMD size too) "never".
function setMthpAlone(saved: Map<string, string>, mode: CalibMode): void {
  const want = `${MTHP_DIR}/hugepages-${Number.parseInt(mode, 10)}kB/enabled`;
  if (!saved.has(want)) throw new UsageError(`--modes ${mode}: the host has no ${want}`);
  for (const f of saved.keys()) writeSetting(f, f === want ? "madvise" : "never");
}
function restoreMthp(saved: Map<string, string>): void {
  for (const [f, v] of saved) writeSetting(f, v);
}

function specs(o: CalibrateOpts, swap: boolean, traits: HostTraits): CalibSpec[] {
  const out: CalibSpec[] = [];
  for (const mode of o.modes) {
    if (mode === "thp" && traits.thp === "never") continue;
    for (const op of o.ops) {
      if (SWAP_OPS.includes(op) && !swap) continue;
      for (const bytes of o.sizes) out.push({ op, mode, bytes });
    }
  }
  return out;
}

const pct = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%`;

export async function cmdCalibrate(o: CalibrateOpts): Promise<number> {
  const log = (s: string) => {
    if (o.json !== true) process.stderr.write(`${s}\n`);
  };
  const data = o.hostData !== undefined ? readHostData(o.hostData) : await measure(o, log);
  if (o.saveHost !== undefined) writeFileSync(o.saveHost, `${JSON.stringify(data, null, 1)}\n`);
  const skipped: string[] = [];
  if (!data.swap && o.ops.some((x) => SWAP_OPS.includes(x))) skipped.push("pageout and swapin: the host has no active swap (enable one, e.g. a zram device)");
  if (data.traits.thp === "never" && o.modes.includes("thp")) skipped.push("thp: transparent_hugepage/enabled is never on the host");
  const bs: Benchmark[] = [];
  for (const s of specs(o, data.swap, data.traits)) {
    const t = data.times[specName(s)];
    if (t === undefined) {
      if (o.hostData !== undefined)
        throw new UsageError(`--host-data ${o.hostData}: no measurement of "${specName(s)}" (choose --ops, --modes and --sizes it has)`);
      continue;
    }
    if (t === null || !Number.isFinite(t)) {
      skipped.push(`${specName(s)}: the host's call failed`);
      continue;
    }
    bs.push({ name: specName(s), time: t, counts: modelCounts(s, data.traits) });
  }
  if (bs.length < 2) throw new UsageError(`calibrate: ${bs.length} benchmark(s) measured; at least two are needed to fit and leave one out`);
  const fit = calibrate(bs);
  const used = FEATURES.map((f, j) => ({ f, w: fit.weights[j] as number, any: bs.some((b) => (b.counts[j] as number) > 0) })).filter((x) => x.any);
  const abs = fit.looError.map(Math.abs).sort((a, b) => a - b);
  const within = abs.filter((x) => x <= 0.25).length;
  const median = abs.length % 2 ? (abs[abs.length >> 1] as number) : ((abs[(abs.length >> 1) - 1] as number) + (abs[abs.length >> 1] as number)) / 2;
  const tableName = `calibrated-ns: ${data.cpu}, Linux ${data.kernel}`;
  const cycles: Record<string, number> = {};
  for (const x of used) if (x.f !== CALLS && x.w > 0) cycles[x.f] = Number(x.w.toPrecision(4));
  if (o.out !== undefined) writeFileSync(o.out, `${JSON.stringify({ name: tableName, cycles }, null, 1)}\n`);
  if (o.json === true) {
    const rows = bs.map((b, i) => ({
      benchmark: b.name,
      host: b.time,
      fit: fit.predicted[i],
      fitError: fit.error[i],
      loo: fit.looPredicted[i],
      looError: fit.looError[i],
    }));
    process.stdout.write(
      `${JSON.stringify({ host: { cpu: data.cpu, kernel: data.kernel, traits: data.traits, swap: data.swap }, benchmarks: rows, weights: Object.fromEntries(used.map((x) => [x.f, x.w])), loo: { median: median, within25: within, of: bs.length }, skipped }, null, 1)}\n`,
    );
    return 0;
  }
  const lines: string[] = [];
  lines.push(
    `ptlab calibrate: ${data.cpu}, Linux ${data.kernel}; ${bs.length} benchmarks, ${o.reps} reps each (median)${o.hostData !== undefined ? `, measurements from ${o.hostData}` : ""}`,
  );
  lines.push(
    `host: THP ${data.traits.thp}, zero page ${data.traits.zeroPage ? "used" : "not used"}, huge zero page ${data.traits.hugeZeroPage ? "used" : "not used"}, PT reclaim ${data.traits.ptReclaim ? "on" : "off"}, swap ${data.swap ? "active" : "none"}`,
  );
  for (const s of skipped) lines.push(`skipped: ${s}`);
  lines.push("");
  const head = ["benchmark", "host ns/pg", "fit ns/pg", "fit err", "left out ns/pg", "left-out err"];
  const rows = bs.map((b, i) => [
    b.name,
    b.time.toFixed(1),
    (fit.predicted[i] as number).toFixed(1),
    pct(fit.error[i] as number),
    (fit.looPredicted[i] as number).toFixed(1),
    pct(fit.looError[i] as number),
  ]);
  lines.push(...table(head, rows));
  lines.push("");
  lines.push(
    ...table(
      ["primitive", "ns per event"],
      used.map((x) => [x.f, x.w.toPrecision(4)]),
    ),
  );
  lines.push("");
  lines.push(`leave-one-out: median |error| ${(100 * median).toFixed(1)}%, ${within} of ${bs.length} benchmarks within 25%`);
  if (o.out !== undefined) lines.push(`cost table written to ${o.out} ("${tableName}"; "calls" has no counter and is left out of it)`);
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number))).join("  ");
  return [line(head), ...rows.map(line)];
}
