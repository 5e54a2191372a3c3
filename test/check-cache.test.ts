// The replay's cached checks (AccountingCache, TlbCache) against the full
// checks: corruption of an address space no event touched since the last
// check must still be found, and over a replay with seeded bugs both must
// report exactly the same violations.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AccountingCache, checkAccounting, checkTlbs, TlbCache } from "../src/core/check.js";
import { type Tlb, TLB_W } from "../src/core/hw/tlb.js";
import type { Machine, Violation } from "../src/core/machine.js";
import { PG_ANON, PG_ANON_EXCLUSIVE, PG_FREE, PG_PAGETABLE, PG_ZERO } from "../src/core/mm/physmem.js";
import { TBL_LIVE, TBL_RCU } from "../src/core/mm/pgtable.js";
import type { Mm } from "../src/core/mm/types.js";
import { pmdOffset, pteOffset } from "../src/core/mm/walk.js";
import { defaultReplayOptions, Replayer } from "../src/replay/replay.js";
import type { TraceEvent } from "../src/trace/events.js";
import { parseTraceFile } from "../src/trace/open.js";
import { sharedMissing, sharedPath } from "./shared-path.js";

const RW = { read: true, write: true, exec: false };
const PARENT = 100;
const CHILD = 101;
const P = 0x10000000; // parent's anon region, shared with the child by fork
const C = 0x30000000; // the child's own region

let line = 0;
const mmap = (pid: number, addr: number, pages: number, file?: string): TraceEvent => ({
  kind: "mmap",
  line: ++line,
  pid,
  syscall: "mmap",
  addr,
  hint: addr,
  len: pages * 4096,
  prot: RW,
  flags: file === undefined ? ["MAP_PRIVATE", "MAP_ANONYMOUS", "MAP_FIXED"] : ["MAP_PRIVATE", "MAP_FIXED"],
  fd: file === undefined ? -1 : 3,
  offset: 0,
  file,
});
const munmap = (pid: number, addr: number, pages: number): TraceEvent => ({ kind: "munmap", line: ++line, pid, syscall: "munmap", addr, len: pages * 4096 });
const fault = (pid: number, addr: number, write: boolean): TraceEvent => ({
  kind: "fault",
  line: ++line,
  pid,
  addr,
  write,
  fetch: false,
  major: false,
  kernel: false,
  mapType: "anon",
});
const fork = (pid: number, child: number): TraceEvent => ({
  kind: "clone",
  line: ++line,
  pid,
  syscall: "clone",
  child,
  thread: false,
  vfork: false,
  sharesMm: false,
});

// A parent with anon and file pages forks; the child writes some shared
// pages (COW) and the parent one (so it maps a writable exclusive page at P)
// and reads another (a read-only TLB entry).
function setup(): TraceEvent[] {
  const ev: TraceEvent[] = [mmap(PARENT, P, 32), mmap(PARENT, 0x20000000, 8, "/lib/f.so")];
  for (let k = 0; k < 32; k++) ev.push(fault(PARENT, P + k * 4096, true));
  for (let k = 0; k < 4; k++) ev.push(fault(PARENT, 0x20000000 + k * 4096, false));
  ev.push(fork(PARENT, CHILD));
  for (let k = 0; k < 8; k++) ev.push(fault(CHILD, P + k * 4096, true));
  ev.push(fault(PARENT, P, true), fault(PARENT, P + 31 * 4096, false), mmap(PARENT, 0x40000000, 1));
  return ev;
}

// Events of the child alone: each ends with a syscall, so each is checked.
function childStep(k: number): TraceEvent[] {
  const a = C + k * 0x200000;
  return [mmap(CHILD, a, 4), fault(CHILD, a, true), fault(CHILD, a + 4096, true), munmap(CHILD, a + 4096, 1)];
}

function parentMm(m: Machine): Mm {
  return m.mms[0] as Mm;
}

// Both checks, cached and full, after the same state.
function both(m: Machine, ac: AccountingCache, tc: TlbCache): { cached: Violation[]; full: Violation[] } {
  const cached = [...checkTlbs(m, undefined, tc), ...checkAccounting(m, ac)];
  const full = [...checkTlbs(m), ...checkAccounting(m)];
  return { cached, full };
}

interface Corruption {
  name: string;
  expect: string;
  // Returns how to undo it (undefined: it cannot be).
  apply(m: Machine): (() => void) | undefined;
}

// CPU0's TLB entry for the parent's page at addr: [tlb, index].
function parentTlbEntry(m: Machine, addr: number): [Tlb, number] {
  const t = (m.cpus[0] as Machine["cpus"][number]).tlb;
  for (let i = 0; i < t.tag.length; i++) {
    const key = t.tag[i] as number;
    if (key !== 0 && t.vpnOfKey(key) === addr / 4096 && m.arch.asidReachable(m, 0, t.asidOfKey(key)) === parentMm(m)) return [t, i];
  }
  throw new Error(`no TLB entry for the parent's ${addr.toString(16)} on CPU0`);
}

function setEntry(m: Machine, gi: number, v: number): () => void {
  const old = m.tables.get(gi);
  m.tables.set(gi, v);
  return () => m.tables.set(gi, old);
}

// Element i of a typed array (struct page flags, a TLB field) set to v; returns the undo.
function setAt(a: { [i: number]: number }, i: number, v: number): () => void {
  const old = a[i] as number;
  a[i] = v;
  return () => {
    a[i] = old;
  };
}
const setFlags = (m: Machine, pfn: number, f: number) => setAt(m.phys.flags, pfn, f);

const CORRUPTIONS: Corruption[] = [
  {
    name: "a page the parent maps is freed (a bug on the child's side)",
    expect: "pte-maps-freed-page",
    apply(m) {
      const pfn = m.arch.ptePfn(m.tables.get(pteOffset(m, parentMm(m), P + 16 * 4096)));
      m.phys.freeFolio(m.phys.folioHead(pfn));
      return undefined; // back in the allocator: for good
    },
  },
  {
    name: "the parent's writable anon page loses AnonExclusive",
    expect: "writable-anon-not-exclusive",
    apply(m) {
      const pfn = m.arch.ptePfn(m.tables.get(pteOffset(m, parentMm(m), P)));
      return setFlags(m, pfn, (m.phys.flags[pfn] as number) & ~PG_ANON_EXCLUSIVE);
    },
  },
  {
    name: "a parent PTE is write-protected without a flush",
    expect: "tlb-stale-write",
    apply(m) {
      const gi = pteOffset(m, parentMm(m), P);
      return setEntry(m, gi, m.arch.pteWrprotect(m.tables.get(gi)));
    },
  },
  {
    name: "a parent TLB entry for a read-only PTE gains write permission",
    expect: "tlb-stale-write",
    apply(m) {
      const [t, i] = parentTlbEntry(m, P + 31 * 4096);
      return setAt(t.perm, i, (t.perm[i] as number) | TLB_W);
    },
  },
  {
    name: "a parent TLB entry is refilled with another frame",
    expect: "tlb-stale-mapping",
    apply(m) {
      const [t, i] = parentTlbEntry(m, P + 31 * 4096);
      return setAt(t.pfn, i, (t.pfn[i] as number) + 1);
    },
  },
  {
    name: "a parent PTE loses its dirty bit while a TLB entry holds it dirty",
    expect: "tlb-stale-dirty",
    apply(m) {
      const gi = pteOffset(m, parentMm(m), P);
      return setEntry(m, gi, m.arch.pteMkclean(m.tables.get(gi)));
    },
  },
  {
    name: "a parent PTE is cleared without the counters",
    expect: "rss-anon",
    apply(m) {
      return setEntry(m, pteOffset(m, parentMm(m), P + 20 * 4096), 0);
    },
  },
  {
    name: "a parent PTE points to the next frame",
    expect: "mapcount",
    apply(m) {
      const gi = pteOffset(m, parentMm(m), P + 20 * 4096);
      return setEntry(m, gi, m.arch.pteAdvancePfn(m.tables.get(gi), 1));
    },
  },
  {
    name: "the parent's PMD entry is cleared without a flush",
    expect: "tlb-stale-mapping",
    apply(m) {
      return setEntry(m, pmdOffset(m, parentMm(m), P, false), 0);
    },
  },
  {
    name: "the parent's PMD entry points to the child's PTE table",
    expect: "tlb-stale-mapping",
    apply(m) {
      return setEntry(m, pmdOffset(m, parentMm(m), P, false), m.tables.get(pmdOffset(m, m.mms[1] as Mm, P, false)));
    },
  },
  {
    name: "the parent's PTE table is no longer live",
    expect: "table-not-live",
    apply(m) {
      const slot = Math.floor(pteOffset(m, parentMm(m), P) / 512);
      assert.equal(m.tables.state[slot], TBL_LIVE);
      m.tables.state[slot] = TBL_RCU;
      return () => {
        m.tables.state[slot] = TBL_LIVE;
      };
    },
  },
  {
    name: "a page the parent maps changes folio type",
    expect: "rss-file",
    apply(m) {
      const pfn = m.arch.ptePfn(m.tables.get(pteOffset(m, parentMm(m), P + 20 * 4096)));
      return setFlags(m, pfn, (m.phys.flags[pfn] as number) & ~PG_ANON);
    },
  },
];

describe("cached invariant checks", () => {
  for (const arch of ["x86_64", "arm64"] as const) {
    for (const c of CORRUPTIONS) {
      it(`${arch}: finds it when ${c.name}, in an mm no event touched`, () => {
        const r = new Replayer({ ...defaultReplayOptions(), arch, checkInvariants: false });
        const m = r.m;
        const ac = new AccountingCache();
        const tc = new TlbCache();
        for (const e of setup()) r.apply(e);
        assert.deepEqual(both(m, ac, tc), { cached: [], full: [] });
        // Child-only events: the parent's tables stay as cached.
        for (const e of childStep(0)) r.apply(e);
        assert.deepEqual(both(m, ac, tc), { cached: [], full: [] });
        c.apply(m);
        // A child event that allocates nothing (a freed page stays free).
        r.apply(munmap(CHILD, C, 1));
        const { cached, full } = both(m, ac, tc);
        assert.ok(
          cached.some((v) => v.invariant === c.expect),
          `${c.expect} not reported: ${JSON.stringify(cached.map((v) => v.message))}`,
        );
        assert.deepEqual(cached, full);
        // Checked again with nothing changed: the same report, not a memo of a clean table.
        assert.deepEqual(both(m, ac, tc), { cached, full });
      });
    }
  }

  it("caches handed another machine start over", () => {
    const a = new Replayer({ ...defaultReplayOptions(), checkInvariants: false });
    const b = new Replayer({ ...defaultReplayOptions(), checkInvariants: false });
    for (const e of setup()) a.apply(e);
    for (const e of setup()) b.apply(e);
    CORRUPTIONS[2]?.apply(b.m); // write-protected without a flush, in b only
    const ac = new AccountingCache();
    const tc = new TlbCache();
    for (const m of [a.m, b.m, a.m, b.m]) assert.deepEqual(both(m, ac, tc).cached, both(m, new AccountingCache(), new TlbCache()).full);
    assert.ok(both(b.m, ac, tc).cached.some((v) => v.invariant === "tlb-stale-write"));
  });

  it("a change that is undone between checks leaves nothing to report", () => {
    const r = new Replayer({ ...defaultReplayOptions(), checkInvariants: false });
    const m = r.m;
    const ac = new AccountingCache();
    const tc = new TlbCache();
    for (const e of setup()) r.apply(e);
    both(m, ac, tc);
    const gi = pteOffset(m, parentMm(m), P);
    const v = m.tables.get(gi);
    m.tables.set(gi, m.arch.pteWrprotect(v));
    assert.ok(both(m, ac, tc).cached.some((x) => x.invariant === "tlb-stale-write"));
    m.tables.set(gi, v);
    assert.deepEqual(both(m, ac, tc), { cached: [], full: [] });
  });

  it("the replay reports the same violations with cached and full checks (synthetic trace, seeded bugs)", () => {
    const events = [...setup()];
    for (let k = 0; k < 12; k++) events.push(...childStep(k), fault(PARENT, P + (8 + k) * 4096, true), mmap(PARENT, 0x50000000 + k * 4096, 1));
    // Before each syscall (each is checked), the next corruption; undone
    // after the check but for the freed page, left out if its target is
    // missing. A model that gives up on corrupt state must do so in both.
    const runs = [true, false].map((cachedChecks) => {
      const r = new Replayer({ ...defaultReplayOptions(), cachedChecks });
      let k = 0;
      let stop = "";
      for (const [i, e] of events.entries()) {
        let undo: (() => void) | undefined;
        if (i > events.length / 3 && e.kind !== "fault")
          try {
            undo = (CORRUPTIONS[k++ % CORRUPTIONS.length] as Corruption).apply(r.m);
          } catch {}
        try {
          r.apply(e);
        } catch (err) {
          stop = `${i}: ${(err as Error).message}`;
          break;
        }
        undo?.();
      }
      return { violations: r.violations, applied: k, stop };
    });
    assert.ok((runs[0]?.violations.length ?? 0) > 0);
    assert.deepEqual(runs[0], runs[1]);
  });
});

// A seeded-bug generator for the recorded trace: before some syscalls, one
// random corruption of a random live PTE table's entry, a frame it maps, the
// table's state or a TLB entry. Returns how to undo it; transient: must be
// undone after the event (a table that looks free would be freed twice).
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seededBug(m: Machine, r: () => number): { undo: () => void; transient: boolean } | null {
  const A = m.arch;
  const T = m.tables;
  const ph = m.phys;
  const slots: number[] = [];
  for (let s = 0; s < T.state.length; s++) if (T.state[s] === TBL_LIVE && T.level[s] === 0) slots.push(s);
  const slot = slots[Math.floor(r() * slots.length)];
  if (slot === undefined) return null;
  const present: number[] = [];
  for (let i = 0; i < 512; i++) if (A.ptePresent(T.get(slot * 512 + i))) present.push(slot * 512 + i);
  const gi = present[Math.floor(r() * present.length)];
  if (gi === undefined) return null;
  const v = T.get(gi);
  const pfn = A.ptePfn(v);
  const f = ph.flags[pfn] as number;
  const undo = (fn: () => void, transient = false) => ({ undo: fn, transient });
  const frame = (nf: number) => {
    if (f & (PG_FREE | PG_ZERO | PG_PAGETABLE)) return null;
    ph.flags[pfn] = nf;
    return undo(() => {
      ph.flags[pfn] = f;
    });
  };
  const entry = (nv: number, transient = false) => {
    T.set(gi, nv);
    return undo(() => T.set(gi, v), transient);
  };
  const cpu = m.cpus[Math.floor(r() * m.cpus.length)];
  switch (Math.floor(r() * 10)) {
    case 0:
      return entry(A.pteWrite(v) ? A.pteWrprotect(v) : A.pteMkwrite(v));
    case 1:
      return entry(0);
    case 2:
      return entry(A.pteMkclean(v));
    case 3:
      // Transient: kept, a later zap drops a reference to a frame the entry
      // does not own, and once that frame is a page table the teardown
      // frees it under its owner (the replay's table layout decides when).
      return entry(A.pteAdvancePfn(v, 1), true);
    case 4:
      return frame(f ^ PG_ANON_EXCLUSIVE);
    case 5:
      return frame(PG_FREE);
    case 6: {
      const mc = ph.mapcount[pfn] as number;
      ph.mapcount[pfn] = mc + 1;
      return undo(() => {
        ph.mapcount[pfn] = mc;
      });
    }
    case 7: {
      T.state[slot] = TBL_RCU;
      return undo(() => {
        T.state[slot] = TBL_LIVE;
      }, true);
    }
    case 8: {
      // An entry above the PTE level cleared, or pointed at the table another
      // such entry points to.
      const upper: number[] = [];
      for (let s = 0; s < T.state.length; s++)
        if (T.state[s] === TBL_LIVE && T.level[s] === 1) for (let i = 0; i < 512; i++) if (T.get(s * 512 + i) !== 0) upper.push(s * 512 + i);
      const a = upper[Math.floor(r() * upper.length)];
      const b = upper[Math.floor(r() * upper.length)];
      if (a === undefined || b === undefined) return null;
      const old = T.get(a);
      T.set(a, r() < 0.5 ? 0 : T.get(b));
      return undo(() => T.set(a, old), true);
    }
    default: {
      const t = cpu?.tlb;
      if (t === undefined) return null;
      const live: number[] = [];
      for (let i = 0; i < t.tag.length; i++) if (t.tag[i] !== 0) live.push(i);
      const i = live[Math.floor(r() * live.length)];
      if (i === undefined) return null;
      const p = t.perm[i] as number;
      const f = t.pfn[i] as number;
      if (r() < 0.5)
        t.perm[i] = p | 3; // writable and dirty
      else t.pfn[i] = f + 1;
      return undo(() => {
        t.perm[i] = p;
        t.pfn[i] = f;
      });
    }
  }
}

describe("cached invariant checks over the recorded trace", () => {
  it("report exactly what the full checks report, with seeded bugs", async (t) => {
    const f = sharedPath("traces", "gcc-python.perftrace.gz");
    const why = sharedMissing(f);
    if (why !== undefined) return t.skip(why);
    const { events } = await parseTraceFile(f, { reorder: 0.05 });
    const cached = new Replayer({ ...defaultReplayOptions(), cachedChecks: true });
    const full = new Replayer({ ...defaultReplayOptions(), cachedChecks: false });
    const ra = rng(7);
    const rb = rng(7);
    let n = 0;
    let bugs = 0;
    for await (const e of events) {
      let undo: (() => void)[] = [];
      if (e.kind !== "fault" && ++n % 23 === 0) {
        const keep = ra() < 0.5;
        rb();
        const ua = seededBug(cached.m, ra);
        const ub = seededBug(full.m, rb);
        if (ua !== null && ub !== null) {
          bugs++;
          if (!keep || ua.transient) undo = [ua.undo, ub.undo];
        }
      }
      cached.apply(e);
      full.apply(e);
      for (const u of undo) u();
      assert.equal(cached.violations.length, full.violations.length, `line ${e.line}`);
    }
    assert.ok(bugs > 50, `${bugs} seeded bugs`);
    assert.ok(cached.violations.length > 0);
    assert.deepEqual(cached.violations, full.violations);
  });
});
