// One model's executor: it owns the state of both axes, feeds every event through the pure machine
// (machine.ts) and carries out the effects it returns: spawn, terminate, memory calls. Operations
// (start, stop, load, unload) run one at a time per model, in order, so two of them never overlap; a
// stop that must not wait (operator, shutdown) first cancels the operation under way. Each operation
// returns only once the process axis is settled (stopped, running or failed), and every effect is tied
// to the generation of the child it was issued for. All time goes through the driver's clock.
import { Agent } from 'node:http';
import { HubError } from '../errors.js';
import type { ExitInfo } from '../runtime/child.js';
import { sleep, within } from '../runtime/clock.js';
import type { ProcessHandle } from '../runtime/driver.js';
import { backoffMs, describeFailure, failureKind, failureKindReason } from './failure.js';
import type { ExecutedModel, ExecutorContext, LastError, Reason } from './context.js';
import { initialState, transition, type Effect, type MachineEvent, type MachineState } from './machine.js';
import { planSpawn, type SpawnPlan } from './spawn-plan.js';

export class Executor {
  state: MachineState = initialState();
  lastError?: LastError;
  failures = 0;
  retryAt = 0;
  startedAt?: number;
  readyAt?: number;
  /** Keep-alive connections to the current child; replaced whenever a child is gone. */
  agent = new Agent({ keepAlive: true });
  private child?: { gen: number; handle: ProcessHandle };
  private tail: Promise<unknown> = Promise.resolve();
  private ops = 0;
  /** One per operation running or queued, so a preempting stop can cancel them all. */
  private readonly controllers = new Set<AbortController>();
  private waiters: Array<() => void> = [];
  private reason: Reason = '';
  private nextSpawn?: SpawnPlan;
  private startSignal?: AbortSignal;
  /** Why the start of the current generation did not get to running. */
  private startError?: HubError;
  private memoryError?: string;
  private spawnError?: string;

  constructor(
    private readonly model: ExecutedModel,
    private readonly ctx: ExecutorContext,
  ) {}

  /** The state right now (a method, so that TypeScript does not carry a narrowing across an await). */
  private now(): MachineState {
    return this.state;
  }
  private get clock() {
    return this.ctx.driver.clock;
  }
  /** An operation is running or queued. */
  get busy(): boolean {
    return this.ops > 0;
  }
  get pid(): number | undefined {
    return this.child && !this.child.handle.exit ? this.child.handle.pid : undefined;
  }

  // ---- operations (serialized) -----------------------------------------------------------------

  /** Spawns the backend and waits until it answers. Throws a HubError that says why not. */
  start(reason: Reason, signal?: AbortSignal): Promise<void> {
    return this.run(signal, async (sig) => {
      if (this.state.process === 'running') return;
      if (sig.aborted) throw cancelled(this.model.name, sig);
      if (this.model.remote) return this.checkRemote(reason);
      this.reason = reason;
      this.nextSpawn = await planSpawn(this.model, this.ctx, reason);
      if (sig.aborted) throw cancelled(this.model.name, sig);
      this.startError = undefined;
      this.startSignal = sig;
      this.dispatch({ type: 'start' });
      await this.until(() => this.state.process !== 'starting');
      if (this.now().process === 'running') return;
      await this.until(() => this.state.process === 'stopped' || this.state.process === 'failed');
      throw this.startError ?? cancelled(this.model.name, sig);
    });
  }

  /** SIGTERM to the process group, SIGKILL after stop_timeout; resolves once the child has exited. */
  stop(reason: Reason): Promise<void> {
    return this.run(undefined, () => this.stopNow(reason));
  }

  /** Restores the weights of a running backend and checks that it says so. */
  load(reason: Reason, signal?: AbortSignal): Promise<void> {
    return this.run(signal, async (sig) => {
      if (!this.model.adapter.memory || this.state.memory === 'loaded') return;
      if (sig.aborted) throw cancelled(this.model.name, sig);
      const name = this.model.name;
      if (this.state.process !== 'running') throw new HubError('model_start_failed', `model ${name} stopped before its weights could be loaded; send the request again`, { retryAfterMs: 1000 });
      this.reason = reason;
      this.memoryError = undefined;
      this.dispatch({ type: 'load' });
      await Promise.race([this.until(() => this.state.memory !== 'loading' || this.state.process !== 'running'), aborted(sig)]);
      if (this.now().process === 'running' && this.now().memory === 'loaded') return;
      const why = this.memoryError ?? (sig.aborted ? `cancelled: ${String(sig.reason)}` : 'the process went away');
      throw new HubError('model_start_failed', `model ${name} could not load its weights (${why}); send the request again, or check ${this.model.logFile}`, { retryAfterMs: 1000 });
    });
  }

  /**
   * Frees the weights and keeps the process warm, after checking the backend agrees. Backends without
   * memory control are stopped instead, and so is one that fails to unload: the memory must be freed.
   */
  unload(reason: Reason): Promise<void> {
    return this.run(undefined, async (sig) => {
      if (sig.aborted) return; // a preempting stop comes next
      if (!this.model.adapter.memory || this.model.remote) return this.stopNow(reason);
      if (this.state.process !== 'running' || this.state.memory !== 'loaded') return;
      this.reason = reason;
      this.memoryError = undefined;
      this.dispatch({ type: 'unload' });
      await Promise.race([this.until(() => this.state.memory !== 'unloading' || this.state.process !== 'running'), aborted(sig)]);
      if (this.now().process === 'running' && this.now().memory === 'loaded') await this.stopNow(`${reason}; unload failed (${this.memoryError})`);
    });
  }

  /**
   * Cancels the operation under way and those queued behind it (a start stops its child; a memory
   * call stops being waited for). An operation issued after this is not affected.
   */
  preempt(reason: string): void {
    for (const c of this.controllers) c.abort(reason);
  }

  /** After a failed forward to a remote: the next request checks its health again. */
  markRemoteDown(reason: Reason, message = `remote model ${this.model.name} at ${this.model.shownUrl} could not be reached (${reason})`): void {
    this.dispatch({ type: 'remote-down' }, reason);
    // A remote server has no exit code or log: the message is all there is to say why it is down.
    this.lastError = { message, exitCode: null, signal: null, logTail: [], at: new Date(this.clock.now()).toISOString() };
  }

  /** Resolves when the current child has exited (and that exit is recorded), or after `ms`. */
  async exitSettled(ms: number): Promise<void> {
    const handle = this.child?.handle;
    if (handle && !handle.exit) await within(this.clock, ms, handle.exited);
  }

  resetBackoff(): void {
    this.failures = 0;
    this.retryAt = 0;
  }

  private run<T>(signal: AbortSignal | undefined, op: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.ops++;
    const own = new AbortController();
    this.controllers.add(own);
    const result = this.tail.then(async () => {
      try {
        return await op(signal ? AbortSignal.any([signal, own.signal]) : own.signal);
      } finally {
        this.controllers.delete(own);
        this.ops--;
        this.ctx.settled();
      }
    });
    this.tail = result.catch(() => {});
    return result;
  }

  private async stopNow(reason: Reason): Promise<void> {
    if (this.model.remote || this.state.process === 'stopped' || this.state.process === 'failed') return;
    this.reason = reason;
    this.dispatch({ type: 'stop' });
    await this.until(() => this.state.process === 'stopped' || this.state.process === 'failed');
    this.resetBackoff();
  }

  /** A remote server is "running" while it answers its health check. */
  private async checkRemote(reason: Reason): Promise<void> {
    const { name, config } = this.model;
    const ok = await this.model.adapter.isReady({ base: config.url!, apiKey: config.apiKey }, this.model.backendModel).catch(() => false);
    if (ok) return void this.dispatch({ type: 'remote-up' }, reason);
    const message = `remote model ${name} at ${this.model.shownUrl} is not answering its health check; make sure that server is up`;
    this.markRemoteDown(reason, message);
    throw new HubError('backend_unavailable', message);
  }

  // ---- the machine and its effects ---------------------------------------------------------------

  private dispatch(event: MachineEvent, reason: Reason = this.reason, exit?: ExitInfo): boolean {
    const step = transition(this.state, event);
    if (step.outcome === 'refused') {
      this.ctx.bug(`model ${this.model.name}: ${step.why} (refused, state kept)`);
      return false;
    }
    if (step.outcome === 'ignored') return false;
    const before = this.state;
    const after = (this.state = step.state);
    if (after.process === 'failed' && before.process !== 'failed' && !this.model.remote) this.recordFailure(before, event, exit);
    if (after.process === 'running' && before.process !== 'running') this.readyAt = this.clock.now();
    const at = new Date(this.clock.now()).toISOString();
    const emitReason = after.process === 'failed' && before.process !== 'failed' && event.type !== 'remote-down' ? failureKindReason[failureKind(before, event)] : reason;
    if (before.process !== after.process) this.ctx.emit({ model: this.model.name, axis: 'process', from: before.process, to: after.process, reason: emitReason, at });
    if (before.memory !== after.memory) this.ctx.emit({ model: this.model.name, axis: 'memory', from: before.memory, to: after.memory, reason: emitReason, at });
    for (const effect of step.effects) this.perform(effect);
    this.ctx.changed();
    for (const wake of this.waiters.splice(0)) wake();
    return true;
  }

  private perform(effect: Effect): void {
    if (effect.kind === 'spawn') return this.spawn(effect.gen);
    if (effect.kind === 'terminate') {
      const child = this.child;
      if (child?.gen === effect.gen) void child.handle.stop(this.model.config.stopTimeoutMs);
      else this.ctx.bug(`model ${this.model.name}: terminate for generation ${effect.gen} without its child`);
      return;
    }
    if (effect.kind === 'memory') return void this.callMemory(effect.op, effect.gen);
    this.agent.destroy(); // in-flight requests see the connection drop and get backend_unavailable
    this.agent = new Agent({ keepAlive: true });
  }

  private spawn(gen: number): void {
    const plan = this.nextSpawn!;
    this.nextSpawn = undefined;
    let handle: ProcessHandle;
    try {
      if ('error' in plan) throw Object.assign(new Error(plan.error), { advice: true });
      handle = this.ctx.driver.spawn(plan.spec);
    } catch (err) {
      this.child = undefined; // the failure must not quote the previous run's log
      const e = err as Error & { advice?: boolean };
      this.spawnError = e.advice ? e.message : `${e.message}; fix that and send the request again`;
      this.dispatch({ type: 'spawn-failed', gen });
      return;
    }
    this.child = { gen, handle };
    this.startedAt = this.clock.now();
    void handle.exited.then((exit) => this.dispatch({ type: 'exited', gen }, this.state.process === 'running' ? 'crash' : this.reason, exit));
    void this.watchReadiness(gen, this.startSignal);
  }

  /** Probes start after ~10 ms and back off to health.interval, so a fast server is seen within milliseconds. */
  private async watchReadiness(gen: number, signal: AbortSignal | undefined): Promise<void> {
    const m = this.model;
    const deadline = this.clock.now() + m.config.startTimeoutMs;
    const starting = () => this.state.gen === gen && this.state.process === 'starting';
    let interval = 10;
    while (starting()) {
      if (signal?.aborted) {
        this.startError = new HubError('model_start_failed', `model ${m.name} was stopped while it was starting (${String(signal.reason ?? 'stopped')}); send the request again to start it`);
        this.reason = String(signal.reason ?? 'stopped');
        this.dispatch({ type: 'stop' });
        return;
      }
      const ready = await m.adapter.isReady({ base: m.target }, m.backendModel).catch(() => false);
      if (!starting()) return;
      if (ready) return void this.dispatch({ type: 'ready', gen });
      const left = deadline - this.clock.now();
      if (left <= 0) return void this.dispatch({ type: 'start-timeout', gen }, 'start timed out');
      await sleep(this.clock, Math.min(interval, left), signal);
      interval = Math.min(m.config.health.intervalMs, interval * 1.5);
    }
  }

  private async callMemory(op: 'load' | 'unload', gen: number): Promise<void> {
    const m = this.model;
    const control = m.adapter.memory!;
    const endpoint = { base: m.target };
    const limitMs = m.config.startTimeoutMs;
    let error: string | undefined;
    try {
      const answered = await within(this.clock, limitMs, (async () => {
        await control[op](endpoint, m.backendModel);
        const loaded = await control.isLoaded(endpoint, m.backendModel);
        if (loaded === (op === 'unload')) throw new Error(`it still reports its memory as ${op === 'unload' ? 'loaded' : 'unloaded'}`);
        return true;
      })());
      if (!answered) error = `no answer within ${limitMs / 1000}s`;
    } catch (err) {
      error = (err as Error).message;
    }
    if (error !== undefined && this.state.gen === gen) this.memoryError = error;
    const type = error === undefined ? (op === 'load' ? 'loaded' : 'unloaded') : op === 'load' ? 'load-failed' : 'unload-failed';
    this.dispatch({ type, gen }, error === undefined ? this.reason : `${op} failed: ${error}`);
  }

  /** Records a failure (the message its waiters get, the backoff) as the process enters `failed`. */
  private recordFailure(before: MachineState, event: MachineEvent, exit: ExitInfo | undefined): void {
    const kind = failureKind(before, event);
    const tail = kind === 'spawn' ? [] : (this.child?.handle.logTail(20) ?? []);
    const message = describeFailure(kind, this.model, { exit, tail, spawnError: this.spawnError });
    this.failures++;
    // A crash of a model that was serving may be a one-off: the first one restarts at once.
    const delay = backoffMs(kind === 'crash' ? this.failures - 1 : this.failures);
    this.retryAt = this.clock.now() + delay;
    this.lastError = { message, exitCode: exit?.code ?? null, signal: exit?.signal ?? null, logTail: tail, at: new Date(this.clock.now()).toISOString() };
    if (kind !== 'crash') this.startError = kind === 'timeout' ? new HubError('model_start_timeout', message) : new HubError('model_start_failed', message, { retryAfterMs: Math.max(delay, 1000) });
  }

  /** Resolves once `done()` holds; checked after every applied event. */
  private until(done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (done() ? resolve() : void this.waiters.push(check));
      check();
    });
  }
}

function cancelled(name: string, signal: AbortSignal): HubError {
  return new HubError('model_start_failed', `the start of model ${name} was cancelled (${String(signal.reason ?? 'stopped')}); send the request again`);
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
}
