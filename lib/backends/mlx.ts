// mlx-openai-server (`mlx-openai-server launch --model-path ... --port ${PORT}`): GET /health answers
// once the model is loaded. Its idle auto-unload is internal (no HTTP call to free or restore the
// weights on demand), so the hub treats it as having no memory control: "unload" means stopping it.
import { readyByPaths, type BackendAdapter } from './adapter.js';

export const mlxAdapter: BackendAdapter = {
  kind: 'mlx',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health', '/v1/models']),
};
