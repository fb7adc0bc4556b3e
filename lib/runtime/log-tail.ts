// Reading a model's log file for the control API: the last N lines, then (optionally) whatever is
// appended, as it is appended — like `tail -F`. The file may be rotated (renamed, and a new one
// created), truncated or removed at any moment, by the hub or by logrotate: none of that is an
// error, and no read ever throws past this module.
import { basename } from 'node:path';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const MAX_TAIL_BYTES = 4 * 2 ** 20;
const CHUNK = 64 * 1024;
const POLL_MS = 250;

/** The last `lines` lines of `file` and the offset where the file ended ('' and 0 when it does not exist). */
export async function tailLines(file: string, lines: number): Promise<{ text: string; end: number }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch {
    return { text: '', end: 0 }; // not there (yet, or any more): an empty log
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - MAX_TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    const all = buffer.subarray(0, bytesRead).toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    const text = lines > 0 ? all.slice(-lines).join('\n') : ''; // slice(-0) would be everything
    return { text: text ? `${text}\n` : '', end: start + bytesRead };
  } catch {
    return { text: '', end: 0 };
  } finally {
    await handle.close().catch(() => {});
  }
}

export interface FollowSink {
  /** Bytes appended to the file. Return false to stop following. */
  data(chunk: Buffer): boolean;
  /** Something happened to the file itself, as a line to show the reader. Return false to stop. */
  notice(line: string): boolean;
}

/**
 * Feeds `sink` every byte appended to `file` after `offset`, until `signal` aborts or the sink says
 * stop. It keeps the file open and reads it to its end, so lines written just before a rotation are
 * not lost; when a different file appears under the name (rotated, or removed and written again) it
 * says so and follows that one from its start. A truncated file is read again from its start.
 */
export async function followFile(file: string, offset: number, sink: FollowSink, signal: AbortSignal): Promise<void> {
  const name = basename(file);
  let current: { handle: FileHandle; ino: number } | undefined;
  let position = offset;
  let missingToldOf = false;
  const close = async () => {
    await current?.handle.close().catch(() => {});
    current = undefined;
  };
  try {
    while (!signal.aborted) {
      current ??= await openFile(file);
      if (!current) position = 0; // not there yet: once it appears, all of it is new
      else {
        if ((await drain(current.handle)) === 'stop') return;
        if (!current) continue; // the read failed and closed it: open the name again
        // Is the name still the file we have open?
        const now = await stat(file).catch(() => undefined);
        if (!now && !missingToldOf) {
          // Keep reading the open file: whoever writes it may still be writing.
          missingToldOf = true;
          if (!sink.notice(`--- modelhub: ${name} was rotated or removed; waiting for a new one\n`)) return;
        } else if (now && now.ino !== current.ino) {
          await close();
          position = 0;
          if (!sink.notice(missingToldOf ? `--- modelhub: following the new ${name}\n` : `--- modelhub: ${name} was rotated; following the new ${name}\n`)) return;
          missingToldOf = false;
          continue; // read it at once
        }
      }
      await sleep(POLL_MS, undefined, { signal }).catch(() => {});
    }
  } finally {
    await close();
  }

  /** Reads from `position` to the end, chunk by chunk; 'stop' when the sink has had enough. */
  async function drain(handle: FileHandle): Promise<'ok' | 'stop'> {
    try {
      const { size } = await handle.stat();
      if (size < position) {
        position = 0;
        if (!sink.notice(`--- modelhub: ${name} was truncated; reading it from its start\n`)) return 'stop';
      }
      while (position < size && !signal.aborted) {
        const buffer = Buffer.allocUnsafe(Math.min(CHUNK, size - position));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        if (!sink.data(buffer.subarray(0, bytesRead))) return 'stop';
      }
      return 'ok';
    } catch (err) {
      // The handle went bad (an unusual file system); try the name again after a pause.
      await close();
      await sleep(POLL_MS, undefined, { signal }).catch(() => {});
      return sink.notice(`--- modelhub: reading ${name} failed (${(err as Error).message}); trying again\n`) ? 'ok' : 'stop';
    }
  }
}

async function openFile(file: string): Promise<{ handle: FileHandle; ino: number } | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, 'r');
    return { handle, ino: (await handle.stat()).ino };
  } catch {
    await handle?.close().catch(() => {});
    return undefined;
  }
}
