// The web view's HTTP server (`ptlab ui`): the page, the browser bundle
// (dist/ui/app.js, built by `npm run build` with esbuild), the scenario
// named on the command line and the built-in scenarios' texts. It serves
// nothing else: the model runs in the browser. Bound to loopback unless the
// caller asks otherwise; then requests must name the server's own host
// (a DNS-rebinding page cannot read the scenario through it).

import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { builtinScenarios } from "../cli/load.js";
import { pageHtml } from "./page.js";

// dist/src/ui/server.js -> dist/ui/app.js
export const BUNDLE = fileURLToPath(new URL("../../ui/app.js", import.meta.url));

export interface UiServerOptions {
  host: string;
  port: number; // 0: the OS picks a free one
  initial: { file: string; text: string };
  bundle?: string; // path of the browser bundle (default BUNDLE)
}

export interface UiServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export class BundleMissing extends Error {}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  res.end(head ? undefined : body);
}

const json = (res: ServerResponse, status: number, v: unknown, head: boolean) => send(res, status, "application/json; charset=utf-8", JSON.stringify(v), head);

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const bundlePath = o.bundle ?? BUNDLE;
  let bundle: Buffer;
  try {
    bundle = readFileSync(bundlePath);
  } catch {
    throw new BundleMissing(`the web view's bundle ${bundlePath} is missing: run \`npm run build\``);
  }
  const html = pageHtml();
  // Host headers accepted on loopback (null: any, --host elsewhere).
  let hostOk: Set<string> | null = new Set();
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) return send(res, 405, "text/plain; charset=utf-8", "only GET and HEAD\n", false);
    if (hostOk !== null && !hostOk.has(req.headers.host ?? "")) return send(res, 421, "text/plain; charset=utf-8", "unexpected Host header\n", head);
    const url = new URL(req.url ?? "/", "http://x");
    switch (url.pathname) {
      case "/":
      case "/index.html":
        return send(res, 200, "text/html; charset=utf-8", html, head);
      case "/app.js":
        return send(res, 200, "text/javascript; charset=utf-8", bundle, head);
      case "/api/initial":
        return json(res, 200, o.initial, head);
      case "/api/scenarios":
        return json(
          res,
          200,
          builtinScenarios().map(([name]) => name),
          head,
        );
      case "/api/scenario": {
        const name = url.searchParams.get("name") ?? "";
        const hit = builtinScenarios().find(([n]) => n === name);
        if (hit === undefined) return json(res, 404, { error: `no built-in scenario named "${name}"` }, head);
        return json(res, 200, { file: `${name}.yaml`, text: readFileSync(hit[1], "utf8") }, head);
      }
      default:
        return send(res, 404, "text/plain; charset=utf-8", "not found\n", head);
    }
  };
  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : o.port;
  const hostPart = o.host.includes(":") ? `[${o.host}]` : o.host;
  hostOk = !isLoopback(o.host) ? null : new Set([`${hostPart}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
  return {
    url: `http://${hostPart}:${port}/`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// Loopback addresses: the only ones `ptlab ui` binds without a warning.
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
