// Starts that cannot work, with real processes and sockets: a log folder that cannot be created, a
// port something else holds (auto-assigned: skipped; explicit: a clear error naming the holder), a
// backend that reports EADDRINUSE itself, and a model removed by a reload while it streams.
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { demo, freePort, freePortRange, getJson, postJson, processAlive, spawnHub, startTestHub, tempDir, waitFor } from './helpers.js';

const chat = (base: string, model: string, extra: object = {}) =>
  postJson(`${base}/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], ...extra });

function hold(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

t.test('a log folder that cannot be created fails the start with its cause, and frees the group', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-folder');
  writeFileSync(file, '');
  const h = await startTestHub(t, `
log: { dir: ${join(file, 'logs')} }
groups: { g: { max_loaded: 1 } }
models:
  a: { backend: demo, cmd: "${demo()}", group: g }
`);
  const res = await chat(h.base, 'a');
  t.equal(res.status, 503);
  t.equal(res.body.error.code, 'model_start_failed');
  t.match(res.body.error.message, /model a could not be started: ENOTDIR/);
  t.match(h.hub.controller.status().models[0], { process: 'failed', memory: 'unloaded' }, 'not stuck in starting');
  t.equal(h.hub.controller.status().groups.find((g) => g.name === 'g')?.loaded, 0, 'holding no capacity');
});

t.test('ports', async (t) => {
  const h = await startTestHub(t, `
models:
  auto: { backend: demo, cmd: "${demo()}" }
  fixed: { backend: demo, cmd: "${demo()}", port: ${await freePort()} }
  selfish: { backend: demo, cmd: [sh, -c, "echo 'Error: listen EADDRINUSE: address already in use 127.0.0.1:$0' >&2; exit 1", "\${PORT}"] }
`);
  const notices: string[] = [];
  h.hub.controller.on('notice', (m) => notices.push(m));
  const model = (name: string) => h.hub.controller.get(name);

  t.test('an auto-assigned port that is taken is skipped for the next free one, with a notice', async (t) => {
    const port = model('auto').config.port!;
    const squatter = await hold(port);
    t.teardown(() => squatter.close());
    const res = await chat(h.base, 'auto');
    t.equal(res.status, 200, 'the model serves anyway');
    t.not(model('auto').config.port, port, 'on another port');
    t.match(notices.join('\n'), new RegExp(`model auto: port ${port} is already in use by pid ${process.pid} \\(.*node.*\\); starting it on port ${model('auto').config.port} instead`));
    const status = await getJson(`${h.origin}/hub/api/status`);
    t.equal(status.body.models.find((m: { name: string }) => m.name === 'auto').port, model('auto').config.port, 'status shows the port it really uses');
  });

  t.test('an explicit port that is taken is a model_start_failed naming the port and its holder', async (t) => {
    const port = model('fixed').config.port!;
    const squatter = await hold(port);
    t.teardown(() => squatter.close());
    const res = await chat(h.base, 'fixed');
    t.equal(res.status, 503);
    t.equal(res.body.error.code, 'model_start_failed');
    t.match(res.body.error.message, new RegExp(`its port ${port} \\(models.fixed.port\\) is already in use by pid ${process.pid} \\(`));
    t.equal(model('fixed').config.port, port, 'an explicit port is never moved');
  });

  t.test('a backend that fails with EADDRINUSE gets that cause in its error', async (t) => {
    const res = await chat(h.base, 'selfish');
    t.equal(res.status, 503);
    t.match(res.body.error.message, new RegExp(`model selfish failed to start: its port ${model('selfish').config.port} was already in use when it tried to listen, and it exited \\(exit code 1\\)`));
  });
});

t.test('a client that leaves during a cold start does not reset the crash backoff', async (t) => {
  const h = await startTestHub(t, `
models:
  flaky: { backend: demo, cmd: "${demo('--crash-after 4 --load-time 400ms')}" }
`);
  const m = h.hub.controller.get('flaky');
  const crashed = await chat(h.base, 'flaky', { max_tokens: 50 });
  t.not(crashed.status, 200, 'the first answer is cut short by the crash');
  await waitFor('the crash to be recorded', () => m.process === 'failed');
  t.equal(m.failures, 1);
  const leaving = new AbortController();
  const gone = fetch(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'flaky', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
    signal: leaving.signal,
  }).catch((err: Error) => err.name);
  await waitFor('the restart to begin', () => m.process === 'starting');
  leaving.abort();
  t.equal(await gone, 'AbortError');
  await waitFor('the model to be up', () => m.process === 'running');
  t.same([m.queued, m.inflight, m.served], [0, 0, 1], 'the request that left the queue was never forwarded');
  t.equal(m.failures, 1, 'and it proves nothing about the backend');
  const answered = await chat(h.base, 'flaky', { max_tokens: 1 });
  t.equal(answered.status, 200);
  t.equal(m.failures, 0, 'an answer resets it');
});

t.test('hub serve tells the operator, in an [info] line, when a model moves off a taken port', async (t) => {
  const dir = tempDir(t);
  const start = await freePortRange(4);
  const squatter = await hold(start);
  t.teardown(() => squatter.close());
  const config = join(dir, 'hub.yaml');
  writeFileSync(config, `listen: { port: 0 }\nstate_dir: ${dir}\nports: { start: ${start} }\nmodels:\n  auto: { backend: demo, cmd: "${demo()}", preload: true }\n`);
  const hub = spawnHub(t, ['serve', '--config', config]);
  const line = await waitFor('the [info] line', () => /^\[info\] model auto: port \d+ .*$/m.exec(hub.output())?.[0]);
  t.match(line, new RegExp(`^\\[info\\] model auto: port ${start} is already in use by pid ${process.pid} \\(.*\\); starting it on port ${start + 1} instead$`));
  hub.child.kill('SIGTERM');
  t.equal((await hub.exited).code, 0);
});

t.test('a model removed by a reload while it streams: still listed, and stopped at shutdown', async (t) => {
  const h = await startTestHub(t, `
models:
  keep: { backend: demo, cmd: "${demo()}" }
  gone: { backend: demo, cmd: "${demo('--token-rate 20 --max-tokens 400')}" }
`, { drainTimeoutMs: 300 }); // shutdown waits this long for the stream, then stops it
  const stream = await fetch(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gone', stream: true, messages: [{ role: 'user', content: 'long' }] }),
  });
  const reader = stream.body!.getReader();
  await reader.read(); // the stream has begun
  const pid = h.hub.controller.get('gone').pid!;
  writeFileSync(h.hub.controller.config.path, `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${h.dir}\nports: { start: ${h.hub.controller.get('keep').config.port} }\nmodels:\n  keep: { backend: demo, cmd: "${demo()}" }\n`);
  const diff = h.hub.reload();
  t.same(diff.removed, ['gone']);
  const listed = (await getJson(`${h.origin}/hub/api/status`)).body.models.find((m: { name: string }) => m.name === 'gone');
  t.match(listed, { removed: true, process: 'running', pid }, 'status still lists it while it streams');
  await h.close();
  await waitFor('the removed model to be stopped', () => !processAlive(pid), 10_000);
  t.notOk(processAlive(pid), 'no process outlives the hub');
  await reader.cancel().catch(() => {});
});

t.test('a preload model whose launch settings a reload changed comes back up with the new ones', async (t) => {
  const h = await startTestHub(t, `models:
  warm: { backend: demo, cmd: "${demo('--max-tokens 2')}", preload: true }
`);
  await waitFor('the preload', () => h.hub.controller.get('warm').ready);
  const before = h.hub.controller.get('warm').pid!;
  const text = (max: number) => `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${h.dir}\nports: { start: ${h.hub.controller.get('warm').config.port} }\nmodels:\n  warm: { backend: demo, cmd: "${demo(`--max-tokens ${max}`)}", preload: true }\n`;
  writeFileSync(h.hub.controller.config.path, text(3));
  t.same(h.hub.reload().restarted, ['warm']);
  await waitFor('warm to be up again with a new process', () => h.hub.controller.get('warm').ready && h.hub.controller.get('warm').pid !== before, 15_000);
  t.notOk(processAlive(before), 'the old process is gone');
  const transitions = h.transitions.filter((x) => x.model === 'warm' && x.axis === 'process').map((x) => `${x.to} (${x.reason})`);
  t.same(transitions.slice(-4), ['stopping (reload)', 'stopped (reload)', 'starting (preload)', 'running (preload)'], 'stopped for the reload, started again as a preload');
  const reply = await postJson(`${h.base}/chat/completions`, { model: 'warm', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(reply.body.usage.completion_tokens, 3, 'it runs the new command (--max-tokens 3)');
  t.equal(h.spawns('warm'), 2, 'one start for the preload, one after the reload: no request had to start it');
});

t.test('a start that can never succeed reaches SDK users with its cause in seconds, not minutes (default retries on)', async (t) => {
  const { default: OpenAI } = await import('openai');
  const { default: Anthropic } = await import('@anthropic-ai/sdk');
  const h = await startTestHub(t, `models:\n  doomed: { backend: demo, cmd: "${demo('--fail-start 9')}" }\n`);
  // The SDKs' defaults: two retries, each after the Retry-After the hub sends.
  const openai = new OpenAI({ baseURL: `${h.origin}/v1`, apiKey: 'unused' });
  let started = Date.now();
  const oa = await openai.chat.completions.create({ model: 'doomed', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  const oaMs = Date.now() - started;
  t.type(oa, OpenAI.APIError);
  t.equal((oa as InstanceType<typeof OpenAI.APIError>).status, 503);
  t.match((oa as Error).message, /failed to start.*exit code 9/s, 'the cause, with the exit code');
  t.ok(oaMs < 5000, `the openai SDK gave up after ${oaMs} ms`);
  const anthropic = new Anthropic({ baseURL: h.origin, apiKey: 'unused' });
  started = Date.now();
  const an = await anthropic.messages.create({ model: 'doomed', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  const anMs = Date.now() - started;
  t.type(an, Anthropic.APIError);
  t.match((an as Error).message, /exit code 9/, 'the cause reaches Anthropic clients too');
  t.ok(anMs < 5000, `the Anthropic SDK gave up after ${anMs} ms`);
  const raw = await chat(`${h.origin}/v1`, 'doomed');
  t.equal(raw.status, 503);
  t.ok(Number(raw.headers.get('retry-after')) <= 1, `Retry-After ${raw.headers.get('retry-after')} s: the cause does not change by waiting`);
});
