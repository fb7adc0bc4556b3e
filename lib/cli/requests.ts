// `hub requests [--model m] [--status s] [--since t] [--limit n] [--csv] [--json] [-f]`: the hub's
// request log (GET /hub/api/requests), oldest first so that the newest is at the bottom, as in a log;
// with -f it then follows the events stream (/hub/api/events, event `request`) and prints each
// request that passes the same filters as it finishes, until Ctrl-C.
import { stringify } from 'csv-stringify/sync';
import type { RequestSummary } from '../scheduler/request-summary.js';
import { COLUMNS, loggedRequest, type LoggedRequest } from '../http/request-log.js';
import type { Args } from './commands.js';
import { errorMessage, type HubClient } from './client.js';
import { CliError } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say, visible } from './output.js';

export async function requests(a: Args): Promise<number> {
  const query = new URLSearchParams();
  for (const name of ['model', 'status', 'since', 'limit'] as const) {
    const value = a[name];
    if (value !== undefined) query.set(name, String(value));
  }
  if (a.csv === true && a.json === true) throw new CliError(EXIT.usage, 'give --csv or --json, not both');
  const { client } = await locateHub(a);
  const answer = await client.call('GET', `/hub/api/requests?${query}`);
  // A bad filter is the hub's 400, which names the parameter: the option of the same name.
  if (answer.status === 400) throw new CliError(EXIT.usage, `${errorMessage(answer).replace(/^the query parameter (\w+)/, '--$1')}`, answer);
  if (answer.status !== 200) throw new CliError(EXIT.failed, errorMessage(answer), answer);
  const rows = (answer.body.data as LoggedRequest[]).slice().reverse();
  const print = printer(a);
  print.head();
  for (const r of rows) print.row(r);
  if (a.follow !== true) {
    if (!rows.length && a.csv !== true && a.json !== true) say.info(query.size ? 'no requests in the log match these filters' : 'no requests in the log yet');
    return EXIT.ok;
  }
  // The hub's answer names the model --model found (an alias or another case finds its name).
  return follow(client, answer.body.filter?.model ?? query.get('model'), query, print);
}

async function follow(client: HubClient, model: string | null, query: URLSearchParams, print: Printer): Promise<number> {
  const status = query.get('status') ?? '';
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  process.stdout.once('error', onSigint); // `hub requests -f | head`: no one left to print for
  try {
    const { closed } = await client.events((event, data) => {
      if (event !== 'request') return;
      const s = data as RequestSummary;
      if (!s.model || (model && s.model !== model)) return;
      if (/^\d{3}$/.test(status) && s.status !== Number(status)) return;
      if (/^\dxx$/i.test(status) && Math.floor(s.status / 100) !== Number(status[0])) return;
      print.row(fromSummary(s));
    }, abort.signal);
    await closed;
    if (!abort.signal.aborted) say.info('the hub ended the event stream (it is stopping, or this reader fell behind)');
    return EXIT.ok;
  } catch (err) {
    if (abort.signal.aborted) return EXIT.ok;
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
    process.stdout.off('error', onSigint);
  }
}

/** An event's summary as the log shows it (the log's own rows come from the API in this shape). */
function fromSummary(s: RequestSummary): LoggedRequest {
  return loggedRequest(s, Date.now() - s.ms, false);
}

interface Printer {
  head(): void;
  row(r: LoggedRequest): void;
}

/** CSV (a header, then a line per request), JSON lines, or lines for people. */
function printer(a: Args): Printer {
  if (a.csv === true) {
    return {
      head: () => say.composed(stringify([], { header: true, columns: [...COLUMNS] })),
      row: (r) => say.composed(stringify([r], { columns: [...COLUMNS] })),
    };
  }
  if (a.json === true) return { head: () => {}, row: (r) => say.composed(`${JSON.stringify(r)}\n`) };
  const ms = (v: number | null) => (v === null ? '-' : `${v}ms`);
  return {
    head: () => {},
    row: (r) => {
      const tokens = r.tokens_in === null && r.tokens_out === null ? '' : ` tokens ${r.tokens_in ?? '?'}/${r.tokens_out ?? '?'}${r.tokens_per_s === null ? '' : ` ${r.tokens_per_s}/s`}`;
      const waited = (r.queue_ms ?? 0) + (r.cold_start_ms ?? 0);
      const wait = waited ? ` wait ${ms(waited)}${r.cold_start_ms ? ' (cold start)' : ''}` : '';
      const who = r.key ? ` key ${r.key}` : '';
      say.composed(`${visible(`${r.time.slice(11, 23)} ${r.status} ${r.model ?? '-'} ${r.route}${wait} first ${ms(r.ttft_ms)} total ${ms(r.ms)}${tokens}${who}${r.cut ? ` (${r.cut})` : ''} ${r.id}`)}\n`);
    },
  };
}
