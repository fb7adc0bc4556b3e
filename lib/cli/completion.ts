// `hub completion [bash|zsh|fish]`: yargs' own completion script for that shell. yargs picks its
// template from $SHELL when it is set up, so a fresh instance is made with $SHELL saying the shell
// asked for. The script calls `hub --get-yargs-completions ...`, which main.ts's parser answers.
import { basename } from 'node:path';
import yargs from 'yargs';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** The user's shell from $SHELL; bash when it is none of those yargs has a script for. */
export function shellFromEnv(env = process.env): Shell {
  const name = basename(env.SHELL ?? '');
  return (SHELLS as readonly string[]).includes(name) ? (name as Shell) : 'bash';
}

export function printCompletionScript(shell: Shell): void {
  const saved = { SHELL: process.env.SHELL, ZSH_NAME: process.env.ZSH_NAME };
  process.env.SHELL = `/bin/${shell}`;
  delete process.env.ZSH_NAME;
  try {
    // yargs 18 takes ($0, command) for the script's "Installation:" line; the v17 types do not say so.
    const y = yargs([]).scriptName('hub').completion('__completion', false) as unknown as { showCompletionScript($0: string, cmd: string): void };
    y.showCompletionScript('hub', `completion ${shell}`);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
