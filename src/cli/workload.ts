// ptlab workload NAME [--param k=v ...] [--json]: runs a built-in workload
// with the same output as `ptlab run`; --list lists them with parameters.

import { Runner } from "../run/runner.js";
import { oneLine } from "../scenario/types.js";
import { formatParams, instantiate, listWorkloads, UsageError } from "../workloads/index.js";
import { splitParam } from "../workloads/params.js";
import { countersJson, formatRows, formatTotals, rowsJson } from "./format.js";
import { createProgress } from "./progress.js";
import { interruptedLine, runInterruptible } from "./interrupt.js";
import { byFunction, byFunctionJson, foldedStacks, formatByFunction } from "../report/by-function.js";
import { type ByFunctionCliOptions, wantsProfile, writeFolded } from "./by-function.js";

export interface WorkloadCliOptions extends ByFunctionCliOptions {
  list?: boolean;
  param: string[];
  json?: boolean;
  check: boolean;
  progress: boolean;
}

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function parseParamList(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list) {
    const [k, v] = splitParam(p);
    if (k in out) throw new UsageError(`--param ${k} given twice`);
    out[k] = v;
  }
  return out;
}

/** Runs `fn`; a UsageError becomes one line on stderr and exit code 2. */
export async function usageGuard(cmd: string, fn: () => number | Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ptlab ${cmd}: ${oneLine(e.message)}\n`);
      return 2;
    }
    throw e;
  }
}

export function cmdWorkload(name: string | undefined, o: WorkloadCliOptions): Promise<number> {
  return usageGuard("workload", async () => {
    if (o.list) {
      process.stdout.write(listWorkloads());
      return 0;
    }
    if (name === undefined) throw new UsageError("expected a workload name, or --list to list them");
    const w = instantiate(name, parseParamList(o.param));
    const early = o.folded !== undefined ? writeFolded(o.folded, "") : null;
    if (early !== null) throw new UsageError(early);
    const progress = createProgress({ enabled: o.progress });
    const r = new Runner(w.scenario, {
      checkInvariants: o.check,
      ...w.options,
      onStep: progress.run(`workload ${name}`),
      ...(wantsProfile(o) ? { byFunction: true } : {}),
    });
    const { totals, violations, stoppedAt, stopped, interrupted } = await runInterruptible(r, "workload", () => progress.stop());
    const byFn = r.prof !== null ? byFunction(r.prof) : null;
    if (o.folded !== undefined && byFn !== null) {
      const bad = writeFolded(o.folded, foldedStacks(byFn));
      if (bad !== null) throw new UsageError(bad);
    }
    const params = formatParams(w.def, w.params);
    const sc = w.scenario;
    if (o.json) {
      process.stdout.write(
        `${JSON.stringify(
          {
            workload: name,
            params: Object.fromEntries(w.def.params.map((s) => [s.name, w.params[s.name]])),
            scenario: sc.name,
            seed: sc.machine.seed,
            ...interrupted,
            reports: rowsJson(r.rows),
            totals: countersJson(totals),
            violations,
            ...(o.byFunction === true && byFn !== null ? { by_function: byFunctionJson(byFn) } : {}),
          },
          null,
          2,
        )}\n`,
      );
    } else {
      const cfg = r.m.config;
      const mthp =
        Object.keys(cfg.mthp).length > 0
          ? `, mTHP ${Object.entries(cfg.mthp)
              .map(([k, v]) => `${(r.m.geo.pageSize / 1024) << Number(k)}K=${v}`)
              .join(" ")}`
          : "";
      process.stdout.write(
        `${formatRows(`ptlab workload ${name} ${params}: ${sc.description}\n(${r.m.arch.name}, ${sc.machine.cpus} CPUs, THP ${cfg.thp}${mthp}, PT reclaim ${cfg.ptReclaim ? "on" : "off"})`, r.rows)}\n`,
      );
      process.stdout.write(`${formatTotals(totals)}\n`);
      if (o.byFunction === true && byFn !== null)
        process.stdout.write(`${formatByFunction(byFn, "by kernel function (whole run, before the implicit teardown)")}\n`);
      if (violations.length > 0) process.stdout.write(`INVARIANT VIOLATIONS:\n${violations.map((v) => `  ${v}`).join("\n")}\n`);
      if (stopped !== null) process.stdout.write(interruptedLine(stopped));
    }
    return stoppedAt !== null ? 130 : violations.length > 0 ? 1 : 0;
  });
}
