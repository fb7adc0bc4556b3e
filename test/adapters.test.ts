// Each backend adapter against a small fake server that follows that backend's real HTTP API
// (see docs/backends.md): readiness, and memory unload/load/state where the backend has them.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { adapterFor, type Endpoint } from '../lib/backends/index.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function fake(t: { teardown(fn: () => unknown): void }, handler: Handler): Promise<{ endpoint: Endpoint; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}${body ? ` ${body}` : ''}`);
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  return { endpoint: { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }, seen };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const model = { id: 'llama3.2' };

t.test('vllm: sleep mode via /sleep, /wake_up, /is_sleeping', async (t) => {
  let sleeping = false;
  const { endpoint, seen } = await fake(t, (req, _body, res) => {
    const route = `${req.method} ${req.url}`;
    if (route === 'GET /health') return json(res, 200, {});
    if (route === 'POST /sleep?level=1') { sleeping = true; return json(res, 200, {}); }
    if (route === 'POST /wake_up') { sleeping = false; return json(res, 200, {}); }
    if (route === 'GET /is_sleeping') return json(res, 200, { is_sleeping: sleeping });
    json(res, 404, {});
  });
  const a = adapterFor('vllm');
  t.equal(await a.isReady(endpoint, model), true);
  await a.memory!.unload(endpoint, model);
  t.equal(await a.memory!.isLoaded(endpoint, model), false);
  await a.memory!.load(endpoint, model);
  t.equal(await a.memory!.isLoaded(endpoint, model), true);
  t.same(seen, ['GET /health', 'POST /sleep?level=1', 'GET /is_sleeping', 'POST /wake_up', 'GET /is_sleeping']);
});

t.test('vllm: memory_release level2 sleeps at level 2, through the hub; the config refuses it where there are no levels', async (t) => {
  const { parseConfig } = await import('../lib/config/load.js');
  const { Controller } = await import('../lib/scheduler/controller.js');
  const { realDriver } = await import('../lib/runtime/driver.js');
  const { endpoint, seen } = await fake(t, (req, _body, res) => {
    const route = `${req.method} ${req.url}`;
    if (route === 'GET /health') return json(res, 200, {});
    if (route.startsWith('POST /sleep')) return json(res, 200, {});
    if (route === 'GET /is_sleeping') return json(res, 200, { is_sleeping: true });
    json(res, 404, {});
  });
  const port = new URL(endpoint.base).port;
  // The fake stands in for a running vLLM: a remote url has no memory control, so the model is managed
  // with a command that never runs (the fake already listens on its port).
  const config = parseConfig(`state_dir: /tmp/modelhub-release\nmodels:\n  deep: { backend: vllm, memory_release: level2, url: "${endpoint.base}" }\n  light: { backend: vllm, port: ${port}, cmd: "true" }\n`, '/tmp/hub.yaml');
  t.equal(config.models.deep.memoryRelease, 'level2');
  t.equal(config.models.light.memoryRelease, undefined, 'level 1 unless said');
  const c = new Controller(config, { driver: realDriver, hubCommand: ['hub'] });
  t.teardown(() => c.shutdown());
  await adapterFor('vllm').memory!.unload(endpoint, c.get('deep').backendModel);
  await adapterFor('vllm').memory!.unload(endpoint, c.get('light').backendModel);
  t.same(seen.filter((r) => r.startsWith('POST /sleep')), ['POST /sleep?level=2', 'POST /sleep?level=1'], 'each model sleeps at its own level');
  t.throws(() => parseConfig(`models:\n  l: { backend: llama-cpp, memory_release: level2, cmd: "llama-server --port \${PORT}" }\n`, '/tmp/hub.yaml'), /models\.l\.memory_release: only vllm \(and demo\) models have sleep levels/);
  t.throws(() => parseConfig(`models:\n  v: { backend: vllm, memory_release: level3, cmd: "vllm serve m --port \${PORT}" }\n`, '/tmp/hub.yaml'), /models\.v\.memory_release: expected one of level1, level2/);
});

t.test('vllm: a failed call rejects with what the server said', async (t) => {
  const { endpoint } = await fake(t, (_req, _body, res) => json(res, 404, { detail: 'Not Found' }));
  await t.rejects(adapterFor('vllm').memory!.unload(endpoint, model), /POST \/sleep\?level=1 answered 404: \{"detail":"Not Found"\}/);
});

t.test('sglang: release/resume memory occupation; success:false is a failure', async (t) => {
  let fail = false;
  const { endpoint, seen } = await fake(t, (req, _body, res) => {
    if (req.url === '/health') return json(res, 200, {});
    if (fail) return json(res, 200, { success: false, message: 'memory saver not enabled' });
    if (req.url === '/release_memory_occupation') return json(res, 200, { success: true, sleeping: true });
    if (req.url === '/resume_memory_occupation') { res.writeHead(200); return res.end(); } // older versions: empty body
    json(res, 404, {});
  });
  const a = adapterFor('sglang');
  t.equal(await a.isReady(endpoint, model), true);
  await a.memory!.unload(endpoint, model);
  await a.memory!.load(endpoint, model);
  t.equal(await a.memory!.isLoaded(endpoint, model), undefined, 'SGLang cannot report its memory state');
  t.same(seen, ['GET /health', 'POST /release_memory_occupation {}', 'POST /resume_memory_occupation {}']);
  fail = true;
  await t.rejects(a.memory!.unload(endpoint, model), /reported failure: .*memory saver not enabled/);
});

t.test('ollama: keep_alive 0 unloads, an empty generate loads, /api/ps tells', async (t) => {
  const loaded = new Set<string>();
  const { endpoint, seen } = await fake(t, (req, body, res) => {
    if (req.url === '/api/version') return json(res, 200, { version: '0.12.0' });
    if (req.url === '/api/ps') return json(res, 200, { models: [...loaded].map((name) => ({ name, model: name, size: 1 })) });
    if (req.url === '/api/generate') {
      const r = JSON.parse(body) as { model: string; keep_alive?: number };
      if (r.keep_alive === 0) loaded.delete(`${r.model}:latest`);
      else loaded.add(`${r.model}:latest`);
      return json(res, 200, { model: r.model, response: '', done: true, done_reason: r.keep_alive === 0 ? 'unload' : 'load' });
    }
    json(res, 404, {});
  });
  const a = adapterFor('ollama');
  t.equal(await a.isReady(endpoint, model), true, 'ready by /api/version');
  t.equal(await a.memory!.isLoaded(endpoint, model), false);
  await a.memory!.load(endpoint, model);
  t.equal(await a.memory!.isLoaded(endpoint, model), true, '"llama3.2:latest" counts as llama3.2');
  await a.memory!.unload(endpoint, model);
  t.equal(await a.memory!.isLoaded(endpoint, model), false);
  t.same(seen.filter((s) => s.startsWith('POST')), ['POST /api/generate {"model":"llama3.2"}', 'POST /api/generate {"model":"llama3.2","keep_alive":0}']);
});

t.test('llama-cpp: 503 "Loading model" is not ready, 200 is; no memory control', async (t) => {
  let loading = true;
  const { endpoint } = await fake(t, (req, _body, res) => {
    if (req.url !== '/health') return json(res, 404, {});
    if (loading) return json(res, 503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
    json(res, 200, { status: 'ok' });
  });
  const a = adapterFor('llama-cpp');
  t.equal(await a.isReady(endpoint, model), false);
  loading = false;
  t.equal(await a.isReady(endpoint, model), true);
  t.equal(a.memory, undefined, 'unload means stop');
});

t.test('mlx and openai: /health, or /v1/models where /health does not exist; a configured path wins', async (t) => {
  const { endpoint, seen } = await fake(t, (req, _body, res) => {
    if (req.url === '/v1/models') return json(res, 200, { data: [] });
    if (req.url === '/ping') return json(res, 200, {});
    json(res, 404, {});
  });
  for (const kind of ['mlx', 'openai'] as const) {
    t.equal(await adapterFor(kind).isReady(endpoint, model), true, `${kind}: falls back to /v1/models`);
    t.equal(adapterFor(kind).memory, undefined);
  }
  t.equal(await adapterFor('openai').isReady(endpoint, { ...model, healthPath: '/ping' }), true);
  t.equal(await adapterFor('openai').isReady(endpoint, { ...model, healthPath: '/missing' }), false, 'only the configured path is probed');
  t.ok(seen.includes('GET /health'));
});

t.test('nothing listening: not ready, and memory calls reject', async (t) => {
  const { endpoint } = await fake(t, () => {});
  const gone = { base: endpoint.base.replace(/:\d+$/, ':9') };
  t.equal(await adapterFor('vllm').isReady(gone, model), false);
  await t.rejects(adapterFor('vllm').memory!.load(gone, model));
});
