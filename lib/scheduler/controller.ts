// The controller: the one object that owns model state (SPEC §1). The gateway, the control API,
// the dashboard and the CLI only call it. It resolves names and aliases, admits requests (per-model
// concurrency and queue limits), makes activations single flight and serializes them per group
// through p-queue, makes room within the budgets, runs the idle ladder, reloads and shuts down.
import { EventEmitter } from 'node:events';
import PQueue from 'p-queue';
import type { HubConfig, ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Driver } from '../runtime/driver.js';
import { makeRoom, type CapacityHost } from './room.js';
import { ModelRuntime, type Reason, type Transition } from './model.js';
import { diffConfigs, type ConfigDiff } from './reload.js';
import { modelStatus, groupStatus, type ModelStatus, type GroupStatus } from './status.js';

export interface Lease {
  model: ModelRuntime;
  /** How long the request waited for the model to start or load; undefined when it was ready. */
  coldStartMs?: number;
  /** How long it waited for a concurrency slot (max_concurrency); undefined when it did not. */
  queueMs?: number;
  /** Call exactly once when the response is over. */
  release(healthy: boolean): void;
}

export interface RequestSummary {
  id: string;
  model?: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  cold_start_ms?: number;
  queue_ms?: number;
}

export interface ControllerOptions {
  driver: Driver;
  hubCommand: readonly string[];
  /** Bound on waiting for in-flight requests at shutdown. */
  drainTimeoutMs?: number;
}

export class Controller extends EventEmitter<{ transition: [Transition]; request: [RequestSummary] }> implements CapacityHost {
  private readonly models = new Map<string, ModelRuntime>();
  private ids = new Map<string, string>(); // name or alias -> model name
  private readonly queues = new Map<string, PQueue>();
  private readonly gates = new Map<ModelRuntime, PQueue>();
  /** `running` once it is inside the group queue doing the work; before that it only waits its turn. */
  private readonly activations = new Map<ModelRuntime, { promise: Promise<void>; abort: AbortController; running: boolean }>();
  private changeWaiters: Array<() => void> = [];
  private closing = false;
  private closed: Promise<void> = Promise.resolve();
  readonly startedAt = Date.now();

  constructor(
    public config: HubConfig,
    private readonly options: ControllerOptions,
  ) {
    super();
    for (const m of Object.values(config.models)) this.add(m);
    this.indexIds();
  }

  // ---- lookup ----------------------------------------------------------------------------------

  /** The model a request's `model` field names (by name or alias). */
  resolve(id: string): ModelRuntime | undefined {
    const name = this.ids.get(id);
    return name === undefined ? undefined : this.models.get(name);
  }

  get(name: string): ModelRuntime {
    const m = this.models.get(name);
    if (!m) throw new HubError('not_found', `there is no model named "${name}"; configured models: ${this.names().join(', ')}`);
    return m;
  }

  names(): string[] {
    return [...this.models.keys()];
  }

  all(): ModelRuntime[] {
    return [...this.models.values()];
  }

  /** Every id a client may use: names and aliases. */
  allIds(): Array<{ id: string; model: ModelRuntime }> {
    return [...this.ids].map(([id, name]) => ({ id, model: this.models.get(name)! }));
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  // ---- requests --------------------------------------------------------------------------------

  /** Gets the model running and loaded, within its concurrency limit, and counts the caller in flight. */
  async acquire(m: ModelRuntime): Promise<Lease> {
    this.assertOpen();
    const { maxConcurrency, maxQueue } = m.config;
    if (maxConcurrency === Infinity) return this.admit(m);
    const gate = this.gateFor(m);
    if (gate.size >= maxQueue) {
      throw new HubError('model_busy', `model ${m.name} already has ${gate.size} requests waiting (max_queue ${maxQueue}); retry shortly`, { retryAfterMs: 1000 });
    }
    const queued = performance.now();
    const mustWait = gate.pending >= gate.concurrency;
    return new Promise<Lease>((resolve, reject) => {
      void gate.add(async () => {
        const queueMs = mustWait ? performance.now() - queued : undefined;
        let lease: Lease;
        try {
          lease = await this.admit(m);
        } catch (err) {
          return reject(err);
        }
        // The slot is held until the response is over.
        await new Promise<void>((done) => {
          const release = lease.release;
          resolve({ ...lease, queueMs, release: (healthy) => { release(healthy); done(); } });
        });
      });
    });
  }

  private async admit(m: ModelRuntime): Promise<Lease> {
    const t0 = performance.now();
    let waited = false;
    while (!m.ready) {
      waited = true;
      m.waiting++;
      try {
        await this.activate(m, 'request');
      } finally {
        m.waiting--;
      }
      this.assertOpen();
    }
    m.beginRequest();
    let released = false;
    return {
      model: m,
      coldStartMs: waited ? performance.now() - t0 : undefined,
      release: (healthy) => {
        if (released) return;
        released = true;
        m.endRequest(healthy);
      },
    };
  }

  private gateFor(m: ModelRuntime): PQueue {
    let gate = this.gates.get(m);
    if (!gate) this.gates.set(m, (gate = new PQueue({ concurrency: m.config.maxConcurrency })));
    return gate;
  }

  /** For the access log and the events stream. */
  noteRequest(summary: RequestSummary): void {
    this.emit('request', summary);
  }

  // ---- operator actions (same scheduler as requests) -------------------------------------------

  async start(name: string): Promise<void> {
    this.assertOpen();
    const m = this.get(name);
    m.resetBackoff(); // an operator start is a deliberate retry
    if (m.process === 'running' && !m.stopping) return;
    while (m.process !== 'running' || m.stopping) await this.activate(m, 'operator');
  }

  async load(name: string): Promise<void> {
    this.assertOpen();
    const m = this.managed(name, 'load');
    m.resetBackoff();
    while (!m.ready) await this.activate(m, 'operator');
  }

  async unload(name: string): Promise<void> {
    const m = this.managed(name, 'unload');
    await this.inProgress(m);
    if (m.memory === 'unloaded') return;
    await this.evict(m, 'operator');
  }

  async stop(name: string): Promise<void> {
    const m = this.managed(name, 'stop');
    await this.stopModel(m, 'operator', m.config.stopTimeoutMs);
  }

  private managed(name: string, action: string): ModelRuntime {
    const m = this.get(name);
    if (m.remote) throw new HubError('conflict', `model ${name} is remote (${m.config.url}); the hub does not run it, so it cannot ${action} it`);
    return m;
  }

  /** Starts (and loads) every `preload` model; failures are recorded on the model, not thrown. */
  preload(): Promise<void> {
    const wanted = this.all().filter((m) => m.config.preload && !m.ready);
    return Promise.all(wanted.map((m) => this.activate(m, 'preload').catch(() => {}))).then(() => {});
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Single flight: every caller shares the one activation in progress for a model. */
  private activate(m: ModelRuntime, reason: Reason): Promise<void> {
    const running = this.activations.get(m);
    if (running) return running.promise;
    const abort = new AbortController();
    const record = { promise: Promise.resolve(), abort, running: false };
    const aborted = new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    record.promise = (async () => {
      await Promise.race([m.stopping, aborted]);
      await Promise.race([m.whenOpen(), aborted]); // closed while it drains for someone else: wait for that
      if (abort.signal.aborted) {
        this.assertOpen();
        throw new HubError('model_start_failed', `the start of model ${m.name} was cancelled (${String(abort.signal.reason)}); send the request again`);
      }
      m.assertNotBackingOff();
      await this.queueFor(m).add(() => {
        record.running = true;
        return this.bringUp(m, reason, abort.signal);
      });
    })().finally(() => this.activations.delete(m));
    this.activations.set(m, record);
    return record.promise;
  }

  /** Inside the group's queue: make room if needed, start the process, load the memory. */
  private async bringUp(m: ModelRuntime, reason: Reason, signal: AbortSignal): Promise<void> {
    if (m.ready) return;
    if (m.remote) return m.start(reason, signal);
    try {
      if (!m.counted) await makeRoom(this, m, reason, signal);
      if (m.process !== 'running') await m.start(reason, signal);
      if (m.memory !== 'loaded') await m.load(reason);
    } finally {
      // Keep the reservation until the requests that waited for this have been admitted (they resume
      // in microtasks); otherwise the next activation in the queue could evict it first and the two
      // would take turns forever.
      setImmediate(() => {
        m.reserved = false;
        this.changed();
      });
    }
  }

  /** Activations in one group are serialized so two loads never race for the same memory. */
  private queueFor(m: ModelRuntime): PQueue {
    const key = m.config.group ?? '';
    let queue = this.queues.get(key);
    if (!queue) this.queues.set(key, (queue = new PQueue({ concurrency: m.config.group ? 1 : Infinity })));
    return queue;
  }

  /** Waits for an activation that is doing work (not one waiting for admission, which could be us). */
  private async inProgress(m: ModelRuntime): Promise<void> {
    const activation = this.activations.get(m);
    if (activation?.running) await activation.promise.catch(() => {});
  }

  /** Frees a model's memory safely: stop admitting, drain, unload (or stop), admit again. */
  async evict(m: ModelRuntime, reason: Reason): Promise<void> {
    m.close(reason);
    try {
      await m.drained();
      await m.unload(reason);
    } finally {
      m.open(reason);
    }
  }

  /** Stops a model; waits for in-flight requests first, up to `drainMs`. */
  private stopModel(m: ModelRuntime, reason: Reason, drainMs: number): Promise<void> {
    if (m.stopping) return m.stopping;
    const run = (async () => {
      // Cancel a start under way. Activations still waiting their turn are left alone: once this
      // stop is done they start the model again for the requests behind them.
      const activation = this.activations.get(m);
      if (activation?.running) {
        activation.abort.abort(reason);
        await activation.promise.catch(() => {});
      }
      if (drainMs === Infinity) await m.drained();
      else if (drainMs > 0) await Promise.race([m.drained(), new Promise((r) => setTimeout(r, drainMs).unref())]);
      await m.stop(reason);
    })().finally(() => { m.stopping = undefined; });
    m.stopping = run;
    return run;
  }

  private onIdle = (m: ModelRuntime, step: 'unload' | 'stop'): void => {
    if (m.inflight > 0 || m.waiting > 0 || m.admissionClosed || m.stopping || m.reserved || this.activations.has(m)) return;
    if (step === 'unload' && m.ready) void this.evict(m, 'idle');
    if (step === 'stop' && m.process === 'running') void this.stopModel(m, 'idle', Infinity);
  };

  // ---- capacity host (used by room.ts) ---------------------------------------------------------

  /** Resolves true on the next capacity-relevant change, false at the deadline or on abort. */
  changedBefore(deadline: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
      const onAbort = () => finish(false);
      const finish = (changed: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.changeWaiters = this.changeWaiters.filter((w) => w !== wake);
        resolve(changed);
      };
      const wake = () => finish(true);
      this.changeWaiters.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private changed = (): void => {
    for (const wake of this.changeWaiters.slice()) wake();
  };

  // ---- config ----------------------------------------------------------------------------------

  private add(config: ModelConfig): ModelRuntime {
    const m = new ModelRuntime(config, {
      driver: this.options.driver,
      logDir: this.config.log.dir,
      hubCommand: this.options.hubCommand,
      emit: (t) => this.emit('transition', t),
      changed: this.changed,
    });
    m.onIdle = this.onIdle;
    this.models.set(config.name, m);
    return m;
  }

  private indexIds(): void {
    const ids = new Map<string, string>();
    for (const m of this.models.values()) for (const id of [m.name, ...m.config.aliases]) ids.set(id, m.name);
    this.ids = ids;
  }

  /**
   * Applies a new config (SPEC §4 reload): added models are registered (and preloaded), removed ones
   * drained and stopped, launch changes restarted once idle, policy changes applied live.
   */
  applyConfig(next: HubConfig): ConfigDiff {
    const diff = diffConfigs(this.config, next);
    this.config = next;
    for (const name of diff.removed) {
      const m = this.models.get(name)!;
      this.models.delete(name);
      void this.retire(m);
    }
    for (const name of diff.added) this.add(next.models[name]);
    for (const name of diff.updated) {
      const m = this.models.get(name)!;
      m.config = next.models[name];
      const gate = this.gates.get(m);
      if (gate) gate.concurrency = m.config.maxConcurrency;
      if (m.inflight === 0 && m.ready) m.armIdle();
    }
    for (const name of diff.restarted) void this.restart(this.models.get(name)!, next.models[name]);
    this.indexIds();
    this.changed();
    void this.preload();
    return diff;
  }

  /**
   * A removed model: no new request can name it any more, but the ones already accepted (in flight,
   * or waiting for its start) are served before it stops.
   */
  private async retire(m: ModelRuntime): Promise<void> {
    await this.inProgress(m);
    await new Promise((resolve) => setImmediate(resolve)); // let requests that waited for the start begin
    await m.drained();
    await this.stopModel(m, 'reload', Infinity);
  }

  /** Waits for in-flight requests (new ones queue), stops the old process, switches the config. */
  private async restart(m: ModelRuntime, config: ModelConfig): Promise<void> {
    m.close('reload');
    try {
      await this.inProgress(m);
      await m.drained();
      if (m.process !== 'stopped' && m.process !== 'failed') await this.stopModel(m, 'reload', Infinity);
      m.config = config;
      m.resetBackoff();
    } finally {
      m.open('reload');
    }
  }

  // ---- shutdown and status ---------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closing) throw new HubError('hub_shutting_down', 'the hub is shutting down and takes no new requests; retry once it is back');
  }

  /** Stop taking requests, let in-flight ones finish (bounded), stop every backend. */
  shutdown(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.closed = (async () => {
      const models = this.all();
      for (const m of models) this.activations.get(m)?.abort.abort('shutdown');
      const bound = new Promise<void>((r) => setTimeout(r, this.options.drainTimeoutMs ?? 30_000).unref());
      await Promise.race([Promise.all(models.map((m) => m.drained())), bound]);
      await Promise.all(models.filter((m) => !m.remote).map((m) => this.stopModel(m, 'shutdown', 0)));
    })();
    return this.closed;
  }

  status(): { models: ModelStatus[]; groups: GroupStatus[] } {
    const models = this.all();
    return { models: models.map((m) => modelStatus(m, this.gates.get(m)?.size ?? 0)), groups: groupStatus(this.config, models) };
  }

  /** Capacity planning needs to see every model and the budgets. */
  isActivating(m: ModelRuntime): boolean {
    return m.process === 'starting' || m.memory === 'loading' || m.reserved;
  }
}
