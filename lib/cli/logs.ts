// `hub logs <name> [-f] [-n N]`: GET /hub/api/models/{name}/logs?tail=N[&follow=1], copied to stdout.
// `hub logs --hub` (or `hub logs hub` when no model is named "hub"): GET /hub/api/logs, the hub's own
// log, whose JSON lines are printed as lines for people (as `hub serve` prints them on a terminal).
// Following across a rotation is the hub's work (it reads the old file to its end, then the new one);
// here Ctrl-C ends the follow and the hub stopping ends it with a line that says so. What the backend
// wrote is shown with its control characters as visible text (output.ts), never sent to the terminal.
import type { IncomingMessage } from 'node:http';
import { prettyLine } from '../log.js';
import type { HubClient } from './client.js';
import type { Args } from './commands.js';
import { CliError } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say } from './output.js';

/** What `hub logs hub` means when no model has that name. */
export const HUB_LOG_NAME = 'hub';

export async function logs(a: Args): Promise<number> {
  const name = a.name as string | undefined;
  const lines = a.lines as number;
  if (!Number.isInteger(lines) || lines < 0) throw new CliError(EXIT.usage, `-n/--lines: expected a whole number of lines (0 or more), got ${String(a.lines)}`);
  if (a.hub === true && name !== undefined) throw new CliError(EXIT.usage, `give a model name or --hub, not both (hub logs ${name} is that model's log; hub logs --hub is the hub's own)`);
  if (a.hub !== true && name === undefined) throw new CliError(EXIT.usage, 'name the model whose log to show (see hub status), or pass --hub for the hub\'s own log');
  const { client } = await locateHub(a);
  const follow = a.follow === true;
  const query = `tail=${lines}${follow ? '&follow=1' : ''}`;
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  // `hub logs -f x | head`: once the reader is gone there is no one to follow for.
  process.stdout.once('error', onSigint);
  try {
    const opened = name === undefined ? undefined : await openModelLog(client, name, query, abort.signal);
    const res = opened ?? (await client.stream(`/hub/api/logs?${query}`, abort.signal));
    const what = opened ? name! : 'the hub';
    if (opened) copyModelLog(res);
    else copyHubLog(res);
    const ended = await new Promise<'end' | 'cut'>((resolve) => {
      res.once('end', () => resolve('end'));
      res.on('error', () => resolve('cut'));
      res.once('close', () => resolve(res.complete ? 'end' : 'cut'));
    });
    if (follow && !abort.signal.aborted) say.info(ended === 'end' ? `the hub ended the log stream of ${what} (it is stopping, or this reader fell behind)` : `lost the connection to the hub while following ${what}`);
    return EXIT.ok;
  } catch (err) {
    if (abort.signal.aborted) return EXIT.ok;
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
    process.stdout.off('error', onSigint);
  }
}

/** The model's log; undefined for `hub` when the hub has no such model (then the hub's own log is meant). */
async function openModelLog(client: HubClient, name: string, query: string, signal: AbortSignal): Promise<IncomingMessage | undefined> {
  try {
    return await client.stream(`/hub/api/models/${encodeURIComponent(name)}/logs?${query}`, signal);
  } catch (err) {
    if (name === HUB_LOG_NAME && err instanceof CliError && err.answer?.status === 404) return undefined;
    throw err;
  }
}

/** A model's log is the backend's own bytes: say.text shows its control characters as text. */
function copyModelLog(res: IncomingMessage): void {
  res.setEncoding('utf8');
  // A CR at the end of a chunk waits for the next one, so that a CRLF cut in two still ends the line.
  let heldCr = '';
  res.on('data', (chunk: string) => {
    const text = heldCr + chunk;
    heldCr = text.endsWith('\r') ? '\r' : '';
    say.text(heldCr ? text.slice(0, -1) : text);
  });
  res.once('end', () => say.text(heldCr));
}

/** JSON lines (bunyan records) as `12:00:01 INFO message key=value`; a line that is not a record as it is. */
function copyHubLog(res: IncomingMessage): void {
  res.setEncoding('utf8');
  let partial = '';
  const line = (text: string) => {
    let record: unknown;
    try { record = JSON.parse(text); } catch { /* not a record: the hub's own notices (--- modelhub: ...) */ }
    const isRecord = record !== null && typeof record === 'object' && 'msg' in record && 'time' in record;
    say.text(isRecord ? prettyLine(record as Record<string, unknown>) : `${text}\n`);
  };
  res.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const p of parts) if (p !== '') line(p);
  });
  res.once('end', () => { if (partial) line(partial); });
}
