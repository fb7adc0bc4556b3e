// The bundled demo backend, run as a real process: health while loading, the OpenAI endpoints,
// its failure modes, and vLLM-style sleep/wake that really frees and re-allocates RAM.
import t from 'tap';
import { freePort, getJson, postJson, spawnHub, waitFor } from './helpers.js';

async function startDemo(t: Parameters<typeof spawnHub>[0], flags: string[]) {
  const port = await freePort();
  const proc = spawnHub(t, ['demo-model', '--port', String(port), '--model', 'demo-x', ...flags]);
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the demo to listen', () => fetch(`${base}/health`).then(() => true, () => false));
  return { ...proc, base };
}

const chat = (base: string, body: object) => postJson(`${base}/v1/chat/completions`, { model: 'demo-x', messages: [{ role: 'user', content: 'hi there' }], ...body });

t.test('health is 503 while loading, then 200; inference waits for it', async (t) => {
  const d = await startDemo(t, ['--load-time', '2s']); // long enough for three requests on a busy machine
  const early = await getJson(`${d.base}/health`);
  t.equal(early.status, 503, 'loading');
  t.same(early.body, { status: 'loading' });
  t.equal((await chat(d.base, {})).status, 503, 'no inference while loading');
  await waitFor('ready', async () => (await getJson(`${d.base}/health`)).status === 200);
  const models = await getJson(`${d.base}/v1/models`);
  t.equal(models.body.data[0].id, 'demo-x');
});

t.test('chat and completions: deterministic JSON with usage, and SSE chunks with usage', async (t) => {
  const d = await startDemo(t, []);
  const a = await chat(d.base, { max_tokens: 6 });
  const b = await chat(d.base, { max_tokens: 6 });
  t.equal(a.status, 200);
  t.equal(a.body.object, 'chat.completion');
  t.match(a.body.choices[0].message.content, /^Hello from demo-x\./);
  t.equal(a.body.choices[0].message.content, b.body.choices[0].message.content, 'same prompt, same reply');
  t.same(a.body.usage, { prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });

  const c = await postJson(`${d.base}/v1/completions`, { model: 'demo-x', prompt: 'once upon', max_tokens: 3 });
  t.equal(c.body.object, 'text_completion');
  t.equal(c.body.choices[0].text, 'Hello from demo-x');

  const res = await fetch(`${d.base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo-x', stream: true, max_tokens: 4, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }),
  });
  t.equal(res.headers.get('content-type'), 'text/event-stream');
  const events = (await res.text()).split('\n\n').filter(Boolean);
  t.equal(events.at(-1), 'data: [DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)));
  t.equal(chunks.length, 5, 'four tokens and a usage chunk');
  t.equal(chunks.slice(0, 4).map((c) => c.choices[0].delta.content).join(''), 'Hello from demo-x.');
  t.same(chunks[4].usage, { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 });
});

t.test('embeddings: float and base64 carry the same vector', async (t) => {
  const d = await startDemo(t, ['--embedding-dim', '6']);
  const f = await postJson(`${d.base}/v1/embeddings`, { model: 'demo-x', input: ['a', 'b'] });
  const b = await postJson(`${d.base}/v1/embeddings`, { model: 'demo-x', input: ['a', 'b'], encoding_format: 'base64' });
  t.equal(f.body.data.length, 2);
  t.equal(f.body.data[0].embedding.length, 6);
  const bytes = Buffer.from(b.body.data[1].embedding, 'base64');
  const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
  t.same(decoded, f.body.data[1].embedding);
  t.not(f.body.data[0].embedding[0], f.body.data[1].embedding[0], 'different inputs, different vectors');
});

t.test('failure modes: exit during start, never ready, crash after N tokens', async (t) => {
  const fails = await startDemo(t, ['--fail-start', '3', '--load-time', '600ms']);
  t.same(await fails.exited, { code: 3, signal: null }, 'exits with the given code while loading');
  t.match(fails.output(), /simulated start failure/);

  const never = await startDemo(t, ['--never-ready']);
  await waitFor('the never-ready note', () => never.output().includes('never becoming ready'));
  t.equal((await getJson(`${never.base}/health`)).status, 503, 'still 503 after its load time has passed');

  const crash = await startDemo(t, ['--crash-after', '3']);
  const ok = await chat(crash.base, { max_tokens: 2 });
  t.equal(ok.status, 200, 'fine below the limit');
  const res = await chat(crash.base, { max_tokens: 5 }).catch((e: Error) => e);
  t.type(res, Error, 'the connection drops mid-answer');
  t.same(await crash.exited, { code: 1, signal: null });
  t.match(crash.output(), /crashing after 3 tokens/);
});

t.test('sleep frees the RAM and wake_up allocates it again', async (t) => {
  const d = await startDemo(t, ['--memory', '192MiB']);
  await waitFor('ready', async () => (await getJson(`${d.base}/health`)).status === 200);
  const stats = async () => (await getJson(`${d.base}/demo/stats`)).body;
  const loaded = await stats();
  t.equal(loaded.allocated_bytes, 192 * 2 ** 20);
  t.ok(loaded.rss > 192 * 2 ** 20, `RSS ${loaded.rss} holds the weights`);

  t.equal((await postJson(`${d.base}/sleep?level=1`, {})).status, 200);
  t.same((await getJson(`${d.base}/is_sleeping`)).body, { is_sleeping: true });
  // V8 releases ArrayBuffer memory on a background thread, so the drop shows up shortly after.
  const asleep = await waitFor('RSS to drop by 150 MiB', async () => {
    const s = await stats();
    return loaded.rss - s.rss > 150 * 2 ** 20 && s;
  });
  t.equal(asleep.allocated_bytes, 0);
  t.pass(`RSS dropped by ${((loaded.rss - asleep.rss) / 2 ** 20).toFixed(0)} MiB`);
  const refused = await chat(d.base, {});
  t.equal(refused.status, 503, 'a sleeping model does not answer');
  t.equal((await stats()).rejected, 1, 'and counts the request it refused');

  t.equal((await postJson(`${d.base}/wake_up`, {})).status, 200);
  t.same((await getJson(`${d.base}/is_sleeping`)).body, { is_sleeping: false });
  const awake = await stats();
  t.equal(awake.allocated_bytes, 192 * 2 ** 20);
  t.ok(awake.rss - asleep.rss > 150 * 2 ** 20, 'RSS is back up');
  t.equal((await chat(d.base, {})).status, 200);
});

t.test('Responses and Messages APIs: JSON, typed SSE events with usage, count_tokens; errors in each API\'s shape', async (t) => {
  // Loading for 2 s: with 300 ms, a busy machine let the backend become ready before the first request.
  const d = await startDemo(t, ['--max-tokens', '6', '--load-time', '2s']);
  const loading = await postJson(`${d.base}/v1/messages`, { model: 'demo-x', max_tokens: 5, messages: [] });
  t.same(loading.body, { type: 'error', error: { type: 'overloaded_error', message: 'model demo-x is loading; retry when GET /health answers 200' } }, 'Anthropic shape while loading');
  const early = await postJson(`${d.base}/v1/responses`, { model: 'demo-x', input: 'hi' });
  t.equal(early.body.error.code, 'model_not_ready', 'a string code on OpenAI routes');
  await waitFor('ready', async () => (await getJson(`${d.base}/health`)).status === 200);

  const r = await postJson(`${d.base}/v1/responses`, { model: 'demo-x', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi there' }] }] });
  t.equal(r.body.object, 'response');
  t.equal(r.body.status, 'completed');
  t.match(r.body.output[0].content[0].text, /^Hello from demo-x\./);
  t.same(r.body.usage, { input_tokens: 2, input_tokens_details: { cached_tokens: 0 }, output_tokens: 6, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 8 });
  const cut = await postJson(`${d.base}/v1/responses`, { model: 'demo-x', input: 'hi', max_output_tokens: 2 });
  t.same([cut.body.status, cut.body.incomplete_details], ['incomplete', { reason: 'max_output_tokens' }]);

  const events = async (path: string, body: object) => {
    const res = await fetch(`${d.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo-x', stream: true, ...body }) });
    t.equal(res.headers.get('content-type'), 'text/event-stream');
    return (await res.text()).trim().split('\n\n').map((e) => {
      const [name, data] = e.split('\n');
      const parsed = JSON.parse(data.slice('data: '.length));
      t.equal(name, `event: ${parsed.type}`, 'each event is named after its type');
      return parsed;
    });
  };
  const rs = await events('/v1/responses', { input: 'hi' });
  t.same(rs.map((e) => e.type), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    ...Array(6).fill('response.output_text.delta'), 'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
  t.same(rs.map((e) => e.sequence_number), rs.map((_, i) => i), 'sequence numbers count up');
  t.equal(rs.at(-1).response.usage.output_tokens, 6);

  const m = await postJson(`${d.base}/v1/messages`, { model: 'demo-x', max_tokens: 4096, system: 'be nice', messages: [{ role: 'user', content: 'hi there' }] });
  t.same([m.body.type, m.body.role, m.body.stop_reason], ['message', 'assistant', 'end_turn']);
  t.same(m.body.usage, { input_tokens: 4, output_tokens: 6, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
  const ms = await events('/v1/messages', { max_tokens: 3, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
  t.same(ms.map((e) => e.type), ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  t.equal(ms.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join(''), 'Hello from demo-x');
  t.same(ms[7].delta.stop_reason, 'max_tokens');
  t.same(ms[7].usage, { output_tokens: 3 });
  t.same((await postJson(`${d.base}/v1/messages/count_tokens`, { model: 'demo-x', messages: [{ role: 'user', content: 'one two three' }] })).body, { input_tokens: 3 });

  const bad = await postJson(`${d.base}/v1/messages`, 'not json');
  t.equal(bad.status, 400);
  t.equal(bad.body.error.type, 'invalid_request_error');
  const none = await postJson(`${d.base}/v1/nothing`, {});
  t.same([none.status, none.body.error.code], [404, 'not_found'], 'a string code, not a number');
});
