// Command-line options of the bench scripts: node's parseArgs(), with an
// unknown or malformed option reported in one line and exit code 2 (bad
// input), never a stack trace.

import { type ParseArgsConfig, parseArgs } from "node:util";

export function benchArgs<T extends ParseArgsConfig>(config: T, usage: string): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    process.stderr.write(`${(e as Error).message.split("\n")[0]}\nusage: ${usage}\n`);
    process.exit(2);
  }
}
