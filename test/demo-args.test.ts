// `hub demo-model` parses its arguments without yargs (lib/cli/demo-quick.ts) when they are a plain
// start: the values must be those yargs gives, and everything else must reach the full CLI.
import t from 'tap';
import yargs from 'yargs';
import { quickDemoArgs } from '../lib/cli/demo-quick.js';
import { demoOptionTable } from '../lib/cli/demo-options.js';
import { hub } from './cli-support.js';

const viaYargs = (argv: string[]) => yargs(argv).options(demoOptionTable).strict().parseSync() as Record<string, unknown>;
const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

t.test('a plain start: every option as yargs parses it, dashed and camelCase', async (t) => {
  const samples = [
    ['--port', '9000'],
    ['--port', '9000', '--model', 'm', '--host', '::1', '--load-time', '100ms', '--wake-time', '50ms', '--token-rate', '20', '--memory', '8MiB',
      '--max-tokens', '4', '--embedding-dim', '4', '--fail-start', '7', '--crash-after', '8', '--never-ready', '--ignore-sigterm',
      '--no-responses', '--no-messages', '--tool-calls', '--reasoning', 'think first'],
    ['--port=9001', '--loadTime', '2s', '--memory', '256', '--token-rate', '0.5', '--responses', 'false', '--tool-calls=true'],
  ];
  for (const argv of samples) {
    const quick = quickDemoArgs(argv);
    t.ok(quick, `taken: ${argv.join(' ')}`);
    const full = viaYargs(argv);
    for (const key of Object.keys(demoOptionTable)) {
      t.same([quick?.[key], quick?.[camel(key)]], [full[key], full[camel(key)]], `${argv.join(' ')}: --${key}`);
    }
  }
});

t.test('anything but a plain start is left to the full CLI', async (t) => {
  for (const argv of [[], ['--help'], ['-h'], ['--version'], ['--port', '1', '--nope'], ['--port', 'x'], ['--port', '1', 'extra'], ['--port', '1', '--port', '2'], ['--port', '1', '--', 'x'], ['--port', '1', '--max-tokens', 'many']]) {
    t.equal(quickDemoArgs(argv), undefined, argv.join(' ') || '(no arguments)');
  }
  const unknown = await hub(['demo-model', '--port', '1', '--nope']);
  t.equal(unknown.code, 2, 'an unknown option is still a usage error');
  t.match(unknown.err, /\[err\] unknown option --nope; see hub demo-model --help/);
  const missing = await hub(['demo-model']);
  t.equal(missing.code, 2, 'so is a missing --port');
  t.match(missing.err, /port/);
  const help = await hub(['demo-model', '--help']);
  t.match(help.out, /Examples:\n {2}hub demo-model/, '--help is help');
});
