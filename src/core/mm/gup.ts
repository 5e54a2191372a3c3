// Lockless software page-table readers: gup_fast_pte_range() and its upper
// levels (mm/gup.c; IRQs disabled, so a synchronous IPI cannot complete while
// it runs) and __pte_offset_map() + ptep_get_lockless() (mm/pgtable-generic.c;
// under rcu_read_lock() since v6.5, IRQs on). Neither takes mmap_lock or a
// page-table lock: only the table-freeing protocol keeps the tables they
// walk alive. Only the explorer runs them (they exist to race).

import type { Machine } from "../machine.js";
import { site } from "../sync.js";
import type { KGen } from "./memory.js";
import type { Mm } from "./types.js";
import { idxAt } from "../geometry.js";

const S_LL_LEVEL = site("gup_fast/pte_offset_map", "load an upper-level entry");
const S_LL_PTE = site("gup_fast/pte_offset_map", "map the PTE table");

// Returns the PTE value read for addr (0 when no PTE table maps it).
export function* locklessPteRead(m: Machine, mm: Mm, addr: number, irqsOff: boolean): KGen<number> {
  const il = m.il;
  if (il === null) throw new Error("model bug: lockless readers run only under the explorer");
  const A = m.arch;
  const T = m.tables;
  if (irqsOff) il.irqDisable();
  else il.rcuReadLock();
  const G = m.geo;
  const vpn = Math.floor(addr / G.pageSize);
  let slot = mm.pgd;
  let v = 0;
  for (let level = A.levels - 1; level >= 1; level--) {
    yield S_LL_LEVEL;
    const ent = T.get(slot * G.ptrs + idxAt(G, vpn, level));
    m.counters.pteReads++;
    if (ent === 0 || !A.entryIsTable(ent)) {
      slot = -1;
      break;
    }
    slot = T.slotOfPfn(A.ptePfn(ent));
  }
  if (slot >= 0) {
    // From here on the reader holds a pointer to the PTE table.
    const e = T.chunkOf(slot);
    const i = T.base(slot) + (vpn & G.ptrsMask);
    il.watch(e, i, slot);
    yield S_LL_PTE;
    v = yield* A.ptepGetLockless(m, e, i);
  }
  if (irqsOff) il.irqEnable();
  else il.rcuReadUnlock();
  return v;
}
