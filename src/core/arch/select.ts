// Builds the architecture object a machine runs on.

import type { Arm64Features } from "../machine.js";
import type { Arch } from "./arch.js";
import { arm64 } from "./arm64/index.js";
import { x86_64 } from "./x86/index.js";

export type ArchName = "x86_64" | "arm64";
export const ARCH_NAMES: readonly ArchName[] = ["x86_64", "arm64"];

export function makeArch(name: ArchName, x86Levels: 4 | 5, f: Arm64Features): Arch {
  return name === "arm64" ? arm64(f) : x86_64(x86Levels);
}
