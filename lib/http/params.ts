// A model's `params` applied to a JSON request body before it is forwarded: `strip` removes top-level
// fields, `default` fills the ones the client left out (or sent as null), `set` writes over whatever
// the client sent. Only models with params come here (ModelConfig.params is absent otherwise), so a
// request to any other model is forwarded byte for byte, without being parsed.
import type { ParamsPolicy } from '../config/types.js';
import { HubError } from '../errors.js';
import type { HeldBody } from './body.js';

export function applyParams(body: HeldBody, params: ParamsPolicy): void {
  let request: unknown;
  try {
    request = JSON.parse(body.concat().toString('utf8'));
  } catch (err) {
    // The scan that found `model` checked the grammar; this is only reached for input JSON.parse alone refuses.
    throw new HubError('invalid_json', `the request body is not valid JSON (${(err as Error).message}); send a JSON object with a "model" field`);
  }
  const fields = request as Record<string, unknown>;
  for (const field of params.strip) delete fields[field];
  for (const field in params.default) if (fields[field] === undefined || fields[field] === null) fields[field] = params.default[field];
  for (const field in params.set) fields[field] = params.set[field];
  const rewritten = Buffer.from(JSON.stringify(fields));
  // The proxy sends body.length as Content-Length, so the new length goes with the new bytes.
  body.splice(0, body.length, rewritten);
}
