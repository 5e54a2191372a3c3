// ptlab compare (FILE.yaml | --workload NAME [--param k=v] | --trace FILE [--lenient]) --config "label:k=v,k=v" ...
// Runs one scenario under two or more configurations and prints the totals
// side by side with ratios against the first; --json for machines; --report
// FILE.html for a self-contained report with charts.

import { readFileSync, writeFileSync } from "node:fs";
import { type CostTable, DEFAULT_COST_TABLE, modelledCycles, parseCostTable } from "../core/cost.js";
import { Counters } from "../core/counters.js";
import { anonMthpOrder, anonMthpRange } from "../core/geometry.js";
import { defaultConfig, VARIANTS } from "../core/machine.js";
import { type Comparison, compareAsync, comparisonJson, type ConfigSpec, formatComparison, type StopControl, setCostHook } from "../report/compare.js";
import { compareTraceAsync, traceOptions } from "../replay/compare.js";
import { type Interrupt, onInterrupt } from "./interrupt.js";
import { defaultReplayOptions, type ReplayOptions } from "../replay/replay.js";
import type { RunOptions } from "../run/runner.js";
import type { TraceEvent } from "../trace/events.js";
import { parseTraceFile } from "../trace/open.js";
import type { Scenario } from "../scenario/types.js";
import { formatParams, instantiate, UsageError } from "../workloads/index.js";
import { parseSize } from "../workloads/params.js";
import { loadScenario } from "./load.js";
import { createProgress } from "./progress.js";
import { parseParamList, usageGuard } from "./workload.js";
import { byFunctionJson, foldedStacks, formatByFunction } from "../report/by-function.js";
import { type ByFunctionCliOptions, wantsProfile, writeFolded } from "./by-function.js";

export interface CompareCliOptions extends ByFunctionCliOptions {
  workload?: string;
  trace?: string;
  lenient?: boolean;
  param: string[];
  config: string[];
  json?: boolean;
  report?: string;
  check: boolean;
  progress: boolean;
}

const ON_OFF = (v: string, what: string): boolean => {
  if (v === "on" || v === "true") return true;
  if (v === "off" || v === "false") return false;
  throw new UsageError(`${what}: expected on or off, got "${v}"`);
};

export const CONFIG_KEYS = [
  "arch",
  "thp",
  "mthp",
  "pt_reclaim",
  "pt_reclaim_enabled",
  "ptReclaim",
  "granule",
  "tlbi_range",
  "bbml2",
  "bbml2_noabort",
  "hafdbs",
  "cost",
  ...Object.keys(VARIANTS).filter((k) => k !== "pt_reclaim"),
];

/** "64K" / "16K+64K:madvise" / "none" -> mTHP orders relative to the base page size. */
export function parseMthp(v: string, pageBytes: number, what: string): Record<number, "always" | "madvise" | "inherit"> {
  const out: Record<number, "always" | "madvise" | "inherit"> = {};
  if (v === "none" || v === "off") return out;
  const shift = Math.log2(pageBytes);
  for (const item of v.split("+")) {
    const [size, policy = "always"] = item.split(":") as [string, string | undefined];
    const bytes = parseSize(size);
    if (bytes === undefined || anonMthpOrder(bytes / 1024, shift) < 0)
      throw new UsageError(
        `${what}: expected mTHP sizes ${anonMthpRange(shift)} (powers of two, joined with "+", each optionally :always|:madvise|:inherit) or none, got "${v}"`,
      );
    if (policy !== "always" && policy !== "madvise" && policy !== "inherit")
      throw new UsageError(`${what}: mTHP policy must be always, madvise or inherit, got "${policy}"`);
    out[bytes / 1024] = policy;
  }
  return out;
}

/** Parses one --config "label:key=value,key=value". */
export function parseConfig(text: string, readFile: (path: string) => string = (p) => readFileSync(p, "utf8")): ConfigSpec {
  const colon = text.indexOf(":");
  const eq = text.indexOf("=");
  const hasLabel = colon > 0 && (eq < 0 || colon < eq);
  const label = hasLabel ? text.slice(0, colon).trim() : text.trim();
  const body = hasLabel ? text.slice(colon + 1).trim() : text.trim();
  const where = `--config "${text}"`;
  if (label === "") throw new UsageError(`${where}: expected "label:key=value,key=value"`);
  // The label heads a column, and is the outermost frame of --folded's
  // stacks (";" separates frames).
  // A bare "k=v,..." is its own label.
  if (label.includes(";") || /[^\x20-\x7e\u00a0-\uffff]/.test(label) || label.startsWith(":"))
    throw new UsageError(`${where}: a label may not start with ":" nor contain control characters or ";" (got "${label}")`);
  const settings: [string, string][] = [];
  if (body !== "" && (hasLabel || body.includes("=")))
    for (const part of body.split(",")) {
      const i = part.indexOf("=");
      if (i <= 0) throw new UsageError(`${where}: expected key=value, got "${part}"`);
      settings.push([part.slice(0, i).trim(), part.slice(i + 1).trim()]);
    }
  const options: RunOptions = {};
  const variants: Record<string, string> = {};
  const arm64: NonNullable<RunOptions["arm64"]> = {};
  let costFile: ConfigSpec["costFile"];
  let mthpText: string | undefined;
  const seen = new Set<string>();
  for (const [k, v] of settings) {
    const what = `${where}: ${k}`;
    if (seen.has(k)) throw new UsageError(`${what}: given twice`);
    seen.add(k);
    if (Object.hasOwn(VARIANTS, k) && !(k === "pt_reclaim" && (v === "on" || v === "off"))) {
      const allowed = VARIANTS[k as keyof typeof VARIANTS] as readonly string[];
      if (!allowed.includes(v)) throw new UsageError(`${what}: expected one of ${allowed.join(", ")}${k === "pt_reclaim" ? ", on, off" : ""}, got "${v}"`);
      variants[k] = v;
      continue;
    }
    switch (k) {
      case "arch":
        if (v !== "x86_64" && v !== "arm64") throw new UsageError(`${what}: expected x86_64 or arm64, got "${v}"`);
        options.arch = v;
        break;
      case "thp":
        if (v !== "never" && v !== "madvise" && v !== "always") throw new UsageError(`${what}: expected never, madvise or always, got "${v}"`);
        options.thp = v;
        break;
      case "mthp":
        mthpText = v;
        break;
      case "pt_reclaim":
      case "pt_reclaim_enabled":
      case "ptReclaim":
        options.ptReclaim = ON_OFF(v, what);
        break;
      case "granule": {
        const g = v.replace(/k$/i, "").replace(/K$/, "");
        if (g !== "4" && g !== "16" && g !== "64") throw new UsageError(`${what}: expected 4K, 16K or 64K, got "${v}"`);
        arm64.granule = Number(g) as 4 | 16 | 64;
        break;
      }
      case "tlbi_range":
        arm64.tlbiRange = ON_OFF(v, what);
        break;
      case "bbml2":
      case "bbml2_noabort":
        arm64.bbml2NoAbort = ON_OFF(v, what);
        break;
      case "hafdbs":
        arm64.hafdbs = ON_OFF(v, what);
        break;
      case "cost": {
        let text: string;
        try {
          text = readFile(v);
        } catch (e) {
          throw new UsageError(`${what}: cannot read cost table "${v}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        let json: unknown;
        try {
          json = JSON.parse(text) as unknown;
        } catch (e) {
          throw new UsageError(`${what}: cost table "${v}" is not valid JSON: ${(e as Error).message}`);
        }
        const table = parseCostTable(json, Object.keys(new Counters()));
        if (typeof table === "string") throw new UsageError(`${what}: cost table "${v}": ${table}`);
        costFile = { path: v, table };
        break;
      }
      default:
        throw new UsageError(`${what}: unknown key (expected one of: ${CONFIG_KEYS.join(", ")})`);
    }
  }
  if (mthpText !== undefined) options.mthp = parseMthp(mthpText, (arm64.granule ?? 4) * 1024, `${where}: mthp`);
  if (Object.keys(variants).length > 0) options.variants = variants;
  if (Object.keys(arm64).length > 0) options.arm64 = arm64;
  return { label, settings, options, ...(costFile !== undefined ? { costFile } : {}) };
}

export function ptlabVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

// Whole-run modelled cycles: the configuration's cost table (cost=FILE) or
// the model's default estimates (src/core/cost.ts).
setCostHook((totals, cost) => ({ modelled_cycles: modelledCycles(totals, (cost?.table as CostTable | undefined) ?? DEFAULT_COST_TABLE) }));

export function cmdCompare(file: string | undefined, o: CompareCliOptions): Promise<number> {
  return usageGuard("compare", async () => {
    if ([file, o.workload, o.trace].filter((x) => x !== undefined).length !== 1)
      throw new UsageError("expected a scenario FILE, --workload NAME or --trace FILE (exactly one)");
    if (o.workload === undefined && o.param.length > 0) throw new UsageError("--param applies to --workload only");
    if (o.trace === undefined && o.lenient === true) throw new UsageError("--lenient applies to --trace only");
    if (o.config.length < 2) throw new UsageError(`expected at least two --config "label:key=value,..." (got ${o.config.length})`);
    const configs = o.config.map((c) => parseConfig(c));
    const labels = new Set<string>();
    for (const c of configs) {
      if (labels.has(c.label)) throw new UsageError(`--config label "${c.label}" is used twice`);
      labels.add(c.label);
    }
    if (o.report !== undefined && !o.report.endsWith(".html")) throw new UsageError(`--report: expected a file name ending in .html, got "${o.report}"`);
    const early = o.folded !== undefined ? writeFolded(o.folded, "") : null;
    if (early !== null) throw new UsageError(early);
    if (o.trace !== undefined) return compareTraceCli(o.trace, o, configs);
    let sc: Scenario;
    let base: RunOptions = {};
    let title: string;
    let params: string | undefined;
    if (o.workload !== undefined) {
      const w = instantiate(o.workload, parseParamList(o.param));
      sc = w.scenario;
      base = w.options;
      params = formatParams(w.def, w.params);
      title = `workload ${o.workload}`;
    } else {
      sc = loadScenario(file as string);
      title = file as string;
    }
    const progress = createProgress({ enabled: o.progress });
    const intr = onInterrupt("compare");
    let result: Comparison & { notRun: string[] };
    try {
      result = await compareAsync(
        sc,
        configs,
        { ...base, checkInvariants: o.check, ...(wantsProfile(o) ? { byFunction: true } : {}) },
        stopControl(intr),
        (label) => progress.run(`compare ${label}`),
      );
    } finally {
      progress.stop();
      intr.dispose();
    }
    const command = `ptlab compare ${file ?? `--workload ${o.workload}${o.param.map((p) => ` --param ${p}`).join("")}`}${o.config.map((c) => ` --config "${c}"`).join("")}`;
    const heading = `ptlab compare ${title}${params !== undefined ? ` (${params})` : ""}: ${sc.name}, seed ${sc.machine.seed}`;
    const meta = o.workload !== undefined ? { workload: o.workload, params } : { file };
    return output(result, o, { title, ...(params !== undefined ? { params } : {}), command, heading, meta });
  });
}

// compare --trace: the trace is parsed once, then replayed under each
// configuration with replay's defaults (defaultReplayOptions()).
async function compareTraceCli(file: string, o: CompareCliOptions, configs: ConfigSpec[]): Promise<number> {
  const runs: { config: ConfigSpec; opts: ReplayOptions }[] = [];
  for (const c of configs) {
    let opts: ReplayOptions | string;
    try {
      opts = traceOptions(c, o.check);
    } catch (e) {
      throw new UsageError(`--config "${c.label}": ${e instanceof Error ? e.message : String(e)}`);
    }
    if (typeof opts === "string") throw new UsageError(opts);
    runs.push({ config: c, opts: wantsProfile(o) ? { ...opts, byFunction: true } : opts });
  }
  const { format, events, opened } = await parseTraceFile(file, { lenient: o.lenient === true, reorder: file.includes("perf") ? 0.05 : 0 });
  const list: TraceEvent[] = [];
  for await (const e of events) list.push(e);
  const damaged = opened.damage?.format() ?? null;
  const d = defaultReplayOptions();
  const subject = {
    name: file.split("/").pop() ?? file,
    description: `replay of ${file} (${format}, ${list.length} events${events.stats.skipped > 0 ? `, ${events.stats.skipped} malformed lines skipped` : ""}${damaged !== null ? `; the trace ends early: ${damaged}` : ""})`,
    machine: { arch: d.arch, cpus: d.cpus, levels: defaultConfig().levels, thp: d.thp, ptReclaim: d.ptReclaim, seed: 0 },
    stepAxis: "part of the trace (report every tenth)",
  };
  const progress = createProgress({ enabled: o.progress });
  const intr = onInterrupt("compare");
  let result: Comparison & { notRun: string[] };
  try {
    result = await compareTraceAsync(list, subject, runs, stopControl(intr), (label) => progress.run(`compare ${label}`));
  } finally {
    progress.stop();
    intr.dispose();
  }
  const command = `ptlab compare --trace ${file}${o.lenient === true ? " --lenient" : ""}${o.config.map((c) => ` --config "${c}"`).join("")}`;
  return output(result, o, {
    title: `trace ${file}`,
    command,
    heading: `ptlab compare --trace ${file}: ${format}, ${list.length} events, ${d.cpus} CPUs, touch policy ${d.touch.kind}${damaged !== null ? ` (ends early: ${damaged})` : ""}`,
    meta: { trace: file, format, events: list.length },
  });
}

function stopControl(intr: Interrupt): StopControl {
  return { stop: intr.stop, pause: intr.pause, why: () => String(intr.signal()) };
}

// The table, JSON or HTML report of a comparison, the same for scenarios,
// workloads and traces; after SIGINT or SIGTERM, of what was run (exit 130).
async function output(
  result: Comparison & { notRun?: string[] },
  o: CompareCliOptions,
  w: { title: string; params?: string; command: string; heading: string; meta: Record<string, unknown> },
): Promise<number> {
  const version = ptlabVersion();
  const interrupted = result.runs.some((r) => r.notes.some((n) => n.startsWith("interrupted"))) || (result.notRun ?? []).length > 0;
  const notRun = result.notRun ?? [];
  if (o.folded !== undefined) {
    const text = result.runs.map((r) => (r.byFunction !== undefined ? foldedStacks(r.byFunction, r.config.label) : "")).join("");
    const bad = writeFolded(o.folded, text);
    if (bad !== null) throw new UsageError(bad);
  }
  if (o.report !== undefined) {
    // Loaded on demand: vega is large and only reports need it.
    const { renderReport } = await import("../report/html.js");
    const html = await renderReport(result, { version, title: w.title, ...(w.params !== undefined ? { params: w.params } : {}), command: w.command });
    try {
      writeFileSync(o.report, html);
    } catch (e) {
      throw new UsageError(`--report: cannot write "${o.report}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  if (o.json) {
    const json = comparisonJson(result, { ptlab_version: version, ...w.meta, ...(interrupted ? { interrupted: { not_run: notRun } } : {}) }) as {
      configs: Record<string, unknown>[];
    };
    if (o.byFunction === true)
      for (const [i, r] of result.runs.entries())
        if (r.byFunction !== undefined) (json.configs[i] as Record<string, unknown>).by_function = byFunctionJson(r.byFunction);
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(formatComparison(result, w.heading));
    if (o.byFunction === true)
      for (const r of result.runs)
        if (r.byFunction !== undefined) process.stdout.write(`\n${formatByFunction(r.byFunction, `by kernel function: ${r.config.label}`)}`);
    if (o.report !== undefined) process.stdout.write(`report written to ${o.report}\n`);
    if (interrupted)
      process.stdout.write(
        `INTERRUPTED: the figures of an interrupted configuration are those so far${notRun.length > 0 ? `; not run: ${notRun.join(", ")}` : ""}\n`,
      );
  }
  return interrupted ? 130 : result.runs.some((r) => r.violations.length > 0) ? 1 : 0;
}
