// The interface generic mm code uses to reach an architecture, as the kernel's
// asm/pgtable.h, asm/tlb.h and asm/tlbflush.h do. PTE values are numbers whose
// encoding only the architecture knows.

import type { Machine } from "../machine.js";
import type { MmuGather } from "../mm/mmu_gather.js";
import type { Mm } from "../mm/types.js";

export interface Arch {
  readonly name: string;
  readonly ptrsPerTable: number;
  readonly levels: number; // 4 or 5

  pteNone(v: number): boolean;
  ptePresent(v: number): boolean; // includes PROT_NONE entries
  pteWrite(v: number): boolean;
  pteDirty(v: number): boolean;
  pteYoung(v: number): boolean;
  pteSpecial(v: number): boolean;
  ptePfn(v: number): number;
  pfnPte(pfn: number, pgprot: number): number;
  pteMkwrite(v: number): number;
  pteWrprotect(v: number): number;
  pteMkdirty(v: number): number;
  pteMkclean(v: number): number;
  pteMkyoung(v: number): number;
  pteMkold(v: number): number;
  pteMkspecial(v: number): number;
  pteModify(v: number, newprot: number): number;
  vmGetPageProt(vmFlags: number): number;
  // Upper levels.
  mkTableEntry(tablePfn: number): number;
  entryIsTable(v: number): boolean;
  entryIsLeaf(v: number): boolean; // PMD/PUD block mapping
  pmdMkhuge(v: number): number;
  // The PTE for page i of a PMD leaf, with the same attributes (THP split).
  pmdLeafToPte(pmdv: number, i: number): number;
  // pte_next_pfn(): the same entry mapping the next page.
  pteAdvancePfn(v: number, n: number): number;
  // __pte_batch_clear_ignored() for folio_pte_batch(): clear the bits the
  // batch may ignore (always AF and soft-dirty; dirty and write unless respected).
  pteBatchNorm(v: number, respectDirty: boolean, respectWrite: boolean): number;
  // pte_needs_flush(): does changing a present entry from old to new need a TLB flush?
  pteNeedsFlush(oldv: number, newv: number): boolean;

  // Hardware walk permissions of a leaf: TLB_* bits, or -1 if not accessible.
  leafPerm(v: number): number;
  // Hardware A/D update of a leaf for an access (returns the new value).
  hwMkyoungDirty(v: number, write: boolean): number;

  // TLB maintenance.
  tlbFlush(m: Machine, tlb: MmuGather): void; // tlb_flush()
  flushTlbPage(m: Machine, mm: Mm, addr: number): void; // flush_tlb_page()
  flushTlbRange(m: Machine, mm: Mm, start: number, end: number, strideShift: number, freedTables: boolean): void;
  flushTlbMm(m: Machine, mm: Mm): void; // flush_tlb_mm()
  switchMm(m: Machine, cpu: number, mm: Mm | null): void; // switch_mm_irqs_off()
  // Is a TLB entry tagged `asid` on `cpu` still usable by mm (not pending a
  // flush that a switch back would perform)?
  asidReachable(m: Machine, cpu: number, asid: number): Mm | null;
  describeEntry(v: number): string;
}
