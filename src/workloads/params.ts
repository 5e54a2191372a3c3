// Workload parameters: declarations with defaults and ranges, parsing of
// `--param key=value` strings, and the error every bad value turns into.
// No Node APIs (a web UI can list and build workloads too).

export type ParamValue = number | string | boolean;
export type Params = Record<string, ParamValue>;

interface ParamBase {
  name: string;
  description: string;
}
export interface IntParam extends ParamBase {
  kind: "int";
  default: number;
  min: number;
  max: number;
}
// A size in bytes, written like the scenario format: 4096, 4K, 2M, 1G, 1.5M.
export interface SizeParam extends ParamBase {
  kind: "size";
  default: number;
  min: number;
  max: number;
  multipleOf: number;
}
export interface EnumParam extends ParamBase {
  kind: "enum";
  default: string;
  values: readonly string[];
}
export interface BoolParam extends ParamBase {
  kind: "bool";
  default: boolean;
}
export type ParamSpec = IntParam | SizeParam | EnumParam | BoolParam;

// Bad workload name, parameter or configuration: the CLI prints the message on
// one line and exits with code 2.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
const UNITS: Record<string, number> = { "": 1, k: KiB, m: MiB, g: GiB, t: 1024 * GiB };

/** Parses "4096", "4K", "2M", "1.5G", "0x1000"; undefined if malformed. */
export function parseSize(text: string): number | undefined {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t.slice(2), 16);
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(t);
  if (!m) return undefined;
  const v = Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** "4096" -> "4K", 2097152 -> "2M": the shortest exact binary-unit form. */
export function formatSize(bytes: number): string {
  for (const [u, n] of [
    ["T", 1024 * GiB],
    ["G", GiB],
    ["M", MiB],
    ["K", KiB],
  ] as const)
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${u}`;
  return String(bytes);
}

export function formatParamValue(spec: ParamSpec, v: ParamValue): string {
  return spec.kind === "size" ? formatSize(v as number) : String(v);
}

/** A one-line description of what a parameter accepts. */
export function describeParam(spec: ParamSpec): string {
  switch (spec.kind) {
    case "int":
      return `integer ${spec.min}..${spec.max}`;
    case "size":
      return `size ${formatSize(spec.min)}..${formatSize(spec.max)}${spec.multipleOf > 1 ? `, a multiple of ${formatSize(spec.multipleOf)}` : ""}`;
    case "enum":
      return spec.values.join("|");
    case "bool":
      return "true|false";
  }
}

function parseValue(workload: string, spec: ParamSpec, raw: string): ParamValue {
  const bad = () => new UsageError(`workload ${workload}: parameter ${spec.name}: expected ${describeParam(spec)}, got "${raw}"`);
  switch (spec.kind) {
    case "int": {
      if (!/^-?\d+$/.test(raw)) throw bad();
      const n = Number(raw);
      if (n < spec.min || n > spec.max) throw bad();
      return n;
    }
    case "size": {
      const n = parseSize(raw);
      if (n === undefined || n < spec.min || n > spec.max || n % spec.multipleOf !== 0) throw bad();
      return n;
    }
    case "enum":
      if (!spec.values.includes(raw)) throw bad();
      return raw;
    case "bool":
      if (raw === "true" || raw === "on") return true;
      if (raw === "false" || raw === "off") return false;
      throw bad();
  }
}

/** Splits "key=value" (the value may contain "="). */
export function splitParam(text: string): [string, string] {
  const i = text.indexOf("=");
  if (i <= 0) throw new UsageError(`expected --param KEY=VALUE, got "${text}"`);
  return [text.slice(0, i), text.slice(i + 1)];
}

/** Defaults, overridden by the given raw values; unknown keys and bad values are UsageErrors. */
export function resolveParams(workload: string, specs: readonly ParamSpec[], raw: Readonly<Record<string, string>>): Params {
  const out: Params = {};
  for (const s of specs) out[s.name] = s.default;
  for (const [k, v] of Object.entries(raw)) {
    const spec = specs.find((s) => s.name === k);
    if (spec === undefined)
      throw new UsageError(`workload ${workload}: unknown parameter "${k}" (expected one of: ${specs.map((s) => s.name).join(", ") || "none"})`);
    out[k] = parseValue(workload, spec, v);
  }
  return out;
}
