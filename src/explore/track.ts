// Read and write tracking of the model's shared state while the explorer runs
// with its state cache (explore.ts). No Node APIs.
//
// Two things are kept:
// - A hash of the whole shared state, updated at every write (a Zobrist-style
//   XOR of one term per location: object field, array or typed-array element,
//   Map or Set entry). Locations holding 0 or undefined contribute nothing.
// - For the thread whose code runs, a running hash of every location it reads
//   and the value it found. A kernel path's local variables cannot be
//   inspected, but they are a function of what it read, so (state hash, each
//   thread's read hash) names the whole state.
//
// How. Every execution starts from the same state, so the hash starts at 0
// and only changes are hashed. Objects reachable from the roots (the runner
// and its machine) get ids in a fixed walk order and are instrumented in
// place when kernel code first reaches them: each own data field becomes a
// getter/setter pair, so object identity is unchanged. Containers (typed
// arrays, arrays, Maps, Sets) are read and written through proxies, handed
// out by the getters of the fields that hold them; the fields keep the raw
// container. An object or container stored during a step is new: rescan()
// (at the end of the step, and before any decision) adds it, and what hangs
// off it, to the hash. Statistics (Counters) and the objects named in `skip`
// (immutable configuration, the architecture's function table) are not
// tracked: nothing in the model reads counters to decide anything.
//
// Only explorer executions with the state cache pay for this; `ptlab run`
// never instruments anything.

import { Counters } from "../core/counters.js";

// Keys of the pseudo-locations "length of an array" and "size of a Map/Set".
const K_LENGTH = -1;
const K_SIZE = -2;

// ---- footprints (sleep sets, explore.ts) ---------------------------------------
// What one transition (a thread's run from one decision point to the next)
// read and wrote: locations (object id, key) hashed to 30 bits, so that sets
// hold small integers, not boxed doubles. Two locations can share a number:
// that only makes more transitions dependent, never fewer (two footprints of
// 4000 locations each meet by chance with probability about 1.5%). `i` holds commutative updates (a
// reader count going up or down): two of them commute, but not with a read
// or write of the same location.
export interface Footprint {
  r: Set<number>;
  w: Set<number>;
  i: Set<number>;
  global: boolean; // dependent on everything
}

export function newFootprint(): Footprint {
  return { r: new Set(), w: new Set(), i: new Set(), global: false };
}

export const loc = (id: number, key: number): number => fmix(Math.imul(id, 0x9e3779b1) ^ fmix(key ^ 0x7f4a7c15)) & 0x3fffffff;

function meets(a: Set<number>, b: Set<number>): boolean {
  if (a.size > b.size) [a, b] = [b, a];
  for (const x of a) if (b.has(x)) return true;
  return false;
}

// Two transitions are dependent when one writes what the other reads,
// writes or counts, or one counts what the other reads.
export function conflicts(a: Footprint, b: Footprint): boolean {
  if (a.global || b.global) return true;
  return meets(a.w, b.r) || meets(a.w, b.w) || meets(a.w, b.i) || meets(b.w, a.r) || meets(b.w, a.i) || meets(a.i, b.r) || meets(b.i, a.r);
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function strHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

type Raw = object;

export class Tracker {
  h1 = 0; // state hash, two 32-bit lanes
  h2 = 0;
  // Where the running transition's reads and writes go (null: nowhere).
  fp: Footprint | null = null;
  // Off: footprints only, no state hash or read hashes (sleep sets without
  // the state cache need no state keys).
  hashing = true;
  // on: record reads for `reader`. prox: hand out container proxies, so that
  // writes are hashed (off only for explorer code that does not write the
  // model's state: decisions, checks, rescans).
  private on = false;
  private prox = false;
  private reader = -1;
  private stack: number[] = []; // saved (mode, reader) pairs
  readonly hist: number[]; // per reader: [lane1, lane2] * n
  private ids = new WeakMap<object, number>();
  private nextId = 1;
  private proxyOf = new WeakMap<Raw, object>();
  private rawOf = new WeakMap<object, Raw>();
  private mapSeq = new WeakMap<Raw, Map<unknown, number>>(); // insertion order of Map/Set entries
  private seqNext = new WeakMap<Raw, number>();
  private keyHashes = new Map<string, number>();
  private v1 = 0;
  private v2 = 0;
  private readonly f64 = new Float64Array(1);
  private readonly u32 = new Uint32Array(this.f64.buffer);

  constructor(
    private readonly roots: readonly object[],
    private readonly skip: ReadonlySet<object>,
    readers: number,
  ) {
    this.hist = new Array(readers * 2).fill(0);
    // Every execution starts from the same state, so the hash starts at 0 and
    // only changes are hashed. Ids are handed out in a fixed walk order, so
    // that the same location has the same id on every path. Objects are
    // instrumented when kernel code first reaches them (most never are).
    const walk = (x: unknown): void => {
      if (typeof x !== "object" || x === null || !this.tracked(x) || this.ids.has(x)) return;
      this.hashed[this.idOf(x)] = 1;
      if (ArrayBuffer.isView(x)) return;
      if (Array.isArray(x)) for (const v of x) walk(v);
      else if (x instanceof Map)
        for (const [k, v] of x) {
          walk(k);
          walk(v);
        }
      else if (x instanceof Set) for (const v of x) walk(v);
      else for (const k in x) walk((x as Record<string, unknown>)[k]);
    };
    for (const r of roots) walk(r);
    for (const r of roots) this.instrument(r);
  }
  // By id: 1 when the location holder's contents are in the hash (it was
  // there at the start, or rescan() added it).
  private hashed: number[] = [];
  private instrumented = new WeakSet<object>();
  lastUnknown = ""; // what unknownReachable() last found, for its message
  private pending: object[] = []; // objects stored since the last rescan()

  // ---- who is running --------------------------------------------------------

  // A thread's code runs: record its reads.
  enter(reader: number): void {
    this.push(true, true, reader);
  }
  // Code without local state that writes the model (the RCU agent): its
  // reads go to the footprint only.
  agent(): void {
    this.push(true, true, -1);
  }
  // Explorer code whose reads decide something (an invariant checked at a
  // syscall's return, what a lockless reader saw): its reads go to `into`.
  recordInto(into: Footprint): void {
    this.push(true, true, -1);
    this.fpStack.push(this.fp);
    this.fp = into;
  }
  endRecord(): void {
    this.fp = this.fpStack.pop() as Footprint | null;
    this.leave();
  }
  private fpStack: (Footprint | null)[] = [];
  // The footprint location of element `i` of a typed array the kernel code
  // was handed (a proxy of a sub-array keeps its parent's numbering).
  locOfElement(a: object, i: number): number {
    const sub = this.subLoc.get(a);
    if (sub !== undefined) return loc(sub[0], sub[1] + i);
    return loc(this.idOf(this.rawOf.get(a) ?? a), i);
  }
  private subLoc = new WeakMap<object, [number, number]>();
  // Explorer code that only reads the model (decisions, checks).
  suspend(): void {
    this.push(false, false, -1);
  }
  private push(on: boolean, prox: boolean, reader: number): void {
    this.stack.push((this.on ? 1 : 0) | (this.prox ? 2 : 0), this.reader);
    this.on = on;
    this.prox = prox;
    this.reader = reader;
  }
  leave(): void {
    this.reader = this.stack.pop() as number;
    const mode = this.stack.pop() as number;
    this.on = (mode & 1) !== 0;
    this.prox = (mode & 2) !== 0;
  }

  // A value the running thread got from the explorer itself (a trylock result).
  note(x: number): void {
    this.read(0, 0x7ffffff, x);
  }

  // ---- hashing -----------------------------------------------------------------

  private keyOf(k: string): number {
    let h = this.keyHashes.get(k);
    if (h === undefined) {
      h = strHash(k) | 0x40000000; // apart from small element indices
      this.keyHashes.set(k, h);
    }
    return h;
  }

  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      // Id 2^21 - 1 names the explorer's own state in footprints.
      if (this.nextId >= 2 ** 21 - 1) throw new Error("explore: more than 2^21 - 2 tracked objects");
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }

  // Sets v1/v2 to the value's two hash words; false for "contributes nothing".
  private val(x: unknown): boolean {
    switch (typeof x) {
      case "number":
        if (x === 0) return false;
        if ((x | 0) === x) {
          this.v1 = x;
          this.v2 = 0x1f;
        } else {
          this.f64[0] = x;
          this.v1 = this.u32[0] as number;
          this.v2 = (this.u32[1] as number) ^ 0x2f;
        }
        return true;
      case "string":
        this.v1 = strHash(x);
        this.v2 = 0x3f;
        return true;
      case "boolean":
        this.v1 = x ? 1 : 2;
        this.v2 = 0x4f;
        return true;
      case "object":
        if (x === null) {
          this.v1 = 0;
          this.v2 = 0x5f;
        } else {
          const r = this.rawOf.get(x) ?? x;
          this.v1 = this.idOf(r);
          this.v2 = 0x6f;
        }
        return true;
      default:
        return false; // undefined, functions
    }
  }

  // XOR one location's term into the state hash.
  private term(id: number, key: number, x: unknown): void {
    if (!this.hashing || this.hashed[id] !== 1 || !this.val(x)) return;
    const a = fmix(Math.imul(id, 0x9e3779b1) ^ fmix(key ^ 0x7f4a7c15) ^ Math.imul(this.v1, 0x85ebca6b));
    this.h1 ^= fmix(a ^ this.v2);
    this.h2 ^= fmix(Math.imul(a ^ 0x1b873593, 0xcc9e2d51) ^ this.v1 ^ Math.imul(this.v2, 0x27d4eb2f));
  }

  write(id: number, key: number, old: unknown, now: unknown): void {
    // A store of the value already there is still a write: in another order
    // it would not be.
    if (this.on && this.fp !== null) this.fp.w.add(loc(id, key));
    if (old === now) return;
    this.term(id, key, old);
    this.term(id, key, now);
    if (typeof now === "object" && now !== null && this.hashed[this.ids.get(now) ?? 0] !== 1) this.pending.push(now);
  }

  // A Map/Set entry stored again unchanged (see write()).
  sameWrite(id: number, key: number): void {
    if (this.on && this.fp !== null) this.fp.w.add(loc(id, key));
  }

  read(id: number, key: number, x: unknown): void {
    if (this.fp !== null) this.fp.r.add(loc(id, key));
    const r = this.reader;
    if (r < 0 || !this.hashing) return;
    this.val(x);
    const hs = this.hist;
    hs[2 * r] = fmix(((hs[2 * r] as number) ^ Math.imul(id, 0x9e3779b1) ^ key) + this.v1);
    hs[2 * r + 1] = fmix(Math.imul((hs[2 * r + 1] as number) ^ id ^ Math.imul(key, 0x85ebca6b), 0xcc9e2d51) + this.v2);
  }

  // ---- what the kernel paths get ---------------------------------------------------

  private tracked(x: object): boolean {
    return !this.skip.has(x) && !(x instanceof Counters) && typeof x !== "function";
  }

  // The value as kernel code should see it: a tracking proxy for containers.
  wrap(x: unknown): unknown {
    if (typeof x !== "object" || x === null || !this.tracked(x)) return x;
    if (this.rawOf.has(x)) return x;
    if (ArrayBuffer.isView(x) || Array.isArray(x) || x instanceof Map || x instanceof Set) {
      let p = this.proxyOf.get(x);
      if (p === undefined) {
        p = this.makeProxy(x);
        this.proxyOf.set(x, p);
        this.rawOf.set(p, x);
      }
      return p;
    }
    if (!this.instrumented.has(x)) this.instrument(x);
    return x;
  }

  private unwrap(x: unknown): unknown {
    return typeof x === "object" && x !== null ? (this.rawOf.get(x) ?? x) : x;
  }

  // ---- discovering state -------------------------------------------------------------

  // Hashes what the last step stored that is new (objects are found where
  // they are written: a field, an element, an entry), with everything new
  // reachable from it, and instruments new objects right away: their
  // creator may still hold them.
  rescan(): void {
    if (this.pending.length === 0) return;
    this.suspend();
    const p = this.pending;
    this.pending = [];
    for (const o of p) this.ensure(o);
    this.leave();
  }

  private ensure(x: unknown): void {
    if (typeof x !== "object" || x === null) return;
    const o = this.unwrap(x) as object;
    if (!this.tracked(o)) return;
    const id = this.idOf(o);
    if (this.hashed[id] === 1) return;
    this.hashed[id] = 1;
    if (ArrayBuffer.isView(o)) {
      const a = o as unknown as ArrayLike<number>;
      for (let i = 0; i < a.length; i++) if (a[i] !== 0) this.term(id, i, a[i]);
      return;
    }
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) this.term(id, i, o[i]);
      this.term(id, K_LENGTH, o.length);
      for (const v of o) this.ensure(v);
      return;
    }
    if (o instanceof Map || o instanceof Set) {
      const seq = new Map<unknown, number>();
      let n = 0;
      for (const [k, v] of o.entries()) {
        seq.set(k, ++n);
        this.entryTerm(id, k, v, n);
      }
      this.mapSeq.set(o, seq);
      this.seqNext.set(o, n);
      this.term(id, K_SIZE, o.size);
      for (const [k, v] of o.entries()) {
        this.ensure(k);
        this.ensure(v);
      }
      return;
    }
    if (!this.instrumented.has(o)) this.instrument(o);
    for (const k of Object.keys(o)) {
      const v = (o as Record<string, unknown>)[k];
      if (typeof v === "function") continue;
      this.term(id, this.keyOf(k), v);
      this.ensure(v);
    }
  }

  // Every object reachable from the roots is hashed, and no instrumented
  // object has grown an untracked field (a check for tests).
  unknownReachable(): number {
    this.suspend();
    let n = 0;
    const seen = new Set<object>();
    const walk = (x: unknown, path = "root"): void => {
      if (typeof x !== "object" || x === null) return;
      const o = this.unwrap(x) as object;
      if (seen.has(o) || !this.tracked(o)) return;
      seen.add(o);
      if (this.hashed[this.ids.get(o) ?? 0] !== 1) {
        n++;
        this.lastUnknown = `${o.constructor?.name} at ${path}`;
      }
      if (ArrayBuffer.isView(o)) return;
      if (Array.isArray(o)) for (let i = 0; i < o.length; i++) walk(o[i], `${path}[${i}]`);
      else if (o instanceof Map)
        for (const [k, v] of o) {
          walk(k, `${path}.key`);
          walk(v, `${path}.get(${String(k)})`);
        }
      else if (o instanceof Set) for (const v of o) walk(v, `${path}{}`);
      else {
        if (this.instrumented.has(o))
          for (const k of Object.keys(o)) {
            const d = Object.getOwnPropertyDescriptor(o, k);
            if (d !== undefined && "value" in d && typeof d.value !== "function") {
              n++;
              this.lastUnknown = `${o.constructor?.name}.${k} (a field added later)`;
            }
          }
        for (const k in o) walk((o as Record<string, unknown>)[k], `${path}.${k}`);
      }
    };
    for (const r of this.roots) walk(r);
    this.leave();
    return n;
  }

  // Getters and setters for an object's own data fields (no hash terms: the
  // object is either part of the start state or hashed by ensure()).
  private instrument(o: object): void {
    this.instrumented.add(o);
    const id = this.idOf(o);
    for (const k of Object.keys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d === undefined || !("value" in d) || !d.configurable || typeof d.value === "function") continue;
      this.field(o, id, k, d.value, d.enumerable ?? true);
    }
  }

  private field(o: object, id: number, k: string, init: unknown, enumerable: boolean): void {
    const key = this.keyOf(k);
    let v = init;
    const T = this;
    Object.defineProperty(o, k, {
      enumerable,
      configurable: true,
      get() {
        if (!T.prox) return v;
        if (T.on) T.read(id, key, v);
        return T.wrap(v);
      },
      set(x: unknown) {
        x = T.unwrap(x);
        T.write(id, key, v, x);
        v = x;
      },
    });
  }

  private keyOfEntry(k: unknown): number {
    if (typeof k === "number") return fmix((k >>> 0) ^ fmix((Math.floor(k / 4294967296) | 0) + 0x3c6ef372));
    if (typeof k === "string") return this.keyOf(k);
    if (typeof k === "object" && k !== null) return this.idOf(this.rawOf.get(k) ?? k) ^ 0x20000000;
    return 0x10000000 ^ strHash(String(k));
  }

  // A Map/Set entry: its value, and its place in insertion order.
  private entryTerm(id: number, k: unknown, v: unknown, seq: number): void {
    const kk = this.keyOfEntry(k);
    this.term(id, kk, v === undefined ? true : v);
    this.term(id, kk ^ 0x55555555, seq);
  }

  // ---- container proxies -------------------------------------------------------------

  private makeProxy(o: object): object {
    if (ArrayBuffer.isView(o)) return this.typedProxy(o as unknown as Float64Array);
    if (Array.isArray(o)) return this.arrayProxy(o);
    if (o instanceof Map) return this.mapProxy(o);
    return this.setProxy(o as Set<unknown>);
  }

  private typedProxy(t: Float64Array, base = 0, parentId = -1): object {
    const T = this;
    const id = parentId >= 0 ? parentId : this.idOf(t);
    const handler: ProxyHandler<Float64Array> = {
      get(a, p) {
        if (typeof p === "string") {
          const c = p.charCodeAt(0);
          if (c >= 48 && c <= 57) {
            const i = Number(p);
            const v = a[i] as number;
            if (T.on) T.read(id, base + i, v);
            return v;
          }
          switch (p) {
            case "length":
            case "byteLength":
            case "byteOffset":
            case "BYTES_PER_ELEMENT":
              return a[p];
            case "set":
              return (src: ArrayLike<number>, off = 0) => {
                const s = T.unwrap(src) as ArrayLike<number>;
                const n = s.length;
                for (let i = 0; i < n; i++) {
                  const old = a[off + i] as number;
                  a[off + i] = s[i] as number;
                  T.write(id, base + off + i, old, a[off + i]);
                }
              };
            case "fill":
              return (v: number, start = 0, end = a.length) => {
                for (let i = start; i < end; i++) {
                  const old = a[i] as number;
                  a[i] = v;
                  T.write(id, base + i, old, a[i]);
                }
                return prox;
              };
            case "subarray":
              return (s = 0, e = a.length) => T.typedProxy(a.subarray(s, e), base + s, id);
          }
        }
        // Anything else reads every element (slice, indexOf, iteration, ...).
        if (T.on) for (let i = 0; i < a.length; i++) T.read(id, base + i, a[i]);
        const f = Reflect.get(a, p, a);
        return typeof f === "function" ? f.bind(a) : f;
      },
      set(a, p, x) {
        if (typeof p === "string") {
          const c = p.charCodeAt(0);
          if (c >= 48 && c <= 57) {
            const i = Number(p);
            const old = a[i] as number;
            a[i] = x as number;
            T.write(id, base + i, old, a[i]);
            return true;
          }
        }
        return Reflect.set(a, p, x, a);
      },
    };
    const prox: object = new Proxy(t, handler);
    if (parentId >= 0) {
      this.rawOf.set(prox, t);
      this.subLoc.set(prox, [id, base]);
    }
    return prox;
  }

  private arrayProxy(arr: unknown[]): object {
    const T = this;
    const id = this.idOf(arr);
    return new Proxy(arr, {
      get(a, p, recv) {
        if (typeof p === "string") {
          const c = p.charCodeAt(0);
          if (c >= 48 && c <= 57) {
            const i = Number(p);
            const v = a[i];
            if (T.on) T.read(id, i, v);
            return T.wrap(v);
          }
          if (p === "length") {
            if (T.on) T.read(id, K_LENGTH, a.length);
            return a.length;
          }
        }
        // Array methods are generic: called on the proxy, they come back
        // through these traps element by element.
        return Reflect.get(a, p, recv);
      },
      set(a, p, x) {
        if (typeof p === "string") {
          const c = p.charCodeAt(0);
          if (c >= 48 && c <= 57) {
            const i = Number(p);
            const old = a[i];
            const oldLen = a.length;
            x = T.unwrap(x);
            a[i] = x;
            T.write(id, i, old, x);
            if (a.length !== oldLen) T.write(id, K_LENGTH, oldLen, a.length);
            return true;
          }
          if (p === "length") {
            const n = Number(x);
            const oldLen = a.length;
            for (let i = n; i < oldLen; i++) T.write(id, i, a[i], undefined);
            a.length = n;
            T.write(id, K_LENGTH, oldLen, n);
            return true;
          }
        }
        return Reflect.set(a, p, x, a);
      },
      deleteProperty(a, p) {
        if (typeof p === "string") {
          const c = p.charCodeAt(0);
          if (c >= 48 && c <= 57) {
            const i = Number(p);
            T.write(id, i, a[i], undefined);
          }
        }
        return Reflect.deleteProperty(a, p);
      },
      has(a, p) {
        if (typeof p === "string" && T.on) {
          const c = p.charCodeAt(0);
          if (c >= 48 && c <= 57) T.read(id, Number(p), a[Number(p)]);
        }
        return Reflect.has(a, p);
      },
    });
  }

  private seqOf(m: object): Map<unknown, number> {
    let s = this.mapSeq.get(m);
    if (s === undefined) {
      s = new Map();
      this.mapSeq.set(m, s);
      // Entries from the start state come before any added later.
      this.seqNext.set(m, 1e9);
    }
    return s;
  }

  // An entry appears, changes or goes: hash terms and the size.
  private entryWrite(id: number, m: Map<unknown, unknown> | Set<unknown>, k: unknown, had: boolean, old: unknown, has: boolean, now: unknown): void {
    const seqs = this.seqOf(m);
    const kk = this.keyOfEntry(k);
    this.sameWrite(id, kk);
    if (had) {
      this.term(id, kk, old === undefined ? true : old);
      this.term(id, kk ^ 0x55555555, seqs.get(k));
    }
    let seq = seqs.get(k);
    if (has) {
      if (!had) {
        seq = (this.seqNext.get(m) ?? 0) + 1;
        this.seqNext.set(m, seq);
        seqs.set(k, seq);
      }
      this.term(id, kk, now === undefined ? true : now);
      this.term(id, kk ^ 0x55555555, seq);
    } else seqs.delete(k);
  }

  private readAll(id: number, m: Map<unknown, unknown> | Set<unknown>): void {
    if (!this.on) return;
    this.read(id, K_SIZE, m.size);
    for (const [k, v] of m.entries()) this.read(id, this.keyOfEntry(k), v === undefined ? true : v);
  }

  private mapProxy(map: Map<unknown, unknown>): object {
    const T = this;
    const id = this.idOf(map);
    const prox: object = new Proxy(map, {
      get(m, p) {
        switch (p) {
          case "get":
            return (k: unknown) => {
              const v = m.get(T.unwrap(k));
              if (T.on) T.read(id, T.keyOfEntry(k), v === undefined && m.has(T.unwrap(k)) ? true : v);
              return T.wrap(v);
            };
          case "has":
            return (k: unknown) => {
              const r = m.has(T.unwrap(k));
              if (T.on) T.read(id, T.keyOfEntry(k), r ? (m.get(T.unwrap(k)) ?? true) : undefined);
              return r;
            };
          case "set":
            return (k: unknown, v: unknown) => {
              const rk = T.unwrap(k);
              const rv = T.unwrap(v);
              const had = m.has(rk);
              const old = m.get(rk);
              m.set(rk, rv);
              if (!had || old !== rv) T.entryWrite(id, m, rk, had, old, true, rv);
              else T.sameWrite(id, T.keyOfEntry(rk));
              if (!had) T.write(id, K_SIZE, m.size - 1, m.size);
              return prox;
            };
          case "delete":
            return (k: unknown) => {
              const rk = T.unwrap(k);
              const had = m.has(rk);
              const old = m.get(rk);
              if (had) {
                m.delete(rk);
                T.entryWrite(id, m, rk, true, old, false, undefined);
                T.write(id, K_SIZE, m.size + 1, m.size);
              } else if (T.on) T.read(id, T.keyOfEntry(rk), undefined);
              return had;
            };
          case "clear":
            return () => {
              for (const k of [...m.keys()]) (prox as Map<unknown, unknown>).delete(k);
            };
          case "size":
            if (T.on) T.read(id, K_SIZE, m.size);
            return m.size;
          default: {
            // Iteration (entries, keys, values, forEach, Symbol.iterator).
            T.readAll(id, m);
            const f = Reflect.get(m, p, m);
            if (typeof f !== "function") return f;
            if (p === "forEach")
              return (cb: (v: unknown, k: unknown, mm: unknown) => void) => {
                for (const [k, v] of [...m.entries()]) cb(T.wrap(v), k, prox);
              };
            if (p === "values") return () => [...m.values()].map((v) => T.wrap(v))[Symbol.iterator]();
            if (p === "entries" || p === Symbol.iterator) return () => [...m.entries()].map(([k, v]) => [k, T.wrap(v)])[Symbol.iterator]();
            return f.bind(m);
          }
        }
      },
    });
    return prox;
  }

  private setProxy(set: Set<unknown>): object {
    const T = this;
    const id = this.idOf(set);
    const prox: object = new Proxy(set, {
      get(s, p) {
        switch (p) {
          case "has":
            return (k: unknown) => {
              const r = s.has(T.unwrap(k));
              if (T.on) T.read(id, T.keyOfEntry(k), r ? true : undefined);
              return r;
            };
          case "add":
            return (k: unknown) => {
              const rk = T.unwrap(k);
              if (!s.has(rk)) {
                s.add(rk);
                T.entryWrite(id, s, rk, false, undefined, true, rk);
                T.write(id, K_SIZE, s.size - 1, s.size);
              } else T.sameWrite(id, T.keyOfEntry(rk));
              return prox;
            };
          case "delete":
            return (k: unknown) => {
              const rk = T.unwrap(k);
              if (!s.has(rk)) {
                if (T.on) T.read(id, T.keyOfEntry(rk), undefined);
                return false;
              }
              s.delete(rk);
              T.entryWrite(id, s, rk, true, rk, false, undefined);
              T.write(id, K_SIZE, s.size + 1, s.size);
              return true;
            };
          case "clear":
            return () => {
              for (const k of [...s]) (prox as Set<unknown>).delete(k);
            };
          case "size":
            if (T.on) T.read(id, K_SIZE, s.size);
            return s.size;
          default: {
            T.readAll(id, s);
            const f = Reflect.get(s, p, s);
            if (typeof f !== "function") return f;
            if (p === "forEach")
              return (cb: (v: unknown, k: unknown, ss: unknown) => void) => {
                for (const v of [...s]) cb(T.wrap(v), T.wrap(v), prox);
              };
            if (p === "values" || p === "keys" || p === Symbol.iterator) return () => [...s].map((v) => T.wrap(v))[Symbol.iterator]();
            return f.bind(s);
          }
        }
      },
    });
    return prox;
  }
}

// Folds a number into a running 53-bit hash (state keys).
export function mix53(h: number, v: number): number {
  const lo = fmix(((h % 4294967296) ^ (v >>> 0)) + 0x9e3779b9);
  const hi = fmix((Math.floor(h / 4294967296) ^ (Math.floor(v / 4294967296) | 0)) + lo) & 0x1fffff;
  return hi * 4294967296 + lo;
}
