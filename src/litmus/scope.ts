// Which tests a sequentially consistent machine can decide. machine.ts runs
// each CPU's instructions in program order against one shared memory, and
// performs an instruction's translation (and its hardware Access flag or
// dirty update) when the instruction executes. Arm's VMSA allows more: plain
// accesses to different locations reorder unless a barrier or a dependency
// orders them; a translation-table walk may be made before po-earlier
// instructions unless a context synchronisation (ISB) orders it (the Arm
// ARM lets translation table walks be performed speculatively); and
// a hardware AF/dirty update is a write that other CPUs may see after the
// updating CPU's later accesses unless a full barrier orders them. A test
// whose verdict could depend on one of those is "outside the model". The
// rules below decide that from the test's text alone (its programs, initial
// state and condition), never from its name or a recorded verdict; each is
// conservative (it may mark a test that SC would decide correctly).
//
//   R1 reorder      two explicit accesses of one CPU to different locations,
//                   both shared with another CPU (one of them written), not
//                   ordered by DMB/DSB (LD: after a read; ST: write to
//                   write), acquire/release, or an address, data or control
//                   dependency (control only to a write, or with an ISB);
//   R2 early walk   an access through VA v whose entry may change during the
//                   test (an explicit write of pte_v, or another CPU's
//                   hardware update) follows an explicit access or TLBI of
//                   its CPU with no ISB between (nor DSB then ISB after its own
//                   pte_v stores), and an earlier walk could differ from the
//                   SC one: (i) an older entry faults where a newer one does
//                   not (an early walk faults; a TLB caches no faulting
//                   entry, so a speculative fill cannot stand for it), (ii)
//                   the access may set the dirty state (DBM, HD) of an entry
//                   an explicit access or the condition reads, or (iii) a
//                   TLBI reaching this CPU names v (an early walk survives the
//                   TLBI; a TLB fill does not). Early Access-flag updates need
//                   no rule: the runner's speculative fills make them;
//   R3 update order an access may make a hardware AF/dirty update of pte_v,
//                   another CPU reads pte_v explicitly or would fault on the
//                   old entry, and the access's CPU touches shared locations
//                   at or after it without a full DMB/DSB between;
//   R4 TLBI order   a CPU stores to a pte and issues a TLBI without a DSB
//                   between (the TLBI may overtake the store).
// No Node APIs.

import { PTE_AF, PTE_RDONLY, PTE_VALID } from "../core/arch/arm64/pgtable.js";
import { alu, hasDbm, type Layout } from "./layout.js";
import type { Env } from "./machine.js";
import type { Instr, LitmusTest, Prop } from "./types.js";

/** A static view of one explicit access. */
export interface Access {
  cpu: number;
  k: number; // instruction index
  ins: Instr;
  read: boolean;
  write: boolean;
  pte: number; // the entry it accesses explicitly, or -1
  va: number; // the location whose VA it translates, or -1
  unknown: boolean; // address not known statically
  addrDeps: Set<number>; // loads (instruction indices) the address depends on
  dataDeps: Set<number>; // loads the stored value depends on
}

export interface CpuFacts {
  accesses: Access[];
  // For each instruction, the loads a branch at it depends on (branches only).
  ctrlDeps: Map<number, Set<number>>;
}

type AbsVal = number | null; // a known value or unknown

function same(a: Set<number>, b: Set<number>): Set<number> {
  return new Set([...a].filter((x) => b.has(x)));
}

// Register values and dependencies along the program, forward branches
// merged (a value known on every path; a dependency present on every path).
// A backward branch makes every later address unknown.
export function analyseCpu(t: LitmusTest, lay: Layout, c: number): CpuFacts {
  const prog = t.progs[c]!;
  type St = { vals: AbsVal[]; deps: Set<number>[] } | null;
  const init: St = { vals: new Array<AbsVal>(32).fill(0), deps: Array.from({ length: 32 }, () => new Set<number>()) };
  for (const [r, v] of t.initRegs[c]!) {
    try {
      init.vals[r] = lay.value(v);
    } catch {
      init.vals[r] = null;
    }
  }
  const incoming: St[] = prog.map(() => null);
  const merge = (a: St, b: St): St => {
    if (a === null) return b;
    if (b === null) return a;
    return { vals: a.vals.map((v, i) => (v === b.vals[i] ? v : null)), deps: a.deps.map((d, i) => same(d, b.deps[i]!)) };
  };
  const accesses: Access[] = [];
  const ctrlDeps = new Map<number, Set<number>>();
  let loops = false;
  let st: St = init;
  for (let k = 0; k < prog.length; k++) {
    st = merge(st, incoming[k]!);
    if (st === null) continue; // unreachable
    const s: { vals: AbsVal[]; deps: Set<number>[] } = { vals: st.vals.slice(), deps: st.deps.slice() };
    const ins = prog[k]!;
    const rv = (n: number): AbsVal => (n === 31 ? 0 : s.vals[n]!);
    const rd = (n: number): Set<number> => (n === 31 ? new Set() : s.deps[n]!);
    const set = (n: number, v: AbsVal, d: Set<number>): void => {
      if (n === 31) return;
      s.vals[n] = v;
      s.deps[n] = d;
    };
    const addrOf = (a: { base: { n: number }; off: { k: "reg"; r: { n: number } } | { k: "imm"; v: number } | null }) => {
      const b = rv(a.base.n);
      const o = a.off === null ? 0 : a.off.k === "imm" ? a.off.v : rv(a.off.r.n);
      const deps = new Set(rd(a.base.n));
      if (a.off !== null && a.off.k === "reg") for (const x of rd(a.off.r.n)) deps.add(x);
      let v: AbsVal = null;
      if (!loops && b !== null && o !== null) {
        try {
          v = alu("add", b, o, false);
        } catch {
          v = null;
        }
      }
      return { v, deps };
    };
    const access = (read: boolean, write: boolean, a: Parameters<typeof addrOf>[0], data: Set<number>): void => {
      const { v, deps } = addrOf(a);
      const pte = v === null ? -1 : lay.locOfPteAddr(v);
      const va = v === null || pte >= 0 ? -1 : lay.locOfVa(v);
      accesses.push({ cpu: c, k, ins, read, write, pte, va, unknown: v === null || (pte < 0 && va < 0), addrDeps: deps, dataDeps: data });
    };
    let fall = true;
    switch (ins.op) {
      case "mov":
        if (ins.src.k === "imm") set(ins.d.n, ins.src.v, new Set());
        else set(ins.d.n, rv(ins.src.r.n), rd(ins.src.r.n));
        break;
      case "alu": {
        const a = rv(ins.a.n);
        const b = ins.b.k === "imm" ? ins.b.v : rv(ins.b.r.n);
        const d = new Set(rd(ins.a.n));
        if (ins.b.k === "reg") for (const x of rd(ins.b.r.n)) d.add(x);
        let v: AbsVal = null;
        if (a !== null && b !== null) {
          try {
            v = alu(ins.fn, a, b, ins.d.w);
          } catch {
            v = null;
          }
        }
        set(ins.d.n, v, d);
        break;
      }
      case "cmp":
        break;
      case "cset":
        set(ins.d.n, null, new Set());
        break;
      case "ldr":
        access(true, false, ins.addr, new Set());
        set(ins.t.n, null, new Set([k]));
        break;
      case "str":
        access(false, true, ins.addr, rd(ins.t.n));
        break;
      case "rmw": {
        const data = new Set([...rd(ins.s.n), ...rd(ins.t.n)]);
        access(true, true, ins.addr, data);
        set(ins.fn === "cas" ? ins.s.n : ins.t.n, null, new Set([k]));
        break;
      }
      case "b":
      case "cbz":
      case "cbnz": {
        if (ins.op !== "b") ctrlDeps.set(k, new Set(rd(ins.r.n)));
        else ctrlDeps.set(k, new Set());
        if (ins.target <= k) loops = true;
        else incoming[ins.target] = merge(incoming[ins.target] ?? null, s);
        if (ins.op === "b") fall = false;
        break;
      }
      default:
        break;
    }
    st = fall ? s : null;
  }
  if (loops) for (const a of accesses) a.unknown = true;
  return { accesses, ctrlDeps };
}

/** Why a test is outside the model, or null. */
export function outsideReason(env: Env, facts: CpuFacts[]): string | null {
  const { t, lay } = env;
  const n = t.locs.length;
  const ncpu = t.progs.length;
  const all = facts.flatMap((f) => f.accesses);
  const desc = (i: number) => `pte_${t.locs[i]}`;

  // The values an entry may hold: its initial value, the values stored to it
  // (null: a value not known statically), and those with AF set / AP[2]
  // cleared by hardware.
  const initPte = t.locs.map((_, i) => lay.desc({}, i));
  for (const m of t.initMem) if (m.pte) initPte[lay.index(m.loc)] = lay.value(m.v, lay.index(m.loc));
  const stores: { cpu: number; k: number; v: number | null }[][] = t.locs.map(() => []);
  for (const a of all) {
    if (!a.write) continue;
    const targets = a.unknown ? t.locs.map((_, i) => i) : a.pte >= 0 ? [a.pte] : [];
    for (const i of targets) stores[i]!.push({ cpu: a.cpu, k: a.k, v: storedValue(env, a) });
  }
  const valuesOf = (i: number): (number | null)[] => [initPte[i]!, ...stores[i]!.map((s) => s.v)];
  const unknownWriter = all.some((a) => a.unknown && a.write);

  // Physical locations a translated access may reach.
  const physOf = (a: Access): Set<number> => {
    if (a.unknown) return new Set(t.locs.map((_, i) => i));
    if (a.va < 0) return new Set();
    const out = new Set<number>();
    for (const v of valuesOf(a.va)) {
      if (v === null) return new Set(t.locs.map((_, i) => i));
      const j = lay.locOfOa(v);
      if (j >= 0) out.add(j);
    }
    return out;
  };
  // Objects: data location i is i, entry i is n + i.
  const objs = (a: Access): Set<number> => {
    if (a.unknown) return new Set(Array.from({ length: 2 * n }, (_, i) => i));
    if (a.pte >= 0) return new Set([n + a.pte]);
    return physOf(a);
  };
  const hwAf = (c: number, i: number) => t.tthm[c]!.ha && valuesOf(i).some((v) => v === null || ((v & PTE_VALID) !== 0 && (v & PTE_AF) === 0));
  const hwDb = (c: number, i: number, write: boolean) =>
    write && t.tthm[c]!.hd && valuesOf(i).some((v) => v === null || ((v & PTE_VALID) !== 0 && (v & PTE_RDONLY) !== 0 && hasDbm(v)));
  const hwUpd = (a: Access) => a.va >= 0 && (hwAf(a.cpu, a.va) || hwDb(a.cpu, a.va, a.write));
  // Explicit and implicit (walk, hardware update) reads and writes per CPU.
  const reads = Array.from({ length: ncpu }, () => new Set<number>());
  const writes = Array.from({ length: ncpu }, () => new Set<number>());
  for (const a of all) {
    for (const o of objs(a)) {
      if (a.read) reads[a.cpu]!.add(o);
      if (a.write) writes[a.cpu]!.add(o);
    }
    if (a.va >= 0) {
      reads[a.cpu]!.add(n + a.va);
      if (hwUpd(a)) writes[a.cpu]!.add(n + a.va);
    }
  }
  const shared = (a: Access): boolean => {
    for (let d = 0; d < ncpu; d++) {
      if (d === a.cpu) continue;
      for (const o of objs(a)) {
        if (a.read && writes[d]!.has(o)) return true;
        if (a.write && (reads[d]!.has(o) || writes[d]!.has(o))) return true;
      }
    }
    return false;
  };
  const touchedByOthers = (a: Access): boolean => {
    for (let d = 0; d < ncpu; d++) {
      if (d === a.cpu) continue;
      for (const o of objs(a)) if (reads[d]!.has(o) || writes[d]!.has(o)) return true;
    }
    return false;
  };
  const between = (c: number, from: number, to: number) => t.progs[c]!.slice(from + 1, to);
  const fullDsb = (c: number, from: number, to: number) => between(c, from, to).some((i) => i.op === "dsb" && i.kind === "full");

  // R1: reordering of explicit accesses.
  if (ncpu > 1) {
    for (const f of facts) {
      const acc = f.accesses;
      for (let x = 0; x < acc.length; x++) {
        for (let y = x + 1; y < acc.length; y++) {
          const a = acc[x]!;
          const b = acc[y]!;
          const oa = objs(a);
          const ob = objs(b);
          if (oa.size === 1 && ob.size === 1 && [...oa][0] === [...ob][0]) continue;
          if (!shared(a) || !shared(b)) continue;
          if (ordered(t, f, a, b)) continue;
          return `R1 reorder: P${a.cpu} "${a.ins.text}" and "${b.ins.text}" access different shared locations with nothing ordering them`;
        }
      }
    }
  }

  // R2: early walks.
  for (const f of facts) {
    for (const b of f.accesses) {
      if (b.va < 0 && !b.unknown) continue;
      const c = b.cpu;
      const prog = t.progs[c]!;
      let isb = -1;
      for (let k = b.k - 1; k >= 0; k--)
        if (prog[k]!.op === "isb") {
          isb = k;
          break;
        }
      const prior = f.accesses.some((a) => a.k > isb && a.k < b.k) || between(c, isb, b.k).some((i) => i.op === "tlbi");
      const locs = b.unknown ? t.locs.map((_, i) => i) : [b.va];
      for (const v of locs) {
        // The CPU's own stores to the entry reach the walk after a DSB that
        // waits for stores (not DSB LD) and then an ISB.
        const ownStoreUnsynced = f.accesses.some(
          (a) => a.write && (a.pte === v || a.unknown) && a.k < isb && !between(c, a.k, isb).some((i) => i.op === "dsb" && i.kind !== "ld"),
        );
        if (!prior && !ownStoreUnsynced) continue;
        const why = `R2 early walk: P${c} "${b.ins.text}" follows an access with no ISB between, and`;
        const explicitWrites = stores[v]!.length > 0 || unknownWriter;
        const otherUpdates = all.some((a) => a.cpu !== c && a.va === v && hwUpd(a));
        const observed = all.some((a) => a.pte === v || a.unknown) || condReadsPte(t.cond, t.locs[v]!);
        // (ii) an early dirty update of an entry read or written explicitly.
        if (hwDb(c, v, b.write) && observed) return `${why} may set the dirty state of ${desc(v)} before them (ii)`;
        if (!explicitWrites && !otherUpdates) continue;
        const vals = valuesOf(v);
        const hwVals = vals.flatMap((x) =>
          x === null ? [] : [x, (x & PTE_AF) !== 0 ? x : x + PTE_AF, (x & PTE_RDONLY) !== 0 && hasDbm(x) ? x - PTE_RDONLY : x],
        );
        const faults = (x: number | null) => x === null || translationFaults(t, c, x, b.write);
        // (i) an older faulting entry before a newer one that does not fault.
        const later = [...vals.slice(1), ...(otherUpdates ? hwVals : [])];
        const risky = vals.some((x, idx) => faults(x) && (idx === 0 ? later : vals.slice(1)).some((y) => !faults(y)));
        if (risky) return `${why} an older ${desc(v)} faults where a newer one does not (i)`;
        if (!explicitWrites) continue;
        // (iii) a TLBI that reaches this CPU and names v.
        if (tlbiReaches(env, c, v)) return `${why} a TLBI reaching P${c} names ${t.locs[v]} (iii)`;
        // (iv) two usable entries with different output addresses: an early
        // walk may use the older after a po-earlier access used the newer.
        const oas = new Set(vals.map((x) => (x === null ? -2 : faults(x) ? -1 : lay.locOfOa(x))).filter((o) => o !== -1));
        if (oas.size > 1) return `${why} ${desc(v)} maps more than one page during the test (iv)`;
      }
    }
  }

  // R3: order of hardware updates against the updating CPU's later accesses.
  for (const f of facts) {
    for (const a of f.accesses) {
      if (!hwUpd(a)) continue;
      const v = a.va;
      const observers = all.some((b) => b.cpu !== a.cpu && (b.pte === v || b.unknown) && b.read);
      const faulters = all.some((b) => b.cpu !== a.cpu && b.va === v && (!t.tthm[b.cpu]!.ha || (b.write && !t.tthm[b.cpu]!.hd)));
      if (!observers && !faulters) continue;
      if (touchedByOthers(a))
        return `R3 update order: the hardware update of ${desc(v)} by P${a.cpu} "${a.ins.text}" and the access itself may be seen in either order`;
      const later = f.accesses.find((b) => b.k > a.k && touchedByOthers(b) && !fullDsb(a.cpu, a.k, b.k));
      if (later !== undefined)
        return `R3 update order: the hardware update of ${desc(v)} by P${a.cpu} "${a.ins.text}" is not ordered before "${later.ins.text}" by a DSB`;
    }
  }

  // R4: a TLBI after a pte store or a shared access with no DSB of the
  // matching kind between (DSB LD waits for loads, DSB ST for stores).
  for (const f of facts) {
    for (const a of f.accesses) {
      if (!(a.write && (a.pte >= 0 || a.unknown)) && !shared(a)) continue;
      const prog = t.progs[a.cpu]!;
      for (let k = a.k + 1; k < prog.length; k++) {
        const i = prog[k]!;
        if (i.op === "dsb" && (i.kind === "full" || (i.kind === "ld" && a.read && !a.write) || (i.kind === "st" && a.write && !a.read))) break;
        if (i.op === "tlbi") return `R4 TLBI order: P${a.cpu} "${i.text}" follows "${a.ins.text}" with no DSB between that waits for it`;
      }
    }
  }
  return null;
}

// Is the pair (a, b) of one CPU ordered by a barrier, acquire/release or a dependency?
function ordered(t: LitmusTest, f: CpuFacts, a: Access, b: Access): boolean {
  const mid = t.progs[a.cpu]!.slice(a.k + 1, b.k);
  for (const i of mid) {
    if (i.op !== "dmb" && i.op !== "dsb") continue;
    if (i.kind === "full") return true;
    if (i.kind === "ld" && a.read) return true;
    if (i.kind === "st" && !a.read && a.write && b.write) return true;
  }
  if (a.ins.op === "ldr" && a.ins.acquire) return true;
  if (b.ins.op === "str" && b.ins.release) return true;
  if (a.read && b.addrDeps.has(a.k)) return true;
  if (a.read && b.write && b.dataDeps.has(a.k)) return true;
  for (const [k, deps] of f.ctrlDeps) {
    if (k <= a.k || k >= b.k || !deps.has(a.k)) continue;
    if (b.write) return true;
    if (mid.slice(k - a.k).some((i) => i.op === "isb")) return true;
  }
  return false;
}

function storedValue(env: Env, a: Access): number | null {
  const ins = a.ins;
  if (ins.op !== "str" && !(ins.op === "rmw" && (ins.fn === "swp" || ins.fn === "cas"))) return null;
  const r = ins.op === "str" ? ins.t : ins.fn === "swp" ? ins.s : ins.t;
  const v = env.t.initRegs[a.cpu]!.get(r.n);
  // Only values the CPU never recomputes: the register is written by no instruction.
  if (v === undefined || env.t.progs[a.cpu]!.some((i) => "d" in i && i.d.n === r.n)) return null;
  if (env.t.progs[a.cpu]!.some((i) => (i.op === "ldr" && i.t.n === r.n) || (i.op === "rmw" && (i.fn === "cas" ? i.s.n : i.t.n) === r.n))) return null;
  try {
    return env.lay.value(v);
  } catch {
    return null;
  }
}

// Would CPU c's access fault with this entry (after the hardware updates its TTHM allows)?
function translationFaults(t: LitmusTest, c: number, d: number, write: boolean): boolean {
  if ((d & PTE_VALID) === 0) return true;
  if ((d & PTE_AF) === 0 && !t.tthm[c]!.ha) return true;
  return write && (d & PTE_RDONLY) !== 0 && !(t.tthm[c]!.hd && hasDbm(d));
}

function condReadsPte(p: Prop, loc: string): boolean {
  if (p.k === "atom") return p.a.k === "mem" && p.a.pte && p.a.loc === loc;
  if (p.k === "not") return condReadsPte(p.p, loc);
  if (p.k === "and" || p.k === "or") return p.ps.some((q) => condReadsPte(q, loc));
  return false;
}

// Does some TLBI that reaches CPU c name location v (or all, or an unknown page)?
function tlbiReaches(env: Env, c: number, v: number): boolean {
  return env.t.progs.some((prog, d) =>
    prog.some((i, k) => {
      if (i.op !== "tlbi" || (!i.broadcast && d !== c)) return false;
      if (i.all) return true;
      const page = tlbiOperand(env, d, k);
      return page === null || env.lay.locOfPage(page) === v;
    }),
  );
}

// The page a TLBI's operand names, when its register is computed from known values.
function tlbiOperand(env: Env, d: number, k: number): number | null {
  const prog = env.t.progs[d]!;
  const ins = prog[k]!;
  if (ins.op !== "tlbi" || ins.r === null) return null;
  // Replay the straight-line register computation up to k.
  const vals = new Array<number | null>(32).fill(0);
  for (const [r, v] of env.t.initRegs[d]!) {
    try {
      vals[r] = env.lay.value(v);
    } catch {
      vals[r] = null;
    }
  }
  for (let j = 0; j < k; j++) {
    const i = prog[j]!;
    if (i.op === "b" || i.op === "cbz" || i.op === "cbnz") return null;
    if (i.op === "mov") vals[i.d.n] = i.src.k === "imm" ? i.src.v : vals[i.src.r.n]!;
    else if (i.op === "alu") {
      const a = vals[i.a.n]!;
      const b = i.b.k === "imm" ? i.b.v : vals[i.b.r.n]!;
      vals[i.d.n] = a === null || b === null ? null : alu(i.fn, a, b, i.d.w);
    } else if (i.op === "ldr") vals[i.t.n] = null;
    else if (i.op === "rmw") vals[i.fn === "cas" ? i.s.n : i.t.n] = null;
    else if (i.op === "cset") vals[i.d.n] = null;
  }
  const v = vals[ins.r.n]!;
  return v === null ? null : Number(alu("and", v, 2 ** 44 - 1, false));
}
