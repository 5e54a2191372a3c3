// Page migration against the kernel's rules, on x86-64 and arm64: the
// migration entry encodings round-trip, a `migrate` step moves every mapped
// page to a new frame keeping RSS, write permission, dirtiness and
// AnonExclusive; after fork the shared pages move for both processes; a
// read-only mapping stays read-only; a contpte block is unfolded and
// refolded; swap-cache and page-cache folios take their cache entry along;
// a PMD-mapped THP is skipped; a migration entry left in a table is reported
// (migration-entry-stale) and a fault on it livelocks; zap, fork and
// mprotect handle migration entries as the kernel does.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { MIG_READ, MIG_READ_EXCLUSIVE, MIG_WRITE } from "../src/core/arch/arch.js";
import { checkAccounting } from "../src/core/check.js";
import { userAccess } from "../src/core/hw/walker.js";
import { PG_ANON_EXCLUSIVE, PG_DIRTY } from "../src/core/mm/physmem.js";
import { pmdOffset } from "../src/core/mm/walk.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { ScenarioError } from "../src/scenario/types.js";

function run(yaml: string): Runner {
  const r = new Runner(parseScenario(yaml, "t.yaml"), { checkInvariants: true });
  r.runAll();
  assert.deepEqual(r.m.violations, [], "no violations");
  return r;
}

// The PTE values of process p's region (a huge PMD's value where one maps it).
function ptes(r: Runner, region: string, proc = "p"): number[] {
  const p = r.procs.get(proc);
  assert.ok(p);
  const reg = p.regions.get(region);
  assert.ok(reg);
  const m = r.m;
  const out: number[] = [];
  for (let a = reg.start; a < reg.start + reg.len; a += m.geo.pageSize) {
    const pi = pmdOffset(m, p.mm, a, false);
    const pmdv = pi < 0 ? 0 : m.tables.get(pi);
    if (pmdv === 0 || m.arch.entryIsLeaf(pmdv)) {
      out.push(pmdv);
      continue;
    }
    const slot = m.tables.slotOfPfn(m.arch.ptePfn(pmdv));
    out.push(m.tables.get(m.tables.base(slot) + ((a / m.geo.pageSize) & m.geo.ptrsMask)));
  }
  return out;
}

const head = (arch: string, extra = "") => `
name: t
machine: { arch: ${arch}, cpus: 2, thp: never${extra} }
processes:
  - name: p
    threads: [{ name: A, cpu: 0 }, { name: B, cpu: 1 }]
`;

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
      const v = ptes(r, "r");
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
      const pv = ptes(r, "r");
      const cv = ptes(r, "r", "c");
      for (let k = 0; k < 4; k++) {
        assert.equal(A.ptePfn(pv[k]!), A.ptePfn(cv[k]!), "parent and child map the new frame");
        assert.ok(!A.pteWrite(pv[k]!) && !A.pteWrite(cv[k]!));
        assert.equal(r.m.phys.mapcount[A.ptePfn(pv[k]!)], 2);
      }
      assert.equal(r.rows[0]!.counters.pgmigrateSuccess, 4);
      const c = r.procs.get("c")!;
      const reg = c.regions.get("r")!;
      assert.equal(userAccess(r.m, 1, c.mm, reg.start, true), "ok");
      assert.notEqual(A.ptePfn(ptes(r, "r", "c")[0]!), A.ptePfn(pv[0]!), "COW after migration");
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
      for (const x of ptes(r, "r")) assert.ok(A.ptePresent(x) && !A.pteWrite(x) && A.pteDirty(x));
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
      const pfn = A.ptePfn(ptes(r, "r")[0]!);
      assert.ok(swap.slotOf.has(pfn), "the new folio is in the swap cache");
      assert.equal(swap.cache.get(swap.slotOf.get(pfn)!), pfn);
      const file = m.files.get("f")!;
      const fv = ptes(r, "f");
      assert.equal(file.pages.get(0), A.ptePfn(fv[0]!));
      assert.equal(file.pages.get(1), A.ptePfn(fv[1]!));
      assert.equal(r.rows[0]!.counters.pgmigrateSuccess, 3);
      assert.deepEqual(checkAccounting(m), []);
    });

    it("a PMD-mapped THP is skipped", () => {
      const r = run(`${head(arch).replace("thp: never", "thp: always")}
steps:
  - mmap: { region: r, size: 4M, thread: A }
  - touch: { region: r, offset: 2M, length: 4K, thread: A }
  - report: before
  - migrate: { region: r, thread: B }
  - report: after
`);
      assert.equal(r.rows[0]!.processes[0]!.figures.anon_huge_kb, 2048);
      assert.equal(r.rows[1]!.counters.pgmigrateSuccess, 0);
      assert.deepEqual(r.rows[1]!.processes[0]!.figures, r.rows[0]!.processes[0]!.figures);
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
