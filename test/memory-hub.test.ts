// Measured memory in a running hub, with the demo backend's real allocations and a fake `nvidia-smi`
// on PATH that this test controls: the over-declared and over-budget warnings (log once, status,
// /metrics), measurements kept across a hub restart, and the live GPU view with memory attributed to
// a model through its process tree.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bunyan from 'bunyan';
import t from 'tap';
import { loadConfig } from '../lib/config/load.js';
import { startHub, type RunningHub } from '../lib/hub.js';
import { processTree } from '../lib/runtime/resident.js';
import { hub as hub_ } from './cli-support.js';
import { freePortRange, getJson, postJson, tempDir, waitFor } from './helpers.js';
import { fakeNvidiaSmi } from './support/fake-nvidia-smi.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const MiB = 2 ** 20;
const smi = fakeNvidiaSmi(t);
const GPUS = 'GPU-aaaa';
smi.devices(`0, ${GPUS}, NVIDIA Fake 24, 24564, 3000\n1, GPU-bbbb, NVIDIA Fake, Two, [N/A], [N/A]\n`);
const calls = smi.calls;

/** A hub in this process whose log records are kept. */
async function hubWith(t: { teardown(fn: () => unknown): void }, dir: string, yaml: string): Promise<{ hub: RunningHub; records: Array<{ level: number; msg: string }> }> {
  const ports = await freePortRange(4);
  const path = join(dir, 'hub.yaml');
  writeFileSync(path, `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${dir}/state\nports: { start: ${ports} }\n${yaml}`);
  const records: Array<{ level: number; msg: string }> = [];
  const log = bunyan.createLogger({ name: 'test', streams: [{ type: 'raw', level: 'info', stream: { write: (r: object) => void records.push(r as { level: number; msg: string }) } as unknown as NodeJS.WritableStream }] });
  const hub = await startHub(loadConfig(path), { log });
  t.teardown(() => hub.close());
  return { hub, records };
}

// The demo backend run by a shell that waits for it: the hub's pid is the shell's, the memory the child's.
const forked = (flags: string) => JSON.stringify(['sh', '-c', '"$@"; exit $?', 'sh', '${HUB}', 'demo-model', '--port', '${PORT}', '--model', '${MODEL}', ...flags.split(' ')]);

const YAML = `
groups:
  small: { max_loaded: 2, max_memory: 100MiB }
models:
  big:
    backend: demo
    cmd: ${forked('--memory 96MiB')}
    group: small
    memory: 40MiB
`;

const warnings = (records: Array<{ level: number; msg: string }>, re: RegExp) => records.filter((r) => r.level === 40 && re.test(r.msg));

t.test('a model over its declared memory and a group over its budget are flagged, once in the log', async (t) => {
  const dir = tempDir(t);
  writeTinyGguf(join(dir, 'tiny.gguf'), { header: { blockCount: 32, embeddingLength: 4096, headCount: 32, headCountKv: 8, contextLength: 32768 } });
  // Never started: its estimate comes from the header and the command line alone.
  const llama = `\n  est:\n    backend: llama-cpp\n    cmd: llama-server -m tiny.gguf -c 8192 -ctk q8_0 --port \${PORT}\n    cwd: ${dir}\n    memory: 1GiB\n`;
  const { hub, records } = await hubWith(t, dir, YAML + llama);
  t.equal((await postJson(`${hub.origin}/hub/api/models/big/load`, {})).status, 200);
  const status = await waitFor('the warning and the estimate in status', async () => {
    const s = (await getJson(`${hub.origin}/hub/api/status`)).body;
    // The GGUF header is read in the background (its reader is loaded on first use): wait for both.
    return s.models[0].memory_warning && s.models[1].memory_estimate ? s : undefined;
  });
  const big = status.models[0];
  const est = status.models[1];
  const size = statSync(join(dir, 'tiny.gguf')).size;
  t.same(est.memory_estimate, { bytes: size + 32 * 8192 * 8 * 128 * (34 / 32 + 2) + 128 * MiB, weights_bytes: size, kv_bytes: 32 * 8192 * 8 * 128 * (34 / 32 + 2), overhead_bytes: 128 * MiB, context: 8192, cache_type_k: 'q8_0', cache_type_v: 'f16', file: join(dir, 'tiny.gguf') }, 'a llama-cpp model has its GGUF estimate in status');
  t.equal(big.memory_estimate, null, 'other backends have none');
  t.equal(est.memory_measured, null, 'never loaded: not measured');
  t.same(hub.memory.sizeOf('est'), { bytes: est.memory_estimate.bytes, source: 'estimated' }, 'sizeOf: the estimate before any measurement');
  t.same(hub.memory.sizeOf('big'), { bytes: big.memory_measured.bytes, source: 'measured' }, 'sizeOf: the measurement once there is one');
  const shellPid = big.pid as number;
  t.ok(processTree(shellPid).length >= 2, 'the backend runs as a child of the process the hub started');
  t.ok(big.rss_bytes > 96 * MiB, `status rss_bytes counts the child's 96 MiB (${Math.round(big.rss_bytes / MiB)} MiB)`);
  t.match(big.memory_warning, /^declared 40MiB, measured \d+(\.\d)?MiB: the budget of group small may be overrun$/, 'the model says what was declared and measured');
  t.ok(big.memory_measured.rss_bytes >= 96 * MiB && big.memory_measured.loads === 1, 'measured: the peak of its one load');
  t.equal(big.gpu_bytes, 0, 'the GPU view is on, and holds nothing of it');
  const small = status.groups.find((g: { name: string }) => g.name === 'small');
  t.match(small.memory_warning, /^group small: measured \d+(\.\d)?MiB of its 100MiB max_memory: the budget is overrun$/, 'the group is flagged');
  t.ok(small.measured_bytes > 100 * MiB);

  for (let i = 0; i < 5; i++) await getJson(`${hub.origin}/hub/api/status`);
  await hub.memory.sample(true);
  t.equal(warnings(records, /^model big: declared 40MiB, measured .*; raise models\.big\.memory/).length, 1, 'one warning in the log for the model, however many reads');
  t.equal(warnings(records, /^group small: measured .* the budget is overrun/).length, 1, 'and one for the group');

  const metrics = (await (await fetch(`${hub.origin}/metrics`)).text()).split('\n');
  t.ok(metrics.includes('modelhub_model_memory_over_declared{model="big"} 1'), '/metrics: the model gauge is 1');
  t.ok(metrics.includes('modelhub_group_memory_over_budget{group="small"} 1'), '/metrics: the group gauge is 1');
  t.ok(metrics.some((l) => /^modelhub_model_measured_memory_bytes\{model="big",kind="rss"\} \d+$/.test(l)), '/metrics: measured rss');
  t.ok(metrics.includes(`modelhub_model_estimated_memory_bytes{model="est"} ${est.memory_estimate.bytes}`), '/metrics: the estimate');

  const page = await (await fetch(`${hub.origin}/hub`)).text();
  t.match(page, /<strong class="warn memory-warning">⚠ declared 40MiB, measured [\d.]+MiB: the budget of group small may be overrun<\/strong>/, 'the dashboard card carries the warning');
  t.match(page, /<p class="warn group-warning">⚠ group small: measured [\d.]+MiB of its 100MiB max_memory: the budget is overrun<\/p>/, 'and the group box');
  t.match(page, /1GiB declared · estimated [\d.]+[MG]iB \(8192 tokens\)/, 'the estimate beside the declared memory');

  const cli = await hub_(['status', '--url', hub.origin, '--no-color']);
  t.equal(cli.code, 0);
  t.match(cli.out, /\[info\] memory big: 40MiB declared · measured [\d.]+MiB \(peak of 1 load\)/, 'hub status: declared beside measured');
  t.match(cli.out, /\[info\] memory est: 1GiB declared · estimated [\d.]+[MG]iB \(8192 tokens, K q8_0, V f16\)/, 'hub status: the estimate');
  t.match(cli.err, /\[warn\] model big: declared 40MiB, measured/, 'hub status: the model warning');
  t.match(cli.err, /\[warn\] group small: measured [\d.]+MiB of its 100MiB max_memory/, 'hub status: the group warning');

  // Unloaded and loaded again: a new load, so one more warning; its peak joins the history.
  t.equal((await postJson(`${hub.origin}/hub/api/models/big/stop`, {})).status, 200);
  t.equal((await postJson(`${hub.origin}/hub/api/models/big/load`, {})).status, 200);
  await waitFor('a second warning for the second load', async () => {
    await hub.memory.sample(true);
    return warnings(records, /^model big: declared 40MiB/).length === 2;
  });
  t.equal(hub.memory.measured('big')?.loads, 2, 'two loads measured');
  await hub.close();

  // A new hub on the same state_dir knows the measurement before any load.
  const again = await hubWith(t, dir, YAML);
  const after = (await getJson(`${again.hub.origin}/hub/api/status`)).body.models[0];
  t.equal(after.process, 'stopped');
  t.equal(after.memory_measured.loads, 2, 'the measurements survived the restart');
  t.match(after.memory_warning, /^declared 40MiB, measured/, 'and so does the warning, before any load');
  t.same(again.hub.memory.measured('big'), after.memory_measured, 'measured() is what status shows');

  // A changed command is a new model: its old measurements no longer count.
  writeFileSync(join(dir, 'hub.yaml'), readFileSync(join(dir, 'hub.yaml'), 'utf8').replace('"96MiB"', '"8MiB"'));
  again.hub.reload();
  t.ok(again.hub.controller.config.models.big.argv?.includes('8MiB'), 'the reload changed the command');
  t.equal(again.hub.memory.measured('big'), undefined, 'no measurement for the new command');
});

t.test('the GPU view from a fake nvidia-smi: devices, and a model holding memory through its child', async (t) => {
  const dir = tempDir(t);
  const { hub, records } = await hubWith(t, dir, YAML.replace('memory: 40MiB', 'memory: 2GiB').replace('max_memory: 100MiB', 'max_memory: 4GiB'));
  t.equal((await postJson(`${hub.origin}/hub/api/models/big/load`, {})).status, 200);
  const shell = (await getJson(`${hub.origin}/hub/api/status`)).body.models[0].pid as number;
  const child = processTree(shell)[1];
  t.ok(child, 'the backend is the shell\'s child');
  smi.apps(`${GPUS}, ${child}, 1500\n${GPUS}, 999999, 700\nGPU-bbbb, ${child}, [N/A]\n`);
  const status = await waitFor('the model on the GPU', async () => {
    const s = (await getJson(`${hub.origin}/hub/api/status`)).body;
    return s.models[0].gpu_bytes === 1500 * MiB ? s : undefined;
  });
  t.same(status.gpus, [
    { index: 0, uuid: GPUS, name: 'NVIDIA Fake 24', total_bytes: 24564 * MiB, used_bytes: 3000 * MiB, models: [{ model: 'big', bytes: 1500 * MiB }] },
    { index: 1, uuid: 'GPU-bbbb', name: 'NVIDIA Fake, Two', total_bytes: null, used_bytes: null, models: [] },
  ], 'each GPU, and which model holds how much (another process\'s 700 MiB is no model\'s)');
  await waitFor('the GPU peak recorded', async () => {
    await hub.memory.sample(true);
    return hub.memory.measured('big')?.gpu_bytes === 1500 * MiB;
  });
  t.equal(hub.memory.measured('big')?.bytes, 1500 * MiB, 'a model on a GPU is measured by its GPU memory');

  const metrics = (await (await fetch(`${hub.origin}/metrics`)).text()).split('\n');
  t.ok(metrics.includes(`modelhub_gpu_memory_bytes{gpu="0",name="NVIDIA Fake 24",kind="used"} ${3000 * MiB}`), '/metrics: used');
  t.ok(metrics.includes(`modelhub_gpu_memory_bytes{gpu="0",name="NVIDIA Fake 24",kind="total"} ${24564 * MiB}`), '/metrics: total');
  t.ok(metrics.includes(`modelhub_gpu_model_memory_bytes{gpu="0",model="big"} ${1500 * MiB}`), '/metrics: per model');

  const page = await (await fetch(`${hub.origin}/hub`)).text();
  t.match(page, /GPU 0 <small>NVIDIA Fake 24<\/small>[\s\S]*2\.9GiB used of 24\.0GiB[\s\S]*<li>big: 1\.5GiB<\/li>[\s\S]*<li>other processes: 1\.5GiB<\/li>/, 'the dashboard shows the GPU, the model on it and the rest');
  const cli = await hub_(['status', '--url', hub.origin, '--no-color']);
  t.match(cli.out, /\[info\] GPU 0 \(NVIDIA Fake 24\): 2\.9GiB of 24\.0GiB used · big 1\.5GiB\n/, 'hub status: each GPU and who holds it');
  t.match(cli.out, /\[info\] GPU 1 \(NVIDIA Fake, Two\): used unknown\n/);

  // Many reads in a burst: nvidia-smi runs at most about once a second (two queries each time).
  const before = calls();
  const started = Date.now();
  await Promise.all(Array.from({ length: 20 }, () => getJson(`${hub.origin}/hub/api/status`)));
  for (let i = 0; i < 10; i++) await fetch(`${hub.origin}/metrics`).then((r) => r.text());
  const seconds = (Date.now() - started) / 1000;
  t.ok(calls() - before <= 2 * (Math.ceil(seconds) + 1), `${calls() - before} nvidia-smi runs for 30 reads in ${seconds.toFixed(1)} s`);

  // nvidia-smi starts failing: the view goes, with one warning however many reads.
  smi.failing(true);
  t.teardown(() => smi.failing(false));
  await waitFor('the GPU view to go', async () => (await getJson(`${hub.origin}/hub/api/status`)).body.gpus.length === 0);
  for (let i = 0; i < 5; i++) await getJson(`${hub.origin}/hub/api/status`);
  t.equal(warnings(records, /^nvidia-smi failed \(.*couldn't communicate with the NVIDIA driver/).length, 1, 'one warning, with nvidia-smi\'s own words');
  const s = (await getJson(`${hub.origin}/hub/api/status`)).body;
  t.equal(s.models[0].gpu_bytes, null, 'no GPU figure while it fails');
  t.equal(s.models[0].memory_warning, null, '2GiB declared: no warning');
});
