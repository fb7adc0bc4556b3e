// The board over plain HTTP, as a browser without JavaScript sees it: search, state filters and sort
// from the URL query, the table view, the fragments the script swaps in, Stop all / Unload all with a
// confirm page and through the control API, the hub's log page, headings, and the effective config as
// YAML that loads back as the same config. Browser behaviour: dashboard-cockpit.test.ts.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import t from 'tap';
import { parseConfig } from '../lib/config/load.js';
import { hubLogFile } from '../lib/config/names.js';
import { modelYaml } from '../lib/http/dashboard/config-yaml.js';
import { demo, getJson, postJson, startTestHub } from './helpers.js';

const html = { accept: 'text/html' };
const page = async (url: string) => {
  const res = await fetch(url, { headers: html });
  return { status: res.status, text: await res.text() };
};
/** The models on a board, in page order, and whether each is shown. */
function board(text: string): Array<{ name: string; shown: boolean }> {
  return [...text.matchAll(/<(?:article class="model"|tr class="model-row") data-model="([^"]+)"[^>]*?( hidden)?>/g)].map((m) => ({ name: m[1], shown: !m[2] }));
}
const shown = (text: string) => board(text).filter((m) => m.shown).map((m) => m.name);
const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

const yaml = `
groups:
  g: { max_loaded: 2 }
models:
  alpha: { backend: demo, cmd: "${demo()}", group: g, memory: 64MiB }
  beta: { backend: demo, cmd: "${demo()}" }
  gamma-coder: { backend: demo, cmd: "${demo()}", aliases: [qwen-coder] }
  delta:
    backend: demo
    cmd: "${demo("--reasoning 'it is so'")}"
    group: g
    memory: 1536MiB
    aliases: [d4]
    env: { LOG_LEVEL: info }
    idle: { unload_after: 90s, stop_after: never }
    max_concurrency: 2
    start_timeout: 2m
    params: { set: { temperature: 0.2 }, strip: [logit_bias] }
  broken: { backend: demo, cmd: "${demo('--fail-start 3')}" }
`;

t.test('the board without JavaScript', async (t) => {
  const h = await startTestHub(t, yaml);
  const hub = (p: string) => page(`${h.origin}${p}`);
  const chat = (model: string) => postJson(`${h.origin}/v1/chat/completions`, { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  t.equal((await chat('beta')).status, 200);
  t.equal((await chat('beta')).status, 200);
  t.equal((await chat('alpha')).status, 200);
  t.equal((await postJson(`${h.origin}/hub/api/models/broken/start`, {})).status, 503);

  t.test('search and state filters from the URL', async (t) => {
    const all = await hub('/hub');
    t.same(shown(all.text), ['alpha', 'beta', 'gamma-coder', 'delta', 'broken'], 'everything, in config order');
    t.match(all.text, /<h1 class="page-title">Models <small id="shown-count" aria-live="polite">5<\/small><\/h1>/, 'the page has an h1');
    const coder = await hub('/hub?q=coder');
    t.same(shown(coder.text), ['gamma-coder']);
    t.equal(board(coder.text).length, 5, 'the others stay in the page, hidden (the live page can show them)');
    t.match(coder.text, /Models <small[^>]*>1 of 5<\/small>/);
    t.match(coder.text, /<input id="board-q" name="q" type="search" value="coder"/, 'the search box keeps the query');
    t.same(shown((await hub('/hub?q=QWEN')).text), ['gamma-coder'], 'aliases count, in any case');
    t.same(shown((await hub('/hub?q=d4')).text), ['delta']);
    t.same(shown((await hub('/hub?state=running')).text), ['alpha', 'beta']);
    t.same(shown((await hub('/hub?state=loaded')).text), ['alpha', 'beta']);
    t.same(shown((await hub('/hub?state=failed')).text), ['broken']);
    t.same(shown((await hub('/hub?state=stopped')).text), ['gamma-coder', 'delta']);
    t.same(shown((await hub('/hub?state=grouped')).text), ['alpha', 'delta']);
    t.same(shown((await hub('/hub?state=grouped&q=alp')).text), ['alpha'], 'search and filter together');
    const none = await hub('/hub?q=nothing-like-it');
    t.same(shown(none.text), []);
    t.match(none.text, /<p class="empty" id="no-match">No model matches/, 'says so when nothing matches');
    t.match((await hub('/hub?state=failed')).text, /<option value="failed" selected>failed<\/option>/);
    const odd = await hub('/hub?view=bogus&state=bogus&sort=bogus');
    t.equal(odd.status, 200, 'unknown values fall back to the defaults');
    t.same(shown(odd.text), ['alpha', 'beta', 'gamma-coder', 'delta', 'broken']);
  });

  t.test('sort by name, state, memory, last used and requests; the table view', async (t) => {
    t.same(shown((await hub('/hub?sort=name')).text), ['alpha', 'beta', 'broken', 'delta', 'gamma-coder']);
    t.same(shown((await hub('/hub?sort=name&dir=desc')).text), ['gamma-coder', 'delta', 'broken', 'beta', 'alpha']);
    t.same(shown((await hub('/hub?sort=requests')).text).slice(0, 2), ['beta', 'alpha'], 'most requests first');
    t.same(shown((await hub('/hub?sort=last_used')).text).slice(0, 2), ['alpha', 'beta'], 'latest use first');
    t.same(shown((await hub('/hub?sort=state')).text), ['alpha', 'beta', 'broken', 'gamma-coder', 'delta'], 'running and loaded first, failed, stopped last');
    t.same(shown((await hub('/hub?sort=memory')).text).slice(2).sort(), ['broken', 'delta', 'gamma-coder'], 'what holds memory first');

    const table = await hub('/hub?view=table&sort=requests&q=a');
    t.notMatch(table.text, /<article class="model"/, 'rows, not cards');
    t.match(table.text, /<table class="model-table" id="model-table">/);
    t.same(board(table.text).map((m) => m.name).slice(0, 2), ['beta', 'alpha']);
    t.same(shown(table.text), ['beta', 'alpha', 'gamma-coder', 'delta'], 'the search applies to rows too');
    t.match(table.text, /<th aria-sort="descending"><a href="\/hub\?view=table&amp;q=a&amp;sort=requests&amp;dir=asc" data-sort="requests">requests/, 'the sorted column says so and flips on a click, keeping the rest');
    t.match(table.text, /<th aria-sort="none"><a href="\/hub\?view=table&amp;q=a&amp;sort=name" data-sort="name">name<\/a><\/th>/);
    t.match(table.text, /<input type="hidden" name="view" value="table">/, 'the search form keeps the view');
    t.match(table.text, /<a href="\/hub\?q=a&amp;sort=requests"[^>]*data-view-link="cards">Cards<\/a>/, 'the view switch keeps the search and sort');
    const row = table.text.slice(table.text.indexOf('data-model="beta"'), table.text.indexOf('</tr>', table.text.indexOf('data-model="beta"')));
    t.match(row, /running<\/span>.*loaded<\/span>/s);
    t.match(row, /<td>2<\/td>/, 'its requests');
    t.match(row, /<button class="btn btn-small btn-unload" type="submit" data-action="unload" aria-label="Unload beta">Unload<\/button>/, 'buttons name their model');
    t.match(row, /class="spark"[\s\S]*?<\/svg>[\d.]+ tok\/s · TTFT \d+ ms<\/td>/, 'its sparkline and the last 5 minutes in a few words');

    const fragment = (await getJson(`${h.origin}/hub/fragments/models/beta?view=table`)).body;
    t.match(fragment.card, /^<tr class="model-row" data-model="beta"/, 'the table view\'s live update is a row');
    t.match(fragment.summary, /id="summary"/);
    const boardFragment = await (await fetch(`${h.origin}/hub/fragments/board?view=table&state=failed`)).text();
    t.same(shown(boardFragment), ['broken'], 'the board fragment takes the same query');
  });

  t.test('the effective config is YAML that loads back as the same config', async (t) => {
    const text = (await hub('/hub/models/delta')).text;
    t.match(text, /<h1 class="page-title">delta<\/h1>/);
    const pre = /<pre class="config" tabindex="0" role="region" aria-labelledby="config-title"><code>([\s\S]*?)<\/code><\/pre>/.exec(text);
    t.ok(pre, 'a focusable config box');
    const shownYaml = unescape(pre![1]);
    t.match(shownYaml, /^models:\n  delta:\n    backend: demo\n    cmd: \$\{HUB\} demo-model --port \$\{PORT\} --model \$\{MODEL\} --reasoning 'it is so'\n/);
    t.match(shownYaml, /    memory: 1536MiB\n/);
    t.match(shownYaml, /    idle:\n      unload_after: 90s\n      stop_after: never\n/);
    t.match(shownYaml, /    start_timeout: 2m\n/);
    t.notMatch(shownYaml, /Ms\b|"argv"|\{\s*"/, 'no internal names or JSON');
    const running = h.hub.controller.config.models.delta;
    const back = parseConfig(`groups:\n  g: { max_loaded: 2 }\n${shownYaml}`, `${h.dir}/hub.yaml`).models.delta;
    for (const key of ['argv', 'memory', 'idle', 'aliases', 'env', 'maxConcurrency', 'maxQueue', 'startTimeoutMs', 'stopTimeoutMs', 'params', 'group', 'health'] as const) t.same(back[key], running[key], `${key} loads back the same`);
    t.match(modelYaml({ ...running, apiKey: 'sk-secret-zz' }, (s) => s.replace('sk-secret-zz', '***')), /api_key: "\*\*\*"/, 'strings pass through the mask');
  });

  t.test('the hub log page: lines for people, secrets masked', async (t) => {
    const file = hubLogFile(h.hub.controller.config.log.dir);
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${JSON.stringify({ level: 30, time: new Date().toISOString(), msg: 'reloaded the config', changed: 2 })}\nnot json at all\n`);
    const text = (await hub('/hub/log')).text;
    t.match(text, /<h1 class="page-title">Hub log<\/h1>/);
    t.match(text, /\d\d:\d\d:\d\d INFO reloaded the config changed=2\nnot json at all/, 'as hub logs --hub prints it');
    t.match(text, /data-follow="\/hub\/api\/logs\?tail=0&amp;follow=1&amp;format=text"/);
    t.match(await (await fetch(`${h.origin}/hub/api/logs?tail=5&format=text`)).text(), /INFO reloaded the config changed=2/);
    t.match(await (await fetch(`${h.origin}/hub/api/logs?tail=5`)).text(), /"msg":"reloaded the config"/, 'the API still gives JSON lines by default');
  });

  t.test('Unload all and Stop all: a confirm page, a form, the control API', async (t) => {
    const confirm = await hub('/hub/bulk/unload');
    t.match(confirm.text, /<h1>Unload all\?<\/h1>/);
    t.match(confirm.text, /This will unload 2 models/);
    t.match(confirm.text, /<li>alpha<\/li>\s*<li>beta<\/li>/);
    t.match(confirm.text, /<form method="post" action="\/hub\/bulk\/unload"/);
    const res = await fetch(`${h.origin}/hub/bulk/unload`, { method: 'POST', redirect: 'manual', headers: html });
    t.equal(res.status, 303);
    const after = await hub(res.headers.get('location')!);
    t.match(after.text, /Unload all: 2 model\(s\) unloaded\./);
    t.equal(h.hub.controller.get('alpha').memory, 'unloaded');
    t.equal(h.hub.controller.get('beta').process, 'running', 'unload keeps the process');

    const api = await postJson(`${h.origin}/hub/api/stop-all`, {});
    t.equal(api.status, 200);
    t.same(api.body, { action: 'stop', models: [{ model: 'alpha', process: 'stopped', memory: 'unloaded' }, { model: 'beta', process: 'stopped', memory: 'unloaded' }], failed: [] });
    t.match((await hub('/hub/bulk/stop')).text, /No model needs it now: none is running or starting/);
    t.same((await postJson(`${h.origin}/hub/api/unload-all`, {})).body, { action: 'unload', models: [], failed: [] });
    t.equal((await hub('/hub/bulk/nope')).status, 404);
  });
});
