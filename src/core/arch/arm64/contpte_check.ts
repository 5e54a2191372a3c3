// I-CONT-1 (kernel-facts B.8): outside a PTL critical section, every contpte
// block that holds a valid CONT entry has all CONT_PTES entries valid and
// CONT, mapping consecutive PFNs from a CONT_PTES-aligned base, with equal
// attributes apart from access/dirty, all inside one folio. (VA alignment
// holds by construction: blocks are taken at CONT_PTES-aligned indices of a
// PTE table, which covers a PMD-aligned range.) This is the contiguous-bit
// programming rule of the Arm ARM ("Misprogramming of the Contiguous bit")
// that contpte.c's fold/unfold/convert must keep.

import type { Machine, Violation } from "../../machine.js";
import { LVL_PTE, TBL_LIVE } from "../../mm/pgtable.js";
import type { Mm } from "../../mm/types.js";
import * as P from "./pgtable.js";

const hex = (a: number) => `0x${a.toString(16)}`;

// Where each live PTE table is mapped (for messages): slot -> [mm, first VA].
function pteTablePlaces(m: Machine): Map<number, [Mm, number]> {
  const A = m.arch;
  const T = m.tables;
  const ptrs = T.ptrs;
  const out = new Map<number, [Mm, number]>();
  for (const mm of m.mms) {
    if (!mm.alive) continue;
    const visit = (slot: number, level: number, vpnBase: number) => {
      const e = T.chunkOf(slot);
      const b = T.base(slot);
      for (let i = 0; i < ptrs; i++) {
        const v = e[b + i] as number;
        if (v === 0 || !A.entryIsTable(v)) continue;
        const child = T.slotOfPfn(A.ptePfn(v));
        const vpn = vpnBase + i * ptrs ** level;
        if (level === 1) out.set(child, [mm, vpn * m.geo.pageSize]);
        else visit(child, level - 1, vpn);
      }
    };
    visit(mm.pgd, A.levels - 1, 0);
  }
  return out;
}

// skip: tables to leave out (the explorer passes those whose PTL is held).
export function checkContpte(m: Machine, skip?: (slot: number) => boolean): Violation[] {
  if (m.arch.name !== "arm64") return [];
  const out: Violation[] = [];
  const A = m.arch;
  const T = m.tables;
  const phys = m.phys;
  const g = P.arm64Geometry(m.config.arm64.granule);
  const CONT = g.contPtes;
  const ptrs = T.ptrs;
  const protNoAd = (v: number) => P.pteMkold(P.pteMkclean(v)) - A.ptePfn(v) * g.pageSize;
  let places: Map<number, [Mm, number]> | null = null;

  for (let slot = 0; slot < T.state.length; slot++) {
    if (T.state[slot] !== TBL_LIVE || T.level[slot] !== LVL_PTE) continue;
    if (skip?.(slot)) continue;
    const e = T.chunkOf(slot);
    const base = T.base(slot);
    for (let s = 0; s < ptrs; s += CONT) {
      let any = false;
      // Most entries are none: test for that before decoding (the explorer
      // runs this after every step).
      for (let k = 0; k < CONT; k++) {
        const v = e[base + s + k] as number;
        if (v !== 0 && P.pteValidCont(v)) {
          any = true;
          break;
        }
      }
      if (!any) continue;
      const problems: string[] = [];
      const v0 = e[base + s] as number;
      const pfn0 = A.ptePfn(v0);
      const prot0 = protNoAd(v0);
      for (let k = 0; k < CONT; k++) {
        const v = e[base + s + k] as number;
        if (!P.pteValidCont(v)) {
          problems.push(`entry ${k} is ${v === 0 ? "none" : "not valid+CONT"} (${A.describeEntry(v)})`);
          continue;
        }
        if (A.ptePfn(v) !== pfn0 + k) problems.push(`entry ${k} maps pfn ${hex(A.ptePfn(v))}, expected ${hex(pfn0 + k)}`);
        else if (protNoAd(v) !== prot0) problems.push(`entry ${k} has attributes differing from entry 0 beyond access/dirty (${A.describeEntry(v)})`);
      }
      if (problems.length === 0) {
        if (pfn0 % CONT !== 0) problems.push(`base pfn ${hex(pfn0)} is not ${CONT}-page aligned`);
        const head = phys.folioHead(pfn0);
        const end = head + 2 ** (phys.order[head] as number);
        if (phys.isFree(pfn0)) problems.push(`pfn ${hex(pfn0)} is free`);
        else if (pfn0 + CONT > end)
          problems.push(`pfns ${hex(pfn0)}..${hex(pfn0 + CONT - 1)} are not inside one folio (head ${hex(head)}, ${end - head} pages)`);
      }
      if (problems.length === 0) continue;
      places ??= pteTablePlaces(m);
      const place = places.get(slot);
      const addr = place === undefined ? undefined : place[1] + s * g.pageSize;
      const where = place === undefined ? `PTE table slot ${slot} entries ${s}..${s + CONT - 1}` : `mm${place[0].id} block ${hex(addr as number)}`;
      out.push({
        invariant: "contpte-block",
        addr,
        message: `${where}: contpte block with a valid CONT entry is misprogrammed: ${problems.join("; ")}`,
      });
    }
  }
  return out;
}
