// The explorer's catalogue of seeded races (scenarios/concurrency), for tests.

import { readdirSync, readFileSync } from "node:fs";
import { parseScenario } from "../src/scenario/load.js";
import type { Scenario } from "../src/scenario/types.js";

export const DIR = "scenarios/concurrency";

export const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml"))
  .sort();

export function load(f: string): Scenario {
  return parseScenario(readFileSync(`${DIR}/${f}`, "utf8"), `${DIR}/${f}`);
}

// An entry with a historical variant (or architecture) that breaks an invariant.
export function isSeeded(sc: Scenario): boolean {
  return Object.keys(sc.explore?.variant ?? {}).length > 0 || sc.explore?.arch !== undefined;
}
