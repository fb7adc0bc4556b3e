// Progress inside the client's own request (opt-in): a streaming request to a model that must load
// first is answered at once with `200 text/event-stream`, and until the model is ready the stream
// carries the load's progress, then the backend's own stream follows in the same response.
// - `comments`: SSE comment lines (`: modelhub: loading qwen-7b 45% (1.2 s of ~2.6 s)`), which every
//   SSE parser skips; they also keep idle proxies (nginx's 60 s read timeout) from cutting a long load.
// - `reasoning`: shown by chat UIs that display a model's thinking, in each API's own shape: Chat
//   Completions chunks whose delta is `reasoning_content`; a `thinking` block on Messages; a
//   `reasoning` output item on Responses (reasoning-prefix.ts). Legacy Completions get comments.
// A start that fails after the stream began ends it with the API's in-band error event.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProgressMode } from '../config/types.js';
import { HubError } from '../errors.js';
import type { Controller, LoadProgress } from '../scheduler/controller.js';
import { howFar } from '../scheduler/progress.js';
import type { ModelActor } from '../scheduler/actor.js';
import { inBandError } from './anthropic-errors.js';
import type { HeldBody } from './body.js';
import type { Takeover } from './proxy.js';
import { messagesPrefix, responsesPrefix, type ReasoningPrefix } from './reasoning-prefix.js';

/** The routes whose answers are SSE streams when the body says `"stream": true`. */
const STREAMING_ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/messages']);
/** With nothing new to say, a comment this often keeps the connection (and idle proxies) alive. */
const KEEP_ALIVE_MS = 5000;
/** Reasoning text is written at a new stage, or at most this often (a chat UI shows every line). */
const REASONING_EVERY_MS = 1000;

/**
 * The mode for this request: the client's `x-hub-progress` header (off, comments, reasoning) over the
 * model's `progress`, and only for a streaming request on a streaming route. Read only on the slow
 * path (the model is not ready). `stream` comes from the scan that found `model` (a 30 MiB body parsed
 * whole held the event loop for it), unless the body was rewritten since.
 */
export function progressModeFor(req: IncomingMessage, path: string, m: ModelActor, body: HeldBody, stream?: boolean): Exclude<ProgressMode, 'off'> | undefined {
  const asked = String(req.headers['x-hub-progress'] ?? '').trim().toLowerCase();
  const mode = asked === 'off' || asked === 'comments' || asked === 'reasoning' ? asked : m.config.progress;
  if (mode === 'off' || !STREAMING_ROUTES.has(path)) return undefined;
  // `stream` as the body scan found it; parsed here only when the body was rewritten since (params).
  try {
    const streaming = stream ?? (JSON.parse(body.concat().toString('utf8')) as { stream?: unknown }).stream === true;
    if (!streaming) return undefined;
  } catch {
    return undefined;
  }
  return mode === 'reasoning' && path === '/v1/completions' ? 'comments' : mode;
}

const opened = new WeakSet<ServerResponse>();

/** Whether `res` is a stream opened before the backend was asked: its errors go in band. */
export const openedEarly = (res: ServerResponse): boolean => opened.has(res);

export class LoadStream {
  private readonly started = Date.now();
  private timer?: NodeJS.Timeout;
  private lastWrite = 0;
  private lastStage?: string;
  private first = true;
  private readonly onProgress = (p: LoadProgress) => {
    if (p.model === this.m.name) this.report(p);
  };

  /** Messages and Responses: the API's own opening and reasoning events (reasoning-prefix.ts). */
  private readonly prefix?: ReasoningPrefix;

  constructor(
    private readonly res: ServerResponse,
    private readonly path: string,
    private readonly m: ModelActor,
    private readonly controller: Controller,
    private readonly mode: 'comments' | 'reasoning',
  ) {
    if (mode === 'reasoning' && path === '/v1/messages') this.prefix = messagesPrefix(m.name);
    if (mode === 'reasoning' && path === '/v1/responses') this.prefix = responsesPrefix(m.name);
  }

  /** Sends the head at once and follows the model's load until close(). */
  open(): void {
    const res = this.res;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', 'x-hub-model': this.m.name, 'x-hub-progress': this.mode });
    opened.add(res);
    if (this.prefix) this.write(this.prefix.open());
    // The head is out: what answers later (the proxy's pass-through, a translation) writes only the body.
    res.writeHead = (() => res) as unknown as ServerResponse['writeHead'];
    res.setHeader = (() => res) as unknown as ServerResponse['setHeader'];
    this.controller.on('progress', this.onProgress);
    const now = this.m.progress;
    if (now) this.report(now);
    else this.say(`modelhub: waiting for ${this.m.name} to load`, true);
    this.timer = setInterval(() => {
      if (Date.now() - this.lastWrite >= KEEP_ALIVE_MS) this.comment(`modelhub: still waiting for ${this.m.name} (${seconds(Date.now() - this.started)})`);
    }, KEEP_ALIVE_MS);
  }

  close(): void {
    clearInterval(this.timer);
    this.controller.off('progress', this.onProgress);
  }

  /** The start failed, or the client's wait ended in an error: the stream ends with it, in band. */
  fail(error: unknown): void {
    this.close();
    const e = error instanceof HubError ? error : new HubError('internal_error', `the hub failed while loading model ${this.m.name}: ${(error as Error)?.message ?? String(error)}`);
    if (!this.res.writableEnded) this.res.end(inBandError(this.path, e));
  }

  /**
   * How the backend's answer reaches a client whose stream is already open: a good answer's body as
   * it comes (its head is not sent again), an error answer as the API's in-band error event. `inner`
   * is a translation's takeover (Responses or Messages for a server without them), kept as it is for
   * good answers.
   */
  takeover(inner: Takeover | undefined, body: HeldBody, backendPath: string): Takeover {
    const wrap = (t: Takeover): Takeover => ({
      ...t,
      instead: t.instead && ((status) => {
        const next = t.instead!(status);
        return next && !(next instanceof HubError) ? wrap(next) : next;
      }),
      respond: (proxyRes, res) => {
        const status = proxyRes.statusCode ?? 502;
        if (status >= 200 && status < 300) {
          if (this.prefix) {
            this.write(this.prefix.close());
            this.prefix.follow(res); // the answer, native or translated, follows the hub's part
          }
          return t.respond(proxyRes, res);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        proxyRes.on('data', (c: Buffer) => {
          if (size < 64 * 1024) chunks.push(c);
          size += c.length;
        });
        proxyRes.on('end', () => res.end(inBandError(this.path, backendError(this.m, status, Buffer.concat(chunks).toString('utf8')))));
      },
    });
    return wrap(inner ?? { path: backendPath, length: body.length, body: () => body.stream(), respond: (proxyRes, res) => void proxyRes.pipe(res) });
  }

  private report(p: LoadProgress): void {
    const text = `modelhub: loading ${this.m.name}${howFar(p)}: ${p.stage}`;
    const newStage = p.stage !== this.lastStage;
    this.lastStage = p.stage;
    this.say(text, newStage);
  }

  private say(text: string, important: boolean): void {
    if (this.mode === 'comments') return this.comment(text);
    if (!important && Date.now() - this.lastWrite < REASONING_EVERY_MS) return;
    if (this.prefix) return this.write(this.prefix.line(text));
    const delta: Record<string, string> = { reasoning_content: `${text}\n` };
    if (this.first) delta.role = 'assistant';
    this.first = false;
    const chunk = { id: 'chatcmpl-modelhub-progress', object: 'chat.completion.chunk', created: Math.floor(this.started / 1000), model: this.m.name, choices: [{ index: 0, delta, finish_reason: null }] };
    this.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  private comment(text: string): void {
    this.write(`: ${text.replace(/[\r\n]+/g, ' ')}\n\n`);
  }

  private write(frame: string): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    this.lastWrite = Date.now();
    this.res.write(frame);
  }
}

function backendError(m: ModelActor, status: number, body: string): HubError {
  let message = body.slice(0, 500);
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
    message = (typeof parsed.error === 'string' ? parsed.error : parsed.error?.message) ?? parsed.message ?? message;
  } catch {
    // not JSON: the text as it came
  }
  const code = status >= 500 ? 'backend_unavailable' : 'bad_request';
  return new HubError(code, `model ${m.name} answered ${status}: ${message}`);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
