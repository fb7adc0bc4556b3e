// The dashboard in a real browser: Debian's chromium driven by playwright-core (never a browser
// download), against a hub with real demo backends. One browser for the whole file. With
// HUB_SCREENSHOTS=1 it also saves the screenshots shown in the docs (docs/screenshots/).
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { demo, getJson, PACKAGE_ROOT, postJson, startTestHub, waitFor } from './helpers.js';

const CHROMIUM = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
// Aliases hold no whitespace: markup that runs script without any.
const HOSTILE = [`<svg/onload="window.__xss=1">`, `<script>window.__xss=2</script>`, `"quoted'&more`];
const ADMIN = 'sk-admin-browser-3141592';
const SHOTS = process.env.HUB_SCREENSHOTS === '1' ? join(PACKAGE_ROOT, 'docs', 'screenshots') : undefined;

const yaml = `
groups:
  solo: { max_loaded: 1, on_full: evict }
models:
  swap-a: { backend: demo, cmd: "${demo()}", group: solo, memory: 64MiB, aliases: [gpt-4o-mini] }
  swap-b: { backend: demo, cmd: "${demo()}", group: solo, memory: 64MiB }
  broken: { backend: demo, cmd: "${demo('--fail-start 3')}" }
  slow: { backend: demo, cmd: "${demo('--never-ready')}", start_timeout: 10m }
  form:
    backend: demo
    cmd: "${demo()}"
    aliases: ${JSON.stringify(HOSTILE)}
  toggle: { backend: demo, cmd: "${demo('--memory 16MiB')}", memory: 32MiB }
  api: { backend: demo, cmd: "${demo()}" }
  cold: { backend: demo, cmd: "${demo()}" }
`;

const chat = (origin: string, model: string) => postJson(`${origin}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

t.test('the dashboard in chromium', async (t) => {
  const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM });
  t.teardown(() => browser.close());
  const h = await startTestHub(t, yaml);
  const hub = h.hub.controller;
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });

  const open = async (options: Parameters<Browser['newContext']>[0] = {}): Promise<{ context: BrowserContext; page: Page; errors: string[] }> => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, ...options });
    t.teardown(() => context.close());
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); void d.dismiss(); });
    // The page's content policy must not block any of its own script, styles or requests.
    page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(`csp: ${m.text()}`); });
    return { context, page, errors };
  };
  const card = (page: Page, name: string) => page.locator(`article.model[data-model="${name}"]`);

  // Several states at once: swapping (evictions), failed, starting, stopped, loaded.
  for (const model of ['swap-a', 'swap-b', 'swap-a', 'swap-b', 'swap-a']) t.equal((await chat(h.origin, model)).status, 200, `a request for ${model}`);
  t.equal((await postJson(`${h.origin}/hub/api/models/broken/start`, {})).status, 503, 'broken fails to start');
  t.equal((await postJson(`${h.origin}/hub/api/models/slow/start?wait=false`, {})).status, 202);
  t.equal((await postJson(`${h.origin}/hub/api/models/toggle/load`, {})).status, 200);

  t.test('the page renders models in several states, and live', async (t) => {
    const { page, errors } = await open();
    await page.goto(`${h.origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor();
    t.equal(await card(page, 'broken').getAttribute('data-process'), 'failed');
    t.match(await card(page, 'broken').locator('.last-error').textContent(), /code 3/, 'the start failure in words');
    t.match(await card(page, 'broken').locator('.facts').textContent(), /last exit\s*3/);
    t.equal(await card(page, 'slow').getAttribute('data-process'), 'starting');
    const elapsed = card(page, 'slow').locator('.elapsed');
    const first = await elapsed.textContent();
    await waitFor('the elapsed time to tick', async () => (await elapsed.textContent()) !== first, 5000);
    t.match(await elapsed.textContent(), /^\d+ s$/, 'a transitional state shows its elapsed time');
    t.equal(await card(page, 'toggle').getAttribute('data-memory'), 'loaded');
    t.equal(await card(page, 'cold').getAttribute('data-process'), 'stopped');
    t.ok(await card(page, 'swap-b').locator('.mk-eviction').count() + (await card(page, 'swap-a').locator('.mk-eviction').count()) >= 3, 'evictions are marks');
    t.match(await card(page, 'swap-a').locator('.thrashing').textContent(), /swapping/, 'thrashing is called out');
    t.match(await page.locator('.group').first().textContent(), /group solo.*1 loaded of 1/s);
    t.equal(await page.locator('button[data-copy]').isVisible(), true, 'the copy button appears with JavaScript');
    t.same(errors, []);
    if (SHOTS) {
      await page.screenshot({ path: join(SHOTS, 'dashboard-light.png'), fullPage: true });
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.screenshot({ path: join(SHOTS, 'dashboard-dark.png'), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: join(SHOTS, 'dashboard-phone-dark.png') });
    }
  });

  t.test('escaping: hostile aliases show as text and run nothing', async (t) => {
    const { page, errors } = await open();
    await page.goto(`${h.origin}/hub`);
    const aliases = await card(page, 'form').locator('.aliases code').allTextContents();
    t.same(aliases, HOSTILE, 'each alias shown exactly as written');
    t.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined, 'no alias ran as code');
    t.same(errors, []);
  });

  t.test('JavaScript off: a Start form posts, redirects and shows a flash', async (t) => {
    const { page } = await open({ javaScriptEnabled: false });
    await page.goto(`${h.origin}/hub`);
    t.equal(await page.locator('#live .live-text').textContent(), 'reload the page to refresh');
    await Promise.all([page.waitForURL(/\/hub\?flash=/), card(page, 'form').locator('button[data-action="start"]').click()]);
    t.match(await page.locator('.flash-ok').textContent(), /form started in \d+\.\d s: process running, memory loaded\./);
    t.equal(await card(page, 'form').getAttribute('data-process'), 'running');
    t.equal(hub.get('form').process, 'running');
  });

  t.test('JavaScript on: Unload and Load update the row in place, with toasts', async (t) => {
    const { page, errors } = await open();
    await page.goto(`${h.origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor();
    await page.evaluate(() => { (window as unknown as { __same: boolean }).__same = true; });
    // Measured once the card is on the page (a live redraw may be replacing it at that moment), and in
    // view: a card off screen is not laid out yet (it has a stand-in height until it is).
    await card(page, 'toggle').scrollIntoViewIfNeeded();
    const box = await waitFor('the card to be drawn', () => card(page, 'toggle').boundingBox(), 10_000);
    // Hold the API call until the button has been seen disabled.
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    await page.route('**/hub/api/models/toggle/unload', async (route) => { await held; await route.continue(); });
    await card(page, 'toggle').locator('button[data-action="unload"]').click();
    await card(page, 'toggle').locator('button[data-action="unload"][aria-busy="true"]:disabled').waitFor();
    t.pass('the button is disabled while its action is pending');
    release();
    await card(page, 'toggle').locator('xpath=self::*[@data-memory="unloaded"]').waitFor();
    await page.unrouteAll();
    t.match(await page.locator('.toast').last().textContent(), /toggle unloaded in \d+\.\d s: process running, memory unloaded\./);
    await card(page, 'toggle').locator('button[data-action="load"]').click();
    await card(page, 'toggle').locator('xpath=self::*[@data-memory="loaded"]').waitFor();
    t.equal(hub.get('toggle').memory, 'loaded');
    t.equal(await page.evaluate(() => (window as unknown as { __same?: boolean }).__same), true, 'no navigation happened');
    const after = await waitFor('the card to be drawn', () => card(page, 'toggle').boundingBox(), 10_000);
    // A jump would be a line or more; a redrawn card's text (its figures change) may round to a
    // fraction of a pixel differently (CI saw 360.375 then 360.92).
    t.ok(Math.abs(after.height - box.height) < 2, `the row kept its height (${box.height} then ${after.height})`);
    await page.locator('form[data-kind="reload"] button').click();
    await page.locator('.toast', { hasText: 'Config reloaded: nothing changed.' }).waitFor();
    t.pass('Reload config from the page says what it changed');
    t.same(errors, []);
  });

  t.test('a change made through the API and a cold start show up live, the timeline gains a mark', async (t) => {
    const { page, errors } = await open();
    await page.goto(`${h.origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor();
    await page.evaluate(() => { (window as unknown as { __same: boolean }).__same = true; });
    t.equal((await postJson(`${h.origin}/hub/api/models/api/start`, {})).status, 200);
    await card(page, 'api').locator('xpath=self::*[@data-process="running"]').waitFor();
    t.equal(await card(page, 'cold').locator('.mk-cold-start').count(), 0);
    t.equal((await chat(h.origin, 'cold')).status, 200);
    await card(page, 'cold').locator('.mk-cold-start').waitFor();
    t.match(await card(page, 'cold').locator('.mk-cold-start title').textContent(), /^cold start, \d+\.\d s \(request\)/);
    t.match(await card(page, 'cold').locator('.c-cold').textContent(), /1 cold start \(avg/);
    await waitFor('the served request to be counted', async () => /requests\s*1/.test((await card(page, 'cold').locator('.facts').textContent()) ?? ''));
    t.equal(await page.evaluate(() => (window as unknown as { __same?: boolean }).__same), true, 'no reload');
    t.same(errors, []);
  });

  t.test('the connection indicator: a dropped stream reconnects', async (t) => {
    const { page } = await open();
    await page.goto(`${h.origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor();
    h.hub.server.closeAllConnections(); // the events stream drops, as when a proxy in between restarts
    await page.locator('#live:not([data-state="live"])').waitFor();
    t.match(await page.locator('#live .live-text').textContent(), /reconnecting|retrying/);
    await page.locator('#live[data-state="live"]').waitFor({ timeout: 20_000 });
    t.pass('back to live once the stream is up again');
  });

  t.test('the request log page: filters from the URL, new requests added live at the top', async (t) => {
    const { page, errors } = await open();
    t.equal((await chat(h.origin, 'api')).status, 200);
    await page.goto(`${h.origin}/hub/requests?model=api`);
    await page.locator('#live[data-state="live"]').waitFor();
    const rows = page.locator('#requests tbody tr');
    const before = await rows.count();
    t.ok(before >= 1, 'the request already made is listed');
    t.equal((await chat(h.origin, 'swap-a')).status, 200, 'a request for another model');
    await postJson(`${h.origin}/v1/chat/completions`, { model: 'api', messages: [{ role: 'user', content: 'live' }], max_tokens: 2 }, { 'x-request-id': 'browser-live-1' });
    await page.locator('#requests tbody tr:first-child a', { hasText: 'browser-' }).waitFor({ timeout: 5000 });
    t.equal(await rows.count(), before + 1, 'only the filtered model\'s request was added');
    t.match(await rows.first().textContent(), /api.*POST \/v1\/chat\/completions.*200/);
    t.same(errors, [], 'no script errors and nothing blocked by the content policy');
  });

  t.test('the model page follows the log and lists transitions live', async (t) => {
    const { page, errors } = await open({ colorScheme: 'light' });
    await hub.stop('api');
    await page.goto(`${h.origin}/hub/models/api`);
    await page.locator('#log-state', { hasText: 'following live' }).waitFor();
    const before = await page.locator('#transitions tbody tr').count();
    t.equal((await postJson(`${h.origin}/hub/api/models/api/start`, {})).status, 200);
    await waitFor('a second start banner in the log', async () => ((await page.locator('#log').textContent())!.match(/--- modelhub starting api/g) ?? []).length === 2);
    await waitFor('the new transitions', async () => (await page.locator('#transitions tbody tr').count()) >= before + 2);
    t.match(await page.locator('#transitions tbody tr').first().textContent(), /→/);
    await card(page, 'api').locator('xpath=self::*[@data-process="running"]').waitFor();
    t.same(errors, []);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'model-page-light.png'), fullPage: true });
  });

  t.test('a form on another site cannot drive the hub (403)', async (t) => {
    const evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<form id="f" method="post" action="${h.origin}/hub/models/form/stop"></form><script>document.getElementById('f').submit()</script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise((resolve) => evil.close(resolve)));
    const { page } = await open();
    const refused = page.waitForResponse((r) => r.url().startsWith(`${h.origin}/hub/models/form/stop`));
    await page.goto(`http://127.0.0.1:${(evil.address() as { port: number }).port}/`);
    t.equal((await refused).status(), 403);
    t.match(await page.locator('body').textContent(), /may not change anything on this hub/);
    t.equal(hub.get('form').process, 'running', 'the model was not stopped');
  });

  /** A page on another port of 127.0.0.1 (same-site with the hub, so SameSite=Strict cookies go along). */
  const otherSite = async (html: string) => {
    const server = createServer((_req, res) => { res.setHeader('content-type', 'text/html'); res.end(html); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise((resolve) => server.close(resolve)));
    return `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  };

  t.test('another site cannot show the dashboard in a frame (clickjacking)', async (t) => {
    const evil = await otherSite(`<p>win a prize</p><iframe id="f" src="${h.origin}/hub" style="opacity:.01"></iframe>`);
    const { page } = await open();
    const answered = page.waitForResponse((r) => r.url() === `${h.origin}/hub`);
    await page.goto(evil);
    t.equal((await answered).status(), 403, 'the framed request is refused');
    const frame = await waitFor('the frame to settle', () => page.frames().find((f) => f !== page.mainFrame() && f.url() !== 'about:blank'));
    t.equal(await frame.locator('article.model').count().catch(() => 0), 0, 'no dashboard inside the frame');
    t.equal(await frame.locator('button[data-action]').count().catch(() => 0), 0, 'no button to click through');
  });

  t.test('a "lagging" event: the page reconnects for a fresh snapshot and says so meanwhile', async (t) => {
    const { page, errors } = await open();
    const snapshot = JSON.stringify((await getJson(`${h.origin}/hub/api/status`)).body);
    let calls = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    // The first stream: a snapshot, then the hub's farewell to a subscriber that fell behind. Its
    // `retry:` is ten minutes, so only the page itself can reconnect within this test.
    await page.route('**/hub/api/events', async (route) => {
      calls++;
      if (calls > 1) { await held; return route.continue(); }
      await route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
        body: `retry: 600000\n\nevent: status\ndata: ${snapshot}\n\nevent: lagging\ndata: {"message":"this subscriber fell behind"}\n\n`,
      });
    });
    await page.goto(`${h.origin}/hub`);
    await page.locator('#live[data-state="connecting"]', { hasText: 'fell behind; catching up…' }).waitFor();
    await waitFor('a second events request', () => calls >= 2);
    release();
    await page.locator('#live[data-state="live"]').waitFor();
    t.equal(calls, 2, 'one reconnection');
    await hub.stop('api');
    await card(page, 'api').locator('xpath=self::*[@data-process="stopped"]').waitFor();
    t.pass('live updates go on after the reconnection');
    t.same(errors, []);
  });

  t.test('a card that gains a failed start, a why and an error does not move the cards below', async (t) => {
    const l = await startTestHub(t, `models:\n  late: { backend: demo, cmd: "${demo('--fail-start 3')}" }\n  below: { backend: demo, cmd: "${demo()}" }\n`);
    const { page, errors } = await open();
    await page.goto(`${l.origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor();
    const before = await waitFor('the card below to be on the page', () => card(page, 'below').boundingBox(), 5000);
    t.equal((await postJson(`${l.origin}/hub/api/models/late/start`, {})).status, 503);
    await card(page, 'late').locator('xpath=self::*[@data-process="failed"]').waitFor();
    await card(page, 'late').locator('.last-error', { hasText: 'code 3' }).waitFor();
    t.match(await card(page, 'late').locator('.why').textContent(), /start failed/);
    t.match(await card(page, 'late').locator('.last-error').getAttribute('title'), /code 3/, 'the full error in its tooltip');
    // A live update swaps cards in; boundingBox is null in the instant one is being replaced.
    const after = await waitFor('the card below to be on the page', () => card(page, 'below').boundingBox(), 5000);
    t.equal(after.y, before.y, 'the card below kept its position');
    t.same(errors, []);
  });

  t.test('with admin keys: a login form, a wrong key refused, an HttpOnly session, logout', async (t) => {
    const k = await startTestHub(t, `auth: { admin_keys: [${ADMIN}] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
    const { context, page, errors } = await open({ colorScheme: 'dark', viewport: { width: 900, height: 600 } });
    await page.goto(`${k.origin}/hub`);
    t.match(page.url(), /\/hub\/login\?next=%2Fhub$/);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'login-dark.png') });
    await page.fill('#key', 'sk-not-the-key-000');
    await page.click('button[type="submit"]');
    t.match(await page.locator('.flash-error').textContent(), /not an admin key/);
    await page.fill('#key', ADMIN);
    await Promise.all([page.waitForURL(`${k.origin}/hub`), page.click('button[type="submit"]')]);
    await page.locator('#live[data-state="live"]').waitFor();
    const [cookie] = await context.cookies();
    t.match(cookie, { name: 'modelhub_session', httpOnly: true, sameSite: 'Strict', path: '/hub' });
    t.not(cookie.value, ADMIN);
    await card(page, 'm').locator('button[data-action="start"]').click();
    await card(page, 'm').locator('xpath=self::*[@data-process="running"]').waitFor();
    await Promise.all([page.waitForURL(/\/hub\/login\?out=1$/), page.click('.logout button')]);
    t.match(await page.locator('.login').textContent(), /You are logged out/);
    t.equal((await page.goto(`${k.origin}/hub/api/status`))!.status(), 401, 'the session ended');
    t.same(errors.filter((e) => !/401/.test(e)), []);
  });

  t.test('a session that ends while the page is open: a message with a login link, no endless retries', async (t) => {
    const k = await startTestHub(t, `auth: { admin_keys: [${ADMIN}] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
    const { context, page } = await open();
    await page.goto(`${k.origin}/hub/login?next=%2Fhub`);
    await page.fill('#key', ADMIN);
    await Promise.all([page.waitForURL(`${k.origin}/hub`), page.click('button[type="submit"]')]);
    await page.locator('#live[data-state="live"]').waitFor();
    let streams = 0;
    page.on('request', (r) => { if (r.url().endsWith('/hub/api/events')) streams++; });
    // Logged out in another tab, then the stream drops (as when the hub restarts): it comes back 401.
    const [cookie] = await context.cookies();
    t.equal((await fetch(`${k.origin}/hub/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: `${cookie.name}=${cookie.value}` } })).status, 303);
    k.hub.server.closeAllConnections();
    await page.locator('#live[data-state="ended"]', { hasText: 'logged out' }).waitFor({ timeout: 20_000 });
    const note = page.locator('.session-ended');
    t.match(await note.textContent(), /Your dashboard session has ended .* this page no longer follows the hub/);
    t.equal(await note.locator('a').getAttribute('href'), '/hub/login?next=%2Fhub');
    const seen = streams;
    // Absence of a retry can only be shown by waiting: longer than the page's first retry pause (1 s).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    t.equal(streams, seen, 'no further attempts to open the stream');
    t.equal(await page.locator('#live').getAttribute('data-state'), 'ended');
    await Promise.all([page.waitForURL(/\/hub\/login\?next=%2Fhub$/), note.locator('a').click()]);
    await page.fill('#key', ADMIN);
    await Promise.all([page.waitForURL(`${k.origin}/hub`), page.click('button[type="submit"]')]);
    await page.locator('#live[data-state="live"]').waitFor();
    t.pass('logging in again brings the live page back');
  });
});
