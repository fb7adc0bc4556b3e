// One actor per model: it holds the model's state, feeds every event through the pure step function
// (step.ts), carries out the effects the step returns (timers, admitting or refusing waiters here;
// spawning, stopping, probes and memory calls in backend-effects.ts), and only after the new state is
// committed and the mailbox is empty publishes the transitions and tells its coordinator. Events that
// arrive while a step is being carried out (a grant sent back by the coordinator, a waiter settled
// inside an effect) wait in the mailbox, so no listener ever runs inside a transition, and one that
// throws is reported as a bug without stalling the model. All time comes from the driver's clock.
import { Agent } from 'node:http';
import type { BackendAdapter, BackendModel } from '../backends/index.js';
import { modelLogFile } from '../config/names.js';
import type { ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import { within, type Timer } from '../runtime/clock.js';
import type { Driver } from '../runtime/driver.js';
import type { LastError, Transition } from './context.js';
import type { MemoryState, ProcessState } from './machine.js';
import { showUrl } from './show-url.js';
import { ProgressWatch, type LoadProgress } from './progress.js';
import { BackendEffects } from './backend-effects.js';
import { admitsAtOnce, idleDeadline, isCounted, isMoving, isReady, newModelState, requestsWaiting, wantsCapacity, type ModelState, type TimerName, type WaitPolicy, type WaiterKind } from './state.js';
import { step, type ActorEffect, type ActorEvent, type Outcome, type Waited } from './step.js';
import type { Slot } from './capacity.js';

export type { Outcome } from './step.js';

export interface Lease extends Waited {
  model: ModelActor;
  /** Call exactly once when the response is over: how it ended decides the crash backoff. */
  release(outcome: Outcome): void;
}

export interface ActorContext {
  driver: Driver;
  logDir: string;
  hubCommand: readonly string[];
  publish(t: Transition): void;
  /** The actor's state changed in a way its coordinator may care about. */
  changed(actor: ModelActor): void;
  bug(message: string): void;
  notice(message: string): void;
  /** Ports every model is configured with (removed ones still stopping included). */
  portsInUse(): ReadonlySet<number>;
  /** Runs port choices one at a time, so two models starting at once never pick the same free port. */
  portLock<T>(work: () => Promise<T>): Promise<T>;
  /** Resolves once an earlier model of this name, removed by a reload, has stopped (it may hold the port). */
  predecessor(actor: ModelActor): Promise<void> | undefined;
  recordLoad(name: string, what: 'start' | 'wake', ms: number): void;
  expectedLoadMs(name: string): number;
  /** The model's usual start or wake-up time, where it has one (for the load's progress estimate). */
  usualLoadMs(name: string, what: 'start' | 'wake'): number | undefined;
  /** Where a start or wake-up under way is (a few times a second at most). */
  progress(p: LoadProgress): void;
  /** The size the coordinators plan the model with: declared, or for `memory: auto` measured or estimated. */
  plannedMemory(config: ModelConfig): PlannedMemory;
}

export interface PlannedMemory {
  bytes: number;
  source: 'declared' | 'measured' | 'estimated' | 'unknown';
}

/** A timer the actor set, when it is due, and the deadline the state asks for now (none: undefined). */
interface Armed {
  timer: Timer;
  at: number;
  want: number | undefined;
}

interface Pending {
  resolve(value: Lease | undefined): void;
  reject(err: HubError): void;
}

let serial = 0;
let nextWaiter = 1;

export class ModelActor {
  /** Unique among all actors, also across reloads (a model removed and added back is a new actor). */
  readonly key = `${++serial}`;
  /** Keep-alive connections to the current child; replaced whenever a child is gone. */
  get agent(): Agent {
    return (this.connections ??= new Agent({ keepAlive: true }));
  }
  /** Made on first use: a hub with hundreds of models that are never started keeps no Agent for them. */
  private connections?: Agent;
  private s: ModelState;
  private mailbox: ActorEvent[] = [];
  private stepping = false;
  private outbox: Transition[] = [];
  private readonly timers = new Map<TimerName, Armed>();
  private readonly pending = new Map<number, Pending>();

  private readonly loadWatch: ProgressWatch;
  /** Spawning, stopping, probing and memory calls: the effects that reach the backend. */
  private readonly backend: BackendEffects;

  constructor(config: ModelConfig, policy: WaitPolicy, private readonly ctx: ActorContext) {
    this.backend = new BackendEffects(this, ctx);
    this.s = newModelState(config, this.hasMemoryControlFor(config), policy, modelLogFile(ctx.logDir, config.name));
    const actor = this;
    this.loadWatch = new ProgressWatch({
      get model() {
        return actor.name;
      },
      clock: ctx.driver.clock,
      parse: (line) => this.adapter.progress?.(line),
      usualMs: (what) => ctx.usualLoadMs(this.name, what),
      emit: (p) => this.safely(() => ctx.progress(p)),
    });
  }

  /** Where a start or wake-up under way is; undefined when none is. */
  get progress(): LoadProgress | undefined {
    return this.loadWatch.current;
  }

  // ---- what the rest of the hub reads --------------------------------------------------------

  get state(): Readonly<ModelState> {
    return this.s;
  }
  get name(): string {
    return this.s.name;
  }
  get config(): ModelConfig {
    return this.s.config;
  }
  get process(): ProcessState {
    return this.s.proc.process;
  }
  get memory(): MemoryState {
    return this.s.proc.memory;
  }
  get ready(): boolean {
    return isReady(this.s);
  }
  get inflight(): number {
    return this.s.inflight;
  }
  /** Requests and operator actions waiting for this model. */
  get queued(): number {
    return this.s.waiting.length;
  }
  get served(): number {
    return this.s.served;
  }
  get failures(): number {
    return this.s.failures;
  }
  get retryAt(): number {
    return this.s.retryAt;
  }
  get lastError(): LastError | undefined {
    return this.s.lastError;
  }
  get lastUsedAt(): number | undefined {
    return this.s.lastUsedAt;
  }
  get startedAt(): number | undefined {
    return this.s.startedAt;
  }
  get readyAt(): number | undefined {
    return this.s.readyAt;
  }
  get idleDeadline(): number | undefined {
    return idleDeadline(this.s);
  }
  get admitting(): boolean {
    return !this.s.down;
  }
  get retired(): boolean {
    return this.s.retired;
  }
  get restartPending(): boolean {
    return this.s.pending !== undefined;
  }
  /** The config it runs, or will run once a pending launch change is applied (what a reload compares). */
  get intendedConfig(): ModelConfig {
    return this.s.pending ?? this.s.config;
  }
  get counted(): boolean {
    return isCounted(this.s);
  }
  get remote(): boolean {
    return this.s.config.url !== undefined;
  }
  get hasMemoryControl(): boolean {
    return this.s.memoryControl;
  }
  get pid(): number | undefined {
    const child = this.backend.current;
    return child && !child.handle.exit ? child.handle.pid : undefined;
  }
  get adapter(): BackendAdapter {
    return this.ctx.driver.adapter(this.s.config);
  }
  get backendModel(): BackendModel {
    const c = this.s.config;
    return { id: c.servedModel ?? this.name, healthPath: c.health.path, sleepLevel: c.memoryRelease === 'level2' ? 2 : undefined };
  }
  get target(): string {
    return this.s.config.url ?? `http://127.0.0.1:${this.s.config.port}`;
  }
  get shownUrl(): string {
    return showUrl(this.target);
  }
  get logFile(): string {
    return this.s.logFile;
  }
  /** The backend process's measured resident memory, where known. */
  get residentBytes(): number | undefined {
    const pid = this.pid;
    return pid === undefined || this.process === 'stopped' ? undefined : this.ctx.driver.residentBytes?.(pid);
  }

  /** Models with `gpus:`: the devices its process runs on (from its grant until it stops). */
  get gpus(): readonly number[] | undefined {
    return this.s.placement?.devices;
  }

  /** The size the coordinators plan with (see ActorContext.plannedMemory). */
  get plannedMemory(): PlannedMemory {
    return this.ctx.plannedMemory(this.s.config);
  }

  /** What the coordinator plans with. */
  slot(now: number): Slot {
    const s = this.s;
    const planned = this.plannedMemory;
    return {
      key: this.key,
      name: s.name,
      group: s.config.group,
      memory: planned.bytes,
      sizeUnknown: planned.source === 'unknown',
      counted: isCounted(s),
      wants: wantsCapacity(s, now),
      oldestAt: s.waiting[0]?.at,
      busy: s.inflight > 0 || (isCounted(s) && requestsWaiting(s) > 0 && s.owed.length === 0),
      demand: s.inflight + requestsWaiting(s),
      owed: s.owed.length,
      moving: isMoving(s),
      leaving: s.down !== undefined || s.proc.process === 'stopping',
      pinned: s.config.pinned,
      held: s.held,
      loadedAt: s.upAt,
      servedSinceUp: s.served - s.servedAtUp,
      idleSince: s.idleSince ?? s.lastUsedAt,
      idleDeadline: idleDeadline(s),
      loadMs: this.ctx.expectedLoadMs(s.name),
      startTimeoutMs: s.config.startTimeoutMs,
      gpu: s.config.gpus && { ...s.config.gpus, on: s.placement?.devices, before: s.lastDevices },
    };
  }

  // ---- what the rest of the hub asks ---------------------------------------------------------

  /** A request wants the model: resolves with a lease once it is admitted (at once when ready and free). */
  request(signal?: AbortSignal): Promise<Lease> {
    const id = nextWaiter++;
    const lease = new Promise<Lease>((resolve, reject) => this.pending.set(id, { resolve: (l) => resolve(l!), reject }));
    if (signal) {
      const leave = () => this.pending.has(id) && this.send({ type: 'leave', id });
      signal.addEventListener('abort', leave, { once: true });
      void lease.then(() => signal.removeEventListener('abort', leave), () => signal.removeEventListener('abort', leave));
    }
    this.send({ type: 'arrive', id, kind: 'request' });
    return lease;
  }

  /**
   * The common case without a promise: a request admitted at once because the model is ready with a
   * free slot and nobody waits (the step's own rule, admitsAtOnce). Undefined when it would have to
   * wait; then `request` queues it.
   */
  requestNow(): Lease | undefined {
    if (this.stepping || !admitsAtOnce(this.s)) return undefined;
    const id = nextWaiter++;
    let admitted: Lease | undefined;
    this.pending.set(id, { resolve: (l) => { admitted = l; }, reject: () => {} });
    this.send({ type: 'arrive', id, kind: 'request' });
    this.pending.delete(id); // settled by now (admitted, by the rule above); never left behind
    return admitted;
  }

  /** An operator start or load (or a preload): resolves once the model is ready. */
  bringUp(kind: Exclude<WaiterKind, 'request'>): Promise<void> {
    const id = nextWaiter++;
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve: () => resolve(), reject }));
    this.send({ type: 'arrive', id, kind });
    return done;
  }

  /** Stop admitting, drain (up to `drainMs`), then unload or stop. Resolves once done. */
  bringDown(to: 'unload' | 'stop', reason: string, drainMs: number, force = false): Promise<void> {
    const id = nextWaiter++;
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve: () => resolve(), reject }));
    this.send({ type: 'down', to, reason, drainMs, force, id });
    return done;
  }

  /** After a failed forward to a remote: the next request checks its health again. */
  markRemoteDown(reason: string): void {
    this.send({ type: 'remote-failed', message: `remote model ${this.name} at ${this.shownUrl} could not be reached (${reason})` });
  }

  /** Resolves when the current child has exited (and that exit is recorded), or after `ms`. */
  async exitSettled(ms: number): Promise<void> {
    const handle = this.backend.current?.handle;
    if (handle && !handle.exit) await within(this.ctx.driver.clock, ms, handle.exited);
  }

  configure(config: ModelConfig, policy: WaitPolicy): void {
    this.send({ type: 'configure', config, memoryControl: this.hasMemoryControlFor(config), policy });
  }

  private hasMemoryControlFor(config: ModelConfig): boolean {
    return config.url === undefined && this.ctx.driver.adapter(config).memory !== undefined;
  }

  // ---- the loop: step, effects, then publish -------------------------------------------------

  send(event: ActorEvent): void {
    this.mailbox.push(event);
    if (this.stepping) return;
    this.stepping = true;
    try {
      for (let e = this.mailbox.shift(); e; e = this.mailbox.shift()) {
        const { state, effects } = step(this.s, e, this.ctx.driver.clock.now());
        this.s = state;
        for (const effect of effects) this.perform(effect);
      }
    } finally {
      this.stepping = false;
    }
    const published = this.outbox.splice(0);
    for (const t of published) this.safely(() => this.ctx.publish(t));
    this.watchLoad();
    this.safely(() => this.ctx.changed(this));
  }

  /** Starts or ends the progress watch as a start or wake-up begins or ends. */
  private watchLoad(): void {
    const s = this.s;
    const child = this.backend.current;
    const handle = child?.gen === s.proc.gen ? child.handle : undefined;
    const tap = handle?.onOutput ? (l: (text: string) => void) => handle.onOutput!(l) : undefined;
    // A start is watched from its spawn (before that, startedAt still holds the previous start's time).
    if (s.proc.process === 'starting') this.loadWatch.sync(handle ? 'start' : undefined, s.startedAt, tap);
    else if (s.proc.memory === 'loading') this.loadWatch.sync('wake', s.loadingSince, undefined);
    else this.loadWatch.sync(undefined, undefined, undefined);
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.ctx.bug(`a listener of model ${this.name} threw: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  private perform(effect: ActorEffect): void {
    switch (effect.kind) {
      case 'publish':
        return void this.outbox.push(effect.transition);
      case 'admit':
        return this.settle(effect.id, (p) => p.resolve(this.lease(effect.waited)));
      case 'resolve':
        for (const id of effect.ids) this.settle(id, (p) => p.resolve(undefined));
        return;
      case 'reject':
        for (const id of effect.ids) this.settle(id, (p) => p.reject(effect.error));
        return;
      case 'arm':
        return this.arm(effect.name, effect.at);
      case 'spawn':
        return void this.backend.spawn(effect.gen);
      case 'terminate':
        return this.backend.terminate(effect.gen);
      case 'memory':
        return void this.backend.callMemory(effect.op, effect.gen);
      case 'drop-connections':
        this.connections?.destroy(); // in-flight requests see the connection drop and get backend_unavailable
        this.connections = undefined;
        return;
      case 'probe':
        return void this.backend.probe(effect.gen, effect.delayMs);
      case 'check-remote':
        return void this.backend.checkRemote();
      case 'record-load':
        return this.safely(() => this.ctx.recordLoad(this.name, effect.what, effect.ms));
      case 'bug':
        return this.ctx.bug(effect.message);
    }
  }

  private settle(id: number, fn: (p: Pending) => void): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    fn(p);
  }

  private lease(waited: Waited): Lease {
    let released = false;
    return {
      model: this,
      ...waited,
      release: (outcome) => {
        if (released) return;
        released = true;
        this.send({ type: 'finish', outcome });
      },
    };
  }

  private arm(name: TimerName, at: number | undefined): void {
    const armed = this.timers.get(name);
    // A deadline that moves later, or goes away, leaves its timer as it is: the timer looks again when
    // it fires. The idle clock stops with each request and starts again with its answer, and moving
    // the timer both times cost a clearTimeout and a setTimeout per request. A timer kept for no
    // deadline stops keeping the process alive.
    if (armed && (at === undefined || at >= armed.at)) {
      armed.want = at;
      armed.timer.hold?.(at !== undefined);
      return;
    }
    armed?.timer.cancel();
    this.timers.delete(name);
    if (at !== undefined) this.setTimer(name, at);
  }

  private setTimer(name: TimerName, at: number): void {
    const clock = this.ctx.driver.clock;
    const armed: Armed = {
      at,
      want: at,
      timer: clock.after(at - clock.now(), () => {
        this.timers.delete(name);
        if (armed.want === undefined) return;
        if (armed.want > clock.now()) return this.setTimer(name, armed.want);
        this.send({ type: 'timer', name });
      }),
    };
    this.timers.set(name, armed);
  }
}
