// Typed arrays that grow by copying into a larger array. (Resizable
// ArrayBuffers would grow in place, but V8 11 — Node 20 — runs the hot
// loops about 10% slower over them; measured with npm run bench.)

type TA = Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

// The array with at least n elements, new ones zero.
export function growTo<T extends TA>(a: T, n: number): T {
  if (a.length >= n) return a;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
