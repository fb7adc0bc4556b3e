// SGLang (`python -m sglang.launch_server ... --enable-memory-saver`):
//   POST /release_memory_occupation  {}  frees weights and KV cache from the GPU
//   POST /resume_memory_occupation   {}  restores them
// Both answer 200, some versions with {"success": bool}. SGLang has no endpoint that reports the
// memory state, so a 200 without "success": false is taken as done (isLoaded cannot tell).
// Readiness: GET /health answers 200 once the server is up.
import { control, readyByPaths, tqdmStage, type BackendAdapter, type ProbeResult } from './adapter.js';

function assertSuccess(res: ProbeResult, what: string): void {
  let body: unknown;
  try { body = JSON.parse(res.body); } catch { return; } // empty or non-JSON 200: done
  if (body && typeof body === 'object' && (body as { success?: boolean }).success === false) {
    throw new Error(`${what} reported failure: ${res.body.slice(0, 200)}`);
  }
}

export const sglangAdapter: BackendAdapter = {
  kind: 'sglang',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health']),
  memory: {
    paths: ['/release_memory_occupation', '/resume_memory_occupation'],
    unload: async (endpoint) => assertSuccess(await control(endpoint, '/release_memory_occupation', {}), 'release_memory_occupation'),
    load: async (endpoint) => assertSuccess(await control(endpoint, '/resume_memory_occupation', {}), 'resume_memory_occupation'),
    isLoaded: async () => undefined,
  },
  // Like vLLM: "Loading safetensors checkpoint shards: 50% Completed | 1/2", "Capturing batches (bs=4 …): 75%|…".
  progress: tqdmStage,
};
