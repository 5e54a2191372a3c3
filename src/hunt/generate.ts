// Random concurrent scenarios for `ptlab hunt`, swarm style (Groce et al.,
// "Swarm testing", ISSTA 2012): each case first picks which kinds of
// operation and actor it may use at all, then draws machine features, one or
// two mappings with sizes and placements around the boundaries the kernel
// code cares about (base page, folio, contpte block, the 33-page flush
// ceiling, PTE table, PMD), a few set-up steps that leave varied folio, TLB
// and walk-cache state on several CPUs, and 2 to 4 threads with 1 or 2
// concurrent steps each, whose ranges often meet at one focus page.
//
// Every random choice is read from a choice sequence (a list of 32-bit
// words): the same sequence gives the same case, and a mutated sequence (a
// few words changed) gives a neighbouring case. Coverage-guided generation
// mutates the sequences of cases that reached something new, as Zest and
// Hypothesis do. No Node APIs.

import { rng } from "../workloads/builder.js";
import { type Case, type MachineDoc, type ProcDoc, type StepDoc, KiB, MiB } from "./case.js";

export class Choices {
  pos = 0;
  constructor(
    readonly words: number[],
    private readonly rnd: () => number,
  ) {}
  static fresh(seed: number): Choices {
    return new Choices([], rng(seed));
  }
  private next(): number {
    if (this.pos >= this.words.length) this.words.push(Math.floor(this.rnd() * 4294967296));
    return (this.words[this.pos++] as number) / 4294967296;
  }
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  weighted<T>(xs: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of xs) total += w;
    let r = this.next() * total;
    for (const [x, w] of xs) {
      r -= w;
      if (r < 0) return x;
    }
    return (xs[xs.length - 1] as readonly [T, number])[0];
  }
  // A choice sequence of its own, drawn from one word of this one: the
  // generator draws each step from its own, so that changing one word of
  // the case's sequence redraws one step and leaves the others as they
  // were (a mutation with locality, as syzkaller mutates one call of a
  // program), instead of shifting every choice after it.
  fork(): Choices {
    return new Choices([], rng(this.int(4294967296)));
  }
  // The words this case consumed (a mutation of an unused tail changes nothing).
  used(): number[] {
    return this.words.slice(0, this.pos);
  }
}

// A neighbour of a choice sequence: a few words redrawn, sometimes the tail
// dropped (regenerated fresh), sometimes a splice with another sequence.
// With `focus` (where the concurrent steps' sequences are forked), half the
// time exactly one concurrent step is redrawn: the set-up and the other
// threads stay as they were, which keeps a case that reached a variant's
// code near it while the party racing it changes.
export function mutate(words: number[], other: number[] | null, rnd: () => number, focus: readonly number[] = []): number[] {
  const w = [...words];
  if (focus.length > 0 && rnd() < 0.5) {
    const at = focus[Math.floor(rnd() * focus.length)] as number;
    if (at < w.length) {
      w[at] = Math.floor(rnd() * 4294967296);
      return w;
    }
  }
  const k = rnd();
  if (k < 0.15 && w.length > 4) w.length = 4 + Math.floor(rnd() * (w.length - 4));
  else if (k < 0.25 && other !== null && other.length > 0) {
    const cut = Math.floor(rnd() * Math.min(w.length, other.length));
    return [...w.slice(0, cut), ...other.slice(cut)];
  } else {
    const n = 1 + Math.floor(rnd() * 4);
    for (let i = 0; i < n && w.length > 0; i++) w[Math.floor(rnd() * w.length)] = Math.floor(rnd() * 4294967296);
  }
  return w;
}

export interface GenOptions {
  variants: Record<string, string>;
  arch?: "x86_64" | "arm64"; // only this architecture (the variant's code exists only there)
  // Probability that the swarm configuration includes each kind (by name;
  // 0.55 for a kind not listed): the campaign learns these from the cases
  // that reached a selected variant's code.
  kindOdds?: Record<string, number>;
  // For each yes/no feature of a case's configuration: [yes, drawn] among
  // the cases that reached the variant's code; a fresh case draws it with
  // odds leaning toward theirs.
  featureStats?: Record<string, [number, number]>;
}

// The kinds of concurrent step a case may use (its swarm configuration).
export const KINDS = [
  "touch",
  "read",
  "dontneed",
  "free",
  "cold",
  "pageout",
  "thp-advice",
  "mprotect",
  "munmap",
  "fork",
  "lockless",
  "exit",
  "mremap",
  "brk",
  "truncate",
  "reclaim",
  "writeback",
  "migrate",
  "collapse",
] as const;
// Kinds drawn from a stream of their own (see `pc` in generate()), so that
// adding them left the cases of every seed without them as they were.
export const LATE_KINDS = ["pin"] as const;
export type Kind = (typeof KINDS)[number] | (typeof LATE_KINDS)[number];
const NOT_EXIT = KINDS.filter((k) => k !== "exit");
// Weight of a feature's default odds against what the reaching cases drew:
// the first few cases that reach a change carry incidental features, and
// a weak prior let those decide the rest of a campaign.
const PRIOR = 8;

// Page state bits the generator keeps so that set-up steps stay valid.
const MAPPED = 1;
const PR = 2;
const PW = 4;
const POP = 8; // a set-up step touched or read it (an entry may be present)

interface Region {
  name: string;
  pages: Uint8Array;
  anonPrivate: boolean;
  file: string | null; // the file it maps
  table: number; // offset in pages of its first PTE table boundary, -1: placement unknown
  addr: number | null; // where it was placed (null: the kernel picks)
  arena?: boolean; // a THP arena: its ranges mostly whole PMDs, its first use a store
}

interface Proc {
  name: string;
  threads: string[];
  regions: Region[];
  alive: boolean;
}

export function generate(root: Choices, name: string, opts: GenOptions): Case {
  // The machine and the case's shape come from the root sequence, each
  // mapping and step from a sequence forked from it (Choices.fork()).
  let ch = root;
  // A yes/no choice of the case's configuration (not of one step), whose
  // odds the campaign learns like the kinds' (GenOptions.featureStats).
  const drawn: string[] = [];
  const on: string[] = [];
  const feature = (name: string, p: number, from: Choices = ch): boolean => {
    const st = opts.featureStats?.[name];
    const q = st === undefined ? p : Math.min(0.9, Math.max(0.1, (st[0] + PRIOR * p) / (st[1] + PRIOR)));
    const yes = from.bool(q);
    drawn.push(name);
    if (yes) on.push(name);
    return yes;
  };
  // ---- machine ------------------------------------------------------------------
  const arch = opts.arch ?? (feature("arm64", 0.5) ? "arm64" : "x86_64");
  const gran: 4 | 16 | 64 =
    arch === "arm64"
      ? ch.weighted<4 | 16 | 64>([
          [4, 6],
          [16, 1],
          [64, 1],
        ])
      : 4;
  const page = gran * KiB;
  const ptes = page / 8; // PTRS_PER_PTE
  const block = arch === "arm64" ? (gran === 4 ? 16 : gran === 16 ? 128 : 32) : 16; // CONT_PTES (x86: a 64K folio)
  const pmdBytes = page * ptes;
  // mTHP sizes the granule offers (orders 2 .. PMD order - 1), the block size first.
  const mthpChoices: number[] = [];
  for (let o = 2; page << o < pmdBytes && page << o <= 2 * MiB; o++) mthpChoices.push(page << o);
  const blockBytes = block * page;
  const mthp: number[] = [];
  const mthpMode = !feature("mthp", 0.7)
    ? "none"
    : ch.weighted([
        ["block", 4],
        ["one", 2],
        ["two", 1],
      ] as const);
  if (mthpMode === "block" && mthpChoices.includes(blockBytes)) mthp.push(blockBytes);
  else if (mthpMode === "one" || mthpMode === "block") mthp.push(ch.pick(mthpChoices));
  else if (mthpMode === "two") {
    const a = ch.pick(mthpChoices);
    const b = ch.pick(mthpChoices);
    mthp.push(...new Set([a, b]));
  }
  mthp.sort((a, b) => a - b);
  const machine: MachineDoc = {
    arch,
    cpus: 0,
    thp: ch.weighted([
      ["never", 2],
      ["madvise", 2],
      ["always", 1],
    ] as const),
    thpUseZeroPage: ch.bool(0.7),
    ptReclaim: feature("pt-reclaim", 0.8),
    nowaitAllocFails: feature("nowait-alloc-fails", 0.3),
    mthp: mthp.map((b) => (b % MiB === 0 && b > MiB ? `${b / MiB}M` : `${b / KiB}K`)),
    variants: { ...opts.variants },
  };
  if (arch === "arm64")
    machine.arm64 = { granule: gran, hafdbs: feature("hafdbs", 0.8), tlbiRange: feature("tlbi-range", 0.6), bbml2NoAbort: feature("bbml2-noabort", 0.2) };

  // ---- swarm: which kinds this case may use ----------------------------------------
  const kinds0 = KINDS.filter((k) => ch.bool(opts.kindOdds?.[k] ?? 0.55));
  if (kinds0.length === 0) kinds0.push(ch.pick(KINDS));
  // GUP pins draw from a choice stream of their own, seeded by the words
  // drawn so far: a mutation of those redraws them too.
  let seed = 2166136261;
  for (let i = 0; i < root.pos; i++) seed = Math.imul(seed ^ (root.words[i] as number), 16777619) >>> 0;
  const pc = new Choices([], rng(seed));
  // khugepaged rather than MADV_COLLAPSE for the collapse kind: one more
  // stream of its own, so that the cases without it stay as they were.
  const viaKhugepaged = new Choices([], rng(seed ^ 0x5bd1e995)).bool(0.5);
  const kinds: Kind[] = [...kinds0];
  if (pc.bool(opts.kindOdds?.pin ?? 0.3)) kinds.push("pin");
  const has = (k: Kind) => kinds.includes(k);
  const reaper = has("exit") && feature("oom-reaper", 0.5);
  // Memory pressure (one more stream of its own): the smallest memory limit
  // and a headroom of a few pages after the set-up, so that the concurrent
  // steps' allocations wake kswapd, which reclaims beside them; swap for
  // the anon pages it takes. kswapd gets a CPU of its own (added last).
  const pressure = feature("pressure", 0.15, new Choices([], rng(seed ^ 0x27d4eb2f)));
  if (pressure) {
    machine.memory = 16 * MiB;
    machine.headroom = new Choices([], rng(seed ^ 0x165667b1)).pick([0, 1, 2, 4, 16]) * page;
    machine.swap = 16 * MiB;
  }
  // Reclaim needs somewhere to put anon pages; MADV_PAGEOUT swaps with one.
  if (has("reclaim") || (has("pageout") && ch.bool(0.5))) machine.swap = 16 * MiB;

  // ---- processes and threads ---------------------------------------------------------
  const nThreads = 2 + ch.int(3);
  const p: Proc = { name: "p", threads: [], regions: [], alive: true };
  const procDocs: ProcDoc[] = [{ name: "p", threads: [] }];
  let cpu = 0;
  for (let i = 0; i < nThreads; i++) {
    p.threads.push(`T${i}`);
    (procDocs[0] as ProcDoc).threads.push({ name: `T${i}`, cpu: cpu++ });
  }
  const procs: Proc[] = [p];
  let q: Proc | null = null;
  let reaperCpu = -1;
  if (reaper) {
    q = { name: "q", threads: ["Q"], regions: [], alive: true };
    reaperCpu = cpu;
    procDocs.push({ name: "q", threads: [{ name: "Q", cpu: cpu++ }] });
    procs.push(q);
  }
  machine.cpus = cpu;
  const cpuOf = new Map<string, number>();
  for (const d of procDocs) for (const t of d.threads) cpuOf.set(t.name, t.cpu);

  // ---- ranges ----------------------------------------------------------------------------
  const capPages = Math.max(4, Math.min(1024, Math.floor((4 * MiB) / page)));
  const sizeChoices = [1, 2, 4, block >> 1, block, block + 1, 2 * block, 33, 34, 64, ptes >> 1, ptes, ptes + block, 2 * ptes].filter(
    (n) => n >= 1 && n <= capPages,
  );
  // The page the steps meet at, and the region it is a page of (a child's
  // copy of a region has its name).
  let focus = -1;
  let focusReg = "";
  // Whether ranges snap to whole PTE tables when they can (what PT reclaim
  // and free_pgtables() need), and whether the populating step fills the
  // whole region and with reads (clean entries, as file data and read-mostly
  // memory leave them): features of the case, learned like the machine's.
  const wholeTables = feature("whole-tables", 0.35);
  const populateAll = feature("populate-all", 0.2);
  const readPopulate = feature("read-populate", 0.2);
  const readFile = feature("read-file", 0.5); // file data is mostly read
  // A range of a region: [off, off + len) in pages. Sometimes exactly the
  // PTE tables the region covers whole (what PT reclaim and free_pgtables()
  // need), where the placement says where they begin.
  const range = (r: Region, near: boolean, maxLen = r.pages.length, tables = false): [number, number] => {
    const n = r.pages.length;
    if (tables && (wholeTables || r.arena === true) && r.table >= 0 && r.table + ptes <= n && ch.bool(0.75)) {
      const k = Math.floor((n - r.table) / ptes);
      const off = r.table + ch.int(k) * ptes;
      const len = ch.bool(0.7) ? ptes : (k - Math.floor((off - r.table) / ptes)) * ptes;
      if (focus < 0) {
        focus = off + ch.int(ptes);
        focusReg = r.name;
      }
      return [off, len];
    }
    let off: number;
    if (near && focus >= 0 && r.name === focusReg && ch.bool(0.6))
      off = Math.max(0, Math.min(n - 1, focus + ch.pick([0, 0, -1, 1, -(block >> 1), block >> 1, -block])));
    else
      off = Math.max(
        0,
        Math.min(
          n - 1,
          ch.pick([0, 0, 0, 1, block - 1, block, block >> 1, n >> 1, ptes - 1, ptes, ptes - block, n - 1, ch.int(n)].filter((x) => x >= 0 && x < n)),
        ),
      );
    const rest = n - off;
    let len = ch.pick([1, 1, 2, block >> 1, block, rest, rest, 33, ptes, mthp.length > 0 ? ((mthp[0] as number) / page) | 0 : 4, ch.int(rest) + 1]);
    len = Math.max(1, Math.min(len, rest, maxLen));
    if (focus < 0) {
      focus = off;
      focusReg = r.name;
    }
    return [off, len];
  };
  const args = (region: Region, off: number, len: number, n: number): Record<string, number | string> => {
    const a: Record<string, number | string> = { region: region.name };
    if (off > 0) a.offset = off * page;
    if (off + len < n || off > 0) a.length = len * page;
    return a;
  };

  const steps: StepDoc[] = [];
  const conc: StepDoc[] = [];
  let halves: boolean | null = null; // the half-pages feature, drawn at its first use

  // ---- mappings ------------------------------------------------------------------------------
  const nRegions = feature("two-regions", 0.25) ? 2 : 1;
  for (let i = 0; i < nRegions; i++) {
    ch = root.fork();
    // Big: at least a PTE table (a whole-table range fits in it).
    const big = sizeChoices.filter((x) => x >= ptes);
    let n = big.length > 0 && feature("big", 0.2) ? ch.pick(big) : ch.pick(sizeChoices);
    // Backed by a file (0.35), and shared (a third of file mappings, one
    // in seven anonymous ones): learned features, as the machine's.
    const isFile = feature("file", 0.35);
    const isShared = isFile ? feature("shared-file", 0.43) : feature("shared-anon", 0.15);
    let kind = isFile ? (isShared ? "shared-file" : "file") : isShared ? "shared-anon" : "anon";
    let prot = ch.weighted([
      ["rw", 9],
      ["r", 1],
    ] as const);
    // Placement: where the kernel puts it, PMD aligned, or straddling a PMD
    // boundary (two PTE tables).
    const base = 0x7e0000000000 + i * 2 ** 36;
    let place = !feature("placed", 0.7) ? "kernel" : feature("straddle", 0.43) ? "straddle" : "aligned";
    const straddleBy = place === "straddle" ? ch.pick([1, 2, block >> 1, block, Math.min(n, 33)]) : 0;
    const above = has("mremap") && feature("above", 0.5);
    let advice = machine.thp === "madvise" && ch.bool(0.4) ? "hugepage" : machine.thp === "always" && ch.bool(0.2) ? "nohugepage" : "";
    // A THP arena (a learned feature, drawn last from the region's own
    // choices so that other cases are the ones they were): an allocator's or
    // a runtime's heap, anonymous, PMD aligned and one or two PMDs big, with
    // MADV_HUGEPAGE where THP is "madvise", populated by stores, so that its
    // first touch maps a whole PMD, and its ranges mostly whole PMDs (a
    // chunk purged or protected whole): what madvise_free_huge_pmd(),
    // zap_huge_pmd(), change_huge_pmd() and the splits work on.
    const arena = i === 0 && machine.thp !== "never" && 2 * ptes <= capPages && feature("thp-arena", 0.15);
    if (arena) {
      n = ch.bool(0.7) ? ptes : 2 * ptes;
      kind = "anon";
      prot = "rw";
      place = "aligned";
      advice = machine.thp === "madvise" ? "hugepage" : "";
      for (const f of ["big", "file", "shared-anon", "straddle"]) {
        const k = on.indexOf(f);
        if (k >= 0) on.splice(k, 1);
      }
      if (!on.includes("placed")) on.push("placed");
    }
    const name = i === 0 ? "r" : "s";
    const a: Record<string, number | string | string[]> = { region: name, size: n * page };
    if (prot !== "rw") a.prot = prot;
    if (kind === "shared-anon") a.flags = ["shared", "anonymous"];
    if (kind === "file" || kind === "shared-file") {
      a.file = `f${i}`;
      if (kind === "shared-file") a.flags = ["shared"];
    }
    if (place === "aligned") a.addr = base;
    else if (place === "straddle") a.addr = base + pmdBytes - straddleBy * page;
    a.thread = "T0";
    // A neighbour right above it: mremap cannot grow the region in place
    // and must move it (move_vma()), as a growing buffer usually must. Where
    // the kernel places the region, the neighbour is mapped first: the
    // top-down search (unmapped_area_topdown()) puts the region right below it.
    if (above && a.addr === undefined) steps.push({ op: "mmap", args: { region: `${name}above`, size: page, prot: "r", thread: "T0" } });
    steps.push({ op: "mmap", args: a });
    if (above && a.addr !== undefined)
      steps.push({ op: "mmap", args: { region: `${name}above`, size: page, prot: "r", addr: (a.addr as number) + n * page, thread: "T0" } });
    const pages = new Uint8Array(n).fill(MAPPED | PR | (prot === "rw" ? PW : 0));
    const table = place === "aligned" ? 0 : place === "straddle" ? (pmdBytes - ((a.addr as number) % pmdBytes)) / page : -1;
    p.regions.push({
      name,
      pages,
      anonPrivate: kind === "anon",
      file: (a.file as string | undefined) ?? null,
      table,
      addr: (a.addr as number | undefined) ?? null,
      ...(arena ? { arena } : {}),
    });
    if (advice !== "") steps.push({ op: "madvise", args: { region: name, advice, thread: "T0" } });
  }

  ch = root;
  // The heap, for a concurrent brk to shrink or grow.
  if (has("brk") && feature("heap", 0.8)) {
    const hp = ch.pick([1, 2, block, 33]);
    steps.push({ op: "brk", args: { delta: hp * page, region: "h", thread: "T0" } });
    p.regions.push({ name: "h", pages: new Uint8Array(hp).fill(MAPPED | PR | PW), anonPrivate: true, file: null, table: -1, addr: null });
  }

  // ---- set-up: populate, then a few steps that vary the state ---------------------------
  const mappedRun = (r: Region, off: number, len: number, need: number): number => {
    let k = 0;
    while (k < len && ((r.pages[off + k] as number) & need) === need) k++;
    return k;
  };
  // Pages the set-up's MADV_PAGEOUT steps may have written to swap.
  let swappedPages = 0;
  const countPop = (r: Region, off: number, len: number): number => {
    let k = 0;
    for (let i = off; i < off + len; i++) if (((r.pages[i] as number) & POP) !== 0) k++;
    return k;
  };
  const markPopulated = (r: Region, off: number, len: number): void => {
    for (let i = off; i < off + len; i++) r.pages[i] = (r.pages[i] as number) | POP;
  };
  // Zapped or swapped out: the next access faults.
  const markUnpopulated = (r: Region, off: number, len: number): void => {
    for (let i = off; i < off + len; i++) r.pages[i] = (r.pages[i] as number) & ~POP;
  };
  // The pages of r with every bit of `need`.
  const pagesWith = (r: Region, need: number): number[] => {
    const idx: number[] = [];
    for (let i = 0; i < r.pages.length; i++) if (((r.pages[i] as number) & need) === need) idx.push(i);
    return idx;
  };
  // Mostly the region the focus page is in, when it is among them.
  const pickRegion = (rs: Region[]): Region => {
    const f = rs.find((x) => x.name === focusReg);
    return f !== undefined && ch.bool(0.7) ? f : ch.pick(rs);
  };
  const childNames: string[] = [];
  // A set-up fork of pr from thread t, the child exiting at once or not.
  const forkChild = (pr: Proc, t: string, exitAtOnce: boolean): void => {
    const child = `c${childNames.length + 1}`;
    // A CPU of its own: two threads sharing one would be switched between
    // in the middle of a hardware walk or a spinlocked section, which no
    // kernel does, and the explorer would find what cannot happen.
    const ccpu = cpu++;
    machine.cpus = cpu;
    steps.push({ op: "fork", args: { child, cpu: ccpu, thread: t } });
    const cp: Proc = { name: child, threads: [`${child}.t0`], regions: pr.regions.map((x) => ({ ...x, pages: x.pages.slice() })), alive: true };
    cpuOf.set(`${child}.t0`, ccpu);
    childNames.push(child);
    procs.push(cp);
    if (exitAtOnce) {
      steps.push({ op: "exit", args: { process: child, thread: `${child}.t0` } });
      cp.alive = false;
    }
  };
  // A protection the set-up took away, which a concurrent mprotect may give back (W^X flips).
  let lastProtect: { r: Region; off: number; len: number } | null = null;
  const setupStep = (populate: boolean): void => {
    const alive = procs.filter((x) => x.alive && x.regions.length > 0);
    if (alive.length === 0) return;
    const pr = populate ? p : ch.pick(alive);
    if (pr.regions.length === 0) return;
    const t = ch.pick(pr.threads);
    const r = ch.pick(pr.regions);
    const n = r.pages.length;
    const what = populate
      ? r.arena !== true && (readPopulate || (r.file !== null && readFile))
        ? "read"
        : "touch"
      : ch.weighted([
          ["touch", 4],
          ["read", 2],
          ["madvise", 3],
          ["mprotect", 2],
          ["fork", has("fork") || has("exit") ? 3 : 1],
          ["munmap", 1],
          ["reclaim", has("reclaim") ? 2 : 0],
          ["writeback", r.file !== null ? (has("writeback") ? 3 : 1) : 0],
        ] as const);
    if (what === "touch" || what === "read") {
      // Every page populated here is faulted again in every execution and
      // scanned by every check: mostly a few blocks, sometimes all of it.
      const [off, len0] = range(r, false, (populate ? populateAll : ch.bool(0.2)) ? n : 2 * block);
      const len = mappedRun(r, off, len0, what === "touch" ? MAPPED | PW : MAPPED | PR);
      if (len === 0) return;
      steps.push({ op: what, args: { ...args(r, off, len, n), thread: t } });
      markPopulated(r, off, len);
      return;
    }
    if (what === "madvise") {
      const [off, len0] = range(r, false, n, true);
      const len = mappedRun(r, off, len0, MAPPED);
      if (len === 0) return;
      // Mostly the advice that ages or cleans (young and dirty bits are what this layer keeps).
      const advice = ch.weighted([
        ["free", 3],
        ["cold", 2],
        ["dontneed", 2],
        ["pageout", 1],
        ["willneed", 1],
        ["hugepage", 1],
        ["nohugepage", 1],
      ] as const);
      steps.push({ op: "madvise", args: { ...args(r, off, len, n), advice, thread: t } });
      if (advice === "pageout" && r.anonPrivate) swappedPages += countPop(r, off, len);
      if (advice === "dontneed" || advice === "pageout") markUnpopulated(r, off, len);
      return;
    }
    if (what === "mprotect") {
      const [off, len0] = range(r, false, n, r.arena === true);
      const len = mappedRun(r, off, len0, MAPPED);
      if (len === 0) return;
      const prot = ch.pick(["r", "rw", "none"]);
      steps.push({ op: "mprotect", args: { ...args(r, off, len, n), prot, thread: t } });
      if (prot !== "rw" && pr === p) lastProtect = { r, off, len };
      for (let i = off; i < off + len; i++)
        r.pages[i] = MAPPED | ((r.pages[i] as number) & POP) | (prot.includes("r") ? PR : 0) | (prot.includes("w") ? PW : 0);
      return;
    }
    if (what === "writeback") {
      // The flusher cleans what the set-up wrote: shared file entries end
      // clean and write-protected, as most are in a long-running program.
      steps.push({ op: "writeback", args: { file: r.file as string, thread: t } });
      return;
    }
    if (what === "reclaim") {
      // A first pass ages what it finds referenced; the next one reclaims.
      const [off, len0] = range(r, false);
      const len = mappedRun(r, off, len0, MAPPED);
      if (len === 0) return;
      steps.push({ op: "reclaim", args: { ...args(r, off, len, n), process: pr.name, thread: t } });
      return;
    }
    if (what === "munmap") {
      const [off, len] = range(r, false, n, true);
      if (len >= n) return; // keep the region
      steps.push({ op: "munmap", args: { ...args(r, off, len, n), thread: t } });
      for (let i = off; i < off + len; i++) r.pages[i] = 0;
      return;
    }
    // fork: the child inherits the regions; it may exit again at once (the
    // folios go back to one mapper, with AnonExclusive as the kernel leaves it).
    forkChild(pr, t, feature("fork-exit", 0.4));
  };
  // A page or two written or read again after a step that aged, cleaned,
  // shared or protected memory: folios end up with mixed young, dirty and
  // AnonExclusive state across their pages, as in programs that free with
  // MADV_FREE, fork children, or flip protections.
  const retouch = (): void => {
    const r = ch.pick(p.regions);
    const [off, len0] = range(r, true, 2);
    const write = ch.bool(0.7);
    const len = mappedRun(r, off, len0, write ? MAPPED | PW : MAPPED | PR);
    if (len > 0) steps.push({ op: write ? "touch" : "read", args: { ...args(r, off, len, r.pages.length), thread: ch.pick(p.threads) } });
    markPopulated(r, off, len);
  };
  // MADV_FREE over what the set-up populated of a private anon region, then
  // a store to a page or two of it.
  const lazyfreeStep = (): boolean => {
    const rs = p.regions.filter((x) => x.anonPrivate && x.pages.some((b) => (b & (POP | PW)) === (POP | PW)));
    if (rs.length === 0) return false;
    const r = ch.pick(rs);
    const n = r.pages.length;
    let lo = 0;
    while (((r.pages[lo] as number) & POP) === 0) lo++;
    const len = mappedRun(r, lo, n - lo, MAPPED | POP);
    steps.push({ op: "madvise", args: { ...args(r, lo, len, n), advice: "free", thread: ch.pick(p.threads) } });
    const off = lo + ch.int(len);
    const w = mappedRun(r, off, ch.bool(0.7) ? 1 : 2, MAPPED | PW);
    if (w > 0) steps.push({ op: "touch", args: { ...args(r, off, w, n), thread: ch.pick(p.threads) } });
    // The concurrent steps meet where the folio's entries now differ.
    if (w > 0 && ch.bool(0.7)) [focus, focusReg] = [off, r.name];
    return true;
  };
  // Memory a long-running program has not used for a while, swapped out
  // (MADV_PAGEOUT, as a proactive reclaimer does) over what the set-up
  // populated of a private anon region: the concurrent steps fault it back
  // in through do_swap_page().
  const swappedStep = (): boolean => {
    const rs = p.regions.filter((x) => x.anonPrivate && x.pages.some((b) => (b & (MAPPED | POP)) === (MAPPED | POP)));
    if (rs.length === 0) return false;
    const r = ch.pick(rs);
    const n = r.pages.length;
    const lo = ch.pick(pagesWith(r, MAPPED | POP));
    // A run of populated pages: each one swapped out.
    const len = mappedRun(r, lo, ch.pick([1, 2, block, n]), MAPPED | POP);
    steps.push({ op: "madvise", args: { ...args(r, lo, len, n), advice: "pageout", thread: ch.pick(p.threads) } });
    swappedPages += len;
    markUnpopulated(r, lo, len);
    if (ch.bool(0.7)) [focus, focusReg] = [lo + ch.int(len), r.name];
    return true;
  };
  // A page or two of what the set-up populated of a private anon region, its
  // index: near the focus when that is one, else any.
  const populatedPage = (writable: boolean): [Region, number] | null => {
    const need = writable ? MAPPED | POP | PW : MAPPED | POP;
    const rs = p.regions.filter((x) => x.anonPrivate && x.pages.some((b) => (b & need) === need));
    if (rs.length === 0) return null;
    const r = pickRegion(rs);
    const idx = pagesWith(r, need);
    // Near the focus, or the first page of the block-sized folio a page is
    // in (where the region's placement says where those begin).
    let f = ch.bool(0.6) && focus >= 0 && r.name === focusReg ? focus + ch.pick([0, 0, 1, -1, block >> 1]) : ch.pick(idx);
    if (r.table >= 0 && ch.bool(0.4)) f -= (((f - r.table) % block) + block) % block;
    return [r, f >= 0 && f < r.pages.length && ((r.pages[f] as number) & need) === need ? f : ch.pick(idx)];
  };
  // fork() then exec (the child's mm goes away at once), then the parent
  // writes a page or two of what it had: the COW-reuse path, which leaves
  // large folios AnonExclusive on the pages written again only.
  const forkExecStep = (): boolean => {
    const at = populatedPage(true);
    if (at === null) return false;
    const [r, off] = at;
    forkChild(p, ch.pick(p.threads), true);
    const w = mappedRun(r, off, ch.bool(0.6) ? 1 : 2, MAPPED | PW);
    steps.push({ op: "touch", args: { ...args(r, off, w, r.pages.length), thread: ch.pick(p.threads) } });
    if (ch.bool(0.7)) [focus, focusReg] = [off, r.name];
    return true;
  };
  // W^X as JITs do it: write taken away from a range that starts at a
  // populated page (and given back by a concurrent mprotect, wx-flip).
  const wxStep = (): void => {
    const at = populatedPage(false);
    if (at === null) return;
    const [r, page] = at;
    // From that page or a little above it: inside the folio it belongs to.
    const off = Math.min(r.pages.length - 1, page + ch.pick([0, 1, 1, 2, block >> 2, block >> 1]));
    const len = mappedRun(r, off, ch.pick([1, 2, block >> 1, block, r.pages.length]), MAPPED);
    if (len === 0) return;
    const prot = ch.bool(0.75) ? "r" : "none";
    steps.push({ op: "mprotect", args: { ...args(r, off, len, r.pages.length), prot, thread: ch.pick(p.threads) } });
    // Half the time the set-up flips it back itself (to patch the code
    // again), else a concurrent step may (wx-flip).
    if (ch.bool(0.5)) {
      steps.push({ op: "mprotect", args: { ...args(r, off, len, r.pages.length), prot: "rw", thread: ch.pick(p.threads) } });
      return;
    }
    lastProtect = { r, off, len };
    for (let i = off; i < off + len; i++) r.pages[i] = MAPPED | ((r.pages[i] as number) & POP) | (prot === "r" ? PR : 0);
  };
  if (root.bool(0.9)) {
    ch = root.fork();
    setupStep(true);
  }
  // A longterm GUP pin (an io_uring fixed buffer, an RDMA region) on a page
  // or two the set-up populated, before the steps that fork, reclaim or
  // move memory: what fork's early COW, reclaim, migration and collapse
  // must respect. A learned feature; "pin" steps use it (dma, unpin).
  let pinned: { r: Region; off: number; write: boolean; name: string } | null = null;
  let pins = 0;
  ch = pc;
  if (feature("pinned", has("pin") ? 0.5 : 0.1)) {
    ch = pc.fork();
    const at = populatedPage(false);
    if (at !== null) {
      const [r, off] = at;
      const write = ((r.pages[off] as number) & PW) !== 0 && ch.bool(0.75);
      const len = mappedRun(r, off, ch.bool(0.7) ? 1 : 2, MAPPED | PR);
      const name = `P${pins++}`;
      steps.push({ op: "pin", args: { ...args(r, off, len, r.pages.length), write, fast: ch.bool(0.5), name, thread: ch.pick(p.threads) } });
      pinned = { r, off, write, name };
      if (ch.bool(0.7)) [focus, focusReg] = [off, r.name];
    }
  }
  // Memory an allocator handed back with MADV_FREE and then reused in
  // part (jemalloc's and glibc's pattern): large folios whose entries are
  // clean except a few written again, the state that access/dirty
  // gathering and lazyfree reclaim must get right. A learned feature.
  // fork-exec and wx: the two other patterns of real programs that leave
  // the folios' pages in mixed states, learned the same way.
  ch = root;
  const lazyfree = feature("lazyfree", 0.2);
  const forkExec = feature("fork-exec", 0.35);
  const wx = feature("wx", 0.35);
  // Swapped-out memory, and a swap device it fills (a learned feature each).
  const swapped = feature("swapped", 0.2);
  if (swapped && machine.swap === undefined) machine.swap = 16 * MiB;
  const fullSwap = machine.swap !== undefined && feature("full-swap", 0.3);
  const extra = 1 + root.int(4);
  const lazyAt = lazyfree ? root.int(extra) : -1;
  const forkAt = forkExec ? root.int(extra) : -1;
  for (let i = 0; i < extra; i++) {
    ch = root.fork();
    const before = steps.length;
    if (i === forkAt && forkExecStep()) continue;
    if (i === lazyAt && lazyfreeStep()) continue;
    setupStep(false);
    const last = steps[steps.length - 1];
    if (steps.length > before && last !== undefined && last.op !== "touch" && last.op !== "read" && ch.bool(0.7)) retouch();
  }
  if (wx) {
    ch = root.fork();
    wxStep();
  }
  ch = root.fork();
  // Other CPUs hold TLB and walk-cache entries: a read or write from a second thread.
  if (ch.bool(0.6)) {
    const r = ch.pick(p.regions);
    const [off, len0] = range(r, true, 4);
    const len = mappedRun(r, off, len0, MAPPED | PR);
    if (len > 0) steps.push({ op: "read", args: { ...args(r, off, len, r.pages.length), thread: ch.pick(p.threads) } });
    markPopulated(r, off, len);
  }
  // Swapped out last, so that nothing in the set-up faults it back in.
  if (swapped) {
    ch = root.fork();
    swappedStep();
  }
  // A device no bigger than what the set-up swapped out: full, so a slot
  // freed by a swap-in is the one the next swap-out gets (an entry that
  // comes back with the same value, which pte_same() cannot tell), and
  // add_to_swap() fails for any other folio (reclaim keeps it).
  if (fullSwap && !pressure) machine.swap = Math.max(1, swappedPages) * page;

  // ---- concurrent actors ----------------------------------------------------------------------
  ch = root;
  const concurrentWords: number[] = [];
  const pool: { t: string; proc: Proc }[] = [];
  for (const x of procs) if (x.alive && x !== q) for (const t of x.threads) pool.push({ t, proc: x });
  const nActors = Math.min(pool.length, 2 + ch.int(3));
  const actors: { t: string; proc: Proc }[] = [];
  while (actors.length < nActors) {
    const a = pool.splice(ch.int(pool.length), 1)[0] as { t: string; proc: Proc };
    actors.push(a);
  }
  // Exit only where no other thread of that process has concurrent steps
  // (the other threads of a dying process are killed first).
  const perProc = new Map<string, number>();
  for (const a of actors) perProc.set(a.proc.name, (perProc.get(a.proc.name) ?? 0) + 1);
  let exited: Proc | null = null;
  const concStep = (a: { t: string; proc: Proc }, canExit: boolean): boolean => {
    const regs = a.proc.regions;
    const usable = kinds.filter((k) => k !== "exit" || canExit);
    if (usable.length === 0) return false;
    // With a reaper waiting, the process it reaps exits more often than not.
    // One step in eight steps outside the swarm: a case that reached a
    // change's code keeps its configuration when the campaign redraws one
    // of its concurrent steps, and the party that races the change may be
    // of a kind the swarm left out.
    const k = canExit && reaper && ch.bool(0.5) ? "exit" : ch.bool(0.125) ? ch.pick(NOT_EXIT) : ch.pick(usable);
    if (k === "exit") {
      conc.push({ op: "exit", args: { process: a.proc.name, thread: a.t } });
      exited = a.proc;
      return false; // nothing after exit
    }
    if (k === "fork") {
      const child = `c${childNames.length + 1}`;
      childNames.push(child);
      conc.push({ op: "fork", args: { child, cpu: ch.int(nThreads), thread: a.t } });
      return true;
    }
    if (regs.length === 0) return false;
    if (k === "brk") {
      const h = regs.find((x) => x.name === "h");
      if (h === undefined) return false;
      const d = ch.bool(0.7) ? -Math.max(1, ch.pick([1, h.pages.length, h.pages.length >> 1])) : ch.pick([1, block]);
      conc.push({ op: "brk", args: { delta: d * page, thread: a.t } });
      return true;
    }
    if (k === "collapse") {
      // MADV_COLLAPSE of a whole region that can hold a PMD-sized range
      // (khugepaged's work, on demand; mmap_lock for writing).
      const big = regs.filter((x) => x.file === null && x.pages.length >= ptes);
      if (big.length === 0) return false;
      const r = pickRegion(big);
      // khugepaged (a kernel thread: only mmap_read_trylock(), the sysfs
      // mode, max_ptes_*, a young entry) where the THP mode runs it.
      if (viaKhugepaged && machine.thp !== "never")
        conc.push({ op: "khugepaged", args: { ...args(r, 0, r.pages.length, r.pages.length), process: a.proc.name, thread: a.t } });
      else conc.push({ op: "madvise", args: { ...args(r, 0, r.pages.length, r.pages.length), advice: "collapse", thread: a.t } });
      return true;
    }
    if (k === "writeback") {
      const files = regs.filter((x) => x.file !== null);
      if (files.length === 0) return false;
      conc.push({ op: "writeback", args: { file: pickRegion(files).file as string, thread: a.t } });
      return true;
    }
    if (k === "truncate") {
      // ftruncate() of a file a region maps: no mmap_lock, any process.
      const files = regs.filter((x) => x.file !== null);
      if (files.length === 0) return false;
      const r = pickRegion(files);
      const [off] = range(r, true, 1);
      const n = r.pages.length;
      conc.push({ op: "truncate", args: { file: r.file as string, size: ch.pick([0, 0, off, n >> 1, n - 1]) * page, thread: a.t } });
      return true;
    }
    if (k === "lockless") {
      // GUP-fast and RCU walkers race what they find mapped: mostly a page
      // the set-up populated (near the focus when it is one), else any.
      const popd = regs.filter((x) => x.pages.some((b) => (b & POP) !== 0));
      let r = pickRegion(regs);
      let off: number;
      if (popd.length > 0 && ch.bool(0.8)) {
        r = pickRegion(popd);
        const idx = pagesWith(r, POP);
        const f = focus + ch.pick([0, -1, 1, -(block >> 1), block >> 1]);
        // A neighbour of the focus counts when mapped: a large folio's fault
        // populated the pages around the one a step touched.
        off = r.name === focusReg && f >= 0 && f < r.pages.length && ((r.pages[f] as number) & MAPPED) !== 0 && ch.bool(0.6) ? f : ch.pick(idx);
      } else [off] = range(r, true, 1);
      const a2: Record<string, number | string> = { region: r.name };
      if (off > 0) a2.offset = off * page;
      a2.via = ch.pick(["rcu", "gup_fast"]);
      a2.thread = a.t;
      conc.push({ op: "lockless", args: a2 });
      return true;
    }
    if (k === "pin") {
      // A device access through the set-up's pin (its writes must reach
      // what the process maps), its release, or a new pin, GUP-fast or
      // not, R/W or R/O, of a page the set-up populated.
      const pin = pinned as { r: Region; off: number; write: boolean; name: string } | null;
      if (pin !== null && a.proc === p && ch.bool(0.7)) {
        if (ch.bool(0.85)) conc.push({ op: "dma", args: { pin: pin.name, write: pin.write && ch.bool(0.7), thread: a.t } });
        else conc.push({ op: "unpin", args: { pin: pin.name, thread: a.t } });
        return true;
      }
      const rs = regs.filter((x) => x.anonPrivate && x.pages.some((b) => (b & (MAPPED | POP)) === (MAPPED | POP)));
      if (rs.length === 0) return false;
      const r = pickRegion(rs);
      const idx = pagesWith(r, MAPPED | POP);
      const off =
        r.name === focusReg && focus >= 0 && focus < r.pages.length && ((r.pages[focus] as number) & MAPPED) !== 0 && ch.bool(0.6) ? focus : ch.pick(idx);
      const write = ((r.pages[off] as number) & PW) !== 0 && ch.bool(0.6);
      conc.push({ op: "pin", args: { ...args(r, off, 1, r.pages.length), write, fast: ch.bool(0.6), name: `P${pins++}`, thread: a.t } });
      return true;
    }
    const r = pickRegion(regs);
    if (k === "reclaim" || k === "migrate") {
      // Drawn outside the swarm: anon pages need somewhere to go.
      if (k === "reclaim" && machine.swap === undefined) machine.swap = 16 * MiB;
      const n = r.pages.length;
      const [off, len] = range(r, true, ch.bool(0.3) ? n : 2 * block);
      // kswapd, compaction or NUMA balancing find any process mapping the
      // folios: sometimes a child's.
      const others = procs.filter((x) => x.alive && x !== a.proc && x !== q && x.regions.some((y) => y.name === r.name));
      const target = others.length > 0 && ch.bool(0.3) ? ch.pick(others) : a.proc;
      conc.push({ op: k, args: { ...args(r, off, len, n), process: target.name, thread: a.t } });
      return true;
    }
    if (k === "mremap") {
      if (r.name === "h") return false;
      const n = r.pages.length;
      const nn = Math.max(1, ch.pick([n >> 1, n + 1, n + block, 2 * n, ptes]));
      conc.push({ op: "mremap", args: { region: r.name, new_size: nn * page, may_move: ch.bool(0.7), thread: a.t } });
      return true;
    }
    const n = r.pages.length;
    if (k === "touch" || k === "read") {
      const [off, len] = range(r, true, 1 + ch.int(3));
      const a2: Record<string, number | string> = { ...args(r, off, len, n), thread: a.t };
      // One page: sometimes one half of it, so that two threads' stores to
      // one page need not cover each other (the data oracle keeps a stamp
      // per half: a store lost under a later one to the other half shows).
      if (len === 1) {
        if (halves === null) halves = feature("half-pages", 0.35);
        if (halves) {
          a2.offset = off * page + (ch.bool(0.5) ? page / 2 : 0);
          a2.length = page / 2;
        }
      }
      conc.push({ op: k, args: a2 });
      return true;
    }
    // Each present PTE a concurrent call visits is an interleaving point:
    // mostly short ranges, sometimes a whole table (PT reclaim needs a
    // PMD-sized zap).
    const [off, len] = range(r, true, ch.bool(0.2) ? n : 2 * block, true);
    if (k === "mprotect" && lastProtect !== null && a.proc === p && feature("wx-flip", 0.5)) {
      const lp = lastProtect as { r: Region; off: number; len: number };
      conc.push({ op: "mprotect", args: { ...args(lp.r, lp.off, lp.len, lp.r.pages.length), prot: "rw", thread: a.t } });
      return true;
    }
    if (k === "mprotect") {
      conc.push({ op: "mprotect", args: { ...args(r, off, len, n), prot: ch.pick(["r", "rw", "rw", "none"]), thread: a.t } });
      return true;
    }
    // Programs most often give back a whole mapping at once (free() of a
    // large allocation, an allocator purging a chunk, a thread's stack at
    // its exit): then free_pgtables() frees the tables above the range too,
    // and a whole PMD-sized zap is PT reclaim's. Drawn last from this step's
    // own choices (after the ones below), so that the cases where it is not
    // drawn are the ones they were.
    const whole = (): [number, number] => (n > 1 && (off > 0 || len < n) && ch.bool(0.25) ? [0, n] : [off, len]);
    if (k === "munmap") {
      // A program maps something else where it unmapped (an allocator
      // reusing the range, MAP_FIXED) and uses it: a path that dropped
      // mmap_lock and took it again (MADV_COLLAPSE's revalidation, a fault
      // retry) must notice. Drawn from this step's own choices after its
      // range, so that cases without a concurrent munmap are the ones they were.
      const remap = r.addr !== null && ch.bool(0.5);
      const [o, l] = whole();
      conc.push({ op: "munmap", args: { ...args(r, o, l, n), thread: a.t } });
      if (remap) {
        const name = `${r.name}m${conc.length}`;
        conc.push({
          op: "mmap",
          args: { region: name, size: l * page, addr: (r.addr as number) + o * page, flags: ["private", "anonymous", "fixed"], thread: a.t },
        });
        // Its first page: new tables under the range, without a fault per
        // page of a big mapping eating the case's search budget.
        conc.push({ op: "touch", args: { region: name, ...(l > 1 ? { length: page } : {}), thread: a.t } });
      }
      return true;
    }
    const advice = k === "thp-advice" ? ch.pick(["hugepage", "nohugepage", "willneed"]) : k;
    // A program reuses what it dropped: a load after MADV_DONTNEED returns
    // must see zeroes (the data oracle), which shows a zap that missed a
    // mapping racing it. Drawn from this step's own choices after its
    // advice, so that cases without a concurrent MADV_DONTNEED are the ones
    // they were.
    let at = -1;
    if (advice === "dontneed" && ch.bool(0.5)) at = focus >= off && focus < off + len && r.name === focusReg ? focus : off + ch.int(len);
    const [o, l] = k === "thp-advice" ? [off, len] : whole();
    conc.push({ op: "madvise", args: { ...args(r, o, l, n), advice, thread: a.t } });
    if (at >= 0) conc.push({ op: "read", args: { ...args(r, at, 1, n), thread: a.t } });
    return true;
  };
  // Threads that share a hot page (a lock word, a counter, a queue's head):
  // each actor also loads or stores the focus page, before or after its own
  // steps, so faults on that page meet whatever the steps do to it (swap it
  // out, unmap, protect, migrate it). A learned feature.
  const hot = focus >= 0 && feature("hot-page", 0.3);
  const hotName = hot ? p.regions.find((x) => x.name === focusReg && focus < x.pages.length && ((x.pages[focus] as number) & MAPPED) !== 0)?.name : undefined;
  const hotAccess = (a: { t: string; proc: Proc }): void => {
    const r = a.proc.regions.find((x) => x.name === hotName);
    if (r === undefined || focus >= r.pages.length) return;
    const write = ((r.pages[focus] as number) & PW) !== 0 && root.bool(0.6);
    conc.push({ op: write ? "touch" : "read", args: { ...args(r, focus, 1, r.pages.length), thread: a.t } });
  };
  for (const a of actors) {
    const canExit = perProc.get(a.proc.name) === 1 && exited === null;
    const nOps = root.bool(0.6) ? 1 : 2;
    const hotFirst = hotName !== undefined && root.bool(0.5);
    if (hotFirst) hotAccess(a);
    let died = false;
    for (let i = 0; i < nOps; i++) {
      concurrentWords.push(root.pos);
      ch = root.fork();
      const before = conc.length;
      if (!concStep(a, canExit && i === nOps - 1)) {
        died = conc.length > before && (conc[conc.length - 1] as StepDoc).op === "exit";
        break;
      }
    }
    if (hotName !== undefined && !hotFirst && !died) hotAccess(a);
  }
  ch = root.fork();
  if (q !== null && exited !== null) conc.push({ op: "oom_reap", args: { process: (exited as Proc).name, thread: "Q" } });
  if (q !== null && exited === null) {
    // The reaper process has nothing to do: drop it and its CPU.
    procDocs.pop();
    if (machine.cpus === reaperCpu + 1) machine.cpus--; // else a child's CPU follows it: leave it idle
  }
  if (pressure) machine.cpus++; // kswapd's (kswapdCpu(): the highest CPU no thread uses)
  if (conc.length === 0) {
    // Every drawn step was impossible here (no heap for brk, say): two accesses still race.
    const r = p.regions[0] as Region;
    conc.push({ op: "touch", args: { ...args(r, 0, 1, r.pages.length), thread: "T0" } });
  }
  const threadsUsed = new Set(conc.map((s) => s.args.thread as string));
  if (threadsUsed.size < 2 && conc.length > 0) {
    // One thread alone races nothing: add a lockless reader or an access on another CPU.
    const other = p.threads.find((t) => !threadsUsed.has(t));
    const r = p.regions[0];
    if (other !== undefined && r !== undefined && exited !== p) {
      const [off] = range(r, true, 1);
      conc.push({ op: ch.bool() ? "read" : "touch", args: { ...args(r, off, 1, r.pages.length), thread: other } });
    }
  }

  return {
    name,
    description: `generated by ptlab hunt: swarm {${kinds.join(", ")}}`,
    kinds: [...new Set(conc.map(kindOf))],
    features: { drawn, on },
    concurrentWords,
    machine,
    processes: procDocs,
    steps,
    concurrent: conc,
    preemptions: 2,
    maxSteps: 5000,
    // Large folios fail at the min watermark and fall back (page_alloc.ts),
    // but the rest of the system the headroom stands for is unreclaimable
    // by construction: a case whose page tables or small folios need more
    // than kswapd can free (a fork with 64K pages in 256 frames) meets the
    // kernel's OOM killer, which says nothing about a kernel path.
    ...(pressure ? { ignore: ["out-of-memory"] } : {}),
  };
}

// The swarm kind a concurrent step belongs to.
function kindOf(s: StepDoc): Kind {
  if (s.op === "mmap") return "munmap"; // the remap after a concurrent munmap
  if (s.op === "khugepaged") return "collapse";
  if (s.op !== "madvise") return (s.op === "oom_reap" ? "exit" : s.op) as Kind;
  const a = s.args.advice as string;
  return (a === "hugepage" || a === "nohugepage" || a === "willneed" ? "thp-advice" : a) as Kind;
}
