// The hub as a daemon under stress, driven by the built CLI: `hub stop` of a hub whose backend
// ignores SIGTERM (gracefully, and through the SIGTERM/SIGKILL fallback), `kill -9` then `hub start`,
// starts that fail, `serve --watch`, admin keys, and the singular/plural of every count printed.
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import picocolors from 'picocolors';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { configPath } from '../lib/cli/locate.js';
import { describeTransition } from '../lib/cli/progress.js';
import { usualStartTimes } from '../lib/cli/start-history.js';
import { modelTable } from '../lib/cli/table.js';
import { findConfigPath } from '../lib/config/load.js';
import { stripVTControlCharacters as plain } from 'node:util';
import { HUB_BIN, demo, getJson, spawnHub, tempDir, waitFor } from './helpers.js';
import { alive, daemonSetup, hub, hubRunning, inPty, recordedPids, shThenDemo } from './cli-support.js';

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
    t.match(stop.err, `[warn] the hub (pid ${pid}) is still running: sending SIGKILL; 1 model had not stopped: stubborn`, 'names the model it waited for');
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
  const setup = await daemonSetup(t, 'auth: { admin_keys: ["${env.CLI_TEST_ADMIN}"] }', `  m: { backend: demo, cmd: "${demo()}", preload: true }\n`);
  const env = { CLI_TEST_ADMIN: 'sekrit-admin' };
  const started = await hub(['start', '--config', setup.config], { env });
  t.equal(started.code, 0, `a start without the key is still a start: the hub is up (${started.err})`);
  t.match(started.out, `[ok] modelhub is running at ${setup.origin}/v1 (pid `, 'the URL line');
  t.match(started.out, `[info] dashboard ${setup.origin}/hub`, 'the dashboard line');
  t.match(started.err, '[warn] could not follow the start of 1 preload model (m) without an admin key; the hub goes on starting it: see hub status --api-key KEY');
  t.notMatch(started.err, /\[err\]/, 'no error line');
  const none = await hub(['status', '--config', setup.config], { env });
  t.equal(none.code, 2);
  t.match(none.err, '[err] the hub at http://127.0.0.1:');
  t.match(none.err, 'wants an admin key: pass --api-key KEY or set HUB_ADMIN_KEY');
  t.equal((await hub(['status', '--config', setup.config, '--api-key', 'sekrit-admin'], { env })).code, 0, '--api-key');
  t.equal((await hub(['status', '--config', setup.config], { env: { ...env, HUB_API_KEY: 'sekrit-admin' } })).code, 0, 'HUB_API_KEY');
  t.equal((await hub(['stop', '--config', setup.config], { env: { ...env, HUB_API_KEY: 'sekrit-admin' } })).code, 0, 'stop with the key');
  const keyed = await hub(['start', '--config', setup.config, '--api-key', 'sekrit-admin'], { env });
  t.equal(keyed.code, 0, keyed.err);
  t.match(keyed.out, /\[ok\] m is ready/, 'hub start --api-key follows the preload models');
  t.equal((await hub(['stop', '--config', setup.config, '--api-key', 'sekrit-admin'], { env })).code, 0, 'stop --api-key');
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

t.test('escape sequences a backend prints reach the terminal as visible text, the CLI\'s colours stay', async (t) => {
  // OSC 0 (window title), CSI 2J (clear screen), OSC 52 (clipboard write), then C1 CSI (U+009B) + H.
  const esc = "printf '\\033]0;PWNED\\007\\033[2J\\033]52;c;UFdORUQ=\\007\\302\\233H evil-line\\n';";
  const setup = await daemonSetup(t, '', `  evil: { backend: demo, cmd: ${shThenDemo(esc)}, preload: true }\n  evilfail: { backend: demo, cmd: ${shThenDemo(esc, ['--fail-start', '7'])} }\n`);
  const cfg = ['--config', setup.config];
  const shown = '\u241b]0;PWNED\u2407\u241b[2J\u241b]52;c;UFdORUQ=\u2407\\x9bH evil-line';
  const control = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
  t.equal((await hub(['start', ...cfg])).code, 0);

  const logs = await hub(['logs', 'evil', ...cfg]);
  t.equal(logs.code, 0, logs.err);
  t.match(logs.out, shown, 'hub logs: every control character as text');
  t.notMatch(logs.out, control, 'hub logs: none raw');
  const follow = hubRunning(t, ['logs', 'evil', '-f', '-n', '5', ...cfg]);
  await waitFor('the follower to print the line', () => follow.output().includes('evil-line'));
  t.match(follow.output(), shown, 'hub logs -f: as text');
  t.notMatch(follow.output(), control, 'hub logs -f: none raw');
  follow.child.kill('SIGINT');
  await follow.exited;

  const failed = await hub(['start-model', 'evilfail', ...cfg]);
  t.equal(failed.code, 1);
  t.match(failed.err, /\[err\] evilfail: .*exit code 7/);
  t.match(failed.err, shown, 'the error line quotes the backend\'s log as text');
  t.notMatch(failed.out + failed.err, control, 'progress and error lines: none raw');

  const status = inPty(t, `${process.execPath} ${HUB_BIN} status ${cfg.join(' ')}`);
  t.equal(await status.exited, 0);
  t.match(status.output(), /\x1b\[32mrunning/, 'the CLI\'s own colours still reach the terminal');
  t.notMatch(status.output(), /\x1b\]|\x1b\[2J/, 'no OSC or clear-screen from the backend');

  // The table and the progress lines, on text as a hub could send it, colour on.
  const json = JSON.parse((await hub(['status', 'evilfail', '--json', ...cfg])).out);
  const table = modelTable([{ ...json.models[0], last_error: 'boom \x1b]0;PWNED\x07\x1b[2J' }], picocolors.createColors(true));
  t.match(table, 'boom \u241b]0;PWNED\u2407\u241b[2J', 'last error column: as text');
  t.match(table, '\x1b[31m', 'in the CLI\'s red');
  t.notMatch(table, /\x1b\]|\x1b\[2J/);
  t.equal(describeTransition({ model: 'm', axis: 'process', from: 'running', to: 'failed', reason: 'crash \x1b[2J', at: '' } as never), 'm process running → failed (crash \u241b[2J)');
});

t.test('hub start\'s usual start time survives a rotation of hub.log (plain or gzipped)', async (t) => {
  const dir = tempDir(t);
  const record = (to: string, from: string, at: number) => JSON.stringify({ model: 'm', axis: 'process', from, to, at: new Date(at).toISOString() });
  const start = (at: number, ms: number) => `${record('starting', 'stopped', at)}\n${record('running', 'starting', at + ms)}\n`;
  const log = join(dir, 'hub.log');
  writeFileSync(`${log}.1.gz`, gzipSync(start(0, 1200) + start(10_000, 1400)));
  writeFileSync(log, '');
  t.same([...usualStartTimes(log)], [['m', 1400]], 'from hub.log.1.gz when hub.log has none');
  writeFileSync(`${log}.1`, start(0, 2000));
  writeFileSync(log, start(10_000, 3000) + start(20_000, 5000));
  t.same([...usualStartTimes(log)], [['m', 3000]], 'hub.log.1, then hub.log: the median of all three');
  writeFileSync(join(dir, 'other.log.1.gz'), 'not gzip');
  t.same([...usualStartTimes(join(dir, 'other.log'))], [], 'a rotated file that does not gunzip gives no history, no error');
});
