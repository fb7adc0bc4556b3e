// What a llama.cpp model will hold before it has ever been loaded, from its GGUF header and its
// command line:
//
//   estimate = weights (the GGUF file's size; all parts of a split model)
//            + KV cache = Σ over layers of ctx × kv_heads × (head_dim_k × bytes_k + head_dim_v × bytes_v)
//              (= 2 × layers × ctx × kv_heads × head_dim × bytes when K and V are alike)
//            + overhead = 10% of the weights, at least 128 MiB (compute buffers, runtime)
//
// ctx is `-c`/`--ctx-size` (or LLAMA_ARG_CTX_SIZE), shared by all of llama-server's slots. 0 or
// absent, llama-server gives each slot the model's trained context: trained × slots, where slots is
// `-np`/`--parallel` (LLAMA_ARG_N_PARALLEL), 4 when left to llama-server. Either is rounded up to a
// multiple of 256, as llama.cpp pads it (all checked against a real llama-server's own count in
// test/memory-llama.test.ts). Bytes per element follow `--cache-type-k` / `--cache-type-v` (f16 by
// default). `hub init` does the same arithmetic (init/estimate.ts).
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../config/types.js';
import { resolveCommand } from '../config/command.js';
import { kvCacheBytes, runtimeMarginBytes } from '../init/estimate.js';

/** Bytes per element of each KV cache type llama-server takes (block types: block bytes / 32 elements). */
export const CACHE_TYPE_BYTES: Record<string, number> = {
  f32: 4,
  f16: 2,
  bf16: 2,
  q8_0: 34 / 32,
  q5_1: 24 / 32,
  q5_0: 22 / 32,
  q4_1: 20 / 32,
  q4_0: 18 / 32,
  iq4_nl: 18 / 32,
};

/** The slots llama-server serves when `--parallel` is left to it (each with the trained context when no -c). */
export const AUTO_SLOTS = 4;

export interface GgufEstimate {
  bytes: number;
  weights_bytes: number;
  kv_bytes: number;
  overhead_bytes: number;
  /** Tokens the KV cache holds, all slots together. */
  context: number;
  cache_type_k: string;
  cache_type_v: string;
  file: string;
}

export type EstimateResult = GgufEstimate | { error: string };

/** The last value of any of `flags` in argv (`-c 4096` or `--ctx-size=4096`), else the env variable. */
function option(argv: string[], flags: string[], env: Record<string, string>, envName: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (flags.includes(a) && i + 1 < argv.length) value = argv[++i];
    else {
      const eq = flags.find((f) => f.startsWith('--') && a.startsWith(`${f}=`));
      if (eq) value = a.slice(eq.length + 1);
    }
  }
  return value ?? env[envName] ?? process.env[envName];
}

/** The files of a model: itself, or every part of a split one (`x-00001-of-00003.gguf`). */
function modelFiles(path: string): string[] {
  const split = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i.exec(basename(path));
  if (!split) return [path];
  const names = new Set(readdirSync(dirname(path)));
  const count = Number(split[3]);
  const parts = Array.from({ length: count }, (_, i) => `${split[1]}-${String(i + 1).padStart(5, '0')}-of-${split[3]}.gguf`);
  const missing = parts.filter((p) => !names.has(p));
  if (missing.length) throw new Error(`${missing.length} of its ${count} parts are missing (${missing[0]}…)`);
  return parts.map((p) => join(dirname(path), p));
}

/** The estimate for a llama-cpp model, or why there is none (no -m, unreadable file, no attention shape). */
export async function estimateGguf(model: ModelConfig, hubCommand: readonly string[] = []): Promise<EstimateResult> {
  if (!model.argv) return { error: 'a remote model: nothing is loaded here' };
  const argv = resolveCommand(model.argv, { port: model.port ?? 0, model: model.name, hub: hubCommand });
  const file = option(argv, ['-m', '--model'], model.env, 'LLAMA_ARG_MODEL');
  if (!file) return { error: 'the command names no model file (-m); a model fetched with -hf cannot be estimated' };
  const path = resolve(model.cwd ?? process.cwd(), file);
  const ctxText = option(argv, ['-c', '--ctx-size'], model.env, 'LLAMA_ARG_CTX_SIZE');
  const cacheK = (option(argv, ['-ctk', '--cache-type-k'], model.env, 'LLAMA_ARG_CACHE_TYPE_K') ?? 'f16').toLowerCase();
  const cacheV = (option(argv, ['-ctv', '--cache-type-v'], model.env, 'LLAMA_ARG_CACHE_TYPE_V') ?? 'f16').toLowerCase();
  for (const [flag, type] of [['--cache-type-k', cacheK], ['--cache-type-v', cacheV]]) {
    if (!(type in CACHE_TYPE_BYTES)) return { error: `${flag} ${type} is not a cache type llama-server knows (${Object.keys(CACHE_TYPE_BYTES).join(', ')})` };
  }
  if (ctxText !== undefined && !/^\d+$/.test(ctxText)) return { error: `-c ${ctxText} is not a whole number of tokens` };
  const slotsText = option(argv, ['-np', '--parallel'], model.env, 'LLAMA_ARG_N_PARALLEL');
  if (slotsText !== undefined && !/^-?\d+$/.test(slotsText)) return { error: `--parallel ${slotsText} is not a whole number of slots` };
  const slots = slotsText !== undefined && Number(slotsText) > 0 ? Number(slotsText) : AUTO_SLOTS;
  try {
    const files = modelFiles(path);
    const weights = files.reduce((n, f) => n + statSync(f).size, 0);
    // Imported here: the GGUF reader (@huggingface/gguf, ~2 MB of heap) is only needed for a llama-cpp
    // model with a local file, and a hub without one should not carry it.
    const { readGgufInfo } = await import('../init/gguf-info.js');
    const info = await readGgufInfo(files[0], statSync(files[0]).size, { split: files.length > 1 });
    if (!info.attention) return { error: `the header of ${path} lacks the attention shape (block_count, head_count, embedding_length) a KV-cache estimate needs` };
    const asked = ctxText === undefined ? 0 : Number(ctxText);
    const trained = info.contextLength ?? 0;
    if (!asked && !trained) return { error: `no -c and no context_length in the header of ${path}: the context is unknown` };
    const context = Math.ceil((asked || trained * slots) / 256) * 256;
    const kv = kvCacheBytes(info.attention, context, { k: CACHE_TYPE_BYTES[cacheK], v: CACHE_TYPE_BYTES[cacheV] });
    const overhead = runtimeMarginBytes(weights);
    return { bytes: weights + kv + overhead, weights_bytes: weights, kv_bytes: kv, overhead_bytes: overhead, context, cache_type_k: cacheK, cache_type_v: cacheV, file: path };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { error: e.code === 'ENOENT' ? `the model file ${path} does not exist` : `${path}: ${e.message}` };
  }
}
