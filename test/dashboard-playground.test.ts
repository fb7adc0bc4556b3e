// The model page's playground: POST /hub/api/models/{name}/chat forwards a chat to that model the way
// /v1 does (streamed from the demo backend, counted in the request log), only for a session or an
// admin key (an open dashboard does not stand in for API keys), never for another site's page; and in
// a real browser (Debian's chromium through playwright-core) the page streams the answer, then
// tokens/s and the cold start. With HUB_SCREENSHOTS=1 it saves the playground and the request log page.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { demo, getJson, PACKAGE_ROOT, startTestHub, waitFor } from './helpers.js';

const CHROMIUM = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ADMIN = 'sk-admin-playground-1414213';
const API = 'sk-api-playground-1732050';
const SHOTS = process.env.HUB_SCREENSHOTS === '1' ? join(PACKAGE_ROOT, 'docs', 'screenshots') : undefined;

const yaml = `auth: { admin_keys: [${ADMIN}], api_keys: [${API}] }
models:
  pg: { backend: demo, cmd: "${demo('--load-time 300ms')}" }
  tryme: { backend: demo, cmd: "${demo('--load-time 300ms')}" }
`;

const chatBody = JSON.stringify({ model: 'ignored-the-url-names-it', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true }, max_tokens: 8 });
const post = (url: string, headers: Record<string, string>, body = chatBody) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

t.test('POST /hub/api/models/{name}/chat', async (t) => {
  const h = await startTestHub(t, yaml);
  const url = `${h.origin}/hub/api/models/pg/chat`;
  const admin = { authorization: `Bearer ${ADMIN}` };

  const res = await post(url, admin);
  t.equal(res.status, 200, 'an admin key may try a model');
  t.match(res.headers.get('content-type'), /^text\/event-stream/, 'the answer streams');
  t.ok(Number(res.headers.get('x-hub-cold-start-ms')) > 0, 'the model had to start: the cold start is in a header');
  const text = await res.text();
  t.match(text, /data: \{.*"Hello/, 'server-sent chunks');
  const content = text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '').join('');
  t.match(content, /^Hello from pg/, 'the demo backend answered, for the model the URL names');
  t.match(text, /data: \[DONE\]/);

  const logged = await waitFor('the request in the log', async () => {
    const { body } = await getJson(`${h.origin}/hub/api/requests?model=pg`, { headers: admin });
    return (body.data as Array<Record<string, unknown>>).find((r) => r.route === 'POST /hub/api/models/pg/chat');
  });
  t.equal(logged.status, 200);
  t.equal(logged.model, 'pg', 'counted in the request log with its model');
  t.ok((logged.tokens_out as number) > 0, 'with its tokens');
  t.ok((logged.cold_start_ms as number) > 0, 'and its cold start');

  t.equal((await post(url, {})).status, 401, 'no key: refused');
  t.equal((await post(url, { authorization: `Bearer ${API}` })).status, 401, 'an API key does not open the dashboard route');
  const foreign = await post(url, { ...admin, origin: 'http://evil.example' });
  t.equal(foreign.status, 403, 'a page on another site may not post, even with the key in hand');
  t.match((await foreign.json()).error.message, /auth\.allowed_origins/);
  t.equal((await post(url, { ...admin, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' })).status, 403, 'nor send it without an Origin');
  t.equal((await post(url, { ...admin, 'content-type': 'text/plain' })).status, 415, 'text/plain is not taken as JSON');
  const unknown = await post(`${h.origin}/hub/api/models/nope/chat`, admin);
  t.equal(unknown.status, 404, 'an unknown model');
  t.match((await unknown.json()).error.message, /"nope" does not exist/);
  const bad = await post(url, admin, '{"messages": [');
  t.equal(bad.status, 400, 'malformed JSON is refused before anything starts');
  t.match((await bad.json()).error.message, /not valid JSON/);
  t.equal((await fetch(url, { headers: admin })).status, 405, 'GET says to POST');
});

t.test('a dashboard without admin keys does not stand in for API keys', async (t) => {
  const open = await startTestHub(t, `models:\n  free: { backend: demo, cmd: "${demo()}" }\n  keyed: { backend: demo, cmd: "${demo()}", api_keys: [sk-keyed-model-3141592] }\n`);
  t.equal((await post(`${open.origin}/hub/api/models/free/chat`, {})).status, 200, 'no keys anywhere: the open dashboard tries a model without keys');
  const keyed = await post(`${open.origin}/hub/api/models/keyed/chat`, {});
  t.equal(keyed.status, 401, 'but not a model with keys of its own');
  t.match((await keyed.json()).error.message, /needs an API key/);
  const apiOnly = await startTestHub(t, `auth: { api_keys: [${API}] }\nmodels:\n  free: { backend: demo, cmd: "${demo()}" }\n`);
  const refused = await post(`${apiOnly.origin}/hub/api/models/free/chat`, {});
  t.equal(refused.status, 401, 'API keys but no admin keys: refused');
  t.match((await refused.json()).error.message, /auth\.admin_keys/);
});

t.test('the playground in chromium', async (t) => {
  const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM });
  t.teardown(() => browser.close());
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  const h = await startTestHub(t, yaml);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  const v1: string[] = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/v1')) v1.push(r.url()); });

  await page.goto(`${h.origin}/hub/login?next=%2Fhub%2Fmodels%2Ftryme`);
  await page.fill('#key', ADMIN);
  await Promise.all([page.waitForURL(`${h.origin}/hub/models/tryme`), page.click('button[type="submit"]')]);
  await page.locator('#playground-form:not([hidden])').waitFor();
  await page.fill('#playground-input', 'Say hello, please.');
  await page.click('#playground-send');
  await page.locator('#playground-stats [data-stat="cold"]').waitFor({ timeout: 30_000 });
  t.match(await page.locator('#playground-answer').textContent(), /^Hello from tryme/, 'the streamed answer is shown');
  t.match(await page.locator('#playground-stats [data-stat="tps"]').textContent(), /^\d+(\.\d)? tokens\/s$/, 'tokens/s');
  t.match(await page.locator('#playground-stats [data-stat="cold"]').textContent(), /^cold start \d+ ms$/, 'the cold start of the start it caused');
  if (SHOTS) await page.locator('#playground').screenshot({ path: join(SHOTS, 'playground-light.png') });

  // Again, now that the model runs: no cold start.
  await page.click('#playground-send');
  await page.locator('#playground-stats [data-stat="cold"]', { hasText: 'no cold start' }).waitFor({ timeout: 30_000 });
  t.equal(await page.evaluate(() => document.activeElement?.id), 'playground-send', 'focus stays on the button');
  t.same(v1, [], 'the page never opened /v1');
  t.same(errors, [], 'no script errors, no content policy violations');

  await page.goto(`${h.origin}/hub/requests`);
  t.equal(await page.locator('#requests tbody tr').count(), 2, 'both tries are in the request log page');
  if (SHOTS) await page.screenshot({ path: join(SHOTS, 'requests-light.png'), fullPage: true });
});
