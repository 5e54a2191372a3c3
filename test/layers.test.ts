// The layering of src/core (docs/style: dependencies point one way). Value
// imports only: `import type` is erased and orders nothing at run time.
// - Nothing in core imports from outside core, or a Node API.
// - The invariant checks (check.ts) are reached from core only through its
//   front door (index.ts): kernel paths report through the event stream.
// - hw/ (TLBs, the page walker) calls no mm/ code: the fault path is entered
//   from arch/fault.ts.
// - The only import cycles are between mm/ files, which call each other as
//   mm/memory.c, mm/rmap.c and mm/huge_memory.c do; none runs through
//   machine.ts, check.ts, events.ts, sync.ts, hw/ or arch/.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { PROJECT_ROOT } from "./shared-path.js";

const CORE = join(PROJECT_ROOT, "src", "core");

function files(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

// Value imports and re-exports of a source file: [specifier, resolved path].
export function valueImports(file: string): { spec: string; path: string }[] {
  const src = readFileSync(file, "utf8");
  const out: { spec: string; path: string }[] = [];
  const re = /^(?:import|export)\s+(type\s+)?([^;]*?)\s*from\s+"([^"]+)"/gms;
  for (let m = re.exec(src); m !== null; m = re.exec(src)) {
    if (m[1]) continue;
    const names = (m[2] as string).trim();
    const inner = /^\{([^}]*)\}$/.exec(names);
    if (
      inner &&
      (inner[1] as string)
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "")
        .every((s) => s.startsWith("type "))
    )
      continue;
    const spec = m[3] as string;
    out.push({ spec, path: spec.startsWith(".") ? resolve(dirname(file), spec.replace(/\.js$/, ".ts")) : spec });
  }
  return out;
}

// Strongly connected components of more than one file (Tarjan).
function cycles(graph: Map<string, string[]>): string[][] {
  let n = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, n);
    low.set(v, n);
    n++;
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) out.push(c.map((f) => relative(CORE, f)).sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

const coreFiles = files(CORE);
const graph = new Map(coreFiles.map((f) => [f, valueImports(f).map((i) => i.path)]));

test("layers: core imports nothing from outside core and no Node API", () => {
  const bad: string[] = [];
  for (const f of coreFiles)
    for (const i of valueImports(f)) if (!i.spec.startsWith(".") || relative(CORE, i.path).startsWith("..")) bad.push(`${relative(CORE, f)} imports ${i.spec}`);
  assert.deepEqual(bad, []);
});

test("layers: only core's front door imports the checks", () => {
  const importers = coreFiles.filter((f) => valueImports(f).some((i) => i.path === join(CORE, "check.ts"))).map((f) => relative(CORE, f));
  assert.deepEqual(importers, ["index.ts"]);
});

test("layers: the hardware calls no mm code", () => {
  const bad: string[] = [];
  for (const f of coreFiles.filter((f) => relative(CORE, f).startsWith("hw/")))
    for (const i of valueImports(f)) {
      const r = relative(CORE, i.path);
      // pgtable.ts: the table store and its lifecycle constants, no kernel path.
      if (r.startsWith("mm/") && r !== "mm/pgtable.ts") bad.push(`${relative(CORE, f)} imports ${r}`);
    }
  assert.deepEqual(bad, []);
});

test("layers: import cycles stay inside mm/", () => {
  const found = cycles(graph);
  for (const c of found)
    assert.ok(
      c.every((f) => f.startsWith("mm/")),
      `a cycle leaves mm/: ${c.join(" ")}`,
    );
  // The detector finds what it should: a made-up edge from check.ts back
  // to a kernel path closes a cycle through it.
  const g2 = new Map(graph);
  g2.set(join(CORE, "check.ts"), [...(graph.get(join(CORE, "check.ts")) ?? []), join(CORE, "mm", "memory.ts")]);
  g2.set(join(CORE, "mm", "memory.ts"), [...(graph.get(join(CORE, "mm", "memory.ts")) ?? []), join(CORE, "check.ts")]);
  assert.ok(cycles(g2).some((c) => c.includes("check.ts")));
});
