// A built-in workload: a parameterised generator of Scenario ASTs.

import type { Scenario } from "../scenario/types.js";
import type { ParamSpec, Params } from "./params.js";

// Machine settings a scenario file cannot express yet (mTHP sizes), passed to
// the Runner as RunOptions. Kept structurally compatible with RunOptions.
export interface WorkloadRunOptions {
  mthp?: Record<number, "always" | "madvise" | "inherit">;
}

export interface WorkloadDef {
  name: string;
  description: string;
  // Where the workload comes from (benchmark source, cover letter).
  origin: string;
  params: readonly ParamSpec[];
  build(p: Params): Scenario;
  runOptions?(p: Params): WorkloadRunOptions;
}
