// The status table `hub status` prints and `hub watch` redraws: cli-table3 for the alignment (it
// measures cells without their colour codes), picocolors for the colour, which only repeats what the
// text already says, so that nothing is lost without it. Text from the hub (names, errors) goes
// through visible() before any colour is put around it: a backend's escape sequences stay on the page.
import Table from 'cli-table3';
import { stripVTControlCharacters } from 'node:util';
import picocolors from 'picocolors';
import type { GpuView } from '../runtime/memory-monitor.js';
import type { ModelStatus, GroupStatus } from '../scheduler/status.js';
import { formatBytes } from '../config/units.js';
import { plural } from './errors.js';
import { visible } from './output.js';

export type Colors = ReturnType<typeof picocolors.createColors>;

/** Colour on a terminal only, and never with --no-color or $NO_COLOR (https://no-color.org). */
export function colorsFor(args: { color?: boolean }, stream: NodeJS.WriteStream = process.stdout): Colors {
  const enabled = args.color !== false && !process.env.NO_COLOR && stream.isTTY === true;
  return picocolors.createColors(enabled);
}

export interface StatusBody {
  hub?: { version: string; uptime_s: number; config: string; url: string; shutting_down: boolean };
  models: ModelStatus[];
  groups: GroupStatus[];
  /** Each GPU and the models holding its memory (empty without nvidia-smi). */
  gpus?: GpuView[];
}

/** 950 → "950ms", 12_400 → "12s", 252_000 → "4m 12s", 3_900_000 → "1h 5m". */
export function span(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)}h${m % 60 ? ` ${m % 60}m` : ''}`;
}

function processCell(m: ModelStatus, c: Colors, now: number): string {
  const tint = { running: c.green, starting: c.yellow, stopping: c.yellow, failed: c.red, stopped: c.dim }[m.process] ?? ((s: string) => s);
  const notes = [
    m.retry_at && `retry in ${span(Date.parse(m.retry_at) - now)}`,
    m.restart_pending && 'restart when idle',
    m.removed && 'removed',
    m.kind === 'remote' && 'remote',
  ].filter(Boolean);
  return tint(m.process) + (notes.length ? ` (${notes.join(', ')})` : '');
}

function memoryCell(m: ModelStatus, c: Colors): string {
  const tint = { loaded: c.green, loading: c.yellow, unloading: c.yellow, unloaded: c.dim }[m.memory] ?? ((s: string) => s);
  return tint(m.memory) + (m.memory_bytes ? ` ${formatBytes(m.memory_bytes)}` : '');
}

function idleCell(m: ModelStatus, now: number): string {
  if (m.pinned) return 'pinned';
  if (m.in_flight > 0) return 'busy';
  return m.idle_deadline ? span(Date.parse(m.idle_deadline) - now) : '-';
}

/** The first line of the last error (with the exit code), cut with … to `width` columns. */
function errorCell(m: ModelStatus, c: Colors, width: number): string {
  if (!m.last_error) return '';
  const first = visible(m.last_error.split('\n')[0]);
  return c.red(cut(m.last_exit_code === null ? first : `exit ${m.last_exit_code}: ${first}`, width));
}

// East Asian wide and fullwidth characters (and emoji) take two columns of a terminal.
const WIDE = /[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6\u{1F300}-\u{1F64F}\u{1F900}-\u{1F9FF}\u{20000}-\u{3FFFD}]/u;

/** Columns `text` takes on a terminal (colour codes take none). */
export function displayWidth(text: string): number {
  let n = 0;
  for (const ch of stripVTControlCharacters(text)) n += WIDE.test(ch) ? 2 : 1;
  return n;
}

/** `text` in at most `width` columns, the end replaced by … when it does not fit. */
function cut(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  let out = '';
  for (const ch of text) {
    if (displayWidth(out + ch) > width - 1) break;
    out += ch;
  }
  return `${out}…`;
}

const NO_BORDERS = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
};

/** Aligned columns two spaces apart, no borders: it pastes cleanly into issues and chats. */
export function plainTable(head: string[]): Table.Table {
  return new Table({ head, chars: NO_BORDERS, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true } });
}

export const render = (table: Table.Table): string => table.toString().split('\n').map((l) => l.trimEnd()).join('\n');

/** The last error column never gets narrower than this, however narrow the terminal. */
const MIN_ERROR_WIDTH = 12;
/** Its width where there is no terminal to fit (a pipe, a file). */
const PIPE_ERROR_WIDTH = 60;

/** Columns left out, in this order, while the table is wider than the terminal (--json has them all). */
const DROPPED_FIRST = ['PORT', 'PID', 'GROUP', 'GPU', 'IN-FLIGHT/QUEUED', 'IDLE IN'];

/**
 * The table of models. Given the terminal's width (`columns`), every line fits: the last error is
 * cut to the room left, and on a terminal too narrow even for that, the columns of DROPPED_FIRST are
 * left out one by one (MODEL, PROCESS, MEMORY and LAST ERROR always stay).
 */
export function modelTable(models: ModelStatus[], c: Colors, now = Date.now(), columns?: number): string {
  const cells = models.map((m) => ({
    MODEL: visible(m.name),
    PROCESS: processCell(m, c, now),
    MEMORY: memoryCell(m, c),
    PID: m.pid === null ? '-' : String(m.pid),
    PORT: m.port === null ? '-' : String(m.port),
    GROUP: m.group === null ? '-' : visible(m.group),
    GPU: m.gpus?.length ? m.gpus.join(',') : '-',
    'IN-FLIGHT/QUEUED': `${m.in_flight}/${m.queued}`,
    'IDLE IN': idleCell(m, now),
  }));
  // The GPU column only where some model is placed on GPUs (gpus: in hub.yaml).
  let shown = ['MODEL', 'PROCESS', 'MEMORY', 'PID', 'PORT', 'GROUP', ...(models.some((m) => m.gpus) ? ['GPU'] : []), 'IN-FLIGHT/QUEUED', 'IDLE IN'] as Array<keyof (typeof cells)[number]>;
  const build = (error: (i: number) => string | undefined) => {
    const table = plainTable([...shown, ...(error(-1) !== undefined ? ['LAST ERROR'] : [])].map((h) => c.bold(h)));
    cells.forEach((row, i) => table.push([...shown.map((k) => row[k]), ...(error(i) !== undefined ? [error(i)!] : [])]));
    return table;
  };
  let errorWidth = PIPE_ERROR_WIDTH;
  if (columns !== undefined) {
    // Lines of the table without its last column are padded to their full width: the widest is the room used.
    const used = () => Math.max(...build(() => undefined).toString().split('\n').map(displayWidth));
    for (const drop of DROPPED_FIRST) {
      if (used() + 2 + MIN_ERROR_WIDTH <= columns) break;
      shown = shown.filter((k) => k !== drop);
    }
    errorWidth = Math.max(MIN_ERROR_WIDTH, columns - used() - 2);
  }
  return render(build((i) => (i < 0 ? '' : errorCell(models[i], c, errorWidth))));
}

/** One line per group ("*" is the hub-wide budget, shown only when it has one). */
export function groupLines(groups: GroupStatus[]): string[] {
  return groups.flatMap((g) => {
    if (g.name === '*' && g.max_memory_bytes === null) return [];
    const count = g.max_loaded === null ? plural(g.loaded, 'model') + ' loaded' : `${g.loaded} of ${plural(g.max_loaded, 'model')} loaded`;
    const memory = g.max_memory_bytes !== null ? `, ${formatBytes(g.memory_bytes)} of ${formatBytes(g.max_memory_bytes)}` : g.memory_bytes ? `, ${formatBytes(g.memory_bytes)}` : '';
    const line = `${g.name === '*' ? 'hub-wide' : `group ${visible(g.name)}`}: ${count}${memory} (on_full: ${g.on_full})`;
    // Under contention: who waits (and since when), who loads next and why not yet.
    const waiting = (g.waiting ?? []).map((w) => `${visible(w.model)} ${w.count} waiting, oldest ${span(w.oldest_wait_ms)}`);
    const next = g.next ? `next: ${visible(g.next)}${g.why ? ` (${visible(g.why)})` : ''}` : '';
    return [line, ...(waiting.length ? [`  waiting: ${waiting.join('; ')}`] : []), ...(next ? [`  ${next}`] : [])];
  });
}

/** "3 models: 1 running, 1 starting, 1 stopped · 2 in flight". */
export function countsLine(models: ModelStatus[]): string {
  const by = new Map<string, number>();
  for (const m of models) by.set(m.process, (by.get(m.process) ?? 0) + 1);
  const states = ['running', 'starting', 'stopping', 'failed', 'stopped'].filter((s) => by.get(s)).map((s) => `${by.get(s)} ${s}`);
  const inflight = models.reduce((n, m) => n + m.in_flight, 0);
  const queued = models.reduce((n, m) => n + m.queued, 0);
  return `${plural(models.length, 'model')}${states.length ? `: ${states.join(', ')}` : ''} · ${inflight} in flight, ${queued} queued`;
}
