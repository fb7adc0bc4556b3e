// One backend OS process: spawned in its own process group (so stopping it also stops whatever it
// spawned), output appended to the model's log file (rotated, each line stamped with the time and
// stdout/stderr, see log-file.ts), the last lines kept in memory for error messages.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createMask, inheritedSecrets, launchSecrets, type Mask } from '../secrets.js';
import { BoundedWriter, DEFAULT_ROTATE, hubLine, LineStamper, openRotating, type RotateSettings } from './log-file.js';

export interface SpawnSpec {
  /** The model this process serves (for the state dir's records). */
  model: string;
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  logFile: string;
  /** Written to the log before the process starts, to tell runs apart (secrets in it are masked). */
  banner: string;
  /** `log.rotate` for the log file. */
  rotate?: RotateSettings;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. the binary does not exist). */
  error?: string;
}

const TAIL_LINES = 40;
const REMEMBER_BYTES = 16 * 1024;

export class ChildProcess {
  readonly pid: number | undefined;
  readonly exited: Promise<ExitInfo>;
  exit?: ExitInfo;
  private readonly tail: string[] = [];
  private partial = '';
  private outputListeners: ((text: string) => void)[] = [];
  private readonly outputTaps = new Set<(text: string) => void>();
  outputChunks = 0;
  private readonly log: BoundedWriter;
  /** The tail ends up in error messages and status: the launch's secrets must not. */
  private readonly mask: Mask;

  constructor(spec: SpawnSpec) {
    mkdirSync(dirname(spec.logFile), { recursive: true });
    this.mask = createMask([...launchSecrets(spec.argv, spec.env), ...inheritedSecrets()]);
    // A broken log file must not take the hub down: its errors only stop the writing.
    const file = openRotating(spec.logFile, spec.rotate ?? DEFAULT_ROTATE, () => {});
    this.log = new BoundedWriter(file, (bytes) => hubLine(`dropped ${bytes} bytes of output: the log file could not keep up`));
    this.log.write(hubLine(this.mask(spec.banner)));
    const child = spawn(spec.argv[0], spec.argv.slice(1), {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      detached: true, // own process group: kill(-pid) reaches grandchildren
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = child.pid;
    const stampers: LineStamper[] = [];
    for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]] as const) {
      const stamper = new LineStamper(name);
      stampers.push(stamper);
      stream.on('data', (chunk: Buffer) => {
        this.outputChunks++;
        const text = chunk.toString('utf8');
        if (this.outputListeners.length > 0) this.notifyOutput(text);
        for (const tap of this.outputTaps) tap(text);
        this.remember(text);
        // Over the bound, drop the chunk before spending any work on it (a flood costs the least).
        // The stamped lines are longer than the chunk: write() checks them again (and drops them whole).
        if (!this.log.fits(chunk.length)) {
          this.log.drop(chunk.length + stamper.cut(chunk[chunk.length - 1] === 0x0a));
          return;
        }
        const lines = stamper.push(chunk);
        if (lines) this.log.write(lines, chunk.length);
      });
    }
    this.exited = new Promise((resolve) => {
      const done = (info: ExitInfo) => {
        if (this.exit) return;
        this.exit = info;
        for (const stamper of stampers) {
          const rest = stamper.flush();
          if (rest) this.log.write(rest);
        }
        this.log.end(hubLine(`exited (${describeExit(info)})`));
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

  /** Every piece of output from now on, as text, until the returned function is called (progress reading). */
  onOutput(listener: (text: string) => void): () => void {
    this.outputTaps.add(listener);
    return () => this.outputTaps.delete(listener);
  }

  onNextOutput(listener: (text: string) => void): () => void {
    this.outputListeners.push(listener);
    return () => { this.outputListeners = this.outputListeners.filter((l) => l !== listener); };
  }

  private notifyOutput(text: string): void {
    const listeners = this.outputListeners;
    this.outputListeners = [];
    for (const listener of listeners) listener(text);
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
    if (text.length > REMEMBER_BYTES) {
      // Only the end can reach the tail: a flood is not split into lines the tail forgets at once.
      const cut = text.slice(-REMEMBER_BYTES);
      const nl = cut.indexOf('\n');
      this.partial = '';
      text = nl < 0 ? cut : cut.slice(nl + 1);
    }
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
