// Typed arrays that grow. Where the runtime has resizable ArrayBuffers (ES2024:
// Node 20, current browsers) an array grows in place — a length-tracking view
// over a buffer resized within a reserved maximum — so growth neither copies
// nor doubles the memory held; elsewhere it is copied into a larger array.

type TA = Float64Array | Int32Array | Uint8Array;
type Ctor<T extends TA> = { new (n: number): T; new (b: ArrayBuffer): T; BYTES_PER_ELEMENT: number };

const MAX_BYTES = 2 ** 32;

export function growable<T extends TA>(C: Ctor<T>, n: number, maxBytes = MAX_BYTES): T {
  try {
    const AB = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;
    const buf = new AB(n * C.BYTES_PER_ELEMENT, { maxByteLength: maxBytes });
    if ((buf as { resizable?: boolean }).resizable === true) return new C(buf);
  } catch {
    // no resizable buffers, or the reservation was refused
  }
  return new C(n);
}

// The array with at least n elements, new ones zero; the same object when it
// could grow in place.
export function growTo<T extends TA>(a: T, n: number): T {
  if (a.length >= n) return a;
  const buf = a.buffer as ArrayBuffer & { resizable?: boolean; maxByteLength?: number; resize?(n: number): void };
  const bytes = n * a.BYTES_PER_ELEMENT;
  if (buf.resizable === true && buf.resize !== undefined && bytes <= (buf.maxByteLength as number)) {
    buf.resize(bytes);
    return a;
  }
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
