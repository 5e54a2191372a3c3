// `ptlab run --events FILE`: the model's event stream (core/events.ts, with
// the recorder's entry stores, TLB fills and drops and folios) as JSON
// lines, one event a line, each with the scenario step it happened in.
// Written as the run goes, so a run that stops early keeps what came before.

import { closeSync, openSync, writeSync } from "node:fs";
import type { Machine } from "../core/machine.js";
import { Recorder } from "../core/record.js";
import type { Step } from "../scenario/types.js";
import { UsageError } from "./explore.js";

export interface EventLog {
  attach(m: Machine): void;
  onExec(step: Step | null, phase: "before" | "after"): void;
  close(): void;
}

export function openEventLog(path: string): EventLog {
  let fd: number;
  try {
    fd = openSync(path, "w");
  } catch (e) {
    throw new UsageError(`--events ${path}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let rec: Recorder | null = null;
  let n = 0;
  const write = (s: string) => {
    try {
      writeSync(fd, s);
    } catch (e) {
      throw new UsageError(`--events ${path}: write failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return {
    attach(m: Machine) {
      rec = new Recorder(m);
      // With --by-function the profiler owns m.prof: events then carry no fn.
      rec.trackFunctions();
    },
    onExec(step, phase) {
      if (rec === null) return;
      if (phase === "before") {
        rec.target = [];
        rec.resetFunctions();
        return;
      }
      const at = step === null ? { step: ++n, at: "exit" } : { step: ++n, at: step.op, line: step.pos.line };
      let out = "";
      for (const e of rec.target) out += `${JSON.stringify({ ...at, seq: e.seq, ...(e.fn !== undefined ? { fn: e.fn } : {}), ...e.ev })}\n`;
      rec.target = [];
      if (out !== "") write(out);
    },
    close() {
      rec?.stop();
      closeSync(fd);
    },
  };
}
