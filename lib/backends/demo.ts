// The bundled demo backend (`hub demo-model`): /health answers 503 while it "loads".
import { readyByPaths, type BackendAdapter } from './adapter.js';

export const demoAdapter: BackendAdapter = {
  kind: 'demo',
  isReady: (endpoint, healthPath) => readyByPaths(endpoint, [healthPath ?? '/health']),
};
