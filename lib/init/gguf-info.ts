// What `hub init` needs from a GGUF file's header, read with Hugging Face's GGUF parser
// (@huggingface/gguf: local files are read in 2 MB ranges, never whole; counts and string lengths are
// bounded). The parser pads a short read with zeros, so a truncated file can "parse": the header must
// also end inside the file.
import { GGMLFileQuantizationType, gguf, parseGGUFQuantLabel } from '@huggingface/gguf';
import type { AttentionShape } from './estimate.js';

export interface GgufInfo {
  architecture: string;
  /** `general.name`, when the file has one. */
  name?: string;
  /** `general.type` ("model", "adapter", "mmproj"…), when present. */
  type?: string;
  /** `general.size_label` ("7B"), else counted from the tensor shapes (undefined for split files). */
  parameters?: string | number;
  /** The quantization: `general.file_type` by name ("Q4_K_M"), else read from the file name. */
  quantization?: string;
  /** `<arch>.context_length`: the context the model was trained for. */
  contextLength?: number;
  /** Undefined when the header lacks what a KV estimate needs (e.g. a state-space model). */
  attention?: AttentionShape;
  /** `<arch>.pooling_type` is set: an embedding model. */
  embedding: boolean;
  tensorCount: number;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'bigint' ? Number(v) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

/** Reads the header of `path` (a whole model, or the first part of a split one). Throws with a reason a person can act on. */
export async function readGgufInfo(path: string, fileSize: number, options: { split: boolean }): Promise<GgufInfo> {
  let parsed: Awaited<ReturnType<typeof gguf>> & { parameterCount?: number };
  try {
    // The tensors of a split model are spread over its parts: counting the first one's would mislead.
    parsed = options.split ? await gguf(path, { allowLocalFile: true }) : await gguf(path, { allowLocalFile: true, computeParametersCount: true });
  } catch (err) {
    throw new Error(`not a readable GGUF file (${(err as Error).message})`);
  }
  if (Number(parsed.tensorDataOffset) > fileSize) {
    throw new Error(`the header runs past the end of the file (${Number(parsed.tensorDataOffset)} bytes of header in a ${fileSize}-byte file): truncated, or still downloading`);
  }
  // Keys depend on the architecture, which the parser's strict types cannot know for an arbitrary file.
  const meta = parsed.metadata as unknown as Record<string, unknown>;
  const architecture = str(meta['general.architecture']);
  if (!architecture) throw new Error('the header names no general.architecture');
  const key = (k: string) => meta[`${architecture}.${k}`];

  const fileType = num(meta['general.file_type']);
  const quantName = fileType !== undefined ? (GGMLFileQuantizationType as unknown as Record<number, string>)[fileType] : undefined;
  const parameters = str(meta['general.size_label']) ?? (parsed.parameterCount && parsed.parameterCount > 0 ? parsed.parameterCount : undefined);

  const layers = num(key('block_count'));
  const heads = num(key('attention.head_count'));
  const embedding = num(key('embedding_length'));
  const kvRaw = key('attention.head_count_kv');
  const kvHeads = Array.isArray(kvRaw) ? kvRaw.map((x) => num(x) ?? 0) : num(kvRaw);
  const attention = layers && heads && embedding
    ? { layers, heads, embedding, kvHeads, keyLength: num(key('attention.key_length')), valueLength: num(key('attention.value_length')) }
    : undefined;

  return {
    architecture,
    name: str(meta['general.name']),
    type: str(meta['general.type']),
    parameters,
    quantization: quantName ?? parseGGUFQuantLabel(path.split('/').at(-1) ?? ''),
    contextLength: num(key('context_length')),
    attention,
    embedding: key('pooling_type') !== undefined,
    tensorCount: Number(meta.tensor_count ?? parsed.tensorInfos.length),
  };
}
