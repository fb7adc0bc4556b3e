// One model's state machine (SPEC §1, §4): the process axis and the memory axis, admission, the
// in-flight count, the idle clock, failures and restart backoff. It knows *how* to start, stop, load
// and unload its backend; *when* (single flight, capacity, queues, shutdown) is the controller's call.
// All OS and network access goes through the Driver.
import { Agent } from 'node:http';
import { join } from 'node:path';
import type { BackendAdapter, BackendModel } from '../backends/index.js';
import { resolveCommand } from '../config/command.js';
import { isRemote, type ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import { describeExit, type ExitInfo } from '../runtime/child.js';
import type { Driver, ProcessHandle } from '../runtime/driver.js';
import { waitUntilReady } from '../runtime/readiness.js';

export type ProcessState = 'stopped' | 'starting' | 'running' | 'stopping' | 'failed';
export type MemoryState = 'unloaded' | 'loading' | 'loaded' | 'unloading';
/** Who or what caused a transition: "request", "idle", "evicted for X", "operator", "crash", "reload", ... */
export type Reason = string;

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
  /** Something that frees or takes capacity changed (memory state, in-flight count). */
  changed(): void;
}

/** Restart delay after `n` consecutive failures: 0, then 1 s, 2 s, 4 s … 60 s. */
export const backoffMs = (n: number): number => (n <= 0 ? 0 : Math.min(60_000, 1000 * 2 ** (n - 1)));

export class ModelRuntime {
  process: ProcessState = 'stopped';
  memory: MemoryState = 'unloaded';
  inflight = 0;
  /** Requests waiting for this model to become ready (cold start, load, drain). */
  waiting = 0;
  served = 0;
  failures = 0;
  retryAt = 0;
  lastError?: LastError;
  lastUsedAt?: number;
  startedAt?: number;
  readyAt?: number;
  /** Counted against budgets before its memory is loaded: set when capacity was granted to it. */
  reserved = false;
  /** Set while a stop is under way (the controller owns it). */
  stopping?: Promise<void>;
  /** Keep-alive connections to the current backend instance; replaced on every start. */
  agent = new Agent({ keepAlive: true });
  private child?: ProcessHandle;
  private timers: NodeJS.Timeout[] = [];
  private deadlines: Array<{ at: number; step: 'unload' | 'stop' }> = [];
  private closedBy = new Set<string>();
  private openWaiters: Array<() => void> = [];
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
  get adapter(): BackendAdapter {
    return this.ctx.driver.adapter(this.config);
  }
  get hasMemoryControl(): boolean {
    return !this.remote && this.adapter.memory !== undefined;
  }
  get backendModel(): BackendModel {
    return { id: this.config.servedModel ?? this.name, healthPath: this.config.health.path };
  }
  /** Running, loaded, and taking new requests. */
  get ready(): boolean {
    return this.process === 'running' && this.memory === 'loaded' && !this.stopping && this.closedBy.size === 0;
  }
  /** Holds memory now or is about to: what capacity planning counts. */
  get counted(): boolean {
    return this.reserved || this.memory !== 'unloaded' || this.process === 'starting';
  }
  get target(): string {
    return this.config.url ?? `http://127.0.0.1:${this.config.port}`;
  }
  get logFile(): string {
    return join(this.ctx.logDir, `${this.name}.log`);
  }
  get idleDeadline(): number | undefined {
    return this.deadlines.find((d) => d.at > Date.now())?.at;
  }

  // ---- admission and requests ------------------------------------------------------------------

  /** Stops admitting new requests until `open(holder)`; in-flight ones go on. */
  close(holder: string): void {
    this.closedBy.add(holder);
  }
  open(holder: string): void {
    if (!this.closedBy.delete(holder) || this.closedBy.size) return;
    for (const resolve of this.openWaiters.splice(0)) resolve();
  }
  get admissionClosed(): boolean {
    return this.closedBy.size > 0;
  }
  whenOpen(): Promise<void> {
    return this.closedBy.size === 0 ? Promise.resolve() : new Promise((resolve) => this.openWaiters.push(resolve));
  }

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
      this.ctx.changed();
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

  /** Spawns the backend and waits until it answers (weights loaded). Throws a HubError that says why not. */
  async start(reason: Reason, signal: AbortSignal): Promise<void> {
    if (this.process === 'running') return;
    if (this.remote) return this.checkRemote(reason);
    const m = this.config;
    const port = m.port!;
    this.child = undefined; // a failure below must not quote the previous run's log
    this.setProcess('starting', reason);
    if (await this.ctx.driver.portInUse(port)) {
      throw this.fail('start', { code: null, signal: null }, `cannot start model ${m.name}: port ${port} is already in use by another process; stop it, or set models.${m.name}.port / ports.start to a free port`);
    }
    const values = { port, model: m.name, hub: this.ctx.hubCommand };
    const argv = resolveCommand(m.argv!, values);
    const env = Object.fromEntries(Object.entries(m.env).map(([k, v]) => [k, resolveCommand([v], values)[0]]));
    const child = this.ctx.driver.spawn({ argv, env, cwd: m.cwd, logFile: this.logFile, banner: `modelhub starting ${m.name} (${reason}): ${argv.join(' ')}` });
    this.child = child;
    this.startedAt = Date.now();
    const endpoint = { base: this.target };
    const outcome = await waitUntilReady({
      probe: () => this.adapter.isReady(endpoint, this.backendModel),
      exited: child.exited,
      timeoutMs: m.startTimeoutMs,
      maxIntervalMs: m.health.intervalMs,
      signal,
    });
    if (outcome.ready) {
      this.agent = new Agent({ keepAlive: true });
      this.readyAt = Date.now();
      this.setProcess('running', reason);
      this.setMemory('loaded', reason); // servers start with their weights loaded
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
      throw new HubError('model_start_failed', `model ${m.name} was stopped while it was starting (${String(signal.reason ?? 'stopped')}); send the request again to start it`);
    }
    const error = this.fail('timeout', { code: null, signal: null }, `model ${m.name} was not ready within start_timeout (${m.startTimeoutMs / 1000}s) and was killed; raise models.${m.name}.start_timeout if it needs longer, or check ${this.logFile}`);
    throw new HubError('model_start_timeout', error.message);
  }

  /** Stops the backend: SIGTERM to its process group, SIGKILL after stop_timeout. */
  async stop(reason: Reason): Promise<void> {
    this.clearIdle();
    const child = this.child;
    if (this.remote || !child || child.exit) {
      if (this.memory !== 'unloaded') this.setMemory('unloaded', reason);
      if (this.process === 'running' || this.process === 'starting') this.setProcess('stopped', reason);
      return;
    }
    this.setProcess('stopping', reason);
    if (this.memory !== 'unloaded') this.setMemory('unloading', reason);
    await child.stop(this.config.stopTimeoutMs);
    this.agent.destroy();
    this.setMemory('unloaded', reason);
    this.setProcess('stopped', reason);
    this.resetBackoff();
  }

  // ---- memory axis -----------------------------------------------------------------------------

  /** Restores the weights of a running backend and checks that it says so. */
  async load(reason: Reason): Promise<void> {
    const memory = this.adapter.memory;
    if (this.memory === 'loaded' || !memory) return;
    this.setMemory('loading', reason);
    const endpoint = { base: this.target };
    try {
      await memory.load(endpoint, this.backendModel);
      if ((await memory.isLoaded(endpoint, this.backendModel)) === false) throw new Error('it still reports its memory as unloaded');
    } catch (err) {
      this.setMemory('unloaded', `load failed: ${(err as Error).message}`);
      throw new HubError('model_start_failed', `model ${this.name} could not load its weights again (${(err as Error).message}); stop and start it, or check ${this.logFile}`, { retryAfterMs: 1000 });
    }
    this.setMemory('loaded', reason);
    this.armIdle();
  }

  /**
   * Frees the weights and keeps the process warm, after checking the backend agrees. The caller has
   * closed admission and drained. Backends without memory control are stopped instead; a backend
   * that fails to unload is stopped too, since the memory must be freed either way.
   */
  async unload(reason: Reason): Promise<void> {
    const memory = this.adapter.memory;
    if (!memory || this.remote) return this.stop(reason);
    if (this.memory === 'unloaded' || this.process !== 'running') return;
    this.setMemory('unloading', reason);
    const endpoint = { base: this.target };
    try {
      await memory.unload(endpoint, this.backendModel);
      if ((await memory.isLoaded(endpoint, this.backendModel)) === true) throw new Error('it still reports its memory as loaded');
    } catch (err) {
      this.setMemory('loaded', `unload failed: ${(err as Error).message}`);
      return this.stop(`${reason}; unload failed (${(err as Error).message})`);
    }
    this.setMemory('unloaded', reason);
  }

  // ---- remote models ---------------------------------------------------------------------------

  /** A remote server is "running" while it answers its health check. */
  private async checkRemote(reason: Reason): Promise<void> {
    const ok = await this.adapter.isReady({ base: this.config.url!, apiKey: this.config.apiKey }, this.backendModel).catch(() => false);
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

  // ---- failures --------------------------------------------------------------------------------

  /** Resolves when the current process has exited (and that exit is recorded), or after `ms`. */
  async exitSettled(ms: number): Promise<void> {
    const exited = this.child?.exited;
    if (!exited) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, ms); })]);
    clearTimeout(timer);
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

  /**
   * Arms the idle ladder from now (the last request just finished, or the model just came up):
   * unload_after frees the memory, stop_after stops the process. Without memory control the first
   * step to come stops the process.
   */
  armIdle(): void {
    this.clearIdle();
    if (this.inflight > 0 || this.config.pinned || this.remote || this.process !== 'running') return;
    const { unloadAfterMs, stopAfterMs } = this.config.idle;
    const now = Date.now();
    if (this.hasMemoryControl) {
      if (unloadAfterMs > 0 && this.memory === 'loaded') this.deadlines.push({ at: now + unloadAfterMs, step: 'unload' });
      if (stopAfterMs > 0) this.deadlines.push({ at: now + stopAfterMs, step: 'stop' });
    } else {
      const first = Math.min(...[unloadAfterMs, stopAfterMs].filter((ms) => ms > 0));
      if (Number.isFinite(first)) this.deadlines.push({ at: now + first, step: 'stop' });
    }
    this.deadlines.sort((a, b) => a.at - b.at);
    for (const d of this.deadlines) {
      const timer = setTimeout(() => this.onIdle?.(this, d.step), d.at - now);
      timer.unref();
      this.timers.push(timer);
    }
  }

  /** Set by the controller: what to do when an idle step is due. */
  onIdle?: (m: ModelRuntime, step: 'unload' | 'stop') => void;

  clearIdle(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.deadlines = [];
  }

  // ---- transitions -----------------------------------------------------------------------------

  private setProcess(to: ProcessState, reason: Reason): void {
    const from = this.process;
    if (from === to) return;
    this.process = to;
    this.ctx.emit({ model: this.name, axis: 'process', from, to, reason, at: new Date().toISOString() });
    this.ctx.changed();
  }

  private setMemory(to: MemoryState, reason: Reason): void {
    const from = this.memory;
    if (from === to) return;
    this.memory = to;
    this.ctx.emit({ model: this.name, axis: 'memory', from, to, reason, at: new Date().toISOString() });
    this.ctx.changed();
  }
}
