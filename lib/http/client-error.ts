// Requests Node's HTTP parser rejects before the app ever sees them (oversized headers, a
// malformed request line, a request that took too long to arrive) get the hub's error envelope
// too, instead of Node's bare status line, so clients can show the message.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { HubError } from '../errors.js';

export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // Nothing can be written to a connection that is gone, or in the middle of another response.
  const inResponse = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (err.code === 'ECONNRESET' || !socket.writable || inResponse) return void socket.destroy();
  const error = describe(err);
  const body = JSON.stringify(error.toJSON());
  const head = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${randomUUID()}`,
    'connection: close',
  ];
  // Then the connection goes: the parser cannot tell where a next request would start.
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  setTimeout(() => socket.destroy(), 5000).unref();
}

function describe(err: NodeJS.ErrnoException): HubError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new HubError('headers_too_large', 'the request headers are larger than the hub accepts (16 KiB in all); send fewer or smaller headers (a long cookie or URL?)');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new HubError('request_timeout', 'the request did not arrive completely in time; send it again');
    default:
      return new HubError('bad_request', `the request is not valid HTTP/1.1 (${err.code ?? err.message}); check the request line and headers`);
  }
}
