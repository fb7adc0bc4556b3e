// The board at scale and the review's defects, in a real browser (Debian's chromium through
// playwright-core, one browser for the file): one keystroke narrows sixty models, the table view,
// focus kept through redraws, one message for a cancelled start, the group bar and the counts from one
// snapshot during swaps, other tabs logged out within 2 s, the served line's title, headings, the
// focusable config box, timeline details by keyboard and touch, Stop all through its confirm page, the
// hub's log page followed live, and how often steady traffic makes the page fetch a card. With
// HUB_SCREENSHOTS=1 it saves the table view and a card's sparkline.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { hubLogFile } from '../lib/config/names.js';
import { demo, PACKAGE_ROOT, postJson, startTestHub, waitFor } from './helpers.js';

const CHROMIUM = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ADMIN = 'sk-admin-cockpit-2718281';
const SHOTS = process.env.HUB_SCREENSHOTS === '1' ? join(PACKAGE_ROOT, 'docs', 'screenshots') : undefined;

// Sixty models as a busy box has them; only one name holds a "z".
const FAMILIES = ['llama-3.1-8b', 'qwen2.5-7b', 'mistral-7b', 'gemma-2-9b', 'phi-3-mini', 'deepseek-coder-6.7b', 'codellama-13b', 'falcon-7b', 'yi-6b', 'olmo-7b'];
const SIXTY = FAMILIES.flatMap((f) => ['q4', 'q5', 'q6', 'q8', 'f16', 'instruct'].map((v) => `${f}-${v}`));
SIXTY[SIXTY.length - 1] = 'zephyr-7b-beta';

const big = `
groups:
  small-box: { max_loaded: 1, on_full: evict }
models:
  focus: { backend: demo, cmd: "${demo('--memory 16MiB')}", memory: 32MiB }
  slowstart: { backend: demo, cmd: "${demo('--load-time 20s')}", start_timeout: 1m }
${SIXTY.map((name, i) => `  ${name}: { backend: demo, cmd: "${demo()}", memory: ${4 + (i % 5) * 2}GiB${i % 4 === 0 ? ', group: small-box' : ''} }`).join('\n')}
`;

const chat = (origin: string, model: string, headers: Record<string, string> = {}) => postJson(`${origin}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }, headers);

t.test('the cockpit in chromium', async (t) => {
  const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM });
  t.teardown(() => browser.close());
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  const open = async (options: Parameters<Browser['newContext']>[0] = {}, context?: BrowserContext): Promise<{ context: BrowserContext; page: Page; errors: string[] }> => {
    const ctx = context ?? (await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light', ...options }));
    if (!context) t.teardown(() => ctx.close());
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); void d.dismiss(); });
    page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(`csp: ${m.text()}`); });
    return { context: ctx, page, errors };
  };
  const card = (page: Page, name: string) => page.locator(`#models [data-model="${name}"]`);
  const visible = (page: Page) => page.locator('#models article.model:not([hidden]), #models tr.model-row:not([hidden])');

  const h = await startTestHub(t, big);
  for (let i = 0; i < 3; i++) t.equal((await chat(h.origin, 'focus')).status, 200, 'requests for the focus model (its stats)');
  t.equal((await chat(h.origin, 'zephyr-7b-beta')).status, 200);

  t.test('sixty models: ready fast, one keystroke narrows them, filters and the table view', async (t) => {
    const { page, errors } = await open();
    let boards = 0;
    page.on('request', (r) => { if (r.url().includes('/hub/fragments/')) boards++; });
    await page.goto(`${h.origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor();
    t.equal(boards, 0, 'nothing is fetched again right after the page loads');
    const ready = await page.evaluate(() => { const n = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming; return n.domContentLoadedEventEnd - n.startTime; });
    t.comment(`62 models: DOMContentLoaded after ${ready.toFixed(0)} ms (its budget, 500 ms, is measured by npm run bench)`);
    // Here only a bound against a page that hangs (CI runs beside other work: 1.7 s was seen with
    // benchmarks running alongside).
    t.ok(ready < 10_000, 'the page is ready (no hang)');
    t.equal(await visible(page).count(), 62);
    await page.keyboard.press('/');
    t.equal(await page.evaluate(() => document.activeElement?.id), 'board-q', '"/" jumps to the search box');
    await page.keyboard.press('z');
    t.equal(await visible(page).count(), 1, 'one keystroke narrows sixty models to one');
    t.equal(await visible(page).first().getAttribute('data-model'), 'zephyr-7b-beta');
    t.match(page.url(), /\/hub\?q=z$/, 'the search is in the URL');
    t.equal(await page.locator('#shown-count').textContent(), '1 of 62');
    await page.keyboard.press('Escape');
    t.equal(await visible(page).count(), 62, 'Escape clears it');
    await page.selectOption('#board-state', 'grouped');
    t.equal(await visible(page).count(), 15, 'in a group: every fourth of the sixty');
    await page.selectOption('#board-state', 'running');
    t.same(await visible(page).evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.model)), ['focus', 'zephyr-7b-beta']);
    t.match(page.url(), /state=running/);

    // A model that starts while filtered out appears, live, without fetching the board again.
    const fetched: string[] = [];
    page.on('request', (r) => { if (r.url().includes('/hub/fragments/')) fetched.push(new URL(r.url()).pathname); });
    t.equal((await chat(h.origin, 'qwen2.5-7b-q4')).status, 200);
    await card(page, 'qwen2.5-7b-q4').locator('xpath=self::*[not(@hidden)]').waitFor();
    t.notOk(fetched.includes('/hub/fragments/board'), 'one card\'s fragment, not the board');
    t.ok(fetched.every((p) => p === '/hub/fragments/models/qwen2.5-7b-q4'), `only that model's card: ${[...new Set(fetched)].join(', ')}`);

    // The table view, from the view switch (it keeps the filter), and a sort by header.
    await Promise.all([page.waitForURL(/view=table/), page.click('[data-view-link="table"]')]);
    t.match(page.url(), /state=running/);
    await page.selectOption('#board-state', 'all');
    t.equal(await page.locator('#models tr.model-row').count(), 62);
    await page.fill('#board-q', '');
    await page.locator('#board-q').pressSequentially('ze');
    t.equal(await visible(page).count(), 1, 'the table narrows as one types too');
    await page.fill('#board-q', '');
    await page.locator('#board-q').dispatchEvent('input');
    await Promise.all([page.waitForURL(/sort=requests/), page.click('#model-table th a[data-sort="requests"]')]);
    t.equal(await page.locator('#models tr.model-row').first().getAttribute('data-model'), 'focus', 'most requests first');
    t.equal(await page.locator('th[aria-sort="descending"] a').getAttribute('data-sort'), 'requests');
    t.same(errors, []);
    if (SHOTS) {
      await page.goto(`${h.origin}/hub?view=table&sort=state`);
      await page.locator('#live[data-state="live"]').waitFor();
      await page.screenshot({ path: join(SHOTS, 'table-view-60-light.png'), fullPage: true });
      await page.goto(`${h.origin}/hub?q=focus`);
      await page.locator('#live[data-state="live"]').waitFor();
      await card(page, 'focus').screenshot({ path: join(SHOTS, 'card-sparkline-light.png') });
    }
  });

  t.test('steady traffic: a card shows its first request at once, then is fetched at most every 10 s; the summary only when it changed', async (t) => {
    const { page, errors } = await open();
    const name = 'zephyr-7b-beta';
    const fetches: Array<{ at: number; url: URL; summary: Promise<boolean> }> = [];
    page.on('response', (r) => {
      const url = new URL(r.url());
      if (url.pathname !== `/hub/fragments/models/${name}`) return;
      // Recorded as it arrives (its body is read later): the card may show it before the body is read here.
      fetches.push({ at: Date.now(), url, summary: r.json().then((body) => 'summary' in (body as object)) });
    });
    await page.goto(`${h.origin}/hub?q=zephyr`);
    await page.locator('#live[data-state="live"]').waitFor();
    const requests = async () => Number(/requests\s*(\d+)/.exec((await card(page, name).locator('.facts').textContent()) ?? '')?.[1]);
    const before = await requests();
    const first = Date.now();
    t.equal((await chat(h.origin, name)).status, 200);
    await waitFor('the first request on the card, within seconds', async () => (await requests()) === before + 1, 5000);
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 400)); // traffic at a steady pace, not a wait for anything
      t.equal((await chat(h.origin, name)).status, 200);
    }
    await waitFor('the last request on the card', async () => (await requests()) === before + 6, 20_000);
    await waitFor('the second fetch seen by the test', () => fetches.length >= 2, 10_000);
    t.equal(fetches.length, 2, `two fetches for six requests: ${fetches.map((f) => `${f.at - first} ms`).join(', ')}`);
    t.ok(fetches[1].at - fetches[0].at >= 9000, `the second ~10 s after the first (${fetches[1].at - fetches[0].at} ms)`);
    t.match(fetches[1].url.searchParams.get('summary'), /^[\w-]{16}$/, 'the page says which summary it shows');
    t.equal(await fetches[1].summary, false, 'and it is not sent again: nothing else changed');
    t.same(errors, []);
  });

  t.test('keyboard focus stays on the button, or its card, when an action redraws the card', async (t) => {
    const { page, errors } = await open();
    await h.hub.controller.stop('focus');
    await page.goto(`${h.origin}/hub?q=focus`);
    await page.locator('#live[data-state="live"]').waitFor();
    await card(page, 'focus').locator('button[data-action="start"]').focus();
    await page.keyboard.press('Enter');
    await card(page, 'focus').locator('xpath=self::*[@data-process="running"]').waitFor();
    await page.locator('.toast', { hasText: 'focus started' }).waitFor();
    const where = () => page.evaluate(() => { const a = document.activeElement as HTMLElement; return { model: a.closest<HTMLElement>('[data-model]')?.dataset.model, what: a.dataset.action ?? a.tagName.toLowerCase() }; });
    await waitFor('the redraws to settle', async () => (await card(page, 'focus').locator('button[data-action="unload"]:not([disabled])').count()) === 1);
    t.match(await where(), { model: 'focus' }, 'focus is still in the card after Start (its button is gone: the card holds it)');
    await card(page, 'focus').locator('button[data-action="unload"]').focus();
    await page.keyboard.press('Enter');
    await card(page, 'focus').locator('xpath=self::*[@data-memory="unloaded"]').waitFor();
    await page.locator('.toast', { hasText: 'focus unloaded' }).waitFor();
    t.match(await where(), { model: 'focus' }, 'and after Unload');
    await card(page, 'focus').locator('button[data-action="stop"]').focus();
    await h.hub.controller.load('focus'); // a redraw caused by someone else
    await card(page, 'focus').locator('xpath=self::*[@data-memory="loaded"]').waitFor();
    t.same(await where(), { model: 'focus', what: 'stop' }, 'a live redraw keeps focus on the same button');
    t.same(errors, []);
  });

  t.test('a Stop during a Start: one message, not an error and a success', async (t) => {
    const { page, errors } = await open();
    await page.goto(`${h.origin}/hub?q=slowstart`);
    await page.locator('#live[data-state="live"]').waitFor();
    await card(page, 'slowstart').locator('button[data-action="start"]').click();
    await card(page, 'slowstart').locator('xpath=self::*[@data-process="starting"]').waitFor();
    await card(page, 'slowstart').locator('button[data-action="stop"]').click();
    await card(page, 'slowstart').locator('xpath=self::*[@data-process="stopped"]').waitFor();
    await page.locator('.toast', { hasText: 'slowstart stopped' }).waitFor();
    // The Start's answer (refused: cancelled) has come back once its button is usable again.
    await card(page, 'slowstart').locator('button[data-action="start"]:not([disabled])').waitFor();
    await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
    const toasts = await page.locator('.toast').allTextContents();
    t.equal(toasts.length, 1, `one message: ${JSON.stringify(toasts)}`);
    t.match(toasts[0], /^slowstart stopped in \d+\.\d s: process stopped, memory unloaded\. The start under way was cancelled\.$/);
    t.same(errors, []);
  });

  t.test('headings, the served line, the config box and timeline details by keyboard and touch', async (t) => {
    const { page, errors } = await open({ hasTouch: true });
    await page.goto(`${h.origin}/hub?q=focus`);
    t.equal(await page.locator('h1').count(), 1, 'the board has one h1');
    const served = card(page, 'focus').locator('dd.served');
    t.equal(await served.getAttribute('title'), await served.textContent(), 'the served line\'s full text in its title');
    t.match(await card(page, 'focus').locator('.stats-line').textContent(), /^5 min: \d+ req · [\d.]+ tok\/s · TTFT /);
    t.equal(await card(page, 'focus').locator('svg.spark polyline').count(), 1, 'a sparkline');
    t.match(await card(page, 'focus').locator('.c-cold').textContent(), /\d+ cold starts? \(avg/);
    t.match(await served.textContent(), /\d+ cold starts? \(avg/, 'cold starts counted the same way on both lines');

    const summary = card(page, 'focus').locator('.tl-details summary');
    await summary.focus();
    await page.keyboard.press('Enter');
    t.equal(await card(page, 'focus').locator('.tl-details').getAttribute('open'), '', 'Enter opens the details');
    t.ok((await card(page, 'focus').locator('.tl-details li').allTextContents()).some((li) => /^cold start, \d+\.\d s/.test(li)), 'the marks as text');
    await h.hub.controller.unload('focus'); // a live redraw keeps it open
    await card(page, 'focus').locator('xpath=self::*[@data-memory="unloaded"]').waitFor();
    t.equal(await card(page, 'focus').locator('.tl-details').getAttribute('open'), '', 'still open after the card was redrawn');
    await page.goto(`${h.origin}/hub?q=zephyr`);
    await card(page, 'zephyr-7b-beta').locator('.tl-details summary').tap();
    t.equal(await card(page, 'zephyr-7b-beta').locator('.tl-details').getAttribute('open'), '', 'a tap opens them too');

    await page.goto(`${h.origin}/hub/models/focus`);
    t.equal(await page.locator('h1').textContent(), 'focus');
    await page.locator('#stats .spark-big').waitFor();
    const box = page.locator('pre.config');
    t.equal(await box.evaluate((e) => (e as HTMLElement).tabIndex), 0, 'the config box is in the tab order');
    await page.locator('#config-title').click();
    await page.keyboard.press('Tab');
    t.equal(await page.evaluate(() => document.activeElement?.classList.contains('config')), true, 'Tab reaches it');
    t.match(await box.textContent(), /^models:\n  focus:\n    backend: demo\n    cmd: /);
    t.same(errors, []);
  });

  t.test('Stop all through its confirm page; the hub log page follows the log', async (t) => {
    const { page, errors } = await open();
    await page.goto(`${h.origin}/hub`);
    await Promise.all([page.waitForURL(/\/hub\/bulk\/stop$/), page.click('a[href="/hub/bulk/stop"]')]);
    t.ok((await page.locator('#bulk-models li').allTextContents()).includes('focus'));
    await Promise.all([page.waitForURL(/\/hub\?flash=/), page.click('#bulk-confirm')]);
    t.match(await page.locator('.flash-ok').textContent(), /Stop all: \d+ model\(s\) stopped\./);
    t.equal(h.hub.controller.get('focus').process, 'stopped');

    const file = hubLogFile(h.hub.controller.config.log.dir);
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${JSON.stringify({ level: 30, time: new Date().toISOString(), msg: 'before the page' })}\n`);
    await page.goto(`${h.origin}/hub/log`);
    t.match(await page.locator('#log').textContent(), /INFO before the page/);
    await page.locator('#log-state', { hasText: 'following live' }).waitFor();
    appendFileSync(file, `${JSON.stringify({ level: 40, time: new Date().toISOString(), msg: 'written while open', model: 'focus' })}\n`);
    await page.locator('#log', { hasText: /WARN written while open model=focus/ }).waitFor();
    t.pass('a new line shows up, as lines for people');
    t.same(errors, []);
  });

  t.test('with admin keys: the group bar and the counts agree during swaps; other tabs are logged out within 2 s', async (t) => {
    const k = await startTestHub(t, `auth: { admin_keys: [${ADMIN}] }\ngroups:\n  solo: { max_loaded: 1, on_full: evict }\nmodels:\n  sw-a: { backend: demo, cmd: "${demo('--load-time 600ms')}", group: solo }\n  sw-b: { backend: demo, cmd: "${demo('--load-time 600ms')}", group: solo }\n`);
    const auth = { authorization: `Bearer ${ADMIN}` };
    const { context, page, errors } = await open();
    await page.goto(`${k.origin}/hub/login?next=%2Fhub`);
    await page.fill('#key', ADMIN);
    await Promise.all([page.waitForURL(`${k.origin}/hub`), page.click('button[type="submit"]')]);
    await page.locator('#live[data-state="live"]').waitFor();
    // Every summary the page shows, as it is swapped in: the hub's "loaded" count and the group's.
    await page.evaluate(() => {
      const w = window as unknown as { __seen: Array<[string, string]> };
      w.__seen = [];
      const note = () => {
        const counts = [...document.querySelectorAll('#summary .counts div')].find((d) => d.querySelector('dt')?.textContent === 'loaded');
        w.__seen.push([counts?.querySelector('dd')?.textContent ?? '', document.querySelector('#summary .group .bar-text')?.textContent ?? '']);
      };
      new MutationObserver(note).observe(document.getElementById('board')!, { childList: true });
    });
    for (const model of ['sw-a', 'sw-b', 'sw-a']) t.equal((await chat(k.origin, model, auth)).status, 200);
    await waitFor('the last swap on the page', () => page.evaluate(() => (window as unknown as { __seen: Array<[string, string]> }).__seen.some(([, g]) => /loading or unloading/.test(g))));
    await page.locator('#summary .group .bar-text', { hasText: /^1 loaded of 1/ }).waitFor();
    const seen = await page.evaluate(() => (window as unknown as { __seen: Array<[string, string]> }).__seen);
    t.ok(seen.length >= 3, `${seen.length} summaries seen`);
    for (const [count, group] of seen) t.equal(group.match(/^(\d+) loaded/)?.[1], count, `"${group}" agrees with loaded: ${count}`);

    const other = await open({}, context);
    await other.page.goto(`${k.origin}/hub`);
    await other.page.locator('#live[data-state="live"]').waitFor();
    let started = Date.now();
    await Promise.all([page.waitForURL(/\/hub\/login\?out=1$/), page.click('.logout button')]);
    await other.page.locator('#live[data-state="ended"]', { hasText: 'logged out' }).waitFor({ timeout: 10_000 });
    t.ok(Date.now() - started < 2000, `the other tab says "logged out" within 2 s (${Date.now() - started} ms)`);

    // A logout the tabs do not hear of (another browser, a script): the hub's stream tells them.
    const again = await open();
    await again.page.goto(`${k.origin}/hub/login?next=%2Fhub`);
    await again.page.fill('#key', ADMIN);
    await Promise.all([again.page.waitForURL(`${k.origin}/hub`), again.page.click('button[type="submit"]')]);
    await again.page.locator('#live[data-state="live"]').waitFor();
    const [cookie] = await again.context.cookies();
    started = Date.now();
    t.equal((await fetch(`${k.origin}/hub/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: `${cookie.name}=${cookie.value}` } })).status, 303);
    await again.page.locator('#live[data-state="ended"]', { hasText: 'logged out' }).waitFor({ timeout: 10_000 });
    t.ok(Date.now() - started < 2000, `a logout from elsewhere shows within 2 s too (${Date.now() - started} ms)`);
    t.same([...errors, ...other.errors, ...again.errors].filter((e) => !/401/.test(e)), []);
  });
});
