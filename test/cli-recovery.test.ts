// The daemon recovering and failing, driven by the built CLI: `kill -9` of the hub then `hub status`
// and `hub start` (the leftover backend is stopped), starts that fail (exit 1 or 2 with the hub's own
// error lines), and `serve --watch` reloading on edits, with the singular/plural of counts printed.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stripVTControlCharacters as plain } from 'node:util';
import t from 'tap';
import { HUB_BIN, demo, getJson, spawnHub, waitFor } from './helpers.js';
import { alive, daemonSetup, hub, inPty, recordedPids, startedPid as started } from './cli-support.js';

t.test('kill -9 of the daemon, then hub status and hub start', async (t) => {
  const setup = await daemonSetup(t, '', `  warm: { backend: demo, cmd: "${demo('--load-time 800ms')}", preload: true }\n`);
  const first = await hub(['start', '--config', setup.config]);
  t.equal(first.code, 0, first.err);
  const pid = started(first);
  const [backend] = recordedPids(setup.stateDir);
  process.kill(pid, 'SIGKILL');
  await waitFor('the hub to die', () => !alive(pid));
  t.ok(alive(backend), 'its backend is left running');

  const status = await hub(['status', '--config', setup.config]);
  t.equal(status.code, 3, 'a stale runtime file means not running');
  t.match(status.err, `the runtime file in ${setup.stateDir} names hub pid ${pid}, which is gone`);

  // On a terminal, with the progress line: the start time the hub's log recorded last time.
  const second = inPty(t, `${process.execPath} ${HUB_BIN} start --config ${setup.config}`);
  t.equal(await second.exited, 0, second.output());
  const out = plain(second.output());
  t.match(out, /\[info\] starting warm … \S+ \(usually \d+(ms|s)\)/, 'progress: which model, elapsed, its usual start time');
  t.match(out, /\[ok\] warm is ready/);
  t.match(out, new RegExp(`\\[warn\\] model warm \\(pid ${backend}\\) was still running, left over by an earlier hub \\(pid ${pid}\\) .*stopped it`), 'start shows that the leftover was stopped');
  t.notOk(alive(backend), 'the leftover is gone');
  t.equal((await hub(['stop', '--config', setup.config])).code, 0);
});

t.test('hub start that fails: the hub\'s own error lines, exit 1 or 2', async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const setup = await daemonSetup(t, '', `  m: { backend: demo, cmd: "${demo()}" }\n`);
  writeFileSync(setup.config, readFileSync(setup.config, 'utf8').replace(`port: ${setup.port}`, `port: ${(taken.address() as { port: number }).port}`));
  const r = await hub(['start', '--config', setup.config]);
  t.equal(r.code, 1);
  t.match(r.err, /\[err\] cannot listen on 127\.0\.0\.1:\d+: the address is in use/, 'the hub\'s error');
  t.match(r.err, /\[err\] the hub exited before it was up \(exit code 1\); its output is in .*hub\.out/);

  writeFileSync(setup.config, 'models:\n  m: { backend: nope, url: "http://127.0.0.1:1" }\n');
  const invalid = await hub(['start', '--config', setup.config]);
  t.equal(invalid.code, 2, 'a config with errors: exit 2');
  t.match(invalid.err, /\[err\] .*backend/);
  t.match(invalid.out, '[info] 1 problem; fix it and run hub check again', 'singular');
  const bad = await hub(['start', '--config', join(setup.dir, 'absent.yaml')]);
  t.equal(bad.code, 2, 'no config file: exit 2');
});

t.test('hub serve --watch reloads when hub.yaml changes; plurals', async (t) => {
  const setup = await daemonSetup(t, '', `  one: { backend: demo, cmd: "${demo()}" }\n`);
  const check = await hub(['check', '--config', setup.config]);
  t.match(check.out, 'is valid: 1 model (1 managed, 0 remote), 0 groups');
  const served = spawnHub(t, ['serve', '--watch', '--config', setup.config]);
  await waitFor('the URL line', () => /\[ok\] modelhub \S+ is serving 1 model at/.test(served.output()));
  const status = await hub(['status', '--config', setup.config]);
  t.match(status.out, '· 1 model: 1 stopped ·', 'singular in the status header');
  setup.write(`  one: { backend: demo, cmd: "${demo()}" }\n  two: { backend: demo, cmd: "${demo()}" }\n`);
  await waitFor('the reload line', () => /config reloaded \(added: two\)/.test(served.output()));
  t.same((await getJson(`${setup.origin}/hub/api/status`)).body.models.map((m: { name: string }) => m.name), ['one', 'two'], 'the running hub has the new model');
  setup.write('models: [broken\n');
  await waitFor('the error line', () => /the config has errors; keeping the running config/.test(served.output()));
  t.equal((await getJson(`${setup.origin}/health`)).status, 200, 'a bad edit does not stop the hub');
});
