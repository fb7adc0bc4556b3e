// The bundled demo backend (`hub demo-model`): /health answers 503 while it "loads", and it
// implements vLLM's sleep-mode API with real RAM behind it.
import { readyByPaths, type BackendAdapter } from './adapter.js';
import { sleepMode } from './vllm.js';

export const demoAdapter: BackendAdapter = {
  kind: 'demo',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health']),
  memory: sleepMode,
};
