// Who may use the hub: API and admin keys on every guarded route (raw HTTP and the real `openai`
// SDK), keys kept out of every log line, and the browser defences (Origin, CORS, Host, content type)
// on real sockets, plus the warning `hub serve` prints for an exposed bind without keys.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import OpenAI, { AuthenticationError } from 'openai';
import { ConfigError } from '../lib/config/errors.js';
import { loadConfig, parseConfig } from '../lib/config/load.js';
import { exposureWarning } from '../lib/cli/serve.js';
import { startHub, type RunningHub } from '../lib/hub.js';
import { createLogger } from '../lib/log.js';
import { demo, freePort, freePortRange, spawnHub, tempDir, waitFor } from './helpers.js';

type Teardown = Parameters<typeof tempDir>[0];
/** A subtest's `t` (the last overload of t.test takes only the callback). */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const API = 'sk-api-7f3c9e1d2b4a6680';
const ADMIN = 'sk-admin-5e8d1c0f9a2b77';
const WRONG = 'sk-wrong-91c2d3e4f5a6b8';
const APP = 'http://app.example:3000';
const EVIL = 'http://evil.example';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

/** A raw HTTP request: unlike fetch, node:http lets a test set Host and Origin to anything. */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => {
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode!, headers: res.headers, text, body });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const chatBody = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

/** A hub started in this process, its log captured line by line. */
async function hubWith(t: Teardown, yaml: string, host = '127.0.0.1'): Promise<{ hub: RunningHub; origin: string; path: string; lines: string[] }> {
  const dir = tempDir(t);
  const path = join(dir, 'hub.yaml');
  writeFileSync(path, `listen: { host: ${host}, port: 0 }\nstate_dir: ${dir}\nports: { start: ${await freePortRange(4)} }\nlog: { level: trace }\n${yaml}`);
  const lines: string[] = [];
  const out = new Writable({ write(chunk, _enc, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done(); } });
  const hub = await startHub(loadConfig(path), { log: createLogger('trace', out) });
  t.teardown(() => hub.close());
  const port = (hub.server.address() as { port: number }).port;
  return { hub, origin: `http://127.0.0.1:${port}`, path, lines };
}

const models = `models:\n  fast: { backend: demo, cmd: "${demo('--max-tokens 2')}" }\n`;

t.test('keys', async (t) => {
  const h = await hubWith(t, `auth: { api_keys: [${API}], admin_keys: [${ADMIN}], allowed_origins: ["${APP}"] }\n${models}`);
  const url = (path: string) => `${h.origin}${path}`;

  const api = [
    { what: 'GET /v1/models', method: 'GET', path: '/v1/models', ok: 200 },
    { what: 'POST /v1/chat/completions', method: 'POST', path: '/v1/chat/completions', body: chatBody, ok: 200 },
    { what: 'GET /upstream/fast/...', method: 'GET', path: '/upstream/fast/demo/echo', ok: 200 },
    { what: 'POST /upstream/fast/...', method: 'POST', path: '/upstream/fast/demo/echo', body: 'raw', ok: 200 },
    { what: 'a path no route serves', method: 'GET', path: '/v2/nothing', ok: 404 },
  ];
  const admin = [
    { what: 'GET /hub/api/status', method: 'GET', path: '/hub/api/status', ok: 200 },
    { what: 'GET model logs', method: 'GET', path: '/hub/api/models/fast/logs?tail=5', ok: 200 },
    { what: 'POST stop', method: 'POST', path: '/hub/api/models/fast/stop', ok: 200 },
    { what: 'POST reload', method: 'POST', path: '/hub/api/reload', ok: 200 },
    { what: 'GET /hub (the dashboard)', method: 'GET', path: '/hub', ok: 200 },
    { what: 'GET /metrics', method: 'GET', path: '/metrics', ok: 200 },
    { what: 'GET /hub/api/usage', method: 'GET', path: '/hub/api/usage', ok: 200 },
  ];
  const call = (r: (typeof api)[number], headers: Record<string, string> = {}) =>
    send(url(r.path), { method: r.method, body: r.body, headers: { ...(r.body ? { 'content-type': 'application/json' } : {}), ...headers } });

  const refused = (t: Tap, res: Reply, what: string) => {
    t.equal(res.status, 401, `${what}: 401`);
    t.equal(res.headers['www-authenticate'], 'Bearer', `${what}: WWW-Authenticate`);
    t.match(res.body, { error: { code: 'invalid_api_key', type: 'authentication_error', param: null, message: /Authorization: Bearer|x-api-key/ } }, `${what}: envelope`);
  };

  t.test('every guarded route: no key and a wrong key get 401; the right key via Bearer or x-api-key passes', async (t) => {
    for (const r of [...api, ...admin]) {
      const key = admin.includes(r) ? ADMIN : API;
      refused(t, await call(r), `${r.what}, no key`);
      refused(t, await call(r, { authorization: `Bearer ${WRONG}` }), `${r.what}, wrong Bearer`);
      refused(t, await call(r, { 'x-api-key': WRONG }), `${r.what}, wrong x-api-key`);
      refused(t, await call(r, { authorization: key }), `${r.what}, key without "Bearer "`);
      t.equal((await call(r, { authorization: `Bearer ${key}` })).status, r.ok, `${r.what}: Bearer key`);
      t.equal((await call(r, { authorization: `bearer  ${key}` })).status, r.ok, `${r.what}: the scheme is case-insensitive`);
      t.equal((await call(r, { 'x-api-key': key })).status, r.ok, `${r.what}: x-api-key`);
    }
  });

  t.test('admin keys also work on /v1 and /upstream; api keys do not open /hub', async (t) => {
    for (const r of api) t.equal((await call(r, { authorization: `Bearer ${ADMIN}` })).status, r.ok, `${r.what} with the admin key`);
    for (const r of admin) {
      const res = await call(r, { authorization: `Bearer ${API}` });
      refused(t, res, `${r.what} with an api key`);
      t.match(res.body.error.message, /admin key/, 'the message says an admin key is needed');
    }
  });

  t.test('GET /health needs no key', async (t) => {
    const res = await send(url('/health'));
    t.equal(res.status, 200);
    t.same(res.body, { status: 'ok' });
  });

  t.test('the openai SDK: the right key works, a wrong one raises AuthenticationError', async (t) => {
    const good = new OpenAI({ baseURL: url('/v1'), apiKey: API, maxRetries: 0 });
    const chat = await good.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] });
    t.match(chat.choices[0].message.content, /^Hello from/);
    const ids: string[] = [];
    for await (const m of good.models.list()) ids.push(m.id);
    t.same(ids, ['fast']);

    const bad = new OpenAI({ baseURL: url('/v1'), apiKey: WRONG, maxRetries: 0 });
    const err = await bad.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    t.type(err, AuthenticationError);
    t.equal((err as AuthenticationError).status, 401);
    t.equal((err as AuthenticationError).code, 'invalid_api_key');
  });

  t.test('shutdown needs the admin key: without it the hub keeps running', async (t) => {
    for (const headers of [{}, { authorization: `Bearer ${WRONG}` }, { authorization: `Bearer ${API}` }, { 'x-api-key': API }] as Record<string, string>[]) {
      refused(t, await send(url('/hub/api/shutdown'), { method: 'POST', headers }), `shutdown with ${JSON.stringify(headers)}`);
    }
    // The router matches string routes case-insensitively: /HUB/API/... is the control API too.
    refused(t, await send(url('/HUB/API/shutdown'), { method: 'POST', headers: { authorization: `Bearer ${API}` } }), 'shutdown in capitals with an api key');
    t.equal((await send(url('/health'))).body.status, 'ok', 'still serving');
    t.equal(h.hub.controller.shuttingDown, false);
  });

  t.test('an allowed origin gets CORS answers: preflight, proxied responses, and errors it can read', async (t) => {
    const pre = await send(url('/v1/chat/completions'), {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'Content-Type, X-Stainless-OS, Authorization' },
    });
    t.equal(pre.status, 204, 'preflight answered by the hub, no key needed');
    t.equal(pre.headers['access-control-allow-origin'], APP, 'the origin itself, not *');
    t.match(pre.headers['access-control-allow-methods'], /\bPOST\b/);
    const allowed = String(pre.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/);
    for (const h of ['content-type', 'x-stainless-os', 'authorization', 'x-api-key']) t.ok(allowed.includes(h), `allows ${h}`);
    t.ok(Number(pre.headers['access-control-max-age']) > 0, 'Max-Age');
    t.match(pre.headers.vary, /Origin/);
    t.notOk(pre.headers['access-control-allow-private-network'], 'private network access only when asked');
    const pna = await send(url('/v1/models'), { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-private-network': 'true' } });
    t.equal(pna.headers['access-control-allow-private-network'], 'true', 'Chrome\'s private network preflight');

    const res = await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: { origin: APP, 'content-type': 'application/json', authorization: `Bearer ${API}` } });
    t.equal(res.status, 200);
    t.equal(res.headers['x-hub-model'], 'fast', 'a proxied answer');
    t.equal(res.headers['access-control-allow-origin'], APP);
    t.match(res.headers.vary, /Origin/);
    const exposed = String(res.headers['access-control-expose-headers']).toLowerCase();
    for (const h of ['x-request-id', 'x-hub-model', 'x-hub-cold-start-ms', 'x-hub-queue-ms']) t.ok(exposed.includes(h), `exposes ${h}`);

    const stream = await send(url('/v1/chat/completions'), {
      method: 'POST',
      body: JSON.stringify({ model: 'fast', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      headers: { origin: APP, 'content-type': 'application/json', 'x-api-key': API },
    });
    t.match(stream.text, /data: \[DONE\]/, 'a stream');
    t.equal(stream.headers['access-control-allow-origin'], APP, 'streams carry CORS headers too');

    const upstream = await send(url('/upstream/fast/demo/echo'), { headers: { origin: APP, 'x-api-key': API } });
    t.equal(upstream.headers['access-control-allow-origin'], APP, '/upstream answers too');

    const noKey = await send(url('/v1/models'), { headers: { origin: APP } });
    t.equal(noKey.status, 401);
    t.equal(noKey.headers['access-control-allow-origin'], APP, 'the page can read why it was refused');

    const evil = await send(url('/v1/chat/completions'), { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'POST' } });
    t.equal(evil.status, 403, 'a foreign preflight is refused');
    t.equal(evil.body.error.code, 'forbidden');
    t.notOk(evil.headers['access-control-allow-origin']);
    const read = await send(url('/v1/models'), { headers: { origin: EVIL, 'x-api-key': API } });
    t.equal(read.status, 200, 'a GET from a foreign origin is served (it changes nothing)...');
    t.notOk(read.headers['access-control-allow-origin'], '...but without CORS headers its page cannot read it');
  });

  t.test('a cross-site text/plain POST is refused before the key is even looked at', async (t) => {
    const res = await send(url('/hub/api/shutdown'), { method: 'POST', body: '{}', headers: { origin: EVIL, 'content-type': 'text/plain' } });
    t.equal(res.status, 403);
    t.equal(res.body.error.code, 'forbidden');
  });

  t.test('no key, right or wrong, appears in any log line', async (t) => {
    t.ok(h.lines.length > 50, `${h.lines.length} log lines captured`);
    t.ok(h.lines.some((l) => l.includes('"msg":"request"')), 'the access log is among them');
    for (const key of [API, ADMIN, WRONG]) {
      const leaks = h.lines.filter((l) => l.includes(key) || l.includes(key.slice(3, 15)));
      t.same(leaks, [], `${key.slice(0, 8)}… is in no line`);
    }
  });

  t.test('a reload that changes the keys applies to the next request', async (t) => {
    writeFileSync(h.path, readFileSync(h.path, 'utf8').replace(`api_keys: [${API}]`, 'api_keys: [sk-rotated]'));
    const reload = await send(url('/hub/api/reload'), { method: 'POST', headers: { 'x-api-key': ADMIN } });
    t.equal(reload.status, 200);
    refused(t, await send(url('/v1/models'), { headers: { 'x-api-key': API } }), 'the old key');
    t.equal((await send(url('/v1/models'), { headers: { 'x-api-key': 'sk-rotated' } })).status, 200, 'the new key');
  });

  t.test('the admin key shuts the hub down', async (t) => {
    const res = await send(url('/hub/api/shutdown'), { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    t.equal(res.status, 202);
    await h.hub.closed;
  });
});

t.test('browsers: Origin, content type and Host on an open hub bound to loopback', async (t) => {
  const h = await hubWith(t, `auth: { allowed_hosts: [hub.lan] }\n${models}`);
  const port = new URL(h.origin).port;
  const url = (path: string) => `${h.origin}${path}`;
  const forbidden = (t: Tap, res: Reply, what: string) => {
    t.equal(res.status, 403, `${what}: 403`);
    t.match(res.body, { error: { code: 'forbidden', type: 'permission_error', param: null, message: /allowed_/ } }, `${what}: envelope`);
  };
  const spawned = () => h.hub.controller.status().models.find((m) => m.name === 'fast')!.process !== 'stopped';

  t.test('cross-site text/plain POSTs (what any web page can send) are refused, and change nothing', async (t) => {
    for (const path of ['/hub/api/shutdown', '/v1/chat/completions', '/upstream/fast/demo/echo', '/hub/api/models/fast/start', '/hub/api/reload']) {
      forbidden(t, await send(url(path), { method: 'POST', body: chatBody, headers: { origin: EVIL, 'content-type': 'text/plain' } }), `${path} from ${EVIL}`);
    }
    forbidden(t, await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: { origin: 'null', 'content-type': 'application/x-www-form-urlencoded' } }), 'Origin: null (sandboxed page)');
    forbidden(t, await send(url('/upstream/fast/x'), { method: 'DELETE', headers: { origin: `http://127.0.0.1:${Number(port) + 1}` } }), 'another port is another origin');
    t.equal((await send(url('/health'))).body.status, 'ok', 'the hub keeps running');
    t.equal(h.hub.controller.shuttingDown, false);
    t.notOk(spawned(), 'no model was started');
  });

  t.test('a cross-site GET without Origin (an <img> tag, a navigation) cannot start a model', async (t) => {
    for (const [site, mode] of [['cross-site', 'no-cors'], ['same-site', 'no-cors'], ['cross-site', 'navigate']]) {
      const res = await send(url('/upstream/fast/health'), { headers: { 'sec-fetch-site': site, 'sec-fetch-mode': mode } });
      forbidden(t, res, `GET /upstream from ${site} (${mode})`);
    }
    forbidden(t, await send(url('/v1/models'), { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors', origin: EVIL } }), 'a cross-site fetch of /v1/models');
    t.notOk(spawned(), 'no model was started');
    t.equal((await send(url('/health'), { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' } })).status, 200, '/health stays open');
    t.not((await send(url('/hub'), { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } })).status, 403, 'a link to the dashboard is followed');
    t.equal((await send(url('/v1/models'), { headers: { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate' } })).status, 200, 'typed into the address bar');
  });

  t.test('/v1 POSTs with Content-Type text/plain get 415 even without Origin; curl -d (urlencoded) is served', async (t) => {
    const plain = await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
    t.equal(plain.status, 415);
    t.match(plain.body, { error: { code: 'unsupported_media_type', type: 'invalid_request_error', message: /application\/json/ } });
    t.notOk(spawned(), 'no model was started');
    const curl = await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    t.equal(curl.status, 200, 'curl -d without -H content-type');
    const none = await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody });
    t.equal(none.status, 200, 'no content type at all');
    const raw = await send(url('/upstream/fast/demo/echo'), { method: 'POST', body: 'raw', headers: { 'content-type': 'text/plain' } });
    t.equal(raw.status, 200, '/upstream is raw passthrough: any content type');
  });

  t.test('same-origin and Origin-less requests are served', async (t) => {
    const json = { 'content-type': 'application/json' };
    t.equal((await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: json })).status, 200, 'no Origin (curl, SDKs)');
    t.equal((await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: { ...json, origin: h.origin } })).status, 200, 'the hub\'s own origin');
    const viaLocalhost = { ...json, host: `localhost:${port}`, origin: `http://LOCALHOST:${port}` };
    t.equal((await send(url('/v1/chat/completions'), { method: 'POST', body: chatBody, headers: viaLocalhost })).status, 200, 'own origin under another loopback name');
    t.equal((await send(url('/hub/api/models/fast/stop'), { method: 'POST', headers: { origin: h.origin } })).status, 200, 'a same-origin control action');
    const sdk = new OpenAI({ baseURL: url('/v1'), apiKey: 'unused', maxRetries: 0 });
    t.match((await sdk.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content, /^Hello/, 'the SDK needs no key on an open hub');
  });

  t.test('DNS rebinding: a Host that is not loopback, the listen host or allowed_hosts gets 403', async (t) => {
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`, `localhost.evil.example:${port}`]) {
      forbidden(t, await send(url('/v1/models'), { headers: { host } }), `Host ${host}`);
    }
    forbidden(t, await send(url('/hub/api/shutdown'), { method: 'POST', headers: { host: `evil.example:${port}`, origin: `http://evil.example:${port}` } }), 'a rebound page posting to its "own" origin');
    t.equal(h.hub.controller.shuttingDown, false, 'the hub keeps running');
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `127.0.0.2:${port}`, `[::1]:${port}`, `LocalHost:${port}`, `app.localhost:${port}`, `hub.lan:${port}`, `HUB.LAN`]) {
      t.equal((await send(url('/v1/models'), { headers: { host } })).status, 200, `Host ${host}`);
    }
  });
});

t.test('bound to 0.0.0.0 the Host is not checked (the hub answers to any name), Origin still is', async (t) => {
  const h = await hubWith(t, models, '0.0.0.0');
  const port = new URL(h.origin).port;
  t.equal((await send(`${h.origin}/v1/models`, { headers: { host: `my-box.lan:${port}` } })).status, 200);
  const res = await send(`${h.origin}/hub/api/shutdown`, { method: 'POST', headers: { origin: EVIL, 'content-type': 'text/plain' } });
  t.equal(res.status, 403);
  t.equal(h.hub.controller.shuttingDown, false);
});

t.test('config: allowed_origins must be scheme://host[:port], allowed_hosts bare host names', async (t) => {
  const problems = (auth: string): string[] => {
    try {
      parseConfig(`auth: ${auth}\nmodels: {}\n`, '/etc/modelhub/hub.yaml');
    } catch (err) {
      if (err instanceof ConfigError) return err.message.split('\n');
      throw err;
    }
    return [];
  };
  t.same(problems('{ allowed_origins: ["https://App.Example.com", "http://localhost:3000", "http://[::1]:5173"], allowed_hosts: [hub.lan, "192.168.1.5"] }'), []);
  const bad = problems('{ allowed_origins: ["https://app.example.com/", "app.example.com", "ftp://x.example", "http://x.example/path", "*"], allowed_hosts: ["hub.lan:8080", "http://hub.lan", "a b"] }');
  t.equal(bad.length, 8, bad.join('\n'));
  t.match(bad[0], /^hub\.yaml:1: auth\.allowed_origins\[0\]: expected an origin like "https:\/\/app\.example\.com" or "http:\/\/localhost:3000" \(scheme:\/\/host\[:port\], no path\), got "https:\/\/app\.example\.com\/"/);
  t.match(bad[5], /auth\.allowed_hosts\[0\]: .*got "hub\.lan:8080"/);
  t.match(problems('{ allowed_origin: [] }')[0], /auth\.allowed_origin: unknown key; did you mean "allowed_origins"\?/);
  const config = parseConfig('auth: { api_keys: [a], admin_keys: [""], allowed_origins: ["https://App.Example.com:443"], allowed_hosts: [HUB.lan] }\nmodels: {}\n', '/x/hub.yaml');
  t.same(config.auth, { apiKeys: ['a'], adminKeys: ['a'], apiKeyNames: ['auth.api_keys[0]'], adminKeyNames: ['auth.api_keys[0]'], scopedKeys: [], allowedOrigins: ['https://app.example.com'], allowedHosts: ['hub.lan'], trustedProxies: [] }, 'normalized; an empty admin list falls back to the api keys');
});

t.test('hub serve warns when bound beyond loopback without keys, and not with keys', async (t) => {
  const serve = async (auth: string) => {
    const dir = tempDir(t);
    const port = await freePort();
    writeFileSync(join(dir, 'hub.yaml'), `listen: { host: 0.0.0.0, port: ${port} }\nstate_dir: ${dir}\n${auth}\n${models}`);
    const hub = spawnHub(t, ['serve', '--config', join(dir, 'hub.yaml')]);
    await waitFor('the URL line', () => /\[ok\] modelhub .* is serving/.test(hub.output()), 15_000);
    hub.child.kill('SIGTERM');
    await hub.exited;
    return hub.output();
  };
  const [open, keyed, adminOnly] = await Promise.all([serve(''), serve(`auth: { api_keys: [${API}] }`), serve(`auth: { admin_keys: [${ADMIN}] }`)]);
  t.match(open, /\[warn\] .*0\.0\.0\.0.*without keys/, 'warned');
  t.match(open, /\[warn\] .*auth\.api_keys/, 'says how to fix it');
  t.notMatch(keyed, /\[warn\]/, 'no warning with keys');
  t.notMatch(keyed, new RegExp(API), 'the key is not printed');
  t.match(adminOnly, /\[warn\] .*\/v1 and \/upstream/, 'admin keys alone leave the model API open: warned');

  const config = parseConfig(models, '/x/hub.yaml');
  const at = (host: string) => exposureWarning({ ...config, listen: { host, port: 8080 } });
  for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', 'LOCALHOST', '::1', '0:0:0:0:0:0:0:1']) t.equal(at(host), undefined, `no warning on ${host}`);
  for (const host of ['0.0.0.0', '::', '192.168.1.5', 'my-box.lan']) t.match(at(host), /NOT PROTECTED/, `a warning on ${host}`);
});
