// The invariants ptlab checks, by the name a violation reports (the checks
// are in check.ts, the arch checkers and explore/execution.ts; docs/explore.md
// says what each means). `explore --ignore` and a scenario's explore.ignore
// and explore.expect name them. test/invariants.test.ts keeps the list in
// step with the names the sources report. No Node APIs.

export const INVARIANTS = [
  // invariants 1-11 of docs/explore.md
  "freed-before-flush",
  "pte-maps-freed-page",
  "stale-tlb-after-return",
  "tlb-conflict",
  "contpte-block",
  "lost-dirty",
  "writable-anon-not-exclusive",
  "read-not-last-write",
  "cow-copy-writable",
  "writable-without-vm-write",
  "writable-clean-file",
  "pt-reclaim-nonempty",
  "walk-freed-table",
  "lockless-snapshot",
  "pt-out-of-bounds",
  "pt-use-after-free",
  "mapped-beyond-eof",
  "bad-page-cache",
  "migration-entry-stale",
  "pin-coherence",
  // TLBs and walk caches against the page tables (checkTlbs())
  "tlb-freed-page",
  "tlb-stale-mapping",
  "tlb-stale-write",
  "tlb-stale-dirty",
  "walk-cache-freed-table",
  "table-not-live",
  // accounting (checkAccounting())
  "rss-anon",
  "rss-file",
  "rss-shmem",
  "anon-huge",
  "pgtables-bytes",
  "mapcount",
  "refcount",
  "leak",
  "vmswap",
  "swap-count",
  "swap-entry-freed-slot",
  // progress
  "livelock",
  "contpte-lockless-livelock",
  "deadlock",
  "out-of-memory",
  // a BUG_ON() the modelled kernel path reaches (the kernel would oops)
  "kernel-bug",
] as const;

export type InvariantName = (typeof INVARIANTS)[number];

const known = new Set<string>(INVARIANTS);
export function isInvariant(name: string): name is InvariantName {
  return known.has(name);
}
