// Reading a scenario file for the commands: an unreadable file is an input
// error like any other (file:1:1, exit code 2).

import { readFileSync } from "node:fs";
import { parseScenario } from "../scenario/load.js";
import { type Scenario, ScenarioError } from "../scenario/types.js";

export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ScenarioError(file, 1, 1, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseScenario(text, file);
}
