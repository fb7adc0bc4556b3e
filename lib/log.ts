// The hub's own log: bunyan JSON lines, or short human-readable lines when stdout is a terminal, and
// optionally JSON lines appended to a file (<log.dir>/hub.log, rotated by `log.rotate`), which keeps
// the record when stdout is gone (a closed terminal, a reader that quit). Neither a broken stdout nor a
// broken file throws, and a slow disk never holds more than a bounded amount of the log in memory.
import bunyan from 'bunyan';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import type { LogLevel } from './config/types.js';
import { BoundedWriter, DEFAULT_ROTATE, openRotating, type RotateSettings } from './runtime/log-file.js';
import { queueWrite, safeWrite } from './stdio.js';

export type Logger = bunyan;

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['name', 'hostname', 'pid', 'level', 'msg', 'time', 'v']);

/**
 * Records for stdout: `12:00:01 INFO msg key=value ...` for people reading a terminal, else JSON lines.
 * Records marked `shown` were already put in front of the user another way (an `[ok]`/`[warn]` line on
 * this same output), so stdout skips them; the log file keeps them.
 */
class StdoutStream {
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly pretty: boolean,
  ) {}
  write(record: Record<string, unknown>): void {
    if (record.shown === true) return;
    queueWrite(this.out, this.pretty ? prettyLine(record) : jsonLine(record));
  }
}

/**
 * A record as its JSON line, made once however many streams write it: every request is logged, and
 * on a busy hub making its line twice, through a replacer function, took more of the hub's time than
 * any step of the request itself. JSON.stringify as it is, and only a record it cannot write as it
 * is (a cycle) through bunyan's cycle-safe replacer.
 */
let last: { record: object; line: string } | undefined;
const pick = (record: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, record[k]]));
function jsonLine(record: Record<string, unknown>): string {
  if (last?.record === record) return last.line;
  let text: string;
  try {
    text = JSON.stringify(record);
  } catch {
    try {
      text = JSON.stringify(record, bunyan.safeCycles());
    } catch (err) {
      // Not even so (a BigInt, a getter that throws): a line that says so, never a throw from a log call.
      text = JSON.stringify({ ...pick(record, ['name', 'hostname', 'pid', 'level', 'time', 'v']), msg: `${String(record.msg)} (this record could not be written as JSON: ${(err as Error)?.message ?? String(err)})` });
    }
  }
  last = { record, line: `${text}\n` };
  return last.line;
}

export function prettyLine(record: Record<string, unknown>): string {
  const time = new Date(record.time as string).toTimeString().slice(0, 8);
  const level = LEVEL_NAMES[record.level as number] ?? String(record.level);
  const msg = record.msg === 'request' ? requestText(record) : String(record.msg);
  const shown = record.msg === 'request' ? REQUEST_FIELDS : SKIP_NONE;
  // A field the message already says (a transition's model, from, to and reason) is not repeated.
  const fields = Object.entries(record)
    .filter(([k, v]) => !SKIP.has(k) && !shown.has(k) && v !== undefined && v !== null && !(k === 'at' && typeof v === 'string') && !saidIn(msg, v))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level} ${msg}${fields ? ` ${fields}` : ''}\n`;
}

/** JSON log lines as lines for people (prettyLine); a line that is not JSON stays as it is. */
export function prettyLines(text: string): string {
  return text.replace(/[^\n]+/g, (line) => {
    try {
      return prettyLine(JSON.parse(line) as Record<string, unknown>).trimEnd();
    } catch {
      return line;
    }
  });
}

const SKIP_NONE = new Set<string>();
const REQUEST_FIELDS = new Set(['method', 'path', 'model', 'status', 'ms', 'ttfb_ms', 'cold_start_ms', 'queue_ms', 'bytes_in', 'bytes_out', 'tokens_in', 'tokens_out']);

function saidIn(msg: string, value: unknown): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  const text = String(value);
  if (!text) return false;
  const edge = (c: string | undefined) => c === undefined || !/[\w.-]/.test(c);
  // As a word of its own: "loaded" is said by "unloaded -> loaded", not by "unloaded" alone.
  for (let at = msg.indexOf(text); at >= 0; at = msg.indexOf(text, at + 1)) {
    if (edge(msg[at - 1]) && edge(msg[at + text.length])) return true;
  }
  return false;
}

/** `POST /v1/chat/completions -> 200 demo-small 123 ms (ttfb 12 ms, cold start 800 ms) 1.2 kB in, 3.4 kB out, 10+20 tokens` */
function requestText(r: Record<string, unknown>): string {
  const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : undefined);
  const timing = [
    n('ttfb_ms') !== undefined ? `ttfb ${n('ttfb_ms')} ms` : '',
    n('cold_start_ms') !== undefined ? `cold start ${n('cold_start_ms')} ms` : '',
    n('queue_ms') !== undefined ? `queued ${n('queue_ms')} ms` : '',
  ].filter(Boolean);
  const tokens = n('tokens_in') !== undefined || n('tokens_out') !== undefined ? `, ${n('tokens_in') ?? '?'}+${n('tokens_out') ?? '?'} tokens` : '';
  const bytes = n('bytes_in') !== undefined || n('bytes_out') !== undefined ? ` ${bytesText(n('bytes_in') ?? 0)} in, ${bytesText(n('bytes_out') ?? 0)} out${tokens}` : tokens;
  return `${r.method} ${r.path} -> ${r.status}${r.model ? ` ${r.model}` : ''} ${n('ms')} ms${timing.length ? ` (${timing.join(', ')})` : ''}${bytes}`;
}

const bytesText = (b: number) => (b < 1000 ? `${b} B` : b < 1e6 ? `${(b / 1e3).toFixed(1)} kB` : `${(b / 1e6).toFixed(1)} MB`);

/** JSON lines to a file that may break (a full disk): dropped once it has, or while the disk lags behind. */
class FileStream {
  constructor(private readonly out: BoundedWriter) {}
  write(record: Record<string, unknown>): void {
    this.out.write(jsonLine(record));
  }
}

const files = new Set<BoundedWriter>();

export function createLogger(level: LogLevel, out: NodeJS.WriteStream | Writable = process.stdout, options: { file?: string; rotate?: RotateSettings } = {}): Logger {
  const pretty = 'isTTY' in out && out.isTTY === true;
  const streams: bunyan.Stream[] = [{ level, type: 'raw', stream: new StdoutStream(out, pretty) as unknown as Writable }];
  if (options.file) streams.push({ level, type: 'raw', stream: new FileStream(openLogFile(options.file, options.rotate ?? DEFAULT_ROTATE)) as unknown as Writable });
  return bunyan.createLogger({ name: 'modelhub', serializers: { ...bunyan.stdSerializers, err: serializeError, error: serializeError }, streams });
}

/**
 * bunyan's own `err` serializer passes through anything without a `stack` untouched, and an Error's
 * message and stack are not enumerable: such an error was logged as `"err":{}`. This one always
 * keeps what there is to know (message, name, code, stack, cause), whatever was thrown.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) {
    if (err === null || typeof err !== 'object') return { message: String(err) };
    return { message: String((err as { message?: unknown }).message ?? JSON.stringify(err, bunyan.safeCycles())), value: err };
  }
  const code = (err as NodeJS.ErrnoException).code;
  return {
    message: err.message,
    name: err.name,
    ...(code !== undefined ? { code } : {}),
    stack: err.stack || `${err.name}: ${err.message} (no stack)`,
    ...(err.cause !== undefined && depth < 3 ? { cause: serializeError(err.cause, depth + 1) } : {}),
  };
}

function openLogFile(path: string, rotate: RotateSettings): BoundedWriter {
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch {
    // the open below fails too, and says why
  }
  const stream = openRotating(path, rotate, (err) => safeWrite(process.stderr, `[warn] cannot write the hub log ${path} (${err.message}); logging to stdout only\n`));
  const writer = new BoundedWriter(stream, droppedRecord);
  files.add(writer);
  return writer;
}

/** The record written once the disk has caught up, in the log's own format. */
function droppedRecord(bytes: number): string {
  const msg = `dropped ${bytes} bytes of this log: the disk could not keep up`;
  return `${JSON.stringify({ name: 'modelhub', hostname: hostname(), pid: process.pid, level: 40, msg, dropped_bytes: bytes, time: new Date().toISOString(), v: 0 })}\n`;
}

/** Flushes and closes the log files (bounded), so that the last lines before an exit are kept. */
export async function closeLogFiles(timeoutMs = 1000): Promise<void> {
  const ends = [...files].map((f) => new Promise<void>((resolve) => f.end('', resolve)));
  files.clear();
  await Promise.race([Promise.all(ends), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => bunyan.createLogger({ name: 'modelhub', streams: [] });
