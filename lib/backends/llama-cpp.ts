// llama.cpp's llama-server: GET /health answers 503 {"error": {"message": "Loading model"}} while the
// weights load and 200 {"status": "ok"} once it can serve. It has no API to free the weights and keep
// the process, so "unload" means stopping it.
import { readyByPaths, type BackendAdapter } from './adapter.js';

export const llamaCppAdapter: BackendAdapter = {
  kind: 'llama-cpp',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health']),
  // /v1/messages arrived in late 2025 and /v1/responses (partial) in early 2026: older builds answer 404.
  apis: { responses: 'detect', messages: 'detect' },
};
