// Ollama (`ollama serve`, with OLLAMA_HOST=127.0.0.1:${PORT}). One server can hold many models; the
// hub manages the one named by served_model (or the hub name):
//   load:   POST /api/generate {"model": id}                 (no prompt: just loads it)
//   unload: POST /api/generate {"model": id, "keep_alive": 0}
//   state:  GET  /api/ps → {"models": [{"name": "llama3.2:latest", "model": ...}, ...]}
// Readiness: GET /api/version. Ollama also unloads on its own after its keep_alive (5m by default);
// set OLLAMA_KEEP_ALIVE=-1 in the model's env to leave that to the hub.
// Its memory control is a field in ordinary generate/chat bodies (keep_alive: 0), not an endpoint
// of its own, so /upstream has nothing to refuse. A client that sends keep_alive: 0 unloads the
// model behind the hub's back; Ollama loads it again on the next request by itself, so nothing
// fails, but the hub's memory state says "loaded" until its own next unload or load.
import { control, getJsonFrom, readyByPaths, type BackendAdapter, type BackendModel } from './adapter.js';

/** Ollama reports "llama3.2:latest" for a model requested as "llama3.2". */
const sameModel = (listed: string, model: BackendModel) => listed === model.id || listed === `${model.id}:latest`;

export const ollamaAdapter: BackendAdapter = {
  kind: 'ollama',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/api/version']),
  memory: {
    paths: [],
    load: async (endpoint, model) => void (await control(endpoint, '/api/generate', { model: model.id })),
    unload: async (endpoint, model) => void (await control(endpoint, '/api/generate', { model: model.id, keep_alive: 0 })),
    isLoaded: async (endpoint, model) => {
      const ps = await getJsonFrom<{ models?: Array<{ name?: string; model?: string }> }>(endpoint, '/api/ps');
      return (ps.models ?? []).some((m) => sameModel(m.name ?? '', model) || sameModel(m.model ?? '', model));
    },
  },
};
