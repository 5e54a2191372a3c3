// Builds the architecture object a machine runs on.
//
// An Arch is immutable: encoding constants and functions closed over them
// (per-machine state, such as the arm64 ASID allocator, is keyed by the
// Machine). So one object per configuration is shared by every machine of
// the process. That is for V8's sake: generic mm code calls the hooks through
// `m.arch`, and a fresh object per machine (new closures, fresh object
// layouts) makes the next machine's first calls miss what optimised code
// inlined, discarding it in the middle of a run.

import type { Arm64Features } from "../machine.js";
import type { Arch } from "./arch.js";
import { arm64 } from "./arm64/index.js";
import { x86_64 } from "./x86/index.js";

export type ArchName = "x86_64" | "arm64";
export const ARCH_NAMES: readonly ArchName[] = ["x86_64", "arm64"];

const built = new Map<string, Arch>();

export function makeArch(name: ArchName, x86Levels: 4 | 5, f: Arm64Features): Arch {
  // arm64() reads only these features; the rest are read from the machine's
  // config when its code runs.
  const key = name === "arm64" ? `arm64/${f.granule}/${f.vaBits}/${f.hafdbs}` : `x86_64/${x86Levels}`;
  let a = built.get(key);
  if (a === undefined) {
    a = name === "arm64" ? arm64(f) : x86_64(x86Levels);
    built.set(key, a);
  }
  return a;
}
