// The arm64 machine a litmus test runs on: CPUs that execute one instruction
// at a time against sequentially consistent memory, each with a TLB that
// caches last-level entries, and the hardware's own moves between
// instructions (hwSteps()): a TLB may fill any entry valid in memory at any
// moment (a speculative walk, which with TCR_EL1.HA also sets the Access
// flag), may drop any entry, and a TLBI completes at any moment between its
// issue and the issuing CPU's next full DSB.
//
// The translation rules are those of src/core/hw/walker.ts and
// src/core/arch/arm64/tlbflush.ts, applied to one leaf entry per page:
// a TLB hit is used as it is; a miss walks memory; an invalid entry, AF=0
// without HA, or a write to a read-only entry (AP[2] set) that hardware dirty
// management (DBM with HD) cannot make writable faults, and faulting entries
// are never cached (the Arm ARM lets a TLB hold no entry that generates a
// translation or Access flag fault). The hardware dirty update is an atomic
// read-modify-write of the entry in memory, so a TLB entry whose memory copy
// changed is re-walked.
// TLBI ...IS reaches every CPU's TLB, a TLBI without IS only the issuer's;
// DSB SY/ISH/OSH/NSH (not the LD/ST forms) waits for the CPU's TLBIs.
//
// A fault is fatal, as in herd's -variant fatal: the CPU stops at the
// faulting instruction and the fault is recorded as (CPU, instruction, VA).
// ASIDs, VMIDs, block entries and upper-level walk caches are not modelled:
// herd's VMSA tests use one address space and leaf entries only.
// No Node APIs.

import { PTE_AF, PTE_RDONLY, PTE_VALID } from "../core/arch/arm64/pgtable.js";
import { alu, hasDbm, type Layout, low32 } from "./layout.js";
import { type Addr, type Instr, type LitmusTest, LitmusUnsupported, type Operand, type Reg } from "./types.js";

export const RUNNING = 0;
export const DONE = 1;
export const FAULTED = 2;

export interface CpuState {
  pc: number;
  st: number; // RUNNING, DONE, FAULTED
  regs: number[]; // X0..X30
  z: number; // the Z flag (CMP), 0 or 1
  tlb: number[]; // per location: the cached entry, or -1
  // Queued TLBIs: pairs (location or -1 for all, 1 if broadcast).
  pending: number[];
}

export interface MState {
  cpus: CpuState[];
  data: number[]; // per location: the word at its physical page
  pte: number[]; // per location: its leaf entry
  faults: string[]; // "cpu:instruction:location", sorted
}

export interface Env {
  t: LitmusTest;
  lay: Layout;
  hw: HwOptions;
}

/** The hardware's own moves the search includes (all by default; off only to measure what each one decides). */
export interface HwOptions {
  speculativeFills: boolean;
  evictions: boolean;
}

export const ALL_HW: HwOptions = { speculativeFills: true, evictions: true };

export function initialState(env: Env): MState {
  const { t, lay } = env;
  const n = t.locs.length;
  const data = new Array<number>(n).fill(0);
  const pte = t.locs.map((_, i) => lay.desc({}, i));
  for (const m of t.initMem) {
    const i = lay.index(m.loc);
    if (m.pte) pte[i] = lay.value(m.v, i);
    else data[i] = lay.value(m.v);
  }
  const cpus = t.progs.map((_, c) => {
    const regs = new Array<number>(31).fill(0);
    for (const [r, v] of t.initRegs[c]!) regs[r] = lay.value(v);
    return { pc: 0, st: t.progs[c]!.length === 0 ? DONE : RUNNING, regs, z: 0, tlb: new Array<number>(n).fill(-1), pending: [] };
  });
  return { cpus, data, pte, faults: [] };
}

export function cloneState(s: MState): MState {
  return {
    cpus: s.cpus.map((c) => ({ pc: c.pc, st: c.st, regs: c.regs.slice(), z: c.z, tlb: c.tlb.slice(), pending: c.pending.slice() })),
    data: s.data.slice(),
    pte: s.pte.slice(),
    faults: s.faults.slice(),
  };
}

export function stateKey(s: MState): string {
  let k = `${s.data.join(",")}|${s.pte.join(",")}|${s.faults.join(",")}`;
  for (const c of s.cpus) k += `|${c.pc},${c.st},${c.z},${c.regs.join(",")};${c.tlb.join(",")};${c.pending.join(",")}`;
  return k;
}

export function allStopped(s: MState): boolean {
  return s.cpus.every((c) => c.st !== RUNNING);
}

// ---------------------------------------------------------------------------
// Hardware moves

function cacheable(e: number, ha: boolean): boolean {
  return (e & PTE_VALID) !== 0 && ((e & PTE_AF) !== 0 || ha);
}

// The states one hardware move leads to: a speculative fill (with the HA
// Access flag update), an eviction, or a TLBI completing.
export function hwSteps(env: Env, s: MState): MState[] {
  const out: MState[] = [];
  s.cpus.forEach((cpu, c) => {
    if (cpu.st === RUNNING) {
      const ha = env.t.tthm[c]!.ha;
      // Any entry of the test, not only those the CPU's program names: a
      // speculative walk may go anywhere, and with HA it sets AF (herd's
      // NOP+AF and TwoPhantoms are Allowed).
      for (let i = 0; env.hw.speculativeFills && i < s.pte.length; i++) {
        const d = s.pte[i]!;
        if (!cacheable(d, ha)) continue;
        // Packed entries exceed 32 bits: set AF by addition, not `|`.
        const e = (d & PTE_AF) !== 0 ? d : d + PTE_AF;
        if (cpu.tlb[i] === e && d === e) continue;
        const n = cloneState(s);
        n.pte[i] = e;
        n.cpus[c]!.tlb[i] = e;
        out.push(n);
      }
      cpu.tlb.forEach((e, i) => {
        if (e < 0 || !env.hw.evictions) return;
        const n = cloneState(s);
        n.cpus[c]!.tlb[i] = -1;
        out.push(n);
      });
    }
    if (cpu.pending.length > 0) {
      const n = cloneState(s);
      completeTlbi(n, c, 1);
      out.push(n);
    }
  });
  return out;
}

// Completes the first `count` queued TLBIs of CPU c (all with Infinity).
function completeTlbi(s: MState, c: number, count: number): void {
  const q = s.cpus[c]!.pending;
  const k = Math.min(q.length / 2, count);
  for (let j = 0; j < k; j++) {
    const loc = q[2 * j]!;
    const broadcast = q[2 * j + 1] === 1;
    s.cpus.forEach((cpu, d) => {
      if (!broadcast && d !== c) return;
      if (loc < 0) cpu.tlb.fill(-1);
      else cpu.tlb[loc] = -1;
    });
  }
  q.splice(0, 2 * k);
}

// ---------------------------------------------------------------------------
// Instructions

function readReg(cpu: CpuState, r: Reg): number {
  if (r.n === 31) return 0;
  const v = cpu.regs[r.n]!;
  return r.w ? low32(v) : v;
}

function writeReg(cpu: CpuState, r: Reg, v: number): void {
  if (r.n !== 31) cpu.regs[r.n] = r.w ? low32(v) : v;
}

function opnd(cpu: CpuState, o: Operand, w: boolean): number {
  return o.k === "imm" ? o.v : w ? low32(readReg(cpu, o.r)) : readReg(cpu, o.r);
}

function fault(s: MState, c: number, loc: number): void {
  const cpu = s.cpus[c]!;
  s.faults.push(`${c}:${cpu.pc}:${loc}`);
  s.faults.sort();
  cpu.st = FAULTED;
  cpu.tlb.fill(-1);
}

// The walk of location i's entry for CPU c; returns the physical location
// or -1 after recording a fault. Sets AF / clears AP[2] as HA / HD allow.
function walk(env: Env, s: MState, c: number, i: number, write: boolean): number {
  const { ha, hd } = env.t.tthm[c]!;
  let d = s.pte[i]!;
  if ((d & PTE_VALID) === 0) return -1;
  if ((d & PTE_AF) === 0) {
    if (!ha) return -1;
    d += PTE_AF;
  }
  if (write && (d & PTE_RDONLY) !== 0) {
    // A permission fault updates nothing.
    if (!(hd && hasDbm(d))) return -1;
    d -= PTE_RDONLY;
  }
  s.pte[i] = d;
  s.cpus[c]!.tlb[i] = d;
  return physOf(env, d);
}

function physOf(env: Env, d: number): number {
  const j = env.lay.locOfOa(d);
  if (j < 0) throw new LitmusUnsupported("an entry maps a physical address that is no location of the test");
  return j;
}

function translate(env: Env, s: MState, c: number, i: number, write: boolean): number {
  const cpu = s.cpus[c]!;
  const e = cpu.tlb[i]!;
  if (e < 0) return walk(env, s, c, i, write);
  if (!write || (e & PTE_RDONLY) === 0) return physOf(env, e);
  // A write through a read-only TLB entry: with DBM and HD the hardware
  // updates the entry in memory (atomically, from its current value),
  // otherwise it is a permission fault from the cached entry.
  if (env.t.tthm[c]!.hd && hasDbm(e)) {
    cpu.tlb[i] = -1;
    return walk(env, s, c, i, write);
  }
  return -1;
}

// The physical location or entry an access reaches: {pte, i}, or null after a fault.
function locate(env: Env, s: MState, c: number, a: Addr, write: boolean): { pte: boolean; i: number } | null {
  const cpu = s.cpus[c]!;
  let addr = readReg(cpu, a.base);
  if (a.off !== null) {
    const off = a.off.k === "imm" ? a.off.v : readReg(cpu, a.off.r);
    // SXTW / UXTW of a zero offset is the base; non-zero offsets are not page aligned here.
    addr = alu("add", addr, off, false);
  }
  const p = env.lay.locOfPteAddr(addr);
  if (p >= 0) return { pte: true, i: p };
  const v = env.lay.locOfVa(addr);
  if (v < 0) throw new LitmusUnsupported(`P${c} "${env.t.progs[c]![cpu.pc]!.text}" accesses an address that is no location of the test`);
  const j = translate(env, s, c, v, write);
  if (j < 0) {
    fault(s, c, v);
    return null;
  }
  return { pte: false, i: j };
}

function load(s: MState, at: { pte: boolean; i: number }): number {
  return at.pte ? s.pte[at.i]! : s.data[at.i]!;
}

function store(s: MState, at: { pte: boolean; i: number }, v: number): void {
  if (at.pte) s.pte[at.i] = v;
  else s.data[at.i] = v;
}

// Executes CPU c's next instruction on a copy of s.
export function step(env: Env, s0: MState, c: number): MState {
  const s = cloneState(s0);
  const cpu = s.cpus[c]!;
  const ins: Instr = env.t.progs[c]![cpu.pc]!;
  let next = cpu.pc + 1;
  switch (ins.op) {
    case "nop":
    case "dmb":
    case "isb":
      break;
    case "dsb":
      if (ins.kind === "full") completeTlbi(s, c, Number.POSITIVE_INFINITY);
      break;
    case "mov":
      writeReg(cpu, ins.d, opnd(cpu, ins.src, ins.d.w));
      break;
    case "alu":
      writeReg(cpu, ins.d, alu(ins.fn, readReg(cpu, ins.a), opnd(cpu, ins.b, ins.d.w), ins.d.w));
      break;
    case "cmp":
      cpu.z = readReg(cpu, ins.a) === opnd(cpu, ins.b, ins.a.w) ? 1 : 0;
      break;
    case "cset":
      writeReg(cpu, ins.d, (cpu.z === 1) === (ins.cond === "eq") ? 1 : 0);
      break;
    case "b":
      next = ins.target;
      break;
    case "cbz":
    case "cbnz":
      if ((readReg(cpu, ins.r) === 0) === (ins.op === "cbz")) next = ins.target;
      break;
    case "tlbi": {
      let loc = -1;
      if (!ins.all) {
        // The operand holds VA[55:12] in bits 43:0 (the ASID above is not modelled).
        loc = env.lay.locOfPage(Number(alu("and", readReg(cpu, ins.r!), 2 ** 44 - 1, false)));
        if (loc < 0) break; // names no page of the test
      }
      cpu.pending.push(loc, ins.broadcast ? 1 : 0);
      break;
    }
    case "ldr": {
      const at = locate(env, s, c, ins.addr, false);
      if (at === null) return s;
      writeReg(cpu, ins.t, load(s, at));
      break;
    }
    case "str": {
      const at = locate(env, s, c, ins.addr, true);
      if (at === null) return s;
      store(s, at, readReg(cpu, ins.t));
      break;
    }
    case "rmw": {
      const at = locate(env, s, c, ins.addr, true);
      if (at === null) return s;
      const w = ins.t.w;
      const old = w ? low32(load(s, at)) : load(s, at);
      const sv = readReg(cpu, ins.s);
      if (ins.fn === "cas") {
        if (old === sv) store(s, at, readReg(cpu, ins.t));
        writeReg(cpu, ins.s, old);
        break;
      }
      const nv = ins.fn === "swp" ? sv : alu(ins.fn === "ldclr" ? "bic" : ins.fn === "ldset" ? "orr" : ins.fn === "ldadd" ? "add" : "eor", old, sv, w);
      store(s, at, nv);
      writeReg(cpu, ins.t, old);
      break;
    }
  }
  cpu.pc = next;
  if (cpu.pc >= env.t.progs[c]!.length) {
    cpu.st = DONE;
    cpu.tlb.fill(-1);
  }
  return s;
}
