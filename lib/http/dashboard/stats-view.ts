// Throughput and latency of a model as the card and the model's page show them: a compact line for the
// last 5 minutes, a table of both windows, and a sparkline of the last hour drawn as an SVG polyline
// (points computed here; the page's content policy allows no inline style or script, and needs none).
import type { MinuteSeries, RecentStats, WindowStats } from '../model-stats.js';

export interface StatsRow {
  window: string;
  requests: string;
  errors: string;
  tokensPerS: string;
  ttft: string;
  duration: string;
}

export interface Sparkline {
  /** "x,y x,y …" in a 60 × 20 viewBox, oldest minute on the left; y grows downwards. */
  points: string;
  /** What it draws, in words (its accessible name and tooltip). */
  label: string;
}

export interface StatsView {
  /** The card's line: the last 5 minutes, or the last hour when the last 5 minutes were quiet. */
  line: string;
  /** The table view's cell: the last 5 minutes in a few words, '—' when they were quiet. */
  short: string;
  /** Both windows in full (the line's tooltip). */
  title: string;
  rows: StatsRow[];
  spark: Sparkline | null;
}

const ms = (n: number) => (n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`);
const pair = (p: { p50: number; p95: number } | null) => (p ? `${ms(p.p50)} / ${ms(p.p95)}` : '—');
const rate = (w: WindowStats) => (w.tokens_per_s === null ? '—' : `${w.tokens_per_s} tok/s`);
const LABEL = { '5m': 'last 5 min', '1h': 'last hour' } as const;

function words(name: keyof typeof LABEL, w: WindowStats): string {
  if (!w.requests) return `${LABEL[name]}: no requests`;
  const parts = [`${w.requests} req`];
  if (w.tokens_per_s !== null) parts.push(`${w.tokens_per_s} tok/s`);
  if (w.ttft_ms) parts.push(`first token p50 ${ms(w.ttft_ms.p50)}, p95 ${ms(w.ttft_ms.p95)}`);
  if (w.duration_ms) parts.push(`duration p50 ${ms(w.duration_ms.p50)}, p95 ${ms(w.duration_ms.p95)}`);
  return `${LABEL[name]}: ${parts.join(' · ')}`;
}

export function statsView(recent: RecentStats | undefined, series: MinuteSeries | undefined): StatsView {
  if (!recent) return { line: 'no requests in the last hour', short: '—', title: '', rows: [], spark: null };
  const shown = recent['5m'].requests ? '5m' : '1h';
  const w = recent[shown];
  const compact = [`${w.requests} req`, ...(w.tokens_per_s !== null ? [`${w.tokens_per_s} tok/s`] : []), ...(w.ttft_ms ? [`TTFT ${pair(w.ttft_ms)}`] : [])];
  const rows = (Object.keys(LABEL) as Array<keyof typeof LABEL>).map((name) => ({
    window: LABEL[name],
    requests: String(recent[name].requests),
    errors: String(recent[name].errors),
    tokensPerS: rate(recent[name]),
    ttft: pair(recent[name].ttft_ms),
    duration: pair(recent[name].duration_ms),
  }));
  return {
    line: recent['1h'].requests ? `${shown === '5m' ? '5 min' : '1 h'}: ${compact.join(' · ')}` : 'no requests in the last hour',
    short: recent['5m'].requests ? [recent['5m'].tokens_per_s !== null ? `${recent['5m'].tokens_per_s} tok/s` : `${recent['5m'].requests} req`, ...(recent['5m'].ttft_ms ? [`TTFT ${ms(recent['5m'].ttft_ms.p50)}`] : [])].join(' · ') : '—',
    title: `${words('5m', recent['5m'])}\n${words('1h', recent['1h'])}\n(TTFT and duration: p50 / p95)`,
    rows,
    spark: series && recent['1h'].requests ? sparkline(series) : null,
  };
}

/** Tokens/s per minute when the model reported tokens this hour, else requests per minute. */
export function sparkline(series: MinuteSeries): Sparkline {
  const tokens = series.tokensPerS.some((v) => v > 0);
  const values = tokens ? series.tokensPerS : series.requests;
  const max = Math.max(...values, 1e-9);
  const n = values.length;
  const points = values.map((v, i) => `${((i / Math.max(1, n - 1)) * 60).toFixed(1)},${(19 - (v / max) * 18).toFixed(1)}`).join(' ');
  const peak = Math.max(...values);
  return { points, label: tokens ? `output tokens/s per minute, last hour (peak ${peak})` : `requests per minute, last hour (peak ${peak})` };
}
