// `cmd` handling. A string is split like a shell would (quotes, escapes) but never run through one;
// placeholders stay in place until spawn time, when the port and the hub's own command are known.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join, resolve as resolvePath } from 'node:path';
import { parse } from 'shell-quote';

export const PLACEHOLDERS = ['PORT', 'MODEL', 'HUB'] as const;
const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_.]*)\}/g;

export function splitCommand(cmd: string | string[]): { argv: string[] } | { error: string } {
  const unknown = checkPlaceholders(Array.isArray(cmd) ? cmd : [cmd]);
  if (unknown) return { error: unknown };
  let argv: string[];
  if (Array.isArray(cmd)) {
    argv = cmd;
  } else {
    // Keep ${PORT}-style placeholders intact; any other $NAME is literal text (there is no shell).
    const parts = parse(cmd, (name: string) => ((PLACEHOLDERS as readonly string[]).includes(name) ? `\${${name}}` : `$${name}`));
    const op = parts.find((p) => typeof p !== 'string');
    if (op) {
      const shown = 'op' in op ? op.op : 'comment' in op ? '#' : '?';
      return { error: `contains the shell operator "${shown}", but cmd is not run through a shell; wrap it in a script, or use [sh, -c, "..."]` };
    }
    argv = parts as string[];
  }
  if (argv.some((arg) => arg.includes('${HUB}') && arg !== '${HUB}')) {
    return { error: '${HUB} must be a word of its own (it expands to the node binary and the hub script)' };
  }
  if (argv.length === 0) return { error: 'is empty' };
  return { argv };
}

function checkPlaceholders(parts: string[]): string | undefined {
  for (const part of parts) {
    for (const [, name] of part.matchAll(PLACEHOLDER)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(name)) return `unknown placeholder \${${name}}; use \${PORT}, \${MODEL}, \${HUB} or \${env.NAME}`;
    }
  }
  return undefined;
}

/** The final argv for spawn: `${HUB}` becomes the hub's own command, `${PORT}` and `${MODEL}` their values. */
export function resolveCommand(argv: readonly string[], values: { port: number; model: string; hub: readonly string[] }): string[] {
  return argv.flatMap((arg) =>
    arg === '${HUB}' ? [...values.hub] : [arg.replaceAll('${PORT}', String(values.port)).replaceAll('${MODEL}', values.model)],
  );
}

/**
 * Whether the program a command runs can be found, the way spawn will look for it: a name with a
 * slash is a path (relative to `cwd`), any other name is searched on PATH. Nothing is run.
 */
export function programFound(program: string, path: string | undefined, cwd: string): boolean {
  const executable = (file: string) => {
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  };
  if (program.includes('/')) return executable(resolvePath(cwd, program));
  return (path ?? '').split(delimiter).some((dir) => dir !== '' && executable(join(dir, program)));
}
