// Progress of long model runs, on stderr (stdout stays clean for tables and
// --json): a cli-progress bar on a terminal, plain lines every 10% otherwise.
// Short runs (below MIN_STEPS executed steps) show nothing.

import cliProgress from "cli-progress";

export const MIN_STEPS = 2000;

export interface Progress {
  /**
   * The Runner's onStep hook for one run, named `label`; `unit` names what
   * is counted (steps, or the bytes of a trace) and `min` the total below
   * which nothing is shown.
   */
  run(label: string, unit?: string, min?: number): (done: number, total: number) => void;
  stop(): void;
}

export function createProgress(opts: { enabled: boolean; tty?: boolean; stream?: NodeJS.WriteStream } = { enabled: true }): Progress {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? stream.isTTY === true;
  if (!opts.enabled) return { run: () => () => {}, stop: () => {} };
  let bar: cliProgress.SingleBar | null = null;
  return {
    run(label, unit = "steps", min = MIN_STEPS) {
      let started = false;
      let lastTenth = -1;
      return (done, total) => {
        if (total < min) return;
        if (tty) {
          if (!started) {
            bar?.stop();
            bar = new cliProgress.SingleBar(
              {
                stream,
                format: `${label.replace(/[{}]/g, "")} [{bar}] {percentage}% | {value}/{total} ${unit} | ETA {eta}s`,
                hideCursor: true,
                clearOnComplete: false,
              },
              cliProgress.Presets.shades_classic,
            );
            bar.start(total, 0);
            started = true;
          }
          // Redraws are throttled by cli-progress; updating every 64 steps keeps the hook cheap.
          if ((done & 63) === 0 || done === total) bar?.update(done);
          if (done === total) {
            bar?.stop();
            bar = null;
          }
        } else {
          const tenth = Math.floor((done * 10) / total);
          if (tenth !== lastTenth && (tenth > 0 || !started)) {
            started = true;
            lastTenth = tenth;
            stream.write(`ptlab: ${label}: ${tenth * 10}% (${done}/${total} ${unit})\n`);
          }
        }
      };
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
