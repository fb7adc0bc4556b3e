// Throughput and latency per model over the last 5 minutes and the last hour, from the controller's
// `request` event: what the dashboard's cards, GET /hub/api/usage and `hub status --usage` show.
//
// Bounded in memory whatever the traffic: per model, one bucket per minute for the last hour (60),
// each with its counts and sums and a sample of at most SAMPLES_PER_BUCKET times to first token and
// durations (a uniform reservoir, Vitter's algorithm R). A percentile is read from the samples of the
// buckets in the window, each sample weighted by how many requests of its minute it stands for, so a
// busy minute counts as much as it should beside a quiet one. While no minute has more requests than
// the sample holds, the percentiles are exact (nearest rank); beyond, they are estimates. Sums
// (requests, tokens, time) are always exact. Nothing is computed per request beyond adding to a bucket.
import type { Controller, RequestSummary } from '../scheduler/controller.js';

export const MINUTE_MS = 60_000;
/** Minutes kept: the longest window. */
export const MINUTES = 60;
export const SAMPLES_PER_BUCKET = 32;
/** The windows, in minutes: the current minute and the ones before it. */
export const WINDOWS = { '5m': 5, '1h': 60 } as const;
export type WindowName = keyof typeof WINDOWS;

/** One sampled quantity of one minute: a reservoir of values and how many were offered. */
class Reservoir {
  readonly values: number[] = [];
  seen = 0;
  add(value: number, random: () => number): void {
    this.seen++;
    if (this.values.length < SAMPLES_PER_BUCKET) this.values.push(value);
    else {
      const i = Math.floor(random() * this.seen);
      if (i < SAMPLES_PER_BUCKET) this.values[i] = value;
    }
  }
}

interface Bucket {
  minute: number;
  requests: number;
  errors: number;
  tokensOut: number;
  /** ms the backend had the requests that reported output tokens (their duration less waits). */
  busyMs: number;
  ttft: Reservoir;
  duration: Reservoir;
}

export interface Percentiles {
  p50: number;
  p95: number;
}

export interface WindowStats {
  requests: number;
  errors: number;
  tokens_out: number;
  /**
   * Output tokens per second of the time the backend had the requests that reported tokens (their
   * durations less the waits for a start and for a turn): the rate a client of the model sees.
   */
  tokens_per_s: number | null;
  ttft_ms: Percentiles | null;
  duration_ms: Percentiles | null;
}

export type RecentStats = Record<WindowName, WindowStats>;

/** Per minute of the last hour, oldest first: what the sparkline draws. */
export interface MinuteSeries {
  requests: number[];
  /** Output tokens per second of the minute's requests (as tokens_per_s), 0 when none reported. */
  tokensPerS: number[];
}

export class ModelStats {
  private readonly models = new Map<string, Bucket[]>();
  private readonly onRequest = (r: RequestSummary) => this.add(r);

  constructor(
    private readonly controller?: Controller,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    controller?.on('request', this.onRequest);
  }

  close(): void {
    this.controller?.off('request', this.onRequest);
  }

  add(r: RequestSummary): void {
    if (!r.model) return;
    const minute = Math.floor(this.now() / MINUTE_MS);
    let buckets = this.models.get(r.model);
    if (!buckets) this.models.set(r.model, (buckets = []));
    let b = buckets[buckets.length - 1];
    if (!b || b.minute !== minute) {
      b = { minute, requests: 0, errors: 0, tokensOut: 0, busyMs: 0, ttft: new Reservoir(), duration: new Reservoir() };
      buckets.push(b);
      while (buckets.length && buckets[0].minute <= minute - MINUTES) buckets.shift();
    }
    b.requests++;
    if (r.status >= 400) b.errors++;
    b.duration.add(r.ms, this.random);
    if (r.ttfb_ms !== undefined) b.ttft.add(r.ttfb_ms, this.random);
    if (r.tokens_out) {
      const busy = r.ms - (r.queue_ms ?? 0) - (r.cold_start_ms ?? 0);
      if (busy > 0) {
        b.tokensOut += r.tokens_out;
        b.busyMs += busy;
      }
    }
  }

  /** The minutes of `model` within the last `minutes` (the current one included). */
  private within(model: string, minutes: number): Bucket[] {
    const buckets = this.models.get(model);
    if (!buckets) return [];
    const current = Math.floor(this.now() / MINUTE_MS);
    while (buckets.length && buckets[0].minute <= current - MINUTES) buckets.shift();
    if (!buckets.length) {
      this.models.delete(model); // a model unused for an hour (or removed) costs nothing
      return [];
    }
    return buckets.filter((b) => b.minute > current - minutes);
  }

  /** The model's figures over each window. */
  recent(model: string): RecentStats {
    const out = {} as RecentStats;
    for (const [name, minutes] of Object.entries(WINDOWS) as Array<[WindowName, number]>) out[name] = summarize(this.within(model, minutes));
    return out;
  }

  /** Per minute of the last hour, oldest first (MINUTES entries, zeros for quiet minutes). */
  series(model: string): MinuteSeries {
    const current = Math.floor(this.now() / MINUTE_MS);
    const requests = new Array<number>(MINUTES).fill(0);
    const tokensPerS = new Array<number>(MINUTES).fill(0);
    for (const b of this.within(model, MINUTES)) {
      const i = MINUTES - 1 - (current - b.minute);
      requests[i] = b.requests;
      tokensPerS[i] = b.busyMs > 0 ? round1((b.tokensOut / b.busyMs) * 1000) : 0;
    }
    return { requests, tokensPerS };
  }
}

const round1 = (n: number) => Math.round(n * 10) / 10;

function summarize(buckets: Bucket[]): WindowStats {
  let requests = 0, errors = 0, tokensOut = 0, busyMs = 0;
  for (const b of buckets) {
    requests += b.requests;
    errors += b.errors;
    tokensOut += b.tokensOut;
    busyMs += b.busyMs;
  }
  return {
    requests,
    errors,
    tokens_out: tokensOut,
    tokens_per_s: busyMs > 0 ? round1((tokensOut / busyMs) * 1000) : null,
    ttft_ms: percentiles(buckets.map((b) => b.ttft)),
    duration_ms: percentiles(buckets.map((b) => b.duration)),
  };
}

/**
 * p50 and p95 by nearest rank over weighted samples: the smallest value whose cumulative weight
 * reaches q of the total. Each sample of a minute weighs seen / kept (1 while nothing was dropped).
 */
export function percentiles(reservoirs: Array<{ values: number[]; seen: number }>): Percentiles | null {
  const weighted: Array<[number, number]> = [];
  let total = 0;
  for (const r of reservoirs) {
    if (!r.values.length) continue;
    const w = r.seen / r.values.length;
    for (const v of r.values) weighted.push([v, w]);
    total += r.seen;
  }
  if (!weighted.length) return null;
  weighted.sort((a, b) => a[0] - b[0]);
  const at = (q: number) => {
    const target = q * total;
    let sum = 0;
    for (const [v, w] of weighted) {
      sum += w;
      if (sum >= target - 1e-9) return v;
    }
    return weighted[weighted.length - 1][0];
  };
  return { p50: at(0.5), p95: at(0.95) };
}
