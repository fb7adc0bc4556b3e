// What issue-free operation of a busy box looks like in a real browser (Debian's chromium via
// playwright-core): a model loading shows its stage and a bar on its card, live; a model whose
// measured memory is over its declaration is flagged on its card and its group. With
// HUB_SCREENSHOTS=1 it saves both views for docs/memory.md and docs/lifecycle.md.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { demo, getJson, PACKAGE_ROOT, postJson, startTestHub, waitFor } from './helpers.js';

const CHROMIUM = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = process.env.HUB_SCREENSHOTS === '1' ? join(PACKAGE_ROOT, 'docs', 'screenshots') : undefined;

t.test('a loading card and an over-budget group in chromium', async (t) => {
  const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM });
  t.teardown(() => browser.close());
  const h = await startTestHub(t, `groups:\n  small: { max_memory: 100MiB }\nmodels:
  qwen-7b: { backend: demo, cmd: "${demo('--load-time 6s')}" }
  hungry: { backend: demo, group: small, memory: 40MiB, cmd: "${demo('--memory 48MiB')}" }
`);
  t.equal((await postJson(`${h.origin}/hub/api/models/hungry/load`, {})).status, 200);
  await waitFor('hungry to be measured over its declaration', async () => {
    const s = (await getJson(`${h.origin}/hub/api/status`)).body as { models: Array<{ name: string; memory_warning?: string | null }> };
    return s.models.find((m) => m.name === 'hungry')?.memory_warning;
  }, 20_000);

  const context = await browser.newContext({ viewport: { width: 1200, height: 700 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${h.origin}/hub`);
  await page.locator('#live[data-state="live"]').waitFor();
  const hungry = page.locator('article.model[data-model="hungry"]');
  t.match(await hungry.locator('.memory-warning').textContent(), /declared 40MiB, measured \d+(\.\d+)?MiB/, 'the card flags the measurement over the declaration');
  t.match(await page.locator('.group').first().textContent(), /small/, 'the group box');
  t.match(await page.locator('.group-warning').first().textContent(), /small|max_memory/, 'the over-budget group is flagged');

  // Start the slow model without waiting: the card follows its load live, from the stream.
  t.equal((await postJson(`${h.origin}/hub/api/models/qwen-7b/start?wait=false`, {})).status, 202);
  const load = page.locator('article.model[data-model="qwen-7b"] .load');
  await load.waitFor({ timeout: 20_000 });
  await waitFor('the stage from the backend\'s own bar, past its start', async () => /Loading demo weights [1-9]\d*%/.test((await load.textContent()) ?? ''), 20_000);
  t.ok(await load.locator('progress').count(), 'a progress bar');
  const value = Number(await load.locator('progress').getAttribute('value'));
  t.ok(value > 0 && value <= 1, `its value is the fraction so far (${value})`);
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'loading-and-over-budget.png'), fullPage: true });
  }
  await waitFor('qwen-7b to be up, and its bar gone', async () => (await load.count()) === 0, 30_000);
  t.same(errors, [], 'no script errors');
});
