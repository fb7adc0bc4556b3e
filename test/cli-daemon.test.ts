// The hub as a daemon under stress, driven by the built CLI: `hub stop` of a hub whose backend
// ignores SIGTERM (gracefully, and through the SIGTERM/SIGKILL fallback), `kill -9` then `hub start`,
// starts that fail, `serve --watch`, admin keys, and the singular/plural of every count printed.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { configPath } from '../lib/cli/locate.js';
import { findConfigPath } from '../lib/config/load.js';
import { stripVTControlCharacters as plain } from 'node:util';
import { HUB_BIN, demo, getJson, spawnHub, tempDir, waitFor } from './helpers.js';
import { alive, daemonSetup, hub, inPty, recordedPids } from './cli-support.js';

const started = (r: { out: string }) => Number(/\(pid (\d+)\)/.exec(r.out)?.[1]);

t.test('hub stop of a hub whose backend ignores SIGTERM leaves no process behind', async (t) => {
  t.test('gracefully: the hub escalates to SIGKILL after stop_timeout', async (t) => {
    const setup = await daemonSetup(t, '', `  stubborn: { backend: demo, cmd: "${demo('--ignore-sigterm')}", stop_timeout: 1s, preload: true }\n`);
    const r = await hub(['start', '--config', setup.config]);
    t.equal(r.code, 0, r.err);
    const pid = started(r);
    const [backend] = recordedPids(setup.stateDir);
    t.ok(alive(backend), 'the backend runs');
    const stop = await hub(['stop', '--config', setup.config]);
    t.equal(stop.code, 0, stop.err);
    t.match(stop.out, '[info] shutting down the hub at');
    t.match(stop.out, 'waiting for 1 model to stop (stubborn)', 'singular');
    t.match(stop.out, `[ok] stopped (pid ${pid}`);
    t.notOk(alive(pid), 'the hub is gone');
    t.notOk(alive(backend), 'the backend that ignored SIGTERM is gone');
  });

  t.test('past --timeout: SIGTERM, which stops the models at once', async (t) => {
    const setup = await daemonSetup(t, '', `  stubborn: { backend: demo, cmd: "${demo('--ignore-sigterm')}", stop_timeout: 20s, preload: true }\n`);
    const r = await hub(['start', '--config', setup.config]);
    t.equal(r.code, 0, r.err);
    const pid = started(r);
    const [backend] = recordedPids(setup.stateDir);
    const began = Date.now();
    const stop = await hub(['stop', '--config', setup.config, '--timeout', '300ms']);
    t.equal(stop.code, 0, stop.err);
    t.match(stop.err, `[warn] the hub (pid ${pid}) has not exited after 300ms: sending SIGTERM`);
    t.notMatch(stop.err, 'SIGKILL', 'the SIGTERM was enough');
    t.match(stop.out, `[ok] stopped after SIGTERM (pid ${pid})`);
    t.ok(Date.now() - began < 15_000, 'without waiting out the 20s stop_timeout');
    t.match(readFileSync(join(setup.stateDir, 'logs', 'hub.out'), 'utf8'), 'SIGTERM again: stopping every model now (SIGKILL) and exiting', 'the hub took the SIGTERM after the API shutdown as the second request to stop');
    t.notOk(alive(pid));
    t.notOk(alive(backend), 'no stray backend');
  });

  t.test('a hub that ignores SIGTERM too: SIGKILL, then the recorded backends are stopped', async (t) => {
    const setup = await daemonSetup(t, '', `  stubborn: { backend: demo, cmd: "${demo('--ignore-sigterm')}", stop_timeout: 2s, preload: true }\n`);
    // Node's own --require, not a hook in the product: the hub drops its SIGTERM handlers (a wedged hub).
    const deaf = join(setup.dir, 'deaf-to-sigterm.cjs');
    writeFileSync(deaf, "if (process.argv.includes('serve')) { const on = process.on.bind(process); process.on = (e, f) => (e === 'SIGTERM' ? process : on(e, f)); on('SIGTERM', () => {}); }\n");
    const r = await hub(['start', '--config', setup.config], { env: { NODE_OPTIONS: `--require ${deaf}` } });
    t.equal(r.code, 0, r.err);
    const pid = started(r);
    const [backend] = recordedPids(setup.stateDir);
    const stop = await hub(['stop', '--config', setup.config, '--timeout', '300ms']);
    t.equal(stop.code, 0, stop.err);
    t.match(stop.err, `[warn] the hub (pid ${pid}) has not exited after 300ms: sending SIGTERM`);
    t.match(stop.err, `[warn] the hub (pid ${pid}) is still running: sending SIGKILL`);
    t.match(stop.err, /\[warn\] model stubborn \(pid \d+\) was still running, left over by an earlier hub .*stopped it \(SIGKILL after 2s\)/, 'says it stopped the backend');
    t.match(stop.out, `[ok] stopped with SIGKILL (pid ${pid}); its backends were stopped too`);
    t.notOk(alive(pid));
    t.notOk(alive(backend), 'no stray backend');
    t.same(recordedPids(setup.stateDir), [], 'no record is left in state_dir');
  });

  t.test('--timeout must be a duration', async (t) => {
    const r = await hub(['stop', '--url', 'http://127.0.0.1:1', '--timeout', 'soon']);
    t.equal(r.code, 2);
    t.match(r.err, '[err] --timeout: expected a duration like "30s" or "2m", got "soon"');
  });
});

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

t.test('admin keys: refused without one (exit 2), accepted from --api-key and HUB_API_KEY', async (t) => {
  const setup = await daemonSetup(t, 'auth: { admin_keys: ["${env.CLI_TEST_ADMIN}"] }', `  m: { backend: demo, cmd: "${demo()}" }\n`);
  const env = { CLI_TEST_ADMIN: 'sekrit-admin' };
  const started = await hub(['start', '--config', setup.config], { env });
  t.equal(started.code, 0, started.err);
  const none = await hub(['status', '--config', setup.config], { env });
  t.equal(none.code, 2);
  t.match(none.err, '[err] the hub at http://127.0.0.1:');
  t.match(none.err, 'wants an admin key: pass --api-key KEY or set HUB_API_KEY');
  t.equal((await hub(['status', '--config', setup.config, '--api-key', 'sekrit-admin'], { env })).code, 0, '--api-key');
  t.equal((await hub(['status', '--config', setup.config], { env: { ...env, HUB_API_KEY: 'sekrit-admin' } })).code, 0, 'HUB_API_KEY');
  t.equal((await hub(['stop', '--config', setup.config], { env: { ...env, HUB_API_KEY: 'sekrit-admin' } })).code, 0, 'stop with the key');
});

t.test('the CLI looks for the config where hub serve does', async (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a.yaml');
  const here = join(dir, 'hub.yaml');
  writeFileSync(a, 'models: {}\n');
  for (const [explicit, env, cwd] of [[a, {}, dir], [undefined, { HUB_CONFIG: a }, dir], [undefined, {}, dir]] as const) {
    if (!explicit && !env.HUB_CONFIG) writeFileSync(here, 'models: {}\n');
    t.equal(configPath(explicit, env, cwd), findConfigPath(explicit, env, cwd));
  }
  t.equal(configPath(join(dir, 'none.yaml')), undefined, 'none found');
  t.throws(() => findConfigPath(join(dir, 'none.yaml')));
});
