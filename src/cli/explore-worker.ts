// Worker thread of `ptlab explore`: explores one sub-shard and posts
// progress and its result, or shrinks a counterexample (job.shrink). The
// main thread owns Ctrl-C: a shared flag for a search, terminate() for a
// shrink, so that the counterexample already found is printed either way.

import { parentPort, workerData } from "node:worker_threads";
import { explore, shrink } from "../explore/explore.js";
import { ScenarioError } from "../scenario/types.js";
import { type ExploreJob, exploreConfig } from "./explore.js";

const job = workerData as ExploreJob;
if (job.shrink !== undefined) {
  const s = shrink(exploreConfig(job), job.shrink.schedule, job.shrink.invariant);
  parentPort?.postMessage({ kind: "shrunk", schedule: s.schedule, complete: s.complete });
  process.exit(0);
}
const stop = new Int32Array(job.stop);
let last = 0;
let res: ReturnType<typeof explore>;
try {
  res = run();
} catch (e) {
  if (!(e instanceof ScenarioError)) throw e;
  parentPort?.postMessage({ kind: "error", file: e.file, line: e.line, col: e.col, message: e.message });
  process.exit(0);
}
function run() {
  const cfg = exploreConfig(job);
  return explore({
    ...cfg,
    shrink: false,
    recycle: true,
    shouldStop: () => Atomics.load(stop, 0) !== 0,
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 250) return;
      last = now;
      parentPort?.postMessage({ kind: "progress", sub: job.sub, ...p });
    },
  });
}
parentPort?.postMessage({
  kind: "result",
  sub: job.sub,
  executions: res.executions,
  steps: res.steps,
  truncated: res.truncated,
  pruned: res.pruned,
  sleepBlocked: res.sleepBlocked,
  states: res.states,
  complete: res.complete,
  stopped: res.stopped,
  rank: res.rank,
  schedule: res.counterexample?.schedule ?? null,
  invariant: res.counterexample?.invariant ?? null,
});
