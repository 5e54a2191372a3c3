// `ptlab ui [FILE]`: serves the web view (src/ui) on loopback and prints its
// URL; the model runs in the browser. Ctrl-C (or SIGTERM) stops the server
// and the command ends with exit code 0. With --export FILE.html it writes
// the page as one offline file instead.

import { readFileSync, writeFileSync } from "node:fs";
import { parseScenario } from "../scenario/load.js";
import { ScenarioError } from "../scenario/types.js";
import { pageHtml } from "../ui/page.js";
import { BUNDLE, BundleMissing, isLoopback, startUiServer } from "../ui/server.js";
import { UsageError } from "./explore.js";
import { resolveScenario } from "./load.js";

export interface UiOpts {
  port: number;
  host?: string;
  export?: string; // write one offline HTML file instead of serving
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
  if (o.export !== undefined) return exportPage(o.export, initial);
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

// --export FILE: the page with the bundle and the scenario inside, for a
// mail or a bug report; it needs no server and no network.
function exportPage(out: string, initial: { file: string; text: string }): number {
  let bundle: string;
  try {
    bundle = readFileSync(BUNDLE, "utf8");
  } catch {
    throw new UsageError(`the web view's bundle ${BUNDLE} is missing: run \`npm run build\``);
  }
  const html = pageHtml({ bundle, initial });
  try {
    writeFileSync(out, html);
  } catch (e) {
    throw new UsageError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  process.stdout.write(`ptlab ui: wrote ${out} (${html.length} bytes, ${initial.file} in the editor; opens offline)\n`);
  return 0;
}
