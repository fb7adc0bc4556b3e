// keep_cache and keep_cache_max on a model (docs/backends.md, "Prompt caches that survive a swap"):
// checked and normalized into ModelConfig.keepCache. Only a llama-cpp model the hub starts can have
// it: saving needs llama-server's slot API, and the hub must see the folder the files land in to
// bound and remove them (backends/llama-slots.ts does the saving).
import { join, resolve } from 'node:path';
import { runsLlamaServer, slotSavePathOf } from '../backends/llama-cpp.js';
import { fileNameOf } from './names.js';
import type { ModelFile } from './schema.js';
import type { KeepCache, ModelConfig } from './types.js';

/** Slots saved per model when keep_cache_max is not set: llama-server's usual slot count. */
export const DEFAULT_KEEP_CACHE_MAX = 4;

/** `<state_dir>/kv-cache/<encoded name>`: the folder the hub gives llama-server's --slot-save-path. */
export const keepCacheDir = (stateDir: string, name: string): string => join(stateDir, 'kv-cache', fileNameOf(name));

type Problem = (segments: string[], message: string) => void;

/**
 * The model's keep_cache, or undefined when it is off. Set on the model itself for a model that
 * cannot keep a cache, it is a config error; inherited from `defaults`, it applies only where it can.
 */
export function keepCacheOf(m: ModelConfig, merged: ModelFile, own: ModelFile, stateDir: string, at: string[], problem: Problem): KeepCache | undefined {
  const ownKeys = [...(own.keep_cache === true ? ['keep_cache'] : []), ...(own.keep_cache_max !== undefined ? ['keep_cache_max'] : [])];
  if (m.backend !== 'llama-cpp' || m.argv === undefined) {
    const why =
      m.backend !== 'llama-cpp'
        ? `only applies to backend: llama-cpp (${m.name} is backend: ${m.backend}); the hub keeps the cache through llama-server's slot save and restore`
        : m.url !== undefined
          ? `only applies to models with cmd; ${m.name} is remote (url), and its cache lives on another machine`
          : undefined; // the cmd itself was refused: that error says what to fix
    if (why) for (const key of ownKeys) problem([...at, key], why);
    return undefined;
  }
  if (merged.keep_cache !== true) return undefined;
  const max = merged.keep_cache_max ?? DEFAULT_KEEP_CACHE_MAX;
  const given = slotSavePathOf(m.argv);
  if (given !== undefined) {
    const path = given.replaceAll('${MODEL}', m.name);
    if (path.includes('${PORT}')) {
      problem([...at, 'cmd'], '--slot-save-path must not contain ${PORT}: with keep_cache the saved slots are found by their folder after the next start, which may be on another port');
      return undefined;
    }
    // The child runs in cwd, else where the hub runs.
    return { dir: resolve(m.cwd ?? process.cwd(), path), addsFlag: false, max };
  }
  if (!runsLlamaServer(m.argv)) {
    problem(
      [...at, 'keep_cache'],
      "the hub cannot tell where this command's llama-server saves its slots: the command wraps llama-server and passes no --slot-save-path; run llama-server directly in cmd (the hub then adds --slot-save-path), or put --slot-save-path DIR among cmd's arguments",
    );
    return undefined;
  }
  return { dir: keepCacheDir(stateDir, m.name), addsFlag: true, max };
}

/** Two models saving into one folder would restore each other's slots and delete each other's files. */
export function checkKeepCacheDirs(models: ModelConfig[], problem: Problem): void {
  const owners = new Map<string, string>();
  for (const m of models) {
    if (!m.keepCache) continue;
    const other = owners.get(m.keepCache.dir);
    if (other !== undefined) problem(['models', m.name, 'cmd'], `saves its slots into ${m.keepCache.dir}, as model ${other} does; with keep_cache each model needs a --slot-save-path folder of its own`);
    else owners.set(m.keepCache.dir, m.name);
  }
}
