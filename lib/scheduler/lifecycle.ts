// How and when models move between states: single-flight activations serialized per group through
// p-queue (making room within the budgets first), safe evictions (stop admitting, drain, unload),
// stops, and the idle ladder's actions. The controller decides what to ask for; this carries it out.
import PQueue from 'p-queue';
import type { HubConfig } from '../config/types.js';
import { HubError } from '../errors.js';
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
  all(): ModelRuntime[];
  /** Throws hub_shutting_down once the hub is closing. */
  assertOpen(): void;
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
  all(): ModelRuntime[] {
    return this.host.all();
  }

  /** Single flight: every caller shares the one activation in progress for a model. */
  activate(m: ModelRuntime, reason: Reason): Promise<void> {
    const running = this.activations.get(m);
    if (running) return running.promise;
    const abort = new AbortController();
    const record: Activation = { promise: Promise.resolve(), abort, running: false };
    const aborted = new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    record.promise = (async () => {
      await Promise.race([m.stopping, aborted]);
      await Promise.race([m.whenOpen(), aborted]); // closed while it drains for someone else: wait for that
      if (abort.signal.aborted) {
        this.host.assertOpen();
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
  async inProgress(m: ModelRuntime): Promise<void> {
    const activation = this.activations.get(m);
    if (activation?.running) await activation.promise.catch(() => {});
  }

  /** Frees a model's memory safely: stop admitting, drain, unload (or stop), admit again. */
  evict(m: ModelRuntime, reason: Reason): Promise<void> {
    // One eviction at a time per model: an idle unload and an operator unload may coincide.
    const running = this.evictions.get(m);
    if (running) return running;
    const holder = `evicting (${reason})`;
    m.close(holder);
    const run = (async () => {
      try {
        await m.drained();
        await m.unload(reason);
      } finally {
        m.open(holder);
        this.evictions.delete(m);
      }
    })();
    this.evictions.set(m, run);
    return run;
  }

  /** Stops a model; waits for in-flight requests first, up to `drainMs`. */
  stop(m: ModelRuntime, reason: Reason, drainMs: number): Promise<void> {
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

  /** The idle ladder's step for a model is due (it checks the model really is idle). */
  onIdle = (m: ModelRuntime, step: 'unload' | 'stop'): void => {
    if (m.inflight > 0 || m.waiting > 0 || m.admissionClosed || m.stopping || m.reserved || this.activations.has(m)) return;
    if (step === 'unload' && m.ready) void this.evict(m, 'idle');
    if (step === 'stop' && m.process === 'running') void this.stop(m, 'idle', Infinity);
  };

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

  /** Something that frees or takes capacity changed: wake whoever waits for room. */
  changed = (): void => {
    for (const wake of this.changeWaiters.slice()) wake();
  };

  /** Cancels every activation (shutdown). */
  abortAll(reason: string): void {
    for (const activation of this.activations.values()) activation.abort.abort(reason);
  }

  isActivating(m: ModelRuntime): boolean {
    return m.process === 'starting' || m.memory === 'loading' || m.reserved;
  }
}
