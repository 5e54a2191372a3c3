// Where the tests find ../shared (the recordings in traces/, herd's sample in
// herd/), and what they do when it is absent. ../shared is resolved from the
// project root (the directory holding package.json), not from the working
// directory or an absolute path, so the tests read the same files from any
// clone or worktree and from any directory `node --test` is started in.
//
// An absent file skips the tests that read it, with the reason, unless
// PTLAB_REQUIRE_TRACES=1 (set by .ci/run): then it is a failure.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function projectRoot(): string {
  // This file runs as dist/test/shared-path.js; walk up to package.json.
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json"))) {
    const up = dirname(d);
    if (up === d) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    d = up;
  }
  return d;
}

export const PROJECT_ROOT = projectRoot();
export const SHARED = join(PROJECT_ROOT, "..", "shared");

// A path under ../shared, e.g. sharedPath("traces", "gcc-python.strace").
export function sharedPath(...parts: string[]): string {
  return join(SHARED, ...parts);
}

// Why a test reading these paths cannot run: undefined when they all exist,
// else the reason to pass to t.skip() or a `skip` option. Under
// PTLAB_REQUIRE_TRACES=1 an absent path throws instead, so the test (or the
// suite, when called in a describe() callback) fails.
export function sharedMissing(...paths: string[]): string | undefined {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) return undefined;
  const why = `${missing.join(", ")} absent (../shared beside the project root)`;
  if (process.env.PTLAB_REQUIRE_TRACES === "1") throw new Error(`PTLAB_REQUIRE_TRACES=1: ${why}`);
  return why;
}
