// The command line keeps its promise on bad input, signals and broken
// output (issue 15): bad input is one line on stderr (FILE:LINE:COL where
// there is a file) and exit code 2; 0 ok, 1 violation or counterexample,
// 130 interrupted, after printing what was done so far; a closed pipe is
// dropped quietly. Each case is a reproduction from the issue.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { replacedSettings } from "../src/cli/diff-kernel.js";
import { createProgress } from "../src/cli/progress.js";
import { parseScenario } from "../src/scenario/load.js";
import { PROJECT_ROOT, sharedMissing, sharedPath } from "./shared-path.js";

const CLI = join(PROJECT_ROOT, "dist/src/cli/main.js");
const NESTED_GATHER = join(PROJECT_ROOT, "scenarios/concurrency/a-nested-gather.yaml");
const STRACE = sharedPath("traces", "gcc-python.strace");
const tmp = () => mkdtempSync(join(tmpdir(), "ptlab-cli-"));

function ptlab(args: string[], timeout = 120_000) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", cwd: PROJECT_ROOT, timeout });
}

/** Asserts exit code 2 and one line on stderr matching `re`. */
function badInput(args: string[], re: RegExp, timeout?: number): string {
  const r = ptlab(args, timeout);
  assert.equal(r.status, 2, `${args.join(" ")}: status ${r.status} signal ${r.signal}\n${r.stdout}${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
  assert.match(lines[0] as string, re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  return lines[0] as string;
}

/** Runs ptlab, sends `signal` once stderr matches `when` (or after `when` ms), and collects what it printed. */
function interrupt(args: string[], when: RegExp | number, signal: NodeJS.Signals): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT });
    let stdout = "";
    let stderr = "";
    let sent = false;
    if (typeof when === "number")
      setTimeout(() => {
        sent = true;
        p.kill(signal);
      }, when);
    const guard = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`no ${when} on stderr in time: ${stderr}`));
    }, 120_000);
    p.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!sent && typeof when !== "number" && when.test(stderr)) {
        sent = true;
        p.kill(signal);
      }
    });
    p.on("close", (status) => {
      clearTimeout(guard);
      if (!sent) reject(new Error(`ended (${status}) before ${when}: ${stderr}`));
      else resolve({ status, stdout, stderr });
    });
  });
}

describe("cli: variants named like Object's properties (issue 15, item 1)", () => {
  const names = ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"];
  it("--variant NAME=x on run, explore and replay: one line, exit 2", () => {
    for (const n of names) {
      badInput(["run", "default", "--variant", `${n}=x`], /--variant|unknown variant|expected NAME=VALUE/);
      badInput(["explore", NESTED_GATHER, "--variant", `${n}=x`], /--variant|unknown variant|expected NAME=VALUE/);
      badInput(["replay", STRACE, "--variant", `${n}=x`], /--variant|unknown variant|expected NAME=VALUE/);
      badInput(["compare", "default", "--config", "a", "--config", `b:${n}=x`], /unknown key/);
    }
    // The name is refused for what it is, not blamed on the scenario file.
    const line = badInput(["run", "default", "--variant", "constructor=x"], /unknown variant "constructor"/);
    assert.doesNotMatch(line, /default\.yaml/);
    badInput(
      ["run", "default", "--variant", "contpte=maybe"],
      /variant contpte: unknown value "maybe" \(expected one of: batched, off, unfold-each, intermediate\)/,
    );
  });
  it("in a scenario's machine.variants: one line at the key, exit 2", () => {
    const dir = tmp();
    for (const n of names) {
      const f = join(dir, `${n}.yaml`);
      writeFileSync(f, `name: t\nmachine: { variants: { ${n}: x } }\nprocesses: [{ name: a }]\nsteps:\n  - mmap: { region: r, size: 4K }\n`);
      badInput(["run", f], new RegExp(`^${f.replace(/[.]/g, "\\.")}:2:24: machine\\.variants`));
    }
  });
});

describe("cli: YAML limits (issue 15, item 2)", () => {
  it("a nested repeat past the cap is refused at once, at the outer count", () => {
    const f = join(tmp(), "nested.yaml");
    writeFileSync(
      f,
      "name: t\nprocesses: [{ name: a }]\nsteps:\n  - mmap: { region: r, size: 4K }\n  - repeat:\n      count: 10000000\n      steps:\n        - repeat:\n            count: 10000000\n            steps:\n              - touch: { region: r }\n",
    );
    badInput(["run", f], /nested\.yaml:6:14: steps\[1\]\.repeat\.count: unrolled, this repeat would run 100000000000000 steps/, 30_000);
  });
  it("a name with a newline: one line, the newline escaped", () => {
    const f = join(tmp(), "nl.yaml");
    writeFileSync(f, 'name: t\nprocesses: [{ name: "a\\nb" }, { name: "a\\nb" }]\nsteps: []\n');
    badInput(["run", f], /nl\.yaml:2:\d+: processes\[1\]\.name: duplicate process name a\\nb$/);
  });
  it("commander's own errors are one line too", () => {
    badInput(["rn", "default"], /^error: unknown command 'rn' \(Did you mean run\?\)$/);
    badInput(["run", "default", "--jsn"], /^error: unknown option '--jsn' \(Did you mean --json\?\)$/);
  });
});

describe("cli: explore and compare input (issue 15, item 3)", () => {
  it("explore --json to a path that cannot be written fails before exploring", () => {
    const r = ptlab(["explore", NESTED_GATHER, "--historical", "--no-progress", "--json", "/proc/version/x.json"]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, "", "nothing explored, nothing printed");
    assert.equal(r.stderr, 'ptlab: --json: cannot write "/proc/version/x.json": ENOTDIR\n');
    badInput(["explore", NESTED_GATHER, "--historical", "--no-progress", "--no-shrink", "--json", "/dev/full"], /--json: cannot write "\/dev\/full": ENOSPC/);
  });
  it("a replay token with a huge repeat count is refused before it is expanded", () => {
    const t0 = Date.now();
    badInput(
      ["explore", NESTED_GATHER, "--replay", "v1.e4734d92.gather_nested=reset-range.0*100000000000-1*7"],
      /the token's schedule has 100000000007 decisions/,
    );
    assert.ok(Date.now() - t0 < 30_000);
  });
  it("a token whose schedule breaks nothing is shown as a replay, exit 0; the one that breaks is a counterexample, exit 1", () => {
    const clean = ptlab(["explore", NESTED_GATHER, "--no-progress", "--replay", "v1.e4734d92.gather_nested=reset-range.0*1-1*1"]);
    assert.equal(clean.status, 0, clean.stderr);
    assert.doesNotMatch(clean.stdout, /COUNTEREXAMPLE|\(none\)/);
    assert.match(clean.stdout, /^REPLAY: this schedule breaks no invariant/m);
    const bad = ptlab(["explore", NESTED_GATHER, "--no-progress", "--replay", "v1.e4734d92.gather_nested=reset-range.0*10-1*7"]);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stdout, /^COUNTEREXAMPLE \[stale-tlb-after-return\]/m);
  });
  it("explore --json without a file prints the JSON instead of the text", () => {
    const r = ptlab(["explore", NESTED_GATHER, "--historical", "--no-progress", "--json"]);
    assert.equal(r.status, 1, r.stderr);
    const j = JSON.parse(r.stdout) as { counterexample: { invariant: string }; interrupted: boolean };
    assert.equal(j.counterexample.invariant, "stale-tlb-after-return");
    assert.equal(j.interrupted, false);
  });
  it("--seed '' and malformed --config: one line, exit 2", () => {
    badInput(["explore", NESTED_GATHER, "--seed", ""], /--seed/);
    badInput(["explore", NESTED_GATHER, "--seed", " "], /--seed/);
    badInput(["compare", "default", "--config", "garbage"], /at least two --config/);
    badInput(["compare", "default", "--config", "a:x", "--config", "b"], /--config "a:x": expected key=value, got "x"/);
    badInput(["compare", "default", "--config", ":", "--config", "b"], /--config ":": a label may not start with ":"/);
    badInput(["compare", "default", "--config", "a\tb:thp=never", "--config", "b"], /a label may not/);
    badInput(["compare", "default", "--config", "a;b", "--config", "b"], /a label may not/);
    badInput(["compare", "default", "--config", "a:thp=sometimes", "--config", "b"], /thp: expected never, madvise or always/);
    badInput(["compare", "default", "--config", "a", "--config", "a"], /used twice/);
  });
});

describe("cli: signals (issue 15, item 4)", () => {
  it("SIGINT while explore shrinks: the counterexample found is printed as found, exit 130", async () => {
    const fixture = join(PROJECT_ROOT, "test/fixtures/slow-shrink.yaml");
    const r = await interrupt(["explore", fixture, "--historical", "--mode", "random", "--seed", "1"], /shrinking the counterexample/, "SIGINT");
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stdout, /^COUNTEREXAMPLE \[stale-tlb-after-return\]/m);
    assert.match(r.stdout, /^\d+ decisions \(not shrunk: shrinking interrupted\)$/m);
    const token = /--replay (\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(token !== undefined, r.stdout);
    // The token printed replays the same violation.
    const again = ptlab(["explore", fixture, "--no-progress", "--replay", token]);
    assert.equal(again.status, 1, again.stderr);
    assert.match(again.stdout, /^COUNTEREXAMPLE \[stale-tlb-after-return\]/m);
  });
  it("SIGINT on run: the reports and totals so far, exit 130", async () => {
    const r = await interrupt(["run", "pt-reclaim-50g"], /run pt-reclaim-50g: 0%/, "SIGINT");
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stdout, /^== total/m);
    assert.match(r.stdout, /^INTERRUPTED by SIGINT after \d+ of 51202 steps/m);
  });
  it("SIGINT on workload: the reports and totals so far, exit 130", async () => {
    const r = await interrupt(["workload", "qi-50g", "--param", "size=50G"], /workload qi-50g: 0%/, "SIGINT");
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stdout, /^INTERRUPTED by SIGINT after \d+ of \d+ steps/m);
  });
  it("SIGTERM on hunt: what was found so far, exit 130", async () => {
    const out = tmp();
    const r = await interrupt(["hunt", "--time", "60s", "--workers", "1", "--out", out], 5000, "SIGTERM");
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stdout, /^hunt: \d+ cases .*\(interrupted\)$/m);
    assert.ok(existsSync(join(out, "summary.json")));
  });
  it("SIGTERM on run --json: the JSON says so", async () => {
    const r = await interrupt(["run", "pt-reclaim-50g", "--json"], /run pt-reclaim-50g: 0%/, "SIGTERM");
    assert.equal(r.status, 130, r.stderr);
    const j = JSON.parse(r.stdout) as { interrupted: { signal: string; steps_done: number; steps_total: number } };
    assert.equal(j.interrupted.signal, "SIGTERM");
    assert.equal(j.interrupted.steps_total, 51202);
    assert.ok(j.interrupted.steps_done > 0 && j.interrupted.steps_done < 51202);
  });
  it("SIGTERM on compare: the table and --report of what ran, exit 130", async () => {
    const report = join(tmp(), "r.html");
    const r = await interrupt(["compare", "pt-reclaim-50g", "--config", "a", "--config", "b:pt_reclaim=off", "--report", report], /compare a: 0%/, "SIGTERM");
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stdout, /^note: a: interrupted \(SIGTERM\) after \d+ of 51202 steps/m);
    assert.match(r.stdout, /^INTERRUPTED: .*; not run: b$/m);
    assert.ok(existsSync(report));
    assert.match(readFileSync(report, "utf8"), /interrupted \(SIGTERM\)/);
  });
  it("SIGINT on replay: the figures so far, exit 130", async () => {
    // A trace slow to replay: 64 MiB mmaps touched page by page.
    const f = join(tmp(), "long.strace");
    const lines = ['100  execve("/bin/x", ["x"], 0x7ffd /* 1 vars */) = 0'];
    for (let i = 0; i < 2000; i++)
      lines.push(
        "100  mmap(NULL, 67108864, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
        "100  munmap(0x7f0000000000, 67108864) = 0",
      );
    writeFileSync(f, `${lines.join("\n")}\n100  exit_group(0) = ?\n100  +++ exited with 0 +++\n`);
    const r = await interrupt(["replay", f, "--touch", "writable"], /ptlab: replay long\.strace: \d+%/, "SIGINT");
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stdout, /^INTERRUPTED by SIGINT after \d+ events \(trace line \d+\)/m);
    assert.match(r.stdout, /^== total/m);
  });
});

describe("cli: output that cannot be written (issue 15, item 5)", () => {
  it("a closed pipe (| head -1) is dropped quietly and the exit code stays the command's", async () => {
    const p = spawn(process.execPath, [CLI, "run", "default"], { cwd: PROJECT_ROOT });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    p.stdout.once("data", () => p.stdout.destroy());
    const status = await new Promise<number | null>((resolve) => p.on("close", resolve));
    assert.equal(stderr, "");
    assert.equal(status, 0);
  });
  it("a full disk is one line and exit code 2, not 1 (which means a violation)", () => {
    for (const args of [["run", "default", "--json"], ["scenarios"]]) {
      const r = spawnSync("sh", ["-c", `"${process.execPath}" "${CLI}" ${args.join(" ")} > /dev/full`], { encoding: "utf8", cwd: PROJECT_ROOT });
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /cannot write the output: ENOSPC/);
    }
  });
});

describe("cli: progress (issue 15, item 7)", () => {
  it("the progress bar fills in its ETA (no literal {eta...} placeholder)", () => {
    let out = "";
    const stream = new Writable({
      write(c, _e, cb) {
        out += String(c);
        cb();
      },
    });
    const ok = (cb?: () => void) => {
      cb?.();
      return true;
    };
    Object.assign(stream, {
      isTTY: true,
      columns: 120,
      cursorTo: (_x: number, _y: unknown, cb?: () => void) => ok(cb),
      clearLine: (_d: number, cb?: () => void) => ok(cb),
      moveCursor: (_x: number, _y: number, cb?: () => void) => ok(cb),
    });
    const p = createProgress({ enabled: true, tty: true, stream: stream as unknown as NodeJS.WriteStream });
    const step = p.run("run {x}");
    for (let i = 1; i <= 4000; i++) step(i, 4000);
    p.stop();
    assert.match(out, /run x \[.*\] 100% \| 4000\/4000 steps \| ETA \d+s/);
    assert.doesNotMatch(out, /\{eta|\{value|\{total|\{bar|\{percentage/);
  });
  it("run shows progress lines on stderr for long runs, and --no-progress turns them off", () => {
    const dir = tmp();
    const f = join(dir, "many.yaml");
    writeFileSync(
      f,
      "name: many\nprocesses: [{ name: a }]\nsteps:\n  - mmap: { region: r, size: 4K }\n  - repeat: { count: 3000, steps: [{ touch: { region: r } }] }\n",
    );
    const on = ptlab(["run", f]);
    assert.equal(on.status, 0, on.stderr);
    assert.match(on.stderr, /^ptlab: run many: 100% \(3001\/3001 steps\)$/m);
    const off = ptlab(["run", f, "--no-progress"]);
    assert.equal(off.stderr, "");
    assert.equal(off.stdout, on.stdout);
  });
});

describe("cli: diff-kernel (issue 15, item 7)", () => {
  it("a scenario with nothing to compare (no report step) fails before the host is touched: one line, exit 2", () => {
    const f = join(tmp(), "norep.yaml");
    writeFileSync(
      f,
      "name: t\nprocesses: [{ name: a }]\nsteps:\n  - mmap: { region: r, size: 4K }\n  - repeat: { count: 2, steps: [{ touch: { region: r } }] }\n",
    );
    badInput(["diff-kernel", f], /norep\.yaml:1:1: diff-kernel has nothing to compare: .* the scenario has none/);
    const g = join(tmp(), "exec.yaml");
    writeFileSync(g, "name: t\nprocesses: [{ name: a }]\nsteps:\n  - mmap: { region: r, size: 4K }\n  - exec: {}\n  - report: x\n");
    badInput(["diff-kernel", g], /exec\.yaml:5:5: diff-kernel cannot run exec steps on the host helper/);
  });
  it("names every scenario setting the host's replaced, and only those", () => {
    const sc = parseScenario("name: t\nmachine: { thp: never, pt_reclaim: false, mthp: { 64K: always } }\nsteps: []\n", "t.yaml");
    const host = { thp: "never", thpUseZeroPage: true, ptReclaim: false, levels: 4, mthp: { 64: "always" }, variants: {} };
    assert.deepEqual(replacedSettings(sc.machine, host), []);
    assert.deepEqual(
      replacedSettings(sc.machine, {
        ...host,
        thp: "always",
        ptReclaim: true,
        levels: 5,
        mthp: { 16: "madvise", 64: "always" },
        variants: { collapse_ro: "any" },
      }),
      [
        "machine.thp: never -> always",
        "machine.pt_reclaim: false -> true",
        "machine.levels: 4 -> 5",
        "machine.mthp: 64K=always -> 16K=madvise,64K=always",
        "machine.variants.collapse_ro: (default) -> any",
      ],
    );
  });
});

describe("cli: flag spellings (issue 15, item 7)", () => {
  it("run takes --thp like replay; replay's --arch is checked as an option, not blamed on the trace", () => {
    const r = ptlab(["run", "default", "--thp", "always", "--no-progress"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ptlab run default: .*THP always/m);
    badInput(["run", "default", "--thp", "sometimes"], /--thp .* expected never, madvise or always, got "sometimes"/);
    badInput(["replay", STRACE, "--arch", "riscv"], /^error: option '--arch <x86_64\|arm64>' argument 'riscv' is invalid/);
  });
});

describe("cli: trace-dependent cases", { skip: sharedMissing(STRACE) }, () => {
  it("replay --variant with an unknown value: one line, exit 2", () => {
    badInput(["replay", STRACE, "--variant", "zap_batching=sometimes"], /variant zap_batching: unknown value "sometimes" \(expected one of: batched, off\)/);
  });
});
