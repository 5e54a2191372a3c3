// arm64 TLB maintenance: a model of arch/arm64/include/asm/tlbflush.h
// (flush_tlb_mm(), flush_tlb_page(), __flush_tlb_range() and its helpers)
// and the tlb_flush() of arch/arm64/include/asm/tlb.h, over the broadcast
// TLBI / DSB hardware of src/core/hw/tlb.ts.
//
// Hardware model. A TLBI ...IS instruction issued by a CPU is queued on that
// CPU (Cpu.tlbiQueue) and takes effect on every CPU's TLB (inner-shareable
// broadcast) only when the issuing CPU executes DSB ISH: dsb() below. Until
// then the old translations remain usable everywhere, which is the latest
// completion point the architecture allows. DSB ISHST (ordering the page-table
// stores before the TLBI) has nothing to do in the model: page-table stores are
// immediately visible to walkers. Counters: one per TLBI instruction issued
// (not per CPU it reaches), one per DSB ISH.
//
// Not modelled: KPTI (arm64_kernel_unmapped_at_el0() false, so __tlbi_user()
// issues nothing and ASIDs are not paired), LPA2's operand encoding (only
// its 64K alignment rule for range starts is), the REPEAT_TLBI erratum, the
// ARMv8.4-TTL hint's effect (the level is recorded in the operation but every
// level is invalidated),
// and mmu_notifier secondary TLBs. Page numbers in the queued records count
// pages of the granule (the range operand's BaseADDR does too; a by-VA
// operand is VA >> 12 in hardware, which names the same page).

import { EV_FLUSH } from "../../events.js";
import { site } from "../../sync.js";
import type { Machine } from "../../machine.js";
import type { MmuGather } from "../../mm/mmu_gather.js";
import type { Mm } from "../../mm/types.js";

// TLBI operations: the opcode of a queued record.
export const TLBI_VALE1IS = 0; // by VA, last level, ASID-tagged
export const TLBI_VAE1IS = 1; // by VA, all levels (walk caches too)
export const TLBI_RVALE1IS = 2; // range, last level (FEAT_TLBIRANGE)
export const TLBI_RVAE1IS = 3; // range, all levels
export const TLBI_ASIDE1IS = 4; // all entries of an ASID
export const TLBI_VMALLE1IS = 5; // all entries
export const TLBI_OP_NAMES = ["VALE1IS", "VAE1IS", "RVALE1IS", "RVAE1IS", "ASIDE1IS", "VMALLE1IS"] as const;

// A queued record is TLBI_RECORD consecutive numbers in Cpu.tlbiQueue:
// [op, asid, first page, pages, ttl]. pages is 1 for a by-VA operation, the
// covered page count for a range; ttl is the level hint (0..3, asm/tlbflush.h
// levels: 3 = PTE) or TLBI_TTL_UNKNOWN.
export const TLBI_RECORD = 5;
export const TLBI_TTL_UNKNOWN = 0x7fffffff; // TLBI_TTL_UNKNOWN (INT_MAX)

// __TLBI_RANGE_PAGES(num, scale)
export function tlbiRangePages(num: number, scale: number): number {
  return (num + 1) * 2 ** (5 * scale + 1);
}
// MAX_TLBI_RANGE_PAGES = __TLBI_RANGE_PAGES(31, 3) = 2^21
export const MAX_TLBI_RANGE_PAGES = tlbiRangePages(31, 3);

// __TLBI_RANGE_NUM(pages, scale): NUM for the largest multiple of
// 2^(5*scale+1) pages not above min(pages, 32 * 2^(5*scale+1)), or -1.
export function tlbiRangeNum(pages: number, scale: number): number {
  const p = Math.min(pages, tlbiRangePages(31, scale));
  return Math.floor(p / 2 ** (5 * scale + 1)) - 1;
}

export interface TlbiOp {
  op: "page" | "range";
  page: number; // first page (VA >> 12) the operation names
  num?: number; // range: NUM field (0..31)
  scale?: number; // range: SCALE field (0..3)
  pages: number; // pages accounted: the stride for a by-VA operation, (NUM+1)*2^(5*SCALE+1) for a range
}

// The operations __flush_tlb_range_op() (asm/tlbflush.h) issues for `pages`
// pages from startPage with stride 2^strideShift bytes: by-VA operations one
// stride apart when range operations are unsupported, one page is left, or
// (lpa2) the start is not 64K aligned, since an LPA2 range operand holds the
// base address in 64K units; otherwise range operations with SCALE from 3
// down, each covering as many pages as NUM (5 bits) allows. Requires pages to
// be a multiple of the stride in pages and, with range operations, at most
// MAX_TLBI_RANGE_PAGES (the caller's __flush_tlb_range_limit_excess()).
export function tlbiRangeOps(startPage: number, pages: number, strideShift: number, rangeSupported: boolean, pageShift = 12, lpa2 = false): TlbiOp[] {
  if (rangeSupported && pages > MAX_TLBI_RANGE_PAGES) throw new RangeError(`${pages} pages exceed MAX_TLBI_RANGE_PAGES`);
  const out: TlbiOp[] = [];
  const stridePages = 2 ** (strideShift - pageShift);
  let page = startPage;
  let left = pages;
  let scale = 3;
  const align = lpa2 ? 2 ** Math.max(0, 16 - pageShift) : 1; // SZ_64K in pages
  while (left > 0) {
    if (!rangeSupported || left === 1 || page % align !== 0) {
      out.push({ op: "page", page, pages: stridePages });
      page += stridePages;
      left -= stridePages;
      continue;
    }
    const num = tlbiRangeNum(left, scale);
    if (num >= 0) {
      const covered = tlbiRangePages(num, scale);
      out.push({ op: "range", page, num, scale, pages: covered });
      page += covered;
      left -= covered;
    }
    scale--;
    if (scale < 0 && left > 1) throw new Error(`model bug: range TLBI loop left ${left} pages`);
  }
  return out;
}

// lpa2_is_enabled(): 52-bit VAs with 4K or 16K pages need FEAT_LPA2 (with
// 64K pages they use FEAT_LVA and the old descriptor format).
function lpa2IsEnabled(m: Machine): boolean {
  return m.config.arm64.vaBits === 52 && m.config.arm64.granule !== 64;
}

// ASID(mm): the hardware ASID of the mm's context id (0 before its first
// switch-in, as the kernel's would be).
function asidOf(m: Machine, mm: Mm): number {
  return mm.asidId % 2 ** m.config.arm64.asidBits;
}

// __tlbi(op, arg) on CPU c: queue the operation until the CPU's next DSB.
function tlbi(m: Machine, c: number, op: number, asid: number, page: number, pages: number, ttl: number): void {
  m.cpus[c]!.tlbiQueue.push(op, asid, page, pages, ttl);
  if ((m.evMask & EV_FLUSH) !== 0) tlbiEvent(m, c, op, asid, page, pages);
  const k = m.counters;
  switch (op) {
    case TLBI_VALE1IS:
      k.tlbiVale1is++;
      break;
    case TLBI_VAE1IS:
      k.tlbiVae1is++;
      break;
    case TLBI_RVALE1IS:
      k.tlbiRvale1is++;
      break;
    case TLBI_RVAE1IS:
      k.tlbiRvae1is++;
      break;
    case TLBI_ASIDE1IS:
      k.tlbiAside1is++;
      break;
    default:
      k.tlbiVmalle1is++;
  }
}

// The TLBI as an event: issued now, complete at the issuer's next DSB.
function tlbiEvent(m: Machine, c: number, op: number, asid: number, page: number, pages: number): void {
  const ps = m.geo.pageSize;
  const whole = op === TLBI_ASIDE1IS || op === TLBI_VMALLE1IS;
  const leaf = op === TLBI_VALE1IS || op === TLBI_RVALE1IS;
  const n = op === TLBI_VALE1IS || op === TLBI_VAE1IS ? 1 : pages;
  m.flushEvent(
    c,
    `tlbi ${(TLBI_OP_NAMES[op] as string).toLowerCase()}`,
    op === TLBI_VMALLE1IS ? -1 : asid,
    whole ? -1 : page * ps,
    whole ? -1 : (page + n) * ps,
    leaf,
  );
}

// dsb(ish) on CPU c: every TLBI this CPU issued since its last DSB completes,
// on all CPUs (broadcast), and the queue empties.
const S_DSB = site("dsb(ish)", "TLBIs issued, not yet complete");

export function dsb(m: Machine, c: number): void {
  m.counters.dsb++;
  const q = m.cpus[c]!.tlbiQueue;
  if (q.length === 0) return;
  // The TLBIs are issued; until the DSB completes, other CPUs may still
  // translate with the entries they target.
  if (m.il) m.il.point(S_DSB);
  if ((m.evMask & EV_FLUSH) !== 0) m.flushEvent(c, "dsb ish", -1, -1, -1, false);
  const cpus = m.cpus;
  for (let r = 0; r < q.length; r += TLBI_RECORD) {
    const op = q[r] as number;
    const asid = q[r + 1] as number;
    const page = q[r + 2] as number;
    const pages = q[r + 3] as number;
    for (let i = 0; i < cpus.length; i++) {
      const t = cpus[i]!.tlb;
      switch (op) {
        case TLBI_VALE1IS:
          t.invalidateVa(page, asid, true);
          break;
        case TLBI_VAE1IS:
          t.invalidateVa(page, asid, false);
          break;
        case TLBI_RVALE1IS:
          t.invalidateRange(page, pages, asid, true);
          break;
        case TLBI_RVAE1IS:
          t.invalidateRange(page, pages, asid, false);
          break;
        case TLBI_ASIDE1IS:
          t.invalidateAsid(asid);
          break;
        default:
          t.invalidateAll();
      }
    }
  }
  q.length = 0;
}

// The body of flush_tlb_mm() on the current CPU: DSB ISHST (nothing to do),
// TLBI ASIDE1IS, DSB ISH. No KPTI, so no second TLBI for the user ASID.
function flushTlbMmOps(m: Machine, mm: Mm): void {
  const c = m.curCpu;
  tlbi(m, c, TLBI_ASIDE1IS, asidOf(m, mm), 0, 0, TLBI_TTL_UNKNOWN);
  dsb(m, c);
}

// flush_tlb_mm() (asm/tlbflush.h)
export function flushTlbMm(m: Machine, mm: Mm): void {
  m.counters.tlbFlushRequests++;
  flushTlbMmOps(m, mm);
}

// __flush_tlb_page_nosync() / flush_tlb_page_nosync() (asm/tlbflush.h): TLBI
// VALE1IS for the page, completion left to a later DSB.
export function flushTlbPageNosync(m: Machine, mm: Mm, addr: number): void {
  m.counters.tlbFlushRequests++;
  tlbi(m, m.curCpu, TLBI_VALE1IS, asidOf(m, mm), Math.floor(addr / m.geo.pageSize), 1, TLBI_TTL_UNKNOWN);
}

// flush_tlb_page() (asm/tlbflush.h): in v6.17 a last-level VALE1IS (the
// page's walk-cache entries stay), then DSB ISH.
export function flushTlbPage(m: Machine, mm: Mm, addr: number): void {
  flushTlbPageNosync(m, mm, addr);
  dsb(m, m.curCpu);
}

// __flush_tlb_range_limit_excess() (asm/tlbflush.h); MAX_DVM_OPS is
// PTRS_PER_PTE.
export function flushTlbRangeLimitExcess(start: number, end: number, pages: number, stride: number, rangeSupported: boolean, maxDvmOps = 512): boolean {
  return (!rangeSupported && end - start >= maxDvmOps * stride) || pages > MAX_TLBI_RANGE_PAGES;
}

// __flush_tlb_range() (sync) and __flush_tlb_range_nosync() (asm/tlbflush.h):
// invalidate [start, end) of mm at the granularity of `stride` bytes, leaf
// entries only when lastLevel, with TTL hint tlbLevel. Too large a range
// becomes flush_tlb_mm() (which completes with its own DSB, even for the
// nosync form; the sync form then adds its trailing DSB, as the kernel does).
export function flushTlbRangeArm64(m: Machine, mm: Mm, start: number, end: number, stride: number, lastLevel: boolean, tlbLevel: number, sync: boolean): void {
  const pf = m.prof;
  if (pf !== null) pf.enter("__flush_tlb_range");
  m.counters.tlbFlushRequests++;
  const c = m.curCpu;
  start = Math.floor(start / stride) * stride; // round_down()
  end = Math.ceil(end / stride) * stride; // round_up()
  const G = m.geo;
  const pages = (end - start) / G.pageSize;
  const range = m.config.arm64.tlbiRange;
  if (flushTlbRangeLimitExcess(start, end, pages, stride, range, G.ptrs)) flushTlbMmOps(m, mm);
  else {
    // __flush_tlb_range_op(vale1is or vae1is, ...)
    const asid = asidOf(m, mm);
    const ops = tlbiRangeOps(start / G.pageSize, pages, Math.log2(stride), range, G.pageShift, lpa2IsEnabled(m));
    const pageOp = lastLevel ? TLBI_VALE1IS : TLBI_VAE1IS;
    const rangeOp = lastLevel ? TLBI_RVALE1IS : TLBI_RVAE1IS;
    for (const o of ops) {
      if (o.op === "page") tlbi(m, c, pageOp, asid, o.page, 1, tlbLevel);
      else tlbi(m, c, rangeOp, asid, o.page, o.pages, tlbLevel);
    }
  }
  if (sync) dsb(m, c);
  if (pf !== null) pf.exit();
}

// Arch.flushTlbRange for generic code, by the stride its caller passes:
// PMD_SHIFT is flush_pmd_tlb_range() and PUD_SHIFT flush_pud_tlb_range() (arm64
// asm/pgtable.h: __flush_tlb_range(vma, start, end, PMD_SIZE / PUD_SIZE,
// false, 2 / 1)); anything else flush_tlb_range() (asm/tlbflush.h:
// __flush_tlb_range(vma, start, end, PAGE_SIZE, false, TLBI_TTL_UNKNOWN)).
// None of them is leaf-only whatever freedTables says: the kernel's
// flush_tlb_range() may follow moved or collapsed page tables.
export function flushTlbRange(m: Machine, mm: Mm, start: number, end: number, strideShift: number, _freedTables: boolean): void {
  const G = m.geo;
  if (strideShift === G.pmdShift) flushTlbRangeArm64(m, mm, start, end, G.pmdSize, false, 2, true);
  else if (strideShift === G.pudShift) flushTlbRangeArm64(m, mm, start, end, G.pudSize, false, 1, true);
  else flushTlbRangeArm64(m, mm, start, end, G.pageSize, false, TLBI_TTL_UNKNOWN, true);
}

// tlb_get_unmap_size() (asm-generic/tlb.h): the smallest level cleared.
function unmapSize(tlb: MmuGather): number {
  const G = tlb.m.geo;
  if (tlb.clearedPtes) return G.pageSize;
  if (tlb.clearedPmds) return G.pmdSize;
  if (tlb.clearedPuds) return G.pudSize;
  if (tlb.clearedP4ds) return G.pudSize * G.ptrs;
  return G.pageSize;
}

// tlb_get_level() (asm/tlb.h): the TTL hint when exactly one level was
// cleared and no table was freed.
export function tlbGetLevel(tlb: MmuGather): number {
  if (tlb.freedTables) return TLBI_TTL_UNKNOWN;
  const p = tlb.clearedPtes;
  const d = tlb.clearedPmds;
  const u = tlb.clearedPuds;
  const f = tlb.clearedP4ds;
  if (p && !(d || u || f)) return 3;
  if (d && !(p || u || f)) return 2;
  if (u && !(p || d || f)) return 1;
  if (f && !(p || d || u)) return 0;
  return TLBI_TTL_UNKNOWN;
}

// tlb_flush() (asm/tlb.h). A full-mm teardown only needs the walk caches
// invalidated when tables were freed: the ASID allocator never hands the ASID
// out again before a full invalidation (context.ts).
export function tlbFlush(m: Machine, tlb: MmuGather): void {
  const lastLevel = !tlb.freedTables;
  const stride = unmapSize(tlb);
  const level = tlbGetLevel(tlb);
  if (tlb.fullmm) {
    if (!lastLevel) flushTlbMm(m, tlb.mm);
    return;
  }
  flushTlbRangeArm64(m, tlb.mm, tlb.start, tlb.end, stride, lastLevel, level, true);
}

// arch_tlbbatch_should_defer() (arch/arm64/include/asm/tlbflush.h): always,
// unless the CPU has the REPEAT_TLBI erratum (not modelled).
export function tlbbatchShouldDefer(_m: Machine, _mm: Mm): boolean {
  return true;
}

// arch_tlbbatch_add_pending(): the leaf TLBIs for the range are issued now
// (__flush_tlb_range_nosync(), stride PAGE_SIZE, level 3) without a DSB, so
// they have not completed; the batch itself holds nothing.
export function tlbbatchAddPending(m: Machine, _batch: Uint8Array, mm: Mm, start: number, end: number): void {
  flushTlbRangeArm64(m, mm, start, end, m.geo.pageSize, true, 3, false);
}

// arch_tlbbatch_flush(): dsb(ish) on this CPU completes every TLBI it issued.
export function tlbbatchFlush(m: Machine, _batch: Uint8Array): void {
  dsb(m, m.curCpu);
}
