// Finding GGUF files for `hub init`: a bounded walk of the folders given (depth and entry count are
// capped, so `hub init ~` cannot run for minutes), symlinked files followed (the Hugging Face cache
// links snapshots to blobs), each real folder and file visited once. A model split into parts
// (`name-00001-of-00003.gguf`) counts once, by its first part, with the size of all its parts.
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export const MAX_DEPTH = 6;
export const MAX_ENTRIES = 50_000;

export interface GgufCandidate {
  /** The first (or only) file, as found under the folder given. */
  path: string;
  /** Bytes of the model on disk: the file, or all the parts of a split model. */
  size: number;
  /** For a split model: how many parts it has. */
  parts?: number;
  /** Parts of a split model that are not there (llama-server would fail to load it). */
  missingParts?: string[];
  /** A multimodal projector (`mmproj` in the name): not a model on its own. */
  projector: boolean;
}

export interface ScanResult {
  files: GgufCandidate[];
  /** Things worth telling the user: a folder cut short, an unreadable folder. */
  notes: string[];
}

const SPLIT = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

export async function scanFolders(folders: string[]): Promise<ScanResult> {
  const notes: string[] = [];
  const seen = new Set<string>();
  const found: Array<{ path: string; size: number }> = [];
  let entries = 0;
  let truncated = false;

  async function walk(dir: string, depth: number): Promise<void> {
    let real: string;
    try {
      real = await realpath(dir);
    } catch {
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    let list;
    try {
      list = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      notes.push(`cannot read ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); skipped`);
      return;
    }
    list.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of list) {
      if (++entries > MAX_ENTRIES) { truncated = true; return; }
      // Hidden folders and package trees hold no models worth serving, and can be huge.
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = join(dir, entry.name);
      let info;
      try {
        info = await stat(path); // follows symlinks
      } catch {
        continue; // a dangling link
      }
      if (info.isDirectory()) {
        if (depth < MAX_DEPTH) await walk(path, depth + 1);
        else truncated = true;
      } else if (info.isFile() && /\.gguf$/i.test(entry.name)) {
        const realFile = await realpath(path).catch(() => path);
        if (seen.has(realFile)) continue;
        seen.add(realFile);
        found.push({ path, size: info.size });
      }
    }
  }

  for (const folder of folders) await walk(folder, 0);
  if (truncated) notes.push(`stopped looking deeper than ${MAX_DEPTH} folders or past ${MAX_ENTRIES} entries; name the folders that hold models to look there`);
  return { files: groupSplits(found, notes), notes };
}

/** One candidate per model: split parts folded into their first part. */
function groupSplits(found: Array<{ path: string; size: number }>, notes: string[]): GgufCandidate[] {
  const byPath = new Map(found.map((f) => [f.path, f]));
  const out: GgufCandidate[] = [];
  const orphans = new Set<string>();
  for (const f of found) {
    const projector = /mmproj/i.test(basename(f.path));
    const split = SPLIT.exec(basename(f.path));
    if (!split) {
      out.push({ path: f.path, size: f.size, projector });
      continue;
    }
    const [, prefix, part, total] = split;
    if (Number(part) !== 1) {
      // Counted with the first part; without it llama-server cannot load the model.
      const first = join(dirname(f.path), `${prefix}-00001-of-${total}.gguf`);
      if (!byPath.has(first) && !orphans.has(first)) {
        orphans.add(first);
        notes.push(`${first} is missing, so the model split into ${total} parts beside it is left out`);
      }
      continue;
    }
    const parts = Number(total);
    const names = Array.from({ length: parts }, (_, i) => join(dirname(f.path), `${prefix}-${String(i + 1).padStart(5, '0')}-of-${total}.gguf`));
    const present = names.filter((n) => byPath.has(n));
    out.push({
      path: f.path,
      size: present.reduce((sum, n) => sum + byPath.get(n)!.size, 0),
      parts,
      missingParts: names.filter((n) => !byPath.has(n)).map((n) => basename(n)),
      projector,
    });
  }
  return out;
}
