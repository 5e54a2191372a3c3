// The model's front door for drivers (runner, replay, explorer, tests):
// a machine with the invariant checks that ride on its event stream.

import type { Arch } from "./arch/arch.js";
import { installChecks } from "./check.js";
import { Machine, type MachineConfig } from "./machine.js";

// new Machine() plus the checks that run inside kernel paths (frames freed
// under a live translation, pins given back); they report only while
// config.checkInvariants is on.
export function newMachine(arch: Arch, config: MachineConfig): Machine {
  const m = new Machine(arch, config);
  installChecks(m);
  return m;
}
