// A daemon started the way the README and docs/cli.md show: --port on `hub start` (and the other
// verbs finding that hub), $HUB_ADMIN_KEY beside $HUB_API_KEY, `hub watch` leaving no info line per
// refresh in hub.log, `hub logs --hub`. (A model named hub and `hub status` at 80 columns:
// cli-narrow.test.ts; the CLI's checks that need no hub: cli-edges.test.ts.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { daemonSetup, hub, inPty } from './cli-support.js';
import { HUB_BIN, demo, freePort, tempDir, waitFor } from './helpers.js';

t.test('a hub started with --port and both key kinds: found, keyed, watched, its log read', async (t) => {
  const setup = await daemonSetup(
    t,
    'log: { level: debug }\nauth: { api_keys: ["${env.T_USER_KEY}"], admin_keys: ["${env.T_ADMIN_KEY}"] }',
    `  m: { backend: demo, cmd: "${demo()}" }\n`,
  );
  const keys = { T_USER_KEY: 'user-key', T_ADMIN_KEY: 'admin-key' };
  const readme = { ...keys, HUB_API_KEY: 'user-key', HUB_ADMIN_KEY: 'admin-key' }; // as the README's shell exports them
  const port = await freePort();
  const cfg = ['--config', setup.config];
  const origin = `http://127.0.0.1:${port}`;

  const started = await hub(['start', ...cfg, '--port', String(port), '--host', '127.0.0.1'], { env: readme });
  t.equal(started.code, 0, started.err);
  t.match(started.out, `[ok] modelhub is running at ${origin}/v1`, '--port wins over listen.port');
  t.not(port, setup.port);

  const found = await hub(['status', ...cfg, '--json'], { env: readme });
  t.equal(found.code, 0, `status finds it through the runtime file in the custom state_dir, and sends HUB_ADMIN_KEY (${found.err})`);
  t.equal(JSON.parse(found.out).models[0].name, 'm');
  const userOnly = await hub(['status', ...cfg], { env: { ...keys, HUB_API_KEY: 'user-key' } });
  t.equal(userOnly.code, 2, 'HUB_API_KEY alone is the fallback: here a user key, which the control API refuses');
  t.match(userOnly.err, 'wants an admin key: pass --api-key KEY or set HUB_ADMIN_KEY');
  const elsewhere = tempDir(t);
  t.equal((await hub(['status'], { env: { ...readme, HUB_URL: `${origin}/v1` }, cwd: elsewhere })).code, 0, '$HUB_URL, with no config around');
  t.equal((await hub(['status', '--url', origin], { env: readme, cwd: elsewhere })).code, 0, '--url');

  // hub watch refreshes several times: each read is in hub.log at debug, none at info.
  const hubLog = join(setup.stateDir, 'logs', 'hub.log');
  const records = () => readFileSync(hubLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; path?: string; method?: string; status?: number; level: number });
  const statusReads = () => records().filter((r) => r.msg === 'request' && r.method === 'GET' && r.path === '/hub/api/status' && r.status === 200);
  const before = statusReads().length;
  const watch = inPty(t, `${process.execPath} ${HUB_BIN} watch --interval 200ms ${cfg.join(' ')}`, readme);
  await waitFor('a few refreshes in hub.log', () => statusReads().length >= before + 4 || undefined, 20_000);
  watch.write('\x03');
  t.equal(await watch.exited, 0);
  const reloaded = await hub(['reload', ...cfg], { env: readme });
  t.equal(reloaded.code, 0, reloaded.err);
  await waitFor('the reload request in hub.log', () => records().some((r) => r.msg === 'request' && r.path === '/hub/api/reload'));
  const reads = records().filter((r) => r.msg === 'request' && r.method === 'GET' && r.path?.startsWith('/hub/api/') && r.status! < 400);
  t.ok(reads.length >= 4 && reads.every((r) => r.level === 20), `the status reads and the event stream are debug lines (${reads.length}), not info`);
  t.ok(records().some((r) => r.msg === 'request' && r.path === '/hub/api/status' && r.status === 401 && r.level === 30), 'a refused read still is info');
  t.ok(records().some((r) => r.msg === 'request' && r.path === '/hub/api/reload' && r.level === 30), 'and so is a POST');
  t.notOk(records().some((r) => /listen changed/.test(r.msg)), 'a reload does not take --port for a change of listen');

  const hubLogs = await hub(['logs', '--hub', '-n', '50', ...cfg], { env: readme });
  t.equal(hubLogs.code, 0, hubLogs.err);
  t.match(hubLogs.out, /^\d\d:\d\d:\d\d INFO config reloaded/m, 'hub logs --hub: the hub\'s records, as lines for people');
  t.match(hubLogs.out, /INFO POST \/hub\/api\/reload -> 200/);
  t.notMatch(hubLogs.out, '"msg"', 'not the JSON');
  const byName = await hub(['logs', 'hub', '-n', '50', ...cfg], { env: readme });
  t.match(byName.out, /INFO config reloaded/, 'hub logs hub: the same, while no model is named hub');

  const stopped = await hub(['stop', ...cfg], { env: readme });
  t.equal(stopped.code, 0, `hub stop with the README's two variables (${stopped.err})`);
});
