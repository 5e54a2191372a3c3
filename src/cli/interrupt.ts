// SIGINT and SIGTERM for the commands that print what they have so far
// (run, workload, compare, replay): the first signal asks the work to stop
// at its next step, which then prints its partial results and exits with
// 130; a second one exits at once (130), for a step that takes too long.

import type { Counters } from "../core/counters.js";
import type { Runner } from "../run/runner.js";

export interface Interrupt {
  /** Whether a signal came (polled by the work between steps). */
  stop: () => boolean;
  /** Lets the event loop run, so that a signal handler can. */
  pause: () => Promise<void>;
  /** The signal that came, or null. */
  signal: () => NodeJS.Signals | null;
  dispose: () => void;
}

export function onInterrupt(cmd: string): Interrupt {
  let got: NodeJS.Signals | null = null;
  const handler = (sig: NodeJS.Signals) => {
    if (got !== null) process.exit(130);
    got = sig;
    process.stderr.write(`\nptlab ${cmd}: stopping (${sig === "SIGINT" ? "Ctrl-C" : sig}); printing what was done so far (again to quit at once)\n`);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    stop: () => got !== null,
    pause: () => new Promise((resolve) => setImmediate(resolve)),
    signal: () => got,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

// A scenario run to its end as `run` and `workload` make it: stoppable
// between steps by a signal. `stopped` says where it stopped (null: it
// did not), `interrupted` is the part of --json output that says so.
export async function runInterruptible(
  r: Runner,
  cmd: string,
  cleanup: () => void,
): Promise<{
  totals: Counters;
  violations: string[];
  stoppedAt: { done: number; total: number } | null;
  stopped: string | null;
  interrupted: { interrupted?: { signal: NodeJS.Signals | null; steps_done: number; steps_total: number } };
}> {
  const intr = onInterrupt(cmd);
  let res: Awaited<ReturnType<Runner["runToEndAsync"]>>;
  try {
    res = await r.runToEndAsync(intr);
  } finally {
    cleanup();
    intr.dispose();
  }
  const at = res.stoppedAt;
  return {
    ...res,
    stopped: at !== null ? `${intr.signal()} after ${at.done} of ${at.total} steps` : null,
    interrupted: at !== null ? { interrupted: { signal: intr.signal(), steps_done: at.done, steps_total: at.total } } : {},
  };
}

// The line printed after a run's text output when a signal stopped it.
export function interruptedLine(stopped: string): string {
  return `INTERRUPTED by ${stopped}: the reports and totals are those so far (no teardown, no leak check)\n`;
}
