// The model servers `hub init` looks for on PATH, and for those it cannot fill in by itself (it reads
// GGUF files, which only llama-server serves), a commented sample the user completes. Nothing found
// is run: a `vllm --version` alone imports torch for seconds.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface BackendProgram {
  /** The executable's name on PATH. */
  program: string;
  /** The hub's backend kind for it (docs/backends.md). */
  backend: string;
  /** What it serves, for the report. */
  serves: string;
  /** A commented hub.yaml sample (model lines, indented for `models:`), where init cannot write a model itself. */
  sample?: (path: string) => string[];
}

const q = (s: string) => JSON.stringify(s);

export const BACKEND_PROGRAMS: BackendProgram[] = [
  { program: 'llama-server', backend: 'llama-cpp', serves: 'GGUF models (llama.cpp)' },
  {
    program: 'vllm', backend: 'vllm', serves: 'Hugging Face model folders (vLLM)',
    sample: (p) => [
      'my-vllm-model:',
      '  backend: vllm                     # unload = sleep, load = wake',
      `  cmd: [${q(p)}, serve, /path/to/model, --port, "\${PORT}", --served-model-name, my-vllm-model, --enable-sleep-mode]`,
      '  env: { VLLM_SERVER_DEV_MODE: "1" }',
      '  memory: 16GiB                     # what it holds on the GPU',
    ],
  },
  {
    program: 'sglang', backend: 'sglang', serves: 'Hugging Face model folders (SGLang)',
    sample: (p) => [
      'my-sglang-model:',
      '  backend: sglang                   # or cmd: [python, -m, sglang.launch_server, ...]',
      `  cmd: [${q(p)}, serve, --model-path, /path/to/model, --port, "\${PORT}", --enable-memory-saver]`,
      '  memory: 16GiB',
    ],
  },
  {
    program: 'mlx-openai-server', backend: 'mlx', serves: 'MLX models (Apple silicon)',
    sample: (p) => [
      'my-mlx-model:',
      '  backend: mlx',
      `  cmd: [${q(p)}, launch, --model-path, /path/to/mlx-model, --model-type, lm, --port, "\${PORT}"]`,
    ],
  },
  {
    program: 'mlx_lm.server', backend: 'mlx', serves: 'MLX models (Apple silicon)',
    sample: (p) => [
      'my-mlx-lm-model:',
      '  backend: mlx',
      `  cmd: [${q(p)}, --model, /path/to/mlx-model, --port, "\${PORT}"]`,
    ],
  },
  {
    program: 'ollama', backend: 'ollama', serves: 'models pulled with ollama pull',
    sample: (p) => [
      'llama3.2:',
      '  backend: ollama',
      `  cmd: [${q(p)}, serve]`,
      '  env: { OLLAMA_HOST: "127.0.0.1:${PORT}", OLLAMA_KEEP_ALIVE: "-1" }',
      '  served_model: llama3.2           # the Ollama model (ollama list)',
    ],
  },
  {
    program: 'whisper-server', backend: 'openai', serves: 'speech to text (whisper.cpp)',
    sample: (p) => [
      'whisper:',
      '  backend: openai',
      `  cmd: [${q(p)}, -m, /path/to/ggml-base.en.bin, --port, "\${PORT}"]`,
      '  health: { path: / }',
    ],
  },
];

/** The executable `program` on `path` (a PATH string), as spawn would find it, or undefined. */
export function findOnPath(program: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, program);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch { /* not here */ }
  }
  return undefined;
}

export interface FoundBackend { spec: BackendProgram; path: string }

export function findBackends(path = process.env.PATH): { found: FoundBackend[]; missing: BackendProgram[] } {
  const found: FoundBackend[] = [];
  const missing: BackendProgram[] = [];
  for (const spec of BACKEND_PROGRAMS) {
    const at = findOnPath(spec.program, path);
    if (at) found.push({ spec, path: at });
    else missing.push(spec);
  }
  return { found, missing };
}
