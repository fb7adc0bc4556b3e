// A command that cannot go on: its message and the exit code (SPEC §5) main.ts ends with.
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    /** The API's answer, when there was one. */
    readonly answer?: { status: number; body: unknown },
  ) {
    super(message);
  }
}

/** "1 model", "2 models": every count the CLI prints goes through this. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
