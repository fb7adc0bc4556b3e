// What one client can hold of the hub's connections. Each open connection costs a file descriptor
// and some memory whether or not it ever sends a request, so their number is capped
// (limits.max_connections), and a connection must finish its headers within limits.header_timeout
// (its whole request within limits.request_timeout), so that trickling bytes cannot hold one for long.
//
// At the cap the hub still answers, so that a health check can tell "busy" from "down": up to
// CONNECTION_RESERVE connections more are let in, and on those only GET /health is served; anything
// else gets 503 hub_busy with Retry-After at once. Both close after that one answer. Past the reserve
// too, a new connection is closed as soon as it is accepted.
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HubError } from '../errors.js';
import { errorEnvelope } from './anthropic-errors.js';

/** Connections let in past limits.max_connections, for /health (and quick 503s) only. */
export const CONNECTION_RESERVE = 32;

/** How often Node looks for requests past their header or request timeout. Its default, 30 s, would let a trickle run 30 s over. */
export const TIMEOUT_CHECK_MS = 1000;

export interface ConnectionLimits {
  maxConnections: number;
  headerTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * Counts the server's connections and wraps its request handler: requests on a connection accepted
 * past the cap get only /health. `limits` is read per connection, so a reload applies to the next ones.
 */
export function limitConnections(server: Server, limits: () => ConnectionLimits, handle: RequestListener): RequestListener {
  let open = 0;
  const overCap = new WeakSet<Socket>();
  applyTimeouts(server, limits());
  server.on('connection', (socket: Socket) => {
    const { maxConnections } = limits();
    if (open >= maxConnections + CONNECTION_RESERVE) return void socket.destroy();
    open++;
    socket.once('close', () => open--);
    if (open > maxConnections) overCap.add(socket);
  });
  return (req: IncomingMessage, res: ServerResponse) => {
    if (!overCap.has(req.socket)) return void handle(req, res);
    res.shouldKeepAlive = false; // one answer, then the connection goes
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/health') return void handle(req, res);
    const error = new HubError('hub_busy', `the hub has as many connections open as limits.max_connections allows (${limits().maxConnections}); try again shortly, or close idle connections`, { headers: { 'retry-after': '1' } });
    const text = JSON.stringify(errorEnvelope(req.url ?? '/', error));
    res.writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...error.headers });
    res.end(text);
  };
}

/** Node's own timeouts, from the config: on start and after each reload. */
export function applyTimeouts(server: Server, limits: ConnectionLimits): void {
  server.headersTimeout = limits.headerTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
}
