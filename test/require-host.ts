// The host helper (native/ptlab-host.c) cannot be built or run here (no C
// compiler, not Linux x86-64): the tests that need it skip with the reason,
// unless PTLAB_REQUIRE_HOST=1 (set by .ci/run), where it is a failure.

// The reason to pass to t.skip(); throws (failing the test) under
// PTLAB_REQUIRE_HOST=1.
export function hostSkip(reason: string): string {
  if (process.env.PTLAB_REQUIRE_HOST === "1") throw new Error(`PTLAB_REQUIRE_HOST=1 and the host helper is not usable: ${reason}`);
  return `host not usable: ${reason}`;
}
