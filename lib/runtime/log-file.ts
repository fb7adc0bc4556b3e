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
/** What one write to a log file joins at most of the output that waited for it. */
const JOIN_BYTES = 16 * 1024;
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
 * stream; output beyond that is dropped and counted, and once the stream has caught up one line made
 * by `droppedLine` says how much. Never throws, never blocks.
 *
 * One write at a time goes to the stream; what comes meanwhile is joined and goes as one write when
 * it is done. rotating-file-stream writes each chunk it is given to the file on its own (a round trip
 * to libuv's threads and a promise each, even for chunks it gets together), and the hub logs every
 * request: on a busy hub that was ~12 µs of CPU a request, most of what its log cost.
 */
export class BoundedWriter {
  /** Bytes dropped since the last dropped-bytes line. */
  private droppedBytes = 0;
  /** Bytes dropped over the writer's life. */
  totalDropped = 0;
  private broken = false;
  private ended = false;
  /** A write is with the stream: what comes meanwhile waits in `waiting` (with each part's size). */
  private writing = false;
  private waiting: { text: string | Buffer; bytes: number }[] = [];
  private waitingBytes = 0;

  constructor(
    private readonly stream: Writable,
    private readonly droppedLine: (bytes: number) => string,
    private readonly maxPending = MAX_PENDING_BYTES,
  ) {
    stream.on('error', () => this.break());
    stream.on('close', () => this.break());
  }

  /** Whether `bytes` more would fit now (callers skip formatting output that would be dropped). */
  fits(bytes: number): boolean {
    return !this.broken && !this.ended && this.stream.writableLength + this.waitingBytes + bytes <= this.maxPending;
  }

  /**
   * Writes `text` unless it does not fit; returns whether it was written. A dropped text counts as
   * `source` bytes when given (the output it was made from, before any prefix).
   */
  write(text: string | Buffer, source?: number): boolean {
    const bytes = byteLength(text);
    if (!this.fits(bytes)) {
      this.drop(source ?? bytes);
      return false;
    }
    this.rawWrite(text, bytes);
    return true;
  }

  /** Counts output dropped without being offered to `write` (already known not to fit). */
  drop(bytes: number): void {
    if (this.broken || this.ended) return;
    this.droppedBytes += bytes;
    this.totalDropped += bytes;
  }

  /** Writes what waits, then `last` (if it fits; a count of anything dropped first), and ends the stream. */
  end(last = '', done?: () => void): void {
    if (this.ended) {
      done?.();
      return;
    }
    this.ended = true;
    if (this.broken) {
      done?.();
      return;
    }
    try {
      // The stream keeps these in order behind the write under way, JOIN_BYTES at most each.
      while (this.waiting.length) this.stream.write(this.takeWaiting());
      if (this.droppedBytes) this.stream.write(this.droppedLine(this.droppedBytes));
      this.droppedBytes = 0;
      const room = this.stream.writableLength + Buffer.byteLength(last) <= this.maxPending + 4096;
      if (last && room) this.stream.end(last, () => done?.());
      else this.stream.end(() => done?.());
    } catch {
      done?.();
    }
  }

  private break(): void {
    this.broken = true;
    this.waiting = []; // never to be written: not kept either
    this.waitingBytes = 0;
  }

  /** To the stream now, or after the write under way. */
  private rawWrite(text: string | Buffer, bytes: number): void {
    if (!this.writing) return this.send(text);
    this.waiting.push({ text, bytes });
    this.waitingBytes += bytes;
  }

  private send(text: string | Buffer): void {
    this.writing = true;
    try {
      this.stream.write(text, this.written);
    } catch {
      this.break();
    }
  }

  /** The stream took the last write: what waited goes next, and once nothing waits, the count of any dropped. */
  private written = (err?: Error | null): void => {
    this.writing = false;
    if (err) return this.break(); // the stream's 'error' may come later: nothing more is sent meanwhile
    if (this.broken || this.ended) return;
    if (this.waiting.length) this.send(this.takeWaiting());
    else if (this.droppedBytes) {
      const line = this.droppedLine(this.droppedBytes);
      this.droppedBytes = 0;
      this.send(line);
    }
  };

  /**
   * The oldest of what waits, joined: JOIN_BYTES at most (or one part larger than that). A file that
   * rotates by size checks its size after each write, and one large write would carry it far past it.
   */
  private takeWaiting(): string | Buffer {
    let take = 0;
    let bytes = 0;
    while (take < this.waiting.length && (take === 0 || bytes + this.waiting[take].bytes <= JOIN_BYTES)) bytes += this.waiting[take++].bytes;
    const parts = this.waiting.splice(0, take).map((p) => p.text);
    this.waitingBytes -= bytes;
    if (parts.length === 1) return parts[0];
    return parts.every((p) => typeof p === 'string') ? parts.join('') : Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  }
}

const byteLength = (text: string | Buffer) => (typeof text === 'string' ? Buffer.byteLength(text) : text.length);

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
