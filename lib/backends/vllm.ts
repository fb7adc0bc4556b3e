// vLLM (`vllm serve ... --enable-sleep-mode`, with VLLM_SERVER_DEV_MODE=1 so the endpoints exist):
//   POST /sleep?level=1  offloads the weights to CPU RAM and frees the KV cache (GPU memory freed);
//                        level=2 discards the weights too (host RAM freed; the wake reads them again)
//   POST /wake_up        brings them back
//   GET  /is_sleeping    {"is_sleeping": bool}   (read-only: /upstream may call it)
// Dev mode also has POST /collective_rpc, which runs any worker method, sleep and wake_up included:
// /upstream refuses it with the other two.
// Readiness: GET /health answers 200 once the engine is up.
import { control, getJsonFrom, readyByPaths, tqdmStage, type BackendAdapter, type MemoryControl } from './adapter.js';

export const sleepMode: MemoryControl = {
  paths: ['/sleep', '/wake_up', '/collective_rpc'],
  unload: async (endpoint, model) => void (await control(endpoint, `/sleep?level=${model.sleepLevel ?? 1}`)),
  load: async (endpoint) => void (await control(endpoint, '/wake_up')),
  isLoaded: async (endpoint) => !(await getJsonFrom<{ is_sleeping: boolean }>(endpoint, '/is_sleeping')).is_sleeping,
};

export const vllmAdapter: BackendAdapter = {
  kind: 'vllm',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health']),
  // The Responses API is served since 0.10; Anthropic's Messages only by recent versions.
  apis: { responses: 'native', messages: 'detect' },
  memory: sleepMode,
  // "Loading safetensors checkpoint shards: 45% Completed | 5/11", then "Capturing CUDA graph shapes: 40%|…".
  progress: tqdmStage,
};
