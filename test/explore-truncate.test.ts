// Truncation against file faults (the folio lock, i_size, the second unmap
// pass). Checked: the catalogue entry clean-truncate-fault explores clean,
// and across its executions each racing fault (a read that creates the
// folio, a shared store, a private store that copies) both maps its page
// before the truncation removes it and gets SIGBUS after the i_size write;
// when it ran, nothing is left mapped and the page cache holds nothing the
// truncation should have removed except what a SIGBUS fault created after
// it; a sequential access beyond the end of a file (a file mapping grown by
// mremap) gets SIGBUS; the mapped-beyond-eof check reports a mapping left
// beyond the end and stays quiet while a truncation is in flight.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkMappedBeyondEof } from "../src/core/check.js";
import type { Execution } from "../src/explore/execution.js";
import { explore, scenarioConfig } from "../src/explore/explore.js";
import { Runner } from "../src/run/runner.js";
import { parseScenario } from "../src/scenario/load.js";
import { load } from "./catalogue.js";

describe("explore: truncation races file faults", () => {
  it("clean-truncate-fault: clean; every fault both maps its page first and gets SIGBUS in some execution", () => {
    const sc = load("clean-truncate-fault.yaml");
    const seen = new Set<string>();
    let finals = 0;
    const r = explore({
      ...scenarioConfig(sc, false),
      onFinal: (x: Execution) => {
        finals++;
        const m = x.m;
        for (const name of ["S", "P"]) {
          const t = x.threads.find((u) => u.name === name);
          assert.ok(t !== undefined);
          const k = t.killed;
          assert.ok(k === null || k.startsWith("SIGBUS: "), `${name}: ${k}`);
          seen.add(`${name} ${k === null ? "ran" : k.replace(/ at 0x.*/, "")}`);
        }
        // Nothing maps the file any more: its size is 0.
        assert.deepEqual(
          checkMappedBeyondEof(m, () => false),
          [],
        );
        const f = m.files.get("data");
        assert.ok(f !== undefined);
        assert.equal(f.size, 0);
        // A page left in the cache was created by a fault that then got
        // SIGBUS (filemap_fault() after the truncation had passed it).
        for (const pfn of f.pages.values()) assert.equal(m.phys.mapcount[pfn], 0);
      },
    });
    assert.equal(r.counterexample, null, r.counterexample ? `${r.counterexample.invariant}: ${r.counterexample.message}` : "");
    assert.ok(r.complete);
    assert.ok(finals > 10, `${finals} executions ran to the end`);
    // S reads page 1, then stores to page 0; P stores to page 0 (a copy).
    for (const s of ["S ran", "S SIGBUS: read", "S SIGBUS: write", "P ran", "P SIGBUS: write"]) assert.ok(seen.has(s), `${s} (seen: ${[...seen].join(", ")})`);
  });

  it("a sequential access beyond a file's end gets SIGBUS (a file mapping grown by mremap)", () => {
    const text = (page: number) => `name: beyond-eof
processes:
  - name: p
steps:
  - mmap: { region: f, size: 4K, prot: rw, flags: [shared], file: data }
  - read: { region: f }
  - mremap: { region: f, new_size: 8K, may_move: true }
  - read: { region: f, offset: ${page * 4}K, length: 4K }
`;
    new Runner(parseScenario(text(0), "ok.yaml"), {}).execSteps(parseScenario(text(0), "ok.yaml").steps, 0);
    const sc = parseScenario(text(1), "beyond.yaml");
    assert.throws(() => new Runner(sc, {}).execSteps(sc.steps, 0), /SIGBUS: read at 0x[0-9a-f]+/);
  });

  it("mapped-beyond-eof reports a mapping the file's end left behind, unless a truncation is in flight", () => {
    const sc = parseScenario(
      `name: map
processes:
  - name: p
steps:
  - mmap: { region: f, size: 8K, prot: r, file: data }
  - read: { region: f }
`,
      "map.yaml",
    );
    const r = new Runner(sc, {});
    r.execSteps(sc.steps, 0);
    const f = r.m.files.get("data");
    assert.ok(f !== undefined);
    assert.deepEqual(
      checkMappedBeyondEof(r.m, () => false),
      [],
    );
    f.size = 4096; // i_size written, page 1 still mapped
    const v = checkMappedBeyondEof(r.m, () => false);
    assert.equal(v.length, 1);
    assert.equal(v[0]?.invariant, "mapped-beyond-eof");
    assert.match(v[0]?.message ?? "", /page 1 of file data/);
    assert.deepEqual(
      checkMappedBeyondEof(r.m, (x) => x === f),
      [],
    );
  });
});
