#!/usr/bin/env node
// ptlab command line. Bad input (files, options) ends with one
// `file:line:col: message` line and exit code 2.

import { Command, CommanderError, InvalidArgumentError } from "commander";
import { oneLine, ScenarioError } from "../scenario/types.js";
import { VARIANTS } from "../core/machine.js";
import { MIN_MEMORY, parsePageSize } from "../scenario/schema.js";
import { listScenarios, loadScenario } from "./load.js";

export { loadScenario };
import { Runner } from "../run/runner.js";
import { countersJson, formatRows, formatTotals, rowsJson } from "./format.js";
import { diffKernel } from "./diff-kernel.js";
import { cmdReplay, parseTouch } from "./replay.js";
import { TraceError } from "../trace/errors.js";
import { cmdCompare } from "./compare.js";
import { cmdWorkload, collect } from "./workload.js";
import { cmdExplore, collectInvariant, parseMode, parseShard, UsageError } from "./explore.js";
import { cmdHunt, cmdMerge } from "./hunt.js";
import { cmdLitmus } from "./litmus.js";
import { cmdCalibrate, parseModes, parseOps, parseSizes } from "./calibrate.js";
import { CALIB_OPS } from "../calibrate/bench.js";
import { cmdUi } from "./ui.js";
import { LitmusError } from "../litmus/types.js";
import { readFileSync } from "node:fs";
import { openEventLog } from "./event-log.js";
import { createProgress } from "./progress.js";
import { interruptedLine, runInterruptible } from "./interrupt.js";
import { type ByFunctionCliOptions, parseFoldedPath, wantsProfile, writeFolded } from "./by-function.js";
import { byFunction, byFunctionJson, foldedStacks, formatByFunction } from "../report/by-function.js";
import { availableParallelism } from "node:os";

// 90, 90s, 5m, 1h -> seconds
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[(m[2] ?? "s") as "s" | "m" | "h"] as number) : Number.NaN;
  if (!m || !(n > 0) || n > 30 * 86400) throw new InvalidArgumentError(`expected a duration such as 90, 90s, 5m or 1h (at most 30 days), got "${v}"`);
  return n;
}

function defaultWorkers(): number {
  return Math.max(1, Math.min(64, availableParallelism()));
}

function parseVariant(v: string, prev: Record<string, string>): Record<string, string> {
  const m = /^([a-z_]+)=([a-z0-9-]+)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected NAME=VALUE, e.g. gather_nested=reset-range, got "${v}"`);
  const [name, value] = [m[1] as string, m[2] as string];
  // Object.hasOwn: "constructor" is an unknown name, not Object's.
  if (!Object.hasOwn(VARIANTS, name)) throw new InvalidArgumentError(`unknown variant "${name}" (known: ${Object.keys(VARIANTS).join(", ")})`);
  const allowed = VARIANTS[name as keyof typeof VARIANTS] as readonly string[];
  if (!allowed.includes(value)) throw new InvalidArgumentError(`variant ${name}: unknown value "${value}" (expected one of: ${allowed.join(", ")})`);
  return { ...prev, [name]: value };
}

function parseOnOff(v: string): boolean {
  if (v === "on") return true;
  if (v === "off") return false;
  throw new InvalidArgumentError(`expected on or off, got "${v}"`);
}

function parseThp(v: string): "never" | "madvise" | "always" {
  if (v === "never" || v === "madvise" || v === "always") return v;
  throw new InvalidArgumentError(`expected never, madvise or always, got "${v}"`);
}

function parseMemoryLimit(v: string): number {
  const n = parsePageSize(v);
  if (typeof n === "string") throw new InvalidArgumentError(n);
  if (n < MIN_MEMORY)
    throw new InvalidArgumentError(`expected at least 16M: below that the kernel's own memory and its watermarks leave nothing to run in, got "${v}"`);
  return n;
}

function parseSwapSize(v: string): number {
  const n = parsePageSize(v);
  if (typeof n === "string") throw new InvalidArgumentError(n);
  return n;
}

function parseArch(v: string): "x86_64" | "arm64" {
  if (v === "x86_64" || v === "arm64") return v;
  throw new InvalidArgumentError(`expected x86_64 or arm64, got "${v}"`);
}

// --mthp 64K,16K | none: anon mTHP sizes enabled ("always").
export function parseMthp(v: string): Record<number, "always"> {
  const out: Record<number, "always"> = {};
  if (v === "none") return out;
  for (const part of v.split(",")) {
    const m = /^(16|32|64|128|256|512|1024)K$|^(2|4|8|16|32|64|128|256)M$/.exec(part.trim());
    if (!m)
      throw new InvalidArgumentError(
        `expected mTHP sizes from 16K..256M (those of the page size: 16K..1M with 4K pages) separated by commas, or none; got "${part}"`,
      );
    out[m[1] !== undefined ? Number(m[1]) : Number(m[2]) * 1024] = "always";
  }
  return out;
}

function parseArm64Feature(v: string, prev: Record<string, boolean>): Record<string, boolean> {
  const m = /^(hafdbs|tlbi_range|bbml2_noabort)=(on|off)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected hafdbs|tlbi_range|bbml2_noabort=on|off, got "${v}"`);
  const key = { hafdbs: "hafdbs", tlbi_range: "tlbiRange", bbml2_noabort: "bbml2NoAbort" }[m[1] as string] as string;
  return { ...prev, [key]: m[2] === "on" };
}

export async function cmdRun(
  file: string,
  o: {
    json?: boolean;
    check: boolean;
    progress?: boolean;
    variant?: Record<string, string>;
    ptReclaim?: boolean;
    thp?: "never" | "madvise" | "always";
    arch?: "x86_64" | "arm64";
    mthp?: Record<number, "always">;
    arm64?: Record<string, boolean>;
    events?: string;
  } & ByFunctionCliOptions,
): Promise<number> {
  const sc = loadScenario(file);
  const early = o.folded !== undefined ? writeFolded(o.folded, "") : null;
  if (early !== null) throw new UsageError(early);
  // Opened once the options are known good: a bad one leaves no file behind.
  const events = o.events !== undefined ? openEventLog(o.events) : null;
  if (sc.concurrent !== undefined && sc.concurrent.length > 0)
    process.stderr.write(`note: ${file}: the ${sc.concurrent.length} \`concurrent\` steps are run only by \`ptlab explore\`; \`run\` executes \`steps\`\n`);
  if (sc.machine.headroomBytes !== undefined)
    process.stderr.write(`note: ${file}: \`machine.headroom\` applies before the concurrent steps, which only \`ptlab explore\` runs; \`run\` ignores it\n`);
  const progress = createProgress({ enabled: o.progress !== false });
  const r = new Runner(sc, {
    checkInvariants: o.check,
    variants: o.variant ?? {},
    ...(o.ptReclaim !== undefined ? { ptReclaim: o.ptReclaim } : {}),
    ...(o.thp !== undefined ? { thp: o.thp } : {}),
    ...(o.arch !== undefined ? { arch: o.arch } : {}),
    ...(o.mthp !== undefined ? { mthp: o.mthp } : {}),
    ...(o.arm64 !== undefined ? { arm64: o.arm64 } : {}),
    ...(wantsProfile(o) ? { byFunction: true } : {}),
    onStep: progress.run(`run ${sc.name}`),
    ...(events !== null ? { onExec: events.onExec } : {}),
  });
  events?.attach(r.m);
  const { totals, violations, stoppedAt, stopped, interrupted } = await runInterruptible(r, "run", () => {
    progress.stop();
    events?.close();
  });
  const byFn = r.prof !== null ? byFunction(r.prof) : null;
  if (o.folded !== undefined && byFn !== null) {
    const bad = writeFolded(o.folded, foldedStacks(byFn));
    if (bad !== null) throw new UsageError(bad);
  }
  if (o.json) {
    const extra = o.byFunction === true && byFn !== null ? { by_function: byFunctionJson(byFn) } : {};
    const cut = interrupted;
    process.stdout.write(
      `${JSON.stringify({ scenario: sc.name, file, seed: sc.machine.seed, ...cut, reports: rowsJson(r.rows), totals: countersJson(totals), violations, ...extra }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(
      `${formatRows(`ptlab run ${file}: ${sc.name} (${r.m.arch.name}, ${sc.machine.cpus} CPUs, THP ${r.m.config.thp}, PT reclaim ${r.m.config.ptReclaim ? "on" : "off"})`, r.rows)}\n`,
    );
    process.stdout.write(`${formatTotals(totals)}\n`);
    if (o.byFunction === true && byFn !== null)
      process.stdout.write(`${formatByFunction(byFn, "by kernel function (whole run, before the implicit teardown)")}\n`);
    if (violations.length > 0) process.stdout.write(`INVARIANT VIOLATIONS:\n${violations.map((v) => `  ${v}`).join("\n")}\n`);
    if (stopped !== null) process.stdout.write(interruptedLine(stopped));
  }
  return stoppedAt !== null ? 130 : violations.length > 0 ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command();
  program.name("ptlab").description("An executable model of the Linux page-table management layer").version(version(), "-V, --version").exitOverride();
  // Commander's errors on one line: its "(Did you mean ...?)" hint joins
  // the message, and what the message quotes is escaped. Help text (what
  // `ptlab` alone prints) stays as it is.
  program.configureOutput({
    writeErr: (s) => process.stderr.write(s.startsWith("error:") ? `${oneLine(s.trimEnd().replace(/\n\((Did you mean [^\n]*)\)$/, " ($1)"))}\n` : s),
  });
  let result: number | Promise<number> = 0;
  program
    .command("run")
    .description("run a scenario on the model and print the counters at each report step")
    .argument("<file>", "scenario YAML file, or a built-in scenario's name (ptlab scenarios)")
    .option("--json", "machine-readable output")
    .option("--no-check", "do not check invariants after every step")
    .option("--no-progress", "no progress bar or progress lines on stderr")
    .option("--variant <name=value>", "select a historical variant (repeatable)", parseVariant)
    .option("--pt-reclaim <on|off>", "override CONFIG_PT_RECLAIM", parseOnOff)
    .option("--thp <never|madvise|always>", "override the scenario's transparent_hugepage/enabled", parseThp)
    .option("--arch <x86_64|arm64>", "override the scenario's architecture", parseArch)
    .option("--mthp <sizes>", "anon mTHP sizes to enable, e.g. 64K or 16K,64K, or none", parseMthp)
    .option("--arm64 <feature=on|off>", "arm64 CPU feature: hafdbs, tlbi_range, bbml2_noabort (repeatable)", parseArm64Feature)
    .option("--by-function", "also print modelled cycles and counters by kernel function (self and total, like perf report)")
    .option("--folded <file>", "write folded stacks of modelled cycles (flamegraph.pl, inferno, speedscope)", parseFoldedPath)
    .option("--events <file>", "write every model event (entry stores, TLB fills and drops, flushes, faults, folios) as JSON lines, by step (docs/events.md)")
    .action((file: string, o) => {
      result = cmdRun(file, o);
    });
  program
    .command("diff-kernel")
    .description("run a scenario on the host kernel and on the model; compare VmPTE, RssAnon, AnonHugePages, VmSwap and page states")
    .argument("<file>", "scenario YAML file, or a built-in scenario's name (ptlab scenarios)")
    .option("--json", "machine-readable output")
    .option("--setup-swap", "as root, when the scenario needs swap and the host has none: swap on a zram device for the run, removed afterwards")
    .action((file: string, o) => {
      result = diffKernel(loadScenario(file), { json: o.json === true, setupSwap: o.setupSwap === true });
    });
  program
    .command("replay")
    .description("replay a strace -f or perf trace recording (optionally .gz) on the model")
    .argument("<file>", "trace file")
    .option("--json", "machine-readable output")
    .option("--lenient", "skip and count malformed lines instead of stopping at the first")
    .option("--no-check", "do not check invariants after each syscall")
    .option("--no-progress", "no progress bar or progress lines on stderr")
    .option(
      "--cpus <n>",
      "CPUs to spread tasks over",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError("expected an integer 1..64");
        return n;
      },
      4,
    )
    .option("--touch <policy>", "for traces without faults: none, writable or first:N (default: none)", (v) => {
      try {
        return parseTouch(v);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    })
    .option("--arch <x86_64|arm64>", "architecture to model", parseArch, "x86_64")
    .option("--variant <name=value>", "select a historical variant (repeatable)", parseVariant)
    .option("--pt-reclaim <on|off>", "override CONFIG_PT_RECLAIM (default on)", parseOnOff)
    .option("--thp <never|madvise|always>", "transparent_hugepage/enabled (default madvise)", parseThp)
    .option("--mthp <sizes>", "anon mTHP sizes to enable, e.g. 64K or 16K,64K, or none", parseMthp)
    .option("--arm64 <feature=on|off>", "arm64 CPU feature: hafdbs, tlbi_range, bbml2_noabort (repeatable)", parseArm64Feature)
    .option("--memory-limit <size>", "RAM the model may use, e.g. 256M (>= 16M): kswapd reclaims below the low watermark", parseMemoryLimit)
    .option("--swap <size>", "a swap device of this size for reclaim under --memory-limit, e.g. 1G", parseSwapSize)
    .option("--by-function", "also print modelled cycles and counters by kernel function (self and total, like perf report)")
    .option("--folded <file>", "write folded stacks of modelled cycles (flamegraph.pl, inferno, speedscope)", parseFoldedPath)
    .action((file: string, o) => {
      result = cmdReplay(file, { ...o, touch: o.touch ?? { kind: "none" } });
    });
  program
    .command("scenarios")
    .description("list the built-in scenarios; any command taking a scenario FILE also takes one of these names")
    .action(() => {
      process.stdout.write(listScenarios());
      result = 0;
    });
  program
    .command("workload")
    .description("run a built-in workload (same output as run); --list lists them with their parameters")
    .argument("[name]", "workload name")
    .option("--list", "list the workloads and their parameters")
    .option("--param <key=value>", "set a workload parameter (repeatable)", collect)
    .option("--json", "machine-readable output")
    .option("--no-check", "do not check invariants after every step")
    .option("--no-progress", "no progress bar or progress lines on stderr")
    .option("--by-function", "also print modelled cycles and counters by kernel function (self and total, like perf report)")
    .option("--folded <file>", "write folded stacks of modelled cycles (flamegraph.pl, inferno, speedscope)", parseFoldedPath)
    .action((name: string | undefined, o) => {
      result = cmdWorkload(name, { ...o, param: o.param ?? [] });
    });
  program
    .command("compare")
    .description("run one scenario, workload or trace under two or more configurations and compare them side by side")
    .argument("[file]", "scenario YAML file (or use --workload or --trace)")
    .option("--workload <name>", "a built-in workload instead of a file")
    .option("--trace <file>", "a strace -f or perf trace recording (optionally .gz) replayed under each configuration")
    .option("--lenient", "with --trace: skip and count malformed lines instead of stopping at the first")
    .option("--param <key=value>", "workload parameter (repeatable)", collect)
    .option("--config <label:key=value,...>", "a configuration to run (repeat: at least two)", collect)
    .option("--json", "machine-readable output")
    .option("--report <file.html>", "write a self-contained HTML report with charts")
    .option("--no-check", "do not check invariants after every step")
    .option("--no-progress", "no progress bar or progress lines on stderr")
    .option("--by-function", "also print each configuration's modelled cycles and counters by kernel function")
    .option("--folded <file>", "write folded stacks of modelled cycles, each configuration's label as the outermost frame", parseFoldedPath)
    .action((file: string | undefined, o) => {
      result = cmdCompare(file, { ...o, param: o.param ?? [], config: o.config ?? [] });
    });
  const int = (lo: number, hi: number) => (v: string) => {
    // Number("") and Number(" ") are 0: digits only.
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`expected an integer ${lo}..${hi}, got "${v}"`);
    return n;
  };
  program
    .command("explore")
    .description("explore the interleavings of a scenario's concurrent steps and print a minimal counterexample if an invariant breaks")
    .argument("<file>", "scenario YAML file with a `concurrent` section")
    .option("--mode <mode>", "exhaustive (preemption-bounded DFS), random or pct", parseMode, "exhaustive")
    .option(
      "--preemptions <n>",
      "exhaustive: preemption bound, or `unbounded` (best with --state-cache) (default: the scenario's explore.preemptions)",
      (v: string) => {
        if (v === "unbounded") return Number.POSITIVE_INFINITY;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 20) throw new InvalidArgumentError(`expected an integer 0..20 or "unbounded", got "${v}"`);
        return n;
      },
    )
    .option("--max-steps <n>", "steps per execution before it is cut off", int(1, 1_000_000))
    .option("--executions <n>", "random/pct: executions to run (default 1000); exhaustive: a cap", int(1, 1_000_000_000))
    .option("--seed <n>", "random/pct seed (default: the scenario's machine.seed)", int(0, 2 ** 31))
    .option("--pct-depth <n>", "pct: bug depth (priority change points + 1)", int(1, 20), 3)
    .option("--shard <I/N>", "explore only part I of N of the space (deterministic split; default 0/1)", parseShard)
    .option("--workers <n>", "worker threads (results do not depend on it)", int(1, 64), 1)
    .option("--historical", "apply the scenario's explore.variant (the historical code path)")
    .option("--variant <name=value>", "select a historical variant (repeatable)", parseVariant)
    .option("--arch <x86_64|arm64>", "override the scenario's architecture", parseArch)
    .option("--json [file]", "the result and counterexample as JSON: in FILE besides the text, or on stdout instead of it")
    .option("--replay <token>", "rerun exactly the schedule of a counterexample's replay token")
    .option("--no-shrink", "print the counterexample as found")
    .option("--ignore <invariant>", "do not check this invariant, to look past it (repeatable)", collectInvariant)
    .option("--no-progress", "no progress lines on stderr")
    .option("--state-cache", "exhaustive: stop an execution at a state whose bounded future was already explored (docs/explore.md)")
    .option("--sleep-sets", "exhaustive: partial-order reduction with sleep sets; needs (and defaults to) --preemptions unbounded (docs/explore.md)")
    .option("--speculate <n>", "speculative TLB fills per execution, 0..8 (default: the scenario's explore.speculate, 0)", int(0, 8))
    .action((file: string, o) => {
      result = cmdExplore(file, o);
    });
  program
    .command("hunt")
    .description("generate concurrent scenarios, explore them, and write minimal scenarios for what breaks an invariant (docs/hunt.md)")
    .option("--time <duration>", "how long to hunt: 90, 90s, 5m, 1h", parseDuration, 60)
    .option("--cases <n>", "stop after this many cases (a reproducible budget)", int(1, 1_000_000_000))
    .option("--seed <n>", "campaign seed", int(0, 2 ** 31), 1)
    .option("--workers <n>", "worker threads (cases and findings do not depend on it)", int(1, 64), defaultWorkers())
    .option("--shard <I/N>", "this machine's share of the campaign (merge the folders with --merge; default 0/1)", parseShard)
    .option("--variant <name=value>", "hunt in a historical code path (repeatable)", parseVariant)
    .option("--arch <x86_64|arm64>", "generate cases for one architecture only", parseArch)
    .option("--out <dir>", "findings folder (findings/, corpus/, summary.json)", "hunt-out")
    .option("--first", "stop at the first finding")
    .option("--minimize-time <seconds>", "time limit for minimising one finding", int(1, 3600), 60)
    .option("--executions <n>", "executions per case (default 40: exhaustive at one preemption, PCT, random)", int(3, 1_000_000))
    .option("--no-progress", "no progress lines on stderr")
    .option("--merge <dirs...>", "merge the findings and coverage of these hunt folders instead of hunting")
    .action((o) => {
      if (o.merge !== undefined) result = Promise.resolve(cmdMerge(o.merge as string[], o.out === "hunt-out" ? undefined : (o.out as string)));
      else
        result = cmdHunt({
          time: o.time,
          ...(o.cases !== undefined ? { cases: o.cases } : {}),
          seed: o.seed,
          workers: o.workers,
          shard: o.shard ?? { index: 0, count: 1 },
          variant: o.variant ?? {},
          ...(o.arch !== undefined ? { arch: o.arch } : {}),
          out: o.out,
          first: o.first === true,
          progress: o.progress !== false,
          minimizeSeconds: o.minimizeTime,
          ...(o.executions !== undefined ? { executions: o.executions } : {}),
        });
    });
  program
    .command("ui")
    .description("serve the web view on 127.0.0.1: a scenario editor, step-by-step runs with page tables and TLBs, counterexamples (docs/ui.md)")
    .argument("[file]", "scenario YAML file, or a built-in scenario's name, to open in the editor (default: default)")
    .option("--port <n>", "TCP port (default: 0, a free port the OS picks)", int(0, 65535), 0)
    .option("--host <addr>", "listen on this address instead of 127.0.0.1 (warns unless it is loopback)")
    .option("--export <file.html>", "write the view with the scenario as one self-contained offline HTML file instead of serving it")
    .action((file: string | undefined, o) => {
      result = cmdUi(file, {
        port: o.port,
        ...(o.host !== undefined ? { host: o.host as string } : {}),
        ...(o.export !== undefined ? { export: o.export as string } : {}),
      });
    });
  program
    .command("calibrate")
    .description(
      "time page-table operations on the host kernel, count the same operations' primitives on the model, and fit a cost per primitive (ns), with leave-one-out errors (docs/cost-table.md)",
    )
    .option("--sizes <list>", "region sizes, multiples of 2M (default: 16M,64M)", parseSizes)
    .option("--reps <n>", "repetitions of each host benchmark (median; default 5)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError("expected an integer 1..1000");
      return n;
    })
    .option("--ops <list>", `operations (default: all: ${CALIB_OPS.join(",")})`, parseOps)
    .option(
      "--modes <list>",
      "page sizes: 4k (MADV_NOHUGEPAGE), thp (MADV_HUGEPAGE), or an mTHP size such as 64k (needs --setup-mthp) (default: 4k,thp)",
      parseModes,
    )
    .option("--setup-mthp", "as root, for an mTHP mode: enable that size alone (madvise) in sysfs while it is measured, and restore every setting afterwards")
    .option("--out <file>", "write the fitted weights as a cost table (JSON) for --cost")
    .option("--json", "machine-readable output")
    .option("--save-host <file>", "also write the host's measurements (JSON), to fit again later or elsewhere")
    .option("--host-data <file>", "fit measurements saved by --save-host instead of measuring this host")
    .action((o) => {
      result = cmdCalibrate({
        sizes: o.sizes ?? [16 * 2 ** 20, 64 * 2 ** 20],
        reps: o.reps ?? 5,
        ops: o.ops ?? [...CALIB_OPS],
        modes: o.modes ?? ["4k", "thp"],
        ...(o.out !== undefined ? { out: o.out as string } : {}),
        json: o.json === true,
        ...(o.saveHost !== undefined ? { saveHost: o.saveHost as string } : {}),
        ...(o.hostData !== undefined ? { hostData: o.hostData as string } : {}),
        setupMthp: o.setupMthp === true,
      });
    });
  program
    .command("litmus")
    .description("run herd AArch64-VMSA litmus tests on the arm64 TLB/TLBI/walker model; with --kinds, compare with recorded verdicts (docs/litmus.md)")
    .argument("<paths...>", "litmus files, or folders of *.litmus files")
    .option("--kinds <file>", "herd kinds file (NAME Allowed|Forbidden|Required per line): print a comparison table; exit 1 if a verdict disagrees")
    .option("--time", "also print the time each test takes (not deterministic)")
    .action((paths: string[], o) => {
      result = cmdLitmus(paths, { ...(o.kinds !== undefined ? { kinds: o.kinds as string } : {}), time: o.time === true });
    });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return await result;
}

// The package's version, from package.json beside dist/.
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

// Output to a closed pipe (`ptlab run ... | head -1`): the rest is dropped
// quietly and the command still ends with its own exit code; any other
// write error (a full disk, a closed file) is one line and exit code 2:
// the output cannot go where it was asked to.
function guardStdout(): void {
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") {
      process.stdout.write = (() => true) as typeof process.stdout.write;
      return;
    }
    process.stderr.write(`ptlab: cannot write the output: ${e.message}\n`);
    process.exit(2);
  });
}

guardStdout();
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof TraceError) {
      process.stderr.write(`${oneLine(e.format())}\n`);
      process.exitCode = 2;
    } else if (e instanceof UsageError) {
      process.stderr.write(`ptlab: ${oneLine(e.message)}\n`);
      process.exitCode = 2;
    } else if (e instanceof LitmusError) {
      process.stderr.write(`${oneLine(e.format())}\n`);
      process.exitCode = 2;
    } else if (e instanceof ScenarioError) {
      process.stderr.write(`${e.format()}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`ptlab: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 3;
    }
  },
);
