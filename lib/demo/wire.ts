// The demo backend's bytes on the wire: JSON answers, SSE events, and both error shapes (OpenAI's
// with a string `code`, Anthropic's on /v1/messages*), so every SDK can read what it is told.
import type { IncomingMessage, ServerResponse } from 'node:http';

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Starts an SSE answer. */
export function startEvents(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
}

/** One named SSE event (the Responses and Messages APIs name every event after its `type`). */
export const namedEvent = (res: ServerResponse, data: { type: string; [field: string]: unknown }) => res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`);

export const isAnthropicPath = (path: string) => path === '/v1/messages' || path.startsWith('/v1/messages/');

const ANTHROPIC_TYPE: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error', 429: 'rate_limit_error', 503: 'overloaded_error' };

/**
 * An error in the shape the route's clients parse: OpenAI's envelope with a string `code` (the
 * SDKs read a number there as something else), or Anthropic's `{"type":"error","error":{type,message}}`.
 */
export function sendError(res: ServerResponse, path: string, status: number, code: string, message: string): void {
  if (isAnthropicPath(path)) return send(res, status, { type: 'error', error: { type: ANTHROPIC_TYPE[status] ?? 'api_error', message } });
  const type = status === 503 ? 'unavailable_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
  send(res, status, { error: { message, type, param: null, code } });
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
