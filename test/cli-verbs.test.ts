// The `hub` CLI against a real daemon it started itself (`hub start`), with demo backends, a temp
// config and state_dir: no hub yet (exit 3), `hub start` (detached, its preload model up), `hub
// status` (table, --json, --usage, found by the runtime file, --url or HUB_URL) and the model verbs
// (progress from the event stream, each outcome). Logs, reload, watch and stop are in cli.test.ts.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { getJson, waitFor } from './helpers.js';
import { alive, flowDaemon, hub } from './cli-support.js';

t.test('a daemon: hub start, hub status and the model verbs', async (t) => {
  const setup = await flowDaemon(t);
  const cfg = ['--config', setup.config];

  t.test('no hub yet: status exits 3 and says how to start one', async (t) => {
    const r = await hub(['status', ...cfg]);
    t.equal(r.code, 3);
    t.match(r.err, /\[err\] no hub is running at http:\/\/127\.0\.0\.1:\d+ .*start one with `hub start`/);
    const stopped = await hub(['stop', ...cfg]);
    t.equal(stopped.code, 3, 'stop with no hub exits 3');
  });

  let pid = 0;
  t.test('hub start: detached, healthy, the preload model up; a second start says it runs', async (t) => {
    const r = await hub(['start', ...cfg]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /\[ok\] small is ready/, 'waits for the preload model');
    const m = /\[ok\] modelhub is running at (http:\/\/127\.0\.0\.1:\d+)\/v1 \(pid (\d+)\)/.exec(r.out);
    t.ok(m, 'prints the base URL and pid');
    pid = Number(m?.[2]);
    t.match(r.out, `dashboard ${setup.origin}/hub`);
    t.match(r.out, join(setup.stateDir, 'logs', 'hub.out'), 'says where its output goes');
    t.ok(alive(pid), 'the daemon runs after `hub start` has exited');
    t.equal((await getJson(`${setup.origin}/health`)).status, 200);
    const session = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[3];
    t.equal(Number(session), pid, 'it leads its own session');
    t.match(readFileSync(join(setup.stateDir, 'logs', 'hub.out'), 'utf8'), /\[ok\] modelhub .* is serving 4 models/);

    const again = await hub(['start', ...cfg]);
    t.equal(again.code, 0);
    t.match(again.out, `[ok] already running at ${setup.origin}/v1 (pid ${pid})`);
    const json = JSON.parse((await hub(['start', ...cfg, '--json'])).out);
    t.same(json, { already_running: true, pid, url: `${setup.origin}/v1`, dashboard: `${setup.origin}/hub` });
  });

  t.test('hub status: table, names, --json, --usage; found by the runtime file, --url or HUB_URL', async (t) => {
    const r = await hub(['status', ...cfg]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /^\[info\] modelhub \S+ at http:\/\/127\.0\.0\.1:\d+\/v1 · up \S+ · 4 models: 1 running, 3 stopped/m);
    t.match(r.out, /^MODEL +PROCESS +MEMORY +PID +PORT +GROUP +IN-FLIGHT\/QUEUED +IDLE IN +LAST ERROR$/m);
    t.match(r.out, /^small +running +loaded +\d+ +\d+ +g +0\/0 +\d+m/m, 'one aligned row per model');
    t.match(r.out, /^big +stopped +unloaded +- +\d+ +g +0\/0 +-$/m);
    t.match(r.out, '[info] group g: 1 of 1 model loaded (on_full: evict)', 'group usage with a singular');
    t.notMatch(r.out, /\x1b\[/, 'no colour codes when stdout is not a terminal');
    const header = r.out.split('\n').find((l) => l.startsWith('MODEL'))!;
    const col = header.indexOf('PID');
    for (const row of r.out.split('\n').filter((l) => /^(small|big|broken|chatter) /.test(l))) t.not(row[col - 1], undefined, 'rows are as wide as the header');

    const json = JSON.parse((await hub(['status', ...cfg, '--json'])).out);
    t.match(json, { hub: { version: String, url: `${setup.origin}/v1` }, models: Array, groups: Array });
    t.same(json.models.map((m: { name: string }) => m.name), ['small', 'big', 'broken', 'chatter']);
    t.match(json.models[0], { name: 'small', process: 'running', memory: 'loaded', pid: Number, port: Number, group: 'g', in_flight: 0, queued: 0 });
    const one = JSON.parse((await hub(['status', 'big', ...cfg, '--json'])).out);
    t.same(one.models.map((m: { name: string }) => m.name), ['big'], 'names pick models');

    const nope = await hub(['status', 'nope', ...cfg]);
    t.equal(nope.code, 1, 'an unknown name fails');
    t.match(nope.err, '[err] no model named nope; the hub has 4 models: small, big, broken, chatter');

    await fetch(`${setup.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'hi' }] }) }).then((res) => res.text());
    const usage = await hub(['status', ...cfg, '--usage']);
    t.match(usage.out, /^MODEL +REQUESTS +ERRORS +TOKENS IN +TOKENS OUT +COLD STARTS +AVG COLD START +WAITED FOR A START$/m);
    t.match(usage.out, /^small +1 +0 /m);
    const usageJson = JSON.parse((await hub(['status', 'small', ...cfg, '--usage', '--json'])).out);
    t.match(usageJson, { since: String, models: [{ model: 'small', requests: 1, errors: 0, cold_starts: Number }] });

    const byUrl = await hub(['status', '--url', `${setup.origin}/v1`, '--config', join(setup.dir, 'missing.yaml')]);
    t.equal(byUrl.code, 0, '--url (a base URL as pasted into clients) finds it without a config');
    const byEnv = await hub(['status', '--json'], { env: { HUB_URL: setup.origin }, cwd: setup.stateDir });
    t.equal(byEnv.code, 0, 'HUB_URL finds it');
    const wrong = await hub(['status', '--url', 'http://127.0.0.1:1']);
    t.equal(wrong.code, 3, 'a --url where nothing answers: exit 3');
  });

  t.test('model verbs: progress from the event stream, each outcome, go on after a failure', async (t) => {
    const together = await hub(['load-model', 'big', 'small', ...cfg]);
    t.equal(together.code, 1, 'two models of a max_loaded 1 group cannot be loaded together: exit 1');
    t.match(together.err, /^\[err\] models big, small cannot all be loaded at once: group g holds at most 1 \(max_loaded\)/m, 'refused at once, saying why');
    t.notMatch(together.out, /big process stopped → starting/, 'nothing was started');
    const r = await hub(['start-model', 'big', 'broken', 'small', ...cfg]);
    t.equal(r.code, 1, 'one failure: exit 1');
    t.match(r.out, /^\[info\] small memory loaded → unloading \(evicted for big: idle [\d.]+s, reload ~[\d.]+s\)$/m, 'shows the eviction with its reason');
    t.match(r.out, /^\[info\] big process stopped → starting \(operator\)$/m);
    t.match(r.out, /^\[ok\] big started in \S+ \(process running, memory loaded\)$/m);
    t.match(r.err, /^\[err\] broken: .*exit(ed)? .*7/m, 'the failure, with the exit code');
    t.match(r.out, /^\[ok\] small started in /m, 'the name after the failure is still tried');
    t.match(r.err, '[err] 1 of 3 models failed: broken');
    t.ok(r.out.indexOf('big process stopped → starting') < r.out.indexOf('[ok] big started'), 'progress comes before the outcome');

    const unknown = await hub(['start-model', 'nope', ...cfg]);
    t.equal(unknown.code, 1);
    t.match(unknown.err, /\[err\] nope: .*no model named "nope".*small, big, broken, chatter/, 'an unknown model: exit 1 with the list of models');

    const json = await hub(['unload-model', 'small', ...cfg, '--json']);
    t.equal(json.code, 0);
    t.match(JSON.parse(json.out), [{ model: 'small', action: 'unload', ok: true, process: 'running', memory: 'unloaded', ms: Number }]);
    const noWait = await hub(['stop-model', 'small', ...cfg, '--no-wait']);
    t.equal(noWait.code, 0);
    t.match(noWait.out, '[ok] small: stop accepted');
    await waitFor('small to stop', async () => (await getJson(`${setup.origin}/hub/api/status`)).body.models[0].process === 'stopped');
    const again = await hub(['stop-model', 'small', 'big', ...cfg]);
    t.equal(again.code, 0, 'stopping a stopped model is fine (idempotent)');
  });
});
