// The page-size geometry generic mm code works in: PAGE_SHIFT, PTRS_PER_PTE
// (one size for every table level, as on x86-64 and arm64), PMD_SHIFT,
// PUD_SHIFT and HPAGE_PMD_ORDER (include/asm-generic/pgtable-nop*.h,
// arch/arm64/include/asm/pgtable-hwdef.h, arch/x86/include/asm/pgtable_64_types.h).
// x86-64 always has 4K pages; arm64 has 4K, 16K or 64K granules.

export interface Geometry {
  readonly pageShift: number;
  readonly pageSize: number;
  readonly ptrs: number; // PTRS_PER_PTE = PTRS_PER_PMD = PTRS_PER_PUD
  readonly ptrsMask: number;
  readonly levels: number;
  readonly pmdShift: number;
  readonly pmdSize: number; // what one PTE table maps
  readonly pudShift: number;
  readonly pudSize: number;
  readonly pmdOrder: number; // HPAGE_PMD_ORDER
  readonly pmdNr: number; // HPAGE_PMD_NR
  // Pages one entry maps at each level (0 = PTE).
  readonly span: readonly number[];
}

export function geometry(pageShift: number, levels: number): Geometry {
  const bits = pageShift - 3; // 8-byte entries fill one page
  const ptrs = 2 ** bits;
  const span: number[] = [];
  for (let l = 0; l <= 5; l++) span.push(ptrs ** l);
  return {
    pageShift,
    pageSize: 2 ** pageShift,
    ptrs,
    ptrsMask: ptrs - 1,
    levels,
    pmdShift: pageShift + bits,
    pmdSize: 2 ** (pageShift + bits),
    pudShift: pageShift + 2 * bits,
    pudSize: 2 ** (pageShift + 2 * bits),
    pmdOrder: bits,
    pmdNr: ptrs,
    span,
  };
}

// x % p for a power of two p, as the same value: V8 compiles `%` on numbers
// beyond int32 (addresses, packed PTEs) to a call to fmod(); floor and
// subtract is exact for x >= 0.
export function modPow2(x: number, p: number): number {
  return x >= 0 ? x - Math.floor(x / p) * p : x % p;
}

// Index into the table at `level` for virtual page number vpn.
export function idxAt(g: Geometry, vpn: number, level: number): number {
  return modPow2(Math.floor(vpn / (g.span[level] as number)), g.ptrs);
}

// The folio order of an anon mTHP size (hugepages-<size>kB) with pages of
// 2^pageShift bytes, or -1 if there is none: anon mTHP orders run from 2 to
// HPAGE_PMD_ORDER - 1 (THP_ORDERS_ALL_ANON without the PMD order, the THP).
export function anonMthpOrder(sizeKb: number, pageShift: number): number {
  const order = Math.log2((sizeKb * 1024) / 2 ** pageShift);
  return Number.isInteger(order) && order >= 2 && order <= pageShift - 4 ? order : -1;
}
// "16K..1M" for 4K pages.
export function anonMthpRange(pageShift: number): string {
  const name = (b: number) => (b >= 2 ** 20 ? `${b / 2 ** 20}M` : `${b / 1024}K`);
  return `${name(2 ** (pageShift + 2))}..${name(2 ** (2 * pageShift - 4))}`;
}

// "4K", "64K", "2M", "1G": the size of a mapping of 2^shift bytes.
export function sizeName(shift: number): string {
  return shift >= 30 ? `${2 ** (shift - 30)}G` : shift >= 20 ? `${2 ** (shift - 20)}M` : `${2 ** (shift - 10)}K`;
}
