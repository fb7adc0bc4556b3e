// One actor per model: it holds the model's state, feeds every event through the pure step function
// (step.ts), carries out the effects the step returns (spawn, signal, probe, memory call, timers,
// admitting or refusing waiters), and only after the new state is committed and the mailbox is
// empty publishes the transitions and tells its coordinator. Events that arrive while a step is being
// carried out (a grant sent back by the coordinator, a waiter settled inside an effect) wait in the
// mailbox, so no listener ever runs inside a transition, and one that throws is reported as a bug
// without stalling the model. All time comes from the driver's clock.
import { Agent } from 'node:http';
import type { BackendAdapter, BackendModel } from '../backends/index.js';
import { modelLogFile } from '../config/names.js';
import type { ModelConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import { within, type Timer } from '../runtime/clock.js';
import type { Driver, ProcessHandle } from '../runtime/driver.js';
import type { LastError, Transition } from './context.js';
import type { MemoryState, ProcessState } from './machine.js';
import { showUrl } from './show-url.js';
import { ProgressWatch, type LoadProgress } from './progress.js';
import { SlotKeeper } from './slot-keeper.js';
import { planSpawn, type SpawnPlan } from './spawn-plan.js';
import { admitsAtOnce, idleDeadline, isCounted, isMoving, isReady, newModelState, requestsWaiting, wantsCapacity, type ModelState, type TimerName, type WaitPolicy, type WaiterKind } from './state.js';
import { step, type ActorEffect, type ActorEvent, type Outcome, type Waited } from './step.js';
import type { Slot } from './capacity.js';

/** The least time between two readiness probes when output makes them come early. */
const PROBE_SPACING_MS = 2;

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
  private child?: { gen: number; handle: ProcessHandle };
  /** When the last readiness probe was sent, and how much the child had printed by then (see probe). */
  private lastProbe?: { at: number; outputChunks: number | undefined };
  /** Generations whose terminate came while their spawn was still being prepared. */
  private cancelledSpawns = new Set<number>();
  private readonly timers = new Map<TimerName, Armed>();
  private readonly pending = new Map<number, Pending>();

  private readonly loadWatch: ProgressWatch;
  private readonly slots = new SlotKeeper(() => this.name, (message) => this.ctx.notice(message));

  constructor(config: ModelConfig, policy: WaitPolicy, private readonly ctx: ActorContext) {
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
    return this.child && !this.child.handle.exit ? this.child.handle.pid : undefined;
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
    const handle = this.child?.handle;
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
    const handle = this.child?.gen === s.proc.gen ? this.child.handle : undefined;
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
        return void this.spawn(effect.gen);
      case 'terminate':
        return this.terminate(effect.gen);
      case 'memory':
        return void this.callMemory(effect.op, effect.gen);
      case 'drop-connections':
        this.connections?.destroy(); // in-flight requests see the connection drop and get backend_unavailable
        this.connections = undefined;
        return;
      case 'probe':
        return void this.probe(effect.gen, effect.delayMs);
      case 'check-remote':
        return void this.checkRemote();
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

  private async spawn(gen: number): Promise<void> {
    let plan: SpawnPlan;
    try {
      await this.ctx.predecessor(this); // removed and added back: the old one goes first
      plan = await this.ctx.portLock(() => planSpawn(this.spawnTarget(), this.ctx, this.s.reason));
    } catch (err) {
      plan = { error: `${(err as Error).message}; fix that and send the request again` };
    }
    if (!('error' in plan) && this.s.config.keepCache) plan.spec.argv = [...plan.spec.argv, ...(await this.slots.prepare(this.s.config))];
    if (this.cancelledSpawns.delete(gen)) return this.send({ type: 'exited', gen, exit: { code: null, signal: 'SIGTERM' }, tail: [] });
    let handle: ProcessHandle;
    try {
      if ('error' in plan) throw Object.assign(new Error(plan.error), { advice: true });
      handle = this.ctx.driver.spawn(plan.spec);
    } catch (err) {
      this.child = undefined; // the failure must not quote the previous run's log
      const e = err as Error & { advice?: boolean };
      return this.send({ type: 'spawn-failed', gen, message: e.advice ? e.message : `${e.message}; fix that and send the request again` });
    }
    this.child = { gen, handle };
    void handle.exited.then((exit) => this.send({ type: 'exited', gen, exit, tail: handle.logTail(20) }));
    this.send({ type: 'spawned', gen });
  }

  /** What planSpawn needs; a port it moves goes through the step like any other change. */
  private spawnTarget() {
    const actor = this;
    return {
      name: this.name,
      get config() {
        return actor.s.config;
      },
      remote: false,
      target: this.target,
      shownUrl: this.shownUrl,
      logFile: this.logFile,
      adapter: this.adapter,
      backendModel: this.backendModel,
      gpus: this.s.placement?.devices,
      movePort: (port: number) => this.send({ type: 'port-moved', port }),
    };
  }

  private terminate(gen: number): void {
    const child = this.child;
    if (child?.gen === gen && !child.handle.exit) {
      const stopMs = this.s.config.stopTimeoutMs;
      if (!this.s.config.keepCache) return void child.handle.stop(stopMs);
      // keep_cache: the slots are saved first, within half of stop_timeout (the stop's own bound
      // covers both), then the process gets what is left to exit.
      const began = this.ctx.driver.clock.now();
      void this.slots.save({ base: this.target, agent: this.agent }, gen, stopMs / 2).finally(() => {
        if (!child.handle.exit) void child.handle.stop(Math.max(0, stopMs - (this.ctx.driver.clock.now() - began)));
      });
    } else if (child?.gen !== gen) this.cancelledSpawns.add(gen); // still being prepared: it will not be spawned
  }

  private async probe(gen: number, delayMs: number): Promise<void> {
    const clock = this.ctx.driver.clock;
    let announced = false;
    const child = this.child?.gen === gen ? this.child.handle : undefined;
    if (delayMs > 0) {
      // Probe when the delay is up, or as soon as the backend prints something: servers announce that
      // they listen, and that line is the moment to look (no probe interval is added to the cold start).
      // Probes stay PROBE_SPACING_MS apart, so a backend that prints while it loads is not flooded.
      const earliest = (this.lastProbe?.at ?? -Infinity) + PROBE_SPACING_MS;
      const soon = () => Math.min(delayMs, Math.max(0, earliest - clock.now()));
      const printedSinceLastProbe = child?.outputChunks !== undefined && child.outputChunks !== this.lastProbe?.outputChunks;
      const readyLine = this.adapter.readyLine;
      await new Promise<void>((resolve) => {
        let timer = clock.after(printedSinceLastProbe ? soon() : delayMs, () => { cancel?.(); resolve(); });
        const cancel = printedSinceLastProbe ? undefined : child?.onNextOutput?.((text) => {
          timer.cancel();
          if (readyLine?.test(text)) announced = true;
          const wait = announced ? 0 : soon();
          if (wait > 0) timer = clock.after(wait, resolve);
          else resolve(); // a timer of 0 still costs the next turn of timers (~1 ms): look now
        });
      });
    }
    if (this.s.proc.gen !== gen || this.s.proc.process !== 'starting') return;
    this.lastProbe = { at: clock.now(), outputChunks: child?.outputChunks };
    const endpoint = { base: this.target, agent: this.agent };
    // A server that printed its ready line is ready: no round trip to ask it. The line may also come
    // while a probe is on its way (a probe is sent every health.interval while it loads): whichever
    // says ready first.
    const line = announced ? undefined : readyLineOf(child, this.adapter.readyLine);
    const asked = this.adapter.isReady(endpoint, this.backendModel).catch(() => false);
    const ready = announced || (await (line ? Promise.race([asked, line.seen]) : asked));
    line?.cancel();
    // keep_cache: the saved slots go back in before the first request is let through.
    if (ready && this.s.config.keepCache) await this.slots.restore(endpoint, gen, this.s.startDeadline - clock.now());
    this.send({ type: 'probed', gen, ready });
  }

  private async checkRemote(): Promise<void> {
    const config = this.s.config;
    const up = await this.adapter.isReady({ base: config.url!, apiKey: config.apiKey }, this.backendModel).catch(() => false);
    this.send({ type: 'remote-checked', up });
  }

  private async callMemory(op: 'load' | 'unload', gen: number): Promise<void> {
    const control = this.adapter.memory!;
    const endpoint = { base: this.target, agent: this.agent };
    const limitMs = this.s.config.startTimeoutMs;
    let error: string | undefined;
    try {
      const answered = await within(this.ctx.driver.clock, limitMs, (async () => {
        await control[op](endpoint, this.backendModel);
        const loaded = await control.isLoaded(endpoint, this.backendModel);
        if (loaded === (op === 'unload')) throw new Error(`it still reports its memory as ${op === 'unload' ? 'loaded' : 'unloaded'}`);
        return true;
      })());
      if (!answered) error = `no answer within ${limitMs / 1000}s`;
    } catch (err) {
      error = (err as Error).message;
    }
    this.send({ type: 'memory-done', gen, op, error });
  }
}

/** Resolves true when the child prints a line matching `pattern` (other output is waited past). */
function readyLineOf(child: ProcessHandle | undefined, pattern: RegExp | undefined): { seen: Promise<boolean>; cancel(): void } | undefined {
  if (!child?.onNextOutput || !pattern) return undefined;
  let cancel = () => {};
  const seen = new Promise<boolean>((resolve) => {
    const wait = () => {
      cancel = child.onNextOutput!((text) => (pattern.test(text) ? resolve(true) : wait()));
    };
    wait();
  });
  return { seen, cancel: () => cancel() };
}
