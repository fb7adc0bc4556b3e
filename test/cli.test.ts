// The `hub` CLI as a user runs it: the built bin/hub.js as a subprocess against a real daemon it
// started itself (`hub start`), with demo backends, a temp config, state_dir and log.dir: `logs -f`
// across a rotation, `reload` and its diff, `watch` in a real pseudo-terminal until Ctrl-C, and `stop`
// leaving no process behind. (Start, status and the model verbs are in cli-verbs.test.ts; the
// command list and --help in cli-help.test.ts.)
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters as plain } from 'node:util';
import t from 'tap';
import { HUB_BIN, demo, getJson, postJson, waitFor } from './helpers.js';
import { alive, flowDaemon, hub, hubRunning, inPty, recordedPids, startedPid } from './cli-support.js';

t.test('a daemon, from its logs to hub stop', async (t) => {
  const setup = await flowDaemon(t);
  const cfg = ['--config', setup.config];
  const started = await hub(['start', ...cfg]);
  t.equal(started.code, 0, started.err);
  const pid = startedPid(started);
  // big has run and stopped (it has a log to tail, and the reload below finds it stopped), as after
  // the model verbs of cli-verbs.test.ts.
  const model = async (name: string) => (await getJson(`${setup.origin}/hub/api/status`)).body.models.find((m: { name: string }) => m.name === name);
  t.ok((await postJson(`${setup.origin}/hub/api/models/big/start`, {})).status < 300, 'big starts');
  await waitFor('big to run', async () => (await model('big')).process === 'running', 20_000);
  t.ok((await postJson(`${setup.origin}/hub/api/models/big/stop`, {})).status < 300, 'big stops');
  await waitFor('big to stop', async () => (await model('big')).process === 'stopped', 20_000);

  t.test('hub logs: the tail, unknown models, -f across a rotation', async (t) => {
    const tail = await hub(['logs', 'big', '-n', '2', ...cfg]);
    t.equal(tail.code, 0);
    t.equal(tail.out.trimEnd().split('\n').length, 2, '-n 2 prints two lines');
    const unknown = await hub(['logs', 'nope', ...cfg]);
    t.equal(unknown.code, 1);
    t.match(unknown.err, /no model named "nope".*small, big/);
    const bad = await hub(['logs', 'big', '-n', '-3', ...cfg]);
    t.equal(bad.code, 2, 'a negative -n is a usage error');

    t.equal((await hub(['start-model', 'chatter', ...cfg])).code, 0);
    const follow = hubRunning(t, ['logs', 'chatter', '-f', '-n', '1', ...cfg]);
    await waitFor('the follower to print the tail', () => /ready on port/.test(follow.output()));
    writeFileSync(join(setup.dir, 'GO'), '');
    await waitFor('the last chatter line', () => follow.output().includes('chatter-done'), 20_000);
    const rotated = readdirSync(join(setup.stateDir, 'logs')).filter((f) => /^chatter\.log\.\d+$/.test(f));
    t.ok(rotated.length > 0, `the log rotated while followed (${rotated.join(', ')})`);
    const lines = follow.output().match(/chatter-line-\d+/g) ?? [];
    t.equal(lines.length, 200, 'the follower printed every line, across the rotations');
    t.match(follow.output(), /--- modelhub: chatter\.log was rotated/, 'and says so');
    follow.child.kill('SIGINT');
    t.equal(await follow.exited, 0, 'Ctrl-C ends the follow with exit 0');
  });

  t.test('hub reload: the diff, what a launch change did, and a broken config (exit 2, the hub keeps its config)', async (t) => {
    const text = readFileSync(setup.config, 'utf8');
    writeFileSync(setup.config, text.replace('--load-time 100ms", group: g }', '--load-time 100ms --max-tokens 4", group: g }') + `  extra: { backend: demo, cmd: "${demo()}" }\n`);
    const r = await hub(['reload', ...cfg]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, '[ok] config reloaded: 2 models changed, 3 unchanged');
    t.match(r.out, '[info] added: extra');
    // big was running and idle: the reload stopped it, and the next request starts it with the new cmd.
    t.match(r.out, '[info] restarted: big (launch settings changed: stopped; the next request starts it with them)');
    const json = JSON.parse((await hub(['reload', ...cfg, '--json'])).out);
    t.same(Object.keys(json).sort(), ['added', 'removed', 'restarted', 'unchanged', 'updated']);

    writeFileSync(setup.config, `${readFileSync(setup.config, 'utf8')}  bad: { backend: nope }\n  Worse: { url: 1 }\n`);
    const broken = await hub(['reload', ...cfg]);
    t.equal(broken.code, 2, 'a config with errors: exit 2');
    t.match(broken.err, /\[err\] .*bad/);
    t.match(broken.err, /\[err\] .*Worse/, 'every error is printed');
    t.match(broken.out, /\[info\] \d+ problems; the hub keeps running the config it had/);
    const status = JSON.parse((await hub(['status', '--json', ...cfg])).out);
    t.ok(status.models.some((m: { name: string }) => m.name === 'extra'), 'the running config stays (found through the runtime file despite the broken file)');
    writeFileSync(setup.config, text);
  });

  t.test('hub watch in a pseudo-terminal: redraws from events, says when the stream drops, Ctrl-C restores the cursor', async (t) => {
    const watch = inPty(t, `${process.execPath} ${HUB_BIN} watch --config ${setup.config} --interval 200ms`);
    await waitFor('the first frame', () => /MODEL +PROCESS/.test(plain(watch.output())) && /live from the event stream/.test(watch.output()));
    t.match(plain(watch.output()), `at ${setup.origin}/v1 · 5 models`, 'a header with the URL and counts');
    t.match(watch.output(), /\x1b\[32mrunning|\x1b\[2mstopped/, 'states in colour on a terminal');
    t.equal((await hub(['start-model', 'extra', ...cfg])).code, 0);
    await waitFor('the transition in the live view', () => /extra process starting → running/.test(plain(watch.output())));
    t.match(watch.output(), /\x1b\[\d+A/, 'redrawn in place (cursor moved up), not appended');

    const nocolor = inPty(t, `${process.execPath} ${HUB_BIN} watch --config ${setup.config} --no-color`);
    await waitFor('a frame without colour', () => /MODEL +PROCESS/.test(nocolor.output()));
    t.notMatch(nocolor.output(), /\x1b\[3\dm/, '--no-color: no colour codes');
    nocolor.write('\x03');
    t.equal(await nocolor.exited, 0);
    const status = inPty(t, `${process.execPath} ${HUB_BIN} status --config ${setup.config}`);
    const statusNoColor = inPty(t, `${process.execPath} ${HUB_BIN} status --config ${setup.config}`, { NO_COLOR: '1' });
    t.same([await status.exited, await statusNoColor.exited], [0, 0]);
    t.match(status.output(), /\x1b\[32mrunning/, 'hub status on a terminal: colour');
    t.notMatch(statusNoColor.output(), /\x1b\[3\dm/, 'NO_COLOR: none');
    t.match(statusNoColor.output(), /extra +running/, 'the text says it without colour');

    watch.write('\x03');
    t.equal(await watch.exited, 0, 'Ctrl-C exits 0');
    const out = watch.output();
    t.ok(out.lastIndexOf('\x1b[?25h') > out.lastIndexOf('\x1b[?25l'), 'the cursor is shown again at the end');
  });

  t.test('hub stop: waits for the models to stop and the process to go; no backend is left', async (t) => {
    const watch = inPty(t, `${process.execPath} ${HUB_BIN} watch --config ${setup.config} --interval 200ms`);
    await waitFor('the watch to run', () => /live from the event stream/.test(watch.output()));
    const backends = recordedPids(setup.stateDir);
    t.ok(backends.length >= 2, `backends run (${backends.join(', ')})`);
    const r = await hub(['stop', ...cfg]);
    t.equal(r.code, 0, r.err);
    t.match(r.out, new RegExp(`\\[info\\] shutting down the hub at ${setup.origin} \\(pid ${pid}\\): waiting for \\d+ models to stop`));
    t.match(r.out, /\[info\] \w+ process running → stopping \(shutdown\)/, 'shows the models stopping');
    t.match(r.out, `[ok] stopped (pid ${pid}`);
    t.notOk(alive(pid), 'the hub is gone');
    t.same(backends.filter(alive), [], 'every backend is gone');
    t.notOk(existsSync(join(setup.stateDir, 'runtime.json')), 'the runtime file is removed');
    await waitFor('the watch to notice', () => /event stream lost: polling every 200ms/.test(plain(watch.output())) && /the hub does not answer/.test(plain(watch.output())));
    watch.write('\x03');
    t.equal(await watch.exited, 0);
    t.equal((await hub(['status', ...cfg])).code, 3, 'status after stop: exit 3');
  });
});
