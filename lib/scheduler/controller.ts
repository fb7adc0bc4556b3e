// The controller: the one object that owns model state (SPEC §1). The gateway, the control API,
// the dashboard and the CLI only call it. It resolves names and aliases, makes activations single
// flight and serializes them per group through p-queue, runs the idle policy, and shuts down.
import { EventEmitter } from 'node:events';
import PQueue from 'p-queue';
import type { HubConfig, ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Driver } from '../runtime/driver.js';
import { ModelRuntime, type Reason, type Transition } from './model.js';
import { modelStatus, type ModelStatus } from './status.js';

export interface Lease {
  model: ModelRuntime;
  /** How long the request waited for the model to become ready; undefined when it was ready. */
  coldStartMs?: number;
  /** Call exactly once when the response is over. */
  release(healthy: boolean): void;
}

export interface ControllerOptions {
  driver: Driver;
  hubCommand: readonly string[];
  /** Bound on waiting for in-flight requests at shutdown. */
  drainTimeoutMs?: number;
}

export class Controller extends EventEmitter<{ transition: [Transition] }> {
  private readonly models = new Map<string, ModelRuntime>();
  private readonly ids = new Map<string, string>(); // name or alias -> model name
  private readonly queues = new Map<string, PQueue>();
  private readonly activations = new Map<ModelRuntime, { promise: Promise<void>; abort: AbortController }>();
  private closing = false;
  readonly startedAt = Date.now();

  constructor(
    public config: HubConfig,
    private readonly options: ControllerOptions,
  ) {
    super();
    for (const m of Object.values(config.models)) this.add(m);
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

  /** Every id a client may use: names and aliases. */
  allIds(): Array<{ id: string; model: ModelRuntime }> {
    return [...this.ids].map(([id, name]) => ({ id, model: this.models.get(name)! }));
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  // ---- requests --------------------------------------------------------------------------------

  /** Gets the model running and loaded, then counts the caller as in flight until it releases. */
  async acquire(m: ModelRuntime): Promise<Lease> {
    this.assertOpen();
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

  // ---- operator actions ------------------------------------------------------------------------

  async start(name: string): Promise<void> {
    this.assertOpen();
    const m = this.get(name);
    m.resetBackoff(); // an operator start is a deliberate retry
    while (!m.ready) await this.activate(m, 'operator');
  }

  async stop(name: string, reason: Reason = 'operator'): Promise<void> {
    const m = this.get(name);
    if (m.remote) throw new HubError('conflict', `model ${name} is remote (${m.config.url}); the hub does not run it, so it cannot stop it`);
    await this.stopModel(m, reason, false);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Single flight: every caller shares the one activation in progress for a model. */
  private activate(m: ModelRuntime, reason: Reason): Promise<void> {
    const running = this.activations.get(m);
    if (running) return running.promise;
    const abort = new AbortController();
    const promise = (async () => {
      await m.stopping;
      m.assertNotBackingOff();
      await this.queueFor(m).add(() => m.start(reason, abort.signal));
    })().finally(() => this.activations.delete(m));
    this.activations.set(m, { promise, abort });
    return promise;
  }

  /** Activations in one group are serialized so two loads never race for the same memory. */
  private queueFor(m: ModelRuntime): PQueue {
    const key = m.config.group ?? '';
    let queue = this.queues.get(key);
    if (!queue) {
      queue = new PQueue({ concurrency: m.config.group ? 1 : Infinity });
      this.queues.set(key, queue);
    }
    return queue;
  }

  private async stopModel(m: ModelRuntime, reason: Reason, drain: boolean): Promise<void> {
    if (m.stopping) return m.stopping;
    const run = (async () => {
      const activation = this.activations.get(m);
      if (activation) {
        activation.abort.abort(reason);
        await activation.promise.catch(() => {});
      }
      if (drain) await m.drained();
      await m.stop(reason);
    })().finally(() => { m.stopping = undefined; });
    m.stopping = run;
    return run;
  }

  private onIdle = (m: ModelRuntime): void => {
    if (m.inflight > 0 || m.waiting > 0 || !m.ready) return;
    void this.stopModel(m, 'idle', true);
  };

  private add(config: ModelConfig): void {
    const m = new ModelRuntime(config, {
      driver: this.options.driver,
      logDir: this.config.log.dir,
      hubCommand: this.options.hubCommand,
      emit: (t) => this.emit('transition', t),
    });
    m.onIdle = this.onIdle;
    this.models.set(config.name, m);
    for (const id of [config.name, ...config.aliases]) this.ids.set(id, config.name);
  }

  private assertOpen(): void {
    if (this.closing) throw new HubError('hub_shutting_down', 'the hub is shutting down and takes no new requests; retry once it is back');
  }

  /** Stop taking requests, let in-flight ones finish (bounded), stop every backend. */
  async shutdown(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.closed = (async () => {
      const models = [...this.models.values()];
      for (const m of models) this.activations.get(m)?.abort.abort('shutdown');
      const bound = new Promise<void>((r) => setTimeout(r, this.options.drainTimeoutMs ?? 30_000).unref());
      await Promise.race([Promise.all(models.map((m) => m.drained())), bound]);
      await Promise.all(models.map((m) => this.stopModel(m, 'shutdown', false)));
    })();
    return this.closed;
  }
  private closed: Promise<void> = Promise.resolve();

  status(): { models: ModelStatus[] } {
    return { models: [...this.models.values()].map(modelStatus) };
  }
}
