// Errors the hub itself produces (SPEC §3.2). The controller throws them; the HTTP layer renders
// them as the OpenAI envelope {"error":{message,type,param,code}}; the CLI prints the message.

export type HubErrorCode =
  | 'invalid_json'
  | 'model_required'
  | 'model_not_found'
  | 'body_too_large'
  | 'body_incomplete'
  | 'hub_busy'
  | 'invalid_api_key'
  | 'forbidden'
  | 'unsupported_media_type'
  | 'bad_request'
  | 'headers_too_large'
  | 'request_timeout'
  | 'model_busy'
  | 'capacity_exhausted'
  | 'model_start_failed'
  | 'model_start_timeout'
  | 'backend_unavailable'
  | 'hub_shutting_down'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'invalid_config'
  | 'internal_error';

const STATUS: Record<HubErrorCode, number> = {
  invalid_json: 400,
  model_required: 400,
  model_not_found: 404,
  body_too_large: 413,
  body_incomplete: 408,
  hub_busy: 503,
  invalid_api_key: 401,
  forbidden: 403,
  unsupported_media_type: 415,
  bad_request: 400,
  headers_too_large: 431,
  request_timeout: 408,
  model_busy: 429,
  capacity_exhausted: 429,
  model_start_failed: 503,
  model_start_timeout: 504,
  backend_unavailable: 502,
  hub_shutting_down: 503,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  invalid_config: 422,
  internal_error: 500,
};

const TYPE: Partial<Record<HubErrorCode, string>> = {
  invalid_json: 'invalid_request_error',
  model_required: 'invalid_request_error',
  model_not_found: 'invalid_request_error',
  body_too_large: 'invalid_request_error',
  body_incomplete: 'invalid_request_error',
  invalid_api_key: 'authentication_error',
  forbidden: 'permission_error',
  unsupported_media_type: 'invalid_request_error',
  bad_request: 'invalid_request_error',
  headers_too_large: 'invalid_request_error',
  request_timeout: 'invalid_request_error',
  model_busy: 'rate_limit_error',
  capacity_exhausted: 'rate_limit_error',
  not_found: 'invalid_request_error',
  method_not_allowed: 'invalid_request_error',
  conflict: 'invalid_request_error',
  invalid_config: 'invalid_request_error',
};

/**
 * Headers a code always carries. The OpenAI SDKs retry every 5xx (twice, by default) unless told
 * not to: a start timeout already waited the model's whole start_timeout, and a retry would spawn it
 * again and wait again.
 */
const HEADERS: Partial<Record<HubErrorCode, Record<string, string>>> = {
  model_start_timeout: { 'x-should-retry': 'false' },
};

export class HubError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: HubErrorCode,
    message: string,
    options: { param?: string; retryAfterMs?: number; headers?: Record<string, string>; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = 'HubError';
    this.status = STATUS[code];
    this.param = options.param ?? null;
    this.headers = { ...HEADERS[code], ...options.headers };
    this.details = options.details;
    if (options.retryAfterMs !== undefined) this.headers['retry-after'] = String(Math.max(1, Math.ceil(options.retryAfterMs / 1000)));
  }

  readonly param: string | null;
  /** Extra fields inside the error object (e.g. the list of config problems). */
  readonly details?: Record<string, unknown>;

  /** The OpenAI error envelope. */
  toJSON(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: TYPE[this.code] ?? 'server_error', param: this.param, code: this.code, ...this.details } };
  }
}


/** "1 problem", "2 problems": counts in messages read as English. */
export const plural = (n: number, word: string, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;
