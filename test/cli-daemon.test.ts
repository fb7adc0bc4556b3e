// The hub as a daemon, driven by the built CLI: admin keys, where the CLI looks for the config,
// escape sequences from a backend's output, and the usual start time across log rotations.
// (`hub stop` under stress is in cli-stop.test.ts; kill -9, failed starts and --watch in cli-recovery.test.ts.)
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import picocolors from 'picocolors';
import { join } from 'node:path';
import t from 'tap';
import { configPath } from '../lib/cli/locate.js';
import { describeTransition } from '../lib/cli/progress.js';
import { usualStartTimes } from '../lib/cli/start-history.js';
import { modelTable } from '../lib/cli/table.js';
import { findConfigPath } from '../lib/config/load.js';
import { HUB_BIN, demo, tempDir, waitFor } from './helpers.js';
import { daemonSetup, hub, hubRunning, inPty, shThenDemo } from './cli-support.js';

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
