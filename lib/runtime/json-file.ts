// A small JSON file in state_dir that the hub keeps as a hint across restarts (load times, measured
// memory): read whole, written whole (to a temporary file, then renamed, so a crash never leaves half
// a file). Neither ever fails the hub: an unreadable file reads as nothing, a failed write is skipped.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The file's object, or undefined when it is absent, unreadable or not a JSON object. */
export function readJsonFile(file: string | undefined): Record<string, unknown> | undefined {
  if (!file) return undefined;
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes `value` whole; false when it could not (a read-only state dir costs only the hint). */
export function writeJsonFile(file: string | undefined, value: unknown): boolean {
  if (!file) return false;
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(value));
    renameSync(tmp, file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes a file's latest value in the background, off the event loop (each write is a few ms of
 * blocking I/O done synchronously: on a cold start's path, before the waiting request goes through).
 * Writes never overlap; values asked for while one is under way make one more write, of the latest.
 */
let savers = 0;

export class JsonFileSaver {
  private dirty = false;
  /** Its own temporary file: two savers of one file in one process (two hubs on one state_dir) never share one. */
  private readonly tmp = `${process.pid}.${++savers}.tmp`;
  private writing?: Promise<void>;

  constructor(private readonly file: string | undefined, private readonly value: () => unknown) {}

  save(): void {
    if (!this.file) return;
    this.dirty = true;
    this.writing ??= this.drain().finally(() => { this.writing = undefined; });
  }

  /** Resolves once what was saved so far is on disk (or could not be written). */
  async flush(): Promise<void> {
    await this.writing;
  }

  private async drain(): Promise<void> {
    const file = this.file!;
    while (this.dirty) {
      this.dirty = false;
      try {
        // No mkdir: state_dir is made at startup, and a folder removed since (a test's, say) stays removed.
        const tmp = `${file}.${this.tmp}`;
        await writeFile(tmp, JSON.stringify(this.value()));
        await rename(tmp, file);
      } catch {
        // a read-only state dir costs only the hint
      }
    }
  }
}
