// A printable picture of the state a counterexample step can change: every
// live page-table leaf and table entry, every TLB and walk-cache entry, and
// the locks held. Only built when a counterexample is replayed for display.

import type { Machine } from "../core/machine.js";
import type { Execution, Snapshot } from "./execution.js";

const hex = (a: number) => `0x${a.toString(16)}`;

export function snapshot(m: Machine, x: Execution): Snapshot {
  const A = m.arch;
  const T = m.tables;
  const G = m.geo;
  const PS = G.pageSize;
  const ptes = new Map<string, string>();
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    const visit = (slot: number, level: number, vpnBase: number) => {
      for (let i = 0; i < G.ptrs; i++) {
        const v = T.get(slot * G.ptrs + i);
        if (v === 0) continue;
        const vpn = vpnBase + i * (G.span[level] as number);
        if (level > 0 && A.entryIsTable(v)) {
          const child = T.slotOfPfn(A.ptePfn(v));
          if (level === 1) ptes.set(`mm${mm.id} pmd ${hex(vpn * PS)}`, `table pfn ${A.ptePfn(v)}`);
          visit(child, level - 1, vpn);
          continue;
        }
        ptes.set(`mm${mm.id} ${level === 0 ? "pte" : "pmd"} ${hex(vpn * PS)}`, A.describeEntry(v));
      }
    };
    visit(mm.pgd, A.levels - 1, 0);
  }
  const tlbs = new Map<string, string>();
  for (const cpu of m.cpus) {
    const t = cpu.tlb;
    for (let i = 0; i < t.tag.length; i++) {
      const k = t.tag[i] as number;
      if (k !== 0) tlbs.set(`CPU${cpu.id} asid ${t.asidOfKey(k)} ${PS / 1024}K ${hex(t.vpnOfKey(k) * PS)}`, `pfn ${t.pfn[i]}${perm(t.perm[i] as number)}`);
    }
    for (let i = 0; i < t.htag.length; i++) {
      const k = t.htag[i] as number;
      if (k !== 0)
        tlbs.set(
          `CPU${cpu.id} asid ${t.asidOfKey(k)} ${2 ** ((t.hshift[i] as number) - 10)}K ${hex(t.hugeFirst(i) * PS)}`,
          `pfn ${t.hpfn[i]}${perm(t.hperm[i] as number)}`,
        );
    }
    for (let i = 0; i < t.ptag.length; i++) {
      const k = t.ptag[i] as number;
      if (k === 0) continue;
      const l = t.plevel[i] as number;
      tlbs.set(`CPU${cpu.id} asid ${t.asidOfKey(k)} walk-cache L${l} ${hex(t.vpnOfKey(k) * (G.span[l] as number) * PS)}`, `table pfn ${t.ptbl[i]}`);
    }
  }
  return { ptes, tlbs, locks: x.lockHolders() };
}

function perm(p: number): string {
  return `${p & 1 ? " w" : " ro"}${p & 2 ? " d" : ""}`;
}
