// The hub-wide budget for request bodies held in memory (limits.max_body_total). Without it, fifty
// clients each sending a 30 MiB body make the hub hold 1.5 GiB at once. A body takes its share before
// it is read; one that does not fit waits a little for others to be released (its bytes stay in the
// client's socket meanwhile, not in the hub), then gets 503 hub_busy.
import { formatBytes } from '../config/units.js';
import { HubError } from '../errors.js';

/** How long a body may wait for room before it is refused. */
export const BUDGET_WAIT_MS = 3000;

interface Waiter {
  bytes: number;
  grant(): void;
}

export class BodyBudget {
  private held = 0;
  private readonly waiters: Waiter[] = [];

  /** `total` is read at each decision, so a reload that changes limits.max_body_total applies at once. */
  constructor(
    private readonly total: () => number,
    private readonly waitMs = BUDGET_WAIT_MS,
  ) {}

  /** Bytes of request bodies held now. */
  get heldBytes(): number {
    return this.held;
  }

  /** Takes `bytes` if they fit now. */
  tryTake(bytes: number): boolean {
    if (this.held + bytes > this.total()) return false;
    this.held += bytes;
    return true;
  }

  /**
   * Takes `bytes`, waiting up to the wait bound for room; rejects with hub_busy after it. Waiters are
   * served in arrival order, but one that does not fit yet does not hold back smaller ones behind it.
   */
  take(bytes: number): Promise<void> {
    if (this.tryTake(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(this.busy());
      }, this.waitMs);
      this.waiters.push(waiter);
    });
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i];
      if (this.tryTake(w.bytes)) {
        this.waiters.splice(i, 1);
        w.grant();
      } else i++;
    }
  }

  private busy(): HubError {
    return new HubError(
      'hub_busy',
      `the hub is receiving too many large request bodies at once (limits.max_body_total, ${formatBytes(this.total())}, is in use); retry in a moment, or raise limits.max_body_total in hub.yaml`,
      { retryAfterMs: 1000 },
    );
  }
}
