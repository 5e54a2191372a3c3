// Exhaustive search of a litmus test's executions on the machine of
// machine.ts: every interleaving of the CPUs' instructions together with
// every hardware move (TLB fill, eviction, TLBI completion) between them,
// depth first with a set of visited states (the state space of a test of a
// few instructions is small). The verdict follows herd's definitions from
// the set of final states: for exists / ~exists, Allowed if some final state
// satisfies the condition, else Forbidden; for forall, Required if every
// final state does, Allowed if some does, else Forbidden.
// No Node APIs.

import { Layout, low32 } from "./layout.js";
import { ALL_HW, allStopped, type Env, type HwOptions, hwSteps, initialState, type MState, RUNNING, stateKey, step } from "./machine.js";
import { analyseCpu, outsideReason } from "./scope.js";
import { type Atom, type LitmusTest, LitmusUnsupported, type Prop, regName } from "./types.js";

export type Verdict = "Allowed" | "Forbidden" | "Required";

export interface RunResult {
  verdict: Verdict;
  states: number; // distinct states visited
  finals: MState[]; // distinct final states (registers, memory, faults)
  positive: number; // final states satisfying the condition
}

export const DEFAULT_STATE_LIMIT = 2_000_000;

function finalKey(s: MState): string {
  return `${s.data.join(",")}|${s.pte.join(",")}|${s.faults.join(",")}|${s.cpus.map((c) => c.regs.join(",")).join("/")}`;
}

/** The test's verdict on the model, and why the model cannot decide it (null if it can). */
export interface Checked {
  outside: string | null;
  result: RunResult;
}

export function check(t: LitmusTest, hw: HwOptions = ALL_HW, limit = DEFAULT_STATE_LIMIT): Checked {
  const lay = new Layout(t);
  const facts = t.progs.map((_, c) => analyseCpu(t, lay, c));
  const env: Env = { t, lay, hw };
  return { outside: outsideReason(env, facts), result: explore(env, limit) };
}

export function explore(env: Env, limit = DEFAULT_STATE_LIMIT): RunResult {
  const t = env.t;
  const s0 = initialState(env);
  const seen = new Set<string>([stateKey(s0)]);
  const finals = new Map<string, MState>();
  const stack: MState[] = [s0];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (allStopped(s)) {
      const k = finalKey(s);
      if (!finals.has(k)) finals.set(k, s);
      continue;
    }
    const next: MState[] = [];
    s.cpus.forEach((cpu, c) => {
      if (cpu.st === RUNNING) next.push(step(env, s, c));
    });
    next.push(...hwSteps(env, s));
    for (const n of next) {
      const k = stateKey(n);
      if (seen.has(k)) continue;
      if (seen.size >= limit) throw new LitmusUnsupported(`more than ${limit} states`);
      seen.add(k);
      stack.push(n);
    }
  }
  const list = [...finals.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  const positive = list.filter((s) => evalProp(env, s, t.cond)).length;
  let verdict: Verdict;
  if (t.quant === "forall") verdict = positive === list.length ? "Required" : positive > 0 ? "Allowed" : "Forbidden";
  else verdict = positive > 0 ? "Allowed" : "Forbidden";
  return { verdict, states: seen.size, finals: list, positive };
}

function evalAtom(env: Env, s: MState, a: Atom): boolean {
  const lay = env.lay;
  switch (a.k) {
    case "reg": {
      const v = a.r.n === 31 ? 0 : s.cpus[a.cpu]!.regs[a.r.n]!;
      return (a.r.w ? low32(v) : v) === lay.value(a.v);
    }
    case "mem": {
      const i = lay.index(a.loc);
      return a.pte ? s.pte[i] === lay.value(a.v, i) : s.data[i] === lay.value(a.v);
    }
    case "fault": {
      const at = a.label === null ? -1 : env.t.labels[a.cpu]!.get(a.label)!;
      const loc = a.loc === null ? -1 : lay.index(a.loc);
      return s.faults.some((f) => {
        const [c, pc, l] = f.split(":").map(Number);
        return c === a.cpu && (at < 0 || pc === at) && (loc < 0 || l === loc);
      });
    }
  }
}

export function evalProp(env: Env, s: MState, p: Prop): boolean {
  switch (p.k) {
    case "const":
      return p.v;
    case "atom":
      return evalAtom(env, s, p.a);
    case "not":
      return !evalProp(env, s, p.p);
    case "and":
      return p.ps.every((q) => evalProp(env, s, q));
    case "or":
      return p.ps.some((q) => evalProp(env, s, q));
  }
}

// A final state as herd prints it: the observed registers and locations,
// then the faults, e.g. "1:X7=1; x=0; fault(P1:L0,x);".
export function showFinal(t: LitmusTest, s: MState): string {
  const lay = new Layout(t);
  const parts: string[] = [];
  for (const o of t.observed) {
    if (o.k === "reg") parts.push(`${o.cpu}:${regName(o.r)}=${lay.show(o.r.n === 31 ? 0 : s.cpus[o.cpu]!.regs[o.r.n]!)}`);
    else {
      const i = lay.index(o.loc);
      parts.push(o.pte ? `pte_${o.loc}=${lay.show(s.pte[i]!)}` : `${o.loc}=${lay.show(s.data[i]!)}`);
    }
  }
  for (const f of s.faults) {
    const [c, pc, l] = f.split(":").map(Number) as [number, number, number];
    let label = `#${pc}`;
    for (const [name, at] of t.labels[c]!) if (at === pc) label = name;
    parts.push(`fault(P${c}:${label},${t.locs[l]})`);
  }
  return parts.map((p) => `${p};`).join(" ");
}
