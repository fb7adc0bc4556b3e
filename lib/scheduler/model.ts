// One model as the rest of the hub sees it: its config, admission (who is allowed in right now), the
// in-flight and waiting counts, the idle ladder, and the executor that owns both lifecycle axes
// (executor.ts, driven by the pure machine in machine.ts). *When* to start, stop, load or unload —
// single flight, capacity, queues, shutdown — is decided in lifecycle.ts and the controller.
import { join } from 'node:path';
import type { BackendAdapter, BackendModel } from '../backends/index.js';
import { isRemote, type ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Timer } from '../runtime/clock.js';
import { createMask } from '../secrets.js';
import type { ModelContext, Reason } from './context.js';
import { Executor } from './executor.js';
import type { MemoryState, ProcessState } from './machine.js';

export type { LastError, ModelContext, Reason, Transition } from './context.js';
export { backoffMs } from './failure.js';
export type { MemoryState, ProcessState } from './machine.js';

/** How a request ended, for the crash backoff: only an answer from the backend proves it healthy. */
export type Outcome = 'answered' | 'failed' | 'abandoned';

let serial = 0;

export class ModelRuntime {
  /**
   * Unique among all runtimes, also across reloads: a model removed by a reload and added back under
   * the same name is a new runtime while the old one is still stopping.
   */
  readonly key = `${++serial}`;
  inflight = 0;
  /** Requests waiting for this model to become ready (cold start, load, drain). */
  waiting = 0;
  served = 0;
  lastUsedAt?: number;
  /** Counted against budgets before its memory is loaded: set when capacity was granted to it. */
  reserved = false;
  /** A launch change from a reload, applied once the model is idle (the old process serves until then). */
  pendingConfig?: ModelConfig;
  /** Removed from the config by a reload: it finishes what it accepted, then stops for good. */
  retired = false;
  readonly executor: Executor;
  private closedBy = new Set<string>();
  private openWaiters: Array<() => void> = [];
  private drainWaiters: Array<() => void> = [];
  /** When the model last became idle (last request finished, or it came up); undefined while busy. */
  private idleSince?: number;
  private idleTimer?: Timer;

  constructor(
    public config: ModelConfig,
    private readonly ctx: ModelContext,
  ) {
    this.executor = new Executor(this, {
      ...ctx,
      emit: (t) => {
        // The idle clock of a model nobody is using starts when it comes up or gets its weights back.
        if ((t.to === 'running' || t.to === 'loaded') && this.inflight === 0) this.idleSince = this.now();
        ctx.emit(t);
      },
      settled: () => this.armIdle(),
    });
  }

  private now(): number {
    return this.ctx.driver.clock.now();
  }
  /** The model's URL as it may be shown (in errors, to clients): a password in it masked. */
  get shownUrl(): string {
    return showUrl(this.target);
  }
  /** The backend process's measured resident memory, where known. */
  get residentBytes(): number | undefined {
    const pid = this.pid;
    return pid === undefined || this.process === 'stopped' ? undefined : this.ctx.driver.residentBytes?.(pid);
  }
  get name(): string {
    return this.config.name;
  }
  get process(): ProcessState {
    return this.executor.state.process;
  }
  get memory(): MemoryState {
    return this.executor.state.memory;
  }
  get pid(): number | undefined {
    return this.executor.pid;
  }
  get lastError() {
    return this.executor.lastError;
  }
  get failures(): number {
    return this.executor.failures;
  }
  get retryAt(): number {
    return this.executor.retryAt;
  }
  set retryAt(at: number) {
    this.executor.retryAt = at;
  }
  get startedAt(): number | undefined {
    return this.executor.startedAt;
  }
  get readyAt(): number | undefined {
    return this.executor.readyAt;
  }
  get agent() {
    return this.executor.agent;
  }
  /** An operation (start, stop, load, unload) is running or queued. */
  get busy(): boolean {
    return this.executor.busy;
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
    return this.process === 'running' && this.memory === 'loaded' && this.closedBy.size === 0;
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

  /** In place: the running HubConfig shares this object, so a reload sees the port as unchanged. */
  movePort(port: number): void {
    this.config.port = port;
  }

  // ---- admission and requests ------------------------------------------------------------------

  /** Stops admitting new requests until `open(holder)`; in-flight ones go on. */
  close(holder: string): void {
    this.closedBy.add(holder);
  }
  open(holder: string): void {
    if (!this.closedBy.delete(holder) || this.closedBy.size) return;
    for (const resolve of this.openWaiters.splice(0)) resolve();
    this.armIdle();
  }
  get admissionClosed(): boolean {
    return this.closedBy.size > 0;
  }
  whenOpen(): Promise<void> {
    return this.closedBy.size === 0 ? Promise.resolve() : new Promise((resolve) => this.openWaiters.push(resolve));
  }

  beginRequest(): void {
    this.inflight++;
    this.idleSince = undefined;
    this.armIdle();
  }

  endRequest(outcome: Outcome): void {
    this.inflight--;
    this.served++;
    this.lastUsedAt = this.now();
    if (outcome === 'answered') this.executor.failures = 0;
    if (this.inflight === 0) {
      this.idleSince = this.now();
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
    const wait = this.retryAt - this.now();
    if (this.process === 'failed' && wait > 0 && this.lastError) {
      throw new HubError('model_start_failed', `${this.lastError.message}; retrying is allowed in ${Math.ceil(wait / 1000)}s`, { retryAfterMs: wait });
    }
  }

  resetBackoff(): void {
    this.executor.resetBackoff();
  }

  markRemoteDown(reason: Reason): void {
    this.executor.markRemoteDown(reason);
  }

  exitSettled(ms: number): Promise<void> {
    return this.executor.exitSettled(ms);
  }

  // ---- idle ladder -----------------------------------------------------------------------------

  /** When each idle step is due, from the moment the model became idle; nothing while it is in use. */
  private idleSteps(): { unloadAt?: number; stopAt?: number } {
    if (this.idleSince === undefined || this.inflight > 0 || this.config.pinned || this.remote || this.process !== 'running') return {};
    const { unloadAfterMs, stopAfterMs } = this.config.idle;
    if (!this.hasMemoryControl) {
      const first = Math.min(...[unloadAfterMs, stopAfterMs].filter((ms) => ms > 0)); // "unload" means stop
      return Number.isFinite(first) ? { stopAt: this.idleSince + first } : {};
    }
    return {
      unloadAt: unloadAfterMs > 0 && this.memory === 'loaded' ? this.idleSince + unloadAfterMs : undefined,
      stopAt: stopAfterMs > 0 ? this.idleSince + stopAfterMs : undefined,
    };
  }

  get idleDeadline(): number | undefined {
    const { unloadAt, stopAt } = this.idleSteps();
    const next = Math.min(unloadAt ?? Infinity, stopAt ?? Infinity);
    return Number.isFinite(next) ? next : undefined;
  }

  /**
   * (Re)arms the timer for the next idle step. Called whenever something that decides it changes (a
   * request ends, an operation settles, admission reopens), so a step that came due while the model
   * was busy is taken as soon as it is free, and a step already due fires at once.
   */
  armIdle(): void {
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    const at = this.idleDeadline;
    if (at === undefined) return;
    this.idleTimer = this.ctx.driver.clock.after(at - this.now(), () => {
      this.idleTimer = undefined;
      const { unloadAt, stopAt } = this.idleSteps();
      const now = this.now();
      // When both are due (equal unload_after and stop_after, or an unload that ran late), stop.
      const step = stopAt !== undefined && now >= stopAt ? 'stop' : unloadAt !== undefined && now >= unloadAt ? 'unload' : undefined;
      if (step) this.onIdle?.(this, step);
      else this.armIdle();
    });
  }

  /** Set by the lifecycle: what to do when an idle step is due (it checks the model really is idle). */
  onIdle?: (m: ModelRuntime, step: 'unload' | 'stop') => void;

  /** No more idle steps (the model is going away). */
  clearIdle(): void {
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    this.idleSince = undefined;
  }
}

const urlMask = createMask();
const showUrl = (url: string): string => urlMask(url);
