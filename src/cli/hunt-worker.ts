// Worker thread of `ptlab hunt`: explores the cases and minimises the
// findings the main thread sends it. The main thread owns Ctrl-C and the
// deadline (a shared flag).

import { parentPort, workerData } from "node:worker_threads";
import { siteTable } from "../core/sync.js";
import { outcomeTable } from "../hunt/search.js";
import { type HuntJob, type HuntReply, serveJob } from "./hunt.js";

const stop = new Int32Array(workerData.stop as SharedArrayBuffer);
let first = true;
parentPort?.on("message", (job: HuntJob) => {
  const reply: HuntReply = serveJob(job, stop);
  if (first) reply.sites = siteTable();
  first = false;
  reply.outcomes = outcomeTable();
  parentPort?.postMessage(reply);
});
