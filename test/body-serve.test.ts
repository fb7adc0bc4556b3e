// Request bodies against a real `hub serve` process. A refused body's 413 must reach the client: with
// the hub in the client's own process the timing hides the failure, in its own process the openai SDK
// saw "Connection error" for every refused multipart upload. And the hub's memory under many large
// bodies at once (its peak RSS from /proc): the body budget (limits.max_body_total) bounds it, bodies
// it cannot take get 503 hub_busy, and bodies that withhold their last byte are dropped after
// body_timeout.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import OpenAI, { APIError, toFile } from 'openai';
import { demo, freePort, freePortRange, getJson, spawnHub, tempDir, waitFor, type Spawned } from './helpers.js';
import { runUploads, type Outcome, type Upload } from './support/uploader.js';

/** VmRSS and VmHWM (peak) of a process, in MiB; undefined where /proc is not there. */
function memory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** Starts the peak over from the current RSS (Linux: clear_refs 5). */
function resetPeak(pid: number): void {
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); } catch { /* the peak then counts from the start */ }
}

const tally = (outcomes: Outcome[]) => {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status ? `${o.status} ${o.code ?? ''}`.trim() : `error ${o.error}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
};

/** `hub serve` in a child process with these limits and models. */
async function serve(t: Parameters<typeof spawnHub>[0], limits: string, models: string): Promise<{ hub: Spawned; origin: string }> {
  const dir = tempDir(t);
  const port = await freePort();
  writeFileSync(join(dir, 'hub.yaml'), `listen: { host: 127.0.0.1, port: ${port} }\nstate_dir: ${dir}\nlog: { level: warn }\nports: { start: ${await freePortRange(4)} }\nlimits: ${limits}\nmodels:\n${models}`);
  const hub = spawnHub(t, ['serve', '--config', join(dir, 'hub.yaml')]);
  // Stopped as an operator would, so that it stops its backends: the SIGKILL that spawnHub falls back
  // on would leave them running. (Teardowns run last registered first: this one before that one.)
  t.teardown(async () => {
    if (hub.child.exitCode === null && hub.child.signalCode === null) hub.child.kill('SIGTERM');
    await Promise.race([hub.exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitFor('the hub', () => fetch(`${origin}/health`).then((r) => r.ok, () => false), 15_000);
  return { hub, origin };
}

const chat = (origin: string, model: string, content = '') =>
  getJson(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, max_tokens: 1, messages: [{ role: 'user', content }] }) });

t.test('the openai SDK receives the 413 for a multipart upload and a JSON body, every time', async (t) => {
  const small = await serve(t, '{ max_body: 1MiB }', `  fast: { backend: demo, cmd: "${demo()}" }\n`);
  t.equal((await chat(small.origin, 'fast')).status, 200, 'warm');
  const client = new OpenAI({ baseURL: `${small.origin}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  const file = Buffer.alloc(3 * 1024 * 1024, 1);
  for (let run = 1; run <= 10; run++) {
    const upload = await client.audio.transcriptions.create({ model: 'fast', file: await toFile(file, 'clip.wav') }).catch((e: unknown) => e);
    t.ok(upload instanceof APIError && upload.status === 413 && upload.code === 'body_too_large', `multipart run ${run}: ${String(upload)}`);
    const json = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'x'.repeat(3 * 1024 * 1024) }] }).catch((e: unknown) => e);
    t.ok(json instanceof APIError && json.status === 413 && json.code === 'body_too_large', `JSON run ${run}: ${String(json)}`);
    if (run === 1) t.match((json as APIError).message, /limits\.max_body \(1MiB\)/, 'the message names the limit');
  }

});

t.test('max_body 32MiB, max_body_total 256MiB', async (t) => {
  const { hub, origin } = await serve(t, '{ max_body: 32MiB, max_body_total: 256MiB, body_timeout: 1s }', `  fast: { backend: demo, cmd: "${demo()}" }\n  slow: { backend: demo, cmd: "${demo('--token-rate 0.5')}" }\n`);
  const pid = hub.child.pid!;
  if (!memory(pid)) {
    t.comment('no /proc here: RSS cannot be measured');
    return;
  }
  for (const model of ['fast', 'slow']) t.equal((await chat(origin, model)).status, 200, `${model} warm`);
  const upload = (model: string, extra: Partial<Upload> = {}): Upload => ({ path: '/v1/chat/completions', kind: 'image', model, mib: 30, ...extra });

  t.test('fetch with a 40 MiB JSON body receives the 413, every time', async (t) => {
    const body = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'x'.repeat(40 * 1024 * 1024) }] });
    for (let run = 1; run <= 10; run++) {
      const res = await fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(
        async (r) => `${r.status} ${((await r.json()) as { error: { code: string } }).error.code}`,
        (e: Error) => `${e.message} ${String((e.cause as Error | undefined)?.message ?? '')}`,
      );
      t.equal(res, '413 body_too_large', `run ${run}`);
    }
  });

  t.test('50 concurrent 30 MiB bodies: the budget bounds the hub\'s memory; what does not fit gets 503 hub_busy', async (t) => {
    const before = memory(pid)!;
    resetPeak(pid);
    // Eight bodies fill the budget, and the slow model holds each for 4 s (2 tokens at 0.5/s) before
    // it answers: longer than a body waits for room, so those that did not fit at first are refused.
    const started = Date.now();
    const outcomes = await runUploads({ origin, uploads: Array.from({ length: 50 }, () => upload('slow')) });
    const after = memory(pid)!;
    const counts = tally(outcomes);
    t.comment(`50 × 30 MiB in ${Date.now() - started} ms: ${JSON.stringify(counts)}; hub RSS ${before.rss.toFixed(0)} MiB before, peak ${after.peak.toFixed(0)} MiB (growth ${(after.peak - before.rss).toFixed(0)} MiB), ${after.rss.toFixed(0)} MiB after`);
    t.ok(after.peak - before.rss < 600, `peak RSS growth ${(after.peak - before.rss).toFixed(0)} MiB < 600 MiB`);
    t.ok((counts['200'] ?? 0) >= 1, 'some were answered');
    t.ok((counts['503 hub_busy'] ?? 0) >= 1, 'some got 503 hub_busy');
    t.equal((counts['200'] ?? 0) + (counts['503 hub_busy'] ?? 0), 50, 'nothing else happened (no resets, no crash)');
    const busy = outcomes.find((o) => o.code === 'hub_busy');
    t.match((busy?.body as { error: { message: string } } | undefined)?.error.message, /limits\.max_body_total/);
    t.equal((await getJson(`${origin}/health`)).status, 200, 'the hub is fine');
  });

  t.test('50 concurrent 30 MiB bodies that withhold their last byte are dropped after body_timeout, their memory released', async (t) => {
    const before = memory(pid)!;
    resetPeak(pid);
    const started = Date.now();
    const outcomes = await runUploads({ origin, uploads: Array.from({ length: 50 }, () => upload('fast', { withholdLast: true })) });
    const took = Date.now() - started;
    const after = memory(pid)!;
    const counts = tally(outcomes);
    t.comment(`50 × 30 MiB withholding the last byte, all answered in ${took} ms: ${JSON.stringify(counts)}; hub RSS ${before.rss.toFixed(0)} MiB before, peak ${after.peak.toFixed(0)} MiB, ${after.rss.toFixed(0)} MiB after`);
    t.ok(after.peak - before.rss < 600, `peak RSS growth ${(after.peak - before.rss).toFixed(0)} MiB < 600 MiB`);
    t.ok((counts['408 body_incomplete'] ?? 0) >= 1, 'the bodies it took were dropped with 408 body_incomplete');
    t.equal((counts['408 body_incomplete'] ?? 0) + (counts['503 hub_busy'] ?? 0), 50, 'the others got 503 hub_busy; nothing else happened');
    t.ok(Math.max(...outcomes.map((o) => o.ms)) < 10_000, 'each was over within seconds (body_timeout 1s), not minutes');

    // The budget is whole again: eight bodies of 30 MiB (240 MiB) are taken at once.
    const again = await runUploads({ origin, uploads: Array.from({ length: 8 }, () => upload('fast')) });
    t.same(tally(again), { 200: 8 }, 'their share of the budget was released');
  });
});
