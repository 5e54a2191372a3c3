// The registry of built-in workloads: name -> definition. No Node APIs.

import type { Scenario } from "../scenario/types.js";
import { KERNEL_COMPILE } from "./kernel-compile.js";
import { describeParam, formatParamValue, type Params, resolveParams, UsageError } from "./params.js";
import { SERIES } from "./series.js";
import type { WorkloadDef, WorkloadRunOptions } from "./types.js";
import { WILL_IT_SCALE } from "./will-it-scale.js";

export { UsageError } from "./params.js";
export type { WorkloadDef, WorkloadRunOptions } from "./types.js";

export const WORKLOADS: ReadonlyMap<string, WorkloadDef> = new Map([KERNEL_COMPILE, ...WILL_IT_SCALE, ...SERIES].map((w) => [w.name, w]));

export interface WorkloadInstance {
  def: WorkloadDef;
  params: Params; // every parameter, defaults filled in
  scenario: Scenario;
  options: WorkloadRunOptions;
}

export function getWorkload(name: string): WorkloadDef {
  const w = WORKLOADS.get(name);
  if (w === undefined) throw new UsageError(`unknown workload "${name}" (expected one of: ${[...WORKLOADS.keys()].join(", ")})`);
  return w;
}

/** Validates the raw `key=value` parameters and builds the scenario. */
export function instantiate(name: string, raw: Readonly<Record<string, string>> = {}): WorkloadInstance {
  const def = getWorkload(name);
  const params = resolveParams(name, def.params, raw);
  return { def, params, scenario: def.build(params), options: def.runOptions?.(params) ?? {} };
}

/** "size=8M tasks=2 ..." in declaration order. */
export function formatParams(def: WorkloadDef, params: Params): string {
  return def.params.map((s) => `${s.name}=${formatParamValue(s, params[s.name] as number | string | boolean)}`).join(" ");
}

/** The text of `ptlab workload --list`. */
export function listWorkloads(): string {
  const out: string[] = [];
  for (const w of WORKLOADS.values()) {
    out.push(`${w.name}`, `  ${w.description}`, `  (${w.origin})`);
    const width = Math.max(...w.params.map((s) => s.name.length));
    for (const s of w.params) out.push(`    ${s.name.padEnd(width)}  ${describeParam(s)}, default ${formatParamValue(s, s.default)}: ${s.description}`);
    out.push("");
  }
  return out.join("\n");
}
