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
  const d = await startDemo(t, ['--load-time', '400ms']);
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
