// The concurrent steps of a scenario as thread bodies: each syscall takes
// mmap_lock as its kernel entry does and runs the model's kernel paths (the
// same generators `ptlab run` drives to completion); user accesses are one
// hardware step each, with the fault path interleaving like any kernel path.
// No Node APIs.

import { accessPfn, userAccessGen } from "../core/hw/walker.js";
import { locklessPteRead } from "../core/mm/gup.js";
import { dupMmapGen } from "../core/mm/fork.js";
import { madvise } from "../core/mm/madvise.js";
import type { KGen } from "../core/mm/memory.js";
import { doMmap, doMunmap, MmError, oomReap } from "../core/mm/mmap.js";
import { mprotect } from "../core/mm/mprotect.js";
import { reclaimRange } from "../core/mm/vmscan.js";
import { type Interleaver, LK_MMAP, site } from "../core/sync.js";
import type { Runner } from "../run/runner.js";
import type { Step } from "../scenario/types.js";
import { Deviation, type Execution, type XThread } from "./execution.js";

const S_MMAP_W = site("mmap_write_lock", "take mmap_lock for writing");
const S_MMAP_R = site("mmap_read_lock", "take mmap_lock for reading");
const S_ACCESS = site("user", "load or store");

export function* threadBody(x: Execution, r: Runner, steps: Step[], self: () => XThread): KGen {
  for (const s of steps) {
    self().op = describeStep(s);
    try {
      yield* op(x, r, s, self());
    } catch (e) {
      if (e instanceof MmError) throw new Deviation(`${s.op} failed: ${e.errno}: ${e.message}`);
      throw e;
    }
  }
}

function* op(x: Execution, r: Runner, step: Step, t: XThread): KGen {
  const m = r.m;
  const il = m.il as Interleaver;
  switch (step.op) {
    case "munmap":
    case "madvise":
    case "mprotect": {
      const p = r.procOf(step);
      const [a, len] = r.range(step, p, 0);
      // mmap_lock as each syscall takes it: munmap and mprotect for writing
      // (do_vmi_munmap() downgrades it), madvise for reading unless it
      // changes VMA flags.
      const write = step.op !== "madvise" || step.advice === "hugepage" || step.advice === "nohugepage";
      const zap = step.op === "munmap" || (step.op === "madvise" && (step.advice === "dontneed" || step.advice === "free"));
      x.sysEnter(t);
      if (zap) x.zapBegin(p.mm, a, a + len);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, write, write ? S_MMAP_W : S_MMAP_R);
      if (step.op === "munmap") yield* doMunmap(m, p.mm, a, len);
      else if (step.op === "madvise") yield* madvise(m, p.mm, a, len, step.advice);
      else yield* mprotect(m, p.mm, a, len, step.prot);
      il.unlock(LK_MMAP, p.mm.id);
      if (zap) x.zapEnd(p.mm, a, a + len);
      x.sysReturn(t, step.op === "madvise" ? `madvise(${step.advice})` : step.op, p.mm, a, a + len);
      return;
    }
    case "fork": {
      const p = r.procOf(step);
      if (r.procs.has(step.child)) throw r.err(step, `process "${step.child}" already exists`);
      x.sysEnter(t);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, true, S_MMAP_W);
      const mm = yield* dupMmapGen(m, p.mm);
      il.unlock(LK_MMAP, p.mm.id);
      r.addChild(step, p, mm);
      x.inherit(p.mm, mm);
      x.sysReturn(t, "fork", p.mm, 0, 2 ** 57);
      return;
    }
    case "mmap": {
      const p = r.procOf(step);
      x.sysEnter(t);
      r.enter(step, p);
      yield il.lock(LK_MMAP, p.mm.id, true, S_MMAP_W);
      const file = step.file !== undefined ? m.file(step.file, step.offset + step.size, false) : null;
      const addr = doMmap(m, p.mm, {
        len: step.size,
        prot: step.prot,
        shared: step.flags.includes("shared"),
        fixed: step.flags.includes("fixed"),
        addr: step.addr ?? 0,
        file,
        pgoff: Math.floor(step.offset / m.geo.pageSize),
      });
      il.unlock(LK_MMAP, p.mm.id);
      p.regions.set(step.region, { start: addr, len: step.size });
      x.sysLeave(t);
      return;
    }
    case "touch": {
      const p = r.procOf(step);
      const [a, len] = r.range(step, p, 0);
      const stride = step.stride || m.geo.pageSize;
      for (let v = a; v < a + len; v += stride) {
        yield S_ACCESS;
        const c = r.enter(step, p);
        x.sysEnter(t);
        const res = yield* userAccessGen(m, c, p.mm, v, step.write);
        x.sysLeave(t);
        if (res === "segv") throw new Deviation(`SIGSEGV: ${step.write ? "write" : "read"} at 0x${v.toString(16)}`);
        // The load or store itself happens with the translation just made.
        const vpn = Math.floor(v / m.geo.pageSize);
        if (step.write) x.userStore(t, p.mm, vpn, accessPfn, !(p.mm.findVma(v)?.isShared ?? true));
        else x.userLoad(t, p.mm, vpn, accessPfn);
      }
      return;
    }
    case "exit": {
      const p = r.procs.get(step.process);
      if (p === undefined || !p.mm.alive) throw r.err(step, `process "${step.process}" does not exist or has exited`);
      x.sysEnter(t);
      yield* r.exitProcessGen(p);
      x.sysLeave(t);
      return;
    }
    case "reclaim": {
      // kswapd (or direct reclaim): no mmap_lock, no mm switch; the folios
      // mapped in the range are shrunk as shrink_folio_list() would.
      const p = r.reclaimTarget(step);
      const [a, len] = r.range(step, p, 0);
      x.sysEnter(t);
      m.curCpu = t.cpu;
      yield* reclaimRange(m, p.mm, a, a + len);
      x.sysLeave(t);
      return;
    }
    case "oom_reap": {
      const p = r.procs.get(step.process);
      if (p === undefined) throw r.err(step, `process "${step.process}" does not exist`);
      if (!p.mm.alive) return; // nothing left to reap
      x.sysEnter(t);
      m.curCpu = t.cpu;
      yield* oomReap(m, p.mm);
      x.sysLeave(t);
      return;
    }
    case "lockless": {
      const p = r.procOf(step);
      const reg = p.regions.get(step.region);
      if (reg === undefined) throw r.err(step, `unknown region "${step.region}"`);
      const addr = reg.start + step.offset;
      const v = yield* locklessPteRead(m, p.mm, addr, step.via === "gup_fast");
      x.locklessResult(t, addr, v);
      return;
    }
    default:
      throw r.err(step, `${step.op} cannot run concurrently under ptlab explore (put it in steps)`);
  }
}

const KB = (n: number) => (n === 0 ? "0" : n % 1048576 === 0 ? `${n / 1048576}M` : `${n / 1024}K`);

// "munmap r+0 2M": what a trace line says the thread is doing.
export function describeStep(s: Step): string {
  switch (s.op) {
    case "munmap":
    case "mprotect":
    case "madvise":
    case "touch": {
      const what =
        s.op === "madvise"
          ? `madvise(${s.advice})`
          : s.op === "mprotect"
            ? `mprotect(${s.prot.read ? "r" : ""}${s.prot.write ? "w" : ""}${s.prot.exec ? "x" : ""}${s.prot.read || s.prot.write || s.prot.exec ? "" : "none"})`
            : s.op === "touch"
              ? s.write
                ? "write"
                : "read"
              : s.op;
      return `${what} ${s.region}+${KB(s.offset)}${s.length !== undefined ? ` ${KB(s.length)}` : ""}`;
    }
    case "lockless":
      return `lockless ${s.via} ${s.region}+${KB(s.offset)}`;
    case "fork":
      return `fork -> ${s.child}`;
    case "exit":
      return `exit ${s.process}`;
    case "oom_reap":
      return `oom_reap ${s.process}`;
    case "reclaim":
      return `reclaim ${s.process !== undefined ? `${s.process}:` : ""}${s.region}+${KB(s.offset)}${s.length !== undefined ? ` ${KB(s.length)}` : ""}`;
    default:
      return s.op;
  }
}
