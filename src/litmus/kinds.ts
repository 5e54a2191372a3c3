// herd's kinds files (one `NAME KIND` per line, e.g. from `herd7 -kinds`)
// and the comparison of ptlab's verdicts with them.
// No Node APIs.

import { type Checked, check, type Verdict } from "./explore.js";
import { parseLitmus } from "./parse.js";
import { LitmusError, type LitmusTest, LitmusUnsupported } from "./types.js";

const KIND_WORDS: Record<string, Verdict> = {
  Allowed: "Allowed",
  Allow: "Allowed",
  Forbidden: "Forbidden",
  Forbid: "Forbidden",
  Required: "Required",
  Require: "Required",
};

export function parseKinds(text: string, file: string): Map<string, Verdict> {
  const out = new Map<string, Verdict>();
  text.split(/\r?\n/).forEach((line, i) => {
    const body = line.replace(/#.*$/, "");
    if (body.trim() === "") return;
    const m = /^(\s*)(\S+)(\s+)(\S+)\s*$/.exec(body);
    if (!m) throw new LitmusError(file, i + 1, 1, `expected "NAME KIND", got "${line.trim()}"`);
    const kind = KIND_WORDS[m[4]!];
    if (kind === undefined)
      throw new LitmusError(file, i + 1, m[1]!.length + m[2]!.length + m[3]!.length + 1, `expected Allowed, Forbidden or Required, got "${m[4]}"`);
    out.set(m[2]!, kind);
  });
  return out;
}

export type Outcome = "agree" | "disagree" | "outside" | "unsupported" | "unrecorded";

export interface Row {
  file: string;
  name: string;
  recorded: Verdict | null;
  test: LitmusTest | null;
  checked: Checked | null;
  unsupported: string | null;
  outcome: Outcome;
  ms: number; // parse + analysis + search, measured by the caller's clock
}

/** Runs one test's text. Bad syntax throws LitmusError; unsupported features give a row. */
export function runOne(text: string, file: string, kinds: Map<string, Verdict> | null, now: () => number): Row {
  const t0 = now();
  let test: LitmusTest | null = null;
  let checked: Checked | null = null;
  let unsupported: string | null = null;
  try {
    test = parseLitmus(text, file);
    checked = check(test);
  } catch (e) {
    if (!(e instanceof LitmusUnsupported)) throw e;
    unsupported = e.message;
  }
  const name = test?.name ?? headerName(text) ?? file;
  const recorded = kinds?.get(name) ?? null;
  let outcome: Outcome;
  if (unsupported !== null) outcome = "unsupported";
  else if (checked!.outside !== null) outcome = "outside";
  else if (recorded === null) outcome = "unrecorded";
  else outcome = checked!.result.verdict === recorded ? "agree" : "disagree";
  return { file, name, recorded, test, checked, unsupported, outcome, ms: now() - t0 };
}

function headerName(text: string): string | null {
  return /^\s*AArch64\s+(\S+)/.exec(text)?.[1] ?? null;
}

export interface Summary {
  agree: number;
  disagree: number;
  outside: number;
  unsupported: number;
  unrecorded: number;
  total: number;
}

export function summarise(rows: Row[]): Summary {
  const s: Summary = { agree: 0, disagree: 0, outside: 0, unsupported: 0, unrecorded: 0, total: rows.length };
  for (const r of rows) s[r.outcome]++;
  return s;
}

export function summaryLine(s: Summary): string {
  const inside = s.agree + s.disagree;
  const pct = inside === 0 ? "-" : `${((100 * s.agree) / inside).toFixed(1)}%`;
  return `${s.total} tests: agree ${s.agree}, disagree ${s.disagree}, outside the model ${s.outside}, unsupported ${s.unsupported}${s.unrecorded > 0 ? `, no recorded verdict ${s.unrecorded}` : ""}; agreement ${s.agree}/${inside} (${pct}) of the tests the model decides`;
}

export function formatTable(rows: Row[], withTime: boolean): string {
  const w = Math.max(4, ...rows.map((r) => r.name.length));
  const head = `${"test".padEnd(w)}  ${"herd".padEnd(9)}  ${"ptlab".padEnd(11)}  ${withTime ? `${"ms".padStart(7)}  ` : ""}result`;
  const lines = rows.map((r) => {
    const v = r.checked === null ? "-" : r.checked.outside !== null ? `(${r.checked.result.verdict})` : r.checked.result.verdict;
    const why = r.outcome === "outside" ? `outside: ${r.checked!.outside}` : r.outcome === "unsupported" ? `unsupported: ${r.unsupported}` : r.outcome;
    return `${r.name.padEnd(w)}  ${(r.recorded ?? "-").padEnd(9)}  ${v.padEnd(11)}  ${withTime ? `${r.ms.toFixed(1).padStart(7)}  ` : ""}${why}`;
  });
  return [head, ...lines].join("\n");
}
