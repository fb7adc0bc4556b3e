// Prometheus series counted on the gateway's path without prom-client's per-call work: its observe()
// and inc() check and hash the label values on every call (even through a kept label child), ~4 µs
// each, four or five times a request. Here a series is made once per label set and counts in plain
// fields; prom-client still owns the registry and writes the text. A test holds the text equal to
// the one prom-client's own Histogram and Counter give for the same observations.
import { Counter, Histogram, type CounterConfiguration, type HistogramConfiguration } from 'prom-client';

type Labels = Record<string, string>;

/** One key per label set, whatever the order its labels were written in. */
const keyOf = (labels: Labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));

/** One label set's histogram: its count per bucket (the last one past every bound), sum and count. */
export class HistogramSeries {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly labels: Labels, private readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return; // prom-client would throw; a clock hiccup must not fail a request
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/** A prom-client Histogram whose values are its series' (made with `series`, kept by the caller). */
export class SeriesHistogram<T extends string> extends Histogram<T> {
  private readonly all = new Map<string, HistogramSeries>();
  private readonly bounds: number[];
  private readonly config: { name: string; help: string };

  constructor(config: HistogramConfiguration<T> & { buckets: number[] }) {
    super(config);
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    this.config = { name: config.name, help: config.help };
  }

  /** The series of a label set: made on the first call, the same one after. */
  series(labels: Record<T, string>): HistogramSeries {
    const key = keyOf(labels);
    let s = this.all.get(key);
    if (!s) this.all.set(key, (s = new HistogramSeries(labels, this.bounds)));
    return s;
  }

  /** What the registry writes as text: the shape of prom-client's own Histogram (labels apart from `le`). */
  async getForPromString() {
    const { name, help } = this.config;
    const values = [];
    for (const s of this.all.values()) {
      if (s.count === 0) continue; // as prom-client: a label set appears with its first observation
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i];
        values.push({ labels: { le: this.bounds[i] }, sharedLabels: s.labels, value: acc, metricName: `${name}_bucket`, exemplar: null });
      }
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${name}_bucket`, exemplar: null },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${name}_count`, exemplar: undefined },
      );
    }
    return { name, help, type: 'histogram' as const, values, aggregator: 'sum' as const };
  }

  override async get(): ReturnType<Histogram<T>['get']> {
    const data = await this.getForPromString();
    const values = data.values.map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return { ...data, values } as unknown as Awaited<ReturnType<Histogram<T>['get']>>;
  }

  override reset(): void {
    super.reset();
    // (prom-client's constructor calls reset, before this class's fields exist)
    for (const s of this.all?.values() ?? []) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

/** One label set's counter. */
export class CounterSeries {
  value = 0;
  /** Increased at least once (by 0 too): a series prom-client would show. */
  touched = false;
  constructor(readonly labels: Labels) {}
  inc(by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) return; // prom-client would throw
    this.value += by;
    this.touched = true;
  }
}

/** A prom-client Counter whose values are its series', handed to it when scraped (collect). */
export class SeriesCounter<T extends string> extends Counter<T> {
  private readonly all: Map<string, CounterSeries>;

  constructor(config: CounterConfiguration<T>) {
    const all = new Map<string, CounterSeries>();
    super({
      ...config,
      collect() {
        Counter.prototype.reset.call(this); // prom-client's values only: the series are the counts
        for (const s of all.values()) if (s.touched) this.inc(s.labels as Partial<Record<T, string>>, s.value);
      },
    });
    this.all = all;
  }

  /** The series of a label set: made on the first call, the same one after. */
  series(labels: Record<T, string>): CounterSeries {
    const key = keyOf(labels);
    let s = this.all.get(key);
    if (!s) this.all.set(key, (s = new CounterSeries(labels)));
    return s;
  }

  override reset(): void {
    super.reset();
    for (const s of this.all?.values() ?? []) {
      s.value = 0;
      s.touched = false;
    }
  }
}
