// Validation of the web view's editor text: the scenario loader the CLI uses
// (scenario/load.ts), its one ScenarioError turned into data the view shows
// inline as `file:line:col: message`. No Node or DOM APIs.

import { parseScenario } from "../scenario/load.js";
import { type Scenario, ScenarioError } from "../scenario/types.js";

export interface EditorError {
  file: string;
  line: number;
  col: number;
  message: string;
  /** `file:line:col: message`, as the CLI prints it. */
  text: string;
}

export type Validation = { ok: true; scenario: Scenario } | { ok: false; error: EditorError };

export function validateScenario(text: string, file: string): Validation {
  try {
    return { ok: true, scenario: parseScenario(text, file) };
  } catch (e) {
    if (!(e instanceof ScenarioError)) throw e;
    return { ok: false, error: editorError(e) };
  }
}

export function editorError(e: ScenarioError): EditorError {
  return { file: e.file, line: e.line, col: e.col, message: e.message, text: e.format() };
}
