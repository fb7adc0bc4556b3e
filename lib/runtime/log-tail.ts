// Reading a model's log file for the control API: the last N lines, then (optionally) whatever is
// appended, as it is appended.
import { createReadStream, existsSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { open } from 'node:fs/promises';

const MAX_TAIL_BYTES = 4 * 2 ** 20;

/** The last `lines` lines of `file` and the offset where the file ended ('' and 0 when it does not exist). */
export async function tailLines(file: string, lines: number): Promise<{ text: string; end: number }> {
  if (!existsSync(file)) return { text: '', end: 0 };
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - MAX_TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    const all = buffer.toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    const text = all.slice(-lines).join('\n');
    return { text: text ? `${text}\n` : '', end: size };
  } finally {
    await handle.close();
  }
}

/** Calls `onData` with every byte appended to `file` after `offset`, until `signal` aborts. */
export function followFile(file: string, offset: number, onData: (chunk: Buffer) => void, signal: AbortSignal): void {
  let position = offset;
  let reading = false;
  const poll = () => {
    if (reading || signal.aborted || !existsSync(file)) return;
    const { size } = statSync(file);
    if (size < position) position = 0; // rotated or truncated: start over
    if (size === position) return;
    reading = true;
    createReadStream(file, { start: position, end: size - 1 })
      .on('data', (chunk) => onData(chunk as Buffer))
      .on('close', () => { position = size; reading = false; });
  };
  watchFile(file, { interval: 250 }, poll);
  signal.addEventListener('abort', () => unwatchFile(file, poll), { once: true });
}
