// The llama-cpp adapter against a real llama.cpp `llama-server` (built once by
// scripts/llama-server.sh and cached outside the repo) serving a tiny generated GGUF: readiness,
// chat/completions through the SDK (JSON and streaming) answering with the model's name (the hub adds
// --alias), and memory "unload" meaning stop.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { PACKAGE_ROOT, getJson, postJson, processAlive, startTestHub, tempDir } from './helpers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const run = promisify(execFile);

// Building takes ~6 minutes when the cache is empty (CI runs the script before the tests).
t.test('llama-cpp adapter with a real llama-server', { timeout: 15 * 60_000 }, async (t) => {
  const { stdout } = await run('bash', [join(PACKAGE_ROOT, 'scripts', 'llama-server.sh')], { maxBuffer: 64 * 2 ** 20 });
  const bin = stdout.trim().split('\n').at(-1)!;
  const dir = tempDir(t);
  writeTinyGguf(join(dir, 'a.gguf'), { seed: 1 });
  writeTinyGguf(join(dir, 'b.gguf'), { seed: 2 });
  // One thread: more are far slower on a 2-core box. -c 2048: the context is shared by all slots.
  const cmd = (file: string) => `[${JSON.stringify(bin)}, -m, ${JSON.stringify(join(dir, file))}, --host, 127.0.0.1, --port, "\${PORT}", -t, "1", -c, "2048"]`;
  const h = await startTestHub(t, `
groups:
  cpu: { max_loaded: 1 }
models:
  tiny-a: { backend: llama-cpp, group: cpu, aliases: [tiny], cmd: ${cmd('a.gguf')} }
  tiny-b: { backend: llama-cpp, group: cpu, cmd: ${cmd('b.gguf')} }
  tiny-k: { backend: llama-cpp, group: cpu, keep_cache: true, cmd: ${cmd('a.gguf')} }
`);
  const status = (name: string) => h.hub.controller.status().models.find((m) => m.name === name)!;

  const chat = await h.client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 });
  t.equal(chat.object, 'chat.completion');
  t.equal(chat.model, 'tiny-a', 'the answer names the model (the hub passed --alias tiny-a), not the GGUF file');
  t.ok(chat.usage!.completion_tokens > 0 && chat.usage!.completion_tokens <= 8, 'real tokens were generated');
  t.ok(h.transitions.some((x) => x.model === 'tiny-a' && x.to === 'running'), 'ready after /health turned 200');

  const stream = await h.client.chat.completions.create({ model: 'tiny-a', stream: true, max_tokens: 6, messages: [{ role: 'user', content: 'hi' }] });
  let chunks = 0;
  let finish: string | null | undefined;
  const named = new Set<string>();
  for await (const chunk of stream) {
    chunks++;
    named.add(chunk.model);
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  t.ok(chunks >= 2, `streamed in ${chunks} chunks`);
  t.ok(finish === 'length' || finish === 'stop', 'and finished');
  t.same([...named], ['tiny-a'], 'every chunk names the model');

  const completion = await h.client.completions.create({ model: 'tiny-a', prompt: 'once upon', max_tokens: 4 });
  t.equal(completion.object, 'text_completion');

  const health = await getJson(`${h.origin}/upstream/tiny-a/health`);
  t.same(health.body, { status: 'ok' }, '/upstream reaches llama-server itself');

  // max_loaded 1 and no memory control: loading b stops a.
  const pidA = status('tiny-a').pid!;
  t.equal((await postJson(`${h.base}/chat/completions`, { model: 'tiny-b', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })).status, 200);
  t.match(status('tiny-a'), { process: 'stopped', memory: 'unloaded' });
  t.notOk(processAlive(pidA), 'evicted by stopping the process');
  t.ok(h.transitions.some((x) => x.model === 'tiny-a' && x.to === 'stopped' && x.reason.startsWith('evicted for tiny-b: ')), 'evicted for tiny-b, saying why it was chosen');

  const unload = await postJson(`${h.origin}/hub/api/models/tiny-b/unload`, {});
  t.match(unload.body, { process: 'stopped', memory: 'unloaded' }, 'operator unload stops it too');

  // keep_cache: a long prompt's KV cache survives a swap (saved before the stop, restored before the
  // next first request), so the same conversation one turn later is not evaluated again.
  type Answer = { timings: { prompt_n: number; cache_n: number } };
  const complete = async (prompt: string, model = 'tiny-k') => {
    const res = await postJson(`${h.origin}/upstream/${model}/completion`, { prompt, n_predict: 2, cache_prompt: true });
    t.equal(res.status, 200);
    return res.body as Answer;
  };
  const long = Array.from({ length: 30 }, (_, i) => `the user of the hub is a model and it is test ${i % 3 ? 'one' : 'two'} of the world`).join(' ');
  const cold = await complete(long);
  t.ok(cold.timings.prompt_n > 300, `the first time, the whole prompt is evaluated (${cold.timings.prompt_n} tokens)`);
  t.equal((await postJson(`${h.base}/chat/completions`, { model: 'tiny-b', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })).status, 200);
  t.match(status('tiny-k'), { process: 'stopped' }, 'tiny-k was swapped out for tiny-b');
  const warm = await complete(`${long} and the next turn of the user`);
  t.ok(warm.timings.cache_n >= cold.timings.prompt_n - 2, `after the swap the prompt came from the restored cache (cache_n ${warm.timings.cache_n})`);
  t.ok(warm.timings.prompt_n < 20, `only the new turn was evaluated (prompt_n ${warm.timings.prompt_n} against ${cold.timings.prompt_n})`);

  // The same model file without keep_cache evaluates it all again after a swap.
  await complete(long, 'tiny-a');
  t.equal((await postJson(`${h.base}/chat/completions`, { model: 'tiny-b', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })).status, 200);
  const again = await complete(`${long} and the next turn of the user`, 'tiny-a');
  t.ok(again.timings.prompt_n > 300, `without keep_cache the whole prompt is evaluated again (prompt_n ${again.timings.prompt_n})`);
});
