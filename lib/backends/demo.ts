// The bundled demo backend (`hub demo-model`): /health answers 503 while it "loads", and it
// implements vLLM's sleep-mode API with real RAM behind it. While it loads it draws a progress bar the
// way vLLM does ("Loading demo weights:  50% Completed | 2/4").
import { readyByPaths, tqdmStage, type BackendAdapter } from './adapter.js';
import { sleepMode } from './vllm.js';

export const demoAdapter: BackendAdapter = {
  kind: 'demo',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health']),
  memory: sleepMode,
  progress: tqdmStage,
  // Printed after its load finished and /health turned 200 (lib/demo/server.ts).
  readyLine: /^demo-model .+: ready on port \d+$/m,
};
