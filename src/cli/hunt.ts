// `ptlab hunt`: generates concurrent scenarios, explores each with a fixed
// budget in worker threads, keeps the cases that reached new coverage and
// mutates them, and minimises what breaks an invariant into a short
// scenario written to the findings folder. `--merge DIR...` joins the
// findings and coverage of shards run elsewhere. Exit codes: 0 nothing
// found, 1 findings, 2 bad input, 130 interrupted (after printing what was
// found).

import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { VARIANTS } from "../core/machine.js";
import { type CaseSpec, Campaign } from "../hunt/campaign.js";
import { type Case, caseYaml, cloneCase } from "../hunt/case.js";
import { type Finding, minimize, outcomeKey } from "../hunt/minimize.js";
import { siteTable } from "../core/sync.js";
import { type Budget, type CaseResult, DEFAULT_BUDGET, featureName, learnOutcomes, loadCase, type Outcome, runCase } from "../hunt/search.js";
import { UsageError } from "./explore.js";

export interface HuntOpts {
  time: number; // seconds
  cases?: number;
  seed: number;
  workers: number;
  shard: { index: number; count: number };
  variant: Record<string, string>;
  arch?: "x86_64" | "arm64";
  out: string;
  first: boolean;
  progress: boolean;
  minimizeSeconds: number;
  executions?: number; // per case, replacing the default budget's split
}

export type HuntJob =
  | { kind: "case"; id: number; name: string; yaml: string; budget: Budget; seed: number }
  | { kind: "minimize"; id: number; case: Case; outcome: Outcome; budget: Budget; seed: number; limitMs: number };

// A worker's replies carry its site table (once) and the outcome names it
// has met: the main thread names the workers' features with them.
export type HuntReply = ({ kind: "case"; id: number; result: CaseResult } | { kind: "minimize"; id: number; finding: Finding }) & {
  sites?: readonly string[];
  outcomes?: [number, string][];
};

// stop: [0] an interrupt, [1] the deadline. Cases stop at either; a
// minimisation only at an interrupt or its own time limit.
export function serveJob(job: HuntJob, stop: Int32Array): HuntReply {
  const interrupted = () => Atomics.load(stop, 0) !== 0;
  const shouldStop = () => interrupted() || Atomics.load(stop, 1) !== 0;
  if (job.kind === "case") {
    let result: CaseResult;
    try {
      result = runCase(loadCase(job.yaml, `${job.name}.yaml`), job.budget, job.seed, shouldStop);
    } catch (e) {
      // A generated case the loader rejects is a generator bug; count it, do not stop.
      result = {
        outcome: { kind: "invalid", message: e instanceof Error ? e.message : String(e) },
        features: [],
        executions: 0,
        consulted: 0,
        raced: 0,
        reached: false,
      };
    }
    return { kind: "case", id: job.id, result };
  }
  const t0 = Date.now();
  const finding = minimize(job.case, job.outcome, job.budget, job.seed, () => interrupted() || Date.now() - t0 > job.limitMs);
  return { kind: "minimize", id: job.id, finding };
}

// Variants a hunt can select, and the architecture their code exists on.
const VARIANT_ARCH: Record<string, "arm64" | "x86_64"> = { contpte: "arm64", contpte_lockless: "arm64" };

export function checkVariants(v: Record<string, string>): "arm64" | "x86_64" | undefined {
  let arch: "arm64" | "x86_64" | undefined;
  for (const [k, val] of Object.entries(v)) {
    if (!Object.hasOwn(VARIANTS, k)) throw new UsageError(`--variant: unknown variant "${k}" (expected one of: ${Object.keys(VARIANTS).join(", ")})`);
    const vals = VARIANTS[k as keyof typeof VARIANTS] as readonly string[];
    if (!vals.includes(val)) throw new UsageError(`--variant: ${k} takes ${vals.join(", ")}, got "${val}"`);
    if (Object.hasOwn(VARIANT_ARCH, k)) arch = VARIANT_ARCH[k];
  }
  return arch;
}

// ---- executing jobs: in this thread or in a pool of workers ---------------------

interface Executor {
  run(jobs: HuntJob[]): Promise<HuntReply[]>;
  close(): Promise<void>;
  sites: readonly string[]; // the site table the features were recorded with
}

function inlineExecutor(stop: Int32Array): Executor {
  return {
    async run(jobs) {
      const out: HuntReply[] = [];
      for (const j of jobs) {
        out.push(serveJob(j, stop));
        // Let a pending SIGINT handler run between jobs.
        await new Promise((r) => setImmediate(r));
      }
      return out;
    },
    async close() {},
    sites: siteTable(),
  };
}

function workerExecutor(n: number, stop: SharedArrayBuffer): Executor {
  const url = new URL("./hunt-worker.js", import.meta.url);
  const workers = Array.from({ length: n }, () => new Worker(url, { workerData: { stop } }));
  const ex: Executor = {
    sites: [],
    run(jobs) {
      return new Promise((resolve, reject) => {
        const out: HuntReply[] = new Array(jobs.length);
        let next = 0;
        let done = 0;
        if (jobs.length === 0) resolve(out);
        const feed = (w: Worker) => {
          if (next >= jobs.length) return;
          const i = next++;
          const onMsg = (r: HuntReply) => {
            w.off("error", onErr);
            if (r.sites !== undefined) ex.sites = r.sites;
            if (r.outcomes !== undefined) learnOutcomes(r.outcomes);
            out[i] = r;
            if (++done === jobs.length) resolve(out);
            else feed(w);
          };
          const onErr = (e: Error) => reject(e);
          w.once("message", onMsg);
          w.once("error", onErr);
          w.postMessage(jobs[i]);
        };
        for (const w of workers) feed(w);
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
  return ex;
}

// ---- the findings folder ------------------------------------------------------------

interface Summary {
  ptlab: "hunt";
  seed: number;
  shard: string;
  variants: Record<string, string>;
  cases: number;
  invalid: number;
  // Cases in which a selected variant's code ran at all (in the set-up
  // too), and those in which it ran while another thread had steps left
  // (0 without --variant).
  reached: number;
  raced: number;
  executions: number;
  seconds: number;
  interrupted: boolean;
  features: string[];
  findings: {
    file: string;
    signature: string;
    kind: string;
    invariant: string;
    message: string;
    token: string | null;
    case: string;
    foundAfterSeconds: number;
    fixedToo: boolean | null;
  }[];
}

function ensureDir(dir: string): void {
  try {
    mkdirSync(join(dir, "findings"), { recursive: true });
    mkdirSync(join(dir, "corpus"), { recursive: true });
    const probe = join(dir, ".ptlab-hunt");
    writeFileSync(probe, "ptlab hunt findings folder\n");
  } catch (e) {
    throw new UsageError(`--out ${dir}: cannot write the findings folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function findingFile(f: Finding, caseName: string, after: number, variants: Record<string, string>): string {
  // Comments go after the scenario: a replay token covers the scenario's
  // line numbers, so nothing may be added above it.
  const lines = [
    "",
    `# ptlab hunt finding: ${f.invariant} (${f.kind}), from case ${caseName} after ${after.toFixed(1)} s`,
    `# ${f.message.replace(/\n/g, " ")}`,
    `# minimised from ${f.before.steps} set-up and ${f.before.concurrent} concurrent steps in ${f.checks} checks${f.complete ? "" : " (stopped at the limit)"}`,
  ];
  if (Object.keys(variants).length > 0)
    lines.push(
      `# variants: ${Object.entries(variants)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")} (in machine.variants); ${f.fixedToo ? "v6.17 breaks the same way" : "v6.17 explores clean: the variant's bug"}`,
    );
  if (f.kind === "violation") lines.push("# reproduce: ptlab explore THIS_FILE --replay TOKEN", `# token: ${f.token}`);
  if (f.timeline !== null) lines.push("# what happened (as the replay prints it):", ...f.timeline.map((l) => `#   ${l}`));
  else if (f.kind === "setup-violation") lines.push("# reproduce: ptlab run THIS_FILE (a set-up step breaks the invariant)");
  else lines.push("# reproduce: ptlab explore THIS_FILE (ptlab throws: a bug in ptlab, not in the kernel path)");
  return `${f.yaml}${lines.join("\n")}\n`;
}

// ---- the campaign ----------------------------------------------------------------------

export async function cmdHunt(o: HuntOpts): Promise<number> {
  const arch = checkVariants(o.variant);
  if (o.arch !== undefined && arch !== undefined && o.arch !== arch)
    throw new UsageError(`--arch ${o.arch}: the selected variant's code exists only on ${arch}`);
  ensureDir(o.out);
  const budget: Budget =
    o.executions === undefined
      ? DEFAULT_BUDGET
      : {
          exhaustive: Math.ceil(o.executions * 0.6),
          pct: Math.floor(o.executions * 0.3),
          random: o.executions - Math.ceil(o.executions * 0.6) - Math.floor(o.executions * 0.3),
          work: Math.ceil((DEFAULT_BUDGET.work * o.executions) / (DEFAULT_BUDGET.exhaustive + DEFAULT_BUDGET.pct + DEFAULT_BUDGET.random)),
        };
  const camp = new Campaign(o.seed, o.shard, { variants: o.variant, ...((o.arch ?? arch) ? { arch: (o.arch ?? arch) as "x86_64" | "arm64" } : {}) });
  const stopBuf = new SharedArrayBuffer(8);
  const flag = new Int32Array(stopBuf); // [0] interrupt, [1] deadline
  let interrupted = false;
  const t0 = Date.now();
  const deadline = t0 + o.time * 1000;
  const stopNow = () => Atomics.load(flag, 0) !== 0 || Date.now() >= deadline;
  const markDeadline = () => {
    if (Date.now() >= deadline) Atomics.store(flag, 1, 1);
  };
  const onSigint = (sig: NodeJS.Signals) => {
    interrupted = true;
    Atomics.store(flag, 0, 1);
    process.stderr.write(`\nptlab hunt: stopping (${sig === "SIGINT" ? "Ctrl-C" : sig}); keeping what was found...\n`);
  };
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigint);
  const ticker = setInterval(markDeadline, 100);
  const ex = o.workers > 1 ? workerExecutor(o.workers, stopBuf) : inlineExecutor(flag);
  const vars = Object.entries(o.variant)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  const out = process.stdout;
  out.write(
    `ptlab hunt: seed ${o.seed}, shard ${o.shard.index}/${o.shard.count}, ${o.workers} worker${o.workers > 1 ? "s" : ""}, ${o.cases !== undefined ? `${o.cases} cases or ` : ""}${o.time} s${vars ? `, variants: ${vars}` : ", v6.17 code"}${camp.gen.arch ? `, ${camp.gen.arch} only` : ""}\n`,
  );
  out.write(`cpu: ${cpus()[0]?.model ?? "unknown"} (${availableParallelism()} available)\n`);
  const summary: Summary = {
    ptlab: "hunt",
    seed: o.seed,
    shard: `${o.shard.index}/${o.shard.count}`,
    variants: o.variant,
    cases: 0,
    invalid: 0,
    reached: 0,
    raced: 0,
    executions: 0,
    seconds: 0,
    interrupted: false,
    features: [],
    findings: [],
  };
  const signatures = new Set<string>();
  let lastProgress = 0;
  const progress = (force = false) => {
    const now = Date.now();
    if (!o.progress || (!force && now - lastProgress < 2000)) return;
    lastProgress = now;
    process.stderr.write(
      `hunt: ${((now - t0) / 1000).toFixed(0)} s, ${camp.cases} cases (${camp.invalid} invalid${Object.keys(o.variant).length > 0 ? `, ${camp.reached} reached the variant's code, ${camp.raced} beside another thread` : ""}), ${camp.executions} executions, ${camp.coverage.size} features, corpus ${camp.corpus.length}, findings ${summary.findings.length}\n`,
    );
  };
  type ToMin = { spec: CaseSpec; outcome: Outcome; at: number };
  const deferred: ToMin[] = [];
  // Minimises findings, writes and prints the new ones; true when --first is satisfied.
  const minimizeAll = async (toMin: ToMin[]): Promise<boolean> => {
    if (toMin.length === 0) return false;
    const mins = await ex.run(
      toMin.map((m) => ({
        kind: "minimize",
        id: m.spec.id,
        case: m.spec.case,
        outcome: m.outcome,
        budget,
        seed: o.seed,
        limitMs: o.minimizeSeconds * 1000,
      })),
    );
    for (let i = 0; i < mins.length; i++) {
      const f = (mins[i] as Extract<HuntReply, { kind: "minimize" }>).finding;
      const m = toMin[i] as ToMin;
      if (signatures.has(f.signature)) continue;
      signatures.add(f.signature);
      const n = summary.findings.length + 1;
      const rel = join("findings", `${String(n).padStart(3, "0")}-${f.invariant}.yaml`);
      const file = join(o.out, rel);
      writeFileSync(file, findingFile(f, m.spec.name, m.at, o.variant));
      summary.findings.push({
        file: rel,
        signature: f.signature,
        kind: f.kind,
        invariant: f.invariant,
        message: f.message,
        token: f.token,
        case: m.spec.name,
        foundAfterSeconds: m.at,
        fixedToo: f.fixedToo,
      });
      printFinding(n, f, file, m.spec.name, m.at);
      if (o.first && f.fixedToo !== true) return true;
    }
    return false;
  };
  try {
    for (;;) {
      if (stopNow()) break;
      if (o.cases !== undefined && camp.cases >= o.cases) break;
      // --first with a variant: the first finding that is the variant's own.
      if (o.first && summary.findings.some((f) => f.fixedToo !== true)) break;
      let specs = camp.round();
      if (o.cases !== undefined) specs = specs.slice(0, Math.max(0, o.cases - camp.cases));
      const replies = await ex.run(specs.map((s) => ({ kind: "case", id: s.id, name: s.name, yaml: s.yaml, budget, seed: o.seed })));
      const toMin: ToMin[] = [];
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i] as CaseSpec;
        const r = replies[i] as Extract<HuntReply, { kind: "case" }>;
        const a = camp.absorb(spec, r.result);
        if (a.gain > 0 || r.result.raced > 0) writeFileSync(join(o.out, "corpus", `${spec.name}.yaml`), spec.yaml);
        if (a.minimize) toMin.push({ spec, outcome: r.result.outcome, at: (Date.now() - t0) / 1000 });
      }
      progress();
      if (toMin.length === 0) continue;
      // Hunting a change: a violation that the same case shows on v6.17 as
      // well is not the change's bug (the open bugs the model finds in the
      // released code, found again and again). Its minimisation (up to
      // --minimize-time) waits until the hunt is over instead of halting the
      // search for the change's own; one run of the case without the
      // variants decides, in parallel like the cases.
      let now = toMin;
      if (Object.keys(o.variant).length > 0) {
        const fixed = await ex.run(
          toMin.map((m) => {
            const d = cloneCase(m.spec.case);
            d.machine.variants = {};
            return { kind: "case", id: m.spec.id, name: m.spec.name, yaml: caseYaml(d), budget, seed: o.seed };
          }),
        );
        now = [];
        for (let i = 0; i < toMin.length; i++) {
          const m = toMin[i] as (typeof toMin)[number];
          const r = fixed[i] as Extract<HuntReply, { kind: "case" }>;
          if (outcomeKey(r.result.outcome) === outcomeKey(m.outcome)) deferred.push(m);
          else now.push(m);
        }
      }
      if (await minimizeAll(now)) break;
    }
    // Past the deadline, each within --minimize-time: a finding is worth it.
    if (deferred.length > 0 && !interrupted) await minimizeAll(deferred);
  } finally {
    clearInterval(ticker);
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
    await ex.close();
  }
  progress(true);
  summary.cases = camp.cases;
  summary.invalid = camp.invalid;
  summary.reached = camp.reached;
  summary.raced = camp.raced;
  summary.executions = camp.executions;
  summary.seconds = Math.round((Date.now() - t0) / 100) / 10;
  summary.interrupted = interrupted;
  summary.features = [...camp.coverage].map((f) => featureName(f, ex.sites)).sort();
  writeFileSync(join(o.out, "summary.json"), `${JSON.stringify(summary, null, 1)}\n`);
  printSummary(summary, camp.corpus.length, o.out);
  if (interrupted) return 130;
  return summary.findings.length > 0 ? 1 : 0;
}

function printFinding(n: number, f: Finding, file: string, caseName: string, at: number): void {
  const out = process.stdout;
  out.write(`\nFINDING ${n}: ${f.invariant} (${f.kind}) in case ${caseName}, ${at.toFixed(1)} s into the hunt\n`);
  out.write(`  ${f.message}\n`);
  if (f.fixedToo !== null)
    out.write(`  on v6.17 (no variants): ${f.fixedToo ? "breaks the same way (not the variant's bug)" : "explores clean: the variant's bug"}\n`);
  out.write(
    `  minimised: ${f.before.steps} -> ${f.after.steps} set-up steps, ${f.before.concurrent} -> ${f.after.concurrent} concurrent (${f.checks} checks${f.complete ? "" : ", stopped at the limit"})\n`,
  );
  out.write(`  written: ${file}\n`);
  if (f.token !== null) out.write(`  reproduce: ptlab explore ${file} --replay ${f.token}\n`);
  else if (f.kind === "setup-violation") out.write(`  reproduce: ptlab run ${file}\n`);
  else out.write(`  reproduce: ptlab explore ${file}\n`);
  for (const l of f.yaml.trimEnd().split("\n")) out.write(`  | ${l}\n`);
  if (f.timeline !== null) {
    // The timeline of a long schedule is in the file; the terminal gets its start.
    const MAX = 60;
    out.write("  what happened:\n");
    for (const l of f.timeline.slice(0, MAX)) out.write(`    ${l}\n`);
    if (f.timeline.length > MAX) out.write(`    ... ${f.timeline.length - MAX} more lines in ${file}\n`);
  }
}

function printSummary(s: Summary, corpus: number, dir: string): void {
  process.stdout.write(
    `\nhunt: ${s.cases} cases (${s.invalid} invalid${Object.keys(s.variants).length > 0 ? `, ${s.reached} reached the variant's code, ${s.raced} beside another thread` : ""}), ${s.executions} executions in ${s.seconds} s; coverage ${s.features.length} features, corpus ${corpus}; ${s.findings.length} finding${s.findings.length === 1 ? "" : "s"}${s.interrupted ? " (interrupted)" : ""}\n`,
  );
  for (const f of s.findings) process.stdout.write(`  ${f.invariant} (${f.kind}): ${join(dir, f.file)}\n`);
  process.stdout.write(`folder: ${dir} (summary.json, findings/, corpus/)\n`);
}

// ---- merging shards ------------------------------------------------------------------------

export function cmdMerge(dirs: string[], outDir: string | undefined): number {
  const all: Summary[] = [];
  for (const d of dirs) {
    const file = join(d, "summary.json");
    let s: Summary;
    try {
      if (!statSync(d).isDirectory()) throw new UsageError(`--merge ${d}: not a directory`);
      s = JSON.parse(readFileSync(file, "utf8")) as Summary;
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(`--merge ${d}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); is it a ptlab hunt folder?`);
    }
    if (s.ptlab !== "hunt" || !Array.isArray(s.features) || !Array.isArray(s.findings))
      throw new UsageError(`--merge ${d}: ${file} is not a ptlab hunt summary`);
    all.push(s);
  }
  const features = new Set<string>();
  const seen = new Set<string>();
  const findings: (Summary["findings"][number] & { dir: string })[] = [];
  let cases = 0;
  let executions = 0;
  let invalid = 0;
  let raced = 0;
  let reached = 0;
  for (const [i, s] of all.entries()) {
    cases += s.cases;
    raced += s.raced ?? 0;
    reached += s.reached ?? 0;
    executions += s.executions;
    invalid += s.invalid;
    for (const f of s.features) features.add(f);
    for (const f of s.findings) {
      if (seen.has(f.signature)) continue;
      seen.add(f.signature);
      findings.push({ ...f, dir: dirs[i] as string });
    }
  }
  const merged: Summary = {
    ptlab: "hunt",
    seed: all[0]?.seed ?? 0,
    shard: all.map((s) => s.shard).join(","),
    variants: all[0]?.variants ?? {},
    cases,
    invalid,
    reached,
    raced,
    executions,
    seconds: Math.max(0, ...all.map((s) => s.seconds)),
    interrupted: all.some((s) => s.interrupted),
    features: [...features].sort(),
    findings: findings.map(({ dir, ...f }) => ({ ...f, file: join(dir, f.file) })),
  };
  if (outDir !== undefined) {
    ensureDir(outDir);
    merged.findings.forEach((f, i) => {
      const rel = join("findings", `${String(i + 1).padStart(3, "0")}-${f.invariant}.yaml`);
      writeFileSync(join(outDir, rel), readFileSync(f.file, "utf8"));
      f.file = rel;
    });
    writeFileSync(join(outDir, "summary.json"), `${JSON.stringify(merged, null, 1)}\n`);
  }
  process.stdout.write(`ptlab hunt --merge: ${dirs.length} folders (shards ${merged.shard})\n`);
  printSummary(merged, 0, outDir ?? ".");
  return findings.length > 0 ? 1 : 0;
}
