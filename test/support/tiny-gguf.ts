// Writes a tiny random-weight llama model in GGUF format, so that integration tests can run a real
// llama.cpp `llama-server` without downloading weights. The output is gibberish, but loading, tokenizing,
// inference, the HTTP API, streaming and /health are all real. About 0.5 MB; deterministic per seed.
//
// GGUF v3 layout (all little-endian):
//   "GGUF" magic, u32 version=3, u64 tensor_count, u64 metadata_kv_count
//   metadata: key (string) + u32 value type + value       string = u64 byte length + UTF-8 bytes
//   tensor infos: name, u32 n_dims, u64 dims[n_dims] (innermost first), u32 ggml type, u64 data offset
//   zero padding to `general.alignment` (32), then the tensor data, each tensor aligned to 32.
//
// No chat template is stored: for a model without `tokenizer.chat_template` llama-server falls back to
// its built-in ChatML template, so /v1/chat/completions works as is.
import { writeFileSync } from 'node:fs';
import { mulberry32 } from './prng.js';

// Model shape: llama architecture, 2 layers, 4 heads of 16 dims (no GQA), SwiGLU feed-forward of 128.
const N_EMBD = 64;
const N_LAYER = 2;
const N_HEAD = 4;
const N_HEAD_KV = 4;
const N_FF = 128;
const N_CTX_TRAIN = 2048;

// GGUF metadata value types and ggml tensor types used here.
const T_UINT32 = 4;
const T_INT32 = 5;
const T_FLOAT32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;
const GGML_F32 = 0;
const ALIGNMENT = 32;

// SentencePiece token types, as llama.cpp reads them from tokenizer.ggml.token_type.
const TOK_NORMAL = 1;
const TOK_UNKNOWN = 2;
const TOK_CONTROL = 3;
const TOK_BYTE = 6;

// A few words ("▁" marks a word start in SentencePiece). SPM builds a piece only by merging two adjacent
// pieces that are themselves tokens, so the vocabulary also holds the letters and every word prefix;
// everything else falls back to byte tokens.
const WORDS = ['the', 'a', 'and', 'of', 'to', 'in', 'is', 'it', 'you', 'that', 'hello', 'world', 'model',
  'hub', 'test', 'user', 'assistant', 'system', 'yes', 'no', 'ok', 'one', 'two', 'three'];

type Meta = { type: number; value: number | boolean | string | string[] | number[]; elemType?: number };

/** Little-endian byte writer that grows as needed. */
class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void { this.chunks.push(buf); this.length += buf.length; }
  u32(n: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(n); this.push(b); }
  i32(n: number): void { const b = Buffer.alloc(4); b.writeInt32LE(n); this.push(b); }
  u64(n: number): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); this.push(b); }
  f32(n: number): void { const b = Buffer.alloc(4); b.writeFloatLE(n); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  pad(): void { const n = (ALIGNMENT - (this.length % ALIGNMENT)) % ALIGNMENT; if (n) this.push(Buffer.alloc(n)); }
  buffer(): Buffer { return Buffer.concat(this.chunks); }
}

/** Writes one metadata value (the type tag is written by the caller). */
function writeValue(w: Writer, type: number, value: unknown): void {
  switch (type) {
    case T_UINT32: w.u32(value as number); break;
    case T_INT32: w.i32(value as number); break;
    case T_FLOAT32: w.f32(value as number); break;
    case T_BOOL: w.push(Buffer.from([value ? 1 : 0])); break;
    case T_STRING: w.str(value as string); break;
    default: throw new Error(`unsupported GGUF value type ${type}`);
  }
}

/** The chosen header values over the real ones (see TinyGgufHeader). */
function applyHeader(meta: Record<string, Meta>, h: TinyGgufHeader): void {
  const value = (v: string | number | number[]): Meta =>
    typeof v === 'string' ? { type: T_STRING, value: v } : typeof v === 'number' ? { type: T_UINT32, value: v } : { type: T_ARRAY, elemType: T_INT32, value: v };
  const arch = h.architecture ?? 'llama';
  if (arch !== 'llama') {
    for (const key of Object.keys(meta).filter((k) => k.startsWith('llama.'))) {
      meta[`${arch}.${key.slice('llama.'.length)}`] = meta[key];
      delete meta[key];
    }
    meta['general.architecture'] = value(arch);
  }
  const set: Record<string, string | number | number[] | null | undefined> = {
    'general.name': h.name,
    'general.file_type': h.fileType,
    [`${arch}.context_length`]: h.contextLength,
    [`${arch}.block_count`]: h.blockCount,
    [`${arch}.embedding_length`]: h.embeddingLength,
    [`${arch}.attention.head_count`]: h.headCount,
    [`${arch}.attention.head_count_kv`]: h.headCountKv,
    ...h.meta,
  };
  for (const [key, v] of Object.entries(set)) {
    if (v === undefined) continue;
    if (v === null) delete meta[key];
    else meta[key] = value(v);
  }
}


/** The SPM vocabulary: control tokens, 256 byte-fallback tokens, then word pieces. */
function vocabulary(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [TOK_UNKNOWN, TOK_CONTROL, TOK_CONTROL];
  // Byte fallback: any byte the pieces cannot cover is encoded as <0xNN>; llama.cpp requires all 256.
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOK_BYTE);
  }
  const pieces = new Set<string>(['▁', ...'abcdefghijklmnopqrstuvwxyz']);
  for (const word of WORDS) for (let n = 1; n <= word.length; n++) pieces.add(`▁${word.slice(0, n)}`);
  for (const piece of pieces) {
    tokens.push(piece);
    types.push(TOK_NORMAL);
  }
  // Duplicate token strings make llama.cpp abort while loading the vocabulary.
  if (new Set(tokens).size !== tokens.length) throw new Error('tiny-gguf: duplicate token strings');
  // Scores are log-probabilities; SPM merges the highest-scoring pair first. Control/byte tokens: 0.
  const scores = tokens.map((t, i) => (types[i] === TOK_NORMAL ? -1 / t.length : 0));
  return { tokens, scores, types };
}

/**
 * Header values to write instead of the real ones, for tests that only read headers (`hub init`).
 * The tensors keep the tiny shape, so a file with a changed shape is no longer one llama.cpp loads.
 */
export interface TinyGgufHeader {
  /** `general.name`; null leaves it out. */
  name?: string | null;
  /** `general.architecture`, and the prefix of the model keys (`<arch>.context_length`…). */
  architecture?: string;
  contextLength?: number;
  blockCount?: number;
  embeddingLength?: number;
  headCount?: number;
  /** One number, or one per layer. */
  headCountKv?: number | number[];
  /** `general.file_type` (15 = Q4_K_M); absent unless given. */
  fileType?: number;
  /** Any other keys: a string, a whole number (uint32), a list of whole numbers (int32); null removes the key. */
  meta?: Record<string, string | number | number[] | null>;
}

/** Writes the tiny llama GGUF to `path`. Same seed and header, same bytes. */
export function writeTinyGguf(path: string, options: { seed?: number; header?: TinyGgufHeader } = {}): void {
  const random = mulberry32(options.seed ?? 42);
  const { tokens, scores, types } = vocabulary();
  const nVocab = tokens.length;

  const meta: Record<string, Meta> = {
    'general.architecture': { type: T_STRING, value: 'llama' },
    'general.name': { type: T_STRING, value: 'modelhub-tiny-random' },
    'general.alignment': { type: T_UINT32, value: ALIGNMENT },
    'llama.context_length': { type: T_UINT32, value: N_CTX_TRAIN },
    'llama.embedding_length': { type: T_UINT32, value: N_EMBD },
    'llama.block_count': { type: T_UINT32, value: N_LAYER },
    'llama.feed_forward_length': { type: T_UINT32, value: N_FF },
    'llama.attention.head_count': { type: T_UINT32, value: N_HEAD },
    'llama.attention.head_count_kv': { type: T_UINT32, value: N_HEAD_KV },
    'llama.attention.layer_norm_rms_epsilon': { type: T_FLOAT32, value: 1e-5 },
    'llama.rope.dimension_count': { type: T_UINT32, value: N_EMBD / N_HEAD },
    'tokenizer.ggml.model': { type: T_STRING, value: 'llama' },
    'tokenizer.ggml.tokens': { type: T_ARRAY, elemType: T_STRING, value: tokens },
    'tokenizer.ggml.scores': { type: T_ARRAY, elemType: T_FLOAT32, value: scores },
    'tokenizer.ggml.token_type': { type: T_ARRAY, elemType: T_INT32, value: types },
    'tokenizer.ggml.unknown_token_id': { type: T_UINT32, value: 0 },
    'tokenizer.ggml.bos_token_id': { type: T_UINT32, value: 1 },
    'tokenizer.ggml.eos_token_id': { type: T_UINT32, value: 2 },
    'tokenizer.ggml.add_bos_token': { type: T_BOOL, value: true },
    'tokenizer.ggml.add_eos_token': { type: T_BOOL, value: false },
  };

  applyHeader(meta, options.header ?? {});

  // Tensors with their shapes, innermost dimension first (ggml's ne[0], ne[1]).
  // Norm weights are 1 (a plain RMS norm); everything else is small uniform noise.
  const tensors: { name: string; dims: number[]; ones?: boolean }[] = [
    { name: 'token_embd.weight', dims: [N_EMBD, nVocab] },
    { name: 'output_norm.weight', dims: [N_EMBD], ones: true },
    { name: 'output.weight', dims: [N_EMBD, nVocab] },
  ];
  const kvDim = (N_EMBD / N_HEAD) * N_HEAD_KV;
  for (let i = 0; i < N_LAYER; i++) {
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [N_EMBD], ones: true },
      { name: `blk.${i}.attn_q.weight`, dims: [N_EMBD, N_EMBD] },
      { name: `blk.${i}.attn_k.weight`, dims: [N_EMBD, kvDim] },
      { name: `blk.${i}.attn_v.weight`, dims: [N_EMBD, kvDim] },
      { name: `blk.${i}.attn_output.weight`, dims: [N_EMBD, N_EMBD] },
      { name: `blk.${i}.ffn_norm.weight`, dims: [N_EMBD], ones: true },
      { name: `blk.${i}.ffn_gate.weight`, dims: [N_EMBD, N_FF] },
      { name: `blk.${i}.ffn_up.weight`, dims: [N_EMBD, N_FF] },
      { name: `blk.${i}.ffn_down.weight`, dims: [N_FF, N_EMBD] },
    );
  }

  const w = new Writer();
  w.push(Buffer.from('GGUF', 'ascii'));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(Object.keys(meta).length);
  for (const [key, { type, value, elemType }] of Object.entries(meta)) {
    w.str(key);
    w.u32(type);
    if (type === T_ARRAY) {
      const items = value as unknown[];
      w.u32(elemType!);
      w.u64(items.length);
      for (const item of items) writeValue(w, elemType!, item);
    } else {
      writeValue(w, type, value);
    }
  }

  // Tensor infos; offsets are relative to the start of the (aligned) data section.
  const data = new Writer();
  for (const t of tensors) {
    const count = t.dims.reduce((a, b) => a * b, 1);
    const values = new Float32Array(count);
    for (let j = 0; j < count; j++) values[j] = t.ones ? 1 : (random() * 2 - 1) * 0.1;
    data.pad();
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_F32);
    w.u64(data.length);
    data.push(Buffer.from(values.buffer)); // host byte order: little-endian on x86-64/arm64
  }
  w.pad();
  w.push(data.buffer());
  writeFileSync(path, w.buffer());
}
