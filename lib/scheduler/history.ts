// The hub's recent memory of what happened to each model: its last transitions (a bounded ring per
// model) and its last errors. The dashboard draws timelines and "why is it in this state" from it.
// It only listens: it is fed by the controller's `transition` events and reads a model's last error
// from status, so it can never change state itself.
import type { Transition } from './context.js';

/** Where transitions and errors come from: the controller (only what is needed here). */
export interface HistorySource {
  on(event: 'transition', listener: (t: Transition) => void): unknown;
  off(event: 'transition', listener: (t: Transition) => void): unknown;
  status(): { models: Array<{ name: string; last_error: string | null }> };
}

export interface RecordedError {
  at: string;
  message: string;
}

export interface HistoryOptions {
  /** Transitions kept per model: an hour of a model swapping every 30 s is ~500. */
  capacity?: number;
  /** Errors kept per model. */
  errorCapacity?: number;
}

/** A fixed-size ring: push is O(1), the oldest entry goes when full. */
class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;

  constructor(private readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.head] = item;
      this.head = (this.head + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  toArray(): T[] {
    return [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
  }

  last(): T | undefined {
    return this.items.length === 0 ? undefined : this.items[(this.head + this.items.length - 1) % this.items.length];
  }
}

export class History {
  private readonly transitionsByModel = new Map<string, Ring<Transition>>();
  private readonly errorsByModel = new Map<string, Ring<RecordedError>>();
  private readonly capacity: number;
  private readonly errorCapacity: number;
  private readonly listener = (t: Transition) => this.record(t);

  constructor(
    private readonly source: HistorySource,
    options: HistoryOptions = {},
  ) {
    this.capacity = options.capacity ?? 600;
    this.errorCapacity = options.errorCapacity ?? 10;
    source.on('transition', this.listener);
  }

  /** Stops listening (the memory stays readable). */
  detach(): void {
    this.source.off('transition', this.listener);
  }

  private record(t: Transition): void {
    this.ring(this.transitionsByModel, t.model, this.capacity).push(t);
    // Transitions are published once the step that made them is committed: the failure's message is
    // already on the model.
    if (t.axis === 'process' && t.to === 'failed') this.noteLastError(t.model, t.at);
  }

  private noteLastError(model: string, at: string): void {
    const message = this.source.status().models.find((m) => m.name === model)?.last_error;
    if (!message) return;
    const errors = this.ring(this.errorsByModel, model, this.errorCapacity);
    if (errors.last()?.message === message) return;
    errors.push({ at, message });
  }

  private ring<T>(map: Map<string, Ring<T>>, model: string, capacity: number): Ring<T> {
    let ring = map.get(model);
    if (!ring) map.set(model, (ring = new Ring<T>(capacity)));
    return ring;
  }

  /** The model's remembered transitions, oldest first, optionally only those at or after `sinceMs`. */
  transitions(model: string, sinceMs = -Infinity): Transition[] {
    const all = this.transitionsByModel.get(model)?.toArray() ?? [];
    return sinceMs === -Infinity ? all : all.filter((t) => Date.parse(t.at) >= sinceMs);
  }

  /** The model's last transition on `axis`: when (and why) its current state began. */
  lastChange(model: string, axis: Transition['axis']): Transition | undefined {
    const all = this.transitionsByModel.get(model)?.toArray() ?? [];
    for (let i = all.length - 1; i >= 0; i--) if (all[i].axis === axis) return all[i];
    return undefined;
  }

  /** The model's last errors (start failures, crashes), oldest first, masked as status shows them. */
  errors(model: string): RecordedError[] {
    return this.errorsByModel.get(model)?.toArray() ?? [];
  }
}
