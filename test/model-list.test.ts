// GET /v1/models keeps each entry's JSON from one request to the next (a 500-model list is mostly
// the same each time): what it answers must still follow every change — a model started or put to
// sleep, a reload that changes a model's group, adds an alias or removes a model.
import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { demo, getJson, startTestHub } from './helpers.js';

interface Entry { id: string; object: string; owned_by: string; hub: { model: string; alias: boolean; backend: string; process: string; memory: string; group: string | null } }

t.test('the model list follows starts, sleeps and reloads', async (t) => {
  const h = await startTestHub(t, `models:
  a: { backend: demo, cmd: "${demo('--memory 64MiB')}", aliases: [a-latest] }
  b: { backend: demo, cmd: "${demo()}" }
`);
  const list = async () => {
    const res = await getJson(`${h.origin}/v1/models`);
    t.equal(res.status, 200);
    return (res.body as { object: string; data: Entry[] });
  };
  const first = await list();
  t.equal(first.object, 'list');
  t.same(first.data.map((e) => [e.id, e.hub.model, e.hub.alias, e.hub.process, e.hub.memory, e.hub.group]), [
    ['a', 'a', false, 'stopped', 'unloaded', null],
    ['a-latest', 'a', true, 'stopped', 'unloaded', null],
    ['b', 'b', false, 'stopped', 'unloaded', null],
  ]);
  t.same(await list(), first, 'asked again, the same list');

  await h.hub.controller.start('a');
  t.same((await list()).data.filter((e) => e.hub.model === 'a').map((e) => [e.id, e.hub.process, e.hub.memory]), [['a', 'running', 'loaded'], ['a-latest', 'running', 'loaded']], 'a started: both its ids say so');
  await h.hub.controller.unload('a');
  t.same((await list()).data.filter((e) => e.hub.model === 'a').map((e) => e.hub.memory), ['unloaded', 'unloaded'], 'a put to sleep');

  const path = h.hub.controller.config.path;
  writeFileSync(path, readFileSync(path, 'utf8').replace(/  a: .*\n  b: .*\n/, `  a: { backend: demo, cmd: "${demo('--memory 64MiB')}", group: pair, aliases: [a-next] }\ngroups:\n  pair: { max_loaded: 1 }\n`));
  const reload = await fetch(`${h.origin}/hub/api/reload`, { method: 'POST' });
  t.equal(reload.status, 200, await reload.text());
  t.same((await list()).data.map((e) => [e.id, e.hub.model, e.hub.alias, e.hub.group]), [
    ['a', 'a', false, 'pair'],
    ['a-next', 'a', true, 'pair'],
  ], 'after the reload: the new group and alias, b and the old alias gone');
});
