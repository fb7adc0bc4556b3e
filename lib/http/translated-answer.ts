// The client's answer from a backend's Chat Completions answer to a translated request: JSON
// translated whole, a stream event by event (paced by the client: the backend's answer pauses while
// the client's socket is full, so limits.stall_timeout still applies), and a backend's error in the
// envelope the client's API has (Anthropic's on /v1/messages), with its status and retry-after.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { isObject, type ChatCompletion } from '../translate/chat.js';
import { ChatStreamReader, replayCompletion } from '../translate/chat-stream.js';
import { chatToMessage } from '../translate/messages.js';
import { MessagesStreamWriter } from '../translate/messages-stream.js';
import { chatToResponse } from '../translate/responses.js';
import { ResponsesStreamWriter } from '../translate/responses-stream.js';

export type TranslatedApi = 'responses' | 'messages' | 'count_tokens';

/** A whole (non-streamed) answer is translated in memory up to this size. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/** Of an error answer, this much is read for its message. */
const MAX_ERROR_BYTES = 64 * 1024;

export function answerTranslated(api: TranslatedApi, request: Record<string, unknown>, proxyRes: IncomingMessage, res: ServerResponse, worked: () => void): void {
  const status = proxyRes.statusCode ?? 502;
  res.setHeader('x-hub-translated', 'chat-completions'); // says where the answer really came from
  const extra: Record<string, string> = {};
  if (typeof proxyRes.headers['retry-after'] === 'string') extra['retry-after'] = proxyRes.headers['retry-after'];
  if (status < 200 || status >= 300) {
    return readAll(proxyRes, MAX_ERROR_BYTES, (text) => sendJson(res, status, backendError(api, status, text), extra));
  }
  worked();
  const streamed = String(proxyRes.headers['content-type'] ?? '').includes('text/event-stream');
  if (api !== 'count_tokens' && request.stream === true) return stream(api, request, proxyRes, res, streamed);
  readAll(proxyRes, MAX_ANSWER_BYTES, (text, whole) => {
    const completion = whole && !streamed ? parse(text) : undefined;
    if (!completion) return sendJson(res, 502, backendError(api, 502, whole ? 'the backend answered with something other than a Chat Completions JSON object' : `the backend's answer is larger than ${MAX_ANSWER_BYTES / 1024 / 1024} MiB, more than the hub translates`));
    if (api === 'responses') return sendJson(res, 200, chatToResponse(completion, request));
    if (api === 'messages') return sendJson(res, 200, chatToMessage(completion, request));
    const tokens = completion.usage?.prompt_tokens;
    if (typeof tokens !== 'number') return sendJson(res, 502, backendError(api, 502, 'the backend reported no usage.prompt_tokens, so the hub cannot count the tokens'));
    sendJson(res, 200, { input_tokens: tokens });
  });
}

function stream(api: 'responses' | 'messages', request: Record<string, unknown>, proxyRes: IncomingMessage, res: ServerResponse, streamed: boolean): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  let waiting = false;
  const write = (text: string) => {
    if (res.writableEnded || res.destroyed) return;
    if (!res.write(text) && !waiting) {
      waiting = true;
      proxyRes.pause(); // the client's socket is full: let the backend wait
      res.once('drain', () => {
        waiting = false;
        proxyRes.resume();
      });
    }
  };
  const writer = api === 'responses' ? new ResponsesStreamWriter(write, request) : new MessagesStreamWriter(write, request);
  writer.begin();
  if (!streamed) {
    // A backend that answered a stream request whole: its answer, played as a stream.
    return readAll(proxyRes, MAX_ANSWER_BYTES, (text) => {
      const completion = parse(text);
      if (completion) replayCompletion(completion, writer);
      else writer.error('its answer was not a Chat Completions JSON object', undefined);
      res.end();
    });
  }
  const reader = new ChatStreamReader(writer);
  const decoder = new StringDecoder('utf8');
  proxyRes.on('data', (chunk: Buffer) => reader.feed(decoder.write(chunk)));
  proxyRes.once('end', () => {
    reader.feed(decoder.end());
    reader.close();
    if (!res.writableEnded) res.end();
  });
}

function parse(text: string): ChatCompletion | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) && Array.isArray(value.choices) ? (value as ChatCompletion) : undefined;
  } catch {
    return undefined;
  }
}

/** The body up to `max` bytes; `whole` says whether that was all of it. */
function readAll(source: IncomingMessage, max: number, done: (text: string, whole: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  source.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
  });
  source.once('end', () => done(Buffer.concat(chunks).toString('utf8'), size <= max));
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const ANTHROPIC_TYPE: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'request_too_large', 429: 'rate_limit_error', 503: 'overloaded_error', 529: 'overloaded_error',
};

/** A backend's error (OpenAI's envelope, llama.cpp's, vLLM's or FastAPI's, or plain text) in the client API's envelope. */
export function backendError(api: TranslatedApi, status: number, text: string): object {
  let message = text.trim().slice(0, 2000) || `the backend answered ${status}`;
  let code: string | undefined;
  let type: string | undefined;
  try {
    const body: unknown = JSON.parse(text);
    const e = isObject(body) ? (isObject(body.error) ? body.error : body) : {};
    if (typeof e.message === 'string') message = e.message;
    else if (typeof e.detail === 'string') message = e.detail;
    else if (typeof e.error === 'string') message = e.error;
    if (typeof e.code === 'string') code = e.code;
    if (typeof e.type === 'string') type = e.type;
  } catch {
    // plain text: its words are the message
  }
  if (api !== 'responses') return { type: 'error', error: { type: ANTHROPIC_TYPE[status] ?? (status < 500 ? 'invalid_request_error' : 'api_error'), message } };
  return { error: { message, type: type ?? (status < 500 ? 'invalid_request_error' : 'server_error'), param: null, code: code ?? 'backend_error' } };
}
