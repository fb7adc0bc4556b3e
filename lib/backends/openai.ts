// Any OpenAI-style server: ready when GET /health (or, where that does not exist, /v1/models)
// answers 2xx. It has no memory control: "unload" means stopping the process.
import { readyByPaths, type BackendAdapter } from './adapter.js';

export const openaiAdapter: BackendAdapter = {
  kind: 'openai',
  isReady: (endpoint, model) => readyByPaths(endpoint, model.healthPath ? [model.healthPath] : ['/health', '/v1/models']),
  // Any server at all: assume nothing, find out from its first answer.
  apis: { responses: 'detect', messages: 'detect' },
};
