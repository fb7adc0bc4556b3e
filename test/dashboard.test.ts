// The /hub dashboard over plain HTTP (no browser): the timeline and history it is drawn from, forms
// without JavaScript (POST → 303 → a flash shown once), reload with its diff, escaping, masked
// config, the login with a session cookie, cross-origin refusals, compression and the fragments'
// summary tag. Browser behaviour:
// dashboard-browser.test.ts.
import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import t from 'tap';
import { History } from '../lib/scheduler/history.js';
import type { Transition } from '../lib/scheduler/context.js';
import { buildTimeline, PERIOD_SHAPE } from '../lib/http/dashboard/timeline.js';
import { renderView } from '../lib/http/dashboard/render.js';
import { demo, PACKAGE_ROOT, startTestHub, waitFor } from './helpers.js';

const HOSTILE = `<script>alert("x")</script>`;
const QUOTED = `it's"quoted"&<b>bold</b>`; // aliases hold no whitespace
const TOKEN = 'hf_dashboard_secret_4242';
const ADMIN = 'sk-admin-dashboard-77c1e0';

const html = { accept: 'text/html,application/xhtml+xml' };

/** fetch without following redirects, as a browser's first hop. */
const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { redirect: 'manual', headers: { ...html, ...headers } });
const post = (url: string, headers: Record<string, string> = {}, body?: string) =>
  fetch(url, { method: 'POST', redirect: 'manual', headers: { ...html, ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...headers }, body });

/** A GET with exactly these headers: fetch() replaces Sec-Fetch-* with its own, as browsers do. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { ...html, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    }).on('error', reject).end();
  });
}

/** A GET with exactly these headers (fetch would unpack a compressed body), its body as bytes. */
function rawBytes(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: { ...html, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers as Record<string, string | undefined>, body: Buffer.concat(chunks) }));
    }).on('error', reject).end();
  });
}

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 10, 0, s)).toISOString();
const tr = (s: number, axis: Transition['axis'], from: string, to: string, reason = 'request'): Transition => ({ model: 'm', axis, from, to, reason, at: at(s) });

t.test('timeline: periods, cold starts with their duration, evictions and crashes', async (t) => {
  const transitions = [
    tr(10, 'process', 'stopped', 'starting'),
    tr(12, 'process', 'starting', 'running'),
    tr(12, 'memory', 'unloaded', 'loaded'),
    tr(20, 'memory', 'loaded', 'unloading', 'evicted for other'),
    tr(21, 'memory', 'unloading', 'unloaded', 'evicted for other'),
    tr(30, 'memory', 'unloaded', 'loading'),
    tr(31, 'memory', 'loading', 'loaded'),
    tr(40, 'process', 'running', 'failed', 'crash'),
  ];
  const now = Date.parse(at(50));
  const tl = buildTimeline(transitions, { process: 'failed', memory: 'unloaded' }, now, Date.parse(at(0)));
  t.same(tl.periods.map((p) => p.kind), ['stopped', 'busy', 'loaded', 'busy', 'unloaded', 'busy', 'loaded', 'failed']);
  t.equal(Math.round(tl.periods.reduce((n, p) => n + p.width, 0)), 100, 'the periods cover the window');
  t.same(tl.counts, { 'cold-start': 1, load: 1, eviction: 1, crash: 1, 'start-failed': 0 });
  t.match(tl.marks.find((m) => m.kind === 'cold-start')!.title, /^cold start, 2\.0 s/);
  t.equal(tl.marks.find((m) => m.kind === 'cold-start')!.x, 24, 'placed where it happened (12 s of 50)');
  t.equal(tl.coldStarts, 2, 'a start and a wake-up: two cold starts, as the usage counts them');
  t.equal(tl.coldStartAvgMs, 1500);
  t.notOk(tl.thrashing);

  const swaps = [0, 1, 2].flatMap((i) => [tr(100 + i * 10, 'memory', 'loaded', 'unloading', 'evicted for b'), tr(101 + i * 10, 'memory', 'unloading', 'unloaded', 'evicted for b'), tr(105 + i * 10, 'memory', 'unloaded', 'loaded')]);
  const busy = buildTimeline(swaps, { process: 'running', memory: 'loaded' }, Date.parse(at(140)), Date.parse(at(0)));
  t.equal(busy.counts.eviction, 3);
  t.ok(busy.thrashing, 'evicted and brought back three times in the hour: swapping');
  t.equal(busy.periods[0].kind, 'loaded', 'the state before the first remembered transition is its "from"');
});

t.test('timeline: every kind of period differs by shape (band or pattern), not by colour alone', async (t) => {
  const transitions = [
    tr(10, 'process', 'stopped', 'starting'),
    tr(12, 'process', 'starting', 'running'),
    tr(12, 'memory', 'unloaded', 'loaded'),
    tr(20, 'memory', 'loaded', 'unloading', 'idle'),
    tr(21, 'memory', 'unloading', 'unloaded', 'idle'),
    tr(40, 'process', 'running', 'failed', 'crash'),
  ];
  const tl = buildTimeline(transitions, { process: 'failed', memory: 'unloaded' }, Date.parse(at(50)), Date.parse(at(0)));
  const svg = renderView('partials/timeline', { t: tl, name: 'm' });
  // What the SVG itself says about each period: kind, band and fill pattern (attributes, not CSS colours).
  const drawn = [...svg.matchAll(/<rect class="tl-(\w+)" data-kind="(\w+)" x="[\d.]+%" y="(\d+)" width="[\d.]+%" height="(\d+)"(?: fill="url\(#([\w-]+)\)")?>/g)]
    .map(([, cls, kind, y, height, pattern]) => ({ cls, kind, shape: `${y}/${height}/${pattern ?? 'solid'}` }));
  t.same(drawn.map((d) => d.kind), ['stopped', 'busy', 'loaded', 'busy', 'unloaded', 'failed'], 'every period is drawn, with its kind');
  const byKind = new Map(drawn.map((d) => [d.kind, d.shape]));
  t.equal(byKind.size, 5);
  t.equal(new Set(byKind.values()).size, 5, 'five kinds, five different shapes');
  t.same(Object.fromEntries(byKind), { stopped: '14/2/solid', busy: '10/10/tl-stripes', loaded: '8/14/solid', unloaded: '8/14/tl-hatch', failed: '8/14/tl-cross' });
  t.match(svg, /<title>failed 10:00:40–10:00:50<\/title>/, 'periods keep their tooltips');
  const layout = renderView('layout', { title: 'x', body: '', authed: false });
  for (const { pattern } of Object.values(PERIOD_SHAPE)) if (pattern) t.match(layout, `<pattern id="${pattern}"`, `the page defines the pattern ${pattern}`);
  const legend = renderView('partials/legend', { legend: (await import('../lib/http/dashboard/timeline.js')).LEGEND });
  for (const label of ['loaded', 'running, unloaded', 'changing state', 'stopped', 'failed', 'cold start: a start', 'cold start: a wake-up (load into a running process)', 'eviction', 'crash or failed start']) t.match(legend, `> ${label}</li>`, `the legend names "${label}"`);
  t.match(legend, /data-kind="failed"[^>]*fill="url\(#tl-cross\)"/, 'with the same shapes as the timelines');
});

t.test('history: a bounded ring per model, the last change per axis, errors read from status', async (t) => {
  const source = Object.assign(new EventEmitter(), { status: () => ({ models: [{ name: 'm', last_error: 'exited with code 3' }] }) });
  const history = new History(source, { capacity: 5 });
  for (let i = 0; i < 8; i++) source.emit('transition', tr(i, i % 2 ? 'memory' : 'process', 'a', `s${i}`));
  t.same(history.transitions('m').map((x) => x.to), ['s3', 's4', 's5', 's6', 's7'], 'the oldest go first');
  t.equal(history.lastChange('m', 'process')!.to, 's6');
  t.same(history.transitions('m', Date.parse(at(6))).map((x) => x.to), ['s6', 's7']);
  source.emit('transition', tr(9, 'process', 'running', 'failed', 'crash'));
  await waitFor('the error to be recorded', () => history.errors('m').length === 1);
  t.equal(history.errors('m')[0].message, 'exited with code 3');
  history.detach();
  source.emit('transition', tr(10, 'process', 'failed', 'starting'));
  t.equal(history.transitions('m').at(-1)!.at, at(9), 'detached: no longer listening');
});

t.test('dashboard without keys', async (t) => {
  const yaml = `models:
  m:
    backend: demo
    cmd: ${demo()}
    env: { HF_TOKEN: ${TOKEN}, BACKEND_API_KEY: sk-env-secret-998877, LOG_LEVEL: info }
    aliases: [${JSON.stringify(HOSTILE)}, ${JSON.stringify(QUOTED)}]
    memory: 64MiB
  other: { backend: demo, cmd: "${demo()}" }
`;
  const h = await startTestHub(t, yaml);
  const url = (p: string) => `${h.origin}${p}`;

  t.test('the page shows every model with its state, and escapes what the config says', async (t) => {
    const res = await get(url('/hub'));
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/html/);
    const page = await res.text();
    t.match(page, `${h.origin}/v1`, 'the base URL to paste into a client');
    t.match(page, /data-model="m"/);
    t.match(page, /data-model="other"/);
    t.notMatch(page, HOSTILE, 'no raw <script> from an alias');
    t.match(page, '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    t.match(page, 'it&#39;s&quot;quoted&quot;&amp;&lt;b&gt;bold&lt;/b&gt;');
    t.match(page, /○<\/span> stopped/, 'state as shape and text');
    t.match(page, /action="\/hub\/models\/m\/start"/, 'a stopped model offers Start');
    t.notMatch(page, /action="\/hub\/models\/m\/unload"/, '...and not Unload');
  });

  t.test('no page may frame the dashboard: CSP frame-ancestors and X-Frame-Options on every /hub answer', async (t) => {
    for (const path of ['/hub', '/hub/models/m', '/hub/nothing-here', '/hub/fragments/board', '/hub/api/status', '/hub/static/style.css']) {
      const res = await get(url(path));
      t.match(res.headers.get('content-security-policy'), /(^|; )frame-ancestors 'none'(;|$)/, `${path}: frame-ancestors 'none'`);
      t.match(res.headers.get('content-security-policy'), /(^|; )default-src 'self'(;|$)/, `${path}: only the hub's own resources`);
      t.equal(res.headers.get('x-frame-options'), 'DENY', `${path}: X-Frame-Options`);
      await res.arrayBuffer();
    }
    const page = await (await get(url('/hub'))).text();
    t.notMatch(page, /\sstyle=/, 'no inline style attribute, which the policy would block');
    t.notMatch(page, /<script(?![^>]*\ssrc=)/, 'no inline script');
    const frame = { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' };
    for (const site of ['same-site', 'cross-site']) {
      const res = await rawGet(url('/hub'), { ...frame, 'sec-fetch-site': site });
      t.equal(res.status, 403, `a ${site} frame of /hub is refused`);
      t.match(res.body, /may not be shown inside a page of another site \(Sec-Fetch-Dest: iframe\); open the dashboard in a tab of its own/);
      t.equal(res.headers['x-frame-options'], 'DENY', 'the refusal is not frameable either');
    }
    t.equal((await rawGet(url('/hub/models/m'), { ...frame, 'sec-fetch-dest': 'frame' })).status, 403, 'a <frame> too');
    t.equal((await rawGet(url('/hub'), { ...frame, 'sec-fetch-dest': 'document' })).status, 200, 'a link from another site still opens the dashboard in its own tab');
    t.equal((await rawGet(url('/hub'), { ...frame, 'sec-fetch-site': 'same-origin' })).status, 200, 'the hub may frame itself (frame-ancestors still forbids it in the browser)');
  });

  t.test('a form Start: 303 to the page with a flash saying what happened, shown once', async (t) => {
    const res = await post(url('/hub/models/m/start'));
    t.equal(res.status, 303);
    const location = res.headers.get('location')!;
    t.match(location, /^\/hub\?flash=[\w-]+$/);
    t.equal(h.hub.controller.get('m').process, 'running', 'the form waited for the start');
    const page = await (await get(url(location))).text();
    t.match(page, /class="flash flash-ok"/);
    t.match(page, /m started in \d+\.\d s: process running, memory loaded\./);
    t.match(page, /action="\/hub\/models\/m\/unload"/, 'now it offers Unload');
    t.notMatch(await (await get(url(location))).text(), /class="flash/, 'the flash is shown once');
  });

  t.test('form errors are flashes in words; unknown actions a 404 page', async (t) => {
    const res = await post(url('/hub/models/nope/start'));
    t.equal(res.status, 303);
    const page = await (await get(url(res.headers.get('location')!))).text();
    t.match(page, /class="flash flash-error"/);
    t.match(page, /Could not start nope: there is no model named &quot;nope&quot;; configured models: m, other/);
    const bad = await post(url('/hub/models/m/explode'));
    t.equal(bad.status, 404);
    t.match(await bad.text(), /<h1>404 <code>not_found<\/code><\/h1>/);
    const json = await fetch(url('/hub/nothing-here'));
    t.equal(json.status, 404);
    t.match(await json.json(), { error: { code: 'not_found' } }, 'without Accept: text/html, the JSON envelope');
  });

  t.test('the model page: masked config, transitions with reasons, its log', async (t) => {
    const page = await (await get(url('/hub/models/m'))).text();
    t.notMatch(page, TOKEN, 'an env secret is masked');
    t.notMatch(page, 'sk-env-secret-998877', 'another secret-looking env key is masked');
    t.match(page, /      LOG_LEVEL: info\n/, 'other values stay readable, as YAML');
    t.match(page, /      HF_TOKEN: &quot;\*\*\*&quot;\n/);
    t.match(page, /<td>stopped → starting<\/td><td>operator<\/td>/);
    t.match(page, /data-follow="\/hub\/api\/models\/m\/logs\?tail=200&amp;follow=1"/);
    t.match(page, /--- modelhub starting m \(operator\)/, 'the log shows the start banner');
    t.equal((await get(url('/hub/models/nope'))).status, 404);
  });

  t.test('a card shows what its model served: errors, tokens, cold starts (the usage counts)', async (t) => {
    const before = (await (await fetch(url('/hub/fragments/models/other'))).json()).card;
    t.match(before, /<dd class="served" title="nothing yet">nothing yet<\/dd>/);
    const res = await fetch(url('/v1/chat/completions'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'other', messages: [{ role: 'user', content: 'a b c' }], max_tokens: 5 }) });
    const usage = (await res.json()).usage;
    const card = (await (await fetch(url('/hub/fragments/models/other'))).json()).card;
    t.match(card, new RegExp(`<dd class="served" title="[^"]+">0 errors · ${usage.prompt_tokens} in / 5 out tokens · 1 cold start \\(avg [\\d.]+ m?s\\)</dd>`)); // the unit follows the figure (ms, or s from 1 s)
    await h.hub.controller.stop('other'); // as the tests below expect it
  });

  t.test('fragments for the script: a card and the summary', async (t) => {
    const res = await fetch(url('/hub/fragments/models/m'));
    const body = await res.json();
    t.match(body.card, /^<article class="model" data-model="m" /);
    t.match(body.summary, /id="summary"/);
    t.match(await (await fetch(url('/hub/fragments/board'))).text(), /data-model="other"/);
    t.equal((await fetch(url('/hub/static/app.js'))).headers.get('content-type'), 'text/javascript; charset=utf-8');
    t.equal((await fetch(url('/hub/static/../hub.yaml'))).status, 404, 'only the listed files');
  });

  t.test('a card\'s fragment leaves the summary out while it is the one the page shows', async (t) => {
    const first = await (await fetch(url('/hub/fragments/models/m'))).json();
    t.match(first.summaryTag, /^[\w-]{16}$/, 'the summary comes with a tag');
    const same = await (await fetch(url(`/hub/fragments/models/m?summary=${first.summaryTag}`))).json();
    t.equal(same.summary, undefined, 'not sent again when the page says it shows that one');
    t.equal(same.summaryTag, first.summaryTag);
    t.match(same.card, /^<article class="model" data-model="m" /, 'the card still comes');
    t.match((await (await fetch(url('/hub/fragments/models/m?summary=stale-tag'))).json()).summary, /id="summary"/, 'an unknown tag gets the summary');
    await h.hub.controller.start('other');
    const moved = await (await fetch(url(`/hub/fragments/models/m?summary=${first.summaryTag}`))).json();
    t.not(moved.summaryTag, first.summaryTag, 'a model that started changes the tag');
    t.match(moved.summary, /id="summary"/, 'and the new summary comes');
    await h.hub.controller.stop('other'); // as the tests below expect it
  });

  t.test('pages, fragments and static files go compressed to a browser that accepts it; the API does not', async (t) => {
    const page = await rawBytes(url('/hub'), {});
    t.equal(page.headers['content-encoding'], undefined, 'not compressed when the client does not say it accepts it');
    t.match(page.headers.vary, /accept-encoding/i);
    for (const [encoding, unpack] of [['gzip', gunzipSync], ['br', brotliDecompressSync]] as const) {
      const packed = await rawBytes(url('/hub'), { 'accept-encoding': `${encoding}, identity` });
      t.equal(packed.headers['content-encoding'], encoding, `/hub as ${encoding}`);
      const unpacked = unpack(packed.body);
      t.match(unpacked.toString(), /^<!doctype html>[^]*data-model="other"[^]*<\/html>\n?$/, 'the whole page once unpacked');
      t.ok(Math.abs(unpacked.length - page.body.length) < 100, `the same page, but for the times in it (${unpacked.length} and ${page.body.length} bytes)`);
      t.ok(packed.body.length < page.body.length / 3, `${page.body.length} bytes became ${packed.body.length}`);
      t.equal(Number(packed.headers['content-length']), packed.body.length);
      t.match(packed.headers['content-type'], /^text\/html; charset=utf-8$/);
      t.match(packed.headers['content-security-policy'], /frame-ancestors 'none'/, 'the page headers stay');
    }
    const chromeLike = { 'accept-encoding': 'gzip, deflate, br, zstd' };
    const fragment = await rawBytes(url('/hub/fragments/models/m'), chromeLike);
    t.equal(fragment.headers['content-encoding'], 'gzip', 'a card\'s fragment (JSON), in the first encoding the browser names');
    t.match(JSON.parse(gunzipSync(fragment.body).toString()).card, /^<article class="model" data-model="m" /);
    t.match(fragment.headers['content-type'], /^application\/json/);
    const css = await rawBytes(url('/hub/static/style.css'), { 'accept-encoding': 'br' });
    t.equal(css.headers['content-encoding'], 'br');
    t.equal(brotliDecompressSync(css.body).toString(), readFileSync(join(PACKAGE_ROOT, 'views', 'static', 'style.css'), 'utf8'));
    t.same((await rawBytes(url('/hub/static/style.css'), { 'accept-encoding': 'br' })).body, css.body, 'the same bytes the second time');
    t.equal((await rawBytes(url('/hub/static/favicon.svg'), chromeLike)).headers['content-encoding'], undefined, 'under 1 KiB: sent as it is');
    t.equal((await rawBytes(url('/hub/api/status'), chromeLike)).headers['content-encoding'], undefined, 'the control API is sent as it is');
    t.equal((await rawBytes(url('/hub/nothing-here'), chromeLike)).status, 404, 'an error page still answers');
    t.equal((await rawBytes(url('/hub'), { 'accept-encoding': 'br;q=0, gzip;q=0' })).headers['content-encoding'], undefined, 'refused encodings are not used');
  });

  t.test('Reload config shows the diff it applied; a broken config is refused in words', async (t) => {
    const path = join(h.dir, 'hub.yaml');
    const original = readFileSync(path, 'utf8');
    writeFileSync(path, `${original}  added: { backend: demo, cmd: "${demo()}" }\n`);
    let res = await post(url('/hub/reload'));
    t.equal(res.status, 303);
    let page = await (await get(url(res.headers.get('location')!))).text();
    t.match(page, /Config reloaded: 1 model\(s\) changed\./);
    t.match(page, /<li>added: added<\/li>/);
    t.match(page, /<li>unchanged: m, other<\/li>/);
    t.match(page, /data-model="added"/);
    writeFileSync(path, `${original}  broken: { backend: nonsense }\n`);
    res = await post(url('/hub/reload'));
    page = await (await get(url(res.headers.get('location')!))).text();
    t.match(page, /The config was not reloaded: it has \d problem\(s\)\. The running config stays/);
    t.match(page, /models\.broken/);
    t.ok(h.hub.controller.resolve('added'), 'the running config stays');
  });

  t.test('a POST from another origin is refused and changes nothing', async (t) => {
    const res = await post(url('/hub/models/other/start'), { origin: 'http://evil.example' });
    t.equal(res.status, 403);
    t.match(await res.text(), /comes from the web page at &quot;http:\/\/evil\.example&quot;/, 'an HTML page that says why');
    t.equal(h.hub.controller.get('other').process, 'stopped');
    const noOrigin = await post(url('/hub/models/other/start'), { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' });
    t.equal(noOrigin.status, 403, 'a cross-site form post is refused even without an Origin header');
    t.equal(h.hub.controller.get('other').process, 'stopped');
    const same = await post(url('/hub/models/other/start'), { origin: h.origin });
    t.equal(same.status, 303, 'the hub\'s own origin may');
  });
});

t.test('dashboard with admin keys: login once, then a session cookie', async (t) => {
  const h = await startTestHub(t, `auth: { admin_keys: [${ADMIN}] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n  broken: { backend: demo, cmd: "${demo('--fail-start 7')}" }\n`);
  const url = (p: string) => `${h.origin}${p}`;

  const noKey = await get(url('/hub/models/m'));
  t.equal(noKey.status, 303, 'a browser without a session is sent to the login form');
  t.equal(noKey.headers.get('location'), '/hub/login?next=%2Fhub%2Fmodels%2Fm');
  t.equal((await fetch(url('/hub'))).status, 401, 'a script without a key gets 401, as before');
  t.match(await (await get(url('/hub/login'))).text(), /name="key" type="password"/);
  t.equal((await fetch(url('/hub/static/style.css'))).status, 200, 'the login page can load its stylesheet');

  const wrong = await post(url('/hub/login'), {}, 'key=sk-wrong-000000&next=%2Fhub');
  t.equal(wrong.status, 401);
  t.match(await wrong.text(), /That is not an admin key of this hub/);
  t.equal(wrong.headers.get('set-cookie'), null, 'no session for a wrong key');

  const ok = await post(url('/hub/login'), {}, `key=${ADMIN}&next=${encodeURIComponent('/hub/models/m')}`);
  t.equal(ok.status, 303);
  t.equal(ok.headers.get('location'), '/hub/models/m', 'back where the login began');
  const setCookie = ok.headers.get('set-cookie')!;
  t.match(setCookie, /^modelhub_session=[\w-]{43}; path=\/hub; samesite=strict; httponly$/);
  t.notMatch(setCookie, ADMIN, 'the cookie is not the key');
  const cookie = setCookie.split(';')[0];

  t.equal((await get(url('/hub'), { cookie })).status, 200, 'the session opens the dashboard');
  t.equal((await fetch(url('/hub/api/status'), { headers: { cookie } })).status, 200, '...and the control API the page calls');
  const metrics = await fetch(url('/metrics'), { headers: { cookie } });
  t.equal(metrics.status, 401, 'the session does not open /metrics, though it is in the admin realm');
  t.match((await metrics.json()).error.message, /\/metrics needs an admin key/);
  t.equal((await fetch(url('/metrics'), { headers: { 'x-api-key': ADMIN } })).status, 200, '/metrics takes the admin key itself');
  t.equal((await fetch(url('/HUB/api/status'), { headers: { cookie } })).status, 200, 'any case of /hub is still the dashboard');
  t.equal((await post(url('/hub/models/m/start'), { cookie, origin: 'http://evil.example' })).status, 403, 'a foreign Origin is refused even with the session');
  t.equal(h.hub.controller.get('m').process, 'stopped');

  const failed = await post(url('/hub/models/broken/start?from=model'), { cookie });
  t.match(failed.headers.get('location'), /^\/hub\/models\/broken\?flash=/, 'back to the model page');
  const brokenPage = await (await get(url(failed.headers.get('location')!), { cookie })).text();
  t.match(brokenPage, /Could not start broken: model broken failed to start: .*exit code 7/);
  t.match(brokenPage, /<ul class="errors">\s*<li><time>[\d:]{8}<\/time> <pre>model broken failed to start/, 'listed among its last errors');
  t.match(brokenPage, /<td>starting → failed<\/td><td>start failed<\/td>/, 'the transition with its reason');

  const escaped = await post(url('/hub/login'), {}, `key=${ADMIN}&next=${encodeURIComponent('//evil.example/')}`);
  t.equal(escaped.headers.get('location'), '/hub', 'next never leaves the dashboard');

  const out = await post(url('/hub/logout'), { cookie });
  t.equal(out.status, 303);
  t.match(out.headers.get('set-cookie'), /^modelhub_session=; path=\/hub; expires=Thu, 01 Jan 1970 00:00:00 GMT; samesite=strict; httponly$/);
  t.equal((await fetch(url('/hub/api/status'), { headers: { cookie } })).status, 401, 'the old session is gone');

  const again = (await post(url('/hub/login'), {}, `key=${ADMIN}`)).headers.get('set-cookie')!.split(';')[0];
  const path = join(h.dir, 'hub.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace(ADMIN, 'sk-admin-rotated-000111'));
  t.equal((await fetch(url('/hub/api/reload'), { method: 'POST', headers: { 'x-api-key': ADMIN } })).status, 200);
  t.equal((await fetch(url('/hub/api/status'), { headers: { cookie: again } })).status, 401, 'a reload that changes the admin keys ends the sessions');
});

t.test('an open event stream or log follow ends once its session or key is no longer valid', async (t) => {
  const h = await startTestHub(t, `auth: { admin_keys: [${ADMIN}, sk-admin-second-222333] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n  n: { backend: demo, cmd: "${demo()}" }\n`);
  const url = (p: string) => `${h.origin}${p}`;
  /** Reads a streamed answer until it ends (or the deadline passes), as text. */
  const readAll = async (res: Response, ms = 10_000) => {
    const reader = res.body!.getReader();
    let text = '';
    const deadline = setTimeout(() => void reader.cancel(), ms);
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString('utf8');
    clearTimeout(deadline);
    return text;
  };
  const cookie = (await post(url('/hub/login'), {}, `key=${ADMIN}`)).headers.get('set-cookie')!.split(';')[0];

  const bySession = await fetch(url('/hub/api/events'), { headers: { cookie } });
  t.equal(bySession.status, 200);
  const sessionText = readAll(bySession);
  t.equal((await post(url('/hub/logout'), { cookie })).status, 303);
  t.equal((await fetch(url('/hub/api/models/m/start'), { method: 'POST', headers: { 'x-api-key': ADMIN } })).status, 200);
  const seen = await sessionText;
  t.match(seen, /^event: status\n/, 'it had its snapshot');
  t.match(seen, /event: unauthorized\ndata: .*no longer valid \(logged out, or the keys changed\)/, 'and ends saying why');
  t.notMatch(seen, /event: transition/, 'no event of the start after the logout reached it');

  const byKey = await fetch(url('/hub/api/events'), { headers: { authorization: 'Bearer sk-admin-second-222333' } });
  const keyText = readAll(byKey);
  const path = join(h.dir, 'hub.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace(', sk-admin-second-222333', ''));
  t.equal((await fetch(url('/hub/api/reload'), { method: 'POST', headers: { 'x-api-key': ADMIN } })).status, 200);
  t.equal((await fetch(url('/hub/api/models/n/start'), { method: 'POST', headers: { 'x-api-key': ADMIN } })).status, 200);
  const keySeen = await keyText;
  t.match(keySeen, /event: unauthorized/, 'a stream opened with a key the reload removed ends');
  t.notMatch(keySeen, /"model":"n"[^\n]*"to":"starting"/, 'without the later start');

  const follow = await fetch(url('/hub/api/models/m/logs?tail=0&follow=1'), { headers: { authorization: 'Bearer sk-admin-second-222333' } });
  t.equal(follow.status, 401, 'and that key opens nothing new');
  const kept = await fetch(url('/hub/api/events'), { headers: { 'x-api-key': ADMIN } });
  const keptText = readAll(kept, 1500);
  await (await fetch(url('/hub/api/models/m/stop'), { method: 'POST', headers: { 'x-api-key': ADMIN } })).text();
  t.match(await keptText, /event: transition/, 'a stream whose key is still valid goes on');
});

t.test('the login form slows key guessing: after 5 wrong keys in a minute, 429 for that address', async (t) => {
  const h = await startTestHub(t, `auth: { admin_keys: [${ADMIN}] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
  for (let i = 0; i < 5; i++) t.equal((await post(`${h.origin}/hub/login`, {}, `key=sk-guess-${i}-000000`)).status, 401, `wrong key ${i + 1}: 401`);
  const paused = await post(`${h.origin}/hub/login`, {}, `key=${ADMIN}`);
  t.equal(paused.status, 429, 'the sixth try waits, even with the right key');
  t.ok(Number(paused.headers.get('retry-after')) > 0, 'Retry-After says how long');
  t.match(await paused.text(), /Too many wrong keys from this address: try again in \d+ s/);
  t.equal(paused.headers.get('set-cookie'), null, 'no session');
  t.equal((await fetch(`${h.origin}/hub/api/status`, { headers: { 'x-api-key': ADMIN } })).status, 200, 'the key itself still opens the API');

  const { LoginThrottle, LOGIN_WINDOW_MS } = await import('../lib/http/dashboard/login-throttle.js');
  const throttle = new LoginThrottle();
  for (let i = 0; i < 5; i++) throttle.failed('a', `wrong-${i}`, 1000);
  t.ok(throttle.waitMs('a', 1000) > 0, 'paused');
  t.equal(throttle.waitMs('b', 1000), 0, 'other addresses are not');
  t.equal(throttle.waitMs('a', 1000 + LOGIN_WINDOW_MS), 0, 'over after the window');
  throttle.failed('c', 'wrong', 0);
  throttle.succeeded('c');
  t.equal(throttle.waitMs('c', 0), 0);
});

t.test('the control API names the port the hub really listens on, with listen.port 0', async (t) => {
  const h = await startTestHub(t, `models:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
  const status = (await (await fetch(`${h.origin}/hub/api/status`)).json()) as { hub: { url: string } };
  t.equal(status.hub.url, `${h.origin}/v1`, 'the URL clients use (hub status prints it), not port 0');
});
