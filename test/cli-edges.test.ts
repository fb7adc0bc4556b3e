// The CLI's edges that need no running hub: `hub completion zsh` (and bash, fish), hub check's
// refusals (a cwd that is a file, NUL bytes in env, a YAML mistake reported once), --port and --host
// checked, and the status table cut to the terminal's width.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters as plain } from 'node:util';
import picocolors from 'picocolors';
import t from 'tap';
import { displayWidth, modelTable } from '../lib/cli/table.js';
import type { ModelStatus } from '../lib/scheduler/status.js';
import { hub } from './cli-support.js';
import { tempDir } from './helpers.js';

t.test('hub completion: bash, zsh and fish scripts from yargs, and the callback they call', async (t) => {
  const zsh = await hub(['completion', 'zsh']);
  t.equal(zsh.code, 0, zsh.err);
  t.match(zsh.out, /^#compdef hub\n/, 'a zsh completion function');
  t.match(zsh.out, 'compdef _hub_yargs_completions hub');
  t.match(zsh.out, 'Installation: hub completion zsh >> ~/.zshrc', 'the install line names the real command');
  t.notMatch(zsh.out, '__completion');
  t.match((await hub(['completion', 'bash'])).out, 'complete -o bashdefault -o default -F _hub_yargs_completions hub');
  t.match((await hub(['completion', 'fish'])).out, "complete -f -c hub -a '(hub --get-yargs-completions");
  t.match((await hub(['completion'], { env: { SHELL: '/usr/bin/zsh' } })).out, /^#compdef hub/, 'the shell $SHELL names by default');
  t.match((await hub(['completion'], { env: { SHELL: '/bin/tcsh' } })).out, 'complete -o bashdefault', 'bash for a shell yargs has no script for');
  const wrong = await hub(['completion', 'tcsh']);
  t.equal(wrong.code, 2, 'an unknown shell is a usage error');
  const words = (await hub(['--get-yargs-completions', 'hub', 'sta'], { env: { SHELL: '/bin/zsh' } })).out;
  t.match(words, /^status:/m, 'under zsh the callback answers name:description pairs, as _describe wants');
});

t.test('hub check: a cwd that is a file, NUL bytes in env, and one YAML mistake reported once', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-folder');
  writeFileSync(file, 'x');
  const config = join(dir, 'hub.yaml');
  writeFileSync(config, `models:\n  a:\n    cmd: "srv --port \${PORT}"\n    cwd: ${file}\n    env: { OK: "1", BAD: "x\\0y" }\n`);
  const r = await hub(['check', '--config', config], { env: { NO_COLOR: '1' } });
  t.equal(r.code, 2);
  t.match(r.err, `[err] hub.yaml:4: models.a.cwd: ${file} is a file; cwd must name the folder the model's command runs in`);
  t.match(r.err, '[err] hub.yaml:5: models.a.env.BAD: the value contains a NUL byte (\\0), which no environment variable can hold; remove it');
  t.match(r.out, '[info] 2 problems');

  writeFileSync(config, `models:\n  a: { cmd: "srv --port \${PORT}", cwd: ${join(dir, 'later')} }\n`);
  const missing = await hub(['check', '--config', config], { env: { NO_COLOR: '1' } });
  t.equal(missing.code, 0, 'a folder that does not exist yet is no error');
  t.match(missing.err, `[warn] hub.yaml: models.a.cwd: the folder ${join(dir, 'later')} does not exist; starting a will fail until it does`);

  writeFileSync(config, 'models:\n  a: { url: "http://x\n  b: { url: http://y }\n');
  const yaml = await hub(['check', '--config', config], { env: { NO_COLOR: '1' } });
  t.equal(yaml.code, 2);
  t.same(yaml.err.trim().split('\n'), ['[err] hub.yaml:4: not valid YAML: Missing closing "quote'], 'the unclosed quote, once (the parser also reported it as an unclosed map)');
  t.match(yaml.out, '[info] 1 problem; fix it');
});

t.test('--port and --host are checked', async (t) => {
  for (const [args, message] of [
    [['serve', '--port', '70000'], '--port: expected a port number from 0 to 65535 (0: any free port), got 70000'],
    [['start', '--port', 'http'], '--port: expected a port number from 0 to 65535 (0: any free port), got something that is not a number'],
    [['serve', '--host', ''], '--host: expected an address like 127.0.0.1, ::1 or 0.0.0.0, got ""'],
  ] as const) {
    const r = await hub([...args]);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.err, `[err] ${message}`);
  }
});

const status = (over: Partial<ModelStatus>): ModelStatus => ({
  name: 'm', kind: 'managed', backend: 'demo', process: 'failed', memory: 'unloaded', memory_bytes: 0, pid: null, port: 20100, group: null,
  in_flight: 0, queued: 0, pinned: false, aliases: [], idle_deadline: null, last_error: null, last_exit_code: null, ...over,
}) as ModelStatus;

t.test('the status table fits the terminal: the last error is cut', async (t) => {
  const long = `model m failed to start: it exited (exit code 7); ${'the backend said something long '.repeat(6)}`;
  const models = [status({ name: 'llama3.2:3b', last_error: long, last_exit_code: 7 }), status({ name: '模型', process: 'stopped', last_error: long })];
  for (const columns of [80, 100, 140]) {
    const lines = modelTable(models, picocolors.createColors(true), Date.now(), columns).split('\n');
    t.ok(lines.every((l) => displayWidth(l) <= columns), `every line within ${columns} columns (widest ${Math.max(...lines.map(displayWidth))})`);
    t.match(plain(lines[1]), /exit 7: .*…$/, 'the error is cut with …');
  }
  t.match(modelTable(models, picocolors.createColors(false)).split('\n')[1], /…$/, 'without a terminal: the usual 60 columns');
  t.notMatch(modelTable([status({ last_error: 'short' })], picocolors.createColors(false), Date.now(), 80), '…', 'a short error is whole');
});
