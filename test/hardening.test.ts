// What one client, or one file, can take from the hub: a huge config is refused fast and parsed in
// linear time; connections that trickle are cut, their number is capped with /health still
// answering; the login throttle counts each guess, per client and in all, in a bounded table; a
// quiet log follow ends soon after its key is removed; and X-Forwarded-* is believed only from
// auth.trusted_proxies. Real sockets and real hubs throughout.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../lib/config/errors.js';
import { loadConfig, parseConfig } from '../lib/config/load.js';
import { CONNECTION_RESERVE } from '../lib/http/connections.js';
import { clientOf, LoginThrottle, LOGIN_CLIENTS_TRACKED, LOGIN_FAILURES_ALLOWED, LOGIN_FAILURES_ALLOWED_TOTAL, LOGIN_WINDOW_MS } from '../lib/http/dashboard/login-throttle.js';
import { hub } from './cli-support.js';
import { demo, startTestHub, tempDir, waitFor } from './helpers.js';

const ADMIN = 'sk-admin-hardening-5150';
const OTHER = 'sk-admin-hardening-other-6160';

/** CPU time (user + system) `fn` took in this process, in ms. */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

t.test('a 200,000-key config is refused at once, naming the file and the limit', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'huge.yaml');
  const lines = ['models:'];
  for (let i = 0; i < 200_000; i++) lines.push(`  model-${i}: { url: "http://10.0.0.1:8000" }`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  let error: unknown;
  // Before the bound, this took the yaml package's duplicate-key check over ten minutes.
  const ms = cpuMs(() => { try { loadConfig(path); } catch (err) { error = err; } });
  t.ok(ms < 5000, `refused in ${Math.round(ms)} ms of CPU (bound: 5 s)`);
  t.ok(error instanceof ConfigError);
  t.match((error as Error).message, new RegExp(`huge\\.yaml: ${path.replace(/[.]/g, '\\.')} is \\d+(\\.\\d)?MiB; a config file may be at most 1MiB`));

  const checked = await hub(['check', '--config', path]);
  t.equal(checked.code, 2, 'hub check exits 2');
  t.match(checked.err + checked.out, /a config file may be at most 1MiB/);
});

t.test('a config just under the limit with a duplicate key at its end is parsed in linear time', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'many.yaml');
  const lines = ['models:'];
  let size = 8;
  for (let i = 0; size < 1024 * 1024 - 64; i++) {
    lines.push(`  m${i}: 1`);
    size += lines[lines.length - 1].length + 1;
  }
  lines.push('  m7: 2');
  writeFileSync(path, `${lines.join('\n')}\n`);
  let error: unknown;
  // ~90,000 keys in one map: the package's quadratic check did not finish in 5 minutes here; linear takes ~2 s.
  const ms = cpuMs(() => { try { loadConfig(path); } catch (err) { error = err; } });
  t.ok(ms < 30_000, `parsed in ${Math.round(ms)} ms of CPU (bound: 30 s)`);
  t.same((error as ConfigError).message.split('\n'), [`many.yaml:${lines.length}: not valid YAML: Map keys must be unique; "m7" appears again`]);
});

t.test('connection limits and trusted proxies in hub.yaml: defaults, normalized values, errors with their path', async (t) => {
  const config = (yaml: string) => parseConfig(`${yaml}\nmodels:\n  a: { url: "http://127.0.0.1:1" }\n`, '/etc/modelhub/hub.yaml');
  const problems = (yaml: string) => { try { config(yaml); } catch (err) { return (err as ConfigError).message.split('\n'); } return []; };
  t.same(config('auth: { trusted_proxies: [127.0.0.1, "::1", 10.0.0.0/8, "FD00::/8"] }').auth.trustedProxies, ['127.0.0.1', '::1', '10.0.0.0/8', 'fd00::/8']);
  t.match(config('limits: { max_connections: 5, header_timeout: 2s, request_timeout: 0 }').limits, { maxConnections: 5, headerTimeoutMs: 2000, requestTimeoutMs: 0 });
  t.same(problems('auth: { trusted_proxies: [proxy.lan, 10.0.0.0/33] }'), [
    'hub.yaml:1: auth.trusted_proxies[0]: expected an IP address or a range like "10.0.0.0/8" (the address your reverse proxy connects from), got "proxy.lan"',
    'hub.yaml:1: auth.trusted_proxies[1]: expected an IP address or a range like "10.0.0.0/8" (the address your reverse proxy connects from), got "10.0.0.0/33"',
  ]);
  t.match(problems('limits: { header_timeout: 0 }'), [/^hub\.yaml:1: limits\.header_timeout: must be more than 0/]);
  t.match(problems('limits: { header_timeout: 10m }'), [/^hub\.yaml:1: limits\.header_timeout: is longer than limits\.request_timeout \(5m\)/]);
  t.match(problems('limits: { max_connections: 0 }'), [/limits\.max_connections: expected a whole number from 1/]);
});

/** A raw connection: everything it received, and whether the hub closed it. */
interface Conn { socket: Socket; text(): string; closed: Promise<void>; isClosed(): boolean }
function open(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    let data = '';
    let done = false;
    const socket = connect(port, '127.0.0.1');
    socket.setEncoding('utf8').on('data', (c: string) => { data += c; });
    const closed = new Promise<void>((r) => socket.once('close', () => { done = true; r(); }));
    socket.once('error', () => {});
    socket.once('connect', () => resolve({ socket, text: () => data, closed, isClosed: () => done }));
    socket.once('error', reject);
  });
}
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('header and request timeouts cut trickling clients, not slow uploads or long streams', async (t) => {
  const h = await startTestHub(t, `limits: { header_timeout: 1s, request_timeout: 5s, body_timeout: 30s }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
  const port = Number(new URL(h.origin).port);
  // Four kinds of client, each on its own connection and checked on its own: they run side by side
  // (one after the other they took ~15 s of waiting).

  // A response may last as long as it likes: the event stream outlives both timeouts, then still delivers.
  const stream = (async () => {
    const events = await fetch(`${h.origin}/hub/api/events`);
    const reader = events.body!.getReader();
    let seen = '';
    const reading = (async () => { for (let r = await reader.read(); !r.done; r = await reader.read()) seen += Buffer.from(r.value).toString('utf8'); })();
    await pause(6500);
    t.equal((await fetch(`${h.origin}/hub/api/models/m/start`, { method: 'POST' })).status, 200);
    await waitFor('the start on the 6.5 s old stream', () => /"to":"running"/.test(seen));
    t.pass('a stream open longer than request_timeout still delivers');
    await reader.cancel();
    await reading.catch(() => {});
  })();

  // A body that never ends is cut by the request timeout (5 s), however often it sends a byte.
  const endless = (async () => {
    const endless = await open(port);
    endless.socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{');
    const drip = setInterval(() => endless.socket.writable && endless.socket.write(' '), 300);
    t.teardown(() => clearInterval(drip));
    await Promise.race([endless.closed, pause(20_000)]);
    clearInterval(drip);
    t.ok(endless.isClosed(), 'a body that trickles for ever is cut');
    t.match(endless.text(), /408 [\s\S]*"code":"request_timeout"/);
  })();

  const silent = await open(port);
  const trickle = await open(port);
  trickle.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const dripping = setInterval(() => trickle.socket.writable && trickle.socket.write('x-slow: 1\r\n'), 200);
  t.teardown(() => clearInterval(dripping));
  const started = Date.now();
  await Promise.race([Promise.all([silent.closed, trickle.closed]), pause(15_000)]);
  clearInterval(dripping);
  t.ok(silent.isClosed() && trickle.isClosed(), `both closed (after ${Date.now() - started} ms; header_timeout 1s, checked every second)`);
  t.match(trickle.text(), /^HTTP\/1\.1 408 [^\r]*\r\n[\s\S]*"code":"request_timeout"/, 'the trickler is told why');

  // A body that arrives over 2.5 s, past the header timeout: headers were complete, so only the request timeout applies.
  const upload = await open(port);
  const body = JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'x'.repeat(200) }] });
  upload.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
  const pieces = body.match(/[\s\S]{1,30}/g)!;
  for (const piece of pieces) {
    await pause(2500 / pieces.length);
    upload.socket.write(piece);
  }
  await waitFor('the answer to the slow upload', () => /"code":"model_not_found"/.test(upload.text()));
  t.match(upload.text(), /^HTTP\/1\.1 404 /, 'a slow upload is answered, not cut');
  upload.socket.destroy();

  await Promise.all([endless, stream]);
});

/** One request on a fresh connection, read until the hub closes it or the body is in. */
async function once(port: number, head: string): Promise<Conn> {
  const c = await open(port);
  c.socket.write(`${head}\r\nHost: 127.0.0.1\r\n\r\n`);
  await Promise.race([c.closed, waitFor('an answer', () => /\r\n\r\n[\s\S]*\}/.test(c.text()))]);
  return c;
}

t.test('limits.max_connections caps open connections; /health still answers past the cap', async (t) => {
  const h = await startTestHub(t, `limits: { max_connections: 3 }\nmodels:\n  m: { url: "http://127.0.0.1:9" }\n`);
  const port = Number(new URL(h.origin).port);
  // Three kept-alive connections, idle after one request each, hold the cap.
  const held: Conn[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await once(port, 'GET /health HTTP/1.1');
    t.match(c.text(), /^HTTP\/1\.1 200 /);
    t.notOk(c.isClosed(), `connection ${i + 1} stays open (keep-alive)`);
    held.push(c);
  }
  const health = await once(port, 'GET /health HTTP/1.1');
  t.match(health.text(), /^HTTP\/1\.1 200 [\s\S]*connection: close[\s\S]*"status":"ok"/i, 'past the cap /health answers, then closes');
  await waitFor('the /health connection to close', () => health.isClosed());
  const busy = await once(port, 'GET /v1/models HTTP/1.1');
  t.match(busy.text(), /^HTTP\/1\.1 503 [\s\S]*retry-after: 1[\s\S]*"message":"the hub has as many connections open as limits\.max_connections allows \(3\)[\s\S]*"code":"hub_busy"/i, 'anything else: 503 hub_busy at once');
  await waitFor('the refused connection to close', () => busy.isClosed());

  // The reserve holds at most CONNECTION_RESERVE more; past it a connection is closed unanswered.
  const reserve: Conn[] = [];
  for (let i = 0; i < CONNECTION_RESERVE; i++) reserve.push(await open(port));
  await waitFor('the hub to take the reserve', async () => { const c = await open(port); await Promise.race([c.closed, pause(2000)]); c.socket.destroy(); return c.isClosed() && c.text() === ''; });
  t.pass('past the reserve a new connection is closed without an answer');
  for (const c of reserve) c.socket.destroy();

  held[0].socket.destroy();
  await waitFor('a normal answer once a held connection is gone', async () => {
    const c = await once(port, 'GET /v1/models HTTP/1.1');
    c.socket.destroy();
    return /^HTTP\/1\.1 200 /.test(c.text());
  });
  t.pass('below the cap again, requests are served');
  for (const c of held) c.socket.destroy();
});

/** An HTTP request with exactly these headers (fetch would add or refuse some). */
function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...(body ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject).end(body);
  });
}

t.test('X-Forwarded-Proto makes the session cookie Secure only from a trusted proxy', async (t) => {
  const h = await startTestHub(t, `auth: { admin_keys: [${ADMIN}], trusted_proxies: [127.0.0.1] }\nmodels:\n  m: { url: "http://127.0.0.1:9" }\n`);
  const login = (headers: Record<string, string>) => send(`${h.origin}/hub/login`, 'POST', { accept: 'text/html', ...headers }, `key=${ADMIN}`);
  const cookie = (r: { headers: Record<string, unknown> }) => String(r.headers['set-cookie']);

  const proxied = await login({ 'x-forwarded-proto': 'https' });
  t.equal(proxied.status, 303);
  t.match(cookie(proxied), /^modelhub_session=[^;]+; path=\/hub; samesite=strict; secure; httponly$/, 'from the trusted proxy, over https: Secure');
  t.notMatch(cookie(await login({})), /secure/, 'from the proxy, without the header: plain http');
  t.notMatch(cookie(await login({ 'x-forwarded-proto': 'http' })), /secure/, 'the proxy says http');
  const own = `https://${new URL(h.origin).host}`;
  t.equal((await login({ 'x-forwarded-proto': 'https', origin: own })).status, 303, 'the browser\'s https:// Origin is the hub\'s own');

  const path = join(h.dir, 'hub.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace('trusted_proxies: [127.0.0.1]', 'trusted_proxies: ["10.0.0.0/8", "fd00::/8"]'));
  h.hub.reload();
  t.notMatch(cookie(await login({ 'x-forwarded-proto': 'https' })), /secure/, 'from an address that is not a trusted proxy the header is ignored');
  t.equal((await login({ 'x-forwarded-proto': 'https', origin: own })).status, 403, 'and an https:// Origin is then another site');
});

t.test('the login throttle counts each different wrong key, per client and in all', async (t) => {
  const h = await startTestHub(t, `auth: { admin_keys: [${ADMIN}], trusted_proxies: [127.0.0.1] }\nmodels:\n  m: { url: "http://127.0.0.1:9" }\n`);
  const login = (client: string, key: string) => send(`${h.origin}/hub/login`, 'POST', { accept: 'text/html', 'x-forwarded-for': client }, `key=${key}`);
  for (let i = 0; i < 10; i++) t.equal((await login('10.0.0.1', 'sk-stale-saved-key')).status, 401, `the same wrong key again (${i + 1}) is one guess`);
  for (let i = 1; i < LOGIN_FAILURES_ALLOWED; i++) t.equal((await login('10.0.0.1', `sk-guess-${i}`)).status, 401);
  const paused = await login('10.0.0.1', ADMIN);
  t.equal(paused.status, 429, `after ${LOGIN_FAILURES_ALLOWED} different wrong keys the client waits`);
  t.match(paused.body, /Too many wrong keys from this address/);
  t.equal((await login('10.0.0.2', ADMIN)).status, 303, 'another client (told apart by X-Forwarded-For from the trusted proxy) is not paused');

  // Many addresses, one guess each: the hub-wide count pauses the form for everyone.
  for (let i = 0; i < LOGIN_FAILURES_ALLOWED_TOTAL - LOGIN_FAILURES_ALLOWED; i++) t.equal((await login(`10.1.${i >> 8}.${i & 255}`, `sk-spray-${i}`)).status, 401);
  const everyone = await login('10.2.0.1', ADMIN);
  t.equal(everyone.status, 429, `${LOGIN_FAILURES_ALLOWED_TOTAL} wrong keys in a minute from many addresses pause everyone`);
  t.match(everyone.body, /logins are paused for everyone; try again in \d+ s/);
  t.ok(Number(everyone.headers['retry-after']) > 0);
  t.equal((await fetch(`${h.origin}/hub/api/status`, { headers: { 'x-api-key': ADMIN } })).status, 200, 'the key itself still opens the API');
});

t.test('the login throttle keeps a bounded table and never drops a live pause to make room', async (t) => {
  const throttle = new LoginThrottle();
  for (let i = 0; i < LOGIN_FAILURES_ALLOWED; i++) throttle.failed('192.0.2.1', `k${i}`, 0);
  for (let i = 0; i < LOGIN_CLIENTS_TRACKED + 500; i++) throttle.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'k', 1000);
  t.equal(throttle.tracked, LOGIN_CLIENTS_TRACKED, 'no more clients than the bound');
  t.ok(throttle.clientWaitMs('192.0.2.1', 1000) > 0, 'the paused client is still paused');
  throttle.failed('10.200.0.1', 'k', LOGIN_WINDOW_MS + 1000);
  t.equal(throttle.tracked, 1, 'once their windows are over, old entries make room');

  t.equal(clientOf('::ffff:10.0.0.1'), '10.0.0.1');
  t.equal(clientOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(clientOf('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64', 'one /64 is one client');
  t.equal(clientOf('::1'), '0:0:0:0::/64');
});

t.test('a quiet log follow opened with a key a reload removes ends within a second', async (t) => {
  const h = await startTestHub(t, `auth: { admin_keys: [${ADMIN}, ${OTHER}] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
  t.equal((await fetch(`${h.origin}/hub/api/models/m/start`, { method: 'POST', headers: { 'x-api-key': ADMIN } })).status, 200);
  const follow = await fetch(`${h.origin}/hub/api/models/m/logs?tail=0&follow=1`, { headers: { 'x-api-key': OTHER } });
  t.equal(follow.status, 200);
  const reader = follow.body!.getReader();
  let text = '';
  let ended = 0;
  const reading = (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString('utf8');
    ended = Date.now();
  })();
  const path = join(h.dir, 'hub.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace(`, ${OTHER}`, ''));
  h.hub.reload();
  const reloaded = Date.now();
  await Promise.race([reading, pause(10_000)]);
  t.ok(ended > 0, 'the follow ended');
  // The check runs every 250 ms; the bound has room for a busy machine.
  t.ok(ended - reloaded < 2000, `within ${ended - reloaded} ms of the reload (nothing was written to the log meanwhile)`);
  t.match(text, /--- modelhub: the key or dashboard session this follow was opened with is no longer valid/);
  if (!ended) await reader.cancel();
});
