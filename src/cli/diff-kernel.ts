// ptlab diff-kernel: the same scenario on the host kernel (through the C
// helper) and on the model, which takes the kernel's addresses and a replica
// of the helper's own mappings. After each report step the VmPTE and RssAnon
// changes since the start and AnonHugePages are compared, VmSwap too when the
// host has swap, and the state of every page of the scenario's regions
// (diff-pages.ts). A scenario that sets machine.swap needs swap on the host:
// the host's own, or with --setup-swap a zram device of that size which is
// taken down again afterwards (src/host/swap.ts); without either it is
// skipped.

import { mkdir, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { userAccess } from "../core/arch/fault.js";
import type { Machine } from "../core/machine.js";
import { pteOffset } from "../core/mm/walk.js";
import { VM_EXEC, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, Vma } from "../core/mm/types.js";
import { cacheDir, ensureHelperBuilt, type HostEnv, HostError, HostSession, type HostSnapshot, isHelperSkip } from "../host/helper.js";
import { describeHostSwap, type HostSwap, readHostSwap, restoreZramSwap, setupZramSwap, type ZramSwap } from "../host/swap.js";
import { type Figures, Runner } from "../run/runner.js";
import { type Scenario, ScenarioError, type Step } from "../scenario/types.js";
import { compareRegion, hostStates, modelStates, type PageDiff } from "./diff-pages.js";

export const RSS_NOISE_KB = 8;

export interface FigureDiff {
  // swap_used_kb: slots in use on the whole device (swap entries and the swap
  // cache), compared only on a device --setup-swap made for the run
  figure: "vmpte_kb" | "rss_anon_kb" | "anon_huge_kb" | "vmswap_kb" | "swap_used_kb";
  host: number;
  model: number;
  agree: boolean;
}
export interface ReportDiff {
  label: string;
  process: string;
  figures: FigureDiff[];
}
export interface DiffResult {
  skipped?: string;
  detected?: string[];
  // The scenario's machine settings the host's replaced ("machine.thp: never -> always").
  replaced?: string[];
  reports: ReportDiff[];
  pages: PageDiff[];
}

export interface DiffOptions {
  /** set up a zram swap device when the scenario needs swap and the host has none (root) */
  setupSwap?: boolean;
  /** where lines about changes to the host go (default: stderr) */
  log?: (line: string) => void;
  /** tests: called with the model's machine once it is built (to make it deliberately wrong) */
  onMachine?: (m: Machine) => void;
}

const TMPFS_MAGIC = 0x01021994;

// Where the helper creates the scenario's files: not on tmpfs if avoidable,
// since tmpfs page cache is shmem (swap-backed: MADV_PAGEOUT swaps it out)
// where the model's files are disk-backed page cache.
async function fileBase(): Promise<{ dir: string; tmpfs: boolean }> {
  const cands = [tmpdir(), "/var/tmp", cacheDir()];
  for (const dir of cands) {
    try {
      await mkdir(dir, { recursive: true });
      if (Number((await statfs(dir)).type) !== TMPFS_MAGIC) return { dir, tmpfs: false };
    } catch {
      // not usable
    }
  }
  return { dir: tmpdir(), tmpfs: true };
}

function stepsUse(steps: readonly Step[], pred: (s: Step) => boolean): boolean {
  return steps.some((s) => (s.op === "repeat" ? stepsUse(s.steps, pred) : pred(s)));
}

// How the scenario's swap maps to the host's: the model's device is
// machine.swap; the host needs at least that much free swap, its own or a
// zram device of exactly that size set up by --setup-swap. Returns the
// reason to skip, or the device set up (to be taken down by the caller).
function hostSwapFor(sc: Scenario, helper: string, o: DiffOptions, log: (l: string) => void): { skip: string } | { zram?: ZramSwap; swap: HostSwap } {
  const need = sc.machine.swapBytes ?? 0;
  const swap = readHostSwap();
  const active = swap.devices.length > 0;
  if (need === 0) {
    if (active && stepsUse(sc.steps, (s) => s.op === "madvise" && s.advice === "pageout"))
      throw new ScenarioError(
        sc.file,
        1,
        1,
        "the scenario pages out (madvise pageout) without machine.swap while the host has swap: set machine.swap (e.g. swap: 64M) so that the model swaps too",
      );
    if (o.setupSwap) log("ptlab: --setup-swap: the scenario sets no machine.swap; the host's swap is left as it is");
    return { swap };
  }
  if (active) {
    if (o.setupSwap) log(`ptlab: --setup-swap: the host already has swap (${describeHostSwap(swap)}); used as it is, nothing changed`);
    // Scenarios use at most half of their machine.swap, and the host must
    // stay below half full with that (vm_swap_full(): past it the kernel
    // drops swap-cache folios on swap-in, which the model does not do).
    if (swap.freeKb * 2048 - need < swap.totalKb * 1024)
      return {
        skip: `the host's swap (${swap.freeKb} of ${swap.totalKb} kB free) could pass half full with the ${need / 2048} kB the scenario may use (half its machine.swap); vm_swap_full() changes swap-in, which the model does not do`,
      };
    return { swap };
  }
  if (!o.setupSwap)
    return { skip: `the scenario needs swap (machine.swap ${need / 1024} kB) and the host has none (as root, --setup-swap sets up a zram device)` };
  const z = setupZramSwap(need, helper, log);
  if ("skip" in z) return z;
  return { zram: z, swap: readHostSwap() };
}

// Builds the helper's pre-existing mappings in the model mm, faulting in the
// pages the kernel shows as present so the same tables exist.
function replicate(r: Runner, snap: HostSnapshot): void {
  const m = r.m;
  const p = [...r.procs.values()][0]!;
  const mm = p.mm;
  for (const v of snap.vmas) {
    if (v.path === "[vsyscall]" || v.start >= 2 ** 47) continue;
    let fl = 0;
    if (v.perms[0] === "r") fl |= VM_READ;
    if (v.perms[1] === "w") fl |= VM_WRITE;
    if (v.perms[2] === "x") fl |= VM_EXEC;
    fl |= VM_MAYWRITE;
    if (v.perms[3] === "s") fl |= VM_SHARED;
    const isFile = v.path !== "" && !v.path.startsWith("[");
    const file = isFile ? m.file(`host:${v.path}`, v.offset + (v.end - v.start), false) : null;
    mm.vmas.push(new Vma(v.start, v.end, fl, file, v.offset / 4096, 0));
  }
  mm.vmas.sort((a, b) => a.start - b.start);
  for (const run of snap.present) {
    const vma = mm.findVma(run.start);
    if (vma === null) continue;
    // Anon pages in a writable private VMA were written; others only read.
    const write = run.kind === "a" && !run.zero && (vma.flags & VM_WRITE) !== 0;
    for (let k = 0; k < run.npages; k++) userAccess(m, 0, mm, run.start + k * 4096, write);
  }
}

// The helper's own code and data (outside the scenario's regions) may fault
// pages in as it runs, most of all in a fresh fork child: mirror what the
// kernel shows present there so only the scenario's effects are compared.
async function syncHelperState(r: Runner, host: HostSession, slot: number, procName: string, cpu: number): Promise<void> {
  const proc = r.procs.get(procName);
  if (proc === undefined || !proc.mm.alive) return;
  const regions = [...proc.regions.values()];
  const snap = await host.snapshot(slot);
  const m = r.m;
  for (const run of snap.present) {
    for (let k = 0; k < run.npages; k++) {
      const a = run.start + k * 4096;
      if (regions.some((g) => a >= g.start && a < g.start + g.len)) continue;
      const vma = proc.mm.findVma(a);
      if (vma === null) continue;
      const pi = pteOffset(m, proc.mm, a);
      if (pi >= 0 && m.tables.get(pi) !== 0) continue;
      const write = run.kind === "a" && (vma.flags & VM_WRITE) !== 0;
      userAccess(m, cpu, proc.mm, a, write);
    }
  }
}

// Steps the host helper cannot run (a model-only actor or operation).
const HOST_CANNOT = new Set<Step["op"]>(["exec", "lockless", "oom_reap", "truncate", "reclaim", "migrate", "khugepaged", "writeback"]);

// Why the scenario cannot be compared, before the host is touched: it must
// have a report step (the comparisons are made there) and only steps the
// helper runs. A ScenarioError at the offending step, or null.
export function cannotCompare(sc: Scenario): ScenarioError | null {
  const find = (steps: readonly Step[], pred: (s: Step) => boolean): Step | undefined => {
    for (const s of steps) {
      const hit = s.op === "repeat" ? find(s.steps, pred) : pred(s) ? s : undefined;
      if (hit !== undefined) return hit;
    }
    return undefined;
  };
  const bad = find(sc.steps, (s) => HOST_CANNOT.has(s.op));
  if (bad !== undefined) return new ScenarioError(sc.file, bad.pos.line, bad.pos.col, `diff-kernel cannot run ${bad.op} steps on the host helper`);
  if (find(sc.steps, (s) => s.op === "report") === undefined)
    return new ScenarioError(
      sc.file,
      1,
      1,
      'diff-kernel has nothing to compare: host and model are compared at report steps, and the scenario has none (add "- report: LABEL")',
    );
  return null;
}

// The scenario's machine settings that the host's replace, as
// "machine.KEY: scenario -> host" (the model runs with the host's THP,
// mTHP, huge zero page, PT reclaim, paging levels and, on 6.18 and later,
// collapse_ro; the zero page is the host's too but no scenario sets it).
export function replacedSettings(
  sc: Scenario["machine"],
  host: { thp: string; thpUseZeroPage: boolean; ptReclaim: boolean; levels: number; mthp: Record<number, string>; variants: Record<string, string> },
): string[] {
  const out: string[] = [];
  const kb = (k: number) => (k >= 1024 ? `${k / 1024}M` : `${k}K`);
  const mthpText = (m: Record<number, string>) =>
    Object.entries(m)
      .sort((a, b) => Number(a[0]) - Number(b[0]))
      .map(([k, v]) => `${kb(Number(k))}=${v}`)
      .join(",") || "none";
  const put = (key: string, a: string, b: string) => {
    if (a !== b) out.push(`machine.${key}: ${a} -> ${b}`);
  };
  put("thp", sc.thp, host.thp);
  put("thp_use_zero_page", String(sc.thpUseZeroPage), String(host.thpUseZeroPage));
  put("pt_reclaim", String(sc.ptReclaim), String(host.ptReclaim));
  put("levels", String(sc.levels), String(host.levels));
  put("mthp", mthpText(sc.mthp ?? {}), mthpText(host.mthp));
  for (const [k, v] of Object.entries(host.variants)) put(`variants.${k}`, sc.variants?.[k] ?? "(default)", v);
  return out;
}

export async function runDiff(sc: Scenario, o: DiffOptions = {}): Promise<DiffResult> {
  const cannot = cannotCompare(sc);
  if (cannot !== null) throw cannot;
  const built = await ensureHelperBuilt();
  if (isHelperSkip(built)) return { skipped: built.skip, reports: [], pages: [] };
  if (sc.processes.length !== 1) throw new ScenarioError(sc.file, 1, 1, "diff-kernel needs exactly one initial process (more come from fork steps)");
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const hs = hostSwapFor(sc, built, o, log);
  if ("skip" in hs) return { skipped: hs.skip, reports: [], pages: [] };
  try {
    return await runDiffSession(sc, built, hs.swap, hs.zram !== undefined, o);
  } finally {
    if (hs.zram !== undefined) restoreZramSwap(hs.zram);
  }
}

async function runDiffSession(sc: Scenario, built: string, swap: HostSwap, setUp: boolean, o: DiffOptions): Promise<DiffResult> {
  const swapActive = swap.devices.length > 0;
  const files = await fileBase();
  const host = await HostSession.create({ helperPath: built, tmpBase: files.dir });
  try {
    const env: HostEnv = await host.env();
    const ptReclaim = env.ptReclaim ?? env.probe?.ptReclaim ?? false;
    const detected = [
      `kernel ${env.kernel}, ${env.levels ?? 4}-level paging`,
      `THP ${env.thp}, use_zero_page ${env.thpUseZeroPage ? 1 : 0}, mTHP enabled: ${
        env.mthpEnabled
          .filter((x) => x.setting !== "never")
          .map((x) => `${x.sizeKb}kB=${x.setting}`)
          .join(" ") || "none"
      }`,
      `PT reclaim ${ptReclaim ? "present" : "absent"}${env.ptReclaim === undefined ? " (from the probe)" : " (kernel config)"}`,
      `swap ${describeHostSwap(swap)}${setUp ? " (set up by --setup-swap)" : ""}; model swap ${sc.machine.swapBytes !== undefined ? `${sc.machine.swapBytes / 1024} kB` : "none"}`,
    ];
    // The host's mTHP sizes (hugepages-<size>kB/enabled below the PMD size)
    // replace the scenario's, as THP's enabled does.
    const mthp: Record<number, "always" | "madvise" | "inherit"> = {};
    for (const x of env.mthpEnabled) {
      if (x.sizeKb * 1024 >= 2 ** 21 || x.setting === "never") continue;
      if (x.setting !== "always" && x.setting !== "madvise" && x.setting !== "inherit")
        throw new ScenarioError(sc.file, 1, 1, `the host's hugepages-${x.sizeKb}kB/enabled is "${x.setting}", which the model does not know`);
      mthp[x.sizeKb] = x.setting;
    }
    if (stepsUse(sc.steps, (x) => x.op === "mmap" && x.file !== undefined))
      detected.push(`scenario files under ${files.dir}${files.tmpfs ? " (tmpfs: its page cache is shmem, which MADV_PAGEOUT swaps out)" : ""}`);
    const zeroPage = env.probe?.zeroPage ?? true;
    const hugeZero = env.probe?.hugeZeroPage ?? env.thpUseZeroPage;
    detected.push(`zero page ${zeroPage ? "used" : "not used (reads allocate)"}, huge zero page ${hugeZero ? "used" : "not used"} (probe)`);
    // A host from v6.18 on collapses read-only anonymous ranges.
    const [maj, min] = env.kernel.split(/[.-]/).map(Number) as [number, number];
    const variants = { ...sc.machine.variants };
    if (maj > 6 || (maj === 6 && min >= 18)) {
      variants.collapse_ro = "any";
      detected.push("kernel 6.18 or later: MADV_COLLAPSE takes read-only ranges too (variant collapse_ro=any)");
    }
    const spec = { ...sc.machine, variants, thp: env.thp, thpUseZeroPage: hugeZero, ptReclaim, levels: env.levels ?? 4 };
    const replaced = replacedSettings(sc.machine, {
      thp: env.thp,
      thpUseZeroPage: hugeZero,
      ptReclaim,
      levels: env.levels ?? 4,
      mthp,
      variants: variants.collapse_ro !== sc.machine.variants?.collapse_ro ? { collapse_ro: variants.collapse_ro as string } : {},
    });
    let forced = 0;
    const r = new Runner(
      { ...sc, machine: spec },
      { checkInvariants: true, zeroPage, mthp, onMachine: o.onMachine },
      { mmap: () => forced, mremap: () => forced },
    );
    const mainProc = sc.processes[0]!;
    const slotOf = new Map<string, number>([[mainProc.name, 0]]);
    const threadSlot = new Map<string, number>();
    for (const t of mainProc.threads) threadSlot.set(t.name, 0);
    let nextSlot = 1;
    replicate(r, await host.snapshot(0));
    const mainMm = r.procs.get(mainProc.name)!.mm;
    mainMm.startBrk = mainMm.brk = await host.brk(0, 0);
    r.m.rcuGracePeriod();
    const hostBase = await host.stats(0);
    const modelBase = r.figures(r.procs.get(mainProc.name)!.mm);
    const swapUsedKb = () => {
      const x = readHostSwap();
      return x.totalKb - x.freeKb;
    };
    const modelSwapUsedKb = () => ((r.m.swap?.used ?? 0) * r.m.geo.pageSize) / 1024;
    const hostSwapBase = swapUsedKb();
    const modelSwapBase = modelSwapUsedKb();
    const reports: ReportDiff[] = [];
    const pages: PageDiff[] = [];

    const regionStart = (slot: number, name: string, step: Step): number => {
      const pn = [...slotOf.entries()].find(([, s]) => s === slot)?.[0] as string;
      const reg = r.procs.get(pn)?.regions.get(name);
      if (reg === undefined) throw new ScenarioError(sc.file, step.pos.line, step.pos.col, `unknown region "${name}"`);
      return reg.start;
    };

    const exec = async (step: Step, base: number): Promise<void> => {
      if (step.op === "repeat") {
        for (let i = 0; i < step.count; i++) for (const s of step.steps) await exec(s, base + i * step.advance);
        return;
      }
      const slot = threadSlot.get(step.thread) ?? 0;
      switch (step.op) {
        case "mmap": {
          forced = await host.mmap(
            slot,
            step.size,
            step.prot,
            step.flags,
            step.addr,
            step.file !== undefined ? { path: step.file, size: step.offset + step.size } : undefined,
            step.offset,
          );
          break;
        }
        case "munmap":
        case "mprotect":
        case "madvise":
        case "touch": {
          const start = regionStart(slot, step.region, step);
          const proc = r.procs.get([...slotOf.entries()].find(([, s]) => s === slot)![0])!;
          const len = step.length ?? proc.regions.get(step.region)!.len - (step.offset + base);
          const a = start + step.offset + base;
          if (step.op === "munmap") await host.munmap(slot, a, len);
          else if (step.op === "mprotect") await host.mprotect(slot, a, len, step.prot);
          else if (step.op === "madvise") {
            // MADV_COLLAPSE fails (EINVAL, EAGAIN, EBUSY, ENOMEM) when any
            // PMD range of the call could not be collapsed, after collapsing
            // the others; the model counts those ranges (thp_collapse_failed).
            try {
              await host.madvise(slot, a, len, step.advice);
            } catch (e) {
              if (!(step.advice === "collapse" && e instanceof HostError)) throw e;
            }
          } else await host.touch(slot, a, len, step.stride || 4096, step.write);
          break;
        }
        case "mremap": {
          const start = regionStart(slot, step.region, step);
          const proc = r.procs.get([...slotOf.entries()].find(([, s]) => s === slot)![0])!;
          forced = await host.mremap(slot, start, proc.regions.get(step.region)!.len, step.newSize, step.mayMove);
          break;
        }
        case "brk": {
          const nb = await host.brk(slot, step.delta);
          r.exec(step, base);
          const pn = [...slotOf.entries()].find(([, s]) => s === slot)![0];
          const mb = r.procs.get(pn)!.mm.brk;
          if (mb !== nb)
            throw new ScenarioError(sc.file, step.pos.line, step.pos.col, `brk: the kernel's break is 0x${nb.toString(16)}, the model's 0x${mb.toString(16)}`);
          return;
        }
        case "fork": {
          const ns = nextSlot++;
          await host.fork(slot, ns);
          slotOf.set(step.child, ns);
          threadSlot.set(step.childThread, ns);
          r.exec(step, base);
          await syncHelperState(r, host, ns, step.child, step.cpu);
          return;
        }
        case "exit": {
          const s = slotOf.get(step.process);
          if (s === undefined) break;
          if (s === 0) throw new ScenarioError(sc.file, step.pos.line, step.pos.col, "diff-kernel cannot exit the initial process");
          await host.exit(s);
          slotOf.delete(step.process);
          break;
        }
        case "exec":
        case "lockless":
        case "oom_reap":
        case "truncate":
        case "reclaim":
        case "migrate":
        case "khugepaged":
        case "writeback":
          throw new ScenarioError(sc.file, step.pos.line, step.pos.col, `diff-kernel cannot run ${step.op} steps on the host helper`);
        case "report":
          for (const [pn, s] of slotOf) await syncHelperState(r, host, s, pn, r.threadCpu.get(r.procs.get(pn)!.threads[0]!) ?? 0);
          break;
      }
      r.exec(step, base);
      if (step.op === "report") {
        const row = r.rows[r.rows.length - 1]!;
        const hostUsed = swapUsedKb();
        let first = true;
        for (const p of row.processes) {
          const s = slotOf.get(p.name);
          if (s === undefined) continue;
          const hs = await host.stats(s);
          const mf: Figures = p.figures;
          const d = (figure: FigureDiff["figure"], hv: number, mv: number, tol: number): FigureDiff => ({
            figure,
            host: hv,
            model: mv,
            agree: Math.abs(hv - mv) <= tol,
          });
          const figures = [
            d("vmpte_kb", hs.vmpte_kb - hostBase.vmpte_kb, mf.vmpte_kb - modelBase.vmpte_kb, 0),
            d("rss_anon_kb", hs.rss_anon_kb - hostBase.rss_anon_kb, mf.rss_anon_kb - modelBase.rss_anon_kb, RSS_NOISE_KB),
            d("anon_huge_kb", hs.anon_huge_kb - hostBase.anon_huge_kb, mf.anon_huge_kb - modelBase.anon_huge_kb, 0),
          ];
          if (swapActive) figures.push(d("vmswap_kb", hs.vmswap_kb - hostBase.vmswap_kb, mf.vmswap_kb - modelBase.vmswap_kb, 0));
          if (setUp && first) figures.push(d("swap_used_kb", hostUsed - hostSwapBase, modelSwapUsedKb() - modelSwapBase, 0));
          first = false;
          reports.push({ label: row.label, process: p.name, figures });
          pages.push(await comparePages(r, host, s, row.label, p.name));
        }
      }
    };
    for (const s of sc.steps) await exec(s, 0);
    return { detected, replaced, reports, pages };
  } finally {
    await host.close();
  }
}

// The pages of every region of process `name` (slot `slot` on the host).
async function comparePages(r: Runner, host: HostSession, slot: number, label: string, name: string): Promise<PageDiff> {
  const proc = r.procs.get(name);
  const d: PageDiff = { label, process: name, regions: [], compared: 0, differ: 0, first: [], agree: true };
  if (proc === undefined) return d;
  const ps = r.m.geo.pageSize;
  const fileVma = (a: number) => proc.mm.findVma(a)?.file != null;
  for (const [region, g] of [...proc.regions.entries()].sort((a, b) => a[1].start - b[1].start)) {
    const n = Math.ceil(g.len / ps);
    const hostRuns = await host.pages(slot, g.start, n);
    d.regions.push(region);
    compareRegion(d, region, g.start, ps, hostStates(hostRuns, g.start, n, ps), modelStates(r.m, proc.mm, g.start, n), fileVma);
  }
  return d;
}

export async function diffKernel(sc: Scenario, o: { json: boolean; setupSwap?: boolean }): Promise<number> {
  const res = await runDiff(sc, { setupSwap: o.setupSwap === true });
  const bad = res.reports.some((rep) => rep.figures.some((f) => !f.agree)) || res.pages.some((p) => !p.agree);
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ scenario: sc.name, file: sc.file, ...res }, null, 2)}\n`);
  } else if (res.skipped !== undefined) {
    process.stdout.write(`diff-kernel skipped: ${res.skipped}\n`);
  } else {
    const out = [
      `ptlab diff-kernel ${sc.file}: ${sc.name}`,
      ...(res.detected ?? []).map((d) => `  detected: ${d}`),
      ...(res.replaced ?? []).map((d) => `  replaced by the host's: ${d}`),
      "",
    ];
    out.push("report / process / figure (change since start, kB)         host     model   result");
    res.reports.forEach((rep, i) => {
      for (const f of rep.figures)
        out.push(
          `${`${rep.label} / ${rep.process} / ${f.figure}`.padEnd(56)} ${String(f.host).padStart(8)} ${String(f.model).padStart(9)}   ${f.agree ? "agree" : "DIFFER"}`,
        );
      const pg = res.pages[i];
      if (pg === undefined) return;
      const what = `${pg.label} / ${pg.process} / pages of ${pg.regions.join(", ") || "no region"}`;
      out.push(`${what.padEnd(56)} ${`${pg.compared} compared`.padStart(18)}   ${pg.agree ? "agree" : `DIFFER (${pg.differ})`}`);
      for (const x of pg.first) out.push(`    ${x.region}+0x${x.offset.toString(16)}: host ${x.host}; model ${x.model}`);
      if (pg.differ > pg.first.length) out.push(`    ... ${pg.differ - pg.first.length} more`);
    });
    process.stdout.write(`${out.join("\n")}\n`);
  }
  return bad ? 1 : 0;
}
