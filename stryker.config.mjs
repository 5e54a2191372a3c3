// StrykerJS configuration for `npm run mutate` (docs/testing.md). A group
// names model files to mutate and the test files that should kill their
// mutants: the whole suite takes minutes, so each mutant runs only its
// group's tests (fast, sequential ones; the explorer's catalogue tests
// are left out). PTLAB_MUTATE picks groups, comma-separated; default all.
const groups = {
  pt_reclaim: { mutate: ["src/core/mm/pt_reclaim.ts"], tests: ["pt-reclaim", "pt-safety", "dontneed-zero"] },
  mmu_gather: { mutate: ["src/core/mm/mmu_gather.ts"], tests: ["mmu-gather", "arm64-tlbi", "exit-asid", "pt-reclaim", "contpte", "swapin", "thp-swap", "invariants"] },
  contpte: { mutate: ["src/core/arch/arm64/contpte.ts"], tests: ["contpte", "arm64-pgtable", "lazyfree"] },
  mprotect: { mutate: ["src/core/mm/mprotect.ts"], tests: ["check-writable", "folio-split", "thp-split", "vma-lock", "arm64-model"] },
  fork: { mutate: ["src/core/mm/fork.ts"], tests: ["fork", "exit-asid", "lazyfree", "folio-split", "gup-pin", "vma-lock"] },
};

const names = (process.env.PTLAB_MUTATE ?? Object.keys(groups).join(",")).split(",").filter(Boolean);
for (const g of names) {
  if (!Object.hasOwn(groups, g)) {
    console.error(`PTLAB_MUTATE: no group '${g}' (groups: ${Object.keys(groups).join(", ")})`);
    process.exit(2);
  }
}
const chosen = names.map((g) => groups[g]);

export default {
  testRunner: "tap",
  plugins: ["@stryker-mutator/tap-runner"],
  mutate: chosen.flatMap((g) => g.mutate),
  tap: { testFiles: [...new Set(chosen.flatMap((g) => g.tests))].map((t) => `dist/test/${t}.test.js`) },
  // The sandbox is a copy of the project: build the instrumented sources there.
  buildCommand: "npx tsc -p tsconfig.json",
  coverageAnalysis: "all",
  concurrency: 2,
  reporters: ["clear-text", "progress", "json", "html"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  htmlReporter: { fileName: "reports/mutation/mutation.html" },
  ignorePatterns: ["dist", "reports", "hunt-out", ".stryker-tmp"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
  timeoutMS: 60000,
  timeoutFactor: 2,
};
