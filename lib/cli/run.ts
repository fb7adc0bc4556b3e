// Running one command: what it throws becomes `[err]` lines and the exit code it stands for (SPEC §5).
// Shared by main.ts (every command, through yargs) and demo-quick.ts (`hub demo-model` without it).
import { ConfigError } from '../config/errors.js';
import type { Args } from './commands.js';
import { CliError } from './errors.js';
import { EXIT, say } from './output.js';

export async function runCommand(command: (a: Args) => Promise<number | undefined>, args: Args): Promise<void> {
  try {
    const code = await command(args);
    if (code !== undefined) process.exitCode = code; // undefined: the command goes on running (demo-model)
  } catch (err) {
    if (err instanceof CliError) {
      for (const line of err.message.split('\n')) say.err(line);
      process.exitCode = err.exitCode;
    } else if (err instanceof ConfigError) {
      for (const line of err.message.split('\n')) say.err(line);
      process.exitCode = EXIT.usage;
    } else {
      say.err(err instanceof Error ? err.message : String(err));
      process.exitCode = EXIT.failed;
    }
  }
}
