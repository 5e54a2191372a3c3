// `npm run test:quick`: a fast subset of the tests, for the edit-test loop
// (`npm test` runs them all, about 12 minutes on two cores). Each file here
// took under 10 s alone (most under 3 s) on a loaded two-core machine; the
// list and the build take about 37 s of CPU time (about 25 s on an idle
// two-core machine). A file joins the list only if it stays that fast.
// What the subset covers, and why these files:
//
// - encodings and hardware: arm64-pgtable, arm64-tlbi, pte-identities,
//   x86-switch-mm, exit-asid (descriptor bits, TLBI operands, PCID/ASID)
// - allocation: physmem, page-alloc
// - the mm paths most changes touch: mmu-gather, contpte, fault-relock,
//   check-writable, lazyfree, collapse, exec, fork
// - input: scenario-load (the loader's errors and limits), trace-parse
//   (strace and perf trace parsing)
//
// Left out for time: the explorer and hunt (explore*, hunt, speculate),
// the CLI end to end (cli, compare, report, by-function, replay), the host
// (diff-kernel, host-helper, calibrate), the browser (ui-*), and the larger
// model scenarios (granule, vma-lock, writeback, gup-pin, migrate, pool,
// dontneed-zero, thp-split, fault-livelock: 4 s or more each, ...).
import { spawnSync } from "node:child_process";

export const QUICK = [
  "arm64-pgtable",
  "arm64-tlbi",
  "pte-identities",
  "x86-switch-mm",
  "exit-asid",
  "physmem",
  "page-alloc",
  "mmu-gather",
  "contpte",
  "fault-relock",
  "check-writable",
  "lazyfree",
  "collapse",
  "exec",
  "fork",
  "scenario-load",
  "trace-parse",
];

const files = QUICK.map((n) => new URL(`../dist/test/${n}.test.js`, import.meta.url).pathname);
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
