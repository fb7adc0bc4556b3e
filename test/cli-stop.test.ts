// `hub stop` of a daemon whose backend ignores SIGTERM, driven by the built CLI: gracefully (the hub
// escalates to SIGKILL after stop_timeout), past --timeout (SIGTERM), and a hub that ignores SIGTERM
// too (SIGKILL, then the recorded backends are stopped). Each leaves no process behind.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { demo } from './helpers.js';
import { alive, daemonSetup, hub, recordedPids, startedPid as started } from './cli-support.js';

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
