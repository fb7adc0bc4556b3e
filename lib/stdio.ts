// The hub's own stdout and stderr, which can break under it: the reader of a pipe goes away (EPIPE,
// `hub check | head -1`) or the terminal is closed (EIO on every write after the kernel hangs it up).
// Neither may crash the hub or the CLI: the first error marks the stream broken, later writes to it are
// dropped, and everything else goes on (the hub also logs to a file, see log.ts).
const guarded = new WeakSet<NodeJS.WritableStream>();
const broken = new WeakSet<NodeJS.WritableStream>();

/** Makes write errors on `stream` mark it broken instead of being thrown as an uncaught 'error' event. */
export function guard(stream: NodeJS.WritableStream): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  stream.on('error', () => broken.add(stream));
}

/** Guards process.stdout and process.stderr, so that no write anywhere in the process can crash it. */
export function protectStdio(): void {
  guard(process.stdout);
  guard(process.stderr);
}

/** Writes unless the stream has broken; never throws. */
export function safeWrite(stream: NodeJS.WritableStream, text: string): void {
  guard(stream);
  if (broken.has(stream)) return;
  try {
    stream.write(text);
  } catch {
    broken.add(stream); // a synchronous failure (e.g. the stream was destroyed)
  }
}
