// The request log: a bounded ring of finished requests (log.requests), its API with filters and CSV,
// key names (never keys), bodies only for models with log.capture (bounded in size and count), the
// /hub/requests page without JavaScript, and `hub requests` (with -f) as a user runs it.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CAPTURE_BYTES } from '../lib/http/openai-routes.js';
import { CAPTURES_PER_MODEL } from '../lib/http/request-log.js';
import { hub, hubRunning } from './cli-support.js';
import { demo, getJson, postJson, startTestHub, waitFor } from './helpers.js';

const API_KEY = 'sk-requests-api-5f1c2e';
const ADMIN = 'sk-requests-admin-9d3b7a';
const SCOPED = 'sk-requests-scoped-77aa01';
const admin = { authorization: `Bearer ${ADMIN}` };

const yaml = `
log: { requests: 5 }
auth: { api_keys: ["${API_KEY}"], admin_keys: ["${ADMIN}"] }
models:
  plain: { backend: demo, cmd: "${demo()}", aliases: [plain-alias] }
  kept: { backend: demo, cmd: "${demo()}", log: { capture: true }, api_keys: ["${SCOPED}"] }
`;

/** Edits log.requests in the hub's file and reloads it, as an operator does. */
async function setLogSize(h: { dir: string; origin: string }, n: number): Promise<void> {
  const path = join(h.dir, 'hub.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace(/log: \{ requests: \d+ \}/, `log: { requests: ${n} }`));
  const res = await postJson(`${h.origin}/hub/api/reload`, {}, admin);
  if (res.status !== 200) throw new Error(`reload failed: ${JSON.stringify(res.body)}`);
}

const chat = (origin: string, model: string, key = API_KEY, extra: object = {}) =>
  postJson(`${origin}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, ...extra }, { authorization: `Bearer ${key}` });

t.test('the request log over the API', async (t) => {
  const h = await startTestHub(t, yaml);
  const list = async (query = '') => (await getJson(`${h.origin}/hub/api/requests${query}`, { headers: admin })).body;

  t.equal((await chat(h.origin, 'plain')).status, 200);
  t.equal((await chat(h.origin, 'kept', SCOPED)).status, 200);
  t.equal((await chat(h.origin, 'nope')).status, 404, 'an unknown model is not a model request: not logged');

  t.test('entries: newest first, with route, key name, timings and tokens', async (t) => {
    const { data, kept } = await list();
    t.equal(kept, 5, 'log.requests');
    t.same(data.map((r: any) => r.model), ['kept', 'plain']);
    const [k, p] = data;
    t.equal(p.route, 'POST /v1/chat/completions');
    t.equal(p.key, 'auth.api_keys[0]', 'the key by its place in hub.yaml');
    t.equal(k.key, 'models.kept.api_keys[0]');
    t.equal(p.status, 200);
    t.equal(p.tokens_out, 3);
    t.ok(p.tokens_in > 0);
    t.ok(p.ttft_ms >= 0 && p.ms >= p.ttft_ms, 'time to first token within the duration');
    t.ok(p.cold_start_ms > 0, 'the first request waited for the start');
    t.ok(Date.parse(p.time) <= Date.parse(k.time), 'times in ISO, in order');
    t.equal(p.captured, false, 'bodies are not kept by default');
    const text = JSON.stringify(await list()) + (await (await fetch(`${h.origin}/hub/api/requests?format=csv`, { headers: admin })).text());
    for (const key of [API_KEY, ADMIN, SCOPED]) t.notOk(text.includes(key), 'no key appears in the log');
    const detail = await getJson(`${h.origin}/hub/api/requests/${encodeURIComponent(p.id)}`, { headers: admin });
    t.equal(detail.status, 200);
    t.notOk('capture' in detail.body, 'no bodies for a model without log.capture');
  });

  t.test('the log is for admins: a dashboard session or an admin key, not an API key', async (t) => {
    const login = await fetch(`${h.origin}/hub/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `key=${ADMIN}&next=/hub` });
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    t.equal((await getJson(`${h.origin}/hub/api/requests`, { headers: { cookie } })).status, 200);
    t.equal((await getJson(`${h.origin}/hub/api/requests`, { headers: { authorization: `Bearer ${API_KEY}` } })).status, 401, 'an API key does not open the log');
    t.equal((await getJson(`${h.origin}/hub/api/requests`, { headers: { authorization: `Bearer ${SCOPED}` } })).status, 401, 'nor does a model key');
  });

  t.test('filters, and a 400 naming each bad one', async (t) => {
    t.same((await list('?model=plain')).data.map((r: any) => r.model), ['plain']);
    t.same((await list('?model=PLAIN-ALIAS')).data.map((r: any) => r.model), ['plain'], 'an alias in any case finds the model');
    t.same((await list('?status=2xx')).data.length, 2);
    t.same((await list('?status=200&limit=1')).data.map((r: any) => r.model), ['kept'], 'limit keeps the newest');
    t.same((await list('?status=5xx')).data, []);
    const future = Date.now() + 60_000;
    t.same((await list(`?since=${future}`)).data, [], 'since in ms');
    t.equal((await list(`?since=${new Date(Date.now() - 60_000).toISOString()}`)).data.length, 2, 'since in ISO');
    for (const [param, value] of [['status', '2x'], ['status', '600'], ['since', 'yesterday'], ['limit', '0'], ['limit', 'ten'], ['format', 'xml']]) {
      const res = await getJson(`${h.origin}/hub/api/requests?${param}=${value}`, { headers: admin });
      t.equal(res.status, 400, `${param}=${value} is refused`);
      t.equal(res.body.error.code, 'bad_request');
      t.equal(res.body.error.param, param, 'the envelope names the parameter');
      t.match(res.body.error.message, param);
    }
    const unknown = await getJson(`${h.origin}/hub/api/requests/no-such-id`, { headers: admin });
    t.equal(unknown.status, 404);
    t.match(unknown.body.error.message, /log\.requests/);
  });

  t.test('CSV: a header row, one line per request, by ?format=csv or Accept', async (t) => {
    for (const init of [{ url: '?format=csv', headers: admin }, { url: '', headers: { ...admin, accept: 'text/csv' } }]) {
      const res = await fetch(`${h.origin}/hub/api/requests${init.url}`, { headers: init.headers });
      t.match(res.headers.get('content-type'), /^text\/csv/);
      const lines = (await res.text()).trim().split('\n');
      t.equal(lines[0], 'id,time,model,route,key,status,queue_ms,swap_ms,cold_start_ms,ttft_ms,ms,tokens_in,tokens_out,tokens_per_s,bytes_in,bytes_out,cut');
      t.equal(lines.length, 3);
      t.match(lines[1], /,kept,POST \/v1\/chat\/completions,models\.kept\.api_keys\[0\],200,/);
    }
  });

  t.test('the ring keeps the last log.requests, O(1) each', async (t) => {
    for (let i = 0; i < 7; i++) t.equal((await chat(h.origin, 'plain', API_KEY, { user: `u${i}` })).status, 200);
    const { data } = await list();
    t.equal(data.length, 5, 'bounded by log.requests');
    t.same(data.map((r: any) => r.model), ['plain', 'plain', 'plain', 'plain', 'plain'], 'the oldest went first');
  });

  t.test('log.capture: bodies as forwarded and answered, bounded in size and count', async (t) => {
    const big = 'x'.repeat(CAPTURE_BYTES * 2);
    t.equal((await chat(h.origin, 'kept', SCOPED, { metadata: { note: big } })).status, 200);
    const [newest] = (await list('?model=kept&limit=1')).data;
    t.equal(newest.captured, true);
    const { body } = await getJson(`${h.origin}/hub/api/requests/${encodeURIComponent(newest.id)}`, { headers: admin });
    t.equal(Buffer.byteLength(body.capture.request), CAPTURE_BYTES, 'the request body is cut at the bound');
    t.match(body.capture.request, /^\{"model":"kept"/);
    t.match(JSON.parse(body.capture.response), { object: 'chat.completion', model: 'kept' }, 'the answer is kept whole when small');
    // The count: after CAPTURES_PER_MODEL more, the first capture is gone (with a log long enough to keep the request).
    await setLogSize(h, CAPTURES_PER_MODEL + 10);
    const first = newest.id;
    for (let i = 0; i < CAPTURES_PER_MODEL; i++) await chat(h.origin, 'kept', SCOPED);
    const again = await getJson(`${h.origin}/hub/api/requests/${encodeURIComponent(first)}`, { headers: admin });
    t.equal(again.status, 200, 'the first request is still in the (now longer) log');
    t.equal(again.body.captured, false, 'but its bodies gave way to the newer ones');
    t.notOk('capture' in again.body);
    const all = (await list('?model=kept')).data;
    t.equal(all.filter((r: any) => r.captured).length, CAPTURES_PER_MODEL, 'at most CAPTURES_PER_MODEL bodies per model');
  });

  t.test('log.requests: 0 keeps nothing', async (t) => {
    await setLogSize(h, 0);
    await chat(h.origin, 'plain');
    t.same((await list()).data, []);
    t.equal((await list()).kept, 0);
  });
});

t.test('the /hub/requests page without JavaScript: filters in the query string, rows escaped, CSP kept', async (t) => {
  const h = await startTestHub(t, `
models:
  "a-model": { backend: demo, cmd: "${demo()}" }
  other: { backend: demo, cmd: "${demo()}" }
`);
  await postJson(`${h.origin}/v1/chat/completions`, { model: 'a-model', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  await postJson(`${h.origin}/v1/chat/completions`, { model: 'other', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }, { 'x-request-id': '<b>id</b>' });
  const page = async (query: string) => {
    const res = await fetch(`${h.origin}/hub/requests${query}`, { headers: { accept: 'text/html' } });
    return { res, html: await res.text() };
  };
  const { res, html } = await page('');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-security-policy'), /script-src 'self'/, 'the content policy is kept');
  t.equal((html.match(/<tr><td><time/g) ?? []).length, 2, 'both requests');
  t.notOk(html.includes('<b>id</b>'), 'a client-given request id is escaped');
  t.match(html, /&lt;b&gt;id/);
  const filtered = await page('?model=other&status=2xx');
  t.equal((filtered.html.match(/<tr><td><time/g) ?? []).length, 1);
  t.match(filtered.html, /<option value="other" selected>/, 'the form shows the filter');
  t.match(filtered.html, /href="\/hub\/api\/requests\?model=other&amp;status=2xx&amp;format=csv"/, 'CSV of the same filter');
  const none = await page('?status=404');
  t.match(none.html, /No requests match these filters/);
  const bad = await page('?since=soon');
  t.equal(bad.res.status, 400, 'a bad filter is an error page');
  t.match(bad.html, /since must be an ISO 8601 time/);
  const script = await fetch(`${h.origin}/hub/static/requests.js`);
  t.equal(script.status, 200, 'the live script is served from the hub itself');
});

t.test('hub requests: the log as lines, CSV, a usage error for a bad filter, and -f', async (t) => {
  const h = await startTestHub(t, `
auth: { admin_keys: ["${ADMIN}"] }
models:
  m1: { backend: demo, cmd: "${demo()}" }
  m2: { backend: demo, cmd: "${demo()}" }
`);
  const base = ['--url', h.origin, '--api-key', ADMIN];
  const empty = await hub(['requests', ...base]);
  t.equal(empty.code, 0);
  t.match(empty.out, /no requests in the log yet/);
  await postJson(`${h.origin}/v1/chat/completions`, { model: 'm1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  await postJson(`${h.origin}/v1/chat/completions`, { model: 'm2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

  const lines = await hub(['requests', ...base]);
  t.equal(lines.code, 0, lines.err);
  const rows = lines.out.trim().split('\n');
  t.equal(rows.length, 2);
  t.match(rows[0], /^\d\d:\d\d:\d\d\.\d{3} 200 m1 POST \/v1\/chat\/completions .*tokens \d+\/2/, 'oldest first, as a log');
  t.match(rows[1], / m2 /);

  const csv = await hub(['requests', ...base, '--csv', '--model', 'm2']);
  t.equal(csv.code, 0);
  const records = csv.out.trim().split('\n');
  t.match(records[0], /^id,time,model,route,key,status,/);
  t.equal(records.length, 2);
  t.match(records[1], /,m2,POST \/v1\/chat\/completions,,200,/);

  const bad = await hub(['requests', ...base, '--status', 'teapot']);
  t.equal(bad.code, 2, 'a bad filter is a usage error');
  t.match(bad.err, /--status must be a status code like 404 or a class like 5xx; got "teapot"/);

  const follow = hubRunning(t, ['requests', ...base, '--model', 'm1', '-f', '--json']);
  await waitFor('the existing m1 request', () => follow.output().includes('"model":"m1"'), 15_000);
  // Subscribed once the first line is out? The stream opens right after; a request every poll proves it.
  await waitFor('a new m1 request followed live', async () => {
    await postJson(`${h.origin}/v1/chat/completions`, { model: 'm1', messages: [{ role: 'user', content: 'again' }], max_tokens: 4 }, { 'x-request-id': `live-${Date.now()}` });
    return /"id":"live-\d+"/.test(follow.output());
  }, 15_000);
  await postJson(`${h.origin}/v1/chat/completions`, { model: 'm2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }, { 'x-request-id': 'not-followed' });
  await postJson(`${h.origin}/v1/chat/completions`, { model: 'm1', messages: [{ role: 'user', content: 'last' }], max_tokens: 2 }, { 'x-request-id': 'followed-last' });
  await waitFor('the last m1 request', () => follow.output().includes('followed-last'), 15_000);
  t.notOk(follow.output().includes('not-followed'), 'another model is filtered out while following');
  const last = JSON.parse(follow.output().trim().split('\n').at(-1)!);
  t.match(last, { id: 'followed-last', model: 'm1', route: 'POST /v1/chat/completions', status: 200, tokens_out: 2 });
  follow.child.kill('SIGINT');
  t.equal(await follow.exited, 0, 'Ctrl-C ends the follow cleanly');
});
