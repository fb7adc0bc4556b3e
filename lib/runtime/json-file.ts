// A small JSON file in state_dir that the hub keeps as a hint across restarts (load times, measured
// memory): read whole, written whole (to a temporary file, then renamed, so a crash never leaves half
// a file). Neither ever fails the hub: an unreadable file reads as nothing, a failed write is skipped.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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
