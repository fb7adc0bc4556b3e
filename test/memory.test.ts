// Measuring memory, piece by piece: the RSS of a whole process tree (a real child that forks a
// grandchild which allocates), the nvidia-smi CSV, the per-model store in state_dir, and the GGUF
// estimate's arithmetic on GGUF files this test writes.
import { spawn } from 'node:child_process';
import t from 'tap';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../lib/config/types.js';
import { estimateGguf, type GgufEstimate } from '../lib/runtime/gguf-estimate.js';
import { GpuProbe, gpuBytesOf, parseDevices, parseProcesses } from '../lib/runtime/gpu.js';
import { KEEP_LOADS, MemoryHistory } from '../lib/runtime/memory-history.js';
import { processTree, residentBytes, treeResidentBytes } from '../lib/runtime/resident.js';
import { tempDir, waitFor } from './helpers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const MiB = 2 ** 20;

/** A node process that forks a grandchild holding `mib` MiB of touched memory; resolves with both pids. */
async function parentWithHungryChild(t: { teardown(fn: () => void): void }, mib: number): Promise<{ parent: number; grandchild: number }> {
  const grandchild = `const b = Buffer.alloc(${mib} * 1048576, 1); console.log('ready ' + process.pid); setInterval(() => b[0]++, 1000);`;
  const parent = `const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: ['ignore', 'inherit', 'inherit'] }); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', parent], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const pid = await waitFor('the grandchild to allocate', () => /ready (\d+)/.exec(out)?.[1]);
  return { parent: child.pid!, grandchild: Number(pid) };
}

t.test('the RSS of a process tree counts a grandchild that allocates', async (t) => {
  const { parent, grandchild } = await parentWithHungryChild(t, 96);
  const tree = processTree(parent);
  t.equal(tree[0], parent, 'the tree starts at the pid asked about');
  t.ok(tree.includes(grandchild), 'the grandchild is found through /proc children files');
  t.ok(processTree(parent, { scan: true }).includes(grandchild), 'and by the scan of every parent pid, where the kernel has no children files');
  const own = residentBytes(parent)!;
  const total = treeResidentBytes(parent)!;
  t.ok(total >= own + 90 * MiB, `the tree holds the grandchild's 96 MiB (${Math.round(own / MiB)} MiB own, ${Math.round(total / MiB)} MiB tree)`);
  t.equal(treeResidentBytes(2 ** 22 + 12345), undefined, 'a pid that does not exist has no figure');
  t.same(processTree(2 ** 22 + 12345), [2 ** 22 + 12345], 'and no children');
});

t.test("nvidia-smi's CSV, odd output included", async (t) => {
  t.same(parseDevices('0, GPU-1, NVIDIA GeForce RTX 4090, 24564, 1203\n\n1, GPU-2, Tesla T4, 15360 MiB, 0 MiB\r\n'), [
    { index: 0, uuid: 'GPU-1', name: 'NVIDIA GeForce RTX 4090', total: 24564 * MiB, used: 1203 * MiB },
    { index: 1, uuid: 'GPU-2', name: 'Tesla T4', total: 15360 * MiB, used: 0 },
  ], 'blank lines and CRLF are skipped; a unit left on anyway is read');
  t.same(parseDevices('2, GPU-3, Weird, Name, [N/A], [Not Supported]'), [{ index: 2, uuid: 'GPU-3', name: 'Weird, Name', total: null, used: null }], 'a name with ", " and values the driver cannot tell');
  t.same(parseDevices(''), [], 'no GPU: no devices');
  t.throws(() => parseDevices('0, GPU-1, X, lots, 12'), /unexpected line from nvidia-smi --query-gpu: "0, GPU-1, X, lots, 12" \(memory.total "lots" is not a number of MiB\)/, 'a bad figure names the line');
  t.throws(() => parseDevices('NVIDIA-SMI has failed'), /expected 5 fields, got 1/);
  t.same(parseProcesses('GPU-1, 4242, 1500\nGPU-1, 77, [N/A]\n'), [{ gpu: 'GPU-1', pid: 4242, used: 1500 * MiB }, { gpu: 'GPU-1', pid: 77, used: null }], 'processes, one without permission to see its use');
  t.same(parseProcesses('No running processes found\n'), [], 'the sentence some drivers print instead of nothing');
  t.throws(() => parseProcesses('GPU-1, x, 5'), /pid "x" is not a whole number/);
  const snap = { devices: [], processes: parseProcesses('GPU-1, 10, 100\nGPU-2, 11, 50\nGPU-1, 12, 7\nGPU-1, 13, [N/A]'), at: 0 };
  t.same([...gpuBytesOf(snap, [10, 11, 13])], [['GPU-1', 100 * MiB], ['GPU-2', 50 * MiB]], 'a tree\'s GPU memory: its pids only, per device');
});

t.test('the GPU probe: absent without nvidia-smi, said once', async (t) => {
  const said: string[] = [];
  const probe = new GpuProbe({ command: '/nonexistent/nvidia-smi', info: (m) => said.push(`info ${m}`), warn: (m) => said.push(`warn ${m}`) });
  t.equal(await probe.read(), undefined);
  t.equal(await probe.read(), undefined);
  t.equal(probe.runs, 0, 'not even run: it is looked for on PATH first, and not again for a while');
  t.same(said, ['info no nvidia-smi on PATH: no GPU memory is shown or measured (only host RSS)'], 'one line, not a warning');
});

t.test('the GPU probe: a hung nvidia-smi is cut at the timeout, warned about once, and left alone for a while', async (t) => {
  const dir = tempDir(t);
  const hung = join(dir, 'nvidia-smi');
  writeFileSync(hung, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  const said: string[] = [];
  const probe = new GpuProbe({ command: hung, timeoutMs: 1000, info: (m) => said.push(`info ${m}`), warn: (m) => said.push(`warn ${m}`) });
  const started = Date.now();
  t.equal(await probe.read(), undefined, 'no GPU view');
  t.ok(Date.now() - started < 10_000, 'the read ends at the timeout, not when nvidia-smi would');
  t.equal(await probe.read(), undefined);
  t.equal(probe.runs, 2, 'the next read does not run it again');
  t.equal(said.length, 1, 'one line');
  t.match(said[0], /^warn nvidia-smi failed \(.*nvidia-smi --query-(gpu|compute-apps)=\S+: no answer within 1 s\); the GPU view is off until it answers again \(tried every 60 s\)$/, 'a warning that says it hung');
});

t.test('the measurement store: peaks per load, the last few, kept in state_dir', async (t) => {
  const dir = tempDir(t);
  const h = new MemoryHistory(dir);
  h.record('m', 'cmd1', 'load1', { rss: 100, gpu: null, at: 1 });
  h.record('m', 'cmd1', 'load1', { rss: 300, gpu: null, at: 2 });
  h.record('m', 'cmd1', 'load1', { rss: 200, gpu: null, at: 3 });
  t.same(h.measured('m'), { rss_bytes: 300, gpu_bytes: null, bytes: 300, loads: 1, at: new Date(2).toISOString() }, 'one load: its peak');
  for (let i = 2; i <= KEEP_LOADS + 2; i++) h.record('m', 'cmd1', `load${i}`, { rss: 10 * i, gpu: i === 3 ? 5000 : 0, at: 10 + i });
  const m = h.measured('m')!;
  t.equal(m.loads, KEEP_LOADS, `only the last ${KEEP_LOADS} loads are kept`);
  t.equal(m.rss_bytes, 10 * (KEEP_LOADS + 2), 'the 300 of the first load has gone');
  t.equal(m.gpu_bytes, 5000);
  t.equal(m.bytes, 5000, 'a load that held GPU memory counts by it');
  t.same(new MemoryHistory(dir).measured('m'), m, 'read back from state_dir');
  t.equal(new MemoryHistory(dir).measured('m', 'cmd2'), undefined, 'not for another command');
  h.record('m', 'cmd2', 'load9', { rss: 1, gpu: null, at: 99 });
  t.equal(new MemoryHistory(dir).measured('m')?.loads, 1, 'a new command starts afresh');
  writeFileSync(join(dir, 'memory.json'), '{"m": {"launch": "x", "loads": [{"rss": -1}, "junk"]}, "n": 5}');
  t.equal(new MemoryHistory(dir).measured('m'), undefined, 'a damaged file is ignored, not a crash');
  writeFileSync(join(dir, 'memory.json'), 'not json');
  t.equal(new MemoryHistory(dir).measured('m'), undefined);
});

t.test('the GGUF estimate: weights + KV cache + overhead, from the header and the command line', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'm.gguf');
  // A 7B-like attention shape: 32 layers, 32 heads of 128, 8 KV heads, trained for 32768 tokens.
  writeTinyGguf(file, { header: { blockCount: 32, embeddingLength: 4096, headCount: 32, headCountKv: 8, contextLength: 32768 } });
  const size = statSync(file).size;
  const model = (cmd: string[], extra: Partial<ModelConfig> = {}) => ({ name: 'm', backend: 'llama-cpp', argv: ['llama-server', ...cmd, '--port', '${PORT}'], env: {}, memory: 0, ...extra }) as unknown as ModelConfig;
  const est = async (cmd: string[], extra?: Partial<ModelConfig>) => estimateGguf(model(cmd, extra)) as Promise<GgufEstimate>;

  const e = await est(['-m', file, '-c', '8192']);
  // 2 (K and V) × 32 layers × 8192 tokens × 8 KV heads × 128 head width × 2 bytes (f16) = 1 GiB
  t.equal(e.kv_bytes, 2 * 32 * 8192 * 8 * 128 * 2, 'KV cache at f16');
  t.equal(e.kv_bytes, 2 ** 30);
  t.equal(e.weights_bytes, size, 'weights: the file size');
  t.equal(e.overhead_bytes, 128 * MiB, 'overhead: at least 128 MiB');
  t.equal(e.bytes, size + 2 ** 30 + 128 * MiB, 'the sum');
  t.same([e.context, e.cache_type_k, e.cache_type_v, e.file], [8192, 'f16', 'f16', file]);

  const q = await est(['-m', file, '--ctx-size', '8192', '-ctk', 'q8_0', '--cache-type-v', 'q4_0']);
  t.equal(q.kv_bytes, 32 * 8192 * 8 * 128 * (34 / 32 + 18 / 32), 'K at q8_0 (34 bytes per 32) and V at q4_0 (18 bytes per 32)');
  t.same([q.cache_type_k, q.cache_type_v], ['q8_0', 'q4_0']);

  t.equal((await est(['-m', file])).context, 4 * 32768, "no -c: the trained context for each of llama-server's 4 default slots");
  t.equal((await est(['-m', file, '-c', '0'])).kv_bytes, 16 * 2 ** 30, '-c 0 is the same');
  t.equal((await est(['-m', file, '-np', '2'])).context, 2 * 32768, 'no -c, two slots');
  t.equal((await est(['-m', file, '-c', '8192', '--parallel', '2'])).context, 8192, 'with -c, the slots share it');
  t.equal((await est(['--model=' + file, '--ctx-size=1000'])).context, 1024, '--flag=value, and a context rounded up to 256 as llama.cpp pads it');
  t.equal((await est(['-m', 'm.gguf', '-c', '512'], { cwd: dir })).file, file, 'a relative path is in the model\'s cwd');
  t.equal((await est(['-c', '512'], { env: { LLAMA_ARG_MODEL: file } })).file, file, 'the model may come from LLAMA_ARG_MODEL');

  const big = join(dir, 'big.gguf');
  writeTinyGguf(big, { header: { blockCount: 4, embeddingLength: 1024, headCount: 8, headCountKv: [8, 8, 2, 2], contextLength: 4096 } });
  const b = await est(['-m', big, '-np', '1']);
  t.equal(b.kv_bytes, 4096 * (8 + 8 + 2 + 2) * 128 * 2 * 2, 'KV heads per layer, where the header lists them');

  const err = async (cmd: string[]) => ((await estimateGguf(model(cmd))) as { error: string }).error;
  t.match(await err(['-hf', 'org/repo']), /names no model file \(-m\); a model fetched with -hf cannot be estimated/);
  t.match(await err(['-m', join(dir, 'nope.gguf')]), /the model file .*nope\.gguf does not exist/);
  t.match(await err(['-m', file, '-ctk', 'q3_k']), /--cache-type-k q3_k is not a cache type llama-server knows/);
  t.match(await err(['-m', file, '-c', 'lots']), /-c lots is not a whole number of tokens/);
  t.match(await err(['-m', file, '-np', 'many']), /--parallel many is not a whole number of slots/);
  writeFileSync(join(dir, 'junk.gguf'), 'not a gguf at all');
  t.match(await err(['-m', join(dir, 'junk.gguf')]), /junk\.gguf: not a readable GGUF file/);
});
