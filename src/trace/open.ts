/**
 * Node-only helpers: open a trace file (optionally gzipped), detect its format, stream its lines.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { createInterface } from "node:readline";
import { createGunzip } from "node:zlib";
import { TraceError } from "./errors.js";
import type { ParseOptions, TraceFormat, TraceParser } from "./events.js";
import { parsePerfTrace } from "./perftrace.js";
import { parseStrace } from "./strace.js";

export interface OpenedTrace {
  /** All lines of the file, in order (the ones read for detection included). Iterate once. */
  lines: AsyncIterable<string>;
  format: TraceFormat;
}

const PERF_LINE = /^ *(\?|\d+\.\d+) \( *(\d+\.\d+ ms)? *\): /;
const STRACE_LINE =
  /^(?:\[pid +\d+\] |\d+ +)?(?:\d{1,2}:\d\d:\d\d(?:\.\d+)? +| *\d+\.\d+ +)?(?:[A-Za-z_][A-Za-z0-9_]*\(|<\.\.\. [A-Za-z_][A-Za-z0-9_]* resumed>|\+\+\+ |--- |strace: )/;

/** How many non-empty lines detection may look at. */
const DETECT_LINES = 20;

/** Classify a few leading lines; undefined when neither format matches. */
export function detectFormat(sample: readonly string[]): TraceFormat | undefined {
  let perf = 0;
  let strace = 0;
  for (const l of sample) {
    if (l.trim() === "") continue;
    if (PERF_LINE.test(l)) perf++;
    else if (STRACE_LINE.test(l)) strace++;
  }
  if (perf === 0 && strace === 0) return undefined;
  return perf >= strace ? "perftrace" : "strace";
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/**
 * Open a trace: gunzips transparently (by magic bytes, so `.gz` or not), streams lines (memory stays
 * flat), and detects the format from the first non-empty lines. Throws TraceError when the format
 * cannot be recognised.
 */
export async function openTrace(path: string): Promise<OpenedTrace> {
  const gz = await isGzip(path);
  const raw = createReadStream(path);
  const input = gz ? raw.pipe(createGunzip()) : raw;
  if (gz) raw.on("error", (e) => input.destroy(e));
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const it = rl[Symbol.asyncIterator]();
  const head: string[] = [];
  let nonEmpty = 0;
  let done = false;
  while (nonEmpty < DETECT_LINES) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    if (r.value.trim() !== "") nonEmpty++;
  }
  const format = detectFormat(head);
  if (format === undefined) {
    rl.close();
    input.destroy();
    const firstLine = head.findIndex((l) => l.trim() !== "");
    throw new TraceError(path, firstLine < 0 ? 1 : firstLine + 1, 1, "cannot detect the trace format: expected strace or perf trace output");
  }
  async function* lines(): AsyncGenerator<string, void, undefined> {
    try {
      yield* head;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      rl.close();
      input.destroy();
    }
  }
  return { lines: lines(), format };
}

/** Open, detect and parse in one go. */
export async function parseTraceFile(path: string, opts: Partial<Omit<ParseOptions, "file">> = {}): Promise<{ format: TraceFormat; events: TraceParser }> {
  const { lines, format } = await openTrace(path);
  const o: ParseOptions = { file: path, lenient: opts.lenient ?? false };
  if (opts.reorder !== undefined) o.reorder = opts.reorder;
  const events = format === "strace" ? parseStrace(lines, o) : parsePerfTrace(lines, o);
  return { format, events };
}
