// What a hub keeps in its state_dir so that no backend outlives it unnoticed:
//   runtime.json          this hub: pid, start time, URL, config path, version
//   children/<pid>.json   one per backend process it spawned, removed when that process exits
// A hub killed with SIGKILL cannot clean up after itself, so the next hub on the same state_dir reads
// these files first, stops the backends that are provably the ones recorded, and says so. "Provably"
// matters: pids are recycled, and signalling a stranger's process is worse than leaving an orphan. A
// process is identified by its pid plus the kernel's record of when it started (field 22 of
// /proc/<pid>/stat, in clock ticks after boot) plus the boot id (the tick count restarts at boot).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface HubRecord {
  pid: number;
  start_ticks: string | null;
  boot_id: string | null;
  started_at: string;
  url: string;
  config: string;
  version: string;
}

interface ChildRecord {
  model: string;
  pid: number;
  /** Backends are spawned detached, so each leads its own process group: pgid = pid. */
  pgid: number;
  start_ticks: string | null;
  boot_id: string | null;
  hub_pid: number;
  hub_start_ticks: string | null;
  spawned_at: string;
}

export interface StateDirOptions {
  /** One line a user understands, for each leftover found (and for trouble with the files). */
  warn(message: string): void;
  /** How long a leftover gets between SIGTERM and SIGKILL (default 10 s). */
  stopTimeoutMs?(model: string): number;
}

const BOOT_ID = readOrUndefined('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
/** Without /proc (not Linux) processes cannot be identified: records are kept, but never acted on. */
const HAS_PROC = BOOT_ID !== null;

export class StateDir {
  private readonly children = new Map<number, ChildRecord>();
  private readonly self = { pid: process.pid, start_ticks: startTicks(process.pid) ?? null, boot_id: BOOT_ID };

  private constructor(
    readonly dir: string,
    private readonly options: StateDirOptions,
  ) {}

  /**
   * Takes over `dir`: throws (touching nothing) if a hub that is still running uses it; otherwise
   * stops every backend an earlier hub left running, with one warning each, and removes its records.
   */
  static async open(dir: string, options: StateDirOptions): Promise<StateDir> {
    const state = new StateDir(dir, options);
    try {
      mkdirSync(state.childDir, { recursive: true });
    } catch (err) {
      throw new Error(`cannot use state_dir ${dir}: ${(err as Error).message}; fix its permissions or set state_dir in the config to a writable folder`);
    }
    state.refuseIfTaken();
    await Promise.all(state.leftovers().map((rec) => state.reap(rec)));
    rmSync(state.runtimeFile, { force: true });
    return state;
  }

  /** Writes runtime.json for this hub (once it knows its URL). */
  announce(info: { url: string; config: string; version: string }): void {
    const record: HubRecord = { ...this.self, started_at: new Date(performance.timeOrigin).toISOString(), ...info };
    writeAtomically(this.runtimeFile, record);
  }

  /** Records a backend this hub just spawned. Never throws: a failure is warned about. */
  recordChild(model: string, pid: number): void {
    const start = startTicks(pid);
    if (start === undefined && HAS_PROC) return; // already gone: nothing to clean up later
    const record: ChildRecord = {
      model, pid, pgid: pid, start_ticks: start ?? null, boot_id: BOOT_ID,
      hub_pid: this.self.pid, hub_start_ticks: this.self.start_ticks, spawned_at: new Date().toISOString(),
    };
    this.children.set(pid, record);
    try {
      writeAtomically(this.childFile(pid), record);
    } catch (err) {
      this.options.warn(`cannot record model ${model} (pid ${pid}) in ${this.childDir}: ${(err as Error).message}; if this hub is killed hard, stop that process yourself`);
    }
  }

  /** Removes a backend's record once its process has exited. */
  forgetChild(pid: number): void {
    this.children.delete(pid);
    rmSync(this.childFile(pid), { force: true });
  }

  /** SIGKILL to the process group of every backend still recorded: the last resort before exiting. */
  killChildren(): void {
    for (const rec of this.children.values()) {
      // These are this hub's own children, but one that has just exited may already have been reaped.
      const ours = !HAS_PROC || isSameProcess(rec);
      if (!ours || signalGroup(rec.pgid, 'SIGKILL') !== 'EPERM') this.forgetChild(rec.pid);
    }
  }

  /** A clean shutdown: removes runtime.json (if it is still this hub's). */
  release(): void {
    if (this.read<HubRecord>(this.runtimeFile)?.pid === this.self.pid) rmSync(this.runtimeFile, { force: true });
  }

  // ---- taking over ------------------------------------------------------------------------------

  private get runtimeFile(): string {
    return join(this.dir, 'runtime.json');
  }

  private get childDir(): string {
    return join(this.dir, 'children');
  }

  private childFile(pid: number): string {
    return join(this.childDir, `${pid}.json`);
  }

  private refuseIfTaken(): void {
    const hub = this.read<HubRecord>(this.runtimeFile);
    if (hub && isSameProcess(hub)) throw this.taken(hub.pid, hub.url);
    // runtime.json may have been deleted under a running hub: the records of its children name it too.
    const owner = this.records().find((r) => isSameProcess({ pid: r.hub_pid, start_ticks: r.hub_start_ticks, boot_id: r.boot_id }));
    if (owner) throw this.taken(owner.hub_pid);
  }

  private taken(pid: number, url?: string): Error {
    return new Error(
      `another hub (pid ${pid}${url ? `, ${url}` : ''}) is running with state_dir ${this.dir}; ` +
        `stop it first (kill ${pid}${url ? `, or POST ${url}/hub/api/shutdown` : ''}), or give this hub another state_dir`,
    );
  }

  /** Records of backends still running; stale records (process gone, or pid reused) are removed. */
  private leftovers(): ChildRecord[] {
    const found: ChildRecord[] = [];
    for (const rec of this.records()) {
      if (isSameProcess(rec)) found.push(rec);
      else if (rec.start_ticks === null && alive(rec.pid)) {
        // No /proc on this system: the pid may or may not be the backend; never signal a guess.
        this.options.warn(`model ${rec.model} (pid ${rec.pid}) may have been left running by an earlier hub that did not stop cleanly; this system cannot confirm it is the same process, so check it and stop it yourself`);
      } else rmSync(this.childFile(rec.pid), { force: true });
    }
    return found;
  }

  /** SIGTERM to the group, SIGKILL after the model's stop timeout; then the record goes. */
  private async reap(rec: ChildRecord): Promise<void> {
    const what = `model ${rec.model} (pid ${rec.pid}) was still running, left over by an earlier hub (pid ${rec.hub_pid}) that did not stop cleanly`;
    const timeoutMs = this.options.stopTimeoutMs?.(rec.model) ?? 10_000;
    if (signalGroup(rec.pgid, 'SIGTERM') === 'EPERM') {
      return this.options.warn(`${what}; it is not this user's to stop, so stop it yourself (kill -TERM -${rec.pgid})`);
    }
    const exited = await until(() => !isSameProcess(rec), timeoutMs);
    // Once the leader is gone, whatever it left in its group goes too (as for the hub's own children).
    signalGroup(rec.pgid, 'SIGKILL');
    if (!exited) await until(() => !isSameProcess(rec), 2000);
    rmSync(this.childFile(rec.pid), { force: true });
    this.options.warn(`${what}; stopped it${exited ? '' : ` (SIGKILL after ${timeoutMs / 1000}s)`}`);
  }

  private records(): ChildRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.childDir).filter((n) => /^\d+\.json$/.test(n));
    } catch {
      return [];
    }
    return names.flatMap((n) => this.read<ChildRecord>(join(this.childDir, n)) ?? []);
  }

  private read<T>(path: string): T | undefined {
    const text = readOrUndefined(path);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      this.options.warn(`ignoring ${path}: it is not valid JSON (delete it if it is left over)`);
      return undefined;
    }
  }
}

// ---- processes ------------------------------------------------------------------------------------

/** Field 22 of /proc/<pid>/stat, or undefined when there is no such live process (or no /proc). */
function startTicks(pid: number): string | undefined {
  const stat = readOrUndefined(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Field 2 is the command name in parentheses and may itself hold spaces and ')': split after the last.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // exited, not yet reaped by its parent
  return fields[19];
}

/** The recorded process is still running: same pid, same boot, same start time. */
function isSameProcess(rec: { pid: number; start_ticks: string | null; boot_id: string | null }): boolean {
  return rec.start_ticks !== null && rec.boot_id === BOOT_ID && startTicks(rec.pid) === rec.start_ticks;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): 'ok' | 'ESRCH' | 'EPERM' {
  try {
    process.kill(-pgid, signal);
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? 'EPERM' : 'ESRCH';
  }
}

/** Polls `done` (these processes are not our children: there is no exit event to wait for). */
async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(50, delay * 2);
  }
  return true;
}

// ---- files ----------------------------------------------------------------------------------------

/** Temp file + rename: a reader (or a hub killed mid-write) never sees half a file. */
function writeAtomically(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

// ---- reading, for the CLI -------------------------------------------------------------------------

export interface RuntimeInfo {
  pid: number;
  url: string;
  config: string;
  version: string;
  started_at: string;
  /** The recorded hub process is still the one running (same pid and start time): not a stale file. */
  alive: boolean;
}

/** The hub recorded in `dir`'s runtime.json, or undefined when there is none (read-only). */
export function readRuntime(dir: string): RuntimeInfo | undefined {
  const text = readOrUndefined(join(dir, 'runtime.json'));
  if (text === undefined) return undefined;
  let rec: HubRecord;
  try {
    rec = JSON.parse(text) as HubRecord;
  } catch {
    return undefined; // half a file cannot happen (it is renamed into place); anything else is not ours
  }
  if (typeof rec.pid !== 'number' || typeof rec.url !== 'string') return undefined;
  // Without /proc, a live pid is the best evidence there is.
  const running = HAS_PROC ? isSameProcess(rec) : rec.start_ticks === null && alive(rec.pid);
  return { pid: rec.pid, url: rec.url, config: rec.config, version: rec.version, started_at: rec.started_at, alive: running };
}

/** The process with this pid is gone (or a zombie): what the CLI waits for after a shutdown. */
export function processGone(pid: number): boolean {
  if (HAS_PROC) return startTicks(pid) === undefined;
  return !alive(pid);
}
