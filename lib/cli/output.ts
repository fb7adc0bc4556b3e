// CLI output conventions (SPEC §5): lines start with [ok] [info] [warn] [err]; exit codes. Writes never
// throw: a closed pipe (`hub check | head -1`) or a closed terminal just ends the output (see stdio.ts).
import { safeWrite } from '../stdio.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, notRunning: 3 } as const;

export const say = {
  ok: (msg: string) => safeWrite(process.stdout, `[ok] ${msg}\n`),
  info: (msg: string) => safeWrite(process.stdout, `[info] ${msg}\n`),
  warn: (msg: string) => safeWrite(process.stderr, `[warn] ${msg}\n`),
  err: (msg: string) => safeWrite(process.stderr, `[err] ${msg}\n`),
  /** Unprefixed output (e.g. --json). */
  raw: (text: string) => safeWrite(process.stdout, text),
};
