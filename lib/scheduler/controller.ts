// The controller: the one object that owns model state. The gateway, the control API,
// the dashboard and the CLI only call it. It resolves names and aliases, admits requests (through
// admission.ts), offers the operator actions, applies reloads and shuts down; the
// moves themselves (activations, evictions, stops, idle steps) are carried out by lifecycle.ts.
import { EventEmitter } from 'node:events';
import type { HubConfig, ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import { within } from '../runtime/clock.js';
import type { Driver } from '../runtime/driver.js';
import { Admission, type Lease } from './admission.js';
import { Lifecycle } from './lifecycle.js';
import { ModelRuntime, type Transition } from './model.js';
import { diffConfigs, type ConfigDiff } from './reload.js';
import { modelStatus, groupStatus, type ModelStatus, type GroupStatus } from './status.js';

export type { Lease } from './admission.js';

export interface RequestSummary {
  id: string;
  model?: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  /** Until the backend's first body byte (proxied requests). */
  ttfb_ms?: number;
  cold_start_ms?: number;
  queue_ms?: number;
  bytes_in?: number;
  bytes_out?: number;
  /** As the backend reported them (prompt/input and completion/output tokens). */
  tokens_in?: number;
  tokens_out?: number;
  /** Set when the response ended before all of it was sent. */
  cut?: 'stalled' | 'closed early';
}

export interface ControllerOptions {
  driver: Driver;
  hubCommand: readonly string[];
  /** Bound on waiting for in-flight requests at shutdown. */
  drainTimeoutMs?: number;
}

export class Controller extends EventEmitter<{ transition: [Transition]; request: [RequestSummary]; bug: [string]; notice: [string] }> {
  private readonly models = new Map<string, ModelRuntime>();
  private ids = new Map<string, string>(); // name or alias -> model name
  private readonly lifecycle = new Lifecycle(this);
  private readonly admission = new Admission(this.lifecycle, () => this.assertOpen());
  /** Removed by a reload and still finishing: not routable, but stopped at shutdown and shown in status. */
  private readonly retiring = new Set<ModelRuntime>();
  private readonly retirements = new Map<string, Promise<void>>();
  private closing = false;
  private closed: Promise<void> = Promise.resolve();
  readonly startedAt: number;

  constructor(
    public config: HubConfig,
    private readonly options: ControllerOptions,
  ) {
    super();
    this.startedAt = options.driver.clock.now();
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

  holders(): ModelRuntime[] {
    return [...this.models.values(), ...this.retiring];
  }

  /** Every id a client may use: names and aliases. */
  allIds(): Array<{ id: string; model: ModelRuntime }> {
    return [...this.ids].map(([id, name]) => ({ id, model: this.models.get(name)! }));
  }

  get driver(): Driver {
    return this.options.driver;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  // ---- requests --------------------------------------------------------------------------------

  /** Gets the model running and loaded, within its limits, and counts the caller in flight (admission.ts). */
  async acquire(m: ModelRuntime): Promise<Lease> {
    this.assertOpen();
    return this.admission.acquire(m);
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
    while (m.process !== 'running') await this.lifecycle.activate(m, 'operator');
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

  /** Cancels a start under way (its waiters get an error), lets in-flight requests finish up to stop_timeout, stops. */
  async stop(name: string): Promise<void> {
    const m = this.managed(name, 'stop');
    await this.lifecycle.stop(m, 'operator', { drainMs: m.config.stopTimeoutMs, force: true });
  }

  private managed(name: string, action: string): ModelRuntime {
    const m = this.get(name);
    if (m.remote) throw new HubError('conflict', `model ${name} is remote (${m.shownUrl}); the hub does not run it, so it cannot ${action} it`);
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
      bug: (message) => this.emit('bug', message),
      notice: (message) => this.emit('notice', message),
      portsInUse: () => new Set(this.holders().flatMap((x) => (x.config.port === undefined ? [] : [x.config.port]))),
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
   * Applies a new config: added models are registered (and preloaded), removed ones drained and
   * stopped, launch changes applied once the model is idle (its old process serves until then),
   * policy changes applied live.
   */
  applyConfig(next: HubConfig): ConfigDiff {
    const diff = diffConfigs(this.config, next);
    this.config = next;
    for (const name of diff.removed) {
      const m = this.models.get(name)!;
      this.models.delete(name);
      this.retire(m);
    }
    for (const name of diff.added) this.add(next.models[name]);
    for (const name of diff.updated) {
      const m = this.models.get(name)!;
      m.config = next.models[name];
      this.admission.configChanged(m);
      m.armIdle();
    }
    for (const name of diff.restarted) this.relaunch(this.models.get(name)!, next.models[name]);
    this.indexIds();
    this.lifecycle.changed();
    void this.preload();
    return diff;
  }

  /**
   * A removed model: no new request can name it any more, but the ones already accepted (in flight,
   * or waiting for a start under way) are served before it stops.
   */
  private retire(m: ModelRuntime): void {
    m.retired = true;
    m.pendingConfig = undefined;
    this.retiring.add(m);
    const before = this.retirements.get(m.name) ?? Promise.resolve();
    const done = (async () => {
      await before;
      await this.lifecycle.inProgress(m);
      await new Promise((resolve) => setImmediate(resolve)); // let requests that waited for the start begin
      await this.lifecycle.stop(m, 'reload', { drainMs: Infinity });
    })().finally(() => {
      m.clearIdle();
      this.retiring.delete(m);
      if (this.retirements.get(m.name) === done) this.retirements.delete(m.name);
    });
    this.retirements.set(m.name, done);
  }

  retirement(name: string): Promise<void> | undefined {
    return this.retirements.get(name);
  }

  /** A launch change: applied now if the model is down, else once it is idle (one waiter per model). */
  private relaunch(m: ModelRuntime, config: ModelConfig): void {
    const waiting = m.pendingConfig !== undefined;
    m.pendingConfig = config;
    if (!waiting) void this.swapWhenIdle(m);
  }

  private async swapWhenIdle(m: ModelRuntime): Promise<void> {
    while (m.pendingConfig && !m.retired) {
      await m.drained();
      await this.lifecycle.inProgress(m);
      if (m.inflight > 0 || !m.pendingConfig || m.retired) continue; // a request began meanwhile: keep serving
      m.close('reload');
      try {
        if (m.inflight > 0) continue;
        if (m.process !== 'stopped' && m.process !== 'failed') await this.lifecycle.stop(m, 'reload', { drainMs: Infinity });
        if (!m.pendingConfig || m.retired) continue;
        m.config = m.pendingConfig;
        m.pendingConfig = undefined;
        m.resetBackoff();
      } finally {
        m.open('reload');
      }
      // A preload model comes back up with its new settings: the reload's own preload ran while the
      // old process was still serving, so it skipped this one.
      if (m.config.preload && !m.pendingConfig && !m.retired && !this.closing) void this.lifecycle.activate(m, 'preload').catch(() => {});
    }
  }

  // ---- shutdown and status ---------------------------------------------------------------------

  assertOpen(): void {
    if (this.closing) throw new HubError('hub_shutting_down', 'the hub is shutting down and takes no new requests; retry once it is back');
  }

  /** Stop taking requests, let in-flight ones finish (bounded), stop every backend, removed ones included. */
  shutdown(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.closed = (async () => {
      const models = () => this.holders();
      this.lifecycle.abortAll(models(), 'shutdown');
      await within(this.driver.clock, this.options.drainTimeoutMs ?? 30_000, Promise.all(models().map((m) => m.drained())));
      const managed = models().filter((m) => !m.remote);
      this.lifecycle.abortAll(managed, 'shutdown'); // anything that began while we drained
      await Promise.all(managed.map((m) => this.lifecycle.stop(m, 'shutdown', { drainMs: 0, force: true })));
      for (const m of managed) m.clearIdle();
    })();
    return this.closed;
  }

  status(): { models: ModelStatus[]; groups: GroupStatus[] } {
    const now = this.driver.clock.now();
    const models = this.holders();
    return { models: models.map((m) => modelStatus(m, this.admission.queuedForSlot(m), now)), groups: groupStatus(this.config, models) };
  }
}
