// Forwarding one request to a model's backend: sent with http-proxy-3, its answer relayed to the
// client here (relay), or by a takeover (a translation). The forwarder stays pending
// until the client's response closes, so the in-flight count covers the whole (streamed) answer.
// Failures become backend_unavailable: a 502 before the answer started, an in-band SSE error after.
import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { HubError } from '../errors.js';
import type { Lease } from '../scheduler/controller.js';
import type { Outcome } from '../scheduler/step.js';
import { errorEnvelope, inBandError } from './anthropic-errors.js';
import { isCorsHeader, mergeVary } from './browser.js';
import { forwardable } from './hop-by-hop.js';
import type { HeldBody } from './body.js';
import type { Meter } from './meter.js';
import { openedEarly } from './load-stream.js';
import { cutWhenStalled, pausedAt } from './stall.js';
import { isNormalPath, modelOptions, targetWithPath } from './backend-address.js';
import type { Watch } from './watchdog.js';

interface Exchange {
  lease: Lease;
  /** False once the backend failed us (connection refused/reset, answer cut short). */
  healthy: boolean;
  /** The upstream request went out on a kept-alive connection (which the backend may have closed). */
  reusedSocket: boolean;
  /** The backend sent its response head. */
  answered: boolean;
  /** Its status: a 5xx proves nothing about the backend's health (it must not reset the crash backoff). */
  status?: number;
  body?: HeldBody;
  stallTimeoutMs: number;
  meter?: Meter;
  /** The request sent instead of the client's, and who answers the client (translation.ts). */
  takeover?: Takeover;
  /** The backend answer the takeover answers the client from (not one it dropped). */
  taken?: IncomingMessage;
  /** Sends the request (again: a retry on a fresh connection, or the takeover's replacement). */
  send?: (retry: boolean) => void;
}

/**
 * A request the hub sends in place of the client's (a translated one), and how the client is
 * answered from the backend's answer. The client's path stays the request's, so errors the hub
 * makes come in the shape the client's API has.
 */
export interface Takeover {
  /** Path (and query) on the backend, and the body sent there (a fresh stream for each attempt). */
  path: string;
  length: number;
  body(): Readable;
  /**
   * Sees the backend's status before anything reaches the client: another request to send instead
   * (this answer is dropped unread), an error to answer with, or undefined to answer from this one.
   */
  instead?(status: number): Takeover | HubError | undefined;
  /** Writes the client's answer (status, headers, body) from the backend's. */
  respond(proxyRes: IncomingMessage, res: ServerResponse): void;
}

/**
 * The exchange of a response, kept on the response itself. Not in a WeakMap: V8 kept each entry's
 * exchange (and through it the whole request) alive across young-generation collections, so that
 * every request was copied into the old generation (measured with --trace-gc-nvp: ~7 KiB promoted
 * per request instead of under 1 KiB, and the throughput that costs).
 */
const EXCHANGE = Symbol('modelhub.exchange');
const exchangeOf = (res: ServerResponse): Exchange | undefined => (res as ServerResponse & { [EXCHANGE]?: Exchange })[EXCHANGE];

/** The proxy for what is not a model's usual request (a translation, a retry on a fresh connection): its options come with the request. */
const shared = listened(createProxyServer({ changeOrigin: true, xfwd: false }));

/**
 * One proxy per model's backend and connection pool, with the model's options as its own: http-proxy-3
 * merges the options given with each request into its own by an object spread, which took ~6 µs per
 * request for six keys (~17 µs at one connection), against ~1 µs for the one key (the body) each
 * request now passes. Its paths go as they are (toProxy); a request whose path is not in normal form
 * says so (see isNormalPath).
 */
const perModel = new WeakMap<Agent, { target: string; proxy: ProxyServer }>();
function proxyOf(m: Lease['model']): ProxyServer {
  const agent = m.agent;
  let kept = perModel.get(agent);
  if (kept?.target !== m.target) {
    const proxy = createProxyServer({ ...modelOptions(m.target), agent, toProxy: true });
    perModel.set(agent, (kept = { target: m.target, proxy: listened(proxy) }));
  }
  return kept.proxy;
}

function listened(proxy: ProxyServer): ProxyServer {
  proxy.on('proxyReq', onProxyReq);
  proxy.on('proxyRes', onProxyRes);
  return proxy;
}

function onProxyReq(proxyReq: ClientRequest, _req: IncomingMessage, res: ServerResponse): void {
  const exchange = exchangeOf(res);
  if (exchange) exchange.reusedSocket = proxyReq.reusedSocket;
}

function onProxyRes(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
  const exchange = exchangeOf(res);
  if (!exchange) return;
  const next = exchange.takeover?.instead?.(proxyRes.statusCode ?? 0);
  if (next instanceof HubError) {
    proxyRes.resume(); // dropped unread: the backend is fine, the hub answers
    exchange.answered = true;
    return sendError(req, res, next);
  }
  if (next) {
    proxyRes.resume();
    exchange.takeover = next;
    exchange.reusedSocket = false;
    return exchange.send?.(false);
  }
  exchange.taken = proxyRes;
  exchange.answered = true;
  exchange.status = proxyRes.statusCode;
  // One pass: hop-by-hop headers and the backend's own CORS headers (the hub answers CORS) left out,
  // and its framing (Node frames the answer itself; HTTP/1.0 clients get no chunks).
  const headers = forwardable(proxyRes.headers, notPassedOn);
  mergeVary(headers, res);
  proxyRes.headers = headers;
  exchange.body?.release(); // the backend has it: no replay needs it any more
  const sse = String(headers['content-type'] ?? '').includes('text/event-stream');
  if (sse) headers['x-accel-buffering'] = 'no';
  proxyRes.once('close', () => {
    if (proxyRes.complete || res.destroyed || res.writableEnded) return; // finished, or the client left
    exchange.healthy = false; // the backend went away mid-answer
    const error = unavailable(exchange.lease, 'closed the connection in the middle of its answer');
    if (sse) res.end(inBandError(req.url, error));
    else res.destroy();
  });
  if (exchange.takeover) {
    // A takeover answers the client itself, now that the headers are clean.
    exchange.meter?.watchResponse(proxyRes);
    cutWhenStalled(res, proxyRes, exchange.stallTimeoutMs);
    return exchange.takeover.respond(proxyRes, res);
  }
  relay(proxyRes, res, exchange);
}

const notPassedOn = (name: string): boolean => isCorsHeader(name) || name === 'transfer-encoding';

/**
 * The backend's answer to the client: its status and headers, then its body as it comes, paused while
 * the client takes no more. What a pipe does, in one 'data' listener that also feeds the meter and
 * sees each pause (for the stall watch): a pipe added and removed seven listeners per answer.
 */
function relay(proxyRes: IncomingMessage, res: ServerResponse, exchange: Exchange): void {
  if (!res.headersSent) copyHead(proxyRes, res);
  const meter = exchange.meter;
  meter?.watch(proxyRes);
  let stall: Watch | undefined;
  let resumes = false;
  proxyRes.on('data', (chunk: Buffer) => {
    meter?.count(chunk);
    if (res.write(chunk) || res.destroyed) return;
    proxyRes.pause();
    stall = pausedAt(res, exchange.stallTimeoutMs, stall);
    if (!resumes) {
      resumes = true;
      res.on('drain', () => proxyRes.resume());
    }
  });
  proxyRes.on('end', () => res.end());
}

/** The backend's answer to the client as it is: what http-proxy-3 does when it pipes. */
export function passThrough(proxyRes: IncomingMessage, res: ServerResponse): void {
  copyHead(proxyRes, res);
  proxyRes.pipe(res);
}

/** The backend's status and (cleaned) headers as the client's answer's; Node writes them with the first bytes. */
function copyHead(proxyRes: IncomingMessage, res: ServerResponse): void {
  res.statusCode = proxyRes.statusCode ?? 502;
  if (proxyRes.statusMessage) res.statusMessage = proxyRes.statusMessage;
  const headers = proxyRes.headers;
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) res.setHeader(name, value);
  }
}

/** An error the hub makes, in the envelope the client's API has. */
function sendError(req: IncomingMessage, res: ServerResponse, error: HubError): void {
  if (res.destroyed) return;
  if (res.headersSent) {
    // A stream opened for the load's progress before the backend answered: the error goes in band.
    if (openedEarly(res) && !res.writableEnded) res.end(inBandError(req.url, error));
    return;
  }
  const text = JSON.stringify(errorEnvelope(req.url, error));
  res.writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...error.headers });
  res.end(text);
}

export interface ForwardOptions {
  /** The request body to send instead of the client's stream (already read, maybe rewritten). */
  body?: HeldBody;
  /** limits.stall_timeout: a client that reads nothing of the answer for this long is cut (0 = never). */
  stallTimeoutMs: number;
  /** Path on the backend, when it differs from the client's (e.g. /upstream/{model}/x → /x). */
  path?: string;
  requestId: string;
  /** Counts bytes, time to first byte and token usage for the request log and metrics. */
  meter?: Meter;
  /** Send this request instead of the client's, and answer from it (a translation). */
  takeover?: Takeover;
}

export function forward(req: IncomingMessage, res: ServerResponse, lease: Lease, options: ForwardOptions): Promise<void> {
  const m = lease.model;
  if (req.socket.destroyed) {
    // The client left while the model was starting: nothing to forward, and no 'close' will come.
    // That proves nothing about the backend, so it must not reset the crash backoff.
    lease.release('abandoned');
    return Promise.resolve();
  }
  const exchange: Exchange = { lease, healthy: true, reusedSocket: false, answered: false, body: options.body, stallTimeoutMs: options.stallTimeoutMs, meter: options.meter, takeover: options.takeover };
  if (options.meter) {
    if (options.body) options.meter.bytesIn = options.body.length;
    else options.meter.countRequest(req);
  }
  (res as ServerResponse & { [EXCHANGE]?: Exchange })[EXCHANGE] = exchange;

  if (!res.headersSent) {
    // (A client that asked for progress in its stream already has its head: load-stream.ts.)
    res.setHeader('x-hub-model', m.name);
    if (lease.coldStartMs !== undefined) res.setHeader('x-hub-cold-start-ms', String(Math.round(lease.coldStartMs)));
    if (lease.queueMs !== undefined) res.setHeader('x-hub-queue-ms', String(Math.round(lease.queueMs)));
    if (lease.swapMs !== undefined) res.setHeader('x-hub-swap-ms', String(Math.round(lease.swapMs)));
  }
  // The client's keys stay with the hub unless the model forwards them; a body the hub holds is sent
  // with its own length (the hub has it: no chunking, no Expect); a takeover reads the answer itself,
  // so it must come uncompressed.
  const { forwardAuth, apiKey } = m.config;
  const held = options.body !== undefined;
  const takeover = options.takeover !== undefined;
  const headers = forwardable(req.headers, (name) =>
    (!forwardAuth && (name === 'authorization' || name === 'x-api-key')) || (held && (name === 'transfer-encoding' || name === 'expect')) || (takeover && name === 'accept-encoding'));
  headers['x-request-id'] = options.requestId;
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  if (options.body) headers['content-length'] = String(options.body.length);
  req.headers = headers;
  if (options.path !== undefined) req.url = options.path;

  return new Promise<void>((resolve) => {
    res.once('close', () => {
      lease.release(releaseOutcome(exchange));
      resolve();
    });
    // A backend may close a kept-alive connection just as we reuse it (llama-server does after a
    // stream); the request then never reached it, and is sent once more on a new connection: one of
    // its own, not the pool's next (a keep-alive timeout closes every idle connection at once).
    const bodyless = !options.body && !req.headers['transfer-encoding'] && !Number(req.headers['content-length']);
    const replayable = options.body !== undefined || bodyless;
    const send = (retry: boolean) => {
      const takeover = exchange.takeover;
      if (takeover) headers['content-length'] = String(takeover.length);
      const buffer = takeover ? takeover.body() : options.body ? options.body.stream() : retry ? once(Buffer.alloc(0)) : undefined;
      const [proxy, web] = takeover
        ? [shared, { target: targetWithPath(m.target, takeover.path), ignorePath: true, selfHandleResponse: true, agent: m.agent, buffer }]
        : retry
          ? [shared, { ...modelOptions(m.target), agent: false, buffer, toProxy: isNormalPath(req.url) }]
          : [proxyOf(m), isNormalPath(req.url) ? { buffer } : { buffer, toProxy: false }];
      proxy.web(
        req,
        res,
        web,
        (err: NodeJS.ErrnoException) => {
          if (!retry && replayable && exchange.reusedSocket && !exchange.answered && !res.headersSent && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
            exchange.reusedSocket = false;
            return send(true);
          }
          exchange.healthy = false;
          // A stream opened early (progress in the stream) has none of the backend's answer yet: the
          // failure is told in band (sendError).
          if (res.headersSent && !(openedEarly(res) && !exchange.answered)) {
            if (!res.writableEnded) res.destroy(); // an in-band error may already be on its way
            return;
          }
          void describeFailure(lease, err).then((error) => sendError(req, res, error));
        },
      );
    };
    exchange.send = send;
    send(false);
  });
}

/** How a forwarded request ended, for the crash backoff: only a good answer proves the backend healthy. */
export function releaseOutcome(exchange: Pick<Exchange, 'healthy' | 'answered' | 'status'>): Outcome {
  if (!exchange.healthy) return 'failed';
  if (!exchange.answered) return 'abandoned';
  return (exchange.status ?? 200) >= 500 ? 'failed' : 'answered';
}

/** A stream of one buffer (an empty body to replay); cheaper than Readable.from. */
function once(body: Buffer): Readable {
  return new Readable({
    read() {
      if (body.length) this.push(body);
      this.push(null);
    },
  });
}

/** A refused or reset connection is often a crash: give the exit a moment to land so the message can say so. */
async function describeFailure(lease: Lease, err: Error): Promise<HubError> {
  const m = lease.model;
  if (m.remote) {
    m.markRemoteDown('request failed');
    return new HubError('backend_unavailable', `remote model ${m.name} at ${m.shownUrl} could not be reached (${(err as NodeJS.ErrnoException).code ?? err.message}); check that the server is up`);
  }
  await m.exitSettled(250);
  return unavailable(lease, `did not answer (${(err as NodeJS.ErrnoException).code ?? err.message})`);
}

function unavailable(lease: Lease, what: string): HubError {
  const m = lease.model;
  const crashed = m.process === 'failed' && m.lastError ? `: ${m.lastError.message}` : '';
  return new HubError('backend_unavailable', `the backend of model ${m.name} ${what}${crashed}. The next request restarts it if needed; retry`);
}
