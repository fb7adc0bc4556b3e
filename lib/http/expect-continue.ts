// `Expect: 100-continue`: the client waits for the hub's go-ahead before it uploads the body. Node
// sends "100 Continue" by itself unless the server listens for 'checkContinue'; the hub listens, to
// refuse a body whose declared length is over limits.max_body before a byte of it is sent (every
// route: /upstream too). Anything else gets the go-ahead and is handled as usual.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { errorEnvelope } from './anthropic-errors.js';
import { tooLarge } from './body.js';

/** What the request log is told of a body refused here (the app, which logs the others, never sees it). */
export interface Refusal {
  id: string;
  method: string;
  path: string;
  status: number;
  bytes_out: number;
}

export function continueOrRefuse(handle: RequestListener, maxBodyBytes: () => number, onRefused: (r: Refusal) => void = () => {}): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const limit = maxBodyBytes();
    if (!(Number(req.headers['content-length']) > limit)) {
      res.writeContinue();
      return void handle(req, res);
    }
    const error = tooLarge(limit);
    const text = JSON.stringify(errorEnvelope(req.url, error));
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && given ? given : randomUUID();
    res.writeHead(error.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'x-request-id': id,
      ...error.headers,
    });
    res.end(text);
    onRefused({ id, method: req.method ?? '', path: (req.url ?? '/').split('?')[0], status: error.status, bytes_out: Buffer.byteLength(text) });
  };
}
