/** Errors raised by the trace parsers. No Node APIs. */

export class TraceError extends Error {
  override readonly name = "TraceError";
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** 1-based column (1 when unknown). */
  readonly col: number;
  /** The message without the location prefix. */
  readonly detail: string;
  /** Short machine-readable reason, used as the key of `stats.skippedByReason`. */
  readonly reason: string;

  constructor(file: string, line: number, col: number, message: string, reason = "malformed") {
    const c = Math.max(col, 1);
    super(`${file}:${line}:${c}: ${message}`);
    this.file = file;
    this.line = line;
    this.col = c;
    this.detail = message;
    this.reason = reason;
  }

  /** `file:line:col: message` */
  format(): string {
    return `${this.file}:${this.line}:${this.col}: ${this.detail}`;
  }
}

/** Internal: a parse failure inside a line, turned into a TraceError by the caller that knows file and line. */
export class LineError extends Error {
  readonly col: number;
  readonly reason: string;
  constructor(col: number, message: string, reason: string) {
    super(message);
    this.col = col;
    this.reason = reason;
  }
}
