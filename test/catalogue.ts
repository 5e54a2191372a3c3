// The explorer's catalogue of seeded races (scenarios/concurrency), for tests.

import { readdirSync, readFileSync } from "node:fs";
import { parseScenario } from "../src/scenario/load.js";
import type { Scenario } from "../src/scenario/types.js";
import { siteName } from "../src/core/sync.js";
import type { Execution } from "../src/explore/execution.js";

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

// An explore onStart hook counting the decisions that chose a thread
// stopped at a site whose name contains `part` (that the search reached it).
export function siteHits(part: string): { onStart: (x: Execution) => void; hits: () => number } {
  let n = 0;
  return {
    onStart: (x: Execution) => {
      x.onDecide = (c) => {
        const t = x.threads[c] as { site: number } | undefined;
        if (t !== undefined && siteName(t.site).includes(part)) n++;
      };
    },
    hits: () => n,
  };
}
