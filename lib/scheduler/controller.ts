// The controller: the one object that owns model state (SPEC §1). The gateway, the control API,
// the dashboard and the CLI only call it. It resolves names and aliases, admits requests (per-model
// concurrency and queue limits), offers the operator actions, applies reloads and shuts down; the
// moves themselves (activations, evictions, stops, idle steps) are carried out by lifecycle.ts.
import { EventEmitter } from 'node:events';
import PQueue from 'p-queue';
import type { HubConfig, ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Driver } from '../runtime/driver.js';
import { Lifecycle } from './lifecycle.js';
import { ModelRuntime, type Transition } from './model.js';
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

export class Controller extends EventEmitter<{ transition: [Transition]; request: [RequestSummary] }> {
  private readonly models = new Map<string, ModelRuntime>();
  private ids = new Map<string, string>(); // name or alias -> model name
  private readonly gates = new Map<ModelRuntime, PQueue>();
  private readonly lifecycle = new Lifecycle(this);
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
        await this.lifecycle.activate(m, 'request');
      } catch (err) {
        this.assertOpen(); // a start cancelled by the shutdown says so
        throw err;
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
    while (m.process !== 'running' || m.stopping) await this.lifecycle.activate(m, 'operator');
  }

  async load(name: string): Promise<void> {
    this.assertOpen();
    const m = this.managed(name, 'load');
    m.resetBackoff();
    while (!m.ready) await this.lifecycle.activate(m, 'operator');
  }

  async unload(name: string): Promise<void> {
    const m = this.managed(name, 'unload');
    await this.lifecycle.inProgress(m);
    if (m.memory === 'unloaded') return;
    await this.lifecycle.evict(m, 'operator');
  }

  async stop(name: string): Promise<void> {
    const m = this.managed(name, 'stop');
    await this.lifecycle.stop(m, 'operator', m.config.stopTimeoutMs);
  }

  private managed(name: string, action: string): ModelRuntime {
    const m = this.get(name);
    if (m.remote) throw new HubError('conflict', `model ${name} is remote (${m.config.url}); the hub does not run it, so it cannot ${action} it`);
    return m;
  }

  /** Starts (and loads) every `preload` model; failures are recorded on the model, not thrown. */
  preload(): Promise<void> {
    const wanted = this.all().filter((m) => m.config.preload && !m.ready);
    return Promise.all(wanted.map((m) => this.lifecycle.activate(m, 'preload').catch(() => {}))).then(() => {});
  }

  // ---- config ----------------------------------------------------------------------------------

  private add(config: ModelConfig): ModelRuntime {
    const m = new ModelRuntime(config, {
      driver: this.options.driver,
      logDir: this.config.log.dir,
      hubCommand: this.options.hubCommand,
      emit: (t) => this.emit('transition', t),
      changed: this.lifecycle.changed,
    });
    m.onIdle = this.lifecycle.onIdle;
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
    this.lifecycle.changed();
    void this.preload();
    return diff;
  }

  /**
   * A removed model: no new request can name it any more, but the ones already accepted (in flight,
   * or waiting for its start) are served before it stops.
   */
  private async retire(m: ModelRuntime): Promise<void> {
    await this.lifecycle.inProgress(m);
    await new Promise((resolve) => setImmediate(resolve)); // let requests that waited for the start begin
    await m.drained();
    await this.lifecycle.stop(m, 'reload', Infinity);
  }

  /** Waits for in-flight requests (new ones queue), stops the old process, switches the config. */
  private async restart(m: ModelRuntime, config: ModelConfig): Promise<void> {
    m.close('reload');
    try {
      await this.lifecycle.inProgress(m);
      await m.drained();
      if (m.process !== 'stopped' && m.process !== 'failed') await this.lifecycle.stop(m, 'reload', Infinity);
      m.config = config;
      m.resetBackoff();
    } finally {
      m.open('reload');
    }
  }

  // ---- shutdown and status ---------------------------------------------------------------------

  assertOpen(): void {
    if (this.closing) throw new HubError('hub_shutting_down', 'the hub is shutting down and takes no new requests; retry once it is back');
  }

  /** Stop taking requests, let in-flight ones finish (bounded), stop every backend. */
  shutdown(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.closed = (async () => {
      const models = this.all();
      this.lifecycle.abortAll('shutdown');
      const bound = new Promise<void>((r) => setTimeout(r, this.options.drainTimeoutMs ?? 30_000).unref());
      await Promise.race([Promise.all(models.map((m) => m.drained())), bound]);
      await Promise.all(models.filter((m) => !m.remote).map((m) => this.lifecycle.stop(m, 'shutdown', 0)));
    })();
    return this.closed;
  }

  status(): { models: ModelStatus[]; groups: GroupStatus[] } {
    const models = this.all();
    return { models: models.map((m) => modelStatus(m, this.gates.get(m)?.size ?? 0)), groups: groupStatus(this.config, models) };
  }

}
