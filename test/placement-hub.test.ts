// GPU placement in a running hub with `gpus: auto`: the devices come from a fake nvidia-smi that this
// test controls, the models are real demo backends, and what each child was given is read from its
// own environment (/proc/<pid>/environ). Free memory that changes (another process taking a GPU)
// moves the next placement; `hub status` shows where each model runs and why; a hub that finds no
// GPU refuses a model that needs one at once, saying why.
import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { hub as cli } from './cli-support.js';
import { demo, getJson, postJson, startTestHub, waitFor } from './helpers.js';
import { fakeNvidiaSmi } from './support/fake-nvidia-smi.js';

const smi = fakeNvidiaSmi(t);
// GPU 0: 24 GiB, GPU 1: 48 GiB, nothing used yet.
const DEVICES = (used0: number, used1 = 0) => `0, GPU-aaaa, Fake 24, 24576, ${used0}\n1, GPU-bbbb, Fake 48, 49152, ${used1}\n`;
smi.devices(DEVICES(0));

const YAML = `gpus: auto
models:
  big: { backend: demo, cmd: "${demo()}", memory: 30GiB, gpus: 1 }
  small: { backend: demo, cmd: "${demo()}", memory: 10GiB, gpus: 1 }
`;

/** The CUDA variables a process was started with. */
function cudaEnv(pid: number): Record<string, string> {
  const vars = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((v) => v.startsWith('CUDA_'));
  return Object.fromEntries(vars.map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]));
}

const modelOf = async (origin: string, name: string) => (await getJson(`${origin}/hub/api/status`)).body.models.find((m: { name: string }) => m.name === name);

t.test('models go to the GPU with room, each child sees only its own, and the next placement follows free memory', async (t) => {
  const h = await startTestHub(t, YAML);
  t.equal((await postJson(`${h.origin}/hub/api/models/big/start`, {})).status, 200);
  t.equal((await postJson(`${h.origin}/hub/api/models/small/start`, {})).status, 200);
  const big = await modelOf(h.origin, 'big');
  const small = await modelOf(h.origin, 'small');
  t.same(big.gpus, [1], '30 GiB fits only the 48 GiB device');
  t.same(small.gpus, [0], 'GPU 0 has 24 GiB free, GPU 1 18: the most free');
  t.match(small.placement, /^placed on GPU 0: 24GiB free; GPU 1 holds big$/);
  t.same(cudaEnv(big.pid), { CUDA_VISIBLE_DEVICES: '1', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' }, "big's process sees GPU 1 only");
  t.same(cudaEnv(small.pid), { CUDA_VISIBLE_DEVICES: '0', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
  const starting = h.transitions.find((x) => x.model === 'small' && x.to === 'starting')!;
  t.same([starting.gpus, starting.placement], [[0], small.placement], 'the transition says where and why');

  const table = await cli(['status', '--url', h.origin]);
  t.equal(table.code, 0, table.err);
  t.match(table.out, /MODEL\s+PROCESS\s+MEMORY\s+PID\s+PORT\s+GROUP\s+GPU\s/, 'a GPU column');
  t.match(table.out, /\nbig\s+running\s.*\s1\s+0\/0/, 'big on GPU 1');
  t.match(table.out, /placement small: placed on GPU 0: 24GiB free; GPU 1 holds big/);

  // The driver now reports what big holds (its own process, 30 GiB of GPU 1): the hub's, not another program's.
  smi.devices(DEVICES(0, 30_720));
  smi.apps(`GPU-bbbb, ${big.pid}, 30720\n`);
  const seen = async (what: string, check: (rooms: Array<{ id: number; foreign: number }>) => boolean) =>
    waitFor(what, async () => {
      await h.hub.memory.sample(true); // the hub reads nvidia-smi at most once a second
      return check(h.hub.memory.gpuRooms());
    });
  await seen('the reading with big in it', () => h.hub.memory.liveOf('big', big.pid)?.gpu === 30_720 * 2 ** 20);
  t.same(h.hub.memory.gpuRooms().map((g) => g.foreign), [0, 0], "big's memory is not counted as another program's");

  // Another program takes 20 GiB of GPU 0. small, stopped and asked for again, cannot go back there.
  t.equal((await postJson(`${h.origin}/hub/api/models/small/stop`, {})).status, 200);
  smi.devices(DEVICES(20_480, 30_720));
  smi.apps(`GPU-aaaa, 999999, 20480\nGPU-bbbb, ${big.pid}, 30720\n`);
  await seen('the other program on GPU 0', (rooms) => rooms[0].foreign === 20_480 * 2 ** 20);
  // A reading that fails does not make the GPUs vanish: the last one that succeeded stands.
  smi.failing(true);
  await seen('a failed reading (the live GPU view is gone)', () => h.hub.memory.gpus().length === 0);
  t.same(h.hub.memory.gpuRooms().map((g) => [g.id, g.foreign]), [[0, 20_480 * 2 ** 20], [1, 0]], 'placement still knows both GPUs');
  const answer = await h.client.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'hi' }] });
  t.ok(answer.choices[0].message.content, 'served');
  const moved = await modelOf(h.origin, 'small');
  t.same(moved.gpus, [1], 'GPU 1 has 18 GiB free, GPU 0 only 4');
  t.match(moved.placement, /^placed on GPU 1: 18GiB free; GPU 0 has 4GiB free$/);
  t.same(cudaEnv(moved.pid), { CUDA_VISIBLE_DEVICES: '1', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });
  smi.failing(false);
  const card = await waitFor('the card with its GPU', async () => {
    const html = await (await fetch(`${h.origin}/hub`)).text();
    return /data-model="small"[\s\S]*?class="placement"/.test(html) ? html : undefined;
  });
  t.match(card, /<dd class="placement" title="placed on GPU 1: 18GiB free; GPU 0 has 4GiB free">/, 'the dashboard card says where and why');
});

t.test('with gpus: auto and no GPU found, a model that needs one is refused at once, saying why', async (t) => {
  smi.failing(true);
  t.teardown(() => smi.failing(false));
  const h = await startTestHub(t, YAML);
  const started = Date.now();
  const res = await postJson(`${h.origin}/v1/chat/completions`, { model: 'small', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(res.status, 503);
  t.equal(res.body.error.code, 'model_start_failed');
  t.match(res.body.error.message, /model small cannot be placed on a GPU: it needs a GPU and the hub found none/);
  t.notOk(res.headers.get('retry-after'), 'no Retry-After for a start no wait would help');
  t.ok(Date.now() - started < 5000, 'at once');
  t.equal(h.spawns('small'), 0, 'nothing was started');
});

t.test('gpus: auto added by a reload: the devices are read and its models placed', async (t) => {
  smi.devices(DEVICES(0));
  smi.apps('');
  const h = await startTestHub(t, 'models:\n  plain: { backend: demo, cmd: "' + demo() + '" }\n');
  t.same(h.hub.memory.gpuRooms(), [], 'no GPUs before');
  const path = `${h.dir}/hub.yaml`;
  writeFileSync(path, readFileSync(path, 'utf8').replace('models:\n', `${YAML.split('\n')[0]}\nmodels:\n`) + YAML.split('\n').slice(2).join('\n'));
  t.equal((await postJson(`${h.origin}/hub/api/reload`, {})).status, 200);
  await waitFor('the GPUs read after the reload', () => h.hub.memory.gpuRooms().length === 2);
  t.equal((await postJson(`${h.origin}/hub/api/models/small/start`, {})).status, 200, 'a model with gpus: starts right after the reload');
  t.same((await modelOf(h.origin, 'small')).gpus, [1], 'on the 48 GiB GPU, the most free');
});
