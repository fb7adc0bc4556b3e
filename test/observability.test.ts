// What an operator reads to answer "which model is slow, how many tokens did it serve, why was it
// unloaded": the request and transition lines of hub.log (a real `hub serve` with demo backends),
// the human lines on a terminal, and the usage the hub reads from JSON answers and streams without
// holding them. Keys and cookies sent by clients never reach any log.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { prettyLine } from '../lib/log.js';
import { Meter, usageInText, usageOf } from '../lib/http/meter.js';
import { demo, freePortRange, serveHub, tempDir, waitFor } from './helpers.js';

type LogRecord = Record<string, any>;

const readLog = (file: string): LogRecord[] =>
  readFileSync(file, 'utf8').trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** The usage object of a chat stream's last chunk that has one, as the client sees it. */
function streamUsage(text: string): { prompt_tokens: number; completion_tokens: number } {
  const chunks = text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
  return chunks.reverse().find((c) => c.usage)!.usage;
}

t.test('hub.log request and transition lines, from a real hub', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'hub.yaml');
  writeFileSync(path, `listen: { port: 0 }
state_dir: ${dir}
ports: { start: ${await freePortRange(4)} }
auth: { api_keys: [user-key-0123456789], admin_keys: [admin-key-9876543210] }
limits: { stall_timeout: 300ms, max_body: 1MiB }
models:
  m: { backend: demo, cmd: "${demo('--load-time 50ms')}" }
  # Names every chunk with a 2,000-character id: a 4,096-token stream is ~8 MB, more than loopback buffers hold.
  streamer: { backend: demo, cmd: "\${HUB} demo-model --port \${PORT} --model ${'streamer-'.padEnd(2000, 'x')}" }
`);
  const hub = await serveHub(t, path);
  const origin = hub.origin;
  const hubLog = join(dir, 'logs', 'hub.log');
  const auth = { authorization: 'Bearer user-key-0123456789', 'x-api-key': 'user-key-0123456789', cookie: 'session=cookie-secret-55555' };
  const line = (id: string) => waitFor(`the request line of ${id}`, () => readLog(hubLog).find((r) => r.msg === 'request' && r.id === id));

  const post = (id: string, body: unknown) =>
    fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify(body) });

  t.test('a JSON answer: status, timings, bytes both ways and the usage the backend reported', async (t) => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'one two three' }], max_tokens: 5 };
    const res = await post('json-1', body);
    const text = await res.text();
    t.equal(res.status, 200);
    const usage = JSON.parse(text).usage;
    const r = await line('json-1');
    t.match(r, { method: 'POST', path: '/v1/chat/completions', model: 'm', status: 200, level: 30 });
    t.equal(r.bytes_in, Buffer.byteLength(JSON.stringify(body)), 'bytes in: the request body');
    t.equal(r.bytes_out, Buffer.byteLength(text), 'bytes out: the answer body');
    t.equal(r.tokens_in, usage.prompt_tokens, 'prompt tokens as reported');
    t.equal(r.tokens_out, usage.completion_tokens, 'completion tokens as reported');
    t.equal(r.tokens_out, 5);
    t.type(r.ms, 'number');
    t.type(r.ttfb_ms, 'number');
    t.ok(r.ttfb_ms <= r.ms, `time to first byte ${r.ttfb_ms} ms within the total ${r.ms} ms`);
    t.type(r.cold_start_ms, 'number', 'the first request waited for the model to start');
  });

  t.test('a streamed answer with include_usage: tokens from its last events, bytes as received', async (t) => {
    const res = await post('stream-1', { model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'a b' }], max_tokens: 7 });
    const text = await res.text();
    t.match(text, /data: \[DONE\]/);
    const usage = streamUsage(text);
    t.equal(usage.completion_tokens, 7);
    const r = await line('stream-1');
    t.match(r, { status: 200, model: 'm', tokens_in: usage.prompt_tokens, tokens_out: 7 });
    t.equal(r.bytes_out, Buffer.byteLength(text));
    t.equal(r.cold_start_ms, undefined, 'warm: no cold start');
  });

  t.test('a stream far longer than the kept head and tail still yields its final usage', async (t) => {
    const res = await post('stream-long', { model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'x' }], max_tokens: 3000 });
    const text = await res.text();
    t.ok(Buffer.byteLength(text) > 200 * 1024, `the stream is ${Buffer.byteLength(text)} bytes (head 16 KiB + tail 64 KiB are kept)`);
    const r = await line('stream-long');
    t.match(r, { tokens_in: streamUsage(text).prompt_tokens, tokens_out: 3000 });
  });

  t.test('a stream without usage logs no tokens rather than a guess', async (t) => {
    const res = await post('stream-2', { model: 'm', stream: true, messages: [{ role: 'user', content: 'a b' }], max_tokens: 3 });
    await res.text();
    const r = await line('stream-2');
    t.equal(r.tokens_in, undefined);
    t.equal(r.tokens_out, undefined);
    t.ok(r.bytes_out > 0);
  });

  t.test('a hub-made error: its status and size, no model', async (t) => {
    const res = await post('unknown-1', { model: 'nope', messages: [] });
    const text = await res.text();
    t.equal(res.status, 404);
    const r = await line('unknown-1');
    t.match(r, { status: 404, path: '/v1/chat/completions' });
    t.equal(r.model, undefined);
    t.equal(r.bytes_out, Buffer.byteLength(text));
  });

  t.test('a client that stops reading is cut, and its line says so', async (t) => {
    const { hostname, port } = new URL(origin);
    const body = JSON.stringify({ model: 'streamer', stream: true, messages: [{ role: 'user', content: 'x' }], max_tokens: 4096 });
    const socket = connect(Number(port), hostname);
    socket.once('error', () => {});
    await once(socket, 'connect');
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer user-key-0123456789\r\nx-request-id: stalled-1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.pause(); // reads nothing: the kernel buffers fill, then the hub's writes wait
    t.teardown(() => socket.destroy());
    const r = await line('stalled-1');
    t.match(r, { status: 200, model: 'streamer', cut: 'stalled' });
    t.ok(r.bytes_out > 0, `${r.bytes_out} bytes went out before the cut`);
  });

  t.test('a body refused before it is sent (Expect: 100-continue) has its line too', async (t) => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'content-length': 50 * 2 ** 20, expect: '100-continue', 'x-request-id': 'too-big-1' },
      });
      req.on('response', (res) => { res.resume(); resolve(res.statusCode!); req.destroy(); });
      req.on('error', reject);
      req.flushHeaders();
    });
    t.equal(status, 413);
    t.match(await line('too-big-1'), { status: 413, method: 'POST', path: '/v1/chat/completions', bytes_in: 0 });
  });

  t.test('a model log: ?tail=0 is no line, ?tail=2 the last two', async (t) => {
    const get = (q: string) => fetch(`${origin}/hub/api/models/m/logs?${q}`, { headers: { authorization: 'Bearer admin-key-9876543210' } }).then((r) => r.text());
    t.equal(await get('tail=0'), '');
    t.equal((await get('tail=2')).trimEnd().split('\n').length, 2);
  });

  t.test('one line per transition, with its reason', async (t) => {
    const stop = await fetch(`${origin}/hub/api/models/m/stop`, { method: 'POST', headers: { authorization: 'Bearer admin-key-9876543210' } });
    t.equal(stop.status, 200);
    const transitions = await waitFor('the stop transitions', () => {
      const all = readLog(hubLog).filter((r) => r.model === 'm' && r.axis === 'process');
      return all.some((r) => r.to === 'stopped') ? all : undefined;
    });
    t.same(
      transitions.map((r) => `${r.from}->${r.to} (${r.reason})`),
      ['stopped->starting (request)', 'starting->running (request)', 'running->stopping (operator)', 'stopping->stopped (operator)'],
    );
    t.equal(transitions[0].msg, 'm process stopped -> starting (request)');
  });

  t.test('no key, Authorization header or cookie reaches stdout or hub.log', async (t) => {
    const everything = readFileSync(hubLog, 'utf8') + hub.output();
    for (const secret of ['user-key-0123456789', 'admin-key-9876543210', 'cookie-secret-55555', 'Bearer']) {
      t.notOk(everything.includes(secret), `${secret} is in no log`);
    }
    t.notMatch(everything, /"(authorization|cookie|x-api-key)"/i, 'no header of that name is logged');
  });
});

t.test('a terminal gets one short line per record, each field said once', async (t) => {
  const time = '2026-12-01T10:00:00.000Z';
  const request = prettyLine({
    name: 'modelhub', hostname: 'h', pid: 1, level: 30, time, v: 0, msg: 'request',
    id: 'abc', method: 'POST', path: '/v1/chat/completions', model: 'demo-small', status: 200, ms: 123, ttfb_ms: 12, cold_start_ms: 800,
    bytes_in: 1234, bytes_out: 56, tokens_in: 10, tokens_out: 20,
  });
  t.match(request, /^\d\d:\d\d:\d\d INFO POST \/v1\/chat\/completions -> 200 demo-small 123 ms \(ttfb 12 ms, cold start 800 ms\) 1\.2 kB in, 56 B out, 10\+20 tokens id=abc\n$/);
  const transition = prettyLine({
    name: 'modelhub', level: 30, time, msg: 'demo-small memory loaded -> unloading (evicted for demo-big)',
    model: 'demo-small', axis: 'memory', from: 'loaded', to: 'unloading', reason: 'evicted for demo-big', at: time,
  });
  t.match(transition, /^\d\d:\d\d:\d\d INFO demo-small memory loaded -> unloading \(evicted for demo-big\)\n$/, 'no field repeated after the message');
  const loaded = prettyLine({ level: 30, time, msg: 'm memory unloaded -> loaded (request)', model: 'm', axis: 'memory', from: 'unloaded', to: 'loaded', reason: 'request' });
  t.match(loaded, /INFO m memory unloaded -> loaded \(request\)\n$/, 'a word inside another word is still found on its own');
  const other = prettyLine({ level: 40, time, msg: 'listen changed', listen: { host: 'x', port: 1 } });
  t.match(other, /WARN listen changed listen=\{"host":"x","port":1\}\n$/, 'fields the message does not say are kept');
  const noTiming = prettyLine({ level: 30, time, msg: 'request', method: 'GET', path: '/v1/models', status: 200, ms: 1, bytes_in: 0, bytes_out: 99, id: 'q' });
  t.match(noTiming, /INFO GET \/v1\/models -> 200 1 ms 0 B in, 99 B out id=q\n$/);
});

t.test('usage is read from every API shape, and from a cut-off tail', async (t) => {
  t.same(usageOf({ usage: { prompt_tokens: 3, completion_tokens: 4 } }), { tokens_in: 3, tokens_out: 4 }, 'chat / completions');
  t.same(usageOf({ type: 'response.completed', response: { usage: { input_tokens: 5, output_tokens: 6 } } }), { tokens_in: 5, tokens_out: 6 }, 'Responses stream');
  t.same(usageOf({ type: 'message_start', message: { usage: { input_tokens: 7, output_tokens: 1 } } }), { tokens_in: 7, tokens_out: 1 }, 'Anthropic message_start');
  t.same(usageOf({ type: 'message_delta', usage: { output_tokens: 9 } }), { tokens_out: 9 }, 'Anthropic message_delta');
  t.same(usageOf({ usage: { prompt_tokens: -1, completion_tokens: 'x' } }), {}, 'nonsense is not counted');
  t.same(usageOf({ usage: null }), {});
  t.same(usageInText('..."x"],"usage":{"prompt_tokens":11,"completion_tokens":12,"details":{"a":"}"}}}'), { tokens_in: 11, tokens_out: 12 });
  t.same(usageInText('"usage": {"prompt_tokens": 1, "comp'), {}, 'an object cut off at the end');
  t.same(usageInText('no usage here'), {});
});

t.test('the meter reads a JSON answer\'s usage from its tail, in any chunking, without holding the answer', async (t) => {
  const meter = async (body: string, chunk: number) => {
    const res = Object.assign(new PassThrough(), { headers: { 'content-type': 'application/json' } });
    const m = new Meter(performance.now());
    m.watchResponse(res as unknown as IncomingMessage);
    const ended = new Promise((r) => res.once('end', r));
    for (let i = 0; i < body.length; i += chunk) res.write(body.slice(i, i + chunk));
    res.end();
    res.resume();
    await ended;
    return { usage: m.usage, bytes: m.bytesOut };
  };
  const answer = (text: string, usage?: object) => JSON.stringify({ id: 'x', choices: [{ message: { content: text } }], ...(usage ? { usage } : {}) });
  const small = answer('hi', { prompt_tokens: 3, completion_tokens: 4 });
  t.same((await meter(small, 5)).usage, { tokens_in: 3, tokens_out: 4 }, 'a small answer, in 5-byte chunks');
  const quoted = answer('the "usage": {"prompt_tokens": 999} of a model', { prompt_tokens: 1, completion_tokens: 2 });
  t.same((await meter(quoted, 64)).usage, { tokens_in: 1, tokens_out: 2 }, 'text that mentions usage is not mistaken for it');
  const big = answer('x'.repeat(1024 * 1024), { prompt_tokens: 7, completion_tokens: 8 });
  const read = await meter(big, 16 * 1024);
  t.same(read, { usage: { tokens_in: 7, tokens_out: 8 }, bytes: big.length }, 'a 1 MiB answer: its usage, every byte counted');
  t.same((await meter(answer('no usage'), 10)).usage, {}, 'an answer without usage adds nothing');
  const later = JSON.stringify({ id: 'x', usage: { prompt_tokens: 5, completion_tokens: 6 }, hub_extra: { usage: 'not tokens' } });
  t.same((await meter(later, 7)).usage, { tokens_in: 5, tokens_out: 6 }, 'a later "usage" key that is not the usage object is passed over');

  // An answer that never ended (the backend or the client went away) counts no usage, even with its
  // usage already in the bytes that came.
  const res = Object.assign(new PassThrough(), { headers: { 'content-type': 'application/json' } });
  const m = new Meter(performance.now());
  m.watchResponse(res as unknown as IncomingMessage);
  const arrived = new Promise((r) => res.once('data', r));
  res.write(small);
  await arrived;
  res.destroy();
  t.same(m.usage, {}, 'an answer cut off before its end: no usage');
  t.equal(m.bytesOut, small.length, 'its bytes are counted');
});

t.test('the meter reads a stream\'s usage from its first and last events, in any chunking, holding only a few', async (t) => {
  /** Streams `text` cut every `cut` bytes (or at each event with cut 0) through a meter. */
  const meter = async (text: string, cut: number) => {
    const res = Object.assign(new PassThrough(), { headers: { 'content-type': 'text/event-stream' } });
    const m = new Meter(performance.now());
    m.watchResponse(res as unknown as IncomingMessage);
    const ended = new Promise((r) => res.once('end', r));
    let mostHeld = 0;
    res.on('data', () => { mostHeld = Math.max(mostHeld, m.heldBytes); });
    const pieces = cut === 0 ? text.split(/(?<=\n\n|\r\n\r\n)/) : Array.from({ length: Math.ceil(text.length / cut) }, (_, i) => text.slice(i * cut, (i + 1) * cut));
    for (const piece of pieces) res.write(piece);
    res.end();
    await ended;
    return { usage: m.usage, mostHeld, bytes: m.bytesOut };
  };
  const event = (data: object, name?: string) => `${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
  const tokens = (n: number) => Array.from({ length: n }, (_, i) => event({ choices: [{ delta: { content: `token ${i}` } }], usage: null })).join('');
  const chat = `${tokens(5000)}${event({ choices: [], usage: { prompt_tokens: 12, completion_tokens: 5000 } })}data: [DONE]\n\n`;
  for (const cut of [0, 1, 7, 100, 4096]) {
    const read = await meter(chat, cut);
    t.same(read.usage, { tokens_in: 12, tokens_out: 5000 }, `chat completions, ${chat.length} bytes cut ${cut ? `every ${cut} bytes` : 'at each event'}`);
    t.equal(read.bytes, chat.length, 'every byte counted');
    t.ok(read.mostHeld <= 1024 + 3 * Math.max(cut, 200), `held at most ${read.mostHeld} bytes: the first event and the last few`);
  }
  const crlf = chat.replaceAll('\n\n', '\r\n\r\n');
  t.same((await meter(crlf, 0)).usage, { tokens_in: 12, tokens_out: 5000 }, 'events ended by CRLF');
  t.ok((await meter(crlf, 0)).mostHeld < 2048, 'and still only a few held');

  const anthropic = event({ type: 'message_start', message: { usage: { input_tokens: 21, output_tokens: 1 } } }, 'message_start') +
    Array.from({ length: 3000 }, (_, i) => event({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `word ${i}` } }, 'content_block_delta')).join('') +
    event({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3000 } }, 'message_delta') + event({ type: 'message_stop' }, 'message_stop');
  for (const cut of [0, 13]) t.same((await meter(anthropic, cut)).usage, { tokens_in: 21, tokens_out: 3000 }, `Anthropic: input from the first event, output from the last ones (cut ${cut})`);

  const long = 'x'.repeat(200 * 1024);
  const responses = event({ type: 'response.output_text.delta', delta: 'x' }) +
    event({ type: 'response.completed', response: { id: 'r', output: [{ type: 'message', content: [{ type: 'output_text', text: long }] }], usage: { input_tokens: 8, output_tokens: 9 }, metadata: {} } });
  const read = await meter(responses, 16 * 1024);
  t.same(read.usage, { tokens_in: 8, tokens_out: 9 }, 'Responses: a response.completed longer than what is kept still gives its usage');
  t.ok(read.mostHeld <= 64 * 1024 + 16 * 1024, `held at most ${read.mostHeld} bytes`);
  t.same((await meter(tokens(300), 50)).usage, {}, 'a stream without usage adds nothing');
});
