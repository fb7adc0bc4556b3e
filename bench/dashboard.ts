// The dashboard with 60 models, in headless chromium (Debian's, through playwright-core; never a
// downloaded browser), against `hub serve` in its own process: how soon /hub is ready (DOMContentLoaded
// from the navigation's start, budget ≤ 500 ms; and when the page is live, its event stream open), and
// what the page's live updates cost on the wire (the event stream plus the card fragments it fetches)
// while a few models get a request a second each: budget ≤ 100 KiB per minute.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type CDPSession, type Page } from 'playwright-core';
import { serveHub } from './processes.js';

const MODELS = 60;
const HOT = ['hot-a', 'hot-b', 'hot-c']; // running, and the steady traffic goes to them
const NAVIGATIONS = Number(process.env.BENCH_NAVIGATIONS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const CHROMIUM = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface Load {
  server: number; // request sent → first byte (the hub renders the page)
  transfer: number; // first byte → last byte
  parse: number; // last byte → DOMContentLoaded (parse, stylesheet, script)
  ready: number; // navigation start → DOMContentLoaded end
  live: number; // navigation start → the page's event stream is open (#live[data-state=live])
  bytes: number; // the HTML on the wire
  decoded: number; // the HTML's size
}

/** `promise`, or an error naming `what` after `ms`. */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const over = (bad: boolean) => (bad ? ': OVER BUDGET' : '');

/** `hub serve` with MODELS models, HOT of them running; its origin once it serves. */
async function serve(dir: string) {
  const base = 20000 + Math.floor(Math.random() * 12000);
  const cold = Array.from({ length: MODELS - HOT.length }, (_, i) => `  model-${String(i).padStart(2, '0')}: { backend: demo, cmd: "\${HUB} demo-model --port \${PORT} --model \${MODEL}", memory: ${4 + (i % 5) * 2}GiB${i % 4 === 0 ? ', group: box' : ''} }`);
  const hot = HOT.map((name) => `  ${name}: { backend: demo, cmd: "\${HUB} demo-model --port \${PORT} --model \${MODEL} --memory 16MiB --max-tokens 8", memory: 32MiB }`);
  writeFileSync(join(dir, 'hub.yaml'), `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${dir}\nports: { start: ${base} }\ngroups:\n  box: { max_loaded: 1, on_full: evict }\nmodels:\n${[...hot, ...cold].join('\n')}\n`);
  return serveHub(join(dir, 'hub.yaml'));
}

function chat(origin: string, model: string): Promise<number> {
  return fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }) })
    .then(async (res) => { await res.arrayBuffer(); return res.status; });
}

/** One fresh navigation (a new browser context: nothing cached) to /hub, timed by the page itself. */
async function load(browser: Browser, origin: string): Promise<Load> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await context.newPage();
    // When the page says it is live, stamped by the page's own clock and reported through a binding:
    // no polling in the page (playwright's waits would force style and layout while it loads).
    let said: () => void = () => {};
    const live = new Promise<void>((resolve) => { said = resolve; });
    await page.exposeFunction('__benchLive', () => said());
    await page.addInitScript(() => {
      const w = window as unknown as { __live?: number; __benchLive(): void };
      new MutationObserver((_, obs) => {
        if (!document.querySelector('#live[data-state="live"]')) return;
        w.__live = performance.now();
        obs.disconnect();
        w.__benchLive();
      }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'], childList: true });
    });
    await Promise.all([page.goto(`${origin}/hub`), within(30_000, live, 'the page to say it is live')]);
    const cards = await page.locator('#models [data-model]').count();
    if (cards !== MODELS) throw new Error(`the board shows ${cards} models, not ${MODELS}`);
    return await page.evaluate(() => {
      const n = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      return {
        server: n.responseStart - n.requestStart,
        transfer: n.responseEnd - n.responseStart,
        parse: n.domContentLoadedEventEnd - n.responseEnd,
        ready: n.domContentLoadedEventEnd - n.startTime,
        live: (window as unknown as { __live: number }).__live,
        bytes: n.encodedBodySize,
        decoded: n.decodedBodySize,
      };
    });
  } finally {
    await context.close();
  }
}

/** Bytes on the wire for the page's live updates: the event stream's chunks and each fragment fetch. */
function countLive(cdp: CDPSession) {
  const kinds = new Map<string, 'events' | 'fragment'>();
  const tally = { events: 0, fragments: 0, fragmentBytes: 0, boardFetches: 0 };
  cdp.on('Network.requestWillBeSent', (e) => {
    const path = new URL(e.request.url).pathname;
    if (path === '/hub/api/events') kinds.set(e.requestId, 'events');
    else if (path.startsWith('/hub/fragments/')) {
      kinds.set(e.requestId, 'fragment');
      tally.fragments++;
      if (path === '/hub/fragments/board') tally.boardFetches++;
    }
  });
  // The event stream goes uncompressed, so its bytes are the wire's; counted as they arrive (chromium
  // reports a stream's encoded length late, with the chunk after).
  cdp.on('Network.responseReceived', (e) => {
    if (kinds.get(e.requestId) === 'events' && e.response.headers['content-encoding']) throw new Error('the event stream came compressed: count its encoded bytes instead');
  });
  cdp.on('Network.dataReceived', (e) => {
    if (kinds.get(e.requestId) === 'events') tally.events += e.dataLength;
  });
  cdp.on('Network.loadingFinished', (e) => {
    if (kinds.get(e.requestId) === 'fragment') tally.fragmentBytes += e.encodedDataLength; // headers included
  });
  return tally;
}

export async function dashboardBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-dashboard-'));
  const hub = await serve(dir);
  const origin = hub.origin;
  let browser: Browser | undefined;
  try {
    for (const model of HOT) if ((await chat(origin, model)) !== 200) throw new Error(`${model} did not answer`);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM });
    const first = await load(browser, origin); // the first visit after the hub's start compiles the templates
    const loads: Load[] = [];
    for (let i = 0; i < NAVIGATIONS; i++) loads.push(await load(browser, origin));
    const pick = (k: keyof Load) => loads.map((l) => l[k]);
    const ready = pick('ready');
    const p50 = median(ready);
    const max = Math.max(...ready);

    // The live stream: a page left open while HOT get a request a second each.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page: Page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const tally = countLive(cdp);
    await page.goto(`${origin}/hub`);
    await page.locator('#live[data-state="live"]').waitFor({ timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 1000)); // the stream's first snapshot and anything it set off
    const before = { ...tally };
    let sent = 0;
    let failed = 0;
    const started = performance.now();
    const timers = HOT.map((model, i) => setTimeout(() => {
      const tick = () => { sent++; void chat(origin, model).then((s) => { if (s !== 200) failed++; }, () => failed++); };
      tick();
      timers[i] = setInterval(tick, 1000);
    }, (i * 1000) / HOT.length));
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    timers.forEach((t) => clearInterval(t));
    await new Promise((r) => setTimeout(r, 1000)); // the last requests' redraws
    const minutes = (performance.now() - started) / 60_000;
    await context.close();
    const events = tally.events - before.events;
    const fragmentBytes = tally.fragmentBytes - before.fragmentBytes;
    const perMinute = (events + fragmentBytes) / minutes;

    console.log(`dashboard with ${MODELS} models (${HOT.length} running; hub serve in its own process, headless chromium)`);
    console.log(`  first visit after the hub's start (not counted below): DOMContentLoaded ${first.ready.toFixed(0)} ms (hub answers ${first.server.toFixed(0)} ms · transfer ${first.transfer.toFixed(0)} ms · parse and script ${first.parse.toFixed(0)} ms), live ${first.live.toFixed(0)} ms`);
    console.log(`  page ready (DOMContentLoaded), ${NAVIGATIONS} fresh navigations  p50 ${p50.toFixed(0)} ms (budget p50 <= 500 ms${over(p50 > 500)})  max ${max.toFixed(0)} ms`);
    console.log(`    of which (p50s): hub answers ${median(pick('server')).toFixed(0)} ms · transfer ${median(pick('transfer')).toFixed(0)} ms · parse and script ${median(pick('parse')).toFixed(0)} ms; live (event stream open) p50 ${median(pick('live')).toFixed(0)} ms`);
    console.log(`    the page's HTML: ${kib(median(pick('bytes')))} on the wire, ${kib(median(pick('decoded')))} decoded`);
    console.log(`  live updates while ${HOT.length} models get 1 request/s each for ${SECONDS} s (${sent} sent, ${failed} failed)  ${kib(perMinute)}/min (budget <= 100 KiB/min${over(perMinute / 1024 > 100)})`);
    console.log(`    event stream ${kib(events / minutes)}/min · ${tally.fragments - before.fragments} card fragments ${kib(fragmentBytes / minutes)}/min · board fetched ${tally.boardFetches} time(s)`);
  } finally {
    await browser?.close();
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
