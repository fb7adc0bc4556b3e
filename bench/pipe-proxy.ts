// The baseline of the streaming benchmark: a bare Node http.request pipe proxy in its own process
// (`node pipe-proxy.js BACKEND`), printing its port. What any proxy must at least spend.
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

const backend = process.argv[2];
const agent = new Agent({ keepAlive: true });
const server = createServer((req, res) => {
  const up = request(`${backend}${req.url}`, { method: req.method, headers: req.headers, agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    upRes.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
