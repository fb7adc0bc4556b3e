// The GPUs and who holds their memory, from `nvidia-smi` when it is on PATH. Two queries: every device
// (index, uuid, name, total and used MiB) and every compute process (its GPU's uuid, pid, used MiB).
// Asked at most once per `ttlMs` however many status reads and scrapes come in (one query in flight,
// shared), with a timeout. Without nvidia-smi there is simply no GPU view: one line in the log, then
// silence, and a look on PATH again a minute later (drivers get installed).
//
// nvidia-smi's "CSV" is not RFC 4180: fields are separated by ", " and never quoted, and a value it
// cannot tell is "[N/A]", "[Not Supported]" or similar. So a strict parser of its own shape is used.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const MiB = 2 ** 20;

export interface GpuDevice {
  index: number;
  uuid: string;
  name: string;
  /** Bytes; null where the driver does not tell ("[N/A]"). */
  total: number | null;
  used: number | null;
}

export interface GpuProcess {
  /** The device's uuid (match with GpuDevice.uuid). */
  gpu: string;
  pid: number;
  /** Bytes; null where the driver does not tell (e.g. no permission to see another user's process). */
  used: number | null;
}

export interface GpuSnapshot {
  devices: GpuDevice[];
  processes: GpuProcess[];
  /** When it was read (ms since the epoch). */
  at: number;
}

export const DEVICE_QUERY = ['--query-gpu=index,uuid,name,memory.total,memory.used', '--format=csv,noheader,nounits'];
export const PROCESS_QUERY = ['--query-compute-apps=gpu_uuid,pid,used_memory', '--format=csv,noheader,nounits'];

/** A MiB figure: "24564", "24564 MiB" (a driver that ignores nounits), or null for "[N/A]" and kin. */
function mib(field: string, what: string): number | null {
  const v = field.trim();
  if (/^\[.*\]$/.test(v) || v === 'N/A') return null;
  const m = /^(\d+(?:\.\d+)?)(?:\s*MiB)?$/i.exec(v);
  if (!m) throw new Error(`${what} "${v}" is not a number of MiB`);
  return Math.round(Number(m[1]) * MiB);
}

const lines = (text: string) => text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !/^no running (compute )?processes found$/i.test(l));

function whole(field: string, what: string): number {
  const v = field.trim();
  if (!/^\d+$/.test(v)) throw new Error(`${what} "${v}" is not a whole number`);
  return Number(v);
}

/** Lines of `index, uuid, name, total, used`; a name may itself hold ", ". Throws naming the bad line. */
export function parseDevices(text: string): GpuDevice[] {
  return lines(text).map((line) => {
    const f = line.split(', ');
    try {
      if (f.length < 5) throw new Error(`expected 5 fields, got ${f.length}`);
      return { index: whole(f[0], 'index'), uuid: f[1].trim(), name: f.slice(2, -2).join(', ').trim(), total: mib(f.at(-2)!, 'memory.total'), used: mib(f.at(-1)!, 'memory.used') };
    } catch (err) {
      throw new Error(`unexpected line from nvidia-smi --query-gpu: "${line}" (${(err as Error).message})`);
    }
  });
}

/** Lines of `gpu_uuid, pid, used_memory`. Throws naming the bad line. */
export function parseProcesses(text: string): GpuProcess[] {
  return lines(text).map((line) => {
    const f = line.split(', ');
    try {
      if (f.length !== 3) throw new Error(`expected 3 fields, got ${f.length}`);
      return { gpu: f[0].trim(), pid: whole(f[1], 'pid'), used: mib(f[2], 'used_memory') };
    } catch (err) {
      throw new Error(`unexpected line from nvidia-smi --query-compute-apps: "${line}" (${(err as Error).message})`);
    }
  });
}

export interface GpuProbeOptions {
  /** Said once when nvidia-smi is missing, and once when it fails (until it answers again). */
  info(message: string): void;
  warn(message: string): void;
  command?: string;
  /** A snapshot this fresh is reused (default 1 s). */
  ttlMs?: number;
  /** One nvidia-smi run may take this long (default 3 s). */
  timeoutMs?: number;
}

/**
 * After nvidia-smi was not found, or hung (status reads wait for it: a hung driver must not slow
 * every one), look again this much later; after another failure, sooner.
 */
const MISSING_RETRY_MS = 60_000;
const FAILED_RETRY_MS = 5_000;

class TimedOut extends Error {}

export class GpuProbe {
  private snapshot?: GpuSnapshot;
  private inFlight?: Promise<GpuSnapshot | undefined>;
  private nextTry = 0;
  private state: 'unknown' | 'ok' | 'missing' | 'failed' = 'unknown';
  /** How many times nvidia-smi was run (each read is two runs). */
  runs = 0;

  constructor(private readonly options: GpuProbeOptions) {}

  /** A snapshot no older than the ttl, or undefined when there is no working nvidia-smi. */
  read(): Promise<GpuSnapshot | undefined> {
    const now = Date.now();
    if (this.state === 'ok' && this.snapshot && now - this.snapshot.at < (this.options.ttlMs ?? 1000)) return Promise.resolve(this.snapshot);
    if ((this.state === 'missing' || this.state === 'failed') && now < this.nextTry) return Promise.resolve(undefined);
    return (this.inFlight ??= this.query().finally(() => (this.inFlight = undefined)));
  }

  private async query(): Promise<GpuSnapshot | undefined> {
    try {
      // Looked up without spawning: a fork of a hub holding large bodies is not free, and most
      // machines have no nvidia-smi at all.
      if (!onPath(this.options.command ?? 'nvidia-smi')) throw Object.assign(new Error('not found'), { code: 'ENOENT' });
      const [devices, processes] = await Promise.all([this.run(DEVICE_QUERY).then(parseDevices), this.run(PROCESS_QUERY).then(parseProcesses)]);
      if (this.state === 'failed') this.options.info('nvidia-smi answers again: the GPU view is back');
      this.state = 'ok';
      this.snapshot = { devices, processes, at: Date.now() };
      return this.snapshot;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') {
        if (this.state !== 'missing') this.options.info('no nvidia-smi on PATH: no GPU memory is shown or measured (only host RSS)');
        this.state = 'missing';
        this.nextTry = Date.now() + MISSING_RETRY_MS;
      } else {
        const retryMs = err instanceof TimedOut ? MISSING_RETRY_MS : FAILED_RETRY_MS;
        if (this.state !== 'failed') this.options.warn(`nvidia-smi failed (${e.message.trim()}); the GPU view is off until it answers again (tried every ${retryMs / 1000} s)`);
        this.state = 'failed';
        this.nextTry = Date.now() + retryMs;
      }
      return undefined;
    }
  }

  private run(args: string[]): Promise<string> {
    this.runs++;
    const command = this.options.command ?? 'nvidia-smi';
    return new Promise((resolve, reject) => {
      execFile(command, args, { timeout: this.options.timeoutMs ?? 3000, maxBuffer: 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return reject(err);
        if (err.killed) return reject(new TimedOut(`${command} ${args[0]}: no answer within ${(this.options.timeoutMs ?? 3000) / 1000} s`));
        reject(new Error(`${command} ${args[0]}: ${`${stderr.trim() || stdout.trim() || err.message}`.split('\n')[0]}`));
      });
    });
  }
}

/** Whether `command` names an executable file: a path, or a name in one of PATH's folders. */
function onPath(command: string): boolean {
  const dirs = command.includes('/') ? [''] : (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  return dirs.some((dir) => {
    try {
      accessSync(dir ? join(dir, command) : command, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Bytes of GPU memory the given pids hold, per device uuid; empty when none. */
export function gpuBytesOf(snapshot: GpuSnapshot, pids: readonly number[]): Map<string, number> {
  const mine = new Set(pids);
  const per = new Map<string, number>();
  for (const p of snapshot.processes) if (mine.has(p.pid) && p.used !== null) per.set(p.gpu, (per.get(p.gpu) ?? 0) + p.used);
  return per;
}
