// The hub's memory under many large request bodies at once, against a real `hub serve` process (its
// peak RSS from /proc): the body budget (limits.max_body_total) bounds it, bodies it cannot take get
// 503 hub_busy, and bodies that withhold their last byte are dropped after body_timeout.
import t from 'tap';
import { demo, getJson } from './helpers.js';
import { chat, memory, resetPeak, serve, tally } from './support/serve-limits.js';
import { runUploads, type Upload } from './support/uploader.js';

t.test('max_body 32MiB, max_body_total 256MiB', async (t) => {
  const { hub, origin } = await serve(t, '{ max_body: 32MiB, max_body_total: 256MiB, body_timeout: 1s }', `  fast: { backend: demo, cmd: "${demo()}" }\n  slow: { backend: demo, cmd: "${demo('--token-rate 0.5')}" }\n`);
  const pid = hub.child.pid!;
  if (!memory(pid)) {
    t.comment('no /proc here: RSS cannot be measured');
    return;
  }
  for (const model of ['fast', 'slow']) t.equal((await chat(origin, model)).status, 200, `${model} warm`);
  const upload = (model: string, extra: Partial<Upload> = {}): Upload => ({ path: '/v1/chat/completions', kind: 'image', model, mib: 30, ...extra });

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
    // From when each client had sent all it would: 1.5 GiB through loopback takes longer than that on a
    // busy machine, and is not what body_timeout bounds.
    const quiet = Math.max(...outcomes.map((o) => o.quietMs ?? 0));
    t.ok(quiet < 10_000, `each was over within seconds of its client going quiet (${quiet} ms; body_timeout 1s), not minutes`);

    // The budget is whole again: eight bodies of 30 MiB (240 MiB) are taken at once.
    const again = await runUploads({ origin, uploads: Array.from({ length: 8 }, () => upload('fast')) });
    t.same(tally(again), { 200: 8 }, 'their share of the budget was released');
  });
});
