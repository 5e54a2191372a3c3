// A generated hunt case: a scenario as plain data (machine, processes,
// set-up steps, concurrent steps), rendered as the YAML scenario file a
// person can read, keep and pass to `ptlab explore`. The loader parses that
// text, so what is explored and what is written out are the same bytes.
// No Node APIs.

export type Arg = string | number | boolean | string[];

export interface StepDoc {
  op: string;
  args: Record<string, Arg>;
}

export interface MachineDoc {
  arch: "x86_64" | "arm64";
  cpus: number;
  thp: "never" | "madvise" | "always";
  thpUseZeroPage: boolean;
  ptReclaim: boolean;
  nowaitAllocFails: boolean;
  mthp: string[]; // sizes enabled "always", e.g. ["64K"]
  swap?: number; // bytes of the swap device
  memory?: number; // machine.memory, bytes
  headroom?: number; // machine.headroom, bytes
  arm64?: { granule: 4 | 16 | 64; hafdbs: boolean; tlbiRange: boolean; bbml2NoAbort: boolean };
  variants: Record<string, string>;
}

export interface ProcDoc {
  name: string;
  threads: { name: string; cpu: number }[];
}

export interface Case {
  name: string;
  description: string;
  machine: MachineDoc;
  processes: ProcDoc[];
  steps: StepDoc[];
  concurrent: StepDoc[];
  kinds?: string[]; // the swarm kinds its concurrent steps use (not rendered)
  // Where in its choice sequence each concurrent step's own sequence is
  // forked (not rendered): a mutation can redraw one of them alone.
  concurrentWords?: number[];
  // The yes/no configuration features drawn, and those drawn yes (not rendered).
  features?: { drawn: string[]; on: string[] };
  preemptions: number;
  maxSteps: number;
  ignore?: string[]; // explore.ignore
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

// "64K", "2M", "1G" where exact, else bytes.
export function sizeText(n: number): string {
  if (n === 0) return "0";
  if (n % (1024 * MiB) === 0) return `${n / (1024 * MiB)}G`;
  if (n % MiB === 0) return `${n / MiB}M`;
  if (n % KiB === 0) return `${n / KiB}K`;
  return String(n);
}

const SIZE_ARGS = new Set(["size", "offset", "length", "stride", "new_size", "delta"]);

function argText(k: string, v: Arg): string {
  if (Array.isArray(v)) return `[${v.join(", ")}]`;
  if (typeof v === "number") {
    if (k === "addr") return `0x${v.toString(16)}`;
    if (SIZE_ARGS.has(k)) return sizeText(v);
    return String(v);
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  // Names are generated from [a-z0-9.]; values like "off" or "on" would be
  // YAML 1.1 booleans to some readers: quote what is not a plain word.
  return /^[A-Za-z][A-Za-z0-9_.-]*$/.test(v) && !/^(on|off|yes|no|true|false|null)$/i.test(v) ? v : JSON.stringify(v);
}

export function stepText(s: StepDoc): string {
  const parts = Object.entries(s.args).map(([k, v]) => `${k}: ${argText(k, v)}`);
  return `${s.op}: { ${parts.join(", ")} }`;
}

export function machineText(m: MachineDoc): string {
  const kv: string[] = [`arch: ${m.arch}`, `cpus: ${m.cpus}`, `thp: ${m.thp}`];
  if (!m.thpUseZeroPage) kv.push("thp_use_zero_page: false");
  if (!m.ptReclaim) kv.push("pt_reclaim: false");
  if (m.nowaitAllocFails) kv.push("nowait_alloc_fails: true");
  if (m.swap !== undefined) kv.push(`swap: ${sizeText(m.swap)}`);
  if (m.memory !== undefined) kv.push(`memory: ${sizeText(m.memory)}`);
  if (m.headroom !== undefined) kv.push(`headroom: ${sizeText(m.headroom)}`);
  if (m.mthp.length > 0) kv.push(`mthp: { ${m.mthp.map((s) => `${s}: always`).join(", ")} }`);
  if (m.arch === "arm64" && m.arm64 !== undefined) {
    const a = m.arm64;
    kv.push(`arm64: { granule: ${a.granule}, hafdbs: ${a.hafdbs}, tlbi_range: ${a.tlbiRange}, bbml2_noabort: ${a.bbml2NoAbort} }`);
  }
  const vars = Object.entries(m.variants);
  if (vars.length > 0) kv.push(`variants: { ${vars.map(([k, v]) => `${k}: ${argText(k, v)}`).join(", ")} }`);
  return `{ ${kv.join(", ")} }`;
}

export function caseYaml(c: Case): string {
  const out: string[] = [];
  out.push(`name: ${c.name}`);
  out.push(`description: ${JSON.stringify(c.description)}`);
  out.push(`machine: ${machineText(c.machine)}`);
  out.push("processes:");
  for (const p of c.processes) out.push(`  - { name: ${p.name}, threads: [${p.threads.map((t) => `{ name: ${t.name}, cpu: ${t.cpu} }`).join(", ")}] }`);
  out.push(c.steps.length === 0 ? "steps: []" : "steps:");
  for (const s of c.steps) out.push(`  - ${stepText(s)}`);
  out.push("concurrent:");
  for (const s of c.concurrent) out.push(`  - ${stepText(s)}`);
  const ignore = c.ignore !== undefined && c.ignore.length > 0 ? `, ignore: [${c.ignore.join(", ")}]` : "";
  out.push(`explore: { preemptions: ${c.preemptions}, max_steps: ${c.maxSteps}${ignore} }`);
  return `${out.join("\n")}\n`;
}

export function cloneCase(c: Case): Case {
  return JSON.parse(JSON.stringify(c)) as Case;
}
