// The `hub` CLI as a user runs it: the built bin/hub.js as a subprocess against a real daemon it
// started itself (`hub start`), with demo backends, a temp config, state_dir and log.dir. Each verb's
// happy and failure path, exit codes, --json shapes, `watch` in a real pseudo-terminal until Ctrl-C,
// `logs -f` across a rotation, and `stop` leaving no process behind.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters as plain } from 'node:util';
import t from 'tap';
import { COMMANDS, COMPLETION, commandName } from '../lib/cli/commands.js';
import { HUB_BIN, PACKAGE_ROOT, demo, getJson, waitFor } from './helpers.js';
import { alive, daemonSetup, hub, hubRunning, inPty, recordedPids, shThenDemo } from './cli-support.js';

t.test('without a daemon: the command list, per-command help, docs/cli.md, usage errors', async (t) => {
  const bare = await hub([]);
  t.equal(bare.code, 0, '`hub` alone exits 0');
  for (const spec of COMMANDS) t.match(bare.out, `hub ${spec.usage}`, `\`hub\` alone lists ${commandName(spec.usage)}`);
  t.match(bare.out, 'hub completion');
  t.notMatch(bare.out + bare.err, /name a command/);

  const docs = readFileSync(join(PACKAGE_ROOT, 'docs', 'cli.md'), 'utf8');
  const sections = new Map([...docs.matchAll(/^### `hub ([^`]+)`\n([\s\S]*?)(?=^#{2,3} |(?![\s\S]))/gm)].map((m) => [commandName(m[1]), { usage: m[1], body: m[2] }]));
  const helps = await Promise.all(COMMANDS.map((spec) => hub([commandName(spec.usage), '--help'])));
  COMMANDS.forEach((spec, i) => {
    const name = commandName(spec.usage);
    const help = helps[i].out;
    t.equal(helps[i].code, 0, `${name} --help exits 0`);
    t.match(help, /Examples:\n {2}hub /, `${name} --help has examples`);
    const shown = [...help.matchAll(/^ {2,6}(?:-\w, )?--([a-z][\w-]*)/gm)].map((m) => m[1]).filter((o) => o !== 'help' && o !== 'version').sort();
    t.same(shown, Object.keys(spec.options).sort(), `${name} --help offers exactly its own options`);
    const section = sections.get(name);
    t.ok(section, `docs/cli.md has a section for hub ${name}`);
    if (!section) return;
    t.equal(section.usage, spec.usage, `docs/cli.md shows the usage of ${name} as yargs has it`);
    for (const option of Object.keys(spec.options)) t.match(section.body, `\`--${option}`, `docs/cli.md documents ${name} --${option}`);
  });
  t.equal(sections.get(commandName(COMPLETION.usage))?.usage, COMPLETION.usage, 'docs/cli.md documents hub completion, with its usage');
  t.same([...sections.keys()].sort(), [...COMMANDS.map((c) => commandName(c.usage)), commandName(COMPLETION.usage)].sort(), 'docs/cli.md documents no command that does not exist');

  const demoHelp = helps[COMMANDS.findIndex((c) => c.usage === 'demo-model')].out;
  t.notMatch(demoHelp, /--config|--json|--url/, 'demo-model --help offers no hub options');

  const completion = await hub(['completion']);
  t.equal(completion.code, 0);
  t.match(completion.out, /complete -o bashdefault|compdef|_hub_yargs_completions/, 'a shell completion script');
  t.match((await hub(['completion', '--help'])).out, /Examples:\n {2}hub completion >> ~\/\.bashrc/, 'completion --help is help, with an example');
  const words = (await hub(['--get-yargs-completions', 'hub', 'st'])).out.split('\n');
  t.ok(['status', 'start', 'stop', 'start-model'].every((w) => words.includes(w)), 'the script\'s callback completes command names');

  const unknown = await hub(['frobnicate']);
  t.equal(unknown.code, 2, 'an unknown command is a usage error');
  t.match(unknown.err, /^\[err\] unknown command frobnicate; the commands are serve, start, stop, reload, status, watch, start-model, .*, completion/m, 'names the command and lists them');
  t.notMatch(unknown.err, /Unknown argument/);
  const option = await hub(['logs', 'm', 'extra', '--api-kee', 'K', '--fooBar', '-q']);
  t.equal(option.code, 2, 'an unknown option is a usage error');
  t.match(option.err, /^\[err\] unknown options --api-kee, --fooBar, -q; unexpected argument extra; see hub logs --help$/m, 'each unknown option once, as typed, and the command\'s help');
  const negated = await hub(['logs', 'm', '--no-frob']);
  t.match(negated.err, /^\[err\] unknown option --no-frob; see hub logs --help$/m);
  const missing = await hub(['start-model']);
  t.equal(missing.code, 2, 'a model verb without a name is a usage error');
});

t.test('a daemon, from hub start to hub stop', async (t) => {
  const go = '$GO_FILE';
  const setup = await daemonSetup(
    t,
    'log: { rotate: { size: 4KiB, keep: 3, compress: false } }\ngroups:\n  g: { max_loaded: 1, on_full: evict }',
    `  small: { backend: demo, cmd: "${demo('--load-time 100ms')}", group: g, preload: true }
  big: { backend: demo, cmd: "${demo('--load-time 100ms')}", group: g }
  broken: { backend: demo, cmd: "${demo('--load-time 50ms --fail-start 7')}" }
  chatter: { backend: demo, env: { GO_FILE: @DIR@/GO }, cmd: ${shThenDemo(`(while [ ! -e "${go}" ]; do sleep 0.05; done; i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo "chatter-line-$i padding-padding-padding"; sleep 0.005; done; echo chatter-done) &`)} }
`,
  );
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
