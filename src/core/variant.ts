// Asking which historical variant is selected. No Node APIs.
import type { Machine, VARIANTS, VariantName } from "./machine.js";

// Whether the selected value of a historical variant is `value`. Variant
// code asks this where its logic departs from the other values', not once
// at the top of a function, so that `variantHook` sees the paths that reach
// the changed code.
export function variantIs<K extends VariantName>(m: Machine, key: K, value: (typeof VARIANTS)[K][number]): boolean {
  if (m.variantHook !== null) m.variantHook(key, value);
  return m.config.variants[key] === value;
}

// The selected value, for code that dispatches on all of them at once.
export function variantOf<K extends VariantName>(m: Machine, key: K): (typeof VARIANTS)[K][number] {
  const v = m.config.variants[key];
  if (m.variantHook !== null) m.variantHook(key, v);
  return v;
}

// The same question, not reported to variantHook: for an old path's set-up
// (its loop shape, what it batches) when the point where it departs in what
// other CPUs can see is asked with variantIs() further on.
export function variantSelected<K extends VariantName>(m: Machine, key: K, value: (typeof VARIANTS)[K][number]): boolean {
  return m.config.variants[key] === value;
}
