// SIGINT and SIGTERM for the commands that print what they have so far
// (run, workload, compare, replay): the first signal asks the work to stop
// at its next step, which then prints its partial results and exits with
// 130; a second one exits at once (130), for a step that takes too long.

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
