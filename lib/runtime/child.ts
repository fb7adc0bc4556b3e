// One backend OS process: spawned in its own process group (so stopping it also stops whatever it
// spawned), output appended to the model's log file, the last lines kept in memory for error messages.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { createMask, inheritedSecrets, launchSecrets, type Mask } from '../secrets.js';

export interface SpawnSpec {
  /** The model this process serves (for the state dir's records). */
  model: string;
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  logFile: string;
  /** Written to the log before the process starts, to tell runs apart (secrets in it are masked). */
  banner: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. the binary does not exist). */
  error?: string;
}

const TAIL_LINES = 40;

export class ChildProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<ExitInfo>;
  exit?: ExitInfo;
  private readonly tail: string[] = [];
  private partial = '';
  private readonly log: WriteStream;
  /** The tail ends up in error messages and status: the launch's secrets must not. */
  private readonly mask: Mask;

  constructor(spec: SpawnSpec) {
    mkdirSync(dirname(spec.logFile), { recursive: true });
    this.mask = createMask([...launchSecrets(spec.argv, spec.env), ...inheritedSecrets()]);
    this.log = createWriteStream(spec.logFile, { flags: 'a' });
    this.log.on('error', () => {}); // a broken log file must not take the hub down
    this.log.write(`\n--- ${new Date().toISOString()} ${this.mask(spec.banner)}\n`);
    const child = spawn(spec.argv[0], spec.argv.slice(1), {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      detached: true, // own process group: kill(-pid) reaches grandchildren
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = child.pid;
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        this.remember(chunk.toString('utf8'));
      });
    }
    this.exited = new Promise((resolve) => {
      const done = (info: ExitInfo) => {
        if (this.exit) return;
        this.exit = info;
        this.log.end(`--- exited (${describeExit(info)})\n`);
        resolve(info);
      };
      child.once('error', (err) => done({ code: null, signal: null, error: err.message }));
      child.once('exit', (code, signal) => {
        // Helpers the leader left behind would keep the pipes open; then wait for 'close' (bounded)
        // so that the log tail holds the last words.
        this.signalGroup('SIGKILL');
        const timer = setTimeout(() => done({ code, signal }), 1000);
        child.once('close', () => { clearTimeout(timer); done({ code, signal }); });
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The last lines the process printed (stdout and stderr interleaved). */
  logTail(lines = 10): string[] {
    const all = this.partial ? [...this.tail, this.partial] : this.tail;
    return all.slice(-lines).map(this.mask); // masked here, not per line printed: a chatty child prints a lot
  }

  signalGroup(signal: NodeJS.Signals): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: the group is already gone.
    }
  }

  /** SIGTERM to the group, SIGKILL after `timeoutMs`; resolves once the process has exited. */
  async stop(timeoutMs: number): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.signalGroup('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => { this.signalGroup('SIGKILL'); resolve(); }, timeoutMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  private remember(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) this.tail.push(line.trimEnd());
    if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
    if (this.partial.length > 4096) this.partial = this.partial.slice(-4096);
  }
}

export function describeExit(info: ExitInfo): string {
  if (info.error) return info.error;
  if (info.signal) return `killed by ${info.signal}`;
  return `exit code ${info.code}`;
}
