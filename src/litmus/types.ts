// The parsed form of a herd AArch64 litmus test as the aarch64-VMSA catalogue
// writes them (herdtools7 catalogue/aarch64-VMSA): initial state with virtual
// locations, their page-table entries (pte_x) and register values, one short
// program per CPU, and a final condition. Values stay symbolic here; the
// runner (run.ts) gives them addresses and descriptor bits.
// No Node APIs.

/** Bad input: reported as `file:line:col: message`, exit code 2. */
export class LitmusError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    message: string,
  ) {
    super(message);
    this.name = "LitmusError";
  }
  format(): string {
    return `${this.file}:${this.line}:${this.col}: ${this.message}`;
  }
}

/** Valid input that uses something the model lacks: reported per test, the run goes on. */
export class LitmusUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LitmusUnsupported";
  }
}

export interface Pos {
  line: number;
  col: number;
}

/** A descriptor written as a record, e.g. (oa:phy_y, valid:0, db:0, dbm:1). Absent fields take herd's defaults. */
export interface DescFields {
  oa?: string; // the location whose physical page it maps (phy_y, PA(y))
  valid?: number;
  af?: number;
  db?: number;
  dbm?: number;
}

export type Value =
  | { k: "int"; v: number }
  | { k: "va"; loc: string } // the virtual address of location x
  | { k: "pte"; loc: string } // the address of x's page-table entry (pte_x, PTE(x))
  | { k: "pa"; loc: string } // the physical address of x (phy_x, PA(x))
  | { k: "desc"; f: DescFields };

export interface Reg {
  n: number; // 0..30; 31 = XZR/WZR
  w: boolean; // W view (low 32 bits)
}

export type Operand = { k: "reg"; r: Reg } | { k: "imm"; v: number };

export interface Addr {
  base: Reg;
  off: Operand | null; // [Xn, Wm, SXTW], [Xn, Xm], [Xn, #imm]
}

export type AluFn = "add" | "sub" | "eor" | "and" | "orr" | "lsr" | "lsl";
export type RmwFn = "swp" | "ldclr" | "ldset" | "ldadd" | "ldeor" | "cas";
export type BarrierKind = "full" | "ld" | "st";

export type Instr = (
  | { op: "nop" }
  | { op: "mov"; d: Reg; src: Operand }
  | { op: "alu"; fn: AluFn; d: Reg; a: Reg; b: Operand }
  | { op: "cmp"; a: Reg; b: Operand }
  | { op: "cset"; d: Reg; cond: "eq" | "ne" }
  | { op: "ldr"; t: Reg; addr: Addr; acquire: boolean }
  | { op: "str"; t: Reg; addr: Addr; release: boolean }
  // SWP/LD<op>: s is the operand stored or combined, t receives the old value;
  // CAS: s is the compared value (and receives the old one), t the new value.
  | { op: "rmw"; fn: RmwFn; s: Reg; t: Reg; addr: Addr }
  | { op: "b"; target: number }
  | { op: "cbz" | "cbnz"; r: Reg; target: number }
  | { op: "dmb" | "dsb"; kind: BarrierKind; local: boolean }
  | { op: "isb" }
  // all: VMALLE1(IS), ASIDE1(IS) (ASIDs are not modelled: every entry);
  // va: VAE1, VAAE1, VALE1, VAALE1 with the page number in r.
  | { op: "tlbi"; all: boolean; r: Reg | null; broadcast: boolean; name: string }
) &
  Pos & { text: string };

export type Atom =
  | { k: "reg"; cpu: number; r: Reg; v: Value }
  | { k: "mem"; loc: string; pte: boolean; v: Value }
  | { k: "fault"; cpu: number; label: string | null; loc: string | null };

export type Prop = { k: "atom"; a: Atom } | { k: "not"; p: Prop } | { k: "and" | "or"; ps: Prop[] } | { k: "const"; v: boolean };

export type Quantifier = "exists" | "~exists" | "forall";

/** Observed items herd prints for each final state (locations [...] and the condition's). */
export type Observed = { k: "reg"; cpu: number; r: Reg } | { k: "mem"; loc: string; pte: boolean };

export interface Tthm {
  ha: boolean; // hardware Access flag update (TCR_EL1.HA)
  hd: boolean; // hardware dirty state update (TCR_EL1.HD); herd's HD includes HA
}

export interface LitmusTest {
  name: string;
  file: string;
  /** Virtual locations, in order of first mention (x, y, z, ...). */
  locs: string[];
  /** Initial memory: location values and PTE values that the test sets. */
  initMem: { loc: string; pte: boolean; v: Value; pos: Pos }[];
  /** Initial registers per CPU. */
  initRegs: Map<number, Value>[];
  tthm: Tthm[];
  progs: Instr[][];
  labels: Map<string, number>[];
  quant: Quantifier;
  cond: Prop;
  observed: Observed[];
}

export function regName(r: Reg): string {
  if (r.n === 31) return r.w ? "WZR" : "XZR";
  return `${r.w ? "W" : "X"}${r.n}`;
}
