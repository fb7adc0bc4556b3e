// Log files that stay bounded on disk and never block the hub: rotation (rotating-file-stream, with
// `log.rotate`), a bounded amount of output waiting for the disk (the rest is dropped and counted), and
// model output stamped line by line. Used for the model logs (child.ts) and the hub log (log.ts).
import { StringDecoder } from 'node:string_decoder';
import type { Writable } from 'node:stream';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';

export interface RotateSettings {
  sizeBytes: number;
  intervalMs: number;
  keep: number;
  compress: boolean;
}

/** The config's defaults (`log.rotate: { size: 10MiB, interval: 1d, keep: 7, compress: true }`), for callers that give none. */
export const DEFAULT_ROTATE: RotateSettings = { sizeBytes: 10 * 2 ** 20, intervalMs: 24 * 3600 * 1000, keep: 7, compress: true };

/** Writes not yet on disk, per file, before new output is dropped. */
export const MAX_PENDING_BYTES = 4 * 2 ** 20;
/** A line without a newline is written (as a line) once it is this long. */
export const MAX_LINE_BYTES = 64 * 1024;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const DIVIDERS_OF_60 = [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30];
const DIVIDERS_OF_24 = [1, 2, 3, 4, 6, 8, 12];

/**
 * rotating-file-stream's interval: whole days, or hours/minutes/seconds that divide a day/hour/minute
 * (it rotates on those boundaries). Anything else becomes the longest such interval not above it
 * (90m → 1h; under a second → 1s). 0 → no interval.
 */
export function rfsInterval(ms: number): string | undefined {
  if (!(ms > 0)) return undefined;
  if (ms >= DAY) return `${Math.floor(ms / DAY)}d`;
  const candidates: Array<[number, string]> = [
    ...DIVIDERS_OF_24.map((n) => [n * HOUR, `${n}h`] as [number, string]),
    ...DIVIDERS_OF_60.map((n) => [n * MINUTE, `${n}m`] as [number, string]),
    ...DIVIDERS_OF_60.map((n) => [n * SECOND, `${n}s`] as [number, string]),
  ].sort((a, b) => b[0] - a[0]);
  return (candidates.find(([len]) => len <= ms) ?? [SECOND, '1s'])[1];
}

/**
 * Opens `file` for appending through rotating-file-stream, the classic logrotate way: the live file
 * keeps its name; when it passes `sizeBytes` (or at each `intervalMs` boundary) it becomes `<file>.1`
 * (`<file>.1.gz` when compressed), `.1` becomes `.2` and so on; only `keep` rotated files are kept.
 * Errors go to `onError` (once the stream has failed it is closed: later writes are dropped).
 */
export function openRotating(file: string, rotate: RotateSettings, onError: (err: Error) => void): RotatingFileStream {
  const interval = rfsInterval(rotate.intervalMs);
  const stream = createStream(file, {
    size: `${Math.max(1, Math.floor(rotate.sizeBytes))}B`,
    ...(interval ? { interval } : {}),
    rotate: Math.max(1, Math.floor(rotate.keep)),
    ...(rotate.compress ? { compress: 'gzip' } : {}),
  });
  let told = false;
  stream.on('error', (err: Error) => {
    if (told) return;
    told = true;
    onError(err);
  });
  stream.on('warning', () => {}); // e.g. a rotated file that vanished before it could be removed
  return stream;
}

/**
 * A writer in front of a stream that may be slow or broken: at most `maxPending` bytes wait for the
 * stream; output beyond that is dropped and counted, and once the stream has caught up (drain) one
 * line made by `droppedLine` says how much. Never throws, never blocks.
 */
export class BoundedWriter {
  /** Bytes dropped since the last dropped-bytes line. */
  private droppedBytes = 0;
  /** Bytes dropped over the writer's life. */
  totalDropped = 0;
  private broken = false;
  private ended = false;

  constructor(
    private readonly stream: Writable,
    private readonly droppedLine: (bytes: number) => string,
    private readonly maxPending = MAX_PENDING_BYTES,
  ) {
    stream.on('error', () => { this.broken = true; });
    stream.on('close', () => { this.broken = true; });
    stream.on('drain', () => this.reportDropped());
  }

  /** Whether `bytes` more would fit now (callers skip formatting output that would be dropped). */
  fits(bytes: number): boolean {
    return !this.broken && !this.ended && this.stream.writableLength + bytes <= this.maxPending;
  }

  /**
   * Writes `text` unless it does not fit; returns whether it was written. A dropped text counts as
   * `source` bytes when given (the output it was made from, before any prefix).
   */
  write(text: string | Buffer, source?: number): boolean {
    const bytes = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    if (!this.fits(bytes)) {
      this.drop(source ?? bytes);
      return false;
    }
    this.rawWrite(text);
    return true;
  }

  /** Counts output dropped without being offered to `write` (already known not to fit). */
  drop(bytes: number): void {
    if (this.broken || this.ended) return;
    this.droppedBytes += bytes;
    this.totalDropped += bytes;
  }

  /** Writes `last` (if it fits; a count of anything dropped first) and ends the stream. */
  end(last = '', done?: () => void): void {
    if (this.ended) {
      done?.();
      return;
    }
    if (!this.broken) this.reportDropped();
    this.ended = true;
    if (this.broken) {
      done?.();
      return;
    }
    try {
      const room = this.stream.writableLength + Buffer.byteLength(last) <= this.maxPending + 4096;
      if (last && room) this.stream.end(last, () => done?.());
      else this.stream.end(() => done?.());
    } catch {
      done?.();
    }
  }

  private reportDropped(): void {
    if (this.droppedBytes === 0 || this.broken) return;
    const line = this.droppedLine(this.droppedBytes);
    this.droppedBytes = 0;
    this.rawWrite(line); // small, and the stream has just drained
  }

  private rawWrite(text: string | Buffer): void {
    try {
      this.stream.write(text);
    } catch {
      this.broken = true;
    }
  }
}

/**
 * Splits one output stream (a child's stdout or stderr) into lines, each prefixed with the time and
 * the stream's name: `2026-12-01T09:00:00.123Z stderr some line`. A partial line waits for its
 * newline, up to MAX_LINE_BYTES, then is written as a line of its own.
 */
export class LineStamper {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  /** After output was dropped: the rest of the line it cut is dropped too, so lines stay whole. */
  private skipToNewline = false;

  constructor(readonly name: string, private readonly maxLine = MAX_LINE_BYTES) {}

  /** The complete lines in `chunk` (with what came before it), stamped; '' when there are none yet. */
  push(chunk: Buffer | string, now = new Date()): string {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (this.skipToNewline) {
      const nl = text.indexOf('\n');
      if (nl < 0) return '';
      text = text.slice(nl + 1);
      this.skipToNewline = false;
    }
    const prefix = `${now.toISOString()} ${this.name} `;
    const last = text.lastIndexOf('\n');
    if (last < 0) {
      this.partial += text;
      if (this.partial.length < this.maxLine) return '';
      const line = `${prefix}${this.partial}\n`;
      this.partial = '';
      return line;
    }
    const complete = this.partial + text.slice(0, last);
    this.partial = text.slice(last + 1);
    let out = `${prefix}${complete.replaceAll('\n', `\n${prefix}`)}\n`;
    if (this.partial.length >= this.maxLine) {
      out += `${prefix}${this.partial}\n`;
      this.partial = '';
    }
    return out;
  }

  /**
   * Output was dropped: forgets the partial line, and unless the dropped output ended a line, the rest
   * of the line still to come. Returns the partial line's size (dropped too).
   */
  cut(droppedEndedLine: boolean): number {
    const bytes = Buffer.byteLength(this.partial);
    this.partial = '';
    this.skipToNewline = !droppedEndedLine;
    return bytes;
  }

  /** Whatever partial line is left, stamped, as a final line ('' when none). */
  flush(now = new Date()): string {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    return rest ? `${now.toISOString()} ${this.name} ${rest}\n` : '';
  }
}

/** A line the hub writes into a model's log (banner, exit, dropped output). */
export const hubLine = (text: string, now = new Date()): string => `${now.toISOString()} hub --- ${text}\n`;
