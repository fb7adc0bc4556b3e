// CLI output conventions (SPEC §5): lines start with [ok] [info] [warn] [err]; exit codes.
export const EXIT = { ok: 0, failed: 1, usage: 2, notRunning: 3 } as const;

export const say = {
  ok: (msg: string) => process.stdout.write(`[ok] ${msg}\n`),
  info: (msg: string) => process.stdout.write(`[info] ${msg}\n`),
  warn: (msg: string) => process.stderr.write(`[warn] ${msg}\n`),
  err: (msg: string) => process.stderr.write(`[err] ${msg}\n`),
};
