// The controller: the one object the gateway, the control API, the dashboard and the CLI call. It
// resolves names and aliases and hands each request or operator action to the model's actor
// (actor.ts), which owns that model's whole state; capacity and order across models are the
// coordinators' (one per group and one for the hub's budget: coordinators.ts). Besides that it
// applies reloads and shuts down. So a request's walk goes forward only: gateway → controller →
// actor → step → effects.
import { EventEmitter } from 'node:events';
import type { HubConfig, ModelConfig } from '../config/types.js';
import { formatBytes } from '../config/units.js';
import { HubError } from '../errors.js';
import type { Driver } from '../runtime/driver.js';
import { ModelActor, type Lease } from './actor.js';
import type { Transition } from './context.js';
import { clearSavedCache } from '../backends/llama-slots.js';
import { Coordinators } from './coordinators.js';
import { LoadHistory } from './load-history.js';
import { diffConfigs, type ConfigDiff } from './reload.js';
import type { LoadProgress } from './progress.js';
import { listedRooms, type GpuRoom } from './placement.js';
import type { WaitPolicy } from './state.js';
import { modelStatus, groupStatus, type ModelStatus, type GroupStatus } from './status.js';

export type { Lease } from './actor.js';
export type { LoadProgress } from './progress.js';
export type { RequestSummary } from './request-summary.js';
import type { RequestSummary } from './request-summary.js';

export interface ControllerOptions {
  driver: Driver;
  hubCommand: readonly string[];
  /** Bound on waiting for in-flight requests at shutdown. */
  drainTimeoutMs?: number;
  /** Where load times are kept across restarts (the hub's state_dir); in memory only when absent. */
  stateDir?: string;
}

/** A model came up: a start (spawn to ready) or a wake-up (memory load), and how long it took. */
export interface LoadEvent {
  model: string;
  what: 'start' | 'wake';
  ms: number;
}

export class Controller extends EventEmitter<{ transition: [Transition]; request: [RequestSummary]; load: [LoadEvent]; progress: [LoadProgress]; bug: [string]; notice: [string] }> {
  private readonly models = new Map<string, ModelActor>();
  private ids = new Map<string, string>(); // name or alias -> model name
  /** Removed by a reload and still finishing: not routable, but stopped at shutdown and shown in status. */
  private readonly retiring = new Map<ModelActor, () => void>();
  private readonly retirements = new Map<string, Promise<void>>();
  private readonly coordinators: Coordinators;
  readonly loadTimes: LoadHistory;
  private portQueue: Promise<unknown> = Promise.resolve();
  private closing = false;
  private closed: Promise<void> = Promise.resolve();
  readonly startedAt: number;
  /** What `memory: auto` models measure (or are estimated) to hold; the hub's memory monitor provides it. */
  sizeOf: (name: string) => { bytes: number; source: 'measured' | 'estimated' } | undefined = () => undefined;
  /**
   * The GPUs models with `gpus:` are placed on: by default the devices hub.yaml lists; with
   * `gpus: auto` the hub's memory monitor provides what nvidia-smi reports.
   */
  gpuRooms: () => readonly GpuRoom[] = () => listedRooms(this.config.gpus);

  constructor(
    public config: HubConfig,
    private readonly options: ControllerOptions,
  ) {
    super();
    // Every open event stream (dashboard tabs, `hub watch`) listens: many are normal, not a leak.
    this.setMaxListeners(0);
    this.startedAt = options.driver.clock.now();
    this.loadTimes = new LoadHistory(options.stateDir);
    this.coordinators = new Coordinators({ config: () => this.config, clock: options.driver.clock, holders: () => this.holders(), gpus: () => this.gpuRooms(), notice: (message) => this.emit('notice', message) });
    for (const m of Object.values(config.models)) this.add(m);
    this.indexIds();
  }

  // ---- lookup ----------------------------------------------------------------------------------

  /** The model a request's `model` field names (by name or alias). */
  resolve(id: string): ModelActor | undefined {
    const name = this.ids.get(id);
    return name === undefined ? undefined : this.models.get(name);
  }

  get(name: string): ModelActor {
    const m = this.models.get(name);
    if (!m) throw new HubError('not_found', `there is no model named "${name}"; configured models: ${this.names().join(', ')}`);
    return m;
  }

  names(): string[] {
    return [...this.models.keys()];
  }

  all(): ModelActor[] {
    return [...this.models.values()];
  }

  holders(): ModelActor[] {
    return [...this.models.values(), ...this.retiring.keys()];
  }

  /** Every id a client may use: names and aliases. */
  allIds(): Array<{ id: string; model: ModelActor }> {
    return [...this.ids].map(([id, name]) => ({ id, model: this.models.get(name)! }));
  }

  get driver(): Driver {
    return this.options.driver;
  }

  get shuttingDown(): boolean {
    return this.closing;
  }

  // ---- requests --------------------------------------------------------------------------------

  /** Resolves once the model is ready and the request admitted (counted in flight); see actor.ts. */
  async acquire(m: ModelActor, signal?: AbortSignal): Promise<Lease> {
    this.assertOpen();
    return m.request(signal);
  }

  /** The lease at once when the model can admit the request now (no promise); else undefined: use acquire(). */
  acquireNow(m: ModelActor): Lease | undefined {
    return this.closing ? undefined : m.requestNow();
  }

  /** For the access log and the events stream. */
  noteRequest(summary: RequestSummary): void {
    this.emit('request', summary);
  }

  // ---- operator actions (same scheduler as requests) -------------------------------------------

  async start(name: string): Promise<void> {
    this.assertOpen();
    await this.get(name).bringUp('start');
  }

  async load(name: string): Promise<void> {
    this.assertOpen();
    await this.managed(name, 'load').bringUp('load');
  }

  /**
   * Loads several models so that all of them end up loaded together, or refuses at once when they
   * cannot be (loading them one after another would evict the first for the last).
   */
  async loadMany(names: string[]): Promise<void> {
    this.assertOpen();
    const models = [...new Set(names)].map((n) => this.managed(n, 'load'));
    if (models.length === 1) return this.load(models[0].name);
    const problem = this.cannotHoldTogether(models);
    if (problem) throw new HubError('conflict', problem);
    for (const m of models) m.send({ type: 'hold', on: true });
    try {
      await Promise.all(models.map((m) => m.bringUp('load')));
    } finally {
      for (const m of models) m.send({ type: 'hold', on: false });
    }
  }

  private cannotHoldTogether(models: ModelActor[]): string | undefined {
    const list = models.map((m) => m.name).join(', ');
    const others = this.holders().filter((h) => !models.includes(h) && h.counted && h.config.pinned);
    for (const g of Object.values(this.config.groups)) {
      const members = models.filter((m) => m.config.group === g.name);
      const fixed = others.filter((o) => o.config.group === g.name);
      const count = members.length + fixed.length;
      const memory = [...members, ...fixed].reduce((n, m) => n + m.plannedMemory.bytes, 0);
      if (count > g.maxLoaded) return `models ${list} cannot all be loaded at once: group ${g.name} holds at most ${g.maxLoaded} (max_loaded)${fixed.length ? `, and pinned ${fixed.map((f) => f.name).join(', ')} stay` : ''}; load fewer of them, or raise groups.${g.name}.max_loaded`;
      if (memory > g.maxMemory) return `models ${list} cannot all be loaded at once: together they need ${formatBytes(memory)} in group ${g.name}, which holds ${formatBytes(g.maxMemory)} (max_memory); load fewer of them`;
    }
    const total = [...models, ...others].reduce((n, m) => n + m.plannedMemory.bytes, 0);
    if (total > this.config.maxMemory) return `models ${list} cannot all be loaded at once: together they need ${formatBytes(total)}, over the hub's max_memory of ${formatBytes(this.config.maxMemory)}`;
    return undefined;
  }

  async unload(name: string): Promise<void> {
    const m = this.managed(name, 'unload');
    if (m.memory === 'unloaded' && m.process !== 'starting' && m.queued === 0) return;
    await m.bringDown('unload', 'operator', Infinity);
  }

  /** Cancels a start under way (its waiters get an error), lets in-flight requests finish up to stop_timeout, stops. */
  async stop(name: string): Promise<void> {
    const m = this.managed(name, 'stop');
    await m.bringDown('stop', 'operator', m.config.stopTimeoutMs, true);
  }

  private managed(name: string, action: string): ModelActor {
    const m = this.get(name);
    if (m.remote) throw new HubError('conflict', `model ${name} is remote (${m.shownUrl}); the hub does not run it, so it cannot ${action} it`);
    return m;
  }

  /** Starts (and loads) every `preload` model; failures are recorded on the model, not thrown. */
  preload(): Promise<void> {
    const wanted = this.all().filter((m) => m.config.preload && !m.ready);
    return Promise.all(wanted.map((m) => m.bringUp('preload').catch(() => {}))).then(() => {});
  }

  // ---- config ----------------------------------------------------------------------------------

  private policyOf(config: ModelConfig, hub: HubConfig = this.config): WaitPolicy {
    const group = config.group ? hub.groups[config.group] : undefined;
    return { maxWaitMs: group?.maxWaitMs ?? Infinity };
  }

  private add(config: ModelConfig): ModelActor {
    const m = new ModelActor(config, this.policyOf(config), {
      driver: this.options.driver,
      logDir: this.config.log.dir,
      hubCommand: this.options.hubCommand,
      publish: (t) => this.emit('transition', t),
      changed: (actor) => {
        this.coordinators.changed(actor);
        if (actor.retired) this.checkRetired(actor);
      },
      bug: (message) => this.emit('bug', message),
      notice: (message) => this.emit('notice', message),
      portsInUse: () => new Set(this.holders().flatMap((x) => (x.config.port === undefined ? [] : [x.config.port]))),
      portLock: (work) => {
        const run = this.portQueue.then(work, work);
        this.portQueue = run.catch(() => {});
        return run;
      },
      predecessor: (actor) => (actor.retired ? undefined : this.retirements.get(actor.name)),
      recordLoad: (name, what, ms) => {
        this.loadTimes.record(name, what, ms);
        this.emit('load', { model: name, what, ms });
      },
      expectedLoadMs: (name) => this.loadTimes.expected(name),
      usualLoadMs: (name, what) => this.loadTimes.of(name)[what === 'start' ? 'start_ms' : 'wake_ms'] ?? undefined,
      progress: (p) => this.emit('progress', p),
      plannedMemory: (config) => {
        if (!config.memoryAuto) return { bytes: config.memory, source: 'declared' };
        return this.sizeOf(config.name) ?? { bytes: 0, source: 'unknown' };
      },
    });
    this.models.set(config.name, m);
    return m;
  }

  private indexIds(): void {
    const ids = new Map<string, string>();
    for (const m of this.models.values()) for (const id of [m.name, ...m.config.aliases]) ids.set(id, m.name);
    this.ids = ids;
  }

  /** What the GPUs hold changed (a fresh nvidia-smi reading): models waiting for room look again. */
  gpusChanged(): void {
    this.coordinators.gpusChanged();
  }

  /**
   * Applies a new config: added models are registered (and preloaded), removed ones drained and
   * stopped, launch changes applied once the model is idle (its old process serves until then),
   * policy changes applied live.
   */
  applyConfig(next: HubConfig): ConfigDiff {
    // Compared with what the models really run (a port moved at a start lives in the model's state).
    const running: HubConfig = { ...this.config, models: Object.fromEntries(this.all().map((m) => [m.name, m.intendedConfig])) };
    const diff = diffConfigs(running, next);
    this.dropSavedCaches(running, next, diff);
    this.config = next;
    for (const name of diff.removed) {
      const m = this.models.get(name)!;
      this.models.delete(name);
      this.retire(m);
    }
    for (const name of diff.added) this.add(next.models[name]);
    for (const name of [...diff.updated, ...diff.unchanged]) this.models.get(name)!.configure(next.models[name], this.policyOf(next.models[name], next));
    for (const name of diff.restarted) this.models.get(name)!.send({ type: 'relaunch', config: next.models[name] });
    this.indexIds();
    this.coordinators.replan();
    void this.preload();
    return diff;
  }

  /** keep_cache files of a model that is gone, or whose keep_cache was turned off, are removed. */
  private dropSavedCaches(before: HubConfig, next: HubConfig, diff: ConfigDiff): void {
    const stateDir = this.options.stateDir;
    if (!stateDir) return;
    for (const name of Object.keys(before.models)) {
      const was = before.models[name];
      if (!was.keepCache || (!diff.removed.includes(name) && next.models[name]?.keepCache)) continue;
      void clearSavedCache(stateDir, was).then((r) => r.error && this.emit('notice', r.error));
    }
  }

  /**
   * A removed model: no new request can name it any more, but the ones already accepted (in flight,
   * or waiting for a start under way) are served before it stops.
   */
  private retire(m: ModelActor): void {
    let done!: () => void;
    const before = this.retirements.get(m.name);
    const finished = new Promise<void>((resolve) => (done = resolve));
    const promise = (before ?? Promise.resolve()).then(() => finished);
    this.retirements.set(m.name, promise);
    void promise.then(() => {
      if (this.retirements.get(m.name) === promise) this.retirements.delete(m.name);
    });
    this.retiring.set(m, done);
    m.send({ type: 'retire' });
    this.checkRetired(m);
  }

  private checkRetired(m: ModelActor): void {
    const done = this.retiring.get(m);
    if (!done) return;
    const down = m.remote || m.process === 'stopped' || m.process === 'failed';
    if (!down || m.inflight > 0 || m.queued > 0) return;
    this.retiring.delete(m);
    done();
  }

  retirement(name: string): Promise<void> | undefined {
    return this.retirements.get(name);
  }

  // ---- shutdown and status ---------------------------------------------------------------------

  assertOpen(): void {
    if (this.closing) throw new HubError('hub_shutting_down', 'the hub is shutting down and takes no new requests; retry once it is back');
  }

  /** Stop taking requests, let in-flight ones finish (bounded), stop every backend, removed ones included. */
  shutdown(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    const drainMs = this.options.drainTimeoutMs ?? 30_000;
    const models = this.holders();
    for (const m of models) m.send({ type: 'shutdown' });
    this.closed = Promise.all(models.filter((m) => !m.remote).map((m) => m.bringDown('stop', 'shutdown', drainMs, true).catch(() => {}))).then(() => this.loadTimes.flush());
    return this.closed;
  }

  status(): { models: ModelStatus[]; groups: GroupStatus[] } {
    const now = this.driver.clock.now();
    const models = this.holders();
    return { models: models.map((m) => modelStatus(m, now, this.loadTimes)), groups: groupStatus(this.config, models, this.coordinators.outlook, now) };
  }
}
