// Checks of what a managed model's process is started with that only the OS would otherwise refuse,
// at spawn time and with a less helpful message: NUL bytes, a cwd that is not a folder.
import { statSync } from 'node:fs';

export function launchProblems(
  at: string[],
  argv: string[] | undefined,
  env: Record<string, string | number | boolean>,
  cwd: string | undefined,
  problem: (segments: string[], message: string) => void,
): void {
  // The OS takes environment entries and arguments as C strings: a NUL byte would end them early.
  for (const [key, value] of Object.entries(env)) {
    if (key.includes('\0') || String(value).includes('\0')) problem([...at, 'env', key], `${key.includes('\0') ? 'the name' : 'the value'} contains a NUL byte (\\0), which no environment variable can hold; remove it`);
  }
  if (argv?.some((a) => a.includes('\0'))) problem([...at, 'cmd'], 'contains a NUL byte (\\0), which no command-line argument can hold; remove it');
  if (cwd === undefined) return;
  const kind = statKind(cwd);
  // A folder that does not exist yet is a warning of `hub check` (warnings.ts): it may be created later.
  if (kind !== 'missing' && kind !== 'folder') problem([...at, 'cwd'], `${cwd} is ${kind === 'file' ? 'a file' : 'not a folder'}; cwd must name the folder the model's command runs in`);
}

function statKind(path: string): 'folder' | 'file' | 'other' | 'missing' {
  try {
    const st = statSync(path);
    return st.isDirectory() ? 'folder' : st.isFile() ? 'file' : 'other';
  } catch {
    return 'missing';
  }
}
