// `hub watch`: the status table redrawn in place (log-update) until Ctrl-C. Every event on
// /hub/api/events triggers a fresh GET /hub/api/status (the events say that something changed; the
// status says all of it), and a timer refreshes the idle countdowns. When the stream drops, the timer
// alone polls, the header says so, and the stream is tried again on each tick.
import { createLogUpdate } from 'log-update';
import type { Transition } from '../scheduler/context.js';
import type { Args } from './commands.js';
import { CliError } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, visible } from './output.js';
import { describeTransition } from './progress.js';
import { fetchStatus } from './status.js';
import { colorsFor, countsLine, groupLines, modelTable, type StatusBody } from './table.js';
import { parseDuration } from '../config/units.js';
import { safeWrite } from '../stdio.js';

export async function watch(a: Args): Promise<number> {
  const { client } = await locateHub(a);
  const intervalMs = parseDuration(/^\d+(\.\d+)?$/.test(String(a.interval)) ? Number(a.interval) : a.interval);
  if (intervalMs === undefined || intervalMs < 100) throw new CliError(EXIT.usage, `--interval: expected a duration of 100ms or more like "1s", got ${JSON.stringify(a.interval)}`);
  const c = colorsFor(a);
  let body: StatusBody = await fetchStatus(client); // exit 3 at once when no hub answers
  let streamNote = 'live';
  let trouble: string | undefined;
  const recent: string[] = [];
  const screen = redrawer();
  let ended = false;

  const frame = () => {
    const hub = body.hub;
    const head = visible(`modelhub ${hub?.version ?? ''} at ${hub?.url ?? client.origin} · ${countsLine(body.models)}${hub?.shutting_down ? ' · SHUTTING DOWN' : ''}`);
    return [
      c.bold(head),
      streamNote === 'live' ? c.dim('live from the event stream') : c.yellow(`[warn] ${streamNote}`),
      ...(trouble ? [c.red(`[warn] ${visible(trouble)}`)] : []),
      modelTable(body.models, c, Date.now(), process.stdout.isTTY ? process.stdout.columns : undefined),
      ...groupLines(body.groups),
      ...(recent.length ? ['', 'recent:', ...recent.map((l) => `  ${l}`)] : []),
      '',
      c.dim('Ctrl-C to exit'),
    ].join('\n');
  };
  const draw = () => { if (!ended) screen(frame()); };

  let refreshing = false;
  const refresh = async () => {
    if (refreshing) return;
    refreshing = true;
    try {
      body = await fetchStatus(client);
      trouble = undefined;
    } catch (err) {
      trouble = `the hub does not answer (${err instanceof Error ? err.message.split(';')[0] : String(err)}); retrying every ${a.interval}`;
    } finally {
      refreshing = false;
    }
    draw();
  };

  const abort = new AbortController();
  let connected = false;
  const connect = async () => {
    if (connected || abort.signal.aborted) return;
    connected = true;
    try {
      const { closed } = await client.events((event, data) => {
        if (event === 'transition') {
          recent.push(describeTransition(data as Transition));
          if (recent.length > 5) recent.shift();
        }
        void refresh();
      }, abort.signal);
      streamNote = 'live';
      void closed.then(() => {
        connected = false;
        if (!abort.signal.aborted) streamNote = `event stream lost: polling every ${a.interval}`;
        draw();
      });
    } catch {
      connected = false;
      streamNote = `event stream lost: polling every ${a.interval}`;
    }
  };

  draw();
  await connect();
  const timer = setInterval(() => { void refresh(); void connect(); }, intervalMs);
  await new Promise<void>((resolve) => {
    const end = () => resolve();
    process.once('SIGINT', end);
    process.once('SIGTERM', end);
    process.stdout.once('error', end); // the pipe it prints into was closed
  });
  ended = true;
  clearInterval(timer);
  abort.abort();
  screen.done(); // leaves the last frame on screen and shows the cursor again
  return EXIT.ok;
}

/**
 * log-update redraws in place on a terminal. Into a pipe or file (`hub watch > status.log`), and on a
 * terminal that reports no size (0 rows, as some ptys do, where log-update draws nothing), each
 * changed frame is printed below the last instead.
 */
function redrawer(): { (text: string): void; done(): void } {
  if (process.stdout.isTTY && process.stdout.rows !== 0) return createLogUpdate(process.stdout);
  let last = '';
  const print = (text: string) => {
    if (text !== last) safeWrite(process.stdout, `${text}\n\n`);
    last = text;
  };
  return Object.assign(print, { done: () => undefined });
}
