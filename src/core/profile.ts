// Attribution of the counters to kernel functions (`--by-function`,
// `--folded`): the interface the model calls at the entry and exit of its
// coarse kernel functions (per syscall path, per page-table level, per TLB
// flush; never per entry). Machine.prof is null unless a driver installs a
// profiler (src/report/by-function.ts), so a run without one pays one load
// and one branch per call of those functions. No Node APIs.
//
// Every enter() is matched by an exit() on the paths that return; a kernel
// error (MmError) thrown through a frame leaves it open, and the driver's
// next root frame closes it. Only sequential runs install a profiler: under
// the explorer kernel paths interleave and one stack could not describe them.

export interface FnProfiler {
  // The kernel function `fn` (its C name) starts running on the current path.
  enter(fn: string): void;
  // The innermost function entered returns.
  exit(): void;
}
