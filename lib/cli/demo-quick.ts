// `hub demo-model` without loading yargs. The demo backend starts once for every demo model a hub
// runs, and yargs (its command table, help and completion machinery) is about half of the demo's
// start-up CPU. The arguments go through yargs-parser, the parser yargs itself uses, with the same
// option table; anything that is not a plain start (help, an unknown or repeated option, a missing
// --port, a number that is not one) is left to the full CLI, which answers it as it always has.
import parse from 'yargs-parser';
import { protectStdio } from '../stdio.js';
import { COMMANDS, commandName, type Args } from './commands.js';
import { demoOptionTable } from './demo-options.js';
import { runCommand } from './run.js';

const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const ofType = (type: string) => Object.keys(demoOptionTable).filter((k) => demoOptionTable[k].type === type);
const known = new Set(['_', ...Object.keys(demoOptionTable).flatMap((k) => [k, camel(k)])]);

/** The arguments of `hub demo-model <argv>` as yargs gives them, or undefined for the full CLI to handle. */
export function quickDemoArgs(argv: string[]): Args | undefined {
  // `--` and short options (demo-model has none; -h is help): the full CLI. --help and --version come
  // out as keys that are not options, below.
  if (argv.some((a) => a === '--' || /^-[^-]/.test(a))) return undefined;
  const defaults = Object.fromEntries(Object.entries(demoOptionTable).filter(([, o]) => o.default !== undefined).map(([k, o]) => [k, o.default]));
  const parsed = parse.detailed(argv, { string: ofType('string'), number: ofType('number'), boolean: ofType('boolean'), default: defaults });
  if (parsed.error) return undefined;
  const a = parsed.argv as Args & { _: unknown[] };
  if (a._.length || Object.keys(a).some((k) => !known.has(k))) return undefined;
  for (const [k, v] of Object.entries(a)) {
    if (k !== '_' && (Array.isArray(v) || (typeof v === 'number' && !Number.isFinite(v)))) return undefined;
  }
  if (typeof a.port !== 'number') return undefined; // --port is required: the full CLI says so
  return a;
}

/** Starts the demo backend when the arguments are a plain start; false when the full CLI should run. */
export async function runDemoQuickly(argv: string[]): Promise<boolean> {
  const args = quickDemoArgs(argv);
  if (!args) return false;
  protectStdio(); // as main.ts does for every command
  await runCommand(COMMANDS.find((c) => commandName(c.usage) === 'demo-model')!.run, args);
  return true;
}
