// --by-function and --folded FILE on the command line (run, workload, replay,
// compare): the option, the early check that FILE can be written, and the
// output. The profile itself is src/report/by-function.ts.

import { writeFileSync } from "node:fs";
import { InvalidArgumentError } from "commander";

export interface ByFunctionCliOptions {
  byFunction?: boolean;
  folded?: string;
}

// --folded FILE: a file name (not empty, not an option).
export function parseFoldedPath(v: string): string {
  if (v.trim() === "" || v.startsWith("-")) throw new InvalidArgumentError(`expected a file name for the folded stacks, got "${v}"`);
  return v;
}

// Whether the run must be profiled.
export function wantsProfile(o: ByFunctionCliOptions): boolean {
  return o.byFunction === true || o.folded !== undefined;
}

// Writes FILE: an error message, or null. Called with "" before the run, so
// that an unwritable path fails at once and not after a long run.
export function writeFolded(path: string, text: string): string | null {
  try {
    writeFileSync(path, text);
    return null;
  } catch (e) {
    return `--folded: cannot write "${path}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
}
