// llama.cpp's llama-server: GET /health answers 503 {"error": {"message": "Loading model"}} while the
// weights load and 200 {"status": "ok"} once it can serve. It has no API to free the weights and keep
// the process, so "unload" means stopping it.
import { basename } from 'node:path';
import { readyByPaths, type BackendAdapter, type LoadStage } from './adapter.js';

export const llamaCppAdapter: BackendAdapter = {
  kind: 'llama-cpp',
  isReady: (endpoint, model) => readyByPaths(endpoint, [model.healthPath ?? '/health']),
  // /v1/messages arrived in late 2025 and /v1/responses (partial) in early 2026: older builds answer 404.
  apis: { responses: 'detect', messages: 'detect' },
  progress: llamaStage,
};

// llama-server names its load stages in its log but draws no measure (its dots have no line end):
// the hub shows the stage and estimates the fraction from the model's usual start time.
const LLAMA_STAGES: ReadonlyArray<[RegExp, string]> = [
  [/^llama_model_loader: loaded meta data/, 'reading the model file'],
  [/^load_tensors: loading model tensors/, 'loading weights'],
  [/^llama_context: constructing llama_context/, 'allocating the context'],
  [/^llama_kv_cache/, 'allocating the KV cache'],
  [/warming up the model/, 'warming up'],
  [/^main: model loaded/, 'model loaded'],
];

export function llamaStage(line: string): LoadStage | undefined {
  for (const [pattern, stage] of LLAMA_STAGES) if (pattern.test(line)) return { stage };
  return undefined;
}

/**
 * llama-server answers with its model file's path as `model` unless it is given `--alias`: the hub
 * adds `--alias <model name>` to a command that runs llama-server itself and sets none, so answers
 * carry the name clients asked for. A wrapper (`sh -c ...`) is left alone: it must pass the alias.
 */
export function withAlias(argv: string[], name: string): string[] {
  if (!runsLlamaServer(argv)) return argv;
  if (argv.some((a) => a === '-a' || a === '--alias' || a.startsWith('--alias='))) return argv;
  return [...argv, '--alias', name];
}

/** The command's program is llama-server itself (by name or path), not a wrapper around it. */
export const runsLlamaServer = (argv: readonly string[]): boolean => /^llama-server/.test(basename(argv[0]));

/**
 * The folder a command passes as `--slot-save-path DIR` or `--slot-save-path=DIR` (anywhere in its
 * arguments, so a wrapper that hands its arguments on is understood too), as written; else undefined.
 */
export function slotSavePathOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--slot-save-path' && i + 1 < argv.length) return argv[i + 1];
    if (argv[i].startsWith('--slot-save-path=')) return argv[i].slice('--slot-save-path='.length);
  }
  return undefined;
}
