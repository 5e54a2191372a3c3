// Typed arrays of machines the explorer has finished with, for the next
// machine of the same shape. An exploration builds a machine for every
// execution (tens per hunt case); without reuse their page-table chunks,
// frame arrays and TLBs (0.7 to 4.5 MB a machine) were allocated for each,
// about a sixth of a hunt's profile with the garbage collection they caused
// (reuse saves about a tenth of its CPU time). Per thread: each worker has
// its own module instance. No Node APIs.

type Typed = Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;
type Ctor<T extends Typed> = new (n: number) => T;

// At most this many arrays of one type and length wait here: enough for the
// machines of one execution, never a leak.
const KEEP = 64;
// By constructor, then by length.
const pools = new Map<unknown, Map<number, Typed[]>>();

// An array of n elements, all zero: a kept one when there is one.
export function takeArray<T extends Typed>(ctor: Ctor<T>, n: number): T {
  const a = pools.get(ctor)?.get(n)?.pop();
  if (a === undefined) return new ctor(n);
  a.fill(0);
  return a as T;
}

// Gives arrays back; the caller must not use them again.
export function giveArrays(...arrays: Typed[]): void {
  for (const a of arrays) {
    let byLen = pools.get(a.constructor);
    if (byLen === undefined) pools.set(a.constructor, (byLen = new Map()));
    let l = byLen.get(a.length);
    if (l === undefined) byLen.set(a.length, (l = []));
    if (l.length < KEEP) l.push(a);
  }
}
