// A cold start's progress as users see it, with a real hub and the demo backend (which draws a
// progress bar while it loads, as vLLM does): the events stream, the status, the dashboard's card,
// and `hub start-model` into a pipe (a line per stage) and on a terminal (a bar).
import t from 'tap';
import { daemonSetup, hub, inPty } from './cli-support.js';
import { demo, HUB_BIN } from './helpers.js';

t.test('progress of a cold start: events, status, dashboard card, CLI', async (t) => {
  const setup = await daemonSetup(t, '', `  slow: { backend: demo, cmd: "${demo('--load-time 3s')}" }\n  slow2: { backend: demo, cmd: "${demo('--load-time 3s')}" }\n`);
  const cfg = ['--config', setup.config];
  t.equal((await hub(['start', ...cfg])).code, 0, 'the hub is up');

  // The events stream, read while the CLI starts the model into a pipe.
  const events = await fetch(`${setup.origin}/hub/api/events`);
  const reader = events.body!.getReader();
  let stream = '';
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      stream += Buffer.from(value).toString('utf8');
    }
  })();
  let sawOnCard = false;
  let sawInStatus = false;
  const watching = (async () => {
    // Sampled until the model is up (the stream says so), with a deadline rather than for ever.
    const deadline = Date.now() + 60_000;
    while (!stream.includes('"to":"running"') && Date.now() < deadline) {
      const status = (await (await fetch(`${setup.origin}/hub/api/status`)).json()) as { models: Array<{ name: string; progress: { stage: string } | null }> };
      if (status.models.find((m) => m.name === 'slow')?.progress?.stage === 'Loading demo weights') sawInStatus = true;
      if (/class="load"[^>]*title="Loading demo weights \d+%/.test(await (await fetch(`${setup.origin}/hub`)).text())) sawOnCard = true;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const r = await hub(['start-model', 'slow', ...cfg]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^\[info\] slow: starting \(\d+\.\d s\)$/m, 'a line when the start begins');
  t.match(r.out, /^\[info\] slow: Loading demo weights \d+% \(\d+\.\d s\)$/m, "a line for the backend's own stage");
  t.equal(r.out.match(/slow: Loading demo weights/g)?.length, 1, 'into a pipe, one line per stage (not per report)');
  await watching;
  t.ok(sawInStatus, 'status showed the stage while the model started');
  t.ok(sawOnCard, 'the dashboard card showed the stage and the percentage');
  const reports = [...stream.matchAll(/event: progress\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]) as { model: string; stage: string; fraction: number | null; source: string });
  t.ok(reports.some((p) => p.model === 'slow' && p.stage === 'Loading demo weights' && p.source === 'backend' && p.fraction! >= 0.5), 'the stream carried the bar, past half way');
  await reader.cancel();
  await reading.catch(() => {});

  // On a terminal: a bar, redrawn in place.
  const pty = inPty(t, `${process.execPath} ${HUB_BIN} start-model slow2 --config ${setup.config}`);
  t.equal(await pty.exited, 0);
  t.match(pty.output(), /\[#*-*\] slow2: Loading demo weights \d+%/, 'a progress bar');
  t.match(pty.output(), /\[ok\] slow2 started in/);
  t.equal((await hub(['stop', ...cfg])).code, 0);
});
