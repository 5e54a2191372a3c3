// Tests of the host helper (native/ptlab-host.c) and its driver against the
// real kernel. Skipped where the helper cannot run (not Linux x86-64, no C
// compiler), a failure there under PTLAB_REQUIRE_HOST=1 (CI). Figures asserted here are the host's, so tolerances follow what
// the kernel guarantees, not what the model predicts.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { BENCH_OPS, ensureHelperBuilt, HostError, type HostSnapshot, HostSession, isHelperSkip, runHostBench } from "../src/host/helper.js";
import type { Prot } from "../src/scenario/types.js";
import { hostSkip } from "./require-host.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const PMD = 2 * MiB;
const RW: Prot = { read: true, write: true, exec: false };
const R: Prot = { read: true, write: false, exec: false };
const ANON = ["private", "anonymous"] as const;

const helper = await ensureHelperBuilt();
const skipReason = isHelperSkip(helper) ? helper.skip : undefined;
const helperPath = isHelperSkip(helper) ? undefined : helper;

function alignUp(a: number, to: number): number {
  return Math.ceil(a / to) * to;
}

/** Present pages of `snap` inside [start, start+len), by kind. */
function presentIn(snap: HostSnapshot, start: number, len: number) {
  const pages: { addr: number; kind: "a" | "f"; zero: boolean }[] = [];
  for (const r of snap.present) {
    for (let i = 0; i < r.npages; i++) {
      const addr = r.start + i * 4096;
      if (addr >= start && addr < start + len) pages.push({ addr, kind: r.kind, zero: r.zero });
    }
  }
  return pages;
}

function near(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: expected ${expected} ± ${tol}, got ${actual}`);
}

test("host helper: syscalls and figures on the real kernel", { timeout: 30_000 }, async (t) => {
  if (skipReason !== undefined) {
    t.skip(hostSkip(skipReason));
    return;
  }
  const s = await HostSession.create({ helperPath });
  t.after(() => s.close());
  const env = await s.env();
  // What the kernel should do, from its configuration rather than from the
  // probe (which watches the same behaviour in a scratch process): PT reclaim
  // is CONFIG_PT_RECLAIM (undefined where the config cannot be read); read
  // faults of private anonymous memory map the shared zero page unless the
  // host boots with pvm_no_zero_page.
  const ptReclaim = env.ptReclaim;
  const zero = !readFileSync("/proc/cmdline", "utf8")
    .split(/\s+/)
    .some((w) => /^pvm_no_zero_page(=1)?$/.test(w));

  await t.test("env", () => {
    assert.ok(["never", "madvise", "always"].includes(env.thp));
    assert.equal(env.pageSize, 4096);
    assert.ok(env.kernel.length > 0);
    assert.ok(env.levels === 4 || env.levels === 5);
    assert.ok(env.cpus !== undefined && env.cpus >= 1);
    assert.ok(env.probe !== undefined, "probe ran");
    for (const m of env.mthpEnabled) {
      assert.ok(m.sizeKb >= 8 && ["always", "inherit", "madvise", "never"].includes(m.setting), JSON.stringify(m));
    }
    if (env.ptReclaim !== undefined && env.probe) {
      assert.equal(env.probe.ptReclaim, env.ptReclaim, "observed PT reclaim matches CONFIG_PT_RECLAIM");
    }
    assert.equal(env.probe?.zeroPage, zero, "the probe sees the zero page where the command line leaves it on");
  });

  await t.test("4 MiB anon: fault in, then MADV_DONTNEED", async () => {
    // An 8 MiB mapping with its first and last page touched: the PTE tables
    // of both ends, and the PMD and PUD tables of every GiB the mapping
    // spans, exist before the measured 4 MiB window between them is touched.
    const m = await s.mmap(0, 8 * MiB, RW, ANON);
    assert.equal(m % 4096, 0);
    await s.madvise(0, m, 8 * MiB, "nohugepage"); // 4 KiB pages even where THP is "always"
    await s.touch(0, m, 4096, 4096, true);
    await s.touch(0, m + 8 * MiB - 4096, 4096, 4096, true);
    // 2 MiB-aligned, past the first page's PTE table and ending where the
    // last page's begins (or before).
    const a = alignUp(m + 1, PMD);
    const base = await s.stats(0);
    await s.touch(0, a, 4 * MiB, 4096, true);
    const full = await s.stats(0);
    near(full.rss_anon_kb - base.rss_anon_kb, 4096, 8, "RssAnon growth");
    // mm_pgtables_bytes() is exact: two new 4 kB PTE tables, nothing above.
    assert.equal(full.vmpte_kb - base.vmpte_kb, 2 * 4, "VmPTE growth");
    await s.madvise(0, a, 4 * MiB, "dontneed");
    const after = await s.stats(0);
    near(after.rss_anon_kb, base.rss_anon_kb, 8, "RssAnon after DONTNEED");
    await s.munmap(0, m, 8 * MiB);
  });

  await t.test("MADV_DONTNEED of a whole PMD range frees its PTE table (PT reclaim)", async (tt) => {
    if (ptReclaim === undefined) {
      tt.skip("CONFIG_PT_RECLAIM unknown: no /proc/config.gz or /boot/config-$(uname -r)");
      return;
    }
    const a = await s.mmap(0, 6 * MiB, RW, ANON);
    await s.madvise(0, a, 6 * MiB, "nohugepage");
    await s.touch(0, a, 6 * MiB, 4096, true);
    const al = alignUp(a, PMD);
    const before = await s.stats(0);
    await s.madvise(0, al, PMD, "dontneed");
    const after = await s.stats(0);
    near(before.rss_anon_kb - after.rss_anon_kb, 2048, 8, "RssAnon freed");
    assert.equal(before.vmpte_kb - after.vmpte_kb, ptReclaim ? 4 : 0, "VmPTE drop: the PTE table with CONFIG_PT_RECLAIM, else nothing");
    await s.munmap(0, a, 6 * MiB);
  });

  await t.test("fork, touch in the child, exit", async () => {
    const r = await s.mmap(0, MiB, RW, ANON);
    await s.touch(0, r, MiB, 4096, true);
    const parent0 = await s.stats(0);
    const pid = await s.fork(0, 1);
    assert.ok(pid > 0);
    const child0 = await s.stats(1);
    // fork copies anonymous PTEs, so the child's RssAnon matches the parent's
    near(child0.rss_anon_kb, parent0.rss_anon_kb, 16, "child RssAnon after fork");

    const c = await s.mmap(1, MiB, RW, ANON);
    await s.touch(1, c, MiB, 4096, true);
    await s.touch(1, r, MiB, 4096, true); // COW breaks: counters unchanged
    const child1 = await s.stats(1);
    near(child1.rss_anon_kb - child0.rss_anon_kb, 1024, 8, "child RssAnon growth");
    const parent1 = await s.stats(0);
    near(parent1.rss_anon_kb, parent0.rss_anon_kb, 8, "parent RssAnon unchanged");
    // the child's mapping is not in the parent
    const psnap = await s.snapshot(0);
    assert.ok(!psnap.vmas.some((v) => v.start <= c && c < v.end), "child VMA absent in parent");

    // a grandchild survives its parent's exit
    await s.fork(1, 2);
    await s.exit(1);
    assert.ok(!existsSync(`/proc/${pid}`), "slot 1 is gone when exit() resolves");
    await assert.rejects(s.stats(1), (e: unknown) => e instanceof HostError && e.code === "ESRCH");
    const g = await s.stats(2);
    near(g.rss_anon_kb, child1.rss_anon_kb, 16, "grandchild RssAnon");
    await s.exit(2);
    const parent2 = await s.stats(0);
    near(parent2.rss_anon_kb, parent0.rss_anon_kb, 8, "parent RssAnon after children exit");
    await s.munmap(0, r, MiB);
  });

  await t.test("snapshot: VMAs and present runs", async () => {
    // PROT_READ|WRITE|EXEC so the VMA cannot merge with the helper's own
    const rwx: Prot = { read: true, write: true, exec: true };
    const a = await s.mmap(0, MiB, rwx, ANON);
    await s.madvise(0, a, MiB, "nohugepage");
    await s.touch(0, a, 64 * 4096, 4096, true);
    const snap = await s.snapshot(0);
    const vma = snap.vmas.find((v) => v.start <= a && a < v.end);
    assert.ok(vma, "VMA found");
    assert.equal(vma.start, a);
    assert.equal(vma.end, a + MiB);
    assert.equal(vma.perms, "rwxp");
    assert.equal(vma.path, "");
    assert.ok(snap.vmas.some((v) => v.path === "[stack]"));
    assert.ok(!snap.vmas.some((v) => v.start >= 2 ** 53 && v.path !== "[vsyscall]"), "addresses above 2^53 cannot occur except [vsyscall]");
    const pages = presentIn(snap, a, MiB);
    assert.equal(pages.length, 64);
    assert.equal(pages[0]?.addr, a);
    assert.ok(pages.every((p) => p.kind === "a" && !p.zero));
    // read faults map the shared zero page, unless the host disables it (as
    // pvm_no_zero_page=1 does); the probe and the snapshot must agree
    const r0 = await s.stats(0);
    await s.touch(0, a + 128 * 4096, 8 * 4096, 4096, false);
    const r1 = await s.stats(0);
    const zsnap = await s.snapshot(0);
    const zpages = presentIn(zsnap, a + 128 * 4096, 8 * 4096);
    assert.equal(zpages.length, 8);
    assert.ok(zpages.every((p) => p.kind === "a" && p.zero === zero));
    near(r1.rss_anon_kb - r0.rss_anon_kb, zero ? 0 : 32, 4, "RssAnon after read faults");
    // runs never cross a VMA boundary
    for (const r of snap.present) {
      const v = snap.vmas.find((x) => x.start <= r.start && r.start < x.end);
      assert.ok(v && r.start + r.npages * 4096 <= v.end, `run ${r.start.toString(16)} inside one VMA`);
    }

    // file-backed shared mapping of a sparse file in the session's temp dir
    const before = await s.stats(0);
    const f = await s.mmap(0, MiB, R, ["shared"], undefined, { path: "f1", size: MiB });
    await s.touch(0, f, 16 * 4096, 4096, false);
    const fsnap = await s.snapshot(0);
    const fv = fsnap.vmas.find((v) => v.start === f);
    assert.ok(fv?.path.endsWith("/f1"), `file VMA path ${fv?.path}`);
    assert.equal(fv?.perms, "r--s");
    const fpages = presentIn(fsnap, f, MiB);
    assert.ok(fpages.length >= 16, `${fpages.length} file pages present (fault-around may add more)`);
    assert.ok(fpages.every((p) => p.kind === "f"));
    const after = await s.stats(0);
    const grew = s.tmpIsTmpfs ? after.rss_shmem_kb - before.rss_shmem_kb : after.rss_file_kb - before.rss_file_kb;
    assert.equal(grew, fpages.length * 4);
    await s.munmap(0, f, MiB);
    await s.munmap(0, a, MiB);
  });

  await t.test("PMD-mapped THP shows in snapshot and AnonHugePages", async (tt) => {
    if (env.thp === "never") {
      tt.skip("THP disabled on this host");
      return;
    }
    const a = await s.mmap(0, 4 * MiB, RW, ANON);
    const al = alignUp(a, PMD);
    await s.madvise(0, al, PMD, "hugepage");
    const before = await s.stats(0);
    await s.touch(0, al, 1, 4096, true);
    const after = await s.stats(0);
    assert.equal(after.anon_huge_kb - before.anon_huge_kb, 2048);
    const snap = await s.snapshot(0);
    assert.ok(snap.thp.includes(al), "h line for the THP");
    assert.equal(presentIn(snap, al, PMD).length, 512);
    await s.munmap(0, a, 4 * MiB);
  });

  await t.test("brk, mremap, errors", async () => {
    const cur = await s.brk(0, 0);
    assert.equal(await s.brk(0, MiB), cur + MiB);
    assert.equal(await s.brk(0, -MiB), cur);
    const a = await s.mmap(0, MiB, RW, ANON);
    const b = await s.mremap(0, a, MiB, 4 * MiB, true);
    assert.ok(b > 0);
    await assert.rejects(s.munmap(0, b + 1, 4096), (e: unknown) => e instanceof HostError && e.code === "EINVAL");
    await assert.rejects(s.mmap(0, MiB, RW, ["private", "anonymous", "fixed_noreplace"], b), (e: unknown) => e instanceof HostError && e.code === "EEXIST");
    await assert.rejects(s.touch(0, 4096, 4096), (e: unknown) => e instanceof HostError && e.code === "SIGSEGV");
    await assert.rejects(s.fork(0, 40), RangeError);
    // the session is still usable
    await s.munmap(0, b, 4 * MiB);
    assert.ok((await s.stats(0)).vmpte_kb > 0);
  });
});

test("host helper: pagemap fallback (pre-6.7 kernels) agrees with PAGEMAP_SCAN", { timeout: 10_000 }, async (t) => {
  if (skipReason !== undefined) {
    t.skip(hostSkip(skipReason));
    return;
  }
  const s = await HostSession.create({ helperPath, env: { PTLAB_NO_PAGEMAP_SCAN: "1" } });
  t.after(() => s.close());
  const a = await s.mmap(0, MiB, { read: true, write: true, exec: true }, ANON);
  await s.madvise(0, a, MiB, "nohugepage");
  await s.touch(0, a + 8 * 4096, 32 * 4096, 4096, true);
  const snap = await s.snapshot(0);
  const pages = presentIn(snap, a, MiB);
  assert.equal(pages.length, 32);
  assert.equal(pages[0]?.addr, a + 8 * 4096);
  assert.deepEqual(snap.thp, []);
});

test("host helper: bench", { timeout: 20_000 }, async (t) => {
  if (skipReason !== undefined) {
    t.skip(hostSkip(skipReason));
    return;
  }
  const r = await runHostBench(8 * MiB, 3, helperPath);
  assert.deepEqual(Object.keys(r).sort(), [...BENCH_OPS].sort());
  for (const op of BENCH_OPS) assert.ok(r[op] > 0 && Number.isFinite(r[op]), `${op}: ${r[op]}`);
});
