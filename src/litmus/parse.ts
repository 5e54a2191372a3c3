// Parser for herd's AArch64 litmus format as the aarch64-VMSA tests use it
// (herdtools7 catalogue/aarch64-VMSA): a header line `AArch64 NAME`, key=value
// lines (TTHM=HA HD, TTHM=P0:HA, Variant=..., Hash=...), the initial state in
// braces, the programs as `|`-separated columns ending in `;`, then optional
// `locations [...]` and one `exists` / `~exists` / `forall` condition.
// Comments are OCaml style `(* ... *)`.
//
// Left out (reported as unsupported, not as bad input): fault-handler
// columns (P0.F: herd's -variant fatal ends a CPU at its first fault, which
// is what the runner does), `filter` clauses, exclusives and system
// instructions other than TLBI/DSB/DMB/ISB.
// No Node APIs.

import {
  type Addr,
  type AluFn,
  type Atom,
  type DescFields,
  type Instr,
  LitmusError,
  type LitmusTest,
  LitmusUnsupported,
  type Observed,
  type Operand,
  type Pos,
  type Prop,
  type Quantifier,
  type Reg,
  type RmwFn,
  type Tthm,
  type Value,
} from "./types.js";

// Mnemonics a litmus test may contain that the model does not execute.
const UNSUPPORTED_OPS = new Set([
  "LDXR",
  "LDAXR",
  "STXR",
  "STLXR",
  "LDXP",
  "STXP",
  "ERET",
  "SVC",
  "HVC",
  "MSR",
  "MRS",
  "DC",
  "IC",
  "BR",
  "BLR",
  "RET",
  "AT",
  "LDP",
  "STP",
  "LDRB",
  "STRB",
  "LDRH",
  "STRH",
  "CASP",
  "LDAPR",
  "CSEL",
  "CINC",
  "MOVZ",
  "MOVK",
  "ADR",
  "BL",
  "B.EQ",
  "B.NE",
  "TBZ",
  "TBNZ",
]);

// ---------------------------------------------------------------------------
// Tokens (for the initial state and the condition)

interface Tok extends Pos {
  t: "id" | "num" | "p" | "eof";
  v: string;
}

class Lexer {
  private i = 0;
  readonly toks: Tok[] = [];
  constructor(
    private readonly src: string,
    private readonly file: string,
    private line: number,
    private col: number,
  ) {
    this.scan();
  }

  private scan(): void {
    const s = this.src;
    while (this.i < s.length) {
      const ch = s[this.i]!;
      if (ch === "\n") {
        this.i++;
        this.line++;
        this.col = 1;
        continue;
      }
      if (/\s/.test(ch)) {
        this.adv(1);
        continue;
      }
      const rest = s.slice(this.i);
      const m = /^(?:0x[0-9a-fA-F]+|\d+)/.exec(rest) ?? null;
      if (m) {
        this.push("num", m[0]);
        continue;
      }
      const id = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(rest);
      if (id) {
        this.push("id", id[0]);
        continue;
      }
      const p = /^(?:\/\\|\\\/|[(){}[\]:;,=~#-])/.exec(rest);
      if (p) {
        this.push("p", p[0]);
        continue;
      }
      throw new LitmusError(this.file, this.line, this.col, `unexpected character "${ch}"`);
    }
    this.toks.push({ t: "eof", v: "", line: this.line, col: this.col });
  }

  private push(t: Tok["t"], v: string): void {
    this.toks.push({ t, v, line: this.line, col: this.col });
    this.adv(v.length);
  }

  private adv(n: number): void {
    this.i += n;
    this.col += n;
  }
}

class TokStream {
  private k = 0;
  constructor(
    readonly toks: Tok[],
    readonly file: string,
  ) {}
  peek(o = 0): Tok {
    return this.toks[Math.min(this.k + o, this.toks.length - 1)]!;
  }
  next(): Tok {
    const t = this.peek();
    if (t.t !== "eof") this.k++;
    return t;
  }
  is(v: string, o = 0): boolean {
    const t = this.peek(o);
    return t.t !== "eof" && t.v === v;
  }
  eat(v: string): boolean {
    if (!this.is(v)) return false;
    this.k++;
    return true;
  }
  expect(v: string, what = `"${v}"`): Tok {
    if (!this.is(v)) this.fail(what);
    return this.next();
  }
  fail(what: string, t = this.peek()): never {
    const got = t.t === "eof" ? "end of input" : `"${t.v}"`;
    throw new LitmusError(this.file, t.line, t.col, `expected ${what}, got ${got}`);
  }
}

// ---------------------------------------------------------------------------
// Values

const DESC_FIELDS = new Set(["valid", "af", "db", "dbm"]);

// phy_x, PA(x) -> x; null if the token does not name a physical address.
function parsePa(ts: TokStream): string | null {
  const t = ts.peek();
  if (t.t !== "id") return null;
  if (t.v.startsWith("phy_") && t.v.length > 4) {
    ts.next();
    return t.v.slice(4);
  }
  if (t.v === "PA" && ts.is("(", 1)) {
    ts.next();
    ts.next();
    const loc = ts.next();
    if (loc.t !== "id") ts.fail("a location name", loc);
    ts.expect(")");
    return loc.v;
  }
  return null;
}

function parseDesc(ts: TokStream): DescFields {
  ts.expect("(");
  const f: DescFields = {};
  for (;;) {
    const key = ts.next();
    if (key.t !== "id") ts.fail("a descriptor field such as oa:, valid:, af:, db:, dbm:", key);
    ts.expect(":");
    if (key.v === "oa") {
      const pa = parsePa(ts);
      if (pa === null) ts.fail("a physical address such as phy_x or PA(x)");
      f.oa = pa;
    } else if (DESC_FIELDS.has(key.v)) {
      const v = ts.next();
      if (v.t !== "num" || (v.v !== "0" && v.v !== "1")) ts.fail("0 or 1", v);
      f[key.v as "valid" | "af" | "db" | "dbm"] = Number(v.v);
    } else {
      throw new LitmusUnsupported(`descriptor field "${key.v}" (only oa, valid, af, db, dbm are modelled)`);
    }
    if (ts.eat(")")) return f;
    ts.expect(",", '"," or ")"');
  }
}

function parseValue(ts: TokStream): Value {
  const t = ts.peek();
  if (t.t === "num") {
    ts.next();
    return { k: "int", v: Number(t.v) };
  }
  if (t.v === "-" && ts.peek(1).t === "num") {
    ts.next();
    throw new LitmusUnsupported("negative constants");
  }
  if (t.v === "(") return { k: "desc", f: parseDesc(ts) };
  if (t.t === "id") {
    const pa = parsePa(ts);
    if (pa !== null) return { k: "pa", loc: pa };
    ts.next();
    if (t.v === "PTE" && ts.is("(")) {
      ts.next();
      const loc = ts.next();
      if (loc.t !== "id") ts.fail("a location name", loc);
      ts.expect(")");
      return { k: "pte", loc: loc.v };
    }
    if (t.v.startsWith("pte_") && t.v.length > 4) return { k: "pte", loc: t.v.slice(4) };
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(t.v)) return { k: "va", loc: t.v };
  }
  ts.fail("a value (an integer, a location, pte_x, phy_x or a descriptor such as (oa:phy_x,valid:0))", t);
}

// ---------------------------------------------------------------------------
// Registers and instruction operands

function regOf(s: string): Reg | null {
  const u = s.toUpperCase();
  if (u === "XZR") return { n: 31, w: false };
  if (u === "WZR") return { n: 31, w: true };
  const m = /^([XW])(\d{1,2})$/.exec(u);
  if (!m || Number(m[2]) > 30) return null;
  return { n: Number(m[2]), w: m[1] === "W" };
}

// Splits "a, [b, c], d" at top-level commas, keeping each part's column.
function splitOperands(s: string, col: number): { s: string; col: number }[] {
  const out: { s: string; col: number }[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    const ch = s[i];
    if (ch === "[") depth++;
    else if (ch === "]") depth--;
    if (i === s.length || (ch === "," && depth === 0)) {
      const raw = s.slice(start, i);
      const lead = raw.length - raw.trimStart().length;
      out.push({ s: raw.trim(), col: col + start + lead });
      start = i + 1;
    }
  }
  return out.length === 1 && out[0]!.s === "" ? [] : out;
}

interface InstrCtx {
  file: string;
  line: number;
  labelRefs: { name: string; instr: { target: number }; line: number; col: number }[];
}

function fail(ctx: InstrCtx, col: number, what: string, got: string): never {
  throw new LitmusError(ctx.file, ctx.line, col, `expected ${what}, got "${got}"`);
}

function reg(ctx: InstrCtx, o: { s: string; col: number } | undefined, col: number): Reg {
  if (o === undefined) fail(ctx, col, "a register", "");
  const r = regOf(o.s);
  if (r === null) fail(ctx, o.col, "a register (X0..X30, W0..W30)", o.s);
  return r;
}

function imm(s: string): number | null {
  const m = /^#?\s*(0x[0-9a-fA-F]+|\d+)$/.exec(s);
  return m ? Number(m[1]) : null;
}

function operand(ctx: InstrCtx, o: { s: string; col: number } | undefined, col: number): Operand {
  if (o === undefined) fail(ctx, col, "a register or an immediate", "");
  const r = regOf(o.s);
  if (r !== null) return { k: "reg", r };
  const v = imm(o.s);
  if (v === null) fail(ctx, o.col, "a register or an immediate such as #1", o.s);
  return { k: "imm", v };
}

function address(ctx: InstrCtx, o: { s: string; col: number } | undefined, col: number): Addr {
  if (o === undefined || !o.s.startsWith("[") || !o.s.endsWith("]")) fail(ctx, o?.col ?? col, "a memory operand such as [X1]", o?.s ?? "");
  const parts = splitOperands(o.s.slice(1, -1), o.col + 1);
  const base = reg(ctx, parts[0], o.col);
  if (base.w) fail(ctx, parts[0]!.col, "an X register as base", parts[0]!.s);
  if (parts.length === 1) return { base, off: null };
  const off = operand(ctx, parts[1], o.col);
  if (parts.length === 3) {
    const ext = parts[2]!.s.toUpperCase();
    if (ext !== "SXTW" && ext !== "UXTW" && ext !== "LSL #0") fail(ctx, parts[2]!.col, "SXTW or UXTW", parts[2]!.s);
  } else if (parts.length > 3) fail(ctx, parts[3]!.col, '"]"', parts[3]!.s);
  return { base, off };
}

function nargs(ctx: InstrCtx, ops: { s: string; col: number }[], n: number, col: number, mnem: string): void {
  if (ops.length !== n) fail(ctx, ops[n]?.col ?? col, `${n} operand${n === 1 ? "" : "s"} for ${mnem}`, ops.map((o) => o.s).join(","));
}

const ALU: Record<string, AluFn> = { ADD: "add", SUB: "sub", EOR: "eor", AND: "and", ORR: "orr", LSR: "lsr", LSL: "lsl" };
const RMW: Record<string, RmwFn> = {
  SWP: "swp",
  SWPA: "swp",
  SWPL: "swp",
  SWPAL: "swp",
  LDCLR: "ldclr",
  LDCLRA: "ldclr",
  LDCLRL: "ldclr",
  LDCLRAL: "ldclr",
  LDSET: "ldset",
  LDSETA: "ldset",
  LDSETL: "ldset",
  LDSETAL: "ldset",
  LDADD: "ldadd",
  LDADDA: "ldadd",
  LDADDL: "ldadd",
  LDADDAL: "ldadd",
  LDEOR: "ldeor",
  LDEORA: "ldeor",
  LDEORL: "ldeor",
  LDEORAL: "ldeor",
  CAS: "cas",
  CASA: "cas",
  CASL: "cas",
  CASAL: "cas",
};
const BARRIER_OPTS: Record<string, { kind: "full" | "ld" | "st"; local: boolean }> = {
  SY: { kind: "full", local: false },
  ISH: { kind: "full", local: false },
  OSH: { kind: "full", local: false },
  NSH: { kind: "full", local: true },
  LD: { kind: "ld", local: false },
  ISHLD: { kind: "ld", local: false },
  OSHLD: { kind: "ld", local: false },
  NSHLD: { kind: "ld", local: true },
  ST: { kind: "st", local: false },
  ISHST: { kind: "st", local: false },
  OSHST: { kind: "st", local: false },
  NSHST: { kind: "st", local: true },
};
// TLBI operations of EL1 stage 1 (the IS forms broadcast to the inner-shareable domain).
const TLBI_OPS: Record<string, { all: boolean }> = {
  VMALLE1: { all: true },
  ASIDE1: { all: true },
  VAE1: { all: false },
  VAAE1: { all: false },
  VALE1: { all: false },
  VAALE1: { all: false },
};

function parseInstr(ctx: InstrCtx, text: string, col: number): Instr {
  const pos = { line: ctx.line, col, text };
  const m = /^([A-Za-z][A-Za-z0-9.]*)\s*(.*)$/.exec(text);
  if (!m) fail(ctx, col, "an instruction", text);
  const mnem = m[1]!.toUpperCase();
  const ops = splitOperands(m[2]!, col + text.indexOf(m[2]!, m[1]!.length));
  const alu = ALU[mnem];
  const rmw = RMW[mnem];
  if (mnem === "NOP") return { op: "nop", ...pos };
  if (mnem === "MOV") {
    nargs(ctx, ops, 2, col, mnem);
    return { op: "mov", d: reg(ctx, ops[0], col), src: operand(ctx, ops[1], col), ...pos };
  }
  if (alu !== undefined) {
    nargs(ctx, ops, 3, col, mnem);
    return { op: "alu", fn: alu, d: reg(ctx, ops[0], col), a: reg(ctx, ops[1], col), b: operand(ctx, ops[2], col), ...pos };
  }
  if (mnem === "CMP") {
    nargs(ctx, ops, 2, col, mnem);
    return { op: "cmp", a: reg(ctx, ops[0], col), b: operand(ctx, ops[1], col), ...pos };
  }
  if (mnem === "CSET") {
    nargs(ctx, ops, 2, col, mnem);
    const c = ops[1]!.s.toUpperCase();
    if (c !== "EQ" && c !== "NE") throw new LitmusUnsupported(`CSET condition ${c} (only EQ and NE)`);
    return { op: "cset", d: reg(ctx, ops[0], col), cond: c === "EQ" ? "eq" : "ne", ...pos };
  }
  if (mnem === "LDR" || mnem === "LDAR") {
    nargs(ctx, ops, 2, col, mnem);
    return { op: "ldr", t: reg(ctx, ops[0], col), addr: address(ctx, ops[1], col), acquire: mnem === "LDAR", ...pos };
  }
  if (mnem === "STR" || mnem === "STLR") {
    nargs(ctx, ops, 2, col, mnem);
    return { op: "str", t: reg(ctx, ops[0], col), addr: address(ctx, ops[1], col), release: mnem === "STLR", ...pos };
  }
  if (rmw !== undefined) {
    if (mnem.length > 3 && /[AL]$/.test(mnem) && rmw !== "cas") throw new LitmusUnsupported(`${mnem}: acquire/release atomics`);
    if (rmw === "cas" && mnem !== "CAS") throw new LitmusUnsupported(`${mnem}: acquire/release atomics`);
    nargs(ctx, ops, 3, col, mnem);
    return { op: "rmw", fn: rmw, s: reg(ctx, ops[0], col), t: reg(ctx, ops[1], col), addr: address(ctx, ops[2], col), ...pos };
  }
  if (mnem === "B" || mnem === "CBZ" || mnem === "CBNZ") {
    nargs(ctx, ops, mnem === "B" ? 1 : 2, col, mnem);
    const lab = ops[ops.length - 1]!;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(lab.s)) fail(ctx, lab.col, "a label", lab.s);
    const instr =
      mnem === "B"
        ? { op: "b" as const, target: -1, ...pos }
        : { op: mnem === "CBZ" ? ("cbz" as const) : ("cbnz" as const), r: reg(ctx, ops[0], col), target: -1, ...pos };
    ctx.labelRefs.push({ name: lab.s, instr, line: ctx.line, col: lab.col });
    return instr;
  }
  if (mnem === "DMB" || mnem === "DSB") {
    nargs(ctx, ops, 1, col, mnem);
    const b = BARRIER_OPTS[ops[0]!.s.toUpperCase()];
    if (b === undefined) fail(ctx, ops[0]!.col, "a barrier option (SY, ISH, ISHST, ISHLD, ST, LD, OSH, NSH, ...)", ops[0]!.s);
    return { op: mnem === "DMB" ? "dmb" : "dsb", kind: b.kind, local: b.local, ...pos };
  }
  if (mnem === "ISB") {
    if (ops.length > 1 || (ops.length === 1 && ops[0]!.s.toUpperCase() !== "SY")) fail(ctx, ops[0]!.col, "ISB or ISB SY", text);
    return { op: "isb", ...pos };
  }
  if (mnem === "TLBI") {
    if (ops.length < 1) fail(ctx, col, "a TLBI operation", text);
    const name = ops[0]!.s.toUpperCase();
    const broadcast = name.endsWith("IS");
    const t = TLBI_OPS[broadcast ? name.slice(0, -2) : name];
    if (t === undefined) {
      if (/^(R?V|ALLE|VMALLS12|IPAS2|ASIDE|VMALL|RVA)/.test(name)) throw new LitmusUnsupported(`TLBI ${name}`);
      fail(ctx, ops[0]!.col, "a TLBI operation (VMALLE1IS, VAE1IS, VAAE1IS, VALE1IS, VAALE1IS, ASIDE1IS or a non-IS form)", ops[0]!.s);
    }
    if (t.all && name.startsWith("VMALL")) {
      nargs(ctx, ops, 1, col, `TLBI ${name}`);
      return { op: "tlbi", all: true, r: null, broadcast, name, ...pos };
    }
    nargs(ctx, ops, 2, col, `TLBI ${name}`);
    return { op: "tlbi", all: t.all, r: reg(ctx, ops[1], col), broadcast, name, ...pos };
  }
  if (UNSUPPORTED_OPS.has(mnem)) throw new LitmusUnsupported(`instruction ${mnem}`);
  fail(
    ctx,
    col,
    "an instruction (MOV, ADD, SUB, EOR, AND, ORR, LSR, LSL, CMP, CSET, LDR, STR, SWP, CAS, LDCLR, ..., B, CBZ, CBNZ, DMB, DSB, ISB, TLBI)",
    m[1]!,
  );
}

// ---------------------------------------------------------------------------
// Condition

function parseCpu(ts: TokStream): number {
  const t = ts.next();
  const m = /^P(\d+)$/.exec(t.v);
  if (t.t !== "id" || !m) ts.fail("a thread such as P0", t);
  return Number(m[1]);
}

function parseAtom(ts: TokStream): Prop {
  if (ts.eat("~")) return { k: "not", p: parseAtom(ts) };
  if (ts.eat("(")) {
    const p = parseOr(ts);
    ts.expect(")", '")"');
    return p;
  }
  const t = ts.peek();
  if (t.t === "id" && (t.v === "true" || t.v === "false")) {
    ts.next();
    return { k: "const", v: t.v === "true" };
  }
  if (t.t === "id" && t.v.toLowerCase() === "fault" && ts.is("(", 1)) {
    ts.next();
    ts.next();
    const cpu = parseCpu(ts);
    let label: string | null = null;
    let loc: string | null = null;
    if (ts.eat(":")) {
      const l = ts.next();
      if (l.t !== "id") ts.fail("a label", l);
      label = l.v;
    }
    if (ts.eat(",")) {
      const l = ts.next();
      if (l.t !== "id") ts.fail("a location", l);
      loc = l.v;
    }
    ts.expect(")", '")"');
    return { k: "atom", a: { k: "fault", cpu, label, loc } };
  }
  let a: Atom;
  if (t.t === "num" && ts.is(":", 1)) {
    ts.next();
    ts.next();
    const rt = ts.next();
    const r = rt.t === "id" ? regOf(rt.v) : null;
    if (r === null) ts.fail("a register such as X0", rt);
    ts.expect("=", '"="');
    a = { k: "reg", cpu: Number(t.v), r, v: parseValue(ts) };
  } else if (t.t === "id") {
    const lhs = parseValue(ts);
    if (lhs.k !== "va" && lhs.k !== "pte") ts.fail("a location, pte_x or a register such as 0:X1", t);
    ts.expect("=", '"="');
    a = { k: "mem", loc: lhs.loc, pte: lhs.k === "pte", v: parseValue(ts) };
  } else ts.fail("a condition (0:X1=..., x=..., pte_x=..., fault(P0:L0,x), ~, parentheses)", t);
  return { k: "atom", a };
}

function parseAnd(ts: TokStream): Prop {
  const ps = [parseAtom(ts)];
  while (ts.eat("/\\")) ps.push(parseAtom(ts));
  return ps.length === 1 ? ps[0]! : { k: "and", ps };
}

function parseOr(ts: TokStream): Prop {
  const ps = [parseAnd(ts)];
  while (ts.eat("\\/")) ps.push(parseAnd(ts));
  return ps.length === 1 ? ps[0]! : { k: "or", ps };
}

// ---------------------------------------------------------------------------
// The whole test

// Replaces (* ... *) comments (nested, as OCaml's) by spaces, keeping newlines
// so positions stay right.
function stripComments(src: string, file: string): string {
  let out = "";
  let depth = 0;
  let line = 1;
  let col = 1;
  let openLine = 0;
  let openCol = 0;
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (ch === "(" && src[i + 1] === "*") {
      if (depth === 0) {
        openLine = line;
        openCol = col;
      }
      depth++;
      out += "  ";
      i++;
      col += 2;
      continue;
    }
    if (depth > 0 && ch === "*" && src[i + 1] === ")") {
      depth--;
      out += "  ";
      i++;
      col += 2;
      continue;
    }
    if (ch === "\n") {
      line++;
      col = 1;
      out += ch;
      continue;
    }
    out += depth > 0 ? " " : ch;
    col++;
  }
  if (depth > 0) throw new LitmusError(file, openLine, openCol, 'expected "*)" closing this comment, got end of input');
  return out;
}

function parseTthm(v: string, file: string, line: number, col: number, ncpu: number): Tthm[] {
  const all: Tthm = { ha: false, hd: false };
  const per = new Map<number, Tthm>();
  for (const m of v.matchAll(/\S+/g)) {
    const w = /^(?:P(\d+):)?(HA|HD|SW)$/.exec(m[0]);
    if (!w) throw new LitmusError(file, line, col + m.index!, `expected HA, HD, SW or Pn:HA / Pn:HD, got "${m[0]}"`);
    const tgt = w[1] === undefined ? all : (per.get(Number(w[1])) ?? per.set(Number(w[1]), { ha: false, hd: false }).get(Number(w[1]))!);
    // herd's HD means hardware management of the Access flag and the dirty state.
    if (w[2] === "HA") tgt.ha = true;
    else if (w[2] === "HD") tgt.ha = tgt.hd = true;
  }
  const out: Tthm[] = [];
  for (let c = 0; c < ncpu; c++) {
    const p = per.get(c);
    out.push({ ha: all.ha || (p?.ha ?? false), hd: all.hd || (p?.hd ?? false) });
  }
  return out;
}

/** Parses one litmus test. Throws LitmusError on bad syntax, LitmusUnsupported on a feature the model lacks. */
export function parseLitmus(text: string, file: string): LitmusTest {
  const src = stripComments(text.replace(/\r\n?/g, "\n"), file);
  const lines = src.split("\n");
  let li = 0;
  while (li < lines.length && lines[li]!.trim() === "") li++;
  const head = /^\s*AArch64\s+(\S+)\s*$/.exec(lines[li] ?? "");
  if (!head) {
    const l = lines[li] ?? "";
    throw new LitmusError(file, li + 1, l.length - l.trimStart().length + 1, `expected "AArch64 NAME", got "${l.trim()}"`);
  }
  const name = head[1]!;
  li++;
  // Key=value lines and a free-text description up to the initial state.
  let tthmText: { v: string; line: number; col: number } | null = null;
  while (li < lines.length && !lines[li]!.trimStart().startsWith("{")) {
    const l = lines[li]!;
    const kv = /^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(l);
    if (kv && kv[1] === "TTHM") tthmText = { v: kv[2]!, line: li + 1, col: l.indexOf(kv[2]!, l.indexOf("=")) + 1 };
    li++;
  }
  if (li >= lines.length) throw new LitmusError(file, li, 1, 'expected "{" opening the initial state, got end of input');
  // The initial state: from "{" to the matching "}".
  const startLine = li;
  const startCol = lines[li]!.indexOf("{") + 1;
  let initText = "";
  let endLine = -1;
  let endCol = -1;
  for (let k = li; k < lines.length; k++) {
    const l = lines[k]!;
    const from = k === startLine ? startCol : 0;
    const close = l.indexOf("}", from);
    if (close >= 0) {
      initText += l.slice(from, close);
      endLine = k;
      endCol = close;
      break;
    }
    initText += `${l.slice(from)}\n`;
  }
  if (endLine < 0) throw new LitmusError(file, startLine + 1, startCol, 'expected "}" closing the initial state, got end of input');
  const its = new TokStream(new Lexer(initText, file, startLine + 1, startCol + 1).toks, file);
  const locs: string[] = [];
  const addLoc = (l: string): void => {
    if (!locs.includes(l)) locs.push(l);
  };
  const noteValue = (v: Value): void => {
    if (v.k === "va" || v.k === "pte" || v.k === "pa") addLoc(v.loc);
    else if (v.k === "desc" && v.f.oa !== undefined) addLoc(v.f.oa);
  };
  const initMem: LitmusTest["initMem"] = [];
  const regInits: { cpu: number; r: Reg; v: Value; pos: Pos }[] = [];
  while (its.peek().t !== "eof") {
    if (its.eat(";")) continue;
    // An optional type: int, int64_t, pteval_t, uint64_t, ...
    if (its.peek().t === "id" && (its.peek(1).t === "id" || (its.peek(1).t === "num" && its.is(":", 2)))) its.next();
    const t = its.peek();
    if (t.t === "num" && its.is(":", 1)) {
      its.next();
      its.next();
      const rt = its.next();
      const r = rt.t === "id" ? regOf(rt.v) : null;
      if (r === null) return its.fail("a register such as X0", rt);
      const v: Value = its.eat("=") ? parseValue(its) : { k: "int", v: 0 };
      noteValue(v);
      regInits.push({ cpu: Number(t.v), r, v, pos: t });
    } else if (t.t === "id") {
      const lhs = parseValue(its);
      if (lhs.k !== "va" && lhs.k !== "pte") return its.fail("a location, pte_x or a register such as 0:X1", t);
      addLoc(lhs.loc);
      const v: Value = its.eat("=") ? parseValue(its) : lhs.k === "pte" ? { k: "desc", f: {} } : { k: "int", v: 0 };
      noteValue(v);
      initMem.push({ loc: lhs.loc, pte: lhs.k === "pte", v, pos: t });
    } else its.fail("an initial value such as x=1, pte_x=(oa:phy_y) or 0:X1=x", t);
    if (its.peek().t !== "eof") its.expect(";", '";"');
  }
  // The programs.
  li = endLine;
  let rest = lines[li]!.slice(endCol + 1);
  let restCol = endCol + 2;
  while (rest.trim() === "" && li + 1 < lines.length) {
    li++;
    rest = lines[li]!;
    restCol = 1;
  }
  const hdr = rest.replace(/;\s*$/, "");
  const cols = hdr.split("|").map((s) => s.trim());
  const ncpu = cols.length;
  cols.forEach((c, i) => {
    if (/^P\d+\.F$/.test(c)) throw new LitmusUnsupported("fault-handler threads (herd -variant fatal runs none)");
    if (c !== `P${i}`) throw new LitmusError(file, li + 1, restCol + Math.max(0, rest.indexOf(c)), `expected "P${i}" in the thread header, got "${c}"`);
  });
  const progs: Instr[][] = cols.map(() => []);
  const labels: Map<string, number>[] = cols.map(() => new Map());
  const refs: InstrCtx["labelRefs"][] = cols.map(() => []);
  li++;
  for (; li < lines.length; li++) {
    const l = lines[li]!;
    const tr = l.trim();
    if (tr === "") continue;
    if (/^(~\s*exists|exists|forall|locations|filter)\b/.test(tr) || tr.startsWith("~")) break;
    const semi = l.lastIndexOf(";");
    const body = semi >= 0 ? l.slice(0, semi) : l;
    if (semi >= 0 && l.slice(semi + 1).trim() !== "") {
      throw new LitmusError(file, li + 1, semi + 2, `expected end of line after ";", got "${l.slice(semi + 1).trim()}"`);
    }
    const cells = body.split("|");
    if (cells.length > ncpu) {
      const at = body.split("|", ncpu).join("|").length + 1;
      throw new LitmusError(file, li + 1, at, `expected at most ${ncpu} columns, got ${cells.length}`);
    }
    let off = 0;
    cells.forEach((cell, cpu) => {
      let col = off + 1;
      off += cell.length + 1;
      let s = cell;
      for (;;) {
        const lead = s.length - s.trimStart().length;
        s = s.trimStart();
        col += lead;
        const lab = /^([A-Za-z_][A-Za-z0-9_]*)\s*:/.exec(s);
        if (!lab) break;
        if (labels[cpu]!.has(lab[1]!)) throw new LitmusError(file, li + 1, col, `expected a new label, got "${lab[1]}" a second time`);
        labels[cpu]!.set(lab[1]!, progs[cpu]!.length);
        s = s.slice(lab[0].length);
        col += lab[0].length;
      }
      s = s.trimEnd();
      if (s === "") return;
      const ctx: InstrCtx = { file, line: li + 1, labelRefs: refs[cpu]! };
      progs[cpu]!.push(parseInstr(ctx, s, col));
    });
  }
  for (let c = 0; c < ncpu; c++) {
    for (const r of refs[c]!) {
      const at = labels[c]!.get(r.name);
      if (at === undefined) throw new LitmusError(file, r.line, r.col, `expected a label of P${c}, got "${r.name}"`);
      r.instr.target = at;
    }
  }
  // locations [...] and the condition.
  const condText = lines.slice(li).join("\n");
  const cts = new TokStream(new Lexer(condText, file, li + 1, 1).toks, file);
  const observed: Observed[] = [];
  if (cts.eat("locations")) {
    cts.expect("[");
    while (!cts.eat("]")) {
      if (cts.eat(";")) continue;
      const t = cts.peek();
      if (t.t === "num" && cts.is(":", 1)) {
        cts.next();
        cts.next();
        const rt = cts.next();
        const r = rt.t === "id" ? regOf(rt.v) : null;
        if (r === null) return cts.fail("a register such as X0", rt);
        observed.push({ k: "reg", cpu: Number(t.v), r: { n: r.n, w: false } });
      } else {
        const v = parseValue(cts);
        if (v.k !== "va" && v.k !== "pte") return cts.fail("a location or a register", t);
        addLoc(v.loc);
        observed.push({ k: "mem", loc: v.loc, pte: v.k === "pte" });
      }
    }
  }
  if (cts.is("filter")) throw new LitmusUnsupported("filter clauses");
  let quant: Quantifier;
  if (cts.eat("exists")) quant = "exists";
  else if (cts.eat("forall")) quant = "forall";
  else if (cts.is("~") && cts.is("exists", 1)) {
    cts.next();
    cts.next();
    quant = "~exists";
  } else return cts.fail("exists, ~exists or forall");
  const cond = parseOr(cts);
  if (cts.peek().t !== "eof") cts.fail("end of the condition (/\\ or \\/ to continue it)");
  // The condition's items are observed too, and its locations declared.
  const visit = (p: Prop): void => {
    if (p.k === "not") visit(p.p);
    else if (p.k === "and" || p.k === "or") p.ps.forEach(visit);
    else if (p.k === "atom") {
      const a = p.a;
      if (a.k === "reg") {
        noteValue(a.v);
        if (!observed.some((o) => o.k === "reg" && o.cpu === a.cpu && o.r.n === a.r.n)) observed.push({ k: "reg", cpu: a.cpu, r: { n: a.r.n, w: false } });
      } else if (a.k === "mem") {
        addLoc(a.loc);
        noteValue(a.v);
        if (!observed.some((o) => o.k === "mem" && o.loc === a.loc && o.pte === a.pte)) observed.push({ k: "mem", loc: a.loc, pte: a.pte });
      } else {
        if (a.cpu >= ncpu) throw new LitmusUnsupported(`fault(P${a.cpu}) names a thread the test does not have`);
        if (a.label !== null && !labels[a.cpu]!.has(a.label)) throw new LitmusUnsupported(`fault(P${a.cpu}:${a.label}) names a label P${a.cpu} does not have`);
        if (a.loc !== null) addLoc(a.loc);
      }
    }
  };
  visit(cond);
  const initRegs: Map<number, Value>[] = cols.map(() => new Map());
  for (const r of regInits) {
    if (r.cpu >= ncpu) throw new LitmusError(file, r.pos.line, r.pos.col, `expected a thread 0..${ncpu - 1}, got ${r.cpu}`);
    initRegs[r.cpu]!.set(r.r.n, r.v);
  }
  const tthm = tthmText === null ? cols.map(() => ({ ha: false, hd: false })) : parseTthm(tthmText.v, file, tthmText.line, tthmText.col, ncpu);
  return { name, file, locs, initMem, initRegs, tthm, progs, labels, quant, cond, observed };
}
