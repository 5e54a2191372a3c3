// `ptlab ui [FILE]`: serves the web view (src/ui) on loopback and prints its
// URL; the model runs in the browser. Ctrl-C (or SIGTERM) stops the server
// and the command ends with exit code 0.

import { readFileSync } from "node:fs";
import { parseScenario } from "../scenario/load.js";
import { ScenarioError } from "../scenario/types.js";
import { BundleMissing, isLoopback, startUiServer } from "../ui/server.js";
import { UsageError } from "./explore.js";
import { resolveScenario } from "./load.js";

export interface UiOpts {
  port: number;
  host?: string;
}

// The scenario the editor opens with: FILE as given (a file that does not
// load is still opened: the editor shows its error), else `default`.
function initialScenario(arg: string | undefined): { file: string; text: string } {
  const file = resolveScenario(arg ?? "default");
  try {
    return { file: arg === undefined ? "default.yaml" : file, text: readFileSync(file, "utf8") };
  } catch (e) {
    throw new ScenarioError(file, 1, 1, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

export async function cmdUi(arg: string | undefined, o: UiOpts): Promise<number> {
  const initial = initialScenario(arg);
  try {
    parseScenario(initial.text, initial.file);
  } catch (e) {
    if (!(e instanceof ScenarioError)) throw e;
    process.stderr.write(`note: ${e.format()} (opened in the editor anyway)\n`);
  }
  const host = o.host ?? "127.0.0.1";
  let ui: Awaited<ReturnType<typeof startUiServer>>;
  try {
    ui = await startUiServer({ host, port: o.port, initial });
  } catch (e) {
    if (e instanceof BundleMissing) throw new UsageError(e.message);
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined) throw new UsageError(`cannot listen on ${host} port ${o.port}: ${code}`);
    throw e;
  }
  if (!isLoopback(host))
    process.stderr.write(`warning: listening on ${host}, not loopback: anyone who reaches it can read ${initial.file} and the built-in scenarios\n`);
  process.stdout.write(`ptlab ui: ${ui.url}\n  editing ${initial.file}; Ctrl-C stops\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await ui.close();
  process.stdout.write("ptlab ui: stopped\n");
  return 0;
}
