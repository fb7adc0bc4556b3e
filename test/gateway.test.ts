// The OpenAI-compatible gateway with real demo backends, called through the real `openai` SDK
// (and raw fetch where the SDK hides what is being checked).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import t from 'tap';
import OpenAI, { APIError, NotFoundError, toFile } from 'openai';
import { demo, getJson, postJson, startTestHub } from './helpers.js';

const yaml = `
limits: { max_body: 64KiB }
models:
  fast:
    backend: demo
    cmd: ${demo('--embedding-dim 4')}
    aliases: [gpt-4o-mini, Org/Fancy-Model]
  slow-stream:
    backend: demo
    cmd: ${demo('--token-rate 20')}
  renamed:
    backend: demo
    cmd: ${demo()}
    served_model: backend-name
`;

t.test('gateway', async (t) => {
  const h = await startTestHub(t, yaml);
  const { client } = h;

  t.test('GET /health answers without starting any model', async (t) => {
    const res = await getJson(`${h.origin}/health`);
    t.equal(res.status, 200);
    t.same(res.body, { status: 'ok' });
    t.ok(res.headers.get('x-request-id'), 'every response has a request id');
    t.ok(h.hub.controller.status().models.every((m) => m.process === 'stopped'), 'nothing started');
  });

  t.test('models: list every name and alias with hub state; retrieve one; unknown is 404', async (t) => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    t.same(ids.sort(), ['Org/Fancy-Model', 'fast', 'gpt-4o-mini', 'renamed', 'slow-stream']);
    const one = (await client.models.retrieve('Org/Fancy-Model')) as OpenAI.Model & { hub: Record<string, unknown> };
    t.equal(one.id, 'Org/Fancy-Model');
    t.match(one.hub, { model: 'fast', alias: true, backend: 'demo', process: 'stopped', memory: 'unloaded' });
    const err = await client.models.retrieve('nope').catch((e: unknown) => e);
    t.type(err, NotFoundError);
    t.equal((err as APIError).code, 'model_not_found');
  });

  t.test('chat by alias reaches the aliased model', async (t) => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 })
      .withResponse();
    t.equal(response.headers.get('x-hub-model'), 'fast');
    t.match(data.choices[0].message.content, /^Hello from fast\. \w+$/, 'five tokens from the fast model');
    t.same(data.usage, { prompt_tokens: 1, completion_tokens: 5, total_tokens: 6 });
  });

  t.test('streaming passes chunks through one by one, unbuffered', async (t) => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'slow-stream', stream: true, max_tokens: 6, messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } })
      .withResponse();
    t.equal(response.headers.get('x-accel-buffering'), 'no');
    const arrivals: number[] = [];
    let text = '';
    let usage: unknown;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) { arrivals.push(performance.now()); text += piece; }
    }
    t.match(text, /^Hello from slow-stream\.( \w+){2}$/);
    t.equal(arrivals.length, 6);
    // The backend spaces tokens 50 ms apart; a buffering proxy would deliver them all at once.
    t.ok(arrivals[5] - arrivals[0] >= 150, `chunks spread over ${Math.round(arrivals[5] - arrivals[0])} ms`);
    t.same(usage, { prompt_tokens: 1, completion_tokens: 6, total_tokens: 7 });
  });

  t.test('completions', async (t) => {
    const c = await client.completions.create({ model: 'fast', prompt: 'once', max_tokens: 3 });
    t.equal(c.choices[0].text, 'Hello from fast');
  });

  t.test('embeddings through the SDK (base64 by default) decode to the float vectors', async (t) => {
    const viaSdk = await client.embeddings.create({ model: 'fast', input: ['alpha', 'beta'] });
    const floats = await postJson(`${h.base}/embeddings`, { model: 'fast', input: ['alpha', 'beta'], encoding_format: 'float' });
    t.equal(viaSdk.data.length, 2);
    t.same(viaSdk.data.map((d) => d.embedding), floats.body.data.map((d: { embedding: number[] }) => d.embedding));
    t.equal(viaSdk.data[0].embedding.length, 4);
  });

  t.test('multipart: routed by a model field after the file, forwarded byte for byte', async (t) => {
    const audio = Buffer.alloc(3000, 7);
    const viaSdk = (await client.audio.transcriptions.create({ model: 'fast', file: await toFile(audio, 'clip.wav') })) as unknown as { text: string };
    t.match(viaSdk.text, /^fast heard \d+ bytes$/);

    const boundary = '----hubtest';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
      audio,
      Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nOrg/Fancy-Model\r\n--${boundary}--\r\n`),
    ]);
    const res = await getJson(`${h.base}/audio/transcriptions`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
    t.equal(res.status, 200);
    t.equal(res.headers.get('x-hub-model'), 'fast');
    t.equal(res.body.bytes, body.length);
    t.equal(res.body.sha256, createHash('sha256').update(body).digest('hex'), 'the backend got the original bytes');

    const noModel = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n--${boundary}--\r\n`);
    const missing = await getJson(`${h.base}/audio/transcriptions`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body: noModel });
    t.equal(missing.status, 400);
    t.equal(missing.body.error.code, 'model_required');
  });

  t.test('/upstream/{model}/... passes anything through to the backend', async (t) => {
    const get = await getJson(`${h.origin}/upstream/fast/demo/echo?x=1`);
    t.equal(get.status, 200);
    t.equal(get.body.path, '/demo/echo?x=1');
    t.equal(get.headers.get('x-hub-model'), 'fast');
    const post = await getJson(`${h.origin}/upstream/gpt-4o-mini/demo/echo`, { method: 'POST', body: 'raw bytes' });
    t.equal(post.body.method, 'POST');
    t.equal(post.body.body, 'raw bytes');
    const unknown = await getJson(`${h.origin}/upstream/nope/x`);
    t.equal(unknown.status, 404);
    t.equal(unknown.body.error.code, 'model_not_found');
  });

  t.test('served_model rewrites model with a correct content-length; client auth stays at the hub', async (t) => {
    const res = await postJson(`${h.base}/echo`, { model: 'renamed', note: 'ünïcode' }, { authorization: 'Bearer client-secret', 'x-request-id': 'req-123' });
    t.equal(res.status, 200);
    t.equal(res.headers.get('x-request-id'), 'req-123', 'the client id comes back');
    const seen = res.body;
    t.same(JSON.parse(seen.body), { model: 'backend-name', note: 'ünïcode' });
    t.equal(Number(seen.headers['content-length']), Buffer.byteLength(seen.body), 'content-length matches the rewritten body');
    t.equal(seen.headers.authorization, undefined, 'Authorization is not forwarded');
    t.equal(seen.headers['x-request-id'], 'req-123', 'the request id is forwarded');

    const raw = '{"model":"fast",  "spacing":"kept"}';
    const untouched = await postJson(`${h.base}/echo`, raw);
    t.equal(untouched.body.body, raw, 'without served_model the body is byte-identical');
  });

  t.test('hub errors use the OpenAI envelope and codes', async (t) => {
    const cases: Array<[string, string | object, number, string]> = [
      ['not JSON', '{"model": ', 400, 'invalid_json'],
      ['a JSON array', '[1,2]', 400, 'invalid_json'],
      ['no model', { messages: [] }, 400, 'model_required'],
      ['model not a string', { model: 7 }, 400, 'model_required'],
      ['unknown model', { model: 'gpt-5' }, 404, 'model_not_found'],
    ];
    for (const [what, body, status, code] of cases) {
      const res = await postJson(`${h.base}/chat/completions`, body);
      t.equal(res.status, status, `${what}: status`);
      t.equal(res.body.error.code, code, `${what}: code`);
      t.type(res.body.error.message, 'string');
      t.ok('param' in res.body.error && 'type' in res.body.error, `${what}: full envelope`);
    }
    const notFound = await postJson(`${h.base}/chat/completions`, { model: 'gpt-5' });
    t.match(notFound.body.error.message, /available models: .*fast.*gpt-4o-mini/);
    t.equal(notFound.headers.get('x-should-retry'), 'false');

    const sdk = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] }).catch((e: unknown) => e);
    t.type(sdk, APIError);
    t.equal((sdk as APIError).status, 413);
    t.equal((sdk as APIError).code, 'body_too_large');
    t.match((sdk as APIError).message, /limits\.max_body \(64KiB\)/);

    const route = await getJson(`${h.origin}/v2/nothing`);
    t.equal(route.status, 404);
    t.equal(route.body.error.code, 'not_found');
  });
});

t.test('a kept-alive connection the backend closed is retried once on a new one', async (t) => {
  // Like llama-server after a stream: the backend drops a kept-alive connection instead of reading
  // the next request on it. Here it does so for every second request on a connection.
  const perSocket = new WeakMap<Socket, number>();
  let answered = 0;
  const backend = createServer((req: IncomingMessage, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (req.url !== '/health' && n >= 2) return void req.socket.destroy();
    req.resume();
    req.on('end', () => {
      if (req.url !== '/health') answered++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, n: answered }));
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  t.teardown(() => { backend.closeAllConnections(); backend.close(); });
  const h = await startTestHub(t, `models:\n  flaky: { url: "http://127.0.0.1:${(backend.address() as AddressInfo).port}" }\n`);
  for (let i = 1; i <= 4; i++) {
    const res = await postJson(`${h.base}/chat/completions`, { model: 'flaky' });
    t.equal(res.status, 200, `request ${i} answered`);
  }
  t.equal(answered, 4, 'each request reached the backend exactly once');
  // Four at once leave four kept-alive connections, each of which the backend drops on its next use
  // (as when a backend's keep-alive timeout closes every idle connection at the same moment): the
  // retry must go out on a new connection, not on the next dropped one.
  const burst = await Promise.all([1, 2, 3, 4].map(() => postJson(`${h.base}/chat/completions`, { model: 'flaky' })));
  t.same(burst.map((r) => r.status), [200, 200, 200, 200], 'the burst answered (each on a new connection, or a retry)');
  for (let i = 1; i <= 4; i++) {
    const res = await postJson(`${h.base}/chat/completions`, { model: 'flaky' });
    t.equal(res.status, 200, `request ${i} after the burst answered, with every kept-alive connection dropped`);
  }
  t.equal(answered, 12, 'each request reached the backend exactly once');
});
