// Page migration against the kernel's rules, on x86-64 and arm64: the
// migration entry encodings (PTE and PMD) round-trip, a `migrate` step moves
// every mapped page to a new frame keeping RSS, write permission, dirtiness
// and AnonExclusive; after fork the shared pages move for both processes; a
// read-only mapping stays read-only; a contpte block is unfolded and
// refolded; swap-cache and page-cache folios take their cache entry along;
// a PMD-mapped THP moves whole through a PMD migration entry (also with the
// 16K and 64K granules), which faults retry on and which fork, mprotect,
// munmap, MADV_DONTNEED, mremap and a VMA split handle as v6.17 does; a
// migration entry left in a table is reported (migration-entry-stale) and a
// fault on it livelocks; zap, fork and mprotect handle migration entries as
// the kernel does.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE } from "../src/core/arch/arch.js";
import { checkAccounting, checkTlbs } from "../src/core/check.js";
import { userAccess } from "../src/core/arch/fault.js";
import { PG_ANON_EXCLUSIVE, PG_DIRTY, PG_SWAPBACKED } from "../src/core/mm/physmem.js";
import { run as runGen } from "../src/core/sync.js";
import { migrateRange, removeMigrationPtes } from "../src/core/mm/migrate.js";
import { TlbUbc, tryToMigrate, tryToUnmapFlush } from "../src/core/mm/rmap.js";
import { folioIsolateLru } from "../src/core/mm/vmscan.js";
import { pmdOffset } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";
import { explore } from "../src/explore/explore.js";
import { defaultConfig } from "../src/hunt/search.js";
import { siteHits } from "./catalogue.js";
import { regionPtes } from "./inspect.js";

function run(yaml: string): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  assert.deepEqual(r.m.violations, [], "no violations");
  return r;
}

// The PMD entry of process p's region start.
function pmdOf(r: Runner, region: string, proc = "p"): number {
  const p = r.procs.get(proc)!;
  const pi = pmdOffset(r.m, p.mm, p.regions.get(region)!.start, false);
  return pi < 0 ? 0 : r.m.tables.get(pi);
}

// The PTE of page k of process p's region (its PMD must point to a table).
function pteAt(r: Runner, region: string, k: number, proc = "p"): number {
  const m = r.m;
  const p = r.procs.get(proc)!;
  const a = p.regions.get(region)!.start + k * m.geo.pageSize;
  const pmdv = m.tables.get(pmdOffset(m, p.mm, a, false));
  assert.ok(m.arch.entryIsTable(pmdv), "a PTE table");
  const slot = m.tables.slotOfPfn(m.arch.ptePfn(pmdv));
  return m.tables.get(m.tables.base(slot) + ((a / m.geo.pageSize) & m.geo.ptrsMask));
}

// The first half of a migration of the THP mapped at region r of p:
// isolated, try_to_migrate() leaves a PMD migration entry, the batch is
// flushed. Returns the THP's head.
function freeze(r: Runner): number {
  const m = r.m;
  const headPfn = m.arch.ptePfn(pmdOf(r, "r"));
  assert.ok(folioIsolateLru(m, headPfn));
  const ubc = new TlbUbc(m);
  runGen(tryToMigrate(m, headPfn, ubc));
  tryToUnmapFlush(m, ubc);
  assert.ok(m.arch.isMigrationPmd(pmdOf(r, "r")));
  return headPfn;
}

// The end of a failed migration: remove_migration_ptes() maps the source
// again, the isolation's reference goes.
function thaw(r: Runner, headPfn: number): void {
  const m = r.m;
  runGen(removeMigrationPtes(m, headPfn, headPfn));
  m.migrating.delete(headPfn);
  m.isolated.delete(headPfn);
  if (m.phys.folioPut(headPfn)) m.counters.pagesFree += 1 << (m.phys.order[headPfn] as number);
  assert.deepEqual(m.violations, []);
}

const head = (arch: string, extra = "") => `
name: t
machine: { arch: ${arch}, cpus: 2, thp: never${extra} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
`;

// A PMD-aligned 2M region whose first store maps a THP (THP "always").
const thpRun = (arch: string, more = "") =>
  run(`${head(arch).replace("thp: never", "thp: always")}
steps:
  - mmap: { region: r, size: 2M, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: 4K, thread: A }
${more}
`);

for (const arch of ["x86_64", "arm64"] as const) {
  describe(`migration on ${arch}`, () => {
    it("migration entries round-trip pfn, kind, young and dirty, and are not swap entries of slot pfn", () => {
      const r = run(`${head(arch)}steps: []`);
      const A = r.m.arch;
      for (const pfn of [1, 4096, 2 ** 20 + 3])
        for (const kind of [MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE])
          for (const young of [false, true])
            for (const dirty of [false, true]) {
              const v = A.mkMigrationPte(pfn, kind, young, dirty);
              assert.ok(!A.ptePresent(v) && A.isSwapPte(v) && A.isMigrationPte(v));
              assert.equal(A.migrationPfn(v), pfn);
              assert.equal(A.migrationKind(v), kind);
              assert.equal(A.migrationYoung(v), young);
              assert.equal(A.migrationDirty(v), dirty);
              assert.match(A.describeEntry(v), /^migration /);
            }
      assert.ok(!A.isMigrationPte(A.mkSwapPte(5, true)), "a swap entry is not a migration entry");
      assert.ok(!A.isMigrationPte(0));
    });

    it("PMD migration entries round-trip and are neither a leaf nor a table; a PMD leaf, an invalidated one and a table entry are not PMD migration entries", () => {
      const r = run(`${head(arch)}steps: []`);
      const A = r.m.arch;
      const head0 = 512 * 3;
      for (const kind of [MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE])
        for (const young of [false, true])
          for (const dirty of [false, true]) {
            const v = A.mkMigrationPmd(head0, kind, young, dirty);
            assert.ok(A.isMigrationPmd(v) && !A.ptePresent(v) && !A.entryIsLeaf(v) && !A.entryIsTable(v) && !A.pmdLeafInvalid(v));
            assert.equal(A.leafPerm(v), -1, "the hardware walker faults");
            assert.equal(A.migrationPfn(v), head0);
            assert.equal(A.migrationKind(v), kind);
            assert.equal(A.migrationYoung(v), young);
            assert.equal(A.migrationDirty(v), dirty);
          }
      const leaf = A.pteMkwrite(A.pteMkdirty(A.pmdMkhuge(A.pfnPte(head0, A.vmGetPageProt(0x3)))));
      assert.ok(A.entryIsLeaf(leaf) && !A.isMigrationPmd(leaf));
      assert.ok(A.entryIsLeaf(A.pmdMkinvalid(leaf)) && !A.isMigrationPmd(A.pmdMkinvalid(leaf)), "pmdp_invalidate()'s entry is present for software");
      assert.ok(!A.isMigrationPmd(A.mkTableEntry(7)));
      assert.ok(!A.isMigrationPmd(A.mkSwapPte(9, false)));
      assert.ok(!A.isMigrationPmd(0));
    });

    it("every mapped page moves to a new frame; RSS, write, dirty and AnonExclusive stay; the sources are freed", () => {
      const r = run(`${head(arch)}
steps:
  - mmap: { region: r, size: 64K, thread: A }
  - touch: { region: r, length: 32K, thread: A }
  - read: { region: r, offset: 32K, length: 16K, thread: A }
  - report: before
  - migrate: { region: r, thread: B }
  - report: after
`);
      const m = r.m;
      const A = m.arch;
      const before = r.rows[0]!;
      const after = r.rows[1]!;
      assert.deepEqual(after.processes[0]!.figures, before.processes[0]!.figures);
      const v = regionPtes(r, "r");
      const written = v.slice(0, 8);
      for (const x of written) {
        assert.ok(A.ptePresent(x) && A.pteWrite(x) && A.pteDirty(x));
        const pfn = A.ptePfn(x);
        assert.ok(((m.phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE) !== 0);
        assert.ok(((m.phys.flags[pfn] as number) & PG_DIRTY) !== 0);
      }
      // Written pages moved (8); the read ones map the shared zero page on
      // x86-64 and arm64 alike: special, not migrated.
      assert.equal(after.counters.pgmigrateSuccess, 8);
      assert.equal(after.counters.pagesFree, 8, "the sources went back");
      assert.equal(after.counters.pagesAlloc, 8);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("after fork the shared pages move for parent and child alike; both stay read-only, the child's write copies", () => {
      const r = run(`${head(arch)}
steps:
  - mmap: { region: r, size: 16K, thread: A }
  - touch: { region: r, thread: A }
  - fork: { child: c }
  - migrate: { region: r, thread: B }
  - report: after
`);
      const A = r.m.arch;
      const pv = regionPtes(r, "r");
      const cv = regionPtes(r, "r", "c");
      for (let k = 0; k < 4; k++) {
        assert.equal(A.ptePfn(pv[k]!), A.ptePfn(cv[k]!), "parent and child map the new frame");
        assert.ok(!A.pteWrite(pv[k]!) && !A.pteWrite(cv[k]!));
        assert.equal(r.m.phys.mapcount[A.ptePfn(pv[k]!)], 2);
      }
      assert.equal(r.rows[0]!.counters.pgmigrateSuccess, 4);
      const c = r.procs.get("c")!;
      const reg = c.regions.get("r")!;
      assert.equal(userAccess(r.m, 1, c.mm, reg.start, true), "ok");
      assert.notEqual(A.ptePfn(regionPtes(r, "r", "c")[0]!), A.ptePfn(pv[0]!), "COW after migration");
      assert.deepEqual(r.m.violations, []);
    });

    it("a read-only mapping stays read-only and old entries stay old", () => {
      const r = run(`${head(arch)}
steps:
  - mmap: { region: r, size: 8K, thread: A }
  - touch: { region: r, thread: A }
  - mprotect: { region: r, prot: r, thread: A }
  - migrate: { region: r, thread: B }
`);
      const A = r.m.arch;
      for (const x of regionPtes(r, "r")) assert.ok(A.ptePresent(x) && !A.pteWrite(x) && A.pteDirty(x));
    });

    it("a swap-cache folio and a page-cache folio take their cache entry along", () => {
      const r = run(`${head(arch, ", swap: 1M")}
steps:
  - mmap: { region: r, size: 8K, thread: A }
  - touch: { region: r, thread: A }
  - madvise: { region: r, advice: pageout, thread: A }
  - fork: { child: c }
  - read: { region: r, length: 4K, thread: A }
  - mmap: { region: f, size: 8K, file: f, flags: [shared], thread: A }
  - touch: { region: f, thread: A }
  - migrate: { region: r, thread: B }
  - migrate: { region: f, thread: B }
  - report: after
`);
      const m = r.m;
      const A = m.arch;
      const swap = m.swap!;
      const pfn = A.ptePfn(regionPtes(r, "r")[0]!);
      assert.ok(swap.slotOf.has(pfn), "the new folio is in the swap cache");
      assert.equal(swap.cache.get(swap.slotOf.get(pfn)!), pfn);
      const file = m.files.get("f")!;
      const fv = regionPtes(r, "f");
      assert.equal(file.pages.get(0), A.ptePfn(fv[0]!));
      assert.equal(file.pages.get(1), A.ptePfn(fv[1]!));
      assert.equal(r.rows[0]!.counters.pgmigrateSuccess, 3);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("a PMD-mapped THP moves whole: a PMD leaf on a new THP, write, dirty and AnonExclusive kept, the source freed and out of every TLB", () => {
      const r = thpRun(arch, `  - touch: { region: r, offset: 1M, length: 4K, thread: A }`);
      const m = r.m;
      const A = m.arch;
      const nr = m.geo.pmdNr;
      const p = r.procs.get("p")!;
      const first = A.ptePfn(pmdOf(r, "r"));
      assert.ok(A.entryIsLeaf(pmdOf(r, "r")));
      const cpu0 = m.cpus[0]!;
      const vpn = p.regions.get("r")!.start / m.geo.pageSize;
      assert.ok(cpu0.tlb.lookupHuge(vpn, cpu0.asid) >= 0, "CPU 0 caches the THP");
      const figures = [p.mm.rssAnon, p.mm.anonHugePmds, p.mm.pgtablesBytes];
      const c0 = { ...m.counters };
      r.exec(stepOf("migrate: { region: r, thread: B }"), 0);
      assert.deepEqual([p.mm.rssAnon, p.mm.anonHugePmds, p.mm.pgtablesBytes], figures, "RSS, AnonHugePages and VmPTE unchanged");
      assert.equal(m.counters.pgmigrateSuccess - c0.pgmigrateSuccess, nr);
      assert.equal(m.counters.pagesAlloc - c0.pagesAlloc, nr);
      assert.equal(m.counters.pagesFree - c0.pagesFree, nr, "the source THP went back");
      const v = pmdOf(r, "r");
      assert.ok(A.entryIsLeaf(v) && A.ptePresent(v) && !A.pmdLeafInvalid(v), "still PMD-mapped");
      assert.ok(A.pteWrite(v) && A.pteDirty(v) && A.pteYoung(v));
      const pfn = A.ptePfn(v);
      assert.notEqual(pfn, first);
      assert.ok(m.phys.isFree(first), "the old THP is free");
      assert.equal(m.phys.order[pfn], m.geo.pmdOrder);
      assert.equal(m.phys.entireMapcount(pfn), 1);
      assert.equal(m.phys.ref[pfn], 1, "the PMD's reference only");
      for (const k of [0, 1, nr - 1]) assert.ok(((m.phys.flags[pfn + k] as number) & PG_ANON_EXCLUSIVE) !== 0, `page ${k} AnonExclusive`);
      assert.ok(((m.phys.flags[pfn] as number) & PG_DIRTY) !== 0);
      assert.deepEqual(m.violations, []);
      assert.deepEqual(checkAccounting(m), []);
      assert.deepEqual(checkTlbs(m), []);
      assert.ok(cpu0.tlb.lookupHuge(vpn, cpu0.asid) < 0, "flushed by pmdp_invalidate()");
      // A store needs no fault and no copy: the PMD is writable.
      const faults = m.counters.faults;
      assert.equal(userAccess(m, 0, p.mm, p.regions.get("r")!.start + 4096, true), "ok");
      assert.equal(m.counters.faults, faults);
    });

    it("migrateRange() counts the THP migrated, not skipped; a second migration of it moves it again", () => {
      const r = thpRun(arch);
      const m = r.m;
      const p = r.procs.get("p")!;
      const reg = p.regions.get("r")!;
      const first = m.arch.ptePfn(pmdOf(r, "r"));
      const stat = runGen(migrateRange(m, p.mm, reg.start, reg.start + reg.len));
      assert.deepEqual(stat, { migrated: 1, failed: 0, skipped: 0 });
      const second = m.arch.ptePfn(pmdOf(r, "r"));
      assert.notEqual(second, first);
      assert.deepEqual(runGen(migrateRange(m, p.mm, reg.start, reg.start + reg.len)), { migrated: 1, failed: 0, skipped: 0 });
      assert.notEqual(m.arch.ptePfn(pmdOf(r, "r")), second);
      assert.deepEqual(m.violations, []);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("a read-only THP shared with a child after fork moves for both; both stay read-only and the store splits and copies", () => {
      const r = thpRun(
        arch,
        `  - fork: { child: c, thread: A }
  - migrate: { region: r, thread: B }`,
      );
      const m = r.m;
      const A = m.arch;
      const pv = pmdOf(r, "r");
      const cv = pmdOf(r, "r", "c");
      assert.ok(A.entryIsLeaf(pv) && A.entryIsLeaf(cv));
      assert.equal(A.ptePfn(pv), A.ptePfn(cv), "parent and child map the new THP");
      assert.ok(!A.pteWrite(pv) && !A.pteWrite(cv));
      const pfn = A.ptePfn(pv);
      assert.equal(m.phys.entireMapcount(pfn), 2);
      assert.equal((m.phys.flags[pfn] as number) & PG_ANON_EXCLUSIVE, 0, "readable entries: not exclusive");
      const p = r.procs.get("p")!;
      assert.equal(userAccess(m, 0, p.mm, p.regions.get("r")!.start, true), "ok");
      assert.notEqual(A.ptePfn(pteAt(r, "r", 0)), pfn, "COW copy after the split");
      assert.deepEqual(m.violations, []);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("a PMD migration entry: writable-exclusive, RSS kept, AnonHugePages not; a fault on it retries (livelock with nobody migrating); the THP is mapped back", () => {
      const r = thpRun(arch);
      const m = r.m;
      const A = m.arch;
      const p = r.procs.get("p")!;
      const start = p.regions.get("r")!.start;
      const headPfn = freeze(r);
      const v = pmdOf(r, "r");
      assert.ok(A.isMigrationPmd(v) && !A.entryIsLeaf(v) && !A.entryIsTable(v) && !A.ptePresent(v));
      assert.equal(A.migrationPfn(v), headPfn);
      assert.equal(A.migrationKind(v), MIG_WRITE);
      assert.ok(A.migrationYoung(v) && A.migrationDirty(v));
      assert.equal(m.phys.entireMapcount(headPfn), 0);
      assert.equal(m.phys.ref[headPfn], 1, "only the isolation's reference");
      assert.equal((m.phys.flags[headPfn] as number) & PG_ANON_EXCLUSIVE, 0, "exclusivity moved into the entry");
      assert.equal(p.mm.rssAnon, m.geo.pmdNr);
      assert.equal(p.mm.anonHugePmds, 0);
      assert.deepEqual(checkAccounting(m), [], "the entry counts in RSS and is being migrated");
      assert.deepEqual(checkTlbs(m), [], "pmdp_invalidate() flushed it");
      const faults = m.counters.faults;
      assert.equal(userAccess(m, 0, p.mm, start, false), "livelock");
      assert.ok(m.counters.faults > faults);
      assert.equal(pmdOf(r, "r"), v, "the fault changed nothing");
      m.violations = [];
      thaw(r, headPfn);
      const back = pmdOf(r, "r");
      assert.ok(A.entryIsLeaf(back) && A.pteWrite(back) && A.ptePfn(back) === headPfn);
      assert.ok(((m.phys.flags[headPfn] as number) & PG_ANON_EXCLUSIVE) !== 0, "RMAP_EXCLUSIVE again");
      assert.equal(p.mm.anonHugePmds, 1);
      assert.deepEqual(checkAccounting(m), []);
      assert.equal(userAccess(m, 0, p.mm, start, true), "ok");
    });

    it("a PMD migration entry nobody is migrating is reported (migration-entry-stale)", () => {
      const r = thpRun(arch);
      const m = r.m;
      const headPfn = freeze(r);
      assert.deepEqual(checkAccounting(m), []);
      m.migrating.delete(headPfn);
      const v = checkAccounting(m);
      assert.ok(
        v.some((x) => x.invariant === "migration-entry-stale" && /holds a PMD migration entry/.test(x.message)),
        JSON.stringify(v),
      );
    });

    it("fork with a PMD migration entry installed: readable in parent and child, RSS and deposited table for the child; both get the THP back read-only", () => {
      const r = thpRun(arch);
      const m = r.m;
      const A = m.arch;
      const headPfn = freeze(r);
      r.exec(stepOf(`fork: { child: c, thread: A }`), 0);
      const pv = pmdOf(r, "r");
      const cv = pmdOf(r, "r", "c");
      assert.ok(A.isMigrationPmd(pv) && A.isMigrationPmd(cv));
      assert.equal(A.migrationKind(pv), MIG_READ);
      assert.equal(pv, cv);
      assert.ok(A.migrationDirty(pv), "dirty kept");
      const c = r.procs.get("c")!;
      assert.equal(c.mm.rssAnon, m.geo.pmdNr);
      assert.equal(c.mm.deposited.length, 1);
      assert.deepEqual(checkAccounting(m), []);
      thaw(r, headPfn);
      for (const proc of ["p", "c"]) {
        const v = pmdOf(r, "r", proc);
        assert.ok(A.entryIsLeaf(v) && !A.pteWrite(v) && A.ptePfn(v) === headPfn, proc);
      }
      assert.equal(m.phys.entireMapcount(headPfn), 2);
      assert.equal((m.phys.flags[headPfn] as number) & PG_ANON_EXCLUSIVE, 0);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("mprotect of a whole PMD migration entry makes it readable-exclusive; of part of it splits it into PTE migration entries", () => {
      const r = thpRun(arch);
      const m = r.m;
      const A = m.arch;
      const headPfn = freeze(r);
      r.exec(stepOf(`mprotect: { region: r, prot: r, thread: A }`), 0);
      let v = pmdOf(r, "r");
      assert.ok(A.isMigrationPmd(v));
      assert.equal(A.migrationKind(v), MIG_READ_EXCLUSIVE);
      r.exec(stepOf(`mprotect: { region: r, prot: rw, thread: A }`), 0);
      assert.equal(A.migrationKind(pmdOf(r, "r")), MIG_READ_EXCLUSIVE, "not made writable again");
      const splits = m.counters.thpSplits;
      const PS = m.geo.pageSize;
      r.exec(stepOf(`mprotect: { region: r, offset: ${PS / 1024}K, length: ${PS / 1024}K, prot: r, thread: A }`), 0);
      v = pmdOf(r, "r");
      assert.ok(A.entryIsTable(v), "split to a PTE table");
      assert.equal(m.counters.thpSplits, splits + 1);
      const p = r.procs.get("p")!;
      assert.equal(p.mm.deposited.length, 0, "the deposited table took the entries");
      for (const k of [0, 1, 2, m.geo.pmdNr - 1]) {
        const e = pteAt(r, "r", k);
        assert.ok(A.isMigrationPte(e), `page ${k}`);
        assert.equal(A.migrationPfn(e), headPfn + k);
        assert.equal(A.migrationKind(e), MIG_READ_EXCLUSIVE);
        assert.ok(A.migrationDirty(e) && A.migrationYoung(e));
      }
      assert.deepEqual(checkAccounting(m), []);
      thaw(r, headPfn);
      for (const k of [0, 1, m.geo.pmdNr - 1]) {
        const e = pteAt(r, "r", k);
        assert.ok(A.ptePresent(e) && A.ptePfn(e) === headPfn + k && !A.pteWrite(e));
      }
      assert.ok(((m.phys.flags[headPfn + 1] as number) & PG_ANON_EXCLUSIVE) !== 0);
      assert.equal(m.phys.entireMapcount(headPfn), 0);
      assert.equal(m.phys.mapcount[headPfn + 5], 1);
      assert.deepEqual(checkAccounting(m), []);
      // The write fault reuses the exclusive page.
      assert.equal(userAccess(m, 0, p.mm, p.regions.get("r")!.start, true), "ok");
      assert.equal(A.ptePfn(pteAt(r, "r", 0)), headPfn);
    });

    it("munmap of a whole PMD migration entry frees the entry and its deposited table and leaves the THP to the migration; of part of it, the split entries go", () => {
      for (const part of [false, true]) {
        const r = thpRun(arch);
        const m = r.m;
        const p = r.procs.get("p")!;
        const headPfn = freeze(r);
        const bytes = p.mm.pgtablesBytes;
        const PS = m.geo.pageSize;
        if (part) r.exec(stepOf(`madvise: { region: r, offset: ${PS / 1024}K, length: ${(2 * PS) / 1024}K, advice: dontneed, thread: A }`), 0);
        else r.exec(stepOf(`munmap: { region: r, thread: A }`), 0);
        assert.equal(p.mm.rssAnon, part ? m.geo.pmdNr - 2 : 0);
        assert.equal(p.mm.deposited.length, 0);
        if (!part) {
          assert.equal(pmdOf(r, "r"), 0);
          assert.ok(p.mm.pgtablesBytes < bytes, "the deposited table was freed");
        } else {
          assert.equal(pteAt(r, "r", 1), 0);
          assert.equal(pteAt(r, "r", 2), 0);
          assert.ok(m.arch.isMigrationPte(pteAt(r, "r", 3)));
        }
        assert.equal(m.phys.ref[headPfn], 1, "the THP is untouched");
        assert.ok(!m.phys.isFree(headPfn));
        assert.deepEqual(checkAccounting(m), []);
        thaw(r, headPfn);
        assert.deepEqual(checkAccounting(m), []);
        if (!part) assert.ok(m.phys.isFree(headPfn), "nothing maps it: freed with the isolation's reference");
        else assert.equal(p.mm.rssAnon, m.geo.pmdNr - 2);
      }
    });

    it("MADV_FREE, MADV_COLD, MADV_PAGEOUT and MADV_COLLAPSE leave a PMD migration entry alone; the THP comes back whole", () => {
      const r = run(`${head(arch, ", swap: 8M").replace("thp: never", "thp: always")}
steps:
  - mmap: { region: r, size: 2M, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: 4K, thread: A }
`);
      const m = r.m;
      const A = m.arch;
      const headPfn = freeze(r);
      const v = pmdOf(r, "r");
      for (const advice of ["free", "cold", "pageout", "collapse"]) {
        r.exec(stepOf(`madvise: { region: r, advice: ${advice}, thread: A }`), 0);
        assert.equal(pmdOf(r, "r"), v, advice);
      }
      assert.equal(m.phys.ref[headPfn], 1);
      assert.ok(((m.phys.flags[headPfn] as number) & PG_SWAPBACKED) !== 0, "MADV_FREE did not reach the folio");
      thaw(r, headPfn);
      assert.ok(A.entryIsLeaf(pmdOf(r, "r")) && A.pteWrite(pmdOf(r, "r")));
      assert.deepEqual(checkAccounting(m), []);
    });

    it("mremap moves a PMD migration entry whole (no flush) and the migration finds it at the new address", () => {
      const r = run(`${head(arch).replace("thp: never", "thp: always")}
steps:
  - mmap: { region: r, size: 2M, addr: 0x7e0000000000, thread: A }
  - mmap: { region: b, size: 4K, addr: 0x7e0000200000, thread: A }
  - touch: { region: r, length: 4K, thread: A }
`);
      const m = r.m;
      const A = m.arch;
      const p = r.procs.get("p")!;
      const headPfn = freeze(r);
      const flushes = m.counters.tlbFlushRequests;
      r.exec(stepOf("mremap: { region: r, new_size: 4M, may_move: true, new_region: s, thread: A }"), 0);
      const s = p.regions.get("s")!;
      assert.notEqual(s.start, 0x7e0000000000, "moved");
      assert.equal(s.start % m.geo.pmdSize, 0, "THP-aligned destination");
      assert.equal(m.counters.tlbFlushRequests, flushes, "nothing present moved: no flush");
      const v = pmdOf(r, "s");
      assert.ok(A.isMigrationPmd(v) && A.migrationPfn(v) === headPfn);
      assert.equal(p.mm.rssAnon, m.geo.pmdNr);
      assert.deepEqual(checkAccounting(m), []);
      thaw(r, headPfn);
      assert.ok(A.entryIsLeaf(pmdOf(r, "s")) && A.ptePfn(pmdOf(r, "s")) === headPfn);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("a GUP pin of the THP makes set_pmd_migration_entry() fail (-EBUSY): the PMD stays, the migration fails", () => {
      const r = thpRun(
        arch,
        `  - pin: { region: r, length: 4K, thread: A }
  - report: before
  - migrate: { region: r, thread: B }
  - report: after`,
      );
      const m = r.m;
      const v = pmdOf(r, "r");
      assert.ok(m.arch.entryIsLeaf(v) && m.arch.pteWrite(v));
      assert.equal(r.rows[1]!.counters.pgmigrateSuccess, 0);
      assert.equal(r.rows[1]!.counters.pgmigrateFail, m.geo.pmdNr);
      assert.ok(((m.phys.flags[m.arch.ptePfn(v)] as number) & PG_ANON_EXCLUSIVE) !== 0);
    });
    it("a migration entry nobody is migrating is reported, and a fault on it livelocks", () => {
      const r = run(`${head(arch)}
steps:
  - mmap: { region: r, size: 8K, thread: A }
  - touch: { region: r, thread: A }
`);
      const m = r.m;
      const A = m.arch;
      const p = r.procs.get("p")!;
      const reg = p.regions.get("r")!;
      const pi = pmdOffset(m, p.mm, reg.start, false);
      const slot = m.tables.slotOfPfn(A.ptePfn(m.tables.get(pi)));
      const i = m.tables.base(slot) + ((reg.start / m.geo.pageSize) & m.geo.ptrsMask);
      const e = m.tables.chunkOf(slot);
      e[i] = A.mkMigrationPte(A.ptePfn(e[i] as number), MIG_WRITE, true, true);
      A.flushTlbMm(m, p.mm);
      assert.ok(checkAccounting(m).some((v) => v.invariant === "migration-entry-stale"));
      assert.equal(userAccess(m, 0, p.mm, reg.start, false), "livelock");
    });
  });
}

for (const granule of [16, 64])
  describe(`PMD migration on arm64 with the ${granule}K granule`, () => {
    it("the THP (one PMD of the granule) moves whole and stays PMD-mapped, writable and exclusive; a fork then mprotect() of an entry keep the checks", () => {
      const r = run(`
name: t
machine: { arch: arm64, arm64: { granule: ${granule} }, cpus: 2, thp: always }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
steps:
  - mmap: { region: r, size: ${granule === 16 ? "32M" : "512M"}, addr: 0x7e0000000000, thread: A }
  - touch: { region: r, length: ${granule}K, thread: A }
`);
      const m = r.m;
      const A = m.arch;
      assert.equal(m.geo.pmdSize, granule === 16 ? 32 * 2 ** 20 : 512 * 2 ** 20);
      const first = A.ptePfn(pmdOf(r, "r"));
      assert.ok(A.entryIsLeaf(pmdOf(r, "r")));
      r.exec(stepOf("migrate: { region: r, thread: B }"), 0);
      const v = pmdOf(r, "r");
      assert.ok(A.entryIsLeaf(v) && A.pteWrite(v) && A.pteDirty(v));
      assert.notEqual(A.ptePfn(v), first);
      assert.ok(m.phys.isFree(first));
      assert.ok(((m.phys.flags[A.ptePfn(v) + m.geo.pmdNr - 1] as number) & PG_ANON_EXCLUSIVE) !== 0);
      const headPfn = freeze(r);
      r.exec(stepOf("fork: { child: c, thread: A }"), 0);
      assert.equal(A.migrationKind(pmdOf(r, "r", "c")), MIG_READ);
      r.exec(stepOf("mprotect: { region: r, prot: r, thread: A }"), 0);
      thaw(r, headPfn);
      assert.ok(A.entryIsLeaf(pmdOf(r, "r")) && A.entryIsLeaf(pmdOf(r, "r", "c")));
      assert.deepEqual(checkAccounting(m), []);
      assert.deepEqual(checkTlbs(m), []);
    });
  });

describe("PMD migration under the explorer", () => {
  it("clean-migrate-pmd explores clean and its faults wait on the PMD migration entry (pmd_migration_entry_wait())", () => {
    const FILE = "scenarios/concurrency/clean-migrate-pmd.yaml";
    const seen = siteHits("pmd_migration_entry_wait");
    const base = defaultConfig(parseScenario(readFileSync(FILE, "utf8"), FILE));
    const res = explore({ ...base, onStart: seen.onStart });
    assert.equal(res.counterexample, null);
    assert.ok(res.complete);
    assert.ok(seen.hits() > 0, "no fault waited in pmd_migration_entry_wait()");
  });
});

// One step as the loader makes it (the scenario declares region r).
function stepOf(line: string) {
  const sc = parseScenario(`${head("x86_64")}steps:\n  - mmap: { region: r, size: 8K, thread: A }\n  - ${line}\n`, "t.yaml");
  return sc.steps[1]!;
}

describe("migration entries in zap, fork and mprotect", () => {
  it("mprotect makes a writable entry readable-exclusive; fork makes it readable in both; zap keeps RSS right", () => {
    const r = run(`${head("x86_64")}
steps:
  - mmap: { region: r, size: 8K, thread: A }
  - touch: { region: r, thread: A }
`);
    const m = r.m;
    const A = m.arch;
    const p = r.procs.get("p")!;
    const reg = p.regions.get("r")!;
    const pi = pmdOffset(m, p.mm, reg.start, false);
    const slot = m.tables.slotOfPfn(A.ptePfn(m.tables.get(pi)));
    const i = m.tables.base(slot) + ((reg.start / m.geo.pageSize) & m.geo.ptrsMask);
    const e = m.tables.chunkOf(slot);
    const pfn = A.ptePfn(e[i] as number);
    // Stand in for try_to_migrate(): the page's mapping becomes a migration entry.
    m.migrating.add(pfn);
    m.isolated.add(pfn);
    e[i] = A.mkMigrationPte(pfn, MIG_WRITE, true, true);
    m.phys.mapcount[pfn] = 0;
    m.phys.ref[pfn] = 1;
    A.flushTlbMm(m, p.mm);
    assert.deepEqual(checkAccounting(m), [], "a migration entry counts in RSS");
    r.exec(stepOf(`mprotect: { region: r, prot: r, thread: A }`), 0);
    assert.equal(A.migrationKind(e[i] as number), MIG_READ_EXCLUSIVE);
    r.exec(stepOf(`mprotect: { region: r, prot: rw, thread: A }`), 0);
    assert.equal(A.migrationKind(e[i] as number), MIG_READ_EXCLUSIVE, "not made writable again");
    e[i] = A.mkMigrationPte(pfn, MIG_WRITE, true, true);
    r.exec(stepOf(`fork: { child: c, thread: A }`), 0);
    assert.equal(A.migrationKind(e[i] as number), MIG_READ, "the parent's entry is readable now");
    const c = r.procs.get("c")!;
    assert.equal(c.mm.rssAnon, 2);
    assert.deepEqual(checkAccounting(m), []);
    r.exec(stepOf(`munmap: { region: r, thread: A }`), 0);
    assert.equal(p.mm.rssAnon, 0);
    assert.equal(e[i], 0);
  });
});

describe("migrate: bad input", () => {
  it("a migration of a range nothing maps is a located error, exit 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "ptlab-migrate-"));
    const f = join(dir, "t.yaml");
    writeFileSync(f, "name: t\nsteps:\n  - mmap: { region: A, size: 64K, prot: rw }\n  - munmap: { region: A }\n  - migrate: { region: A }\n");
    const p = spawnSync(process.execPath, ["dist/src/cli/main.js", "run", f], { encoding: "utf8" });
    assert.equal(p.status, 2);
    assert.match(p.stderr, /t\.yaml:5:5: nothing is mapped in A\+0 .*no folio to migrate/);
    assert.equal(p.stderr.trim().split("\n").length, 1, "one line");
  });
  it("an unknown key in migrate is rejected with its position", () => {
    assert.throws(
      () => parseScenario("name: t\nsteps:\n  - migrate: { region: r, node: 1 }\n", "t.yaml"),
      (e: unknown) => e instanceof ScenarioError && e.line === 3 && /unknown key "node" in migrate step/.test(e.message),
    );
  });
});
