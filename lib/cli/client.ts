// The CLI's only way to the hub: its HTTP API (SPEC §3.3), with the admin key as a Bearer token.
// node:http rather than fetch: fetch (undici) gives up on a response head after 300 s and on a body
// silent for 300 s, and both are normal here (a waiting load of big weights, a quiet `logs -f`).
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createParser } from 'eventsource-parser';
import { CliError } from './errors.js';
import { EXIT } from './output.js';

export interface ApiAnswer {
  status: number;
  /** Parsed JSON (the API's documented shapes, read field by field by each command), or the raw text. */
  body: any;
}

/** The hub's error envelope's message, or the raw text. */
export function errorMessage(answer: ApiAnswer): string {
  const e = answer.body?.error;
  return typeof e?.message === 'string' ? e.message : `HTTP ${answer.status}: ${String(answer.body).slice(0, 300)}`;
}

export class HubClient {
  constructor(
    /** e.g. http://127.0.0.1:8080 (no /v1) */
    readonly origin: string,
    private readonly apiKey: string | undefined,
    /** Says how to start a hub, for "not running" errors. */
    private readonly notRunning: () => string,
  ) {}

  /** A JSON request; throws CliError (exit 3) when nothing answers and (exit 2) when the key is refused. */
  async call(method: 'GET' | 'POST', path: string): Promise<ApiAnswer> {
    const res = await this.open(method, path);
    const text = await readAll(res);
    let body: unknown = text;
    try { body = JSON.parse(text); } catch { /* not JSON: shown as text */ }
    const answer = { status: res.statusCode ?? 0, body };
    this.refuseAuth(answer);
    return answer;
  }

  /** A streaming GET (SSE, log follow); the caller reads and closes the response. */
  async stream(path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    const res = await this.open('GET', path, signal);
    if ((res.statusCode ?? 0) >= 400) {
      const text = await readAll(res);
      let body: unknown = text;
      try { body = JSON.parse(text); } catch { /* text */ }
      const answer = { status: res.statusCode ?? 0, body };
      this.refuseAuth(answer);
      throw new CliError(EXIT.failed, errorMessage(answer), answer);
    }
    return res;
  }

  /**
   * Server-sent events from /hub/api/events. Resolves once subscribed (so that nothing after that is
   * missed) with `closed`, which resolves when the stream ends: the hub stopped, dropped this reader
   * as too slow, or `signal` aborted.
   */
  async events(onEvent: (event: string, data: any) => void, signal?: AbortSignal): Promise<{ closed: Promise<void> }> {
    const res = await this.stream('/hub/api/events', signal);
    const parser = createParser({
      onEvent: (e) => {
        let data: unknown;
        try { data = JSON.parse(e.data); } catch { return; }
        onEvent(e.event ?? 'message', data);
      },
    });
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => parser.feed(chunk));
    const closed = new Promise<void>((resolve) => {
      res.once('close', () => resolve());
      res.on('error', () => resolve());
    });
    return { closed };
  }

  private open(method: string, path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    const url = new URL(path, this.origin);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, signal }, resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.name === 'AbortError') return reject(err);
        const down = ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET', 'EADDRNOTAVAIL'].includes(err.code ?? '');
        reject(down ? new CliError(EXIT.notRunning, this.notRunning()) : new CliError(EXIT.failed, `cannot reach the hub at ${this.origin}: ${err.message}`));
      });
      req.end();
    });
  }

  private refuseAuth(answer: ApiAnswer): void {
    if (answer.status === 401) {
      throw new CliError(EXIT.usage, `the hub at ${this.origin} wants an admin key: pass --api-key KEY or set HUB_ADMIN_KEY (${errorMessage(answer)})`, answer);
    }
    if (answer.status === 403) throw new CliError(EXIT.usage, `the hub at ${this.origin} refused this request: ${errorMessage(answer)}`, answer);
  }
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => { text += c; });
    res.once('end', () => resolve(text));
    res.once('error', reject);
  });
}
