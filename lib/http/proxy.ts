// Forwarding one request to a model's backend with http-proxy-3. The Koa middleware stays pending
// until the client's response closes, so the in-flight count covers the whole (streamed) answer.
// Failures become backend_unavailable: a 502 before the answer started, an in-band SSE error after.
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { HubError } from '../errors.js';
import type { Lease } from '../scheduler/controller.js';
import type { Outcome } from '../scheduler/step.js';
import { errorEnvelope, inBandError } from './anthropic-errors.js';
import { keepHubCors } from './browser.js';
import { stripHopByHop } from './hop-by-hop.js';
import type { HeldBody } from './body.js';
import type { Meter } from './meter.js';
import { cutWhenStalled } from './stall.js';

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
}

const exchanges = new WeakMap<ServerResponse, Exchange>();

const proxy = createProxyServer({ changeOrigin: true, xfwd: false });

proxy.on('proxyReq', (proxyReq: ClientRequest, _req: IncomingMessage, res: ServerResponse) => {
  const exchange = exchanges.get(res);
  if (exchange) exchange.reusedSocket = proxyReq.reusedSocket;
});

proxy.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse) => {
  const exchange = exchanges.get(res);
  if (!exchange) return;
  exchange.answered = true;
  exchange.status = proxyRes.statusCode;
  stripHopByHop(proxyRes.headers);
  // http-proxy-3 would then add a Connection header of its own (the client's, or keep-alive), which
  // overrides Node's handling of the client connection. It adds one only where there is none, and
  // copies only enumerable headers: a hidden one keeps Connection (and Keep-Alive) Node's to write.
  Object.defineProperty(proxyRes.headers, 'connection', { value: 'hop-by-hop', enumerable: false, writable: true, configurable: true });
  exchange.body?.release(); // the backend has it: no replay needs it any more
  exchange.meter?.watchResponse(proxyRes);
  cutWhenStalled(res, proxyRes, exchange.stallTimeoutMs);
  const sse = String(proxyRes.headers['content-type'] ?? '').includes('text/event-stream');
  if (sse) proxyRes.headers['x-accel-buffering'] = 'no';
  proxyRes.once('close', () => {
    if (proxyRes.complete || res.destroyed || res.writableEnded) return; // finished, or the client left
    exchange.healthy = false; // the backend went away mid-answer
    const error = unavailable(exchange.lease, 'closed the connection in the middle of its answer');
    if (sse) res.end(inBandError(req.url, error));
    else res.destroy();
  });
});

// The hub answers CORS itself (browser.ts); a backend's own CORS headers must not override it.
proxy.on('proxyRes', (proxyRes: IncomingMessage, _req: IncomingMessage, res: ServerResponse) => keepHubCors(proxyRes.headers, res));

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
}

export function forward(req: IncomingMessage, res: ServerResponse, lease: Lease, options: ForwardOptions): Promise<void> {
  const m = lease.model;
  if (req.socket.destroyed) {
    // The client left while the model was starting: nothing to forward, and no 'close' will come.
    // That proves nothing about the backend, so it must not reset the crash backoff.
    lease.release('abandoned');
    return Promise.resolve();
  }
  const exchange: Exchange = { lease, healthy: true, reusedSocket: false, answered: false, body: options.body, stallTimeoutMs: options.stallTimeoutMs, meter: options.meter };
  if (options.meter) {
    if (options.body) options.meter.bytesIn = options.body.length;
    else options.meter.countRequest(req);
  }
  exchanges.set(res, exchange);

  res.setHeader('x-hub-model', m.name);
  if (lease.coldStartMs !== undefined) res.setHeader('x-hub-cold-start-ms', String(Math.round(lease.coldStartMs)));
  if (lease.queueMs !== undefined) res.setHeader('x-hub-queue-ms', String(Math.round(lease.queueMs)));
  if (lease.swapMs !== undefined) res.setHeader('x-hub-swap-ms', String(Math.round(lease.swapMs)));
  const headers = req.headers;
  stripHopByHop(headers);
  headers['x-request-id'] = options.requestId;
  if (!m.config.forwardAuth) {
    delete headers.authorization;
    delete headers['x-api-key'];
  }
  if (m.config.apiKey) headers.authorization = `Bearer ${m.config.apiKey}`;
  if (options.body) {
    headers['content-length'] = String(options.body.length);
    delete headers['transfer-encoding'];
    delete headers.expect; // the hub already has the body
  }
  if (options.path !== undefined) req.url = options.path;

  return new Promise<void>((resolve) => {
    res.once('close', () => {
      lease.release(releaseOutcome(exchange));
      resolve();
    });
    // A backend may close a kept-alive connection just as we reuse it (llama-server does after a
    // stream); the request then never reached it, and is sent once more on a new connection.
    const bodyless = !options.body && !req.headers['transfer-encoding'] && !Number(req.headers['content-length']);
    const replayable = options.body !== undefined || bodyless;
    const send = (retry: boolean) =>
      proxy.web(
        req,
        res,
        { target: m.target, agent: m.agent, buffer: options.body ? options.body.stream() : retry ? once(Buffer.alloc(0)) : undefined },
        (err: NodeJS.ErrnoException) => {
          if (!retry && replayable && exchange.reusedSocket && !exchange.answered && !res.headersSent && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
            exchange.reusedSocket = false;
            return send(true);
          }
          exchange.healthy = false;
          if (res.headersSent) {
            if (!res.writableEnded) res.destroy(); // an in-band error may already be on its way
            return;
          }
          void describeFailure(lease, err).then((error) => {
            if (res.headersSent || res.destroyed) return;
            const text = JSON.stringify(errorEnvelope(req.url, error));
            res.writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...error.headers });
            res.end(text);
          });
        },
      );
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
