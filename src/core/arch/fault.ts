// The user access as the CPU's exception path sees it: a load or store that
// the TLB or a page walk (hw/walker.ts) cannot complete raises a page fault,
// and the architecture's handler finds the VMA and calls handle_mm_fault()
// (do_user_addr_fault(), arch/x86/mm/fault.c; do_page_fault(),
// arch/arm64/mm/fault.c), then the access is retried. Kept out of the
// walker, which is hardware and calls no mm code.

import { translate } from "../hw/walker.js";
import { EV_FAULT } from "../events.js";
import type { Machine } from "../machine.js";
import { accessAllowed, type FaultResult, handleMmFault, vmfAnonPrepare } from "../mm/fault.js";
import { lockVmaUnderRcu, vmaEndRead } from "../mm/mmap_lock.js";
import type { Mm } from "../mm/types.js";
import { type Interleaver, LK_MMAP, run, site } from "../sync.js";

const S_FAULT_VMA = site("lock_vma_under_rcu", "look the VMA up and take its read lock");
const S_FAULT_MMAP = site("lock_mm_and_find_vma", "take mmap_lock for reading");
const S_FAULT_RETURN = site("exc_page_fault", "return to user space and retry the access");
const S_FAULT_AGAIN = site("exc_page_fault", "fault again: retry once something changed", true);

// "sigbus": the fault path returned VM_FAULT_SIGBUS (a file page beyond
// i_size). "livelock": the fault path kept returning success but the access
// still faults (recorded as a violation in m.violations).
export type AccessResult = "ok" | "segv" | "sigbus" | "livelock";

const MAX_FAULT_RETRIES = 4;

// The access as a sequential run makes it. Nothing else runs between the
// retries, so a fault that handle_mm_fault() reports handled and that comes
// back MAX_FAULT_RETRIES times in a row will never resolve: the kernel path
// livelocks (the user thread would fault forever), a finding about the
// modelled kernel, reported as the `livelock` violation.
export function userAccess(m: Machine, c: number, mm: Mm, addr: number, write: boolean): AccessResult {
  for (let attempt = 0; attempt < MAX_FAULT_RETRIES; attempt++) {
    if (translate(m, c, mm, addr, write)) return "ok";
    // Page fault.
    const vma = mm.findVma(addr);
    if (vma === null || !accessAllowed(vma, write)) return "segv";
    m.curCpu = c;
    if ((m.evMask & EV_FAULT) !== 0) faultEvent(m, c, mm, addr, write);
    const pf = m.prof;
    if (pf !== null) pf.enter("handle_mm_fault");
    const fr = run(handleMmFault(m, mm, vma, addr, write));
    if (pf !== null) pf.exit();
    if (fr === "segv" || fr === "sigbus") return fr;
  }
  faultLivelock(m, c, addr, write);
  return "livelock";
}

function faultEvent(m: Machine, c: number, mm: Mm, addr: number, write: boolean): void {
  const b = m.events;
  if (b !== null && (b.mask & EV_FAULT) !== 0) b.emit({ kind: "fault", cpu: c, mm: mm.id, addr, write });
}

function faultLivelock(m: Machine, c: number, addr: number, write: boolean): void {
  m.violations.push({
    invariant: "livelock",
    cpu: c,
    addr,
    message: `handle_mm_fault() livelock: CPU${c}'s ${write ? "write" : "read"} at 0x${addr.toString(16)} still faults after ${MAX_FAULT_RETRIES} faults the handler returned as resolved, and nothing else runs that could change that`,
  });
}

// The same access as the explorer runs it: the translation stops between
// walk levels (walk() below); a fault takes the VMA's read lock, or else
// mmap_lock for reading (lock_mm_and_find_vma()), and runs the fault path,
// whose points interleave; then the access is retried.
// MAX_FAULT_RETRIES faults in a row with no other thread taking a step in
// between (the explorer runs a retrying thread alone only when nothing else
// can run) never resolve: the `livelock` violation, as in userAccess().
export function* userAccessGen(m: Machine, c: number, mm: Mm, addr: number, write: boolean): Generator<number, AccessResult, void> {
  const il = m.il as Interleaver;
  let retries = 0;
  let alone = 0;
  let others = -1;
  for (;;) {
    if (translate(m, c, mm, addr, write)) return "ok";
    const o = il.othersSteps();
    alone = o === others ? alone + 1 : 1;
    others = o;
    if (alone > MAX_FAULT_RETRIES) {
      faultLivelock(m, c, addr, write);
      return "livelock";
    }
    // lock_vma_under_rcu() first (do_user_addr_fault(), arch/x86/mm/fault.c;
    // do_page_fault(), arch/arm64/mm/fault.c); if it fails, or
    // vmf_anon_prepare() cannot take mmap_lock beside it (VM_FAULT_RETRY),
    // the fault runs again under mmap_lock for reading.
    yield S_FAULT_VMA;
    let fr: FaultResult;
    const vl = lockVmaUnderRcu(mm, addr);
    const allowed = vl !== null && accessAllowed(vl, write);
    if (vl !== null && (!allowed || vmfAnonPrepare(m, il, mm, vl, addr, write))) {
      m.curCpu = c;
      if (allowed && (m.evMask & EV_FAULT) !== 0) faultEvent(m, c, mm, addr, write);
      fr = allowed ? yield* handleMmFault(m, mm, vl, addr, write) : "segv";
      vmaEndRead(vl);
    } else {
      if (vl !== null) vmaEndRead(vl);
      yield il.lock(LK_MMAP, mm.id, false, S_FAULT_MMAP);
      const vma = mm.findVma(addr);
      if (vma === null || !accessAllowed(vma, write)) {
        il.unlock(LK_MMAP, mm.id);
        return "segv";
      }
      m.curCpu = c;
      if ((m.evMask & EV_FAULT) !== 0) faultEvent(m, c, mm, addr, write);
      fr = yield* handleMmFault(m, mm, vma, addr, write);
      il.unlock(LK_MMAP, mm.id);
    }
    if (fr === "segv" || fr === "sigbus") return fr;
    // A second fault in a row waits for someone else to change something
    // (a TLBI, a lock holder finishing) before the access is retried.
    yield retries++ === 0 ? S_FAULT_RETURN : S_FAULT_AGAIN;
  }
}
