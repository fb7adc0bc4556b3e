// `hub status [names..]`: the table of models and the group usage, or per-model usage (--usage), or
// the API's own JSON (--json). Read-only: GET /hub/api/status and GET /hub/api/usage.
import type { Percentiles, RecentStats } from '../http/model-stats.js';
import type { ModelStatus } from '../scheduler/status.js';
import type { HubClient } from './client.js';
import { errorMessage } from './client.js';
import type { Args } from './commands.js';
import { CliError, plural } from './errors.js';
import { locateHub } from './locate.js';
import { memoryLines } from './memory-lines.js';
import { EXIT, say } from './output.js';
import { colorsFor, countsLine, groupLines, modelTable, plainTable, render, span, type StatusBody } from './table.js';

export async function fetchStatus(client: HubClient): Promise<StatusBody> {
  const answer = await client.call('GET', '/hub/api/status');
  if (answer.status !== 200) throw new CliError(EXIT.failed, `the hub did not give its status: ${errorMessage(answer)}`);
  return answer.body as StatusBody;
}

/** The named models, in the order given; an unknown name is an error that lists the models there are. */
export function pick(models: ModelStatus[], names: string[]): ModelStatus[] {
  const unknown = names.filter((n) => !models.some((m) => m.name === n));
  if (unknown.length) {
    throw new CliError(EXIT.failed, `no model named ${unknown.join(', ')}; the hub has ${plural(models.length, 'model')}: ${models.map((m) => m.name).join(', ')}`);
  }
  return names.length ? names.map((n) => models.find((m) => m.name === n)!) : models;
}

export async function status(a: Args): Promise<number> {
  const { client } = await locateHub(a);
  const names = (a.names as string[] | undefined) ?? [];
  const body = await fetchStatus(client);
  const models = pick(body.models, names);
  if (a.usage) return usage(client, models.map((m) => m.name), a.json === true);
  if (a.json) {
    say.json(names.length ? { ...body, models } : body);
    return EXIT.ok;
  }
  const c = colorsFor(a);
  const hub = body.hub;
  if (hub) say.info(`modelhub ${hub.version} at ${hub.url} · up ${span(hub.uptime_s * 1000)} · ${countsLine(body.models)}${hub.shutting_down ? ' · SHUTTING DOWN' : ''}`);
  say.composed(`${modelTable(models, c, Date.now(), process.stdout.isTTY ? process.stdout.columns : undefined)}\n`);
  for (const line of groupLines(body.groups)) say.info(line);
  const memory = memoryLines(models, names.length ? [] : body.groups, names.length ? [] : body.gpus);
  for (const line of memory.info) say.info(line);
  for (const line of memory.warn) say.warn(line);
  return EXIT.ok;
}

interface Usage { model: string; requests: number; errors: number; tokens_in: number | null; tokens_out: number | null; cold_starts: number; cold_start_ms_total: number; cold_start_waits?: number; recent?: RecentStats }

async function usage(client: HubClient, names: string[], json: boolean): Promise<number> {
  const answer = await client.call('GET', '/hub/api/usage');
  if (answer.status !== 200) throw new CliError(EXIT.failed, `the hub did not give its usage: ${errorMessage(answer)}`);
  const report = answer.body as { since: string; models: Usage[] };
  const rows = report.models.filter((u) => names.includes(u.model));
  if (json) {
    say.json({ ...report, models: rows });
    return EXIT.ok;
  }
  say.info(`usage since ${report.since}`);
  const table = plainTable(['MODEL', 'REQUESTS', 'ERRORS', 'TOKENS IN', 'TOKENS OUT', 'COLD STARTS', 'AVG COLD START', 'WAITED FOR A START']);
  const n = (v: number | null) => (v === null ? '-' : String(v));
  for (const u of rows) {
    table.push([u.model, String(u.requests), String(u.errors), n(u.tokens_in), n(u.tokens_out), String(u.cold_starts), u.cold_starts ? span(u.cold_start_ms_total / u.cold_starts) : '-', String(u.cold_start_waits ?? 0)]);
  }
  say.composed(`${render(table)}\n`);
  if (rows.some((u) => u.recent)) say.composed(`${render(recentTable(rows))}\n`);
  return EXIT.ok;
}

/** The last 5 minutes and hour per model: tokens/s, time to first token and duration (p50 / p95). */
function recentTable(rows: Usage[]) {
  const table = plainTable(['MODEL', 'WINDOW', 'REQUESTS', 'ERRORS', 'TOKENS/S', 'FIRST TOKEN P50/P95', 'DURATION P50/P95']);
  const lat = (ms: number) => (ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`);
  const pair = (p: Percentiles | null) => (p ? `${lat(p.p50)} / ${lat(p.p95)}` : '-');
  for (const u of rows) {
    if (!u.recent) continue;
    for (const [name, label] of [['5m', 'last 5 min'], ['1h', 'last hour']] as const) {
      const w = u.recent[name];
      table.push([u.model, label, String(w.requests), String(w.errors), w.tokens_per_s === null ? '-' : String(w.tokens_per_s), pair(w.ttft_ms), pair(w.duration_ms)]);
    }
  }
  return table;
}
