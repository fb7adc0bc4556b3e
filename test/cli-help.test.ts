// The `hub` CLI without a daemon, run as a user runs it (the built bin/hub.js as a subprocess): the
// command list, each command's --help against docs/cli.md, shell completion, and usage errors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { COMMANDS, COMPLETION, commandName } from '../lib/cli/commands.js';
import { PACKAGE_ROOT } from './helpers.js';
import { hub } from './cli-support.js';

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
