// The GGUF estimate's KV cache against a real llama-server's own count (built once by
// scripts/llama-server.sh and cached outside the repo): the same tiny GGUF, the same command line,
// and the size llama.cpp prints when it allocates the cache.
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import type { ModelConfig } from '../lib/config/types.js';
import { estimateGguf, type GgufEstimate } from '../lib/runtime/gguf-estimate.js';
import { PACKAGE_ROOT, freePort, tempDir, waitFor } from './helpers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const run = promisify(execFile);

/** Starts llama-server with `args` (verbose: the cache size is an info line) and resolves with its "llama_kv_cache: size = X MiB (N cells" figures. */
async function kvOf(t: { teardown(fn: () => void): void }, bin: string, args: string[]): Promise<{ mib: number; cells: number }> {
  const child = spawn(bin, [...args, '--host', '127.0.0.1', '--port', String(await freePort()), '-t', '1', '-lv', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const m = await waitFor('llama-server to size its KV cache', () => /llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells/.exec(out), 60_000);
  child.kill('SIGKILL');
  return { mib: Number(m[1]), cells: Number(m[2]) };
}

t.test('the KV-cache estimate matches what llama-server allocates', { timeout: 15 * 60_000 }, async (t) => {
  const { stdout } = await run('bash', [join(PACKAGE_ROOT, 'scripts', 'llama-server.sh')], { maxBuffer: 64 * 2 ** 20 });
  const bin = stdout.trim().split('\n').at(-1)!;
  const file = join(tempDir(t), 'tiny.gguf');
  writeTinyGguf(file); // 2 layers, 4 KV heads of 16, trained for 2048 tokens
  for (const args of [['-c', '4096'], ['-c', '1000'], [], ['-np', '1'], ['-c', '0', '-np', '3'], ['-c', '2048', '-np', '2']]) {
    const config = { name: 'm', backend: 'llama-cpp', argv: [bin, '-m', file, ...args], env: {}, memory: 0 } as unknown as ModelConfig;
    const estimate = (await estimateGguf(config)) as GgufEstimate;
    const real = await kvOf(t, bin, ['-m', file, ...args]);
    // With --parallel set, llama-server gives each slot its own cache and prints the cells of one.
    const cells = args.includes('-np') ? real.cells * Number(args[args.indexOf('-np') + 1]) : real.cells;
    t.equal(estimate.context, cells, `${args.join(' ') || 'no -c'}: the context llama-server uses (${cells} tokens)`);
    t.equal(Number((estimate.kv_bytes / 2 ** 20).toFixed(2)), real.mib, `${args.join(' ') || 'no -c'}: the KV cache size it prints (${real.mib} MiB)`);
  }
});
