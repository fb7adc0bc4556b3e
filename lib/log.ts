// The hub's own log: bunyan JSON lines, or short human-readable lines when stdout is a terminal.
import bunyan from 'bunyan';
import type { Writable } from 'node:stream';
import type { LogLevel } from './config/types.js';

export type Logger = bunyan;

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['name', 'hostname', 'pid', 'level', 'msg', 'time', 'v']);

/** Formats a record as `12:00:01 INFO msg key=value ...` for people reading a terminal. */
class PrettyStream {
  constructor(private readonly out: Writable) {}
  write(record: Record<string, unknown>): void {
    const time = new Date(record.time as string).toTimeString().slice(0, 8);
    const fields = Object.entries(record)
      .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    this.out.write(`${time} ${LEVEL_NAMES[record.level as number] ?? record.level} ${record.msg}${fields ? ` ${fields}` : ''}\n`);
  }
}

export function createLogger(level: LogLevel, out: NodeJS.WriteStream | Writable = process.stdout): Logger {
  const pretty = 'isTTY' in out && out.isTTY;
  return bunyan.createLogger({
    name: 'modelhub',
    streams: [pretty ? { level, type: 'raw', stream: new PrettyStream(out) as unknown as Writable } : { level, stream: out }],
  });
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger = (): Logger => bunyan.createLogger({ name: 'modelhub', streams: [] });
