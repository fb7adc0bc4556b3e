// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the message: a proxy must not
// pass them on. The client's `Connection: close` or `Keep-Alive` are about its connection to the
// hub; the backend's `Keep-Alive: timeout=5` is about the hub's connection to it, and would make
// clients drop their connection to the hub early. Transfer-Encoding is hop-by-hop too, but Node
// frames messages itself and http-proxy-3 already drops it from responses.
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'trailer'];

/** Removes every hop-by-hop header from `headers`, plus each header that its Connection header names. */
export function stripHopByHop(headers: IncomingHttpHeaders): void {
  const listed = [headers.connection, headers['proxy-connection']]
    .flatMap((value) => String(value ?? '').split(','))
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  for (const name of [...HOP_BY_HOP, ...listed]) {
    // Never drop framing by way of a Connection header that names it.
    if (name !== 'content-length' && name !== 'transfer-encoding') delete headers[name];
  }
}
