// How and when models move between states: single-flight activations serialized per group through
// p-queue (making room within the budgets first), safe evictions (stop admitting, drain, unload),
// stops, and the idle ladder's actions. The controller decides what to ask for; this carries it out
// through each model's executor, which runs one operation at a time.
import PQueue from 'p-queue';
import type { HubConfig } from '../config/types.js';
import { HubError } from '../errors.js';
import { within } from '../runtime/clock.js';
import type { Driver } from '../runtime/driver.js';
import type { ModelRuntime, Reason } from './model.js';
import { makeRoom, type CapacityHost } from './room.js';

interface Activation {
  promise: Promise<void>;
  abort: AbortController;
  /** True once it is inside the group queue doing the work; before that it only waits its turn. */
  running: boolean;
}

export interface LifecycleHost {
  readonly config: HubConfig;
  readonly driver: Driver;
  /** Every model that holds or may hold memory: the configured ones and those a reload removed that are still stopping. */
  holders(): ModelRuntime[];
  /** Throws hub_shutting_down once the hub is closing. */
  assertOpen(): void;
  /** Resolves once an earlier model of this name, removed by a reload, has stopped (it may hold the port). */
  retirement(name: string): Promise<void> | undefined;
}

export interface StopOptions {
  /** Wait this long for in-flight requests first (Infinity: until they are done). */
  drainMs: number;
  /** Operator and shutdown stops: cancel the start or memory call under way and fail the requests waiting for it. */
  force?: boolean;
}

export class Lifecycle implements CapacityHost {
  private readonly queues = new Map<string, PQueue>();
  private readonly activations = new Map<ModelRuntime, Activation>();
  private readonly evictions = new Map<ModelRuntime, Promise<void>>();
  private changeWaiters: Array<() => void> = [];

  constructor(private readonly host: LifecycleHost) {}

  get config(): HubConfig {
    return this.host.config;
  }
  get clock() {
    return this.host.driver.clock;
  }
  all(): ModelRuntime[] {
    return this.host.holders();
  }

  /** Single flight: every caller shares the one activation in progress for a model. */
  activate(m: ModelRuntime, reason: Reason): Promise<void> {
    const existing = this.activations.get(m);
    if (existing) return existing.promise;
    const abort = new AbortController();
    const record: Activation = { promise: Promise.resolve(), abort, running: false };
    const cancelled = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(this.cancelledError(m, abort.signal)), { once: true }));
    cancelled.catch(() => {});
    record.promise = (async () => {
      this.host.assertOpen();
      await Promise.race([m.whenOpen(), cancelled]); // closed while it drains or stops for someone else: wait for that
      const predecessor = m.retired ? undefined : this.host.retirement(m.name);
      if (predecessor) await Promise.race([predecessor, cancelled]); // removed and added back: the old one goes first
      this.assertNotRetired(m);
      m.assertNotBackingOff();
      const work = this.queueFor(m).add(() => {
        if (abort.signal.aborted) throw this.cancelledError(m, abort.signal);
        this.assertNotRetired(m);
        record.running = true;
        return this.bringUp(m, reason, abort.signal);
      });
      await Promise.race([work, cancelled]); // cancelled while waiting its turn: do not wait for the turn
    })().finally(() => {
      this.activations.delete(m);
      m.armIdle();
    });
    this.activations.set(m, record);
    return record.promise;
  }

  /** A model a reload removed starts no more (requests that got in before are served). */
  private assertNotRetired(m: ModelRuntime): void {
    if (m.retired && m.process !== 'running') throw new HubError('model_not_found', `model ${m.name} was removed from the config by a reload; send the request to another model`, { headers: { 'x-should-retry': 'false' } });
  }

  private cancelledError(m: ModelRuntime, signal: AbortSignal): HubError {
    try {
      this.host.assertOpen();
    } catch (err) {
      return err as HubError; // cancelled by the shutdown: say so
    }
    return new HubError('model_start_failed', `model ${m.name} was stopped (${String(signal.reason)}) while this request waited for it; send the request again to start it`);
  }

  /** Inside the group's queue: make room if needed, start the process, load the memory. */
  private async bringUp(m: ModelRuntime, reason: Reason, signal: AbortSignal): Promise<void> {
    if (m.ready) return;
    if (m.remote) return m.executor.start(reason, signal);
    try {
      if (!m.counted) await makeRoom(this, m, reason, signal);
      if (m.process !== 'running') await m.executor.start(reason, signal);
      if (m.memory !== 'loaded') await m.executor.load(reason, signal);
    } finally {
      // Keep the reservation until the requests that waited for this have been admitted (they resume
      // in microtasks); otherwise the next activation in the queue could evict it first and the two
      // would take turns forever.
      setImmediate(() => {
        m.reserved = false;
        this.changed();
        m.armIdle();
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
  async inProgress(m: ModelRuntime): Promise<void> {
    const activation = this.activations.get(m);
    if (activation?.running) await activation.promise.catch(() => {});
  }

  isActivating(m: ModelRuntime): boolean {
    return m.process === 'starting' || m.memory === 'loading' || m.reserved;
  }

  /** Frees a model's memory safely: stop admitting, drain, unload (or stop), admit again. */
  evict(m: ModelRuntime, reason: Reason): Promise<void> {
    // One eviction at a time per model: an idle unload and an operator unload may coincide.
    const running = this.evictions.get(m);
    if (running) return running;
    const run = this.closedWhile(m, `evicting (${reason})`, async () => {
      await m.drained();
      await m.executor.unload(reason);
    }).finally(() => this.evictions.delete(m));
    this.evictions.set(m, run);
    return run;
  }

  /** Stops a model: no new requests meanwhile; in-flight ones may finish first, up to `drainMs`. */
  stop(m: ModelRuntime, reason: Reason, options: StopOptions): Promise<void> {
    if (options.force) this.cancel(m, reason);
    return this.closedWhile(m, `stopping (${reason})`, async () => {
      if (options.drainMs === Infinity) await m.drained();
      else if (options.drainMs > 0) await within(this.clock, options.drainMs, m.drained());
      await m.executor.stop(reason);
    });
  }

  /** Fails the activation of `m` (running or waiting) and cancels the operation under way. */
  cancel(m: ModelRuntime, reason: string): void {
    this.activations.get(m)?.abort.abort(reason);
    m.executor.preempt(reason);
  }

  private async closedWhile(m: ModelRuntime, holder: string, work: () => Promise<void>): Promise<void> {
    m.close(holder);
    try {
      await work();
    } finally {
      m.open(holder);
    }
  }

  /** The idle ladder's step for a model is due. Whatever keeps it busy now re-arms the ladder when it ends. */
  onIdle = (m: ModelRuntime, step: 'unload' | 'stop'): void => {
    if (m.inflight > 0 || m.waiting > 0 || m.admissionClosed || m.busy || m.reserved || this.activations.has(m)) return;
    if (step === 'unload') void this.evict(m, 'idle');
    else void this.stop(m, 'idle', { drainMs: Infinity });
  };

  /** Resolves true on the next capacity-relevant change, false at the deadline or on abort. */
  changedBefore(deadline: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = this.clock.after(deadline - this.clock.now(), () => finish(false));
      const onAbort = () => finish(false);
      const finish = (changed: boolean) => {
        timer.cancel();
        signal.removeEventListener('abort', onAbort);
        this.changeWaiters = this.changeWaiters.filter((w) => w !== wake);
        resolve(changed);
      };
      const wake = () => finish(true);
      this.changeWaiters.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Something that frees or takes capacity changed: wake whoever waits for room. */
  changed = (): void => {
    for (const wake of this.changeWaiters.slice()) wake();
  };

  /** Cancels every activation and operation under way (shutdown). */
  abortAll(models: readonly ModelRuntime[], reason: string): void {
    for (const m of models) this.cancel(m, reason);
  }
}
