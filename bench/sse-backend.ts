// A server that streams like a model at a fixed token rate, for the streaming benchmark (streams.ts):
// `node sse-backend.js RATE CHUNKS` listens on a free port, prints it, and answers every POST with
// an SSE stream of CHUNKS Chat Completions chunks, RATE a second, each stamped with the wall-clock
// time it was written (so the reader can tell how late it arrived), then [DONE]. `?chunks=N` on the
// request's URL asks for N chunks instead (a short warm-up run). GET /health is 200.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const [rate, chunks] = [Number(process.argv[2] ?? 20), Number(process.argv[3] ?? 100)];
const now = () => performance.timeOrigin + performance.now();

const server = createServer((req, res) => {
  if (req.method !== 'POST') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  req.resume();
  const count = Number(new URL(req.url ?? '/', 'http://backend').searchParams.get('chunks') ?? chunks);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let sent = 0;
  const timer = setInterval(() => {
    if (sent++ >= count) {
      clearInterval(timer);
      return void res.end('data: [DONE]\n\n');
    }
    res.write(`data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok"}}],"t":${now()}}\n\n`);
  }, 1000 / rate);
  res.on('close', () => clearInterval(timer));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
