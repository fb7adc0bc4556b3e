// memory: auto with the demo backend's real allocations: models are planned with what the hub
// measured them to hold (RSS of their process tree), so two whose measured sizes do not fit together
// in their group are never loaded together, while a small one fits beside a large one.
import t from 'tap';
import { demo, getJson, startTestHub, waitFor } from './helpers.js';

const MiB = 2 ** 20;

t.test('memory: auto plans with measured sizes', async (t) => {
  const h = await startTestHub(t, `groups:\n  g: { max_memory: 300MiB, max_loaded: 3 }\nmodels:
  big-a: { backend: demo, group: g, memory: auto, cmd: "${demo('--memory 128MiB --max-tokens 2')}" }
  big-b: { backend: demo, group: g, memory: auto, cmd: "${demo('--memory 128MiB --max-tokens 2')}" }
  small: { backend: demo, group: g, memory: auto, cmd: "${demo('--memory 4MiB --max-tokens 2')}" }
`);
  // Every moment the group held two large models at once is a violation.
  const loaded = new Set<string>();
  let together = 0;
  h.hub.controller.on('transition', (tr) => {
    if (tr.axis !== 'memory') return;
    if (tr.to === 'loaded' || tr.to === 'loading') loaded.add(tr.model);
    else if (tr.to === 'unloaded') loaded.delete(tr.model);
    if (loaded.has('big-a') && loaded.has('big-b')) together++;
  });
  const status = async () => (await getJson(`${h.origin}/hub/api/status`)).body as { models: Array<{ name: string; memory: string; memory_bytes: number; memory_source: string }> };
  const model = async (name: string) => (await status()).models.find((m) => m.name === name)!;
  const ask = (name: string) => h.client.chat.completions.create({ model: name, messages: [{ role: 'user', content: 'hi' }] });

  t.equal((await model('big-a')).memory_source, 'unknown', 'never measured yet');
  await ask('big-a');
  await waitFor('big-a to be measured', async () => (await model('big-a')).memory_source === 'measured', 20_000);
  await ask('big-b'); // unknown size: only into an otherwise empty group, so big-a goes
  t.equal((await model('big-a')).memory, 'unloaded', 'a model of unknown size loaded alone');
  await waitFor('big-b to be measured', async () => (await model('big-b')).memory_source === 'measured', 20_000);
  const a = (await model('big-a')).memory_bytes;
  const b = (await model('big-b')).memory_bytes;
  t.ok(a > 128 * MiB && b > 128 * MiB, `measured ${Math.round(a / MiB)} and ${Math.round(b / MiB)} MiB: at least the 128 MiB each allocates`);
  t.ok(a + b > 300 * MiB, 'together more than the group holds');

  await ask('big-a');
  t.equal((await model('big-b')).memory, 'unloaded', 'big-b made room for big-a: their measured sizes do not fit together');
  await ask('small'); // unknown: alone again
  await waitFor('small to be measured', async () => (await model('small')).memory_source === 'measured', 20_000);
  await ask('big-a');
  const s = await status();
  t.same(['big-a', 'small'].map((n) => s.models.find((m) => m.name === n)!.memory), ['loaded', 'loaded'], 'a small model fits beside a large one');
  t.equal(together, 0, 'the two large models were never loaded at the same time');
});
