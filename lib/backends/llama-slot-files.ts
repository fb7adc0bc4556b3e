// keep_cache's folder (see llama-slots.ts for the saving itself): made before each start, checked
// against the launch settings its files were saved under, listed, bounded and cleared. Files:
// `slot-<generation>-<slot id>.bin` (one save writes one generation) and `launch.json` (a digest of
// the launch settings). Nothing else in the folder is touched.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { keepCacheDir } from '../config/keep-cache.js';
import type { KeepCache, ModelConfig } from '../config/types.js';

/** What a start needs from keep_cache, worked out once per start (prepareSlotCache). */
export interface SlotCache extends KeepCache {
  model: string;
  /** A digest of the launch settings (argv, env, cwd, the model file's size and time) the process runs with. */
  launch: string;
}

export interface PreparedSlotCache {
  /** Absent when keep_cache is off, or the folder could not be made (then `error` says why). */
  cache?: SlotCache;
  /** Arguments to append to the command (`--slot-save-path <dir>` when the hub adds it); [] otherwise. */
  args: string[];
  /** Files removed because they were saved under other launch settings. */
  cleared: number;
  error?: string;
}

const SLOT_FILE = /^slot-(\d+)-(\d+)\.bin$/;
const LAUNCH_FILE = 'launch.json';

/**
 * Before each start of a model with keep_cache: makes its folder (llama-server refuses a
 * --slot-save-path that does not exist), removes files saved under other launch settings, and says
 * what to append to the command. Never throws: when the folder cannot be made the model starts
 * without the flag (cold, nothing saved) and `error` says why.
 */
export async function prepareSlotCache(config: ModelConfig): Promise<PreparedSlotCache> {
  const keep = config.keepCache;
  if (!keep) return { args: [], cleared: 0 };
  const launch = await launchDigest(config);
  try {
    await mkdir(keep.dir, { recursive: true });
    // Missing or unreadable counts as other settings: the files are removed and the record rewritten.
    const recorded = await readFile(join(keep.dir, LAUNCH_FILE), 'utf8')
      .then((t) => (JSON.parse(t) as { launch?: unknown }).launch)
      .catch(() => undefined);
    let cleared = 0;
    if (recorded !== launch) {
      cleared = (await removeSlotFiles(keep.dir, () => true)).length;
      await writeFile(join(keep.dir, LAUNCH_FILE), JSON.stringify({ model: config.name, launch }) + '\n');
    }
    return { cache: { ...keep, model: config.name, launch }, args: keep.addsFlag ? ['--slot-save-path', keep.dir] : [], cleared };
  } catch (err) {
    return { args: [], cleared: 0, error: `keep_cache: cannot use ${keep.dir} (${(err as Error).message}); ${config.name} starts without saving its cache` };
  }
}

/**
 * Removes a model's saved slots (and its folder under state_dir when that is left empty): for the
 * caller when the model's launch settings change, keep_cache is turned off, or the model is removed.
 * Pass the config the files were saved under. Never throws; returns how many files went.
 */
export async function clearSavedCache(stateDir: string, config: ModelConfig): Promise<{ removed: number; error?: string }> {
  const own = keepCacheDir(stateDir, config.name);
  const dirs = [...new Set([config.keepCache?.dir, own].filter((d): d is string => d !== undefined))];
  let removed = 0;
  const errors: string[] = [];
  for (const dir of dirs) {
    try {
      removed += (await removeSlotFiles(dir, () => true)).length;
      await rm(join(dir, LAUNCH_FILE), { force: true });
      if (dir === own) await rmdir(dir).catch(() => {}); // only when empty: nothing of anyone else's is removed
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`${dir}: ${(err as Error).message}`);
    }
  }
  return errors.length ? { removed, error: `removing ${config.name}'s saved cache: ${errors.join('; ')}` } : { removed };
}

export interface SlotFile {
  name: string;
  generation: number;
  slot: number;
}

export async function slotFiles(dir: string): Promise<SlotFile[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names.flatMap((name) => {
    const m = SLOT_FILE.exec(name);
    return m ? [{ name, generation: Number(m[1]), slot: Number(m[2]) }] : [];
  });
}

export async function removeSlotFiles(dir: string, which: (f: SlotFile) => boolean): Promise<SlotFile[]> {
  const gone = (await slotFiles(dir)).filter(which);
  for (const f of gone) await rm(join(dir, f.name), { force: true });
  return gone;
}

/**
 * What a saved cache depends on: the command, its environment and folder, and the model file the
 * command names (-m/--model), by size and modification time, so that a file replaced in place also
 * counts as a change.
 */
async function launchDigest(config: ModelConfig): Promise<string> {
  const argv = config.argv ?? [];
  const at = argv.findIndex((a) => a === '-m' || a === '--model' || a.startsWith('--model='));
  const file = at < 0 ? undefined : argv[at].startsWith('--model=') ? argv[at].slice('--model='.length) : argv[at + 1];
  const st = file ? await stat(resolve(config.cwd ?? process.cwd(), file)).catch(() => undefined) : undefined;
  const model = st ? { size: st.size, mtimeMs: st.mtimeMs } : null;
  const settings = { backend: config.backend, argv, env: config.env, cwd: config.cwd ?? null, model };
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}
