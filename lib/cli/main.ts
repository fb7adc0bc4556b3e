// The `hub` command line (SPEC §5). Each command is a thin layer: config, controller or HTTP API.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { VERSION } from '../paths.js';
import { protectStdio } from '../stdio.js';
import { demoOptions } from './demo-model.js';
import { EXIT, say } from './output.js';

// Commands load their modules on demand: the demo backend starts in a fraction of the time when it
// does not pull in the hub's HTTP stack and schema validator.

const exit = (code: number) => { process.exitCode = code; };

// A closed pipe or terminal on stdout/stderr ends the output, never the process (see stdio.ts).
protectStdio();

await yargs(hideBin(process.argv))
  .scriptName('hub')
  .version(VERSION)
  .option('config', { type: 'string', describe: 'path to hub.yaml (default: $HUB_CONFIG, ./hub.yaml, ~/.config/modelhub/hub.yaml)' })
  .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
  .command(
    'serve',
    'run the hub in the foreground',
    (y) => y.option('watch', { type: 'boolean', default: false, describe: 'reload when hub.yaml changes' }),
    async (a) => exit(await (await import('./serve.js')).serve(a.config, { watch: a.watch })),
  )
  .command('check', 'validate a config and print every problem, or a summary', (y) => y, async (a) => exit((await import('./check.js')).check(a.config, a.json)))
  .command('demo-model', 'run the bundled demo backend (an OpenAI-compatible test server)', demoOptions, async (a) => (await import('./demo-model.js')).demoModel(a))
  .demandCommand(1, 'name a command; see hub --help')
  .strict()
  .fail((msg, err) => {
    if (err) {
      say.err(err.message);
      process.exit(EXIT.failed);
    }
    say.err(`${msg}; see hub --help`);
    process.exit(EXIT.usage);
  })
  .parseAsync();
