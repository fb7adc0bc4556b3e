// Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens) is routed like any /v1 POST,
// but its clients (the Anthropic SDKs, coding agents) parse only Anthropic's error shape: there the
// hub's own errors leave as {"type":"error","error":{"type","message"}}, with the same status and
// headers (retry-after, x-should-retry) as on the OpenAI routes, so retries behave the same.
import { HubError, type HubErrorCode } from '../errors.js';

/** Whether a request path (query string and all) is one of Anthropic's Messages routes. */
export function isAnthropicPath(path: string | undefined): boolean {
  const p = (path ?? '').split('?')[0].toLowerCase();
  return p === '/v1/messages' || p.startsWith('/v1/messages/');
}

const TYPE: Partial<Record<HubErrorCode, string>> = {
  invalid_api_key: 'authentication_error',
  forbidden: 'permission_error',
  model_not_found: 'not_found_error',
  not_found: 'not_found_error',
  model_busy: 'rate_limit_error',
  capacity_exhausted: 'rate_limit_error',
  body_too_large: 'request_too_large',
  hub_busy: 'overloaded_error',
  hub_shutting_down: 'overloaded_error',
  model_start_failed: 'api_error',
  model_start_timeout: 'api_error',
  backend_unavailable: 'api_error',
  internal_error: 'api_error',
};

export interface AnthropicError {
  type: 'error';
  error: { type: string; message: string };
}

export function anthropicEnvelope(error: HubError): AnthropicError {
  const type = TYPE[error.code] ?? (error.status < 500 ? 'invalid_request_error' : 'api_error');
  return { type: 'error', error: { type, message: error.message } };
}

/** The envelope a request on `path` understands: Anthropic's on its routes, OpenAI's everywhere else. */
export function errorEnvelope(path: string | undefined, error: HubError): object {
  return isAnthropicPath(path) ? anthropicEnvelope(error) : error.toJSON();
}

const isResponsesPath = (path: string | undefined) => /^\/v1\/responses(\/|$|\?)/i.test(path ?? '');

/**
 * A failure after a stream started, as the last event of that stream in its API's own shape:
 * Anthropic's `event: error`; the Responses API's typed `error` event (which the Vercel AI SDK
 * reads, and whose `error` field the openai SDK raises; its sequence_number is 0, since the hub does
 * not count the backend's events); elsewhere a `data: {"error":{…}}` chunk.
 */
export function inBandError(path: string | undefined, error: HubError): string {
  if (isAnthropicPath(path)) return `event: error\ndata: ${JSON.stringify(anthropicEnvelope(error))}\n\n`;
  if (isResponsesPath(path)) return `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 0, ...error.toJSON() })}\n\n`;
  return `data: ${JSON.stringify(error.toJSON())}\n\n`;
}
