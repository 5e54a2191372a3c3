// kswapd as a thread of the explorer, under a memory limit (machine.memory).
// Models kswapd() and kswapd_try_to_sleep() (mm/vmscan.c): the thread sleeps
// on kswapd_wait until an allocation wakes it (wakeup_kswapd(), from the
// allocator's slow path: Execution.wakeupKswapd()), then runs
// balance_pgdat() -- kswapdBalance(), the code `ptlab run` calls between
// steps -- and sleeps again once prepare_kswapd_sleep() holds (free memory
// above the high watermark, or a balance that freed nothing).
//
// Simplified: no short HZ/10 nap before the full sleep (a wakeup in between
// is the same wakeup); after a balance that freed nothing kswapd sleeps at
// once, where the kernel loops until MAX_RECLAIM_RETRIES such balances (the
// model's balance already sweeps every frame three times); no kcompactd, no
// watermark boosting, one node. No Node APIs.
//
// Imported after speculate.ts: its site is numbered after every other, so
// the numbers ptlab hunt's coverage keys on do not move.

import { kswapdBalance } from "../core/mm/kswapd.js";
import type { KGen } from "../core/mm/memory.js";
import { site } from "../core/sync.js";
import type { Runner } from "../run/runner.js";
import type { Execution, XThread } from "./execution.js";

export const S_KSWAPD_SLEEP = site("kswapd", "kswapd_try_to_sleep(): sleeps until wakeup_kswapd()");

export const KSWAPD_NAME = "kswapd0";

// kswapd(): the thread starts asleep (the set-up left memory balanced, or
// kswapd gave up there); each wakeup runs balance_pgdat() until it may sleep.
export function* kswapdThread(x: Execution, r: Runner, self: () => XThread): KGen {
  const m = r.m;
  for (;;) {
    const t = self();
    t.op = "balance_pgdat";
    t.stepNo++;
    t.tables.clear();
    x.sysEnter(t);
    const stat = yield* kswapdBalance(m);
    x.sysLeave(t);
    x.kswapdBalanced(t, stat);
    yield S_KSWAPD_SLEEP;
  }
}

// The CPU kswapd runs on: the highest one no thread of the scenario uses (a
// CPU of its own), else the last CPU, shared as the scheduler would.
export function kswapdCpu(r: Runner): number {
  const used = new Set(r.threadCpu.values());
  const n = r.m.cpus.length;
  for (let c = n - 1; c >= 0; c--) if (!used.has(c)) return c;
  return n - 1;
}
