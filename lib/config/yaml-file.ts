// Reading hub.yaml with a bounded cost. The file's size is capped, and duplicate keys are found with
// one Set per map: the yaml package's own check (`uniqueKeys: true`) compares each new key with every
// key before it in its map, so a map of 200,000 keys took the hub's CPU for over ten minutes.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isScalar, visit, type Document, type LineCounter } from 'yaml';
import { formatBytes } from './units.js';

/**
 * The largest config file read. Real ones are a few KiB (a model is a few lines); a 1 MiB file of the
 * worst shape (one key per line) parses in about 2 s of CPU on a busy 2-core machine.
 */
export const MAX_CONFIG_BYTES = 2 ** 20;

export class ConfigTooLarge extends Error {}

/**
 * The file's text, or ConfigTooLarge past `limit` bytes. Reads at most limit + 1 bytes, so a file
 * that grows while it is read, or one that is not a regular file, cannot get past the limit either.
 */
export function readConfigText(path: string, limit = MAX_CONFIG_BYTES): string {
  const fd = openSync(path, 'r');
  try {
    const tooLarge = (size: string) =>
      new ConfigTooLarge(`${path} is ${size}; a config file may be at most ${formatBytes(limit)} (hub.yaml files are a few KiB; check that this is the file you meant)`);
    const { size } = fstatSync(fd);
    if (size > limit) throw tooLarge(formatBytes(size));
    const buffer = Buffer.alloc(limit + 1);
    let length = 0;
    for (let n; length < buffer.length && (n = readSync(fd, buffer, length, buffer.length - length, null)) > 0; ) length += n;
    if (length > limit) throw tooLarge(`over ${formatBytes(limit)}`);
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

export interface DuplicateKey {
  key: string;
  line?: number;
}

/** Every key that repeats an earlier key of its map (scalar keys; the document was parsed with `uniqueKeys: false`). */
export function duplicateKeys(doc: Document, lines: LineCounter): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue; // complex keys ({a: 1}: x) are not valid config anyway
        const value = pair.key.value;
        if (seen.has(value)) found.push({ key: String(value), line: pair.key.range ? lines.linePos(pair.key.range[0]).line : undefined });
        else seen.add(value);
      }
    },
  });
  return found;
}
