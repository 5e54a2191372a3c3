// Worker thread of `ptlab hunt`: explores the cases and minimises the
// findings the main thread sends it. The main thread owns Ctrl-C and the
// deadline (a shared flag).

import { parentPort, workerData } from "node:worker_threads";
import { type HuntJob, type HuntReply, serveJob } from "./hunt.js";

const stop = new Int32Array(workerData.stop as SharedArrayBuffer);
parentPort?.on("message", (job: HuntJob) => {
  const reply: HuntReply = serveJob(job, stop);
  parentPort?.postMessage(reply);
});
