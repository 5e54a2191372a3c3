import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { parseScenario } from "../src/scenario/load.js";
import { scenarioJsonSchema, scenarioSchema } from "../src/scenario/schema.js";
import { type MmapStep, type Scenario, ScenarioError, type Step } from "../src/scenario/types.js";

const load = (text: string): Scenario => parseScenario(text, "t.yaml");

/** Asserts that `text` fails with a ScenarioError at line:col whose message contains `fragment`. */
function fails(text: string, line: number, col: number, fragment: string): ScenarioError {
  let err: unknown;
  try {
    load(text);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ScenarioError, `expected a ScenarioError, got ${String(err)}`);
  assert.ok(err.message.includes(fragment), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
  assert.deepEqual([err.line, err.col], [line, col], `position of: ${err.format()}`);
  assert.equal(err.file, "t.yaml");
  return err;
}

/** A scenario with the given steps (YAML lines, indented by 2) under the defaults. */
const withSteps = (...lines: string[]) => `name: t\nsteps:\n${lines.map((l) => `  ${l}\n`).join("")}`;
const firstStep = (...lines: string[]): Step => load(withSteps(...lines)).steps[0]!;

const readRepoFile = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), "utf8");
const docExample = (): string => {
  const md = readRepoFile("docs/scenario-format.md");
  const block = /## A complete example\s+```yaml\n([\s\S]*?)```/.exec(md);
  assert.ok(block, "docs/scenario-format.md has a complete example");
  return block[1]!;
};

const P = (line: number, col: number) => ({ line, col });
const RW = { read: true, write: true, exec: false };

describe("parseScenario: valid input", () => {
  it("applies all defaults to a minimal scenario", () => {
    assert.deepEqual(load("name: min\nsteps: []\n"), {
      file: "t.yaml",
      name: "min",
      description: "",
      machine: {
        arch: "x86_64",
        arm64: { granule: 4, vaBits: 48, hafdbs: true, tlbiRange: true, bbml2NoAbort: false, asidBits: 16 },
        mthp: {},
        cpus: 2,
        levels: 4,
        thp: "madvise",
        thpUseZeroPage: true,
        ptReclaim: true,
        variants: {},
        seed: 1,
        nowaitAllocFails: false,
      },
      processes: [{ name: "p0", threads: [{ name: "t0", cpu: 0 }] }],
      steps: [],
    });
  });

  it("loads the complete example of docs/scenario-format.md", () => {
    const s = load(docExample());
    assert.equal(s.name, "reclaim-demo");
    assert.deepEqual(s.machine, {
      arch: "x86_64",
      arm64: { granule: 4, vaBits: 48, hafdbs: true, tlbiRange: true, bbml2NoAbort: false, asidBits: 16 },
      mthp: {},
      cpus: 4,
      levels: 4,
      thp: "madvise",
      thpUseZeroPage: true,
      ptReclaim: true,
      variants: { gather_nested: "fixed" },
      seed: 1,
      nowaitAllocFails: false,
    });
    assert.deepEqual(s.processes, [
      {
        name: "p0",
        threads: [
          { name: "t0", cpu: 0 },
          { name: "t1", cpu: 1 },
        ],
      },
      { name: "daemon", threads: [{ name: "daemon.t0", cpu: 0 }] },
    ]);
    const ops = s.steps.map((st) => st.op);
    assert.deepEqual(ops, [
      "mmap",
      "mmap",
      "touch",
      "touch",
      "madvise",
      "mprotect",
      "report",
      "repeat",
      "mremap",
      "munmap",
      "brk",
      "brk",
      "fork",
      "touch",
      "exit",
      "report",
    ]);
    assert.deepEqual(s.steps[0], {
      op: "mmap",
      pos: P(18, 5),
      thread: "t0",
      region: "A",
      size: 2 ** 30,
      prot: RW,
      flags: ["private", "anonymous"],
      addr: 0x7f0000000000,
      offset: 0,
    });
    assert.deepEqual(s.steps[1], {
      op: "mmap",
      pos: P(19, 5),
      thread: "t1",
      region: "F",
      size: 8 << 20,
      prot: { read: true, write: false, exec: false },
      flags: ["shared"],
      file: "data.bin",
      offset: 2 << 20,
    });
    assert.deepEqual(s.steps[3], { op: "touch", pos: P(21, 5), thread: "t0", region: "F", offset: 0, write: false, stride: 0 });
    const repeat = s.steps[7]!;
    assert.ok(repeat.op === "repeat");
    assert.equal(repeat.count, 100);
    assert.equal(repeat.advance, 2 << 20);
    assert.deepEqual(repeat.steps[0], {
      op: "touch",
      pos: P(29, 11),
      thread: "t0",
      region: "A",
      offset: 4 << 20,
      length: 2 << 20,
      write: true,
      stride: 0,
    });
    assert.deepEqual(s.steps[12], { op: "fork", pos: P(35, 5), thread: "t1", child: "c1", childThread: "c1.t0", cpu: 1 });
    assert.deepEqual(s.steps[13], {
      op: "touch",
      pos: P(36, 5),
      thread: "c1.t0",
      region: "B",
      offset: 0,
      length: 2 << 20,
      write: true,
      stride: 0,
    });
    assert.deepEqual(s.steps[15], { op: "report", pos: P(38, 5), thread: "t0", label: "report 2" });
  });

  it("normalises every operation", () => {
    const s = load(
      withSteps(
        "- mmap: { region: A, size: 4M }",
        "- touch: { region: A }",
        "- read: { region: A, offset: 8K, length: 4K, stride: 8K }",
        "- madvise: { region: A, advice: hugepage }",
        "- mprotect: { region: A, length: 2M, prot: [read, exec] }",
        "- munmap: { region: A, offset: 2M }",
        "- mremap: { region: A, new_size: 8M }",
        "- brk: { delta: -4096 }",
        "- exit: { process: p0, thread: t0 }",
      ),
    );
    const base = (line: number) => ({ pos: P(line, 5), thread: "t0" });
    assert.deepEqual(s.steps, [
      { op: "mmap", ...base(3), region: "A", size: 4 << 20, prot: RW, flags: ["private", "anonymous"], offset: 0 },
      { op: "touch", ...base(4), region: "A", offset: 0, write: true, stride: 0 },
      { op: "touch", ...base(5), region: "A", offset: 8192, length: 4096, write: false, stride: 8192 },
      { op: "madvise", ...base(6), region: "A", offset: 0, advice: "hugepage" },
      { op: "mprotect", ...base(7), region: "A", offset: 0, length: 2 << 20, prot: { read: true, write: false, exec: true } },
      { op: "munmap", ...base(8), region: "A", offset: 2 << 20 },
      { op: "mremap", ...base(9), region: "A", newSize: 8 << 20, mayMove: false },
      { op: "brk", ...base(10), delta: -4096 },
      { op: "exit", ...base(11), process: "p0" },
    ]);
    assert.ok(!("length" in s.steps[1]!), "absent length stays absent");
  });

  it("accepts every size syntax", () => {
    const cases: [string, number][] = [
      ["4096", 4096],
      ["0x2000", 0x2000],
      ['"0x2000"', 0x2000],
      ["4K", 4096],
      ["4k", 4096],
      ["4KB", 4096],
      ["4kib", 4096],
      ["2M", 2 << 20],
      ["1.5M", 1.5 * 2 ** 20],
      ["1G", 2 ** 30],
      ["3GiB", 3 * 2 ** 30],
      ["1T", 2 ** 40],
      ["-1M", -(2 ** 20)],
      ["-4096", -4096],
      ['"-0x1000"', -4096],
      ["12345", 12345],
    ];
    for (const [text, bytes] of cases) {
      const st = firstStep(`- brk: { delta: ${text} }`);
      assert.ok(st.op === "brk");
      assert.equal(st.delta, bytes, text);
    }
    const mm = firstStep("- mmap: { region: A, size: 8KiB, addr: 0x7f0000000000, offset: 0x1000, file: f }") as MmapStep;
    assert.deepEqual([mm.size, mm.addr, mm.offset], [8192, 0x7f0000000000, 4096]);
  });

  it("parses protections and flags", () => {
    const prot = (p: string) => (firstStep(`- mmap: { region: A, size: 4K, prot: ${p} }`) as MmapStep).prot;
    assert.deepEqual(prot("none"), { read: false, write: false, exec: false });
    assert.deepEqual(prot("xr"), { read: true, write: false, exec: true });
    assert.deepEqual(prot("w"), { read: false, write: true, exec: false });
    assert.deepEqual(prot("[]"), { read: false, write: false, exec: false });
    assert.deepEqual(prot("[write, read, exec]"), { read: true, write: true, exec: true });

    const flags = (f: string) => (firstStep(`- mmap: { region: A, size: 4K, ${f} }`) as MmapStep).flags;
    assert.deepEqual(flags("flags: [shared]"), ["shared", "anonymous"]);
    assert.deepEqual(flags("flags: [populate, private]"), ["populate", "private", "anonymous"]);
    assert.deepEqual(flags("file: f"), ["private"]);
    assert.deepEqual(flags("file: f, flags: [shared, populate]"), ["shared", "populate"]);
    assert.deepEqual(flags("flags: [private, fixed, noreserve], addr: 0x10000"), ["private", "fixed", "noreserve", "anonymous"]);
  });

  it("resolves threads: declared, default, and created by fork", () => {
    const s = load(`name: t
machine: { cpus: 3 }
processes:
  - name: a
    threads: [{ name: a1, cpu: 2 }, { name: a2 }]
  - name: b
steps:
  - touch: { region: R }
  - touch: { region: R, thread: b.t0 }
  - fork: { child: c, thread: a1 }
  - fork: { child: d, thread: c.t0, cpu: 0, child_thread: worker }
  - report: { thread: worker }
`);
    assert.deepEqual(s.processes, [
      {
        name: "a",
        threads: [
          { name: "a1", cpu: 2 },
          { name: "a2", cpu: 0 },
        ],
      },
      { name: "b", threads: [{ name: "b.t0", cpu: 0 }] },
    ]);
    assert.deepEqual(
      s.steps.map((st) => st.thread),
      ["a1", "b.t0", "a1", "c.t0", "worker"],
    );
    assert.deepEqual(s.steps[2], { op: "fork", pos: P(10, 5), thread: "a1", child: "c", childThread: "c.t0", cpu: 2 });
    assert.deepEqual(s.steps[3], { op: "fork", pos: P(11, 5), thread: "c.t0", child: "d", childThread: "worker", cpu: 0 });
  });

  it("numbers default report labels once per report step in document order", () => {
    const s = load(
      withSteps(
        "- report: {}",
        '- report: "named"',
        "- repeat:",
        "    count: 3",
        "    steps:",
        "      - report: { label: inner }",
        "      - report: {}",
        "- report: { thread: t0 }",
      ),
    );
    const labels = (steps: Step[]): string[] => steps.flatMap((st) => (st.op === "report" ? [st.label] : st.op === "repeat" ? labels(st.steps) : []));
    assert.deepEqual(labels(s.steps), ["report 1", "named", "inner", "report 4", "report 5"]);
  });

  it("supports nested repeats, and position of nested steps", () => {
    const s = load(
      withSteps("- repeat:", "    count: 2", "    advance: 4K", "    steps:", "      - repeat: { count: 1, steps: [ { touch: { region: A } } ] }"),
    );
    const outer = s.steps[0]!;
    assert.ok(outer.op === "repeat");
    assert.deepEqual([outer.count, outer.advance, outer.pos], [2, 4096, P(3, 5)]);
    const inner = outer.steps[0]!;
    assert.ok(inner.op === "repeat");
    assert.deepEqual([inner.count, inner.advance, inner.pos], [1, 0, P(7, 11)]);
    assert.deepEqual(inner.steps[0]!.pos, P(7, 42));
  });

  it("accepts YAML anchors and aliases", () => {
    const s = load(`name: t
steps:
  - mmap: &m { region: A, size: 2M }
  - repeat: { count: 2, steps: &body [ { touch: { region: A } } ] }
  - repeat: { count: 3, steps: *body }
  - mmap: *m
`);
    assert.equal(s.steps.length, 4);
    assert.deepEqual(s.steps[3], { ...s.steps[0], pos: P(6, 5) });
  });

  it("the surface zod schema (published as JSON Schema) accepts the valid scenarios", () => {
    for (const text of [docExample(), "name: x\nsteps: []\n", withSteps("- report: x", "- brk: { delta: -1M }")]) {
      const r = scenarioSchema.safeParse(parseYaml(text));
      assert.ok(r.success, r.error?.message);
    }
    assert.equal(scenarioSchema.safeParse(parseYaml(withSteps("- mmap: { region: A, sise: 4K }"))).success, false);
  });
});

describe("parseScenario: errors", () => {
  it("names unknown keys with the expected ones", () => {
    const e = fails(withSteps("- mmap: { region: A, sise: 4K }"), 3, 24, "");
    assert.equal(e.message, 'unknown key "sise" in mmap step (expected one of: region, size, prot, flags, addr, file, offset, thread)');
    fails(
      "name: t\nstpes: []\n",
      2,
      1,
      'unknown key "stpes" at top level (expected one of: name, description, machine, processes, steps, concurrent, explore)',
    );
    fails("name: t\nmachine:\n  cpu: 2\nsteps: []\n", 3, 3, 'unknown key "cpu" in machine');
    fails("name: t\nprocesses: [{ name: p, thread: [] }]\nsteps: []\n", 2, 24, 'unknown key "thread" in process');
    fails("name: t\nprocesses: [{ name: p, threads: [{ name: x, cpus: 1 }] }]\nsteps: []\n", 2, 45, 'unknown key "cpus" in thread');
  });

  it("explains bad sizes", () => {
    const e = fails(withSteps("- mmap: { region: A, size: 2X }"), 3, 30, "");
    assert.equal(e.message, 'steps[0].mmap.size: expected a size like 4096, "4K", "2M" or "1G", got "2X"');
    fails(withSteps("- mmap: { region: A, size: 5000 }"), 3, 30, "steps[0].mmap.size: expected a multiple of the 4 KiB page size, got 5000");
    fails(withSteps("- mmap: { region: A, size: 6K }"), 3, 30, 'expected a multiple of the 4 KiB page size, got "6K" (6144 bytes)');
    fails(withSteps("- mmap: { region: A, size: 0 }"), 3, 30, "expected a size greater than 0, got 0");
    fails(withSteps("- mmap: { region: A, size: -4096 }"), 3, 30, "expected a non-negative size, got -4096");
    fails(withSteps("- mmap: { region: A, size: true }"), 3, 30, 'expected a size like 4096, "4K", "2M" or "1G", got true');
    fails(
      withSteps("- mmap: { region: A, size: 4K, addr: 0x200000000000000 }"),
      3,
      40,
      "steps[0].mmap.addr: value too large: 144115188075855872 exceeds 2^53 - 1",
    );
    fails(withSteps("- mmap: { region: A, size: 4K, addr: 0x1234 }"), 3, 40, "steps[0].mmap.addr: expected a multiple of the 4 KiB page size");
    fails(withSteps("- munmap: { region: A, offset: 1 }"), 3, 34, "steps[0].munmap.offset: expected a multiple of the 4 KiB page size, got 1");
    fails(withSteps("- touch: { region: A, offset: -1 }"), 3, 33, "steps[0].touch.offset: expected a non-negative size, got -1");
    fails(withSteps("- touch: { region: A, stride: 0 }"), 3, 33, "steps[0].touch.stride: expected a size greater than 0");
    // A user access is to a byte: any offset, length and stride.
    const half = firstStep("- touch: { region: A, offset: 2K, length: 2K, stride: 100 }") as Step & { offset: number; length: number; stride: number };
    assert.deepEqual([half.offset, half.length, half.stride], [2048, 2048, 100]);
    fails(withSteps("- brk: { delta: 1.1K }"), 3, 19, 'steps[0].brk.delta: expected a whole number of bytes, got "1.1K"');
    fails(withSteps("- brk: { delta: 99999999T }"), 3, 19, "value too large");
    fails(
      withSteps("- repeat: { count: 2, advance: 1K, steps: [ { report: x } ] }"),
      3,
      34,
      "steps[0].repeat.advance: expected a multiple of the 4 KiB page size",
    );
  });

  it("explains bad scalar values, at the value", () => {
    fails("name: t\nmachine: { arch: riscv }\nsteps: []\n", 2, 18, 'machine.arch: expected "x86_64" or "arm64", got "riscv"');
    fails(
      "name: t\nmachine: { mthp: { 48K: always } }\nsteps: []\n",
      2,
      18,
      "machine.mthp: expected mTHP sizes as keys, from 16K, 32K, 64K, 128K, 256K, 512K, 1024K, 2M, 4M, 8M, 16M, 32M, 64M, 128M, 256M",
    );
    fails("name: t\nmachine: { arm64: { granule: 64 } }\nsteps: []\n", 2, 30, "machine.arm64.granule: the 64K granule needs arch arm64 (x86-64 has 4K pages)");
    fails(
      "name: t\nmachine: { arch: arm64, arm64: { granule: 64, va_bits: 39 } }\nsteps: []\n",
      2,
      56,
      "machine.arm64.va_bits: the 64K granule offers 42, 48 or 52-bit VAs, got 39",
    );
    fails(
      "name: t\nmachine: { arch: arm64, arm64: { granule: 16 }, mthp: { 32K: always } }\nsteps: []\n",
      2,
      62,
      "machine.mthp: 32K is not an mTHP size with 16K pages (64K..16M)",
    );
    fails("name: t\nmachine: { cpus: 65 }\nsteps: []\n", 2, 18, "machine.cpus: expected an integer from 1 to 64, got 65");
    fails("name: t\nmachine: { levels: 3 }\nsteps: []\n", 2, 20, "machine.levels: expected 4 or 5, got 3");
    fails("name: t\nmachine: { thp: sometimes }\nsteps: []\n", 2, 17, "machine.thp: expected one of never, madvise, always");
    fails("name: t\nmachine: { pt_reclaim: yes }\nsteps: []\n", 2, 24, 'machine.pt_reclaim: expected true or false, got "yes"');
    fails("name: t\nmachine: { variants: { a: 1 } }\nsteps: []\n", 2, 27, "machine.variants.a: expected a string, got 1");
    fails("name: t\nmachine: { seed: -1 }\nsteps: []\n", 2, 18, "machine.seed: expected an integer >= 0");
    fails("name: [t]\nsteps: []\n", 1, 7, "name: expected a non-empty name, got a list");
    fails('name: ""\nsteps: []\n', 1, 7, 'name: expected a non-empty name, got ""');
    fails("name: t\nsteps: {}\n", 2, 8, "steps: expected a list, got a mapping");
    fails(withSteps("- madvise: { region: A, advice: dontneeed }"), 3, 35, "steps[0].madvise.advice: expected one of dontneed, free,");
    fails(withSteps("- mprotect: { region: A }"), 3, 5, 'missing required key "prot" in mprotect step');
    fails(withSteps("- mprotect: { region: A, prot: rwr }"), 3, 34, 'steps[0].mprotect.prot: expected a protection such as "r", "rw", "rwx" or "none"');
    fails(withSteps("- mprotect: { region: A, prot: [read, wirte] }"), 3, 34, 'expected read, write or exec in a protection list, got "wirte"');
    fails(withSteps("- repeat: { count: 0, steps: [ { report: x } ] }"), 3, 22, "steps[0].repeat.count: expected an integer from 1 to 10000000, got 0");
    fails(withSteps("- repeat: { count: 2, steps: [] }"), 3, 32, "steps[0].repeat.steps: expected at least one step");
    fails(withSteps("- report: 5"), 3, 13, "steps[0].report: expected a string, got 5");
    fails(withSteps("- mremap: { region: A, new_size: 4K, may_move: 1 }"), 3, 50, "steps[0].mremap.may_move: expected true or false, got 1");
  });

  it("checks mmap flags", () => {
    fails(withSteps("- mmap: { region: A, size: 4K, flags: [private, shared] }"), 3, 41, "steps[0].mmap.flags: expected exactly one of private or shared");
    fails(withSteps("- mmap: { region: A, size: 4K, flags: [anonymous] }"), 3, 41, "expected exactly one of private or shared");
    fails(
      withSteps("- mmap: { region: A, size: 4K, flags: [private, privat] }"),
      3,
      51,
      'steps[0].mmap.flags[1]: expected one of private, shared, anonymous, fixed, populate, noreserve, got "privat"',
    );
    fails(withSteps("- mmap: { region: A, size: 4K, flags: [private, private] }"), 3, 41, "expected each flag at most once");
    fails(withSteps("- mmap: { region: A, size: 4K, file: f, flags: [private, anonymous] }"), 3, 50, '"anonymous" cannot be combined with a file');
    fails(withSteps("- mmap: { region: A, size: 4K, flags: [private, fixed] }"), 3, 41, '"fixed" needs an addr');
    fails(withSteps("- mmap: { region: A, size: 4K, flags: private }"), 3, 41, "expected a list of flags like [private, anonymous]");
  });

  it("refuses a __proto__ key where it is (zod would drop it silently); a variant named like an Object method is unknown, not a crash", () => {
    fails(
      withSteps("- mmap: { region: A, size: 4K }").replace("name: t\n", "name: t\nmachine: { variants: { __proto__: fixed } }\n"),
      2,
      24,
      'machine.variants.__proto__: "__proto__" is not a valid key',
    );
    fails(
      `${withSteps("- mmap: { region: A, size: 4K }")}explore: { variant: { gather_nested: none, __proto__: x } }\n`,
      4,
      44,
      '"__proto__" is not a valid key',
    );
    for (const k of ["constructor", "toString", "valueOf", "hasOwnProperty"]) {
      fails(
        withSteps("- mmap: { region: A, size: 4K }").replace("name: t\n", `name: t\nmachine: { variants: { ${k}: fixed } }\n`),
        2,
        24,
        `machine.variants: unknown variant "${k}"`,
      );
      fails(`${withSteps("- mmap: { region: A, size: 4K }")}explore: { variant: { ${k}: x } }\n`, 4, 23, `explore.variant: unknown variant "${k}"`);
    }
  });

  it("checks variant names and values where they are written", () => {
    fails(
      "name: t\nmachine:\n  variants:\n    contpte: off\n    gather_nested: maybe\nsteps: []\n",
      5,
      20,
      'machine.variants.gather_nested: unknown value "maybe"',
    );
    fails("name: t\nmachine: { variants: { gather_nestd: none } }\nsteps: []\n", 2, 24, 'unknown variant "gather_nestd"');
    assert.deepEqual(load("name: t\nmachine: { variants: { gather_nested: none } }\nsteps: []\n").machine.variants, { gather_nested: "none" });
  });

  it("requires exactly one known operation per step", () => {
    fails(withSteps("- {}"), 3, 5, "steps[0]: empty step");
    fails(withSteps("- mmapp: { region: A }"), 3, 5, 'steps[0]: unknown operation "mmapp" (expected one of: mmap, touch, read,');
    fails(
      withSteps("- touch: { region: A }", "  report: x"),
      4,
      5,
      'steps[0]: a step must have exactly one key naming the operation, but this one also has "report"',
    );
    fails(withSteps("- mmap:", "  region: A"), 4, 5, 'indent "region" under "mmap:"');
    fails(withSteps("- touch"), 3, 5, 'steps[0]: expected a step like "- touch: { region: A }", got "touch"');
    fails(withSteps("- mmap:"), 3, 10, "steps[0].mmap: expected a mapping, got an empty value");
  });

  it("reports missing required keys at the owning key", () => {
    fails("# comment\nsteps: []\n", 2, 1, 'missing required key "name" at top level');
    fails("name: t\n", 1, 1, 'missing required key "steps" at top level');
    fails(withSteps("- touch: {}"), 3, 5, 'missing required key "region" in touch step');
    fails(withSteps("- repeat:", "    count: 3"), 3, 5, 'missing required key "steps" in repeat step');
    fails("name: t\nprocesses: [{ threads: [{ name: x }] }]\nsteps: []\n", 2, 13, 'missing required key "name" in process');
  });

  it("checks threads and processes", () => {
    fails(withSteps("- touch: { region: A, thread: t9 }"), 3, 33, "steps[0].touch.thread: unknown thread t9 (known threads: t0)");
    const cpuErr = fails("name: t\nmachine: { cpus: 2 }\nprocesses:\n  - name: p\n    threads: [{ name: a, cpu: 3 }]\nsteps: []\n", 5, 31, "");
    assert.equal(cpuErr.message, "processes[0].threads[0].cpu: cpu 3 out of range: machine has 2 CPUs");
    fails(withSteps("- fork: { child: c, cpu: 2 }"), 3, 28, "steps[0].fork.cpu: cpu 2 out of range: machine has 2 CPUs");
    fails("name: t\nprocesses: [{ name: p }, { name: p }]\nsteps: []\n", 2, 34, "processes[1].name: duplicate process name p");
    fails(
      "name: t\nprocesses: [{ name: p, threads: [{ name: x }] }, { name: q, threads: [{ name: x }] }]\nsteps: []\n",
      2,
      79,
      "duplicate thread name x (already used in process p)",
    );
    fails("name: t\nprocesses: []\nsteps: []\n", 2, 12, "processes: expected at least one process");
    // Threads of forked children exist only after the fork, in document order.
    fails(withSteps("- touch: { region: A, thread: c.t0 }", "- fork: { child: c }"), 3, 33, "unknown thread c.t0");
    fails(withSteps("- fork: { child: c }", "- fork: { child: c }"), 4, 20, "steps[1].fork.child: process c already exists");
    fails(withSteps("- fork: { child: p0 }"), 3, 20, "process p0 already exists");
    fails(withSteps("- fork: { child: c, child_thread: t0 }"), 3, 37, "steps[0].fork.child_thread: thread t0 already exists");
    fails(withSteps("- repeat: { count: 2, steps: [ { fork: { child: c1 } } ] }"), 3, 51, "steps[0].repeat.steps[0].fork.child: process c1 already exists");
    fails(withSteps("- repeat: { count: 2, steps: [ { repeat: { count: 1, steps: [ { fork: { child: c1 } } ] } } ] }"), 3, 82, "process c1 already exists");
    fails(withSteps("- exit: { process: nope }"), 3, 22, "steps[0].exit.process: unknown process nope (known processes: p0)");
    fails(withSteps("- fork: { child: c }", "- exit: { process: c }", "- exit: { process: c }"), 5, 22, "process c has already exited (at line 4)");
    fails(
      withSteps("- fork: { child: c }", "- exit: { process: c }", "- touch: { region: A, thread: c.t0 }"),
      5,
      33,
      "thread c.t0 belongs to process c, which exited at line 4",
    );
    fails(withSteps("- exit: { process: p0 }", "- report: x"), 4, 5, "steps[1].report: the default thread t0 belongs to process p0, which exited at line 3");
    fails(withSteps("- repeat: { count: 5, steps: [ { exit: { process: p0, thread: t0 } } ] }"), 3, 53, "process p0 would exit more than once");
  });

  it("reports YAML syntax errors with their position", () => {
    fails("name: t\nsteps: [\n", 3, 1, "invalid YAML:");
    fails("name: t\nname: u\nsteps: []\n", 2, 1, "invalid YAML: Map keys must be unique");
    fails("name: t\n\tsteps: []\n", 2, 1, "invalid YAML:");
    fails("name: t\n---\nname: u\n", 2, 1, "invalid YAML:");
    fails("", 1, 1, "got an empty document");
    fails("- a\n- b\n", 1, 1, 'expected a mapping with keys "name" and "steps" at the top level, got a list');
    fails("name: t\nsteps: *nowhere\n", 2, 8, "unknown alias *nowhere");
    fails("name: t\nsteps: &s [ { repeat: { count: 1, steps: *s } } ]\n", 2, 42, "alias *s refers to a node that contains it");
    fails("name: t\n? [a]\n: b\nsteps: []\n", 2, 3, "expected a key name, got a list");
  });

  it("reports the first error in document order, including cross-reference errors", () => {
    // The unknown thread (line 3) precedes the structural error (line 4) ...
    fails(withSteps("- touch: { region: A, thread: t9 }", "- munmap: { region: A, offset: 1 }"), 3, 33, "unknown thread t9");
    // ... and the structural error at line 3 precedes the bad thread at line 4.
    fails(withSteps("- munmap: { region: A, offset: 1 }", "- touch: { region: A, thread: t9 }"), 3, 34, "offset");
    // machine appears after the steps: the bad thread (line 3) still wins.
    fails(`${withSteps("- touch: { region: A, thread: t9 }")}machine: { cpus: 0 }\n`, 3, 33, "unknown thread t9");
    fails(`${withSteps("- touch: { region: A }")}machine: { cpus: 0 }\nname: u\n`, 5, 1, "invalid YAML: Map keys must be unique");
  });
});

describe("generated artefacts", () => {
  it("docs/scenario.schema.json is up to date", () => {
    assert.deepEqual(JSON.parse(readRepoFile("docs/scenario.schema.json")), scenarioJsonSchema());
  });

  it("the loader and the schema use no Node APIs", () => {
    for (const f of ["src/scenario/load.ts", "src/scenario/schema.ts"]) {
      const src = readRepoFile(f);
      const imports = [...src.matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(
        // The model core is Node-free too (its own tsconfig has no Node types).
        imports.filter((i) => !["yaml", "zod"].includes(i!) && !i!.startsWith("./") && !i!.startsWith("../core/")),
        [],
        f,
      );
      assert.ok(!/\bprocess\.|\bBuffer\b|\brequire\(/.test(src), `${f} uses a Node global`);
    }
  });
});

describe("parseScenario: limits (issue 15)", () => {
  it("a duplicate key is found in any mapping, block or flow, at its second occurrence", () => {
    fails("name: t\nmachine: { variants: { contpte: off, contpte: batched } }\nsteps: []\n", 2, 38, "invalid YAML: Map keys must be unique");
    fails(withSteps("- mmap: { region: A, size: 4K, size: 8K }"), 3, 34, "invalid YAML: Map keys must be unique");
    // The same text with other types is not the same key.
    fails("name: t\n1: a\n'1': b\nsteps: []\n", 2, 1, "expected a key name, got 1");
  });

  it("a mapping of 60,000 keys loads in linear time (the yaml library's own duplicate check took 33 s)", () => {
    const keys = Array.from({ length: 60_000 }, (_, i) => `    k${i}: x\n`).join("");
    const t0 = performance.now();
    fails(`name: t\nmachine:\n  variants:\n${keys}steps: []\n`, 4, 5, 'machine.variants: unknown variant "k0"');
    const top = Array.from({ length: 60_000 }, (_, i) => `k${i}: x\n`).join("");
    fails(`name: t\n${top}steps: []\n`, 2, 1, 'unknown key "k0" at top level');
    const ms = performance.now() - t0;
    assert.ok(ms < 15_000, `${ms.toFixed(0)} ms`);
  });

  it("caps the steps and reports a list runs once nested repeats are unrolled, at the outer count", () => {
    const nested = (outer: number, inner: number, body: string) =>
      withSteps("- mmap: { region: A, size: 4K }", `- repeat: { count: ${outer}, steps: [ { repeat: { count: ${inner}, steps: [ ${body} ] } } ] }`);
    fails(nested(10_000_000, 10_000_000, "{ touch: { region: A } }"), 4, 22, "steps[1].repeat.count: unrolled, this repeat would run 100000000000000 steps");
    fails(nested(1000, 10_001, "{ touch: { region: A } }"), 4, 22, "more than 10000000");
    assert.equal(load(nested(1000, 10_000, "{ touch: { region: A } }")).steps.length, 2);
    fails(withSteps("- repeat: { count: 100001, steps: [ { report: x } ] }"), 3, 22, "100001 reports (count 100001 times 1 in its body), more than 100000");
    fails(nested(2, 50_001, "{ report: x }"), 4, 22, "steps[1].repeat.count: unrolled, this repeat would run 100002 reports");
    // The inner repeat alone is within the caps: the outer one is named.
    fails(nested(3, 4_000_000, "{ touch: { region: A } }"), 4, 22, "steps[1].repeat.count");
  });

  it("a name or key holding a newline gives a one-line error, the newline escaped", () => {
    const cases = [
      'name: t\nprocesses: [{name: "a\\nb"}, {name: "a\\nb"}]\nsteps: []\n',
      'name: t\nsteps:\n  - mmap: { region: "r\\nx", size: 4K }\n  - touch: { region: "r\\nx", thread: "q\\u2028z" }\n',
      'name: t\nsteps:\n  - mmap: { region: r, size: 4K, "b\\nc\\u0007": 1 }\n',
    ];
    for (const text of cases) {
      let err: unknown;
      try {
        load(text);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ScenarioError, String(err));
      const line = err.format();
      assert.match(line, /^t\.yaml:\d+:\d+: /);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a BEL in the message is what must not be there
      assert.doesNotMatch(line, /[\n\r\u2028\u2029\u0007]/, line);
      assert.match(line, /\\n|\\u2028/, line);
    }
  });
});

describe("parseScenario: properties", () => {
  const VALID = `# yaml-language-server: $schema=../docs/scenario.schema.json
name: fuzz
description: "mutation target"
machine: { cpus: 4, levels: 5, thp: always, variants: { zap_batching: "off" } }
processes:
  - name: p0
    threads: [{ name: t0, cpu: 0 }, { name: t1, cpu: 3 }]
steps:
  - mmap: { region: A, size: 1G, prot: rw, flags: [private, anonymous], addr: 0x7f0000000000 }
  - mmap: { region: F, size: 8M, prot: [read], flags: [shared], file: data.bin, offset: 2M }
  - touch: { region: A, offset: 0, length: 2M, stride: 4K, thread: t1 }
  - read: { region: F }
  - madvise: { region: A, offset: 0, length: 2M, advice: dontneed }
  - mprotect: { region: A, offset: 0, length: 2M, prot: r }
  - repeat:
      count: 10
      advance: 2M
      steps:
        - touch: { region: A, length: 2M }
        - report: "in loop"
  - mremap: { region: A, new_size: 2G, may_move: true, new_region: B }
  - munmap: { region: B, offset: 2M, length: 4M }
  - brk: { delta: -1M }
  - fork: { child: c1, thread: t0, cpu: 1, child_thread: c1.t0 }
  - exit: { process: c1 }
  - report: { label: "end" }
`;
  const CHARS = [..."{}[]:,-#&*!|>'\"%@` \n\t0123456789abcdefxKMGrw_."];
  const VALUES = [
    "",
    "0",
    "-1",
    "4K",
    "5000",
    "2X",
    "x",
    "null",
    "~",
    "true",
    "[]",
    "{}",
    "[a, b]",
    "{ a: 1 }",
    "*x",
    "&x",
    "0x1000",
    "1e400",
    "9007199254740993",
    "t9",
    "c1",
    "'quoted'",
    '"',
  ];

  type Mutation = { kind: "insert"; at: number; text: string } | { kind: "delete"; at: number; len: number } | { kind: "value"; which: number; value: string };
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      text: fc.oneof(fc.constantFrom(...CHARS), fc.string({ maxLength: 4 })),
    }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 12 }) }),
    fc.record({ kind: fc.constant("value" as const), which: fc.nat(), value: fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 6 })) }),
  );

  function apply(text: string, m: Mutation): string {
    switch (m.kind) {
      case "insert": {
        const at = m.at % (text.length + 1);
        return text.slice(0, at) + m.text + text.slice(at);
      }
      case "delete": {
        const at = m.at % (text.length + 1);
        return text.slice(0, at) + text.slice(at + m.len);
      }
      case "value": {
        // replace the value after the n-th ": " (a YAML scalar value, mostly)
        const spots = [...text.matchAll(/: ([^,{}[\]\n]+)/g)];
        if (spots.length === 0) return text;
        const s = spots[m.which % spots.length]!;
        const start = s.index! + 2;
        return text.slice(0, start) + m.value + text.slice(start + s[1]!.length);
      }
    }
  }

  it("the unmutated text is valid", () => {
    assert.equal(load(VALID).steps.length, 13);
  });

  it("mutated scenarios either load or throw a positioned ScenarioError", () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        const text = ms.reduce(apply, VALID);
        try {
          load(text);
        } catch (e) {
          if (!(e instanceof ScenarioError)) throw e;
          assert.ok(!e.message.startsWith("internal error"), e.message);
          const lines = text.split("\n").length;
          assert.ok(e.line >= 1 && e.line <= lines && e.col >= 1, `bad position ${e.line}:${e.col} (of ${lines} lines)`);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("unit sizes parse to exact byte counts", () => {
    const units = { K: 10, M: 20, G: 30, T: 40 } as const;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }),
        fc.constantFrom(...(Object.keys(units) as (keyof typeof units)[])),
        fc.constantFrom("", "B", "iB", "b", "ib"),
        fc.boolean(),
        (n, unit, suffix, lower) => {
          const text = `${n}${lower ? unit.toLowerCase() : unit}${suffix}`;
          const st = firstStep(`- brk: { delta: ${text} }`);
          assert.ok(st.op === "brk");
          assert.equal(st.delta, n * 2 ** units[unit]);
        },
      ),
    );
  });
});
