// Backend adapters by config name: one file per backend, registered here.
import type { BackendKind } from '../config/types.js';
import type { BackendAdapter } from './adapter.js';
import { demoAdapter } from './demo.js';
import { llamaCppAdapter } from './llama-cpp.js';
import { mlxAdapter } from './mlx.js';
import { ollamaAdapter } from './ollama.js';
import { openaiAdapter } from './openai.js';
import { sglangAdapter } from './sglang.js';
import { vllmAdapter } from './vllm.js';

const adapters: Record<BackendKind, BackendAdapter> = {
  openai: openaiAdapter,
  demo: demoAdapter,
  'llama-cpp': llamaCppAdapter,
  vllm: vllmAdapter,
  sglang: sglangAdapter,
  ollama: ollamaAdapter,
  mlx: mlxAdapter,
};

export const adapterFor = (kind: BackendKind): BackendAdapter => adapters[kind];
export type { BackendAdapter, BackendModel, Endpoint, MemoryControl } from './adapter.js';
