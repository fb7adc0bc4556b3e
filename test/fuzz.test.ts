// Seeded fuzzing of the hub's HTTP surface: a few thousand generated requests — methods, paths (with
// good and broken %-escapes), headers, content types, JSON of every shape, multipart, random bytes,
// plus raw bytes the HTTP parser must reject — against a hub with a real demo backend. The hub must
// stay up, every response the hub makes itself must be a 4xx/5xx that fits, in the error envelope
// (never a 500), and once the dust settles nothing is left in flight or queued.
// Replay a failure with FUZZ_SEED=<seed> (printed on failure); FUZZ_RUNS sets the count.
import { request } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { demo, startTestHub, waitFor } from './helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2500);
const SEED = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const ids = ['demo', 'alias-demo', 'remote-down', 'nope', '', '..', '%2e%2e', 'a'.repeat(300), 'dé mo', '%00', '%zz'];
const idArb = fc.constantFrom(...ids);
const brokenEscape = fc.constantFrom('%', '%z', '%zz', '%E0%A4%A', '%C0%AF', '%FF', '%%', '%2', '%u0041');
const segment = fc.oneof(fc.constantFrom('v1', 'hub', 'api', 'models', 'x', ''), fc.string({ maxLength: 12 }).map(encodeURIComponent), brokenEscape);
const pathArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/messages', '/v1/rerank', '/rerank', '/v1/audio/transcriptions', '/v1/anything/else') },
  { weight: 2, arbitrary: fc.constantFrom('/', '/v1', '/v1/models', '/health', '/metrics', '/hub', '/hub/api/status', '/hub/api/usage', '/nothing') },
  { weight: 2, arbitrary: idArb.map((id) => `/v1/models/${id}`) },
  { weight: 2, arbitrary: fc.tuple(idArb, fc.constantFrom('/health', '/v1/models', '/props', '', '/sleep', '/%zz')).map(([id, p]) => `/upstream/${id}${p}`) },
  { weight: 2, arbitrary: fc.tuple(idArb, fc.constantFrom('logs?tail=3', 'logs?tail=-1', 'logs?tail=zz', 'start', 'load', 'unload', 'bogus')).map(([id, a]) => `/hub/api/models/${id}/${a}`) },
  { weight: 1, arbitrary: fc.constant('/hub/api/reload') },
  { weight: 2, arbitrary: fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('/v1/chat/completions', '/v1/models/'), brokenEscape).map(([p, e]) => `${p}${e}`) },
);

const modelArb = fc.oneof(fc.constantFrom('demo', 'alias-demo', 'remote-down', 'nope', ''), fc.constant(42), fc.constant(null), fc.constant(['demo']), fc.string({ maxLength: 8 }));
const deep = (n: number, open: string, close: string) => open.repeat(n) + close.repeat(n);
const bodyArb: fc.Arbitrary<{ body?: Buffer | string; type?: string }> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({}) },
  {
    weight: 6,
    arbitrary: fc.record({ model: modelArb, stream: fc.boolean(), extra: fc.jsonValue({ maxDepth: 3 }) }).map(({ model, stream, extra }) => ({
      body: JSON.stringify({ model, stream, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }], input: 'x', extra }),
      type: 'application/json',
    })),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ body: JSON.stringify(v), type: 'application/json' })) },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }).map((s) => ({ body: s, type: 'application/json' })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }).map((b) => ({ body: Buffer.from(b), type: 'application/octet-stream' })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 50_000 }).map((n) => ({ body: `{"model":"demo","x":${deep(n, '[', ']')}}`, type: 'application/json' })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 50_000 }).map((n) => ({ body: `{"x":${deep(n, '{"a":', '}').replace(/\}$/, '0}')}}`, type: 'application/json' })) },
  { weight: 1, arbitrary: fc.constant({ body: `{"model":"demo","messages":[{"role":"user","content":"${'A'.repeat(2 ** 20)}"}],"max_tokens":1}`, type: 'application/json' }) },
  {
    weight: 2,
    arbitrary: fc.record({ model: fc.option(modelArb.map(String)), before: fc.boolean(), broken: fc.boolean() }).map(({ model, before, broken }) => {
      const b = 'fuzzbound';
      const file = `--${b}\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\ncontent-type: audio/wav\r\n\r\nRIFF....\r\n`;
      const field = model === null ? '' : `--${b}\r\ncontent-disposition: form-data; name="model"\r\n\r\n${model}\r\n`;
      const body = (before ? field + file : file + field) + (broken ? '' : `--${b}--\r\n`);
      return { body, type: `multipart/form-data; boundary=${broken ? 'other' : b}` };
    }),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }).map((s) => ({ body: s, type: 'text/plain' })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }).map((s) => ({ body: `model=demo&x=${encodeURIComponent(s)}`, type: 'application/x-www-form-urlencoded' })) },
);
const headerArb = fc.record(
  {
    accept: fc.constantFrom('*/*', 'text/event-stream', 'application/json'),
    'content-encoding': fc.constantFrom('gzip', 'identity', 'br'),
    'x-request-id': fc.string({ maxLength: 40 }).filter((s) => /^[\x21-\x7e]*$/.test(s)),
    'x-api-key': fc.string({ maxLength: 20 }).filter((s) => /^[\x21-\x7e]*$/.test(s)),
    expect: fc.constant('100-continue'),
    connection: fc.constantFrom('close', 'keep-alive', 'upgrade'),
    te: fc.constant('trailers'),
  },
  { requiredKeys: [] },
);

const requestArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
  path: pathArb,
  body: bodyArb,
  headers: headerArb,
  chunked: fc.boolean(),
});

/** Raw bytes for the HTTP parser itself: broken request lines, oversized or invalid headers, bad chunking. */
const rawArb = fc.oneof(
  fc.constant('GET / HTTP/1.1\r\nHost: x\r\n' + `x-big: ${'a'.repeat(20_000)}\r\n\r\n`),
  fc.constant('GARBAGE\r\n\r\n'),
  fc.constant('GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n'),
  fc.constant('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
  fc.constant('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello'),
  fc.constant('GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n'),
  fc.string({ maxLength: 200 }).map((s) => `${s}\r\n\r\n`),
);

type FuzzRequest = typeof requestArb extends fc.Arbitrary<infer R> ? R : never;

function send(port: number, r: FuzzRequest): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    if (r.body.type) headers['content-type'] = r.body.type;
    const body = r.body.body === undefined ? undefined : Buffer.from(r.body.body);
    if (body && !r.chunked) headers['content-length'] = String(body.length);
    const req = request({ host: '127.0.0.1', port, method: r.method, path: r.path, headers, agent: false, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 20 s')));
    req.on('error', reject);
    req.end(body);
  });
}

function sendRaw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let out = '';
    socket.on('data', (c) => { out += c.toString('latin1'); });
    socket.on('error', () => resolve(out));
    socket.on('close', () => resolve(out));
    socket.setTimeout(5000, () => socket.destroy());
    socket.end(bytes, 'latin1');
  });
}

/** What is wrong with a reply, or undefined. Proxied answers (x-hub-model) are the backend's business. */
function problem(r: { method: string; path: string }, reply: Reply): string | undefined {
  if (reply.status === 500) return `500 (a bug): ${reply.body.slice(0, 300)}`;
  if (reply.status < 400 || reply.headers['x-hub-model'] !== undefined || r.method === 'HEAD') return undefined;
  let body: any;
  try {
    body = JSON.parse(reply.body);
  } catch {
    return `${reply.status} without a JSON envelope: ${JSON.stringify(reply.body.slice(0, 200))}`;
  }
  const openai = body?.error && typeof body.error.message === 'string' && typeof body.error.type === 'string' && typeof body.error.code === 'string';
  const anthropic = body?.type === 'error' && typeof body.error?.type === 'string' && typeof body.error?.message === 'string';
  if (!openai && !anthropic) return `${reply.status} with a body that is not an error envelope: ${reply.body.slice(0, 200)}`;
  return undefined;
}

t.test(`fuzz: ${RUNS} generated requests (seed ${SEED})`, { timeout: 240_000 }, async (t) => {
  const h = await startTestHub(t, `
models:
  demo: { backend: demo, cmd: "${demo('--max-tokens 2')}", aliases: [alias-demo], served_model: demo-served }
  remote-down: { url: "http://127.0.0.1:9" }
`);
  const port = Number(new URL(h.origin).port);
  const failures: string[] = [];
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof({ weight: 15, arbitrary: requestArb.map((r) => ({ raw: false as const, r })) }, { weight: 1, arbitrary: rawArb.map((bytes) => ({ raw: true as const, bytes })) }), { minLength: 20, maxLength: 20 }), async (batch) => {
      await Promise.all(
        batch.map(async (item) => {
          sent++;
          if (item.raw) {
            const out = await sendRaw(port, item.bytes);
            const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(out)?.[1] ?? 0);
            if (status === 500) failures.push(`raw ${JSON.stringify(item.bytes.slice(0, 60))}: 500`);
            if (status >= 400 && !/\r\n\r\n\{"error":\{/.test(out) && !/\r\n\r\n[0-9a-f]+\r\n\{"error"/.test(out)) failures.push(`raw ${JSON.stringify(item.bytes.slice(0, 60))}: ${status} without the envelope: ${JSON.stringify(out.slice(0, 200))}`);
            return;
          }
          const reply = await send(port, item.r).catch((err: Error) => ({ status: -1, headers: {}, body: err.message }));
          if (reply.status === -1) return; // the connection was refused or cut (e.g. 100-continue refused): the hub chose not to answer
          const wrong = problem(item.r, reply);
          if (wrong) failures.push(`${item.r.method} ${item.r.path} (${item.r.body.type ?? 'no body'}${item.r.chunked ? ', chunked' : ''}, headers ${JSON.stringify(item.r.headers)}): ${wrong}`);
        }),
      );
      const health = await fetch(`${h.origin}/health`);
      if (health.status !== 200) throw new Error(`the hub stopped answering /health (${health.status})`);
    }),
    { numRuns: Math.ceil(RUNS / 20), seed: SEED },
  );
  t.same(failures.slice(0, 20), [], `${failures.length} bad replies out of ${sent} requests`);
  t.equal((await fetch(`${h.origin}/health`)).status, 200, 'the hub is up');
  await waitFor('every request to be over', () => h.hub.controller.status().models.every((m) => m.in_flight === 0 && m.queued === 0));
  t.pass(`${sent} requests sent, seed ${SEED}`);
});
