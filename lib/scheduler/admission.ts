// Admission: whether a request may go to a model now, or wait, or is refused. Per-model concurrency
// slots (max_concurrency, a FIFO p-queue), the bound on waiting requests (max_queue), and the wait
// for the model to become ready, which the lifecycle's single-flight activation provides.
import PQueue from 'p-queue';
import { HubError, plural } from '../errors.js';
import type { Lifecycle } from './lifecycle.js';
import type { ModelRuntime, Outcome } from './model.js';

export interface Lease {
  model: ModelRuntime;
  /** How long the request waited for the model to start or load; undefined when it was ready. */
  coldStartMs?: number;
  /** How long it waited for a concurrency slot (max_concurrency); undefined when it did not. */
  queueMs?: number;
  /** Call exactly once when the response is over: how it ended decides the crash backoff. */
  release(outcome: Outcome): void;
}

export class Admission {
  private readonly gates = new Map<ModelRuntime, PQueue>();

  constructor(
    private readonly lifecycle: Lifecycle,
    /** Throws hub_shutting_down once the hub is closing. */
    private readonly assertOpen: () => void,
  ) {}

  /** Requests waiting for a max_concurrency slot (the rest of `queued` wait for a start or load). */
  queuedForSlot(m: ModelRuntime): number {
    return this.gates.get(m)?.size ?? 0;
  }

  configChanged(m: ModelRuntime): void {
    const gate = this.gates.get(m);
    if (gate) gate.concurrency = m.config.maxConcurrency;
  }

  /**
   * Gets the model running and loaded, within its concurrency limit, and counts the caller in flight.
   * Requests that must wait (for a start, a load or a slot) are bounded by max_queue.
   */
  async acquire(m: ModelRuntime): Promise<Lease> {
    const { maxConcurrency, maxQueue } = m.config;
    const gate = maxConcurrency === Infinity ? undefined : this.gateFor(m);
    const queued = m.waiting + (gate?.size ?? 0);
    const mustWait = !m.ready || (gate !== undefined && gate.pending >= gate.concurrency);
    if (mustWait && queued >= maxQueue) {
      // With nobody allowed to wait, a request for a model that is down still starts it for the next one.
      if (!m.ready && queued === 0) void this.lifecycle.activate(m, 'request').catch(() => {});
      const state = m.ready ? (maxConcurrency === 1 ? 'its one slot is busy' : `all ${maxConcurrency} of its slots are busy`) : 'it is not ready yet';
      throw new HubError('model_busy', `model ${m.name} cannot take this request now: ${state} and ${plural(queued, 'request')} already ${queued === 1 ? 'waits' : 'wait'} (max_queue ${maxQueue}); retry shortly`, { retryAfterMs: 1000 });
    }
    if (!gate) return this.admit(m);
    const queuedAt = performance.now();
    const slotWait = gate.pending >= gate.concurrency;
    return new Promise<Lease>((resolve, reject) => {
      void gate.add(async () => {
        const queueMs = slotWait ? performance.now() - queuedAt : undefined;
        let lease: Lease;
        try {
          lease = await this.admit(m);
        } catch (err) {
          return reject(err);
        }
        // The slot is held until the response is over.
        await new Promise<void>((done) => {
          const release = lease.release;
          resolve({ ...lease, queueMs, release: (outcome) => { release(outcome); done(); } });
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
        if (--m.waiting === 0) m.armIdle(); // an idle step that came due while it waited
      }
      this.assertOpen();
    }
    m.beginRequest();
    let released = false;
    return {
      model: m,
      coldStartMs: waited ? performance.now() - t0 : undefined,
      release: (outcome) => {
        if (released) return;
        released = true;
        m.endRequest(outcome);
      },
    };
  }

  private gateFor(m: ModelRuntime): PQueue {
    let gate = this.gates.get(m);
    if (!gate) this.gates.set(m, (gate = new PQueue({ concurrency: m.config.maxConcurrency })));
    return gate;
  }
}
