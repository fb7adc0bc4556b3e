// One model's state machine (SPEC §1, §4): the process axis and the memory axis, in-flight count,
// idle clock, failures and restart backoff. It knows *how* to start and stop its backend; *when*
// (single flight, queues, shutdown) is the controller's call. All OS access goes through a Driver.
import { Agent } from 'node:http';
import { join } from 'node:path';
import { resolveCommand } from '../config/command.js';
import { isRemote, type ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import { describeExit, type ExitInfo } from '../runtime/child.js';
import type { Driver, ProcessHandle } from '../runtime/driver.js';
import { waitUntilReady } from '../runtime/readiness.js';

export type ProcessState = 'stopped' | 'starting' | 'running' | 'stopping' | 'failed';
export type MemoryState = 'unloaded' | 'loading' | 'loaded' | 'unloading';
export type Reason = string; // "request", "idle", "operator", "crash", "shutdown", "reload", ...

export interface Transition {
  model: string;
  axis: 'process' | 'memory';
  from: string;
  to: string;
  reason: Reason;
  at: string;
}

export interface LastError {
  message: string;
  exitCode: number | null;
  signal: string | null;
  logTail: string[];
  at: string;
}

export interface ModelContext {
  driver: Driver;
  logDir: string;
  hubCommand: readonly string[];
  emit(t: Transition): void;
}

/** Restart delay after `n` consecutive failures: 0, then 1 s, 2 s, 4 s … 60 s. */
export const backoffMs = (n: number): number => (n <= 0 ? 0 : Math.min(60_000, 1000 * 2 ** (n - 1)));

export class ModelRuntime {
  process: ProcessState = 'stopped';
  memory: MemoryState = 'unloaded';
  inflight = 0;
  waiting = 0;
  served = 0;
  failures = 0;
  retryAt = 0;
  lastError?: LastError;
  lastUsedAt?: number;
  startedAt?: number;
  readyAt?: number;
  idleDeadline?: number;
  /** Set while a stop is under way (the controller owns it); no new request is admitted then. */
  stopping?: Promise<void>;
  /** Keep-alive connections to the current backend instance; replaced on every start. */
  agent = new Agent({ keepAlive: true });
  private child?: ProcessHandle;
  private idleTimer?: NodeJS.Timeout;
  private drainWaiters: Array<() => void> = [];

  constructor(
    public config: ModelConfig,
    private readonly ctx: ModelContext,
  ) {}

  get name(): string {
    return this.config.name;
  }
  get pid(): number | undefined {
    return this.child?.exit ? undefined : this.child?.pid;
  }
  get remote(): boolean {
    return isRemote(this.config);
  }
  get ready(): boolean {
    return this.process === 'running' && this.memory === 'loaded' && !this.stopping;
  }
  get target(): string {
    return this.config.url ?? `http://127.0.0.1:${this.config.port}`;
  }
  get logFile(): string {
    return join(this.ctx.logDir, `${this.name}.log`);
  }

  // ---- requests -------------------------------------------------------------------------------

  beginRequest(): void {
    this.inflight++;
    this.clearIdle();
  }

  /** `healthy` = the backend answered; it resets the failure count that drives restart backoff. */
  endRequest(healthy: boolean): void {
    this.inflight--;
    this.served++;
    this.lastUsedAt = Date.now();
    if (healthy) this.failures = 0;
    if (this.inflight === 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
      this.armIdle();
    }
  }

  drained(): Promise<void> {
    return this.inflight === 0 ? Promise.resolve() : new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Throws model_start_failed while a failed model is backing off. */
  assertNotBackingOff(): void {
    const wait = this.retryAt - Date.now();
    if (this.process === 'failed' && wait > 0 && this.lastError) {
      throw new HubError('model_start_failed', `${this.lastError.message}; retrying is allowed in ${Math.ceil(wait / 1000)}s`, { retryAfterMs: wait });
    }
  }

  resetBackoff(): void {
    this.failures = 0;
    this.retryAt = 0;
  }

  // ---- process axis ----------------------------------------------------------------------------

  /** Spawns the backend and waits until it answers. Throws a HubError that says why it could not. */
  async start(reason: Reason, signal: AbortSignal): Promise<void> {
    if (this.ready) return;
    if (this.remote) return this.checkRemote(reason);
    const m = this.config;
    const port = m.port!;
    this.setProcess('starting', reason);
    if (await this.ctx.driver.portInUse(port)) {
      throw this.fail('start', { code: null, signal: null }, `cannot start model ${m.name}: port ${port} is already in use by another process; stop it, or set models.${m.name}.port / ports.start to a free port`);
    }
    const argv = resolveCommand(m.argv!, { port, model: m.name, hub: this.ctx.hubCommand });
    const child = this.ctx.driver.spawn({ argv, env: m.env, cwd: m.cwd, logFile: this.logFile, banner: `modelhub starting ${m.name} (${reason}): ${argv.join(' ')}` });
    this.child = child;
    this.startedAt = Date.now();
    const endpoint = { base: this.target };
    const outcome = await waitUntilReady({
      probe: () => this.ctx.driver.isReady(m, endpoint),
      exited: child.exited,
      timeoutMs: m.startTimeoutMs,
      maxIntervalMs: m.health.intervalMs,
      signal,
    });
    if (outcome.ready) {
      this.agent = new Agent({ keepAlive: true });
      this.readyAt = Date.now();
      this.setProcess('running', reason);
      this.setMemory('loaded', reason);
      void child.exited.then((exit) => this.onExit(child, exit));
      this.armIdle();
      return;
    }
    if ('exit' in outcome) {
      const tail = child.logTail(8);
      throw this.fail('start', outcome.exit, `model ${m.name} failed to start: its process exited before it was ready (${describeExit(outcome.exit)})${tail.length ? `; last log lines:\n${tail.join('\n')}` : `; see ${this.logFile}`}`);
    }
    await child.stop(m.stopTimeoutMs);
    if ('cancelled' in outcome) {
      this.setProcess('stopped', reason);
      throw new HubError('model_start_failed', `model ${m.name} was stopped while it was starting (${signal.reason ?? 'stopped'}); send the request again to start it`);
    }
    const error = this.fail('timeout', { code: null, signal: null }, `model ${m.name} was not ready within start_timeout (${m.startTimeoutMs / 1000}s) and was killed; raise models.${m.name}.start_timeout if it needs longer, or check ${this.logFile}`);
    throw new HubError('model_start_timeout', error.message);
  }

  /** Stops the backend: SIGTERM to its process group, SIGKILL after stop_timeout. */
  async stop(reason: Reason): Promise<void> {
    this.clearIdle();
    const child = this.child;
    if (this.remote) {
      if (this.process !== 'stopped') this.setProcess('stopped', reason);
      return;
    }
    if (!child || child.exit) {
      if (this.process === 'running' || this.process === 'starting') this.setProcess('stopped', reason);
      return;
    }
    this.setProcess('stopping', reason);
    if (this.memory === 'loaded') this.setMemory('unloading', reason);
    await child.stop(this.config.stopTimeoutMs);
    this.agent.destroy();
    this.setMemory('unloaded', reason);
    this.setProcess('stopped', reason);
    this.resetBackoff();
  }

  /** Resolves when the current process has exited (and that exit is recorded), or after `ms`. */
  async exitSettled(ms: number): Promise<void> {
    const exited = this.child?.exited;
    if (!exited) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, ms); })]);
    clearTimeout(timer);
  }

  /** A remote server is "running" while it answers its health check. */
  private async checkRemote(reason: Reason): Promise<void> {
    const ok = await this.ctx.driver.isReady(this.config, { base: this.config.url!, apiKey: this.config.apiKey }).catch(() => false);
    if (!ok) {
      this.markRemoteDown(reason);
      throw new HubError('backend_unavailable', `remote model ${this.name} at ${this.config.url} is not answering its health check; make sure that server is up`);
    }
    this.setProcess('running', reason);
    this.setMemory('loaded', reason);
  }

  /** After a failed forward to a remote: the next request checks its health again. */
  markRemoteDown(reason: Reason): void {
    if (this.process !== 'failed') this.setProcess('failed', reason);
    if (this.memory !== 'unloaded') this.setMemory('unloaded', reason);
  }

  private onExit(child: ProcessHandle, exit: ExitInfo): void {
    if (child !== this.child || this.process !== 'running') return; // a stop we asked for
    this.clearIdle();
    const tail = child.logTail(8);
    this.fail('crash', exit, `model ${this.name} crashed (${describeExit(exit)})${tail.length ? `; last log lines:\n${tail.join('\n')}` : ''}`);
    this.agent.destroy(); // in-flight requests see the connection drop and get backend_unavailable
  }

  /** Records a failure, moves to `failed` and returns the start error to throw. */
  private fail(kind: 'start' | 'timeout' | 'crash', exit: ExitInfo, message: string): HubError {
    this.failures++;
    // A crash of a model that was serving may be a one-off: the first one restarts at once.
    const delay = backoffMs(kind === 'crash' ? this.failures - 1 : this.failures);
    this.retryAt = Date.now() + delay;
    this.lastError = { message, exitCode: exit.code, signal: exit.signal, logTail: this.child?.logTail(20) ?? [], at: new Date().toISOString() };
    if (this.memory !== 'unloaded') this.setMemory('unloaded', kind);
    this.setProcess('failed', kind === 'crash' ? 'crash' : `start ${kind === 'timeout' ? 'timed out' : 'failed'}`);
    return new HubError('model_start_failed', message, { retryAfterMs: Math.max(delay, 1000) });
  }

  // ---- idle clock ------------------------------------------------------------------------------

  /** Starts the idle clock when nothing is in flight. Backends without memory control stop at the first idle step. */
  private armIdle(): void {
    this.clearIdle();
    if (this.inflight > 0 || this.config.pinned || this.remote || this.process !== 'running') return;
    const steps = [this.config.idle.unloadAfterMs, this.config.idle.stopAfterMs].filter((ms) => ms > 0);
    if (!steps.length) return;
    const after = Math.min(...steps);
    this.idleDeadline = Date.now() + after;
    this.idleTimer = setTimeout(() => this.onIdle?.(this), after);
    this.idleTimer.unref();
  }

  /** Set by the controller: what to do when the idle clock runs out. */
  onIdle?: (m: ModelRuntime) => void;

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.idleDeadline = undefined;
  }

  // ---- transitions -----------------------------------------------------------------------------

  private setProcess(to: ProcessState, reason: Reason): void {
    const from = this.process;
    if (from === to) return;
    this.process = to;
    this.ctx.emit({ model: this.name, axis: 'process', from, to, reason, at: new Date().toISOString() });
  }

  private setMemory(to: MemoryState, reason: Reason): void {
    const from = this.memory;
    if (from === to) return;
    this.memory = to;
    this.ctx.emit({ model: this.name, axis: 'memory', from, to, reason, at: new Date().toISOString() });
  }
}
