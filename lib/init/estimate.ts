// The arithmetic `hub init` does with a GGUF header: which context to give llama-server, how much
// memory the model will hold (weights + KV cache + a margin), and a model name users can type. Pure
// functions, so the numbers are tested without any file.

/** The attention shape a KV-cache estimate needs, as read from a GGUF header. */
export interface AttentionShape {
  /** Transformer layers (`<arch>.block_count`). */
  layers: number;
  /** Query heads (`<arch>.attention.head_count`). */
  heads: number;
  /** KV heads per layer (`<arch>.attention.head_count_kv`, a number or one per layer); default: heads. */
  kvHeads?: number | number[];
  /** `<arch>.embedding_length`. */
  embedding: number;
  /** Per-head K and V widths (`<arch>.attention.key_length` / `value_length`); default: embedding / heads. */
  keyLength?: number;
  valueLength?: number;
}

/** llama-server's default KV cache type is f16: two bytes per element. */
export const KV_BYTES_PER_ELEMENT = 2;

/**
 * Bytes of llama.cpp's KV cache for `context` tokens: for every layer, a K and a V row of
 * kv_heads × head width per token, at `bytes` per element (f16 unless the cache type says otherwise).
 * An upper bound for models whose layers use sliding-window or compressed (MLA) attention, which
 * llama.cpp stores in less.
 */
export function kvCacheBytes(shape: AttentionShape, context: number, bytes = { k: KV_BYTES_PER_ELEMENT, v: KV_BYTES_PER_ELEMENT }): number {
  const headK = shape.keyLength ?? shape.embedding / shape.heads;
  const headV = shape.valueLength ?? shape.embedding / shape.heads;
  const perLayer = Array.isArray(shape.kvHeads)
    ? shape.kvHeads.slice(0, shape.layers)
    : Array.from({ length: shape.layers }, () => (shape.kvHeads as number | undefined) ?? shape.heads);
  const bytesPerToken = perLayer.reduce((sum, kv) => sum + kv * (headK * bytes.k + headV * bytes.v), 0);
  return Math.ceil(bytesPerToken * context);
}

/** The context `hub init` gives a model when none is asked for. */
export const DEFAULT_CONTEXT = 8192;

/**
 * The `-c` for llama-server, and why. Left out, llama-server takes the trained context, which for
 * current models is 32K–128K tokens and a KV cache of many GiB per model; a hub that swaps models
 * wants each to take what a chat needs.
 */
export function chooseContext(trained: number | undefined, cap = DEFAULT_CONTEXT): { context: number; why: string } {
  if (trained === undefined || !(trained > 0)) return { context: cap, why: `the header has no context length; ${cap} is the default` };
  if (trained <= cap) return { context: trained, why: `its trained context (${trained}) fits under ${cap}` };
  return { context: cap, why: `trained for ${trained}, capped at ${cap} to keep the KV cache small (--context to change)` };
}

/** llama.cpp's compute buffers and runtime beyond weights and KV: 10% of the weights, at least 128 MiB. */
export function runtimeMarginBytes(fileBytes: number): number {
  return Math.max(128 * 2 ** 20, Math.ceil(fileBytes * 0.1));
}

/** `memory:` is written in steps of 256 MiB, rounded up, so that it reads well and errs on the safe side. */
const MEMORY_STEP = 256 * 2 ** 20;

export interface MemoryEstimate { total: number; file: number; kv: number; margin: number }

export function estimateMemory(fileBytes: number, kvBytes: number): MemoryEstimate {
  const margin = runtimeMarginBytes(fileBytes);
  const total = Math.ceil((fileBytes + kvBytes + margin) / MEMORY_STEP) * MEMORY_STEP;
  return { total, file: fileBytes, kv: kvBytes, margin };
}

/**
 * A size as hub.yaml takes it, exact for multiples of 256 MiB: "768MiB", "6GiB", "6.25GiB". Other
 * sizes (from --max-memory) are written in whole MiB, rounded down.
 */
export function formatMemory(bytes: number): string {
  const gib = bytes / 2 ** 30;
  if (bytes >= 2 ** 30 && Number.isInteger(gib * 100)) return `${gib}GiB`;
  return `${Math.floor(bytes / 2 ** 20)}MiB`;
}

/** A size for people, one decimal: "4.4GiB", "512MiB", "640KiB". */
export function describeBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 || Number.isInteger(v) ? v : v.toFixed(1)}${units[i]}`;
}

/** A parameter count as model cards write it: "7.6B", "494M", "128K". */
export function formatParameters(count: number): string {
  const [div, unit] = count >= 1e12 ? [1e12, 'T'] : count >= 1e9 ? [1e9, 'B'] : count >= 1e6 ? [1e6, 'M'] : count >= 1e3 ? [1e3, 'K'] : [1, ''];
  const v = count / div;
  return `${v >= 100 || div === 1 ? Math.round(v) : +v.toFixed(1)}${unit}`;
}

/** Longest name `hub init` writes: long file names are cut at a separator. */
export const MAX_NAME_LENGTH = 64;

/**
 * A model name from a file name or `general.name`: lower case, runs of anything but letters, digits
 * and `._-` become one `-`, no separator twice in a row or at either end ("Qwen2.5-7B-Instruct-Q4_K_M"
 * → "qwen2.5-7b-instruct-q4_k_m"). That is a slug, which every version of the config rules accepts,
 * and it is what people type. Empty when nothing is left.
 */
export function nameFrom(text: string): string {
  let name = text
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/[._-]{2,}/g, (run) => run[0])
    .replace(/^[._-]+|[._-]+$/g, '');
  if (name.length > MAX_NAME_LENGTH) name = name.slice(0, MAX_NAME_LENGTH).replace(/[._-][^._-]*$/, '').replace(/[._-]+$/, '');
  return name;
}

/** The file name without `.gguf` and without a split suffix (`-00001-of-00003`). */
export function fileStem(fileName: string): string {
  return fileName.replace(/\.gguf$/i, '').replace(/-\d{5}-of-\d{5}$/, '');
}

/** `base`, or `base-2`, `base-3`… whichever is not taken yet; the result is added to `taken`. */
export function uniqueName(base: string, taken: Set<string>): string {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
  taken.add(name);
  return name;
}
