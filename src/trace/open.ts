/**
 * Node-only helpers: open a trace file (optionally gzipped), detect its format, stream its lines.
 */
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { Transform } from "node:stream";
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
  /**
   * Lenient mode: where the file stopped being readable (a damaged or truncated gzip stream), once
   * `lines` has ended there; null when the whole file was read.
   */
  readonly damage: TraceError | null;
  /** Bytes of the file read so far and its size (compressed, for a gzip file): for progress. */
  position(): { read: number; size: number };
}

/** A line longer than this is not a trace line (`/dev/zero`, a binary file): refused, not buffered. */
export const MAX_LINE_BYTES = 4 << 20;

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
export async function openTrace(path: string, lenient = false): Promise<OpenedTrace> {
  let size = 0;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new TraceError(path, 1, 1, "is a directory: expected a trace file", "io");
    size = st.size;
  } catch (e) {
    if (e instanceof TraceError) throw e;
    throw new TraceError(path, 1, 1, `cannot read: ${ioReason(e)}`, "io");
  }
  let gz: boolean;
  try {
    gz = await isGzip(path);
  } catch (e) {
    throw new TraceError(path, 1, 1, `cannot read: ${ioReason(e)}`, "io");
  }
  // Lines read so far (for where a stream error happened) and a guard on line length.
  let lineNo = 0;
  let lineBytes = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      let i = chunk.indexOf(10);
      if (i < 0) lineBytes += chunk.length;
      else {
        let last = i;
        for (; i >= 0; i = chunk.indexOf(10, i + 1)) {
          lineNo++;
          last = i;
        }
        lineBytes = chunk.length - last - 1;
      }
      if (lineBytes > MAX_LINE_BYTES) cb(new TraceError(path, lineNo + 1, 1, `line longer than ${MAX_LINE_BYTES >> 20} MiB: not a trace`, "too-long"));
      else cb(null, chunk);
    },
  });
  const raw = createReadStream(path);
  const decoded = gz ? raw.pipe(createGunzip()) : raw;
  if (gz) raw.on("error", (e) => decoded.destroy(e));
  const input = decoded.pipe(guard);
  decoded.on("error", (e: Error) => guard.destroy(e));
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const it = rl[Symbol.asyncIterator]();
  // A stream error as one located line: the zlib or I/O reason, at the line it interrupted.
  const located = (e: unknown, line: number): TraceError =>
    e instanceof TraceError ? e : new TraceError(path, line, 1, `${gz ? "damaged gzip stream" : "read error"}: ${ioReason(e)}`, gz ? "damaged" : "io");
  let read = 0; // lines handed out
  let handed = 0; // their characters, newlines included
  let damage: TraceError | null = null;
  // The next line. A stream error ends the lines in lenient mode (what was
  // readable is the trace; `damage` says where it stopped) once there is
  // something to replay; else it is the error.
  const next = async (): Promise<IteratorResult<string>> => {
    try {
      const r = await it.next();
      if (!r.done) {
        read++;
        handed += r.value.length + 1;
      }
      return r;
    } catch (e) {
      const err = located(e, read + 1);
      if (!lenient || read === 0) throw err;
      damage = err;
      return { done: true, value: undefined };
    }
  };
  const head: string[] = [];
  let nonEmpty = 0;
  let done = false;
  while (nonEmpty < DETECT_LINES) {
    const r = await next();
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
        const r = await next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      rl.close();
      input.destroy();
    }
  }
  return {
    lines: lines(),
    format,
    get damage() {
      return damage;
    },
    // A plain file: the lines handed out (readline reads ahead); a gzip
    // file: the compressed bytes read.
    position: () => ({ read: Math.min(gz ? raw.bytesRead : handed, size), size }),
  };
}

function ioReason(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  if (code === "Z_BUF_ERROR" || (e instanceof Error && e.message === "unexpected end of file")) return "unexpected end of file";
  return e instanceof Error ? (e.message.split("\n")[0] ?? "") : String(e);
}

/** Open, detect and parse in one go. */
export async function parseTraceFile(
  path: string,
  opts: Partial<Omit<ParseOptions, "file">> = {},
): Promise<{ format: TraceFormat; events: TraceParser; opened: OpenedTrace }> {
  const opened = await openTrace(path, opts.lenient ?? false);
  const o: ParseOptions = { file: path, lenient: opts.lenient ?? false };
  if (opts.reorder !== undefined) o.reorder = opts.reorder;
  const events = opened.format === "strace" ? parseStrace(opened.lines, o) : parsePerfTrace(opened.lines, o);
  return { format: opened.format, events, opened };
}
