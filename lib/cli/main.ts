// The `hub` command line (SPEC §5): the command table of commands.ts registered with yargs. Each
// command is a thin layer over the config (check, serve) or the hub's HTTP API (everything else).
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { VERSION } from '../paths.js';
import { protectStdio } from '../stdio.js';
import { COMMANDS, COMPLETION, commandName, type Args, type CommandSpec } from './commands.js';
import { runCommand } from './run.js';
import { EXIT, say } from './output.js';
import { usageMessage } from './usage-errors.js';

// A closed pipe or terminal on stdout/stderr ends the output, never the process (see stdio.ts).
protectStdio();

function register(y: Argv, spec: CommandSpec): Argv {
  return y.command(
    spec.usage,
    spec.describe,
    (b) => {
      for (const [name, options] of Object.entries(spec.positionals ?? {})) b.positional(name, options);
      b.options(spec.options);
      for (const [cmd, what] of spec.examples) b.example(cmd, what);
      return b;
    },
    (a) => runCommand(spec.run, a as Args),
  );
}

let cli = yargs(hideBin(process.argv))
  .scriptName('hub')
  .usage('hub <command> [options]\n\nmodelhub: one OpenAI-compatible URL in front of many local model servers.')
  .version(VERSION);
for (const spec of COMMANDS) cli = register(cli, spec);
const parser = cli
  // yargs answers the shell's --get-yargs-completions itself; `hub completion` is a command of our
  // own only so that its --help shows help and examples (yargs' would print the script).
  .completion('__completion', false)
  .command(
    COMPLETION.usage,
    COMPLETION.describe,
    (b) =>
      b
        .positional('shell', { type: 'string', choices: ['bash', 'zsh', 'fish'], describe: 'the shell (default: the one $SHELL names, else bash)' })
        .example('hub completion >> ~/.bashrc', 'completion in every new bash')
        .example('hub completion zsh >> ~/.zshrc', 'in every new zsh (after compinit)')
        .example('hub completion fish > ~/.config/fish/completions/hub.fish', 'in fish'),
    async (a) => {
      const { printCompletionScript, shellFromEnv } = await import('./completion.js');
      printCompletionScript((a.shell as 'bash' | 'zsh' | 'fish' | undefined) ?? shellFromEnv());
    },
  )
  // `hub` alone: the command list, as `hub --help` prints it.
  .command('$0', false, (b) => b, () => { parser.showHelp('log'); })
  .epilogue('Each command has its own --help with examples. Exit codes: 0 ok, 1 an action failed, 2 usage or config error, 3 no hub running.')
  .strict()
  .wrap(Math.min(110, process.stdout.columns || 100))
  .fail((msg, err) => {
    if (err) {
      say.err(err.message);
      process.exit(EXIT.failed);
    }
    say.err(usageMessage(msg, hideBin(process.argv), [...COMMANDS.map((c) => commandName(c.usage)), commandName(COMPLETION.usage)]));
    process.exit(EXIT.usage);
  });
await parser.parseAsync();
