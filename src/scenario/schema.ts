// Zod schemas for the *surface* syntax of a scenario file (what a user writes in
// YAML). They serve two purposes:
//  - the loader (load.ts) validates every leaf value with them, so error messages
//    and defaults are defined in exactly one place;
//  - scenarioJsonSchema() publishes them as docs/scenario.schema.json for editors.
// Cross-references (thread names, fork/exit order, CPU ranges) are checked by the
// loader, not here. This module must stay free of Node APIs.

import * as z from "zod";
import { INVARIANTS } from "../core/invariants.js";
import type { Advice, MmapFlag, Prot, ThpPolicy } from "./types.js";

export const PAGE_SIZE = 4096;
export const MAX_CPUS = 64;
// Steps a scenario's list may execute once its repeats are unrolled (one
// repeat's count, and nested counts multiplied), and reports (each keeps
// a row of every process's figures until the end of the run).
export const MAX_REPEAT = 10_000_000;
export const MAX_REPORTS = 100_000;
/** Addresses must lie below 2^57, the top of a 5-level x86-64 address space. */
export const ADDR_LIMIT = 2 ** 57;

export const OPS = [
  "mmap",
  "touch",
  "read",
  "madvise",
  "mprotect",
  "munmap",
  "mremap",
  "brk",
  "fork",
  "exit",
  "report",
  "repeat",
  "lockless",
  "oom_reap",
  "truncate",
  "exec",
  "reclaim",
  "migrate",
  "khugepaged",
  "writeback",
  "pin",
  "unpin",
  "dma",
] as const;
export type Op = (typeof OPS)[number];

export const MMAP_FLAGS = ["private", "shared", "anonymous", "fixed", "populate", "noreserve"] as const satisfies readonly MmapFlag[];
export const ADVICES = ["dontneed", "free", "hugepage", "nohugepage", "willneed", "cold", "pageout", "collapse"] as const satisfies readonly Advice[];
export const THP_POLICIES = ["never", "madvise", "always"] as const satisfies readonly ThpPolicy[];

// ---------------------------------------------------------------------------
// Messages

/** Renders a user value for "got ..." in error messages. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return "an empty value";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

type ErrorFn = (issue: { input?: unknown }) => string;
/** Zod params giving every issue of a schema the message "expected <what>, got <value>". */
const expected = (what: string): { error: ErrorFn } => ({
  error: (iss) => `expected ${what}, got ${describeValue(iss.input)}`,
});

// ---------------------------------------------------------------------------
// Sizes, offsets and addresses

interface SizeRules {
  signed?: boolean; // brk delta: may be negative
  positive?: boolean; // must be > 0
  page?: boolean; // must be a multiple of PAGE_SIZE
  address?: boolean; // an address: page aligned and below ADDR_LIMIT
}

const SIZE_RE = /^(-?)(?:0x([0-9a-f]+)|([0-9]+)(?:\.([0-9]+))?(?:([kmgt])(?:i?b)?)?)$/i;
const UNIT_SHIFT: Record<string, bigint> = { k: 10n, m: 20n, g: 30n, t: 40n };
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Parses "4K", "1.5M", "0x1000", "-2M" exactly; "fraction" if not a whole byte count. */
function parseSizeString(s: string): bigint | "fraction" | undefined {
  const m = SIZE_RE.exec(s);
  if (!m) return undefined;
  const [, minus, hex, int, frac = "", unit] = m;
  let n: bigint;
  if (hex !== undefined) n = BigInt(`0x${hex}`);
  else {
    const scaled = BigInt(`${int}${frac}`) << (unit ? UNIT_SHIFT[unit.toLowerCase()]! : 0n);
    const divisor = 10n ** BigInt(frac.length);
    if (scaled % divisor !== 0n) return "fraction";
    n = scaled / divisor;
  }
  return minus ? -n : n;
}

/** Returns the byte count, or an error message explaining what is wrong with `v`. */
function checkSize(v: unknown, r: SizeRules): number | string {
  const like = r.address
    ? `an address like 0x7f0000000000 or "0x7f0000000000"`
    : r.signed
      ? `a size like 4096, "4K", "2M" or "-1M"`
      : `a size like 4096, "4K", "2M" or "1G"`;
  let n: bigint;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return `expected ${like}, got ${v}`;
    if (!Number.isInteger(v)) return `expected a whole number of bytes, got ${v}`;
    n = BigInt(v);
  } else if (typeof v === "string") {
    const parsed = parseSizeString(v.trim());
    if (parsed === undefined) return `expected ${like}, got ${describeValue(v)}`;
    if (parsed === "fraction") return `expected a whole number of bytes, got ${describeValue(v)}`;
    n = parsed;
  } else return `expected ${like}, got ${describeValue(v)}`;

  const got = typeof v === "string" && !/^-?[0-9]+$/.test(v.trim()) ? `${describeValue(v)} (${n} bytes)` : `${n}`;
  if (n > MAX_SAFE || n < -MAX_SAFE) return `value too large: ${got} exceeds 2^53 - 1`;
  if (n < 0n && !r.signed) return `expected a non-negative ${r.address ? "address" : "size"}, got ${got}`;
  if (n === 0n && r.positive) return `expected a size greater than 0, got ${got}`;
  if (r.page && n % BigInt(PAGE_SIZE) !== 0n) return `expected a multiple of the 4 KiB page size, got ${got}`;
  if (r.address && n >= BigInt(ADDR_LIMIT)) return `expected an address below 2^57, got ${got}`;
  return Number(n);
}

/**
 * A byte count written as an integer or a string with a binary unit (K, M, G, T,
 * optionally followed by B or iB; case-insensitive) or as a hex string.
 */
function size(r: SizeRules) {
  const error: ErrorFn = (iss) => {
    const res = checkSize(iss.input, r);
    return typeof res === "string" ? res : `expected ${r.address ? "an address" : "a size"}`;
  };
  const int = z.int({ error });
  const intBranch = r.signed ? int : int.min(r.positive ? 1 : 0, { error }).multipleOf(r.page ? PAGE_SIZE : 1, { error });
  const pattern = `^${r.signed ? "-?" : ""}(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\\.[0-9]+)?(?:[kKmMgGtT](?:[iI]?[bB])?)?)$`;
  return z.union([intBranch, z.string({ error }).regex(new RegExp(pattern), { error })], { error }).transform((v, ctx) => {
    const res = checkSize(v, r);
    if (typeof res === "number") return res;
    ctx.issues.push({ code: "custom", input: v, message: res });
    return z.NEVER;
  });
}

/** A page-multiple byte count > 0 from the command line ("64M", "1G"): the bytes, or what is wrong. */
export function parsePageSize(v: string): number | string {
  return checkSize(v, { positive: true, page: true });
}

// The smallest machine.memory / --memory-limit accepted.
export const MIN_MEMORY = 16 * 1024 * 1024;
export const pageSizeSchema = size({ positive: true, page: true }).describe(`Byte count > 0, a multiple of 4096: 4096, "4K", "2M", "1G", "0x1000"`);
export const pageOffsetSchema = size({ page: true }).describe(`Byte offset, a multiple of 4096: 0, "4K", "2M"`);
export const addressSchema = size({ address: true, page: true }).describe("Virtual address, page aligned and below 2^57, e.g. 0x7f0000000000");
export const deltaSchema = size({ signed: true }).describe(`Byte count, may be negative: 4096, "1M", "-1M"`);

// ---------------------------------------------------------------------------
// Other leaves

export const nameSchema = z.string(expected("a non-empty name")).min(1, expected("a non-empty name"));
const text = z.string(expected("a string"));
const bool = z.boolean(expected("true or false"));
const intIn = (min: number, max: number) =>
  z
    .int(expected(`an integer from ${min} to ${max}`))
    .min(min, expected(`an integer from ${min} to ${max}`))
    .max(max, expected(`an integer from ${min} to ${max}`));

const PROT_LETTERS = ["r", "w", "x"];
/** "none" and every ordering of distinct letters r, w, x. */
const PROT_STRINGS = (() => {
  const out: string[] = [];
  const extend = (prefix: string) => {
    for (const c of PROT_LETTERS) {
      if (prefix.includes(c)) continue;
      out.push(prefix + c);
      extend(prefix + c);
    }
  };
  extend("");
  return ["none", ...out.sort((a, b) => a.length - b.length)] as [string, ...string[]];
})();
const PROT_WORDS = ["read", "write", "exec"] as const;

const protError = {
  error: ({ input }: { input?: unknown }) => {
    const bad = Array.isArray(input) ? input.find((w) => !(PROT_WORDS as readonly unknown[]).includes(w)) : undefined;
    return bad !== undefined
      ? `expected read, write or exec in a protection list, got ${describeValue(bad)}`
      : `expected a protection such as "r", "rw", "rwx" or "none", or a list like [read, write], got ${describeValue(input)}`;
  },
};
export const protSchema = z
  .union(
    [
      z.enum(PROT_STRINGS, protError),
      z
        .array(z.enum(PROT_WORDS, expected("one of read, write, exec")), protError)
        .refine((l) => new Set(l).size === l.length, { error: () => "expected each of read, write, exec at most once" }),
    ],
    protError,
  )
  .transform(
    (p): Prot =>
      typeof p === "string"
        ? { read: p.includes("r"), write: p.includes("w"), exec: p.includes("x") }
        : { read: p.includes("read"), write: p.includes("write"), exec: p.includes("exec") },
  )
  .describe(`"none", letters from r, w, x (e.g. "rw"), or a list such as [read, write]`);

export const mmapFlagsSchema = z
  .array(z.enum(MMAP_FLAGS, expected(`one of ${MMAP_FLAGS.join(", ")}`)), expected("a list of flags like [private, anonymous]"))
  .refine((l) => new Set(l).size === l.length, { error: () => "expected each flag at most once" })
  .refine((l) => l.includes("private") !== l.includes("shared"), {
    error: () => "expected exactly one of private or shared",
  })
  .describe(
    `Exactly one of private/shared, plus any of anonymous, fixed, populate, noreserve. Default [private, anonymous]; "anonymous" is implied without "file" and not allowed with it`,
  );

export const adviceSchema = z.enum(ADVICES, expected(`one of ${ADVICES.join(", ")}`));

const threadRef = nameSchema.optional().describe("Thread that performs the step; default: the first thread of the first process");

// ---------------------------------------------------------------------------
// Steps: one entry per operation, listing its keys in documentation order.

const range = {
  region: nameSchema.describe("Region name bound by an earlier mmap"),
  offset: pageOffsetSchema.prefault(0),
  length: pageSizeSchema.optional().describe("Default: to the end of the region"),
};
// A user access is to one byte: its offset, length and stride need not be
// page multiples (two threads may write different halves of one page).
const touchArgs = z.strictObject({
  region: range.region,
  offset: size({}).describe(`Byte offset: 0, 2048, "2K", "4K"`).prefault(0),
  length: size({ positive: true }).describe(`Byte count > 0; default: to the end of the region`).optional(),
  stride: size({ positive: true }).describe(`Byte count > 0; default: the page size`).optional(),
  thread: threadRef,
});

/** Argument mapping of each operation; keys are listed in documentation order. */
export const stepArgs = {
  mmap: z.strictObject({
    region: nameSchema.describe("Name the new mapping is bound to"),
    size: pageSizeSchema,
    prot: protSchema.prefault("rw"),
    flags: mmapFlagsSchema.optional(),
    addr: addressSchema.optional(),
    file: nameSchema.optional().describe("Backing file name (created with size offset + size)"),
    offset: pageOffsetSchema.prefault(0).describe("File offset"),
    thread: threadRef,
  }),
  touch: touchArgs.describe("Write to one byte of every stride in the range"),
  read: touchArgs.describe("Read one byte of every stride in the range"),
  madvise: z.strictObject({ ...range, advice: adviceSchema, thread: threadRef }),
  mprotect: z.strictObject({ ...range, prot: protSchema, thread: threadRef }),
  munmap: z.strictObject({ ...range, thread: threadRef }),
  mremap: z.strictObject({
    region: nameSchema,
    new_size: pageSizeSchema,
    may_move: bool.default(false),
    new_region: nameSchema.optional().describe("Rebind the result to this name; default: the same name"),
    thread: threadRef,
  }),
  brk: z.strictObject({
    delta: deltaSchema,
    region: nameSchema.optional().describe("Bind the heap (start_brk up to the new break, page aligned) to this region name"),
    thread: threadRef,
  }),
  fork: z.strictObject({
    child: nameSchema.describe("Name of the new process"),
    thread: threadRef,
    cpu: intIn(0, MAX_CPUS - 1)
      .optional()
      .describe("CPU of the child's thread; default: the forking thread's CPU"),
    child_thread: nameSchema.optional().describe(`Name of the child's thread; default "<child>.t0"`),
  }),
  exit: z.strictObject({ process: nameSchema, thread: threadRef }),
  exec: z
    .strictObject({ thread: threadRef })
    .describe("execve() by the thread: its process gets a fresh, empty address space (the old one is torn down) and forgets its regions"),
  oom_reap: z
    .strictObject({ process: nameSchema, thread: threadRef })
    .describe("The OOM reaper zapping a dying process's private anon memory (explore only; thread: where it runs)"),
  truncate: z
    .strictObject({
      file: nameSchema.describe("File name given to an earlier mmap"),
      size: pageOffsetSchema.prefault(0).describe("New size: the page cache from here on is unmapped and dropped"),
      thread: threadRef,
    })
    .describe("ftruncate() to a smaller size (explore only): truncate_pagecache() unmaps the pages from every mapping and drops them"),
  reclaim: z
    .strictObject({
      ...range,
      process: nameSchema.optional().describe("Process whose region is reclaimed; default: the thread's"),
      thread: threadRef,
    })
    .describe(
      "Reclaim the folios mapped in the range as kswapd would (shrink_folio_list() with folio_referenced(): referenced folios are kept, their access flags cleared); anon folios go to swap, so machine.swap is required",
    ),
  migrate: z
    .strictObject({
      ...range,
      process: nameSchema.optional().describe("Process whose region is migrated; default: the thread's"),
      thread: threadRef,
    })
    .describe(
      "Migrate the folios mapped in the range to new frames, as compaction or NUMA balancing would (migrate_pages(): migration entries, the copy, remove_migration_ptes()); a PMD-mapped THP moves whole through a PMD migration entry",
    ),
  khugepaged: z
    .strictObject({
      ...range,
      process: nameSchema.optional().describe("Process whose region khugepaged scans; default: the thread's"),
      thread: threadRef,
    })
    .describe(
      "One pass of khugepaged over the PMD-sized ranges inside the range (khugepaged_scan_mm_slot(): mmap_lock only try-locked, the sysfs THP mode and max_ptes_none/shared honoured, a young entry required, then collapse_huge_page()); needs thp: madvise or always",
    ),
  writeback: z
    .strictObject({
      file: nameSchema.describe("File name given to an earlier mmap"),
      thread: threadRef,
    })
    .describe(
      "Write back the file's dirty page cache, as the flusher or fsync() does: every shared mapping of a dirty page is write-protected and cleaned (folio_mkclean()), the page's dirty flag cleared; the next store faults and dirties it again",
    ),
  pin: z
    .strictObject({
      ...range,
      write: bool
        .default(false)
        .describe(
          "FOLL_WRITE: a R/W pin (a write fault first where the entry is read-only); false: a R/O pin (FAULT_FLAG_UNSHARE of a page the process does not map exclusively)",
        ),
      fast: bool.default(false).describe("pin_user_pages_fast(): GUP-fast first (lockless, IRQs off), the slow path for the pages it refuses"),
      name: nameSchema.optional().describe("Name for unpin and dma; default: the region name"),
      thread: threadRef,
    })
    .describe(
      "pin_user_pages(FOLL_PIN | FOLL_LONGTERM) of the range, as io_uring fixed buffers or RDMA do: pages are faulted in (written or unshared) and pinned until unpin; exit and munmap do not release pins",
    ),
  unpin: z.strictObject({ pin: nameSchema.describe("Name of an earlier pin"), thread: threadRef }).describe("unpin_user_pages() of every page of that pin"),
  dma: z
    .strictObject({
      pin: nameSchema.describe("Name of an earlier pin"),
      offset: pageOffsetSchema.prefault(0).describe("Page of the pin (bytes from its start)"),
      write: bool.default(true).describe("true: the device writes the page; false: it reads it"),
      thread: threadRef,
    })
    .describe("A device access through the pin (no page tables involved); under explore its data is checked against the process's loads and stores"),
  lockless: z
    .strictObject({
      region: nameSchema.describe("Region name bound by an earlier mmap"),
      offset: pageOffsetSchema.prefault(0),
      via: z
        .enum(["rcu", "gup_fast"], expected(`"rcu" or "gup_fast"`))
        .default("rcu")
        .describe("rcu: pte_offset_map() under rcu_read_lock(); gup_fast: IRQs disabled"),
      thread: threadRef,
    })
    .describe("A lockless page-table reader (explore only): walks to the PTE and reads it with ptep_get_lockless()"),
  report: z.strictObject({
    label: text.optional().describe(`Default "report N", N counting report steps in document order`),
    thread: threadRef,
  }),
  repeat: z.strictObject({
    count: intIn(1, MAX_REPEAT),
    advance: pageOffsetSchema.prefault(0).describe("Added to the offset of every range step inside, times the iteration index (0-based)"),
    get steps(): z.ZodArray<z.ZodType> {
      return z.array(stepSchema).min(1);
    },
    thread: threadRef,
  }),
} satisfies Record<Op, z.ZodObject>;

/** One list item of `steps`: a mapping with exactly one key naming the operation. */
export const stepSchema: z.ZodType = z
  .union(
    OPS.map((op) =>
      z.strictObject({
        [op]: op === "report" ? z.union([text.describe("The label"), stepArgs.report]) : stepArgs[op],
      }),
    ),
  )
  .meta({ id: "step", description: "A mapping with exactly one key naming the operation" });

// ---------------------------------------------------------------------------
// Top level

// mTHP sizes (anon orders 2..8 with 4K pages).
// hugepages-<size>kB names across the granules: 16K..1M with 4K pages,
// 64K..16M with 16K, 256K..256M with 64K (the machine checks the granule's).
export const MTHP_SIZES = ["16K", "32K", "64K", "128K", "256K", "512K", "1024K", "2M", "4M", "8M", "16M", "32M", "64M", "128M", "256M"] as const;
export function mthpKib(size: string): number {
  return size.endsWith("M") ? Number.parseInt(size, 10) * 1024 : Number.parseInt(size, 10);
}

export const machineSchema = z.strictObject({
  arch: z.enum(["x86_64", "arm64"], { error: (iss) => `expected "x86_64" or "arm64", got ${describeValue(iss.input)}` }).default("x86_64"),
  cpus: intIn(1, MAX_CPUS).default(2),
  levels: z.literal([4, 5], expected("4 or 5")).default(4).describe("Paging levels"),
  thp: z.enum(THP_POLICIES, expected(`one of ${THP_POLICIES.join(", ")}`)).default("madvise"),
  thp_use_zero_page: bool.default(true),
  pt_reclaim: bool.default(true).describe("CONFIG_PT_RECLAIM"),
  mthp: z
    .record(
      z.string(),
      z.enum(["always", "madvise", "inherit", "never"], expected("always, madvise, inherit or never")),
      expected("a mapping of mTHP sizes to always/madvise/inherit/never"),
    )
    .refine((r) => Object.keys(r).every((k) => (MTHP_SIZES as readonly string[]).includes(k)), {
      error: `expected mTHP sizes as keys, from ${MTHP_SIZES.join(", ")}`,
    })
    .default({})
    .describe("Anon mTHP sizes: /sys/kernel/mm/transparent_hugepage/hugepages-<size>/enabled"),
  arm64: z
    .strictObject({
      granule: z.literal([4, 16, 64], expected("4, 16 or 64 (KiB)")).default(4).describe("Translation granule in KiB: the page size"),
      va_bits: z
        .literal([36, 39, 42, 47, 48, 52], expected("36, 39, 42, 47, 48 or 52"))
        .default(48)
        .describe(
          "VA size; the granule allows 39/48/52 (4K), 36/47/48/52 (16K), 42/48/52 (64K). 52 is FEAT_LPA2 with 4K and 16K pages (5 and 4 levels), FEAT_LVA with 64K",
        ),
      hafdbs: bool.default(true).describe("FEAT_HAFDBS: hardware access flag and dirty state"),
      tlbi_range: bool.default(true).describe("FEAT_TLBIRANGE"),
      bbml2_noabort: bool.default(false).describe("BBML2 on a CPU in the kernel's no-abort list"),
      asid_bits: z.literal([8, 16], expected("8 or 16")).default(16),
    })
    .prefault({})
    .describe("arm64 CPU features (ignored on x86_64)"),
  variants: z
    .record(z.string(), z.string(expected("a string")), expected("a mapping of variant names to values"))
    .default({})
    .describe("Historical kernel behaviour variants: name -> selected value"),
  seed: z.int(expected("an integer >= 0")).min(0, expected("an integer >= 0")).default(1),
  nowait_alloc_fails: bool.default(false).describe("GFP_NOWAIT allocations fail (memory pressure): mmu_gather keeps only its 8-entry embedded batch"),
  swap: pageSizeSchema.optional().describe("Size of the swap device (swapon); default: no swap"),
  page_cluster: intIn(0, 31)
    .default(3)
    .describe("vm.page-cluster: a swap-in fault that misses the swap cache reads up to 2^min(page_cluster, 5) pages around it (0: no read-ahead)"),
  memory: pageSizeSchema
    .refine((v) => v >= MIN_MEMORY, { message: "expected at least 16M: below that the kernel's own memory and its watermarks leave nothing to run in" })
    .optional()
    .describe(
      "Memory limit (RAM): frames the model may hold (user pages, page tables); kswapd reclaims below the low watermark, and memory it cannot free is an out-of-memory error. Default: no limit",
    ),
  headroom: pageOffsetSchema
    .optional()
    .describe(
      "With memory: memory pressure for the concurrent part (ptlab explore). After the set-up steps the rest of the system takes what is free beyond this much above the low watermark (unreclaimable), so allocations past it wake kswapd. Default: none (the scenario fills memory itself)",
    ),
});

export const threadSchema = z.strictObject({
  name: nameSchema,
  cpu: intIn(0, MAX_CPUS - 1).default(0),
});

export const processSchema = z.strictObject({
  name: nameSchema,
  threads: z.array(threadSchema).min(1).optional().describe(`Default: one thread "<process>.t0" on CPU 0`),
});

const invariantSchema = z.enum(INVARIANTS, expected(`an invariant name (${INVARIANTS.join(", ")})`));

// The largest preemption bound a scenario may ask for.
export const MAX_PREEMPTIONS = 20;

export const exploreSchema = z
  .strictObject({
    preemptions: intIn(0, MAX_PREEMPTIONS).default(2).describe("Exhaustive mode: at most this many preemptions per execution"),
    max_steps: intIn(1, 1_000_000).default(5000).describe("Steps per execution before it is cut off"),
    variant: z
      .record(z.string(), z.string(expected("a string")), expected("a mapping of variant names to values"))
      .default({})
      .describe("The historical code path this scenario is about (the catalogue expects a counterexample with it)"),
    arch: z
      .enum(["x86_64", "arm64"], expected(`"x86_64" or "arm64"`))
      .optional()
      .describe("Architecture of the counterexample run, when it is the architecture that matters"),
    expect: invariantSchema.optional().describe("Invariant the variant is expected to break"),
    ignore: z.array(invariantSchema).default([]).describe("Invariants not checked (to look past a first violation)"),
    speculate: intIn(0, 8)
      .default(0)
      .describe(
        "Speculative TLB fills per execution: a CPU with the mm loaded walks a page of the scenario's ranges and caches what is valid (docs/explore.md)",
      ),
  })
  .describe("Settings for ptlab explore");

export const DEFAULT_PROCESSES = [{ name: "p0", threads: [{ name: "t0", cpu: 0 }] }];

export const scenarioSchema = z
  .strictObject({
    name: nameSchema,
    description: text.default(""),
    machine: machineSchema.prefault({}),
    processes: z.array(processSchema).min(1).default(DEFAULT_PROCESSES),
    steps: z.array(stepSchema),
    concurrent: z.array(stepSchema).optional().describe("Steps run concurrently by `ptlab explore` after `steps`: each thread runs its own steps in order"),
    explore: exploreSchema.optional(),
  })
  .meta({ title: "ptlab scenario", description: "A ptlab scenario file (see docs/scenario-format.md)" });

/** The JSON Schema (draft-07) of the scenario file format, for editors. */
export function scenarioJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(scenarioSchema, { io: "input", target: "draft-07" });
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}
