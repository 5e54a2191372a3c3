// Reading a scenario file for the commands: an unreadable file is an input
// error like any other (file:1:1, exit code 2). A name that is not a file
// but names a built-in scenario (scenarios/**/NAME.yaml of this install,
// e.g. `default`, `k-mremap-batching-write`) is that scenario.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseScenario } from "../scenario/load.js";
import { type Scenario, ScenarioError } from "../scenario/types.js";

// scenarios/ beside dist/ (a clone, or an install: package.json "files").
const BUILTIN = fileURLToPath(new URL("../../../scenarios/", import.meta.url));

// Every built-in scenario: [name, path], sorted by path.
export function builtinScenarios(): [string, string][] {
  const out: [string, string][] = [];
  const walk = (dir: string) => {
    let ents: import("node:fs").Dirent[];
    try {
      ents = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".yaml")) out.push([e.name.slice(0, -5), p]);
    }
  };
  walk(BUILTIN);
  return out;
}

// The file a command argument names: the path itself when it exists or
// looks like a path, else the built-in scenario of that name.
export function resolveScenario(arg: string): string {
  if (existsSync(arg) || arg.includes("/") || arg.endsWith(".yaml")) return arg;
  const hits = builtinScenarios().filter(([n]) => n === arg);
  if (hits.length === 1) return (hits[0] as [string, string])[1];
  if (hits.length > 1)
    throw new ScenarioError(arg, 1, 1, `"${arg}" names several built-in scenarios: ${hits.map(([, p]) => relative(BUILTIN, p)).join(", ")}; give the path`);
  throw new ScenarioError(arg, 1, 1, "cannot read file: no such file, and no built-in scenario of that name (`ptlab scenarios` lists them)");
}

export function loadScenario(arg: string): Scenario {
  const file = resolveScenario(arg);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ScenarioError(file, 1, 1, `cannot read file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseScenario(text, file);
}

// `ptlab scenarios`: name, folder and the first line of the description.
export function listScenarios(): string {
  const rows: string[] = [];
  for (const [name, p] of builtinScenarios()) {
    const rel = relative(BUILTIN, p);
    let desc = "";
    try {
      const sc = parseScenario(readFileSync(p, "utf8"), p);
      desc = (sc.description ?? "").replace(/\s+/g, " ").trim();
    } catch {
      desc = "(does not load)";
    }
    if (desc.length > 100) desc = `${desc.slice(0, 97)}...`;
    rows.push(`${name.padEnd(36)} ${rel.padEnd(52)} ${desc}`);
  }
  return `${rows.join("\n")}\n`;
}
