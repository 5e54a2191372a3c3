// Scenario loader: YAML text -> validated, normalised Scenario AST.
//
// Two passes over the YAML AST (not over plain JS values, so every error can
// name the exact line:column of the offending node):
//  1. structure: walk the mappings and lists, rejecting unknown and missing keys
//     and validating every leaf value with its zod schema from schema.ts;
//  2. meaning: walk the steps in document order, resolving thread and process
//     names (including children created by earlier forks) and building the AST.
// All errors found are collected and the first in document order is thrown as a
// single ScenarioError. Pure: no Node APIs, so this also runs in a browser.

import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, type Pair, parseDocument } from "yaml";
import type * as z from "zod";
import { VA_BITS_CHOICES, vaBitsChoicesText } from "../core/arch/arm64/pgtable.js";
import { anonMthpOrder, anonMthpRange } from "../core/geometry.js";
import { VARIANTS } from "../core/machine.js";
import {
  describeValue,
  exploreSchema,
  MAX_REPEAT,
  MAX_REPORTS,
  machineSchema,
  mthpKib,
  OPS,
  type Op,
  processSchema,
  scenarioSchema,
  stepArgs,
  threadSchema,
} from "./schema.js";
import { type MachineSpec, type MthpPolicy, type MmapFlag, type ProcessSpec, type Scenario, ScenarioError, type SourcePos, type Step } from "./types.js";

/** Parses and validates a scenario; throws exactly one ScenarioError on any bad input. */
export function parseScenario(text: string, file: string): Scenario {
  try {
    return new Loader(text, file).load();
  } catch (e) {
    if (e instanceof ScenarioError) throw e;
    if (e instanceof RangeError) throw new ScenarioError(file, 1, 1, "the document is nested too deeply");
    const detail = e instanceof Error ? e.message : String(e);
    throw new ScenarioError(file, 1, 1, `internal error while loading the scenario: ${detail}`);
  }
}

const MAX_ALIAS_EXPANSIONS = 1000;

const BAD: unique symbol = Symbol("bad");
type Bad = typeof BAD;

type Shape = Record<string, z.ZodType>;
type Custom = Record<string, (node: unknown, path: string) => unknown>;

/** A validated mapping: the values of valid keys (defaults filled in) and where each value was. */
interface Fields {
  values: Record<string, unknown>;
  pos: Record<string, SourcePos>;
  ok: boolean;
}

interface RawStep {
  op: Op;
  pos: SourcePos; // of the op key
  path: string; // e.g. "steps[3].mmap"
  args: Record<string, unknown>;
  argPos: Record<string, SourcePos>;
}

interface RawThread {
  name: string;
  cpu: number;
  namePos?: SourcePos;
  cpuPos?: SourcePos;
}
interface RawProcess {
  name: string;
  namePos?: SourcePos;
  threads?: RawThread[];
}

const isOp = (s: string): s is Op => (OPS as readonly string[]).includes(s);

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((k) => (typeof k === "number" ? `[${k}]` : `.${String(k)}`)).join("");
}

// ---------------------------------------------------------------------------
// Pass 1: structure

class Loader {
  private readonly lc = new LineCounter();
  private readonly doc: ReturnType<typeof parseDocument>;
  private readonly errors: { pos: SourcePos; message: string }[] = [];
  private aliases = 0;

  constructor(
    text: string,
    private readonly file: string,
  ) {
    // uniqueKeys: false: the library compares every key of a mapping with
    // every earlier one (60,000 keys took 33 s); duplicateKeys() finds the
    // same duplicates in one pass.
    this.doc = parseDocument(text, { lineCounter: this.lc, prettyErrors: false, version: "1.2", merge: false, uniqueKeys: false });
  }

  load(): Scenario {
    const syntax = [...this.doc.errors.map((e) => ({ offset: e.pos[0], message: e.message })), ...duplicateKeys(this.doc.contents)].sort(
      (a, b) => a.offset - b.offset,
    )[0];
    if (syntax) throw this.error(this.at(syntax.offset), `invalid YAML: ${syntax.message}`);
    const root = this.doc.contents;
    if (!isMap(root)) {
      const got = root ? this.kind(root) : "an empty document";
      throw this.error(this.pos(root), `expected a mapping with keys "name" and "steps" at the top level, got ${got}`);
    }

    const top = this.map(root, scenarioSchema.shape, "at top level", "", this.pos(root), {
      machine: (n, p) => {
        const f = this.map(n, machineSchema.shape, "in machine", p);
        return f.ok ? f.values : BAD;
      },
      processes: (n, p) => this.list(n, p, "process", 1, (item, ip) => this.process(item, ip)),
      steps: (n, p) => this.list(n, p, "step", 0, (item, ip) => this.step(item, ip), true),
      concurrent: (n, p) => this.list(n, p, "step", 1, (item, ip) => this.step(item, ip), true),
      explore: (n, p) => {
        const f = this.map(n, exploreSchema.shape, "in explore", p);
        return f.ok ? f.values : BAD;
      },
    });
    const v = top.values as {
      name?: string;
      description?: string;
      machine?: z.output<typeof machineSchema>;
      processes?: RawProcess[];
      steps?: RawStep[];
      concurrent?: RawStep[];
      explore?: z.output<typeof exploreSchema>;
    };

    // Pass 2, on whatever parts are valid, so that an error early in the
    // document is reported even if a later part is malformed.
    if (v.machine !== undefined) this.checkGranule(root, v.machine);
    if (v.machine !== undefined) this.checkVariants(root, v.machine.variants, ["machine", "variants"]);
    if (v.explore !== undefined) this.checkVariants(root, v.explore.variant, ["explore", "variant"]);
    const sem = new Semantics((pos, msg) => this.errors.push({ pos, message: msg }), v.machine?.cpus, this.pos(root));
    const processes = sem.declare(v.processes);
    const steps = sem.steps(v.steps ?? []);
    const concurrent = v.concurrent === undefined ? undefined : sem.steps(v.concurrent);
    for (const list of [v.steps, v.concurrent]) if (list !== undefined) checkUnrolled(list, (pos, msg) => this.errors.push({ pos, message: msg }));

    const first = this.errors.reduce<(typeof this.errors)[number] | undefined>(
      (best, e) => (!best || e.pos.line < best.pos.line || (e.pos.line === best.pos.line && e.pos.col < best.pos.col) ? e : best),
      undefined,
    );
    if (first) throw this.error(first.pos, first.message);

    const m = v.machine!;
    const mthp: Record<number, MthpPolicy> = {};
    for (const [size, pol] of Object.entries(m.mthp)) if (pol !== "never") mthp[mthpKib(size)] = pol;
    const a = m.arm64;
    const machine: MachineSpec = {
      arch: m.arch,
      arm64: { granule: a.granule, vaBits: a.va_bits, hafdbs: a.hafdbs, tlbiRange: a.tlbi_range, bbml2NoAbort: a.bbml2_noabort, asidBits: a.asid_bits },
      mthp,
      cpus: m.cpus,
      levels: m.levels,
      thp: m.thp,
      thpUseZeroPage: m.thp_use_zero_page,
      ptReclaim: m.pt_reclaim,
      variants: { ...m.variants },
      seed: m.seed,
      nowaitAllocFails: m.nowait_alloc_fails,
      ...(m.swap !== undefined ? { swapBytes: m.swap } : {}),
      // Only when set otherwise than the default: the spec is part of a
      // replay token's hash, and the tokens written before the key existed
      // must still replay.
      ...(m.page_cluster !== 3 ? { pageCluster: m.page_cluster } : {}),
      ...(m.memory !== undefined ? { memoryBytes: m.memory } : {}),
      ...(m.headroom !== undefined ? { headroomBytes: m.headroom } : {}),
    };
    const sc: Scenario = { file: this.file, name: v.name!, description: v.description!, machine, processes: processes!, steps };
    if (concurrent !== undefined) sc.concurrent = concurrent;
    const x = v.explore;
    if (x !== undefined)
      sc.explore = {
        preemptions: x.preemptions,
        maxSteps: x.max_steps,
        variant: { ...x.variant },
        ignore: [...x.ignore],
        ...(x.arch !== undefined ? { arch: x.arch } : {}),
        ...(x.expect !== undefined ? { expect: x.expect } : {}),
        // Absent when 0, so that replay tokens of scenarios without it keep their hash.
        ...(x.speculate > 0 ? { speculate: x.speculate } : {}),
      };
    return sc;
  }

  private process(node: unknown, path: string): RawProcess | Bad {
    const f = this.map(node, processSchema.shape, "in process", path, undefined, {
      threads: (n, p) =>
        this.list(n, p, "thread", 1, (t, tp) => {
          const tf = this.map(t, threadSchema.shape, "in thread", tp);
          const tv = tf.values as { name: string; cpu: number };
          return tf.ok ? { name: tv.name, cpu: tv.cpu, namePos: tf.pos.name, cpuPos: tf.pos.cpu } : BAD;
        }),
    });
    return f.ok ? { ...(f.values as { name: string; threads?: RawThread[] }), namePos: f.pos.name } : BAD;
  }

  private step(node: unknown, path: string): RawStep | Bad {
    const m = this.deref(node);
    if (m === BAD) return BAD;
    if (!isMap(m)) return this.fail(m, `${path}: expected a step like "- touch: { region: A }", got ${this.kind(m)}`);
    const [first, second] = m.items;
    if (!first) return this.fail(m, `${path}: empty step; expected one key naming the operation (one of: ${OPS.join(", ")})`);
    const op = this.key(first, m);
    if (op === BAD) return BAD;
    if (!isOp(op)) return this.fail(first.key, `${path}: unknown operation "${op}" (expected one of: ${OPS.join(", ")})`);
    const shape: Shape = stepArgs[op].shape;
    if (second) {
      const extra = this.deref(second.key);
      const name = isScalar(extra) ? String(extra.value) : "?";
      const hint = Object.hasOwn(shape, name)
        ? `; indent "${name}" under "${op}:" to make it an argument of ${op}`
        : "; put each operation in its own list item";
      return this.fail(second.key, `${path}: a step must have exactly one key naming the operation, but this one also has "${name}"${hint}`);
    }

    const pos = this.pos(first.key);
    const argsPath = `${path}.${op}`;
    const value = this.deref(first.value);
    if (value === BAD) return BAD;
    if (op === "report" && isScalar(value)) {
      // shorthand: `- report: "label"`
      const label = this.leaf(stepArgs.report.shape.label, value, argsPath, pos);
      return label === BAD ? BAD : { op, pos, path: argsPath, args: { label }, argPos: { label: this.pos(value) } };
    }
    const custom: Custom = op === "repeat" ? { steps: (n, p) => this.list(n, p, "step", 1, (item, ip) => this.step(item, ip), true) } : {};
    const f = this.map(value, shape, `in ${op} step`, argsPath, pos, custom);
    return f.ok ? { op, pos, path: argsPath, args: f.values, argPos: f.pos } : BAD;
  }

  /**
   * Validates a mapping against `shape`: unknown keys are errors, values are
   * validated by `custom[key]` or else by their zod schema, and missing keys take
   * the schema's default (or are reported as missing at `at`).
   */
  private map(node: unknown, shape: Shape, where: string, path: string, at?: SourcePos, custom: Custom = {}): Fields {
    const fields: Fields = { values: {}, pos: {}, ok: false };
    const m = this.deref(node);
    if (m === BAD) return fields;
    if (!isMap(m)) {
      this.fail(m, `${path}: expected a mapping, got ${this.kind(m)}`, at);
      return fields;
    }
    fields.ok = true;
    const seen = new Set<string>();
    let unknownKey = false;
    for (const pair of m.items) {
      const key = this.key(pair, m);
      if (key === BAD) {
        fields.ok = false;
        continue;
      }
      seen.add(key);
      const schema = Object.hasOwn(shape, key) ? shape[key] : undefined;
      if (!schema) {
        const list = Object.keys(shape).join(", ");
        this.fail(pair.key, `unknown key "${key}" ${where} (expected one of: ${list})`);
        fields.ok = false;
        unknownKey = true;
        continue;
      }
      const keyPos = this.pos(pair.key);
      const valuePath = path ? `${path}.${key}` : key;
      fields.pos[key] = this.pos(pair.value, keyPos);
      const fn = custom[key];
      const v = fn ? fn(pair.value, valuePath) : this.leaf(schema, pair.value, valuePath, keyPos);
      if (v === BAD) fields.ok = false;
      else fields.values[key] = v;
    }
    // After an unknown (likely misspelt) key, "missing key" errors would only be noise.
    for (const [key, schema] of Object.entries(shape)) {
      if (seen.has(key) || unknownKey) continue;
      const r = schema.safeParse(undefined);
      if (r.success) {
        if (r.data !== undefined) fields.values[key] = r.data;
      } else {
        this.errors.push({ pos: at ?? this.pos(m), message: `missing required key "${key}" ${where}` });
        fields.ok = false;
      }
    }
    return fields;
  }

  /** A list whose items are checked by `item`; with `partial`, invalid items are dropped instead of failing the list. */
  private list<T>(node: unknown, path: string, noun: string, min: number, item: (node: unknown, path: string) => T | Bad, partial = false): T[] | Bad {
    const seq = this.deref(node);
    if (seq === BAD) return BAD;
    if (!isSeq(seq)) return this.fail(seq, `${path}: expected a list, got ${this.kind(seq)}`);
    if (seq.items.length < min) return this.fail(seq, `${path}: expected at least one ${noun}`);
    const out: T[] = [];
    let ok = true;
    seq.items.forEach((it, i) => {
      const r = item(it, `${path}[${i}]`);
      if (r === BAD) ok = false;
      else out.push(r);
    });
    return ok || partial ? out : BAD;
  }

  /** Validates a leaf value (scalar, or a list/mapping of scalars) with its zod schema. */
  private leaf(schema: z.ZodType, node: unknown, path: string, fallback: SourcePos): unknown {
    const n = this.deref(node);
    if (n === BAD) return BAD;
    let input: unknown = null;
    if (isNode(n)) {
      try {
        input = n.toJS(this.doc, { maxAliasCount: 100 });
      } catch (e) {
        return this.fail(n, `${path}: ${e instanceof Error ? e.message : String(e)}`, fallback);
      }
    }
    // A key named __proto__ would vanish in the validated object (or set its
    // prototype): refuse it where it is.
    const proto = protoKeyPath(input);
    if (proto !== null) {
      const owner = this.nodeAt(n, proto.slice(0, -1));
      const key = isMap(owner) ? owner.items.find((it) => isScalar(it.key) && it.key.value === "__proto__")?.key : undefined;
      return this.fail(key ?? owner, `${path}${formatPath(proto)}: "__proto__" is not a valid key`, fallback);
    }
    const r = schema.safeParse(input);
    if (r.success) return r.data;
    const issue = r.error.issues[0]!;
    return this.fail(this.nodeAt(n, issue.path), `${path}${formatPath(issue.path)}: ${issue.message}`, fallback);
  }

  /** The node at `path` below `node`, or the deepest one that exists. */
  private nodeAt(node: unknown, path: readonly PropertyKey[]): unknown {
    let cur = node;
    for (const k of path) {
      const c = isAlias(cur) ? cur.resolve(this.doc) : cur;
      const next = isMap(c) || isSeq(c) ? c.get(k, true) : undefined;
      if (next == null) break;
      cur = next;
    }
    return cur;
  }

  private key(pair: Pair<unknown, unknown>, owner: unknown): string | Bad {
    const k = this.deref(pair.key);
    if (k === BAD) return BAD;
    if (isScalar(k) && typeof k.value === "string") return k.value;
    return this.fail(k ?? owner, `expected a key name, got ${this.kind(k)}`);
  }

  private deref(node: unknown): unknown {
    if (!isAlias(node)) return node;
    if (++this.aliases > MAX_ALIAS_EXPANSIONS) {
      return this.fail(node, `too many alias expansions (more than ${MAX_ALIAS_EXPANSIONS})`);
    }
    const target = node.resolve(this.doc);
    if (!target) return this.fail(node, `unknown alias *${node.source}`);
    const [from, , to] = target.range ?? [0, 0, 0];
    const at = node.range?.[0] ?? -1;
    if (at >= from && at < to) return this.fail(node, `alias *${node.source} refers to a node that contains it`);
    return target;
  }

  private kind(node: unknown): string {
    if (isMap(node)) return "a mapping";
    if (isSeq(node)) return "a list";
    if (isScalar(node)) return describeValue(node.value);
    return describeValue(node);
  }

  private fail(node: unknown, message: string, fallback?: SourcePos): Bad {
    this.errors.push({ pos: this.pos(node, fallback), message });
    return BAD;
  }

  // The VA size and mTHP sizes the machine's page size allows.
  private checkGranule(root: unknown, mc: z.output<typeof machineSchema>): void {
    const g = mc.arm64.granule;
    const at = (...path: string[]) => this.pos(this.nodeAt(root, ["machine", ...path]));
    if (mc.headroom !== undefined && mc.memory === undefined)
      this.errors.push({ pos: at("headroom"), message: "machine.headroom: needs machine.memory (headroom is free memory under a memory limit)" });
    if (mc.arch === "arm64" && !VA_BITS_CHOICES[g].includes(mc.arm64.va_bits))
      this.errors.push({
        pos: at("arm64", "va_bits"),
        message: `machine.arm64.va_bits: the ${g}K granule offers ${vaBitsChoicesText(g)}-bit VAs, got ${mc.arm64.va_bits}`,
      });
    if (mc.arch !== "arm64" && g !== 4)
      this.errors.push({ pos: at("arm64", "granule"), message: `machine.arm64.granule: the ${g}K granule needs arch arm64 (x86-64 has 4K pages)` });
    const shift = Math.log2((mc.arch === "arm64" ? g : 4) * 1024);
    for (const size of Object.keys(mc.mthp))
      if (anonMthpOrder(mthpKib(size), shift) < 0)
        this.errors.push({
          pos: at("mthp", size),
          message: `machine.mthp: ${size} is not an mTHP size with ${2 ** shift / 1024}K pages (${anonMthpRange(shift)})`,
        });
  }

  // Variant names and values (VARIANTS in src/core/machine.ts), at the key
  // or value that is wrong; Object.hasOwn, so that "constructor" or
  // "toString" is an unknown name like any other.
  private checkVariants(root: unknown, variants: Record<string, string>, path: [string, string]): void {
    const owner = this.nodeAt(root, path);
    const nodes = new Map<unknown, { key: unknown; value: unknown }>();
    if (isMap(owner)) for (const it of owner.items) if (isScalar(it.key)) nodes.set(it.key.value, { key: it.key, value: it.value });
    // The first wrong entry only: the message lists every known name.
    for (const [k, v] of Object.entries(variants)) {
      if (!Object.hasOwn(VARIANTS, k)) {
        this.fail(nodes.get(k)?.key ?? owner, `${path.join(".")}: unknown variant "${k}" (known: ${Object.keys(VARIANTS).join(", ")})`);
        return;
      }
      const allowed = VARIANTS[k as keyof typeof VARIANTS] as readonly string[];
      if (!allowed.includes(v)) {
        this.fail(nodes.get(k)?.value ?? owner, `${path.join(".")}.${k}: unknown value "${v}" (expected one of: ${allowed.join(", ")})`);
        return;
      }
    }
  }

  private pos(node: unknown, fallback: SourcePos = { line: 1, col: 1 }): SourcePos {
    const range = isNode(node) ? node.range : undefined;
    return range ? this.at(range[0]) : fallback;
  }

  private at(offset: number): SourcePos {
    const { line, col } = this.lc.linePos(offset);
    return { line, col };
  }

  private error(pos: SourcePos, message: string): ScenarioError {
    return new ScenarioError(this.file, pos.line, pos.col, message);
  }
}

// ---------------------------------------------------------------------------
// Pass 2: meaning

type Args<K extends Op> = z.output<(typeof stepArgs)[K]>;
type Base = { pos: SourcePos; thread: string };
interface StepCx {
  sem: Semantics;
  raw: RawStep;
  loop: number | undefined; // count of an enclosing repeat that runs this step more than once
}
type Builder<K extends Op> = (a: Args<K>, base: Base, cx: StepCx) => Step | undefined;

const range = (a: { region: string; offset: number; length?: number | undefined }) => ({
  region: a.region,
  offset: a.offset,
  length: a.length,
});

/** AST construction, one entry per operation; cross-reference checks live in Semantics. */
const builders: { [K in Op]: Builder<K> } = {
  mmap: (a, base, cx) => {
    const flags = cx.sem.mmapFlags(a, cx);
    if (!flags) return undefined;
    const { region, size, prot, addr, file, offset } = a;
    return { op: "mmap", ...base, region, size, prot, flags, addr, file, offset };
  },
  touch: (a, base) => ({ op: "touch", ...base, ...range(a), write: true, stride: a.stride ?? 0 }),
  read: (a, base) => ({ op: "touch", ...base, ...range(a), write: false, stride: a.stride ?? 0 }),
  madvise: (a, base) => ({ op: "madvise", ...base, ...range(a), advice: a.advice }),
  mprotect: (a, base) => ({ op: "mprotect", ...base, ...range(a), prot: a.prot }),
  munmap: (a, base) => ({ op: "munmap", ...base, ...range(a) }),
  mremap: (a, base) => ({
    op: "mremap",
    ...base,
    region: a.region,
    newSize: a.new_size,
    mayMove: a.may_move,
    newRegion: a.new_region,
  }),
  brk: (a, base) => ({ op: "brk", ...base, delta: a.delta, ...(a.region !== undefined ? { region: a.region } : {}) }),
  fork: (a, base, cx) => cx.sem.fork(a, base, cx),
  exit: (a, base, cx) => cx.sem.exit(a, base, cx),
  lockless: (a, base) => ({ op: "lockless", ...base, region: a.region, offset: a.offset, via: a.via }),
  oom_reap: (a, base) => ({ op: "oom_reap", ...base, process: a.process }),
  truncate: (a, base) => ({ op: "truncate", ...base, file: a.file, size: a.size }),
  writeback: (a, base) => ({ op: "writeback", ...base, file: a.file }),
  reclaim: (a, base) => ({ op: "reclaim", ...base, ...range(a), ...(a.process !== undefined ? { process: a.process } : {}) }),
  migrate: (a, base) => ({ op: "migrate", ...base, ...range(a), ...(a.process !== undefined ? { process: a.process } : {}) }),
  khugepaged: (a, base) => ({ op: "khugepaged", ...base, ...range(a), ...(a.process !== undefined ? { process: a.process } : {}) }),
  pin: (a, base) => ({ op: "pin", ...base, ...range(a), write: a.write, fast: a.fast, name: a.name ?? a.region }),
  unpin: (a, base) => ({ op: "unpin", ...base, pin: a.pin }),
  dma: (a, base) => ({ op: "dma", ...base, pin: a.pin, offset: a.offset, write: a.write }),
  exec: (_a, base) => ({ op: "exec", ...base }),
  report: (a, base, cx) => {
    const n = cx.sem.countReport();
    return { op: "report", ...base, label: a.label ?? `report ${n}` };
  },
  repeat: (a, base, cx) => ({
    op: "repeat",
    ...base,
    count: a.count,
    advance: a.advance,
    steps: cx.sem.steps(a.steps as RawStep[], a.count > 1 ? a.count : cx.loop),
  }),
};

/** Drops keys whose value is undefined, so optional AST fields are absent rather than undefined. */
function compact<T extends object>(o: T): T {
  for (const [k, v] of Object.entries(o)) if (v === undefined) delete (o as Record<string, unknown>)[k];
  return o;
}

/** Tracks processes and threads while walking the steps in document order. */
class Semantics {
  private readonly threads = new Map<string, { process: string; cpu: number }>();
  private readonly procs = new Map<string, { exitedAt?: SourcePos }>();
  private known = false; // false if `processes` was invalid: skip name checks
  private defaultThread = "";
  private reports = 0;

  constructor(
    private readonly fail: (pos: SourcePos, message: string) => void,
    private readonly cpus: number | undefined, // undefined if `machine` was invalid
    private readonly rootPos: SourcePos,
  ) {}

  declare(processes: RawProcess[] | undefined): ProcessSpec[] | undefined {
    if (!processes) return undefined;
    this.known = true;
    return processes.map((p, i) => {
      const where = `processes[${i}]`;
      if (this.procs.has(p.name)) this.fail(p.namePos ?? this.rootPos, `${where}.name: duplicate process name ${p.name}`);
      this.procs.set(p.name, {});
      const threads = p.threads ?? [{ name: `${p.name}.t0`, cpu: 0 }];
      threads.forEach((t, j) => {
        const tp = `${where}.threads[${j}]`;
        const other = this.threads.get(t.name);
        if (other) {
          const pos = t.namePos ?? p.namePos ?? this.rootPos;
          this.fail(pos, `${tp}.name: duplicate thread name ${t.name} (already used in process ${other.process})`);
        } else this.threads.set(t.name, { process: p.name, cpu: t.cpu });
        this.checkCpu(t.cpu, t.cpuPos ?? this.rootPos, `${tp}.cpu`);
      });
      if (i === 0) this.defaultThread = threads[0]!.name;
      return { name: p.name, threads: threads.map((t) => ({ name: t.name, cpu: t.cpu })) };
    });
  }

  steps(raws: RawStep[], loop?: number): Step[] {
    const out: Step[] = [];
    for (const raw of raws) {
      const base = { pos: raw.pos, thread: this.thread(raw) };
      const build = builders[raw.op] as Builder<Op>;
      const step = build(raw.args as Args<Op>, base, { sem: this, raw, loop });
      if (step) out.push(compact(step));
    }
    return out;
  }

  countReport(): number {
    return ++this.reports;
  }

  mmapFlags(a: Args<"mmap">, { raw }: StepCx): MmapFlag[] | undefined {
    const flags: MmapFlag[] = a.flags ? [...a.flags] : ["private"];
    const at = raw.argPos.flags ?? raw.pos;
    if (a.file === undefined) {
      if (!flags.includes("anonymous")) flags.push("anonymous");
    } else if (flags.includes("anonymous")) {
      return this.bad(at, `${raw.path}.flags: "anonymous" cannot be combined with a file (file: ${a.file})`);
    }
    if (flags.includes("fixed") && a.addr === undefined) {
      return this.bad(at, `${raw.path}.flags: "fixed" needs an addr`);
    }
    return flags;
  }

  fork(a: Args<"fork">, base: Base, { raw, loop }: StepCx): Step | undefined {
    const parent = this.threads.get(base.thread);
    const cpu = a.cpu ?? parent?.cpu ?? 0;
    const childThread = a.child_thread ?? `${a.child}.t0`;
    const step: Step = { op: "fork", ...base, child: a.child, childThread, cpu };
    if (!this.known) return step;
    if (a.cpu !== undefined) this.checkCpu(a.cpu, raw.argPos.cpu!, `${raw.path}.cpu`);
    const childAt = raw.argPos.child!;
    if (this.procs.has(a.child)) return this.bad(childAt, `${raw.path}.child: process ${a.child} already exists`);
    if (loop !== undefined) {
      const why = `this fork is inside a repeat with count ${loop}, so it would run more than once`;
      return this.bad(childAt, `${raw.path}.child: process ${a.child} already exists (${why})`);
    }
    if (this.threads.has(childThread)) {
      const at = raw.argPos.child_thread ?? childAt;
      return this.bad(at, `${raw.path}.${a.child_thread ? "child_thread" : "child"}: thread ${childThread} already exists`);
    }
    this.procs.set(a.child, {});
    this.threads.set(childThread, { process: a.child, cpu });
    return step;
  }

  exit(a: Args<"exit">, base: Base, { raw, loop }: StepCx): Step | undefined {
    const step: Step = { op: "exit", ...base, process: a.process };
    if (!this.known) return step;
    const at = raw.argPos.process!;
    const where = `${raw.path}.process`;
    const p = this.procs.get(a.process);
    if (!p) return this.bad(at, `${where}: unknown process ${a.process} (known processes: ${[...this.procs.keys()].join(", ")})`);
    if (p.exitedAt) return this.bad(at, `${where}: process ${a.process} has already exited (at line ${p.exitedAt.line})`);
    if (loop !== undefined) {
      return this.bad(at, `${where}: process ${a.process} would exit more than once (this exit is inside a repeat with count ${loop})`);
    }
    p.exitedAt = raw.pos;
    return step;
  }

  /** The step's thread, checked to exist at this point of the document. */
  private thread(raw: RawStep): string {
    const given = raw.args.thread as string | undefined;
    const name = given ?? this.defaultThread;
    if (!this.known) return name;
    const t = this.threads.get(name);
    if (given === undefined) {
      const exited = t && this.procs.get(t.process)?.exitedAt;
      if (t && exited) {
        const msg = `the default thread ${name} belongs to process ${t.process}, which exited at line ${exited.line}`;
        this.fail(raw.pos, `${raw.path}: ${msg}; name another thread with "thread:"`);
      }
      return name;
    }
    const at = raw.argPos.thread!;
    if (!t) {
      this.fail(at, `${raw.path}.thread: unknown thread ${name} (known threads: ${[...this.threads.keys()].join(", ")})`);
    } else {
      const exited = this.procs.get(t.process)?.exitedAt;
      if (exited) {
        this.fail(at, `${raw.path}.thread: thread ${name} belongs to process ${t.process}, which exited at line ${exited.line}`);
      }
    }
    return name;
  }

  private checkCpu(cpu: number, pos: SourcePos, path: string): void {
    if (this.cpus !== undefined && cpu >= this.cpus) {
      this.fail(pos, `${path}: cpu ${cpu} out of range: machine has ${this.cpus} CPU${this.cpus === 1 ? "" : "s"}`);
    }
  }

  private bad(pos: SourcePos, message: string): undefined {
    this.fail(pos, message);
    return undefined;
  }
}

// Keys that repeat within a mapping (YAML 1.2 requires them unique), each
// at its second occurrence, found with one set per mapping. Scalar keys
// are equal when their values are (as the yaml library's own check has it);
// other keys only when they are the same node.
function duplicateKeys(root: unknown): { offset: number; message: string }[] {
  const out: { offset: number; message: string }[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (isMap(n)) {
      const seen = new Set<unknown>();
      for (const it of n.items) {
        const k = isScalar(it.key) ? `${typeof it.key.value}:${String(it.key.value)}` : it.key;
        if (seen.has(k)) out.push({ offset: isNode(it.key) && it.key.range ? it.key.range[0] : (n.range?.[0] ?? 0), message: "Map keys must be unique" });
        seen.add(k);
        stack.push(it.key, it.value);
      }
    } else if (isSeq(n)) for (const it of n.items) stack.push(it);
  }
  return out;
}

// A repeat runs its body `count` times, and repeats nest: the steps and
// reports a list would execute once unrolled, each capped (MAX_REPEAT steps,
// MAX_REPORTS reports: every report keeps a row of figures for the whole
// run), reported at the count of the outermost repeat that passes a cap.
function checkUnrolled(steps: RawStep[], fail: (pos: SourcePos, message: string) => void): void {
  let reported = false;
  const walk = (list: RawStep[]): { steps: number; reports: number } => {
    let n = 0;
    let r = 0;
    for (const s of list) {
      if (s.op !== "repeat") {
        n += 1;
        if (s.op === "report") r += 1;
        continue;
      }
      const count = s.args.count as number;
      const inner = walk(s.args.steps as RawStep[]);
      const sn = count * inner.steps;
      const sr = count * inner.reports;
      if (!reported && (sn > MAX_REPEAT || sr > MAX_REPORTS)) {
        reported = true;
        const what =
          sn > MAX_REPEAT
            ? `${sn} steps (count ${count} times ${inner.steps} in its body), more than ${MAX_REPEAT}`
            : `${sr} reports (count ${count} times ${inner.reports} in its body), more than ${MAX_REPORTS}: each keeps a row of figures`;
        fail(s.argPos.count ?? s.pos, `${s.path}.count: unrolled, this repeat would run ${what}`);
      }
      n += sn;
      r += sr;
    }
    return { steps: n, reports: r };
  };
  walk(steps);
}

// The path to the first own "__proto__" key in a value from YAML, or null.
function protoKeyPath(v: unknown, at: PropertyKey[] = []): PropertyKey[] | null {
  if (v === null || typeof v !== "object") return null;
  if (!Array.isArray(v) && Object.hasOwn(v, "__proto__")) return [...at, "__proto__"];
  for (const [k, x] of Object.entries(v)) {
    const r = protoKeyPath(x, [...at, Array.isArray(v) ? Number(k) : k]);
    if (r !== null) return r;
  }
  return null;
}
