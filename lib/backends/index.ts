// Backend adapters by config name. Kinds without a dedicated adapter yet fall back to the generic
// OpenAI one, whose readiness check (/health, then /v1/models) fits llama-server, vLLM, SGLang and
// mlx-openai-server; Ollama answers neither, so it is probed at its version endpoint.
import type { BackendKind } from '../config/types.js';
import { readyByPaths, type BackendAdapter } from './adapter.js';
import { demoAdapter } from './demo.js';
import { openaiAdapter } from './openai.js';

const ollamaReadiness: BackendAdapter = {
  kind: 'ollama',
  isReady: (endpoint, healthPath) => readyByPaths(endpoint, [healthPath ?? '/api/version']),
};

const adapters: Record<BackendKind, BackendAdapter> = {
  openai: openaiAdapter,
  demo: demoAdapter,
  'llama-cpp': openaiAdapter,
  vllm: openaiAdapter,
  sglang: openaiAdapter,
  mlx: openaiAdapter,
  ollama: ollamaReadiness,
};

export const adapterFor = (kind: BackendKind): BackendAdapter => adapters[kind];
export type { BackendAdapter, Endpoint } from './adapter.js';
