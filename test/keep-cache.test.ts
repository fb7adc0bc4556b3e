// keep_cache for llama-cpp models: the config (where it applies, the folder under state_dir, the
// bound, a policy change), the folder's preparation before a start, and the round trip with a real
// llama-server (built once by scripts/llama-server.sh, shared with llama-cpp.test.ts) serving a tiny
// GGUF: a long prompt evaluated once, the slots saved, the server stopped, a fresh one started and
// restored, and the same prompt plus a turn answered without evaluating the prompt again, as
// llama-server's own timings show. Failures (server gone, folder gone, a bad file) are results.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clearSavedCache, describeSlotResult, prepareSlotCache, restoreSlots, saveSlots, type SlotCache } from '../lib/backends/llama-slots.js';
import { resolveCommand } from '../lib/config/command.js';
import { ConfigError } from '../lib/config/errors.js';
import { parseConfig } from '../lib/config/load.js';
import type { HubConfig } from '../lib/config/types.js';
import { diffConfigs, launchChanged } from '../lib/scheduler/reload.js';
import { PACKAGE_ROOT, freePort, tempDir, waitFor } from './helpers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const run = promisify(execFile);
const HUB_YAML = '/etc/modelhub/hub.yaml';

const config = (yaml: string): HubConfig => parseConfig(`state_dir: /var/lib/hub\n${yaml}`, HUB_YAML, { env: {} });
function problems(yaml: string): string[] {
  try {
    config(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected the config to be rejected');
}
const LLAMA = 'cmd: [llama-server, -m, /m/q.gguf, --port, "${PORT}"]';

t.test('keep_cache in hub.yaml: llama-cpp models with cmd only, a folder per model under state_dir', async (t) => {
  const c = config(`models:\n  org/q:3b: { backend: llama-cpp, ${LLAMA}, keep_cache: true }\n  small: { backend: llama-cpp, ${LLAMA}, keep_cache: true, keep_cache_max: 2 }\n  off: { backend: llama-cpp, ${LLAMA} }\n`);
  t.same(c.models['org/q:3b'].keepCache, { dir: '/var/lib/hub/kv-cache/org%2Fq%3A3b', addsFlag: true, max: 4 }, "the name is encoded as for log files; 4 slots by default");
  t.same(c.models['org/q:3b'].argv, ['llama-server', '-m', '/m/q.gguf', '--port', '${PORT}', '--alias', 'org/q:3b'], 'the command itself is unchanged: the flag is added at start');
  t.equal(c.models.small.keepCache?.max, 2);
  t.equal(c.models.off.keepCache, undefined, 'off unless asked for');

  const own = config(`models:\n  a: { backend: llama-cpp, cmd: [llama-server, --slot-save-path, "slots/\${MODEL}", --port, "\${PORT}"], cwd: /srv/a, keep_cache: true }\n  b: { backend: llama-cpp, cmd: [sh, -c, 'exec llama-server "$@"', sh, "--slot-save-path=/cache/b", --port, "\${PORT}"], keep_cache: true }\n`);
  t.same(own.models.a.keepCache, { dir: '/srv/a/slots/a', addsFlag: false, max: 4 }, "the command's own folder, relative to cwd, ${MODEL} filled in");
  t.same(own.models.b.keepCache, { dir: '/cache/b', addsFlag: false, max: 4 }, 'a wrapper that passes --slot-save-path= on');

  const inherited = config(`defaults: { keep_cache: true }\nmodels:\n  l: { backend: llama-cpp, ${LLAMA} }\n  v: { backend: vllm, cmd: "vllm serve x --port \${PORT}" }\n  r: { backend: llama-cpp, url: "http://gpu-box:8080" }\n`);
  t.ok(inherited.models.l.keepCache, 'from defaults where it applies');
  t.equal(inherited.models.v.keepCache, undefined, 'and nowhere else, without an error');
  t.equal(inherited.models.r.keepCache, undefined);

  t.same(
    problems(`models:\n  v: { backend: vllm, cmd: "vllm serve x --port \${PORT}", keep_cache: true }\n  r: { backend: llama-cpp, url: "http://gpu-box:8080", keep_cache_max: 2 }\n  w: { backend: llama-cpp, cmd: [sh, -c, "exec llama-server --port $0", "\${PORT}"], keep_cache: true }\n  p: { backend: llama-cpp, cmd: [llama-server, --port, "\${PORT}", --slot-save-path, "/c/\${PORT}"], keep_cache: true }\n  z: { backend: llama-cpp, ${LLAMA}, keep_cache_max: 0 }\n  s1: { backend: llama-cpp, cmd: [llama-server, --port, "\${PORT}", --slot-save-path, /c], keep_cache: true }\n  s2: { backend: llama-cpp, cmd: [llama-server, --port, "\${PORT}", --slot-save-path, /c/], keep_cache: true }\n`),
    [
      'hub.yaml:7: models.z.keep_cache_max: expected a whole number from 1 to 256, got 0',
      "hub.yaml:3: models.v.keep_cache: only applies to backend: llama-cpp (v is backend: vllm); the hub keeps the cache through llama-server's slot save and restore",
      'hub.yaml:4: models.r.keep_cache_max: only applies to models with cmd; r is remote (url), and its cache lives on another machine',
      "hub.yaml:5: models.w.keep_cache: the hub cannot tell where this command's llama-server saves its slots: the command wraps llama-server and passes no --slot-save-path; run llama-server directly in cmd (the hub then adds --slot-save-path), or put --slot-save-path DIR among cmd's arguments",
      'hub.yaml:6: models.p.cmd: --slot-save-path must not contain ${PORT}: with keep_cache the saved slots are found by their folder after the next start, which may be on another port',
      'hub.yaml:9: models.s2.cmd: saves its slots into /c, as model s1 does; with keep_cache each model needs a --slot-save-path folder of its own',
    ],
    'every problem at once, each at its key (the schema\'s first)',
  );

  // A policy change: the running process keeps its launch settings.
  const before = config(`models:\n  a: { backend: llama-cpp, ${LLAMA} }\n`);
  const after = config(`models:\n  a: { backend: llama-cpp, ${LLAMA}, keep_cache: true, keep_cache_max: 8 }\n`);
  t.notOk(launchChanged(before.models.a, after.models.a), 'turning keep_cache on is no launch change');
  t.same(diffConfigs(before, after).updated, ['a'], 'it is applied live');
});

t.test('the folder is prepared before a start: made, checked against the launch settings, or given up on', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'm.gguf'), 'weights');
  const yaml = (ctx: number) => `state_dir: ${dir}/state\nmodels:\n  m:1: { backend: llama-cpp, cmd: [llama-server, -m, ${dir}/m.gguf, -c, "${ctx}", --port, "\${PORT}"], keep_cache: true }\n`;
  const m = parseConfig(yaml(2048), join(dir, 'hub.yaml'), { env: {} }).models['m:1'];
  const folder = join(dir, 'state', 'kv-cache', 'm%3A1');

  const first = await prepareSlotCache(m);
  t.same(first.args, ['--slot-save-path', folder], 'the flag to append');
  t.equal(first.cache?.dir, folder);
  t.ok(existsSync(folder), 'the folder exists before llama-server is started (it refuses a missing one)');
  writeFileSync(join(folder, 'slot-100-0.bin'), 'kv');
  writeFileSync(join(folder, 'notes.txt'), 'not ours');
  t.equal((await prepareSlotCache(m)).cleared, 0, 'same launch settings: the saved slots stay');
  t.ok(existsSync(join(folder, 'slot-100-0.bin')));

  const changed = parseConfig(yaml(4096), join(dir, 'hub.yaml'), { env: {} }).models['m:1'];
  const again = await prepareSlotCache(changed);
  t.equal(again.cleared, 1, 'other launch settings (-c): saved slots removed before the start');
  t.same(readdirSync(folder).sort(), ['launch.json', 'notes.txt'], 'nothing but the hub\'s own files is touched');
  t.not(again.cache?.launch, first.cache?.launch);

  writeFileSync(join(folder, 'launch.json'), '{ cut sho');
  writeFileSync(join(folder, 'slot-101-0.bin'), 'kv');
  const unreadable = await prepareSlotCache(changed);
  t.match(unreadable, { cleared: 1, error: undefined }, 'an unreadable record counts as other settings, and does not stop keep_cache');
  writeFileSync(join(folder, 'slot-101-0.bin'), 'kv');
  writeFileSync(join(dir, 'm.gguf'), 'other weights, same path');
  t.equal((await prepareSlotCache(changed)).cleared, 1, 'a model file replaced in place counts as a change');

  t.same(await clearSavedCache(join(dir, 'state'), changed), { removed: 0 }, 'clearSavedCache: nothing saved, nothing removed');
  writeFileSync(join(folder, 'slot-102-1.bin'), 'kv');
  t.same(await clearSavedCache(join(dir, 'state'), changed), { removed: 1 });
  t.same(readdirSync(folder), ['notes.txt'], 'the folder stays while it holds something else');
  rmSync(join(folder, 'notes.txt'));
  await clearSavedCache(join(dir, 'state'), changed);
  t.notOk(existsSync(folder), 'and goes when it is empty');

  writeFileSync(join(dir, 'blocked'), 'a file where state_dir should be');
  const blocked = parseConfig(`state_dir: ${dir}/blocked\nmodels:\n  m: { backend: llama-cpp, cmd: [llama-server, --port, "\${PORT}"], keep_cache: true }\n`, join(dir, 'hub.yaml'), { env: {} }).models.m;
  const failed = await prepareSlotCache(blocked);
  t.same(failed.args, [], 'the model starts without the flag');
  t.equal(failed.cache, undefined);
  t.match(failed.error, /^keep_cache: cannot use .*blocked\/kv-cache\/m \(.*\); m starts without saving its cache$/);
  t.same(await prepareSlotCache({ ...blocked, keepCache: undefined }), { args: [], cleared: 0 }, 'keep_cache off: nothing to do');
});

t.test('a real llama-server: slots saved, the server replaced, restored, the prompt not evaluated again', { timeout: 15 * 60_000 }, async (t) => {
  const { stdout } = await run('bash', [join(PACKAGE_ROOT, 'scripts', 'llama-server.sh')], { maxBuffer: 64 * 2 ** 20 });
  const bin = stdout.trim().split('\n').at(-1)!;
  const dir = tempDir(t);
  writeTinyGguf(join(dir, 'tiny.gguf'), { seed: 3 });
  // One thread: more are far slower on a 2-core box. 4 slots share -c 2048.
  const hub = parseConfig(
    `state_dir: ${dir}/state\nmodels:\n  org/tiny:q: { backend: llama-cpp, keep_cache: true, keep_cache_max: 2, cmd: [${JSON.stringify(bin)}, -m, ${JSON.stringify(join(dir, 'tiny.gguf'))}, --host, 127.0.0.1, --port, "\${PORT}", -t, "1", -c, "2048", -np, "4"] }\n`,
    join(dir, 'hub.yaml'),
    { env: {} },
  );
  const model = hub.models['org/tiny:q'];

  const start = async () => {
    const prepared = await prepareSlotCache(model);
    t.equal(prepared.error, undefined);
    const port = await freePort();
    const [program, ...args] = resolveCommand([...model.argv!, ...prepared.args], { port, model: model.name, hub: [] });
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.teardown(() => void child.kill('SIGKILL'));
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`llama-server on ${port} (output so far: ${output.slice(-500)})`, () => fetch(`${base}/health`).then((r) => r.ok, () => false), 60_000);
    const stop = async () => {
      child.kill('SIGTERM');
      await exited;
    };
    return { base, cache: prepared.cache!, stop };
  };
  type Answer = { id_slot: number; timings: { prompt_n: number; cache_n: number } };
  const complete = async (base: string, prompt: string, slot?: number): Promise<Answer> => {
    const res = await fetch(`${base}/completion`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, n_predict: 2, cache_prompt: true, ...(slot === undefined ? {} : { id_slot: slot }) }) });
    t.equal(res.status, 200);
    return (await res.json()) as Answer;
  };
  const slotFiles = (folder: string) => readdirSync(folder).filter((f) => f.endsWith('.bin')).sort();

  // A long conversation in slot 0, used last; two short ones in slots 1 and 2 before it.
  const long = Array.from({ length: 30 }, (_, i) => `the user of the hub is a model and it is test ${i % 3 ? 'one' : 'two'} of the world`).join(' ');
  const one = await start();
  await complete(one.base, 'yes no ok one', 1);
  await complete(one.base, 'three two one hello', 2);
  const cold = await complete(one.base, long, 0);
  t.ok(cold.timings.prompt_n > 300, `a fresh server evaluates the whole prompt (${cold.timings.prompt_n} tokens)`);

  const saved = await saveSlots({ base: one.base }, one.cache);
  t.equal(saved.error, undefined, describeSlotResult('saved', saved));
  t.equal(saved.count, 2, 'keep_cache_max 2: the two slots used last');
  t.ok(saved.tokens > cold.timings.prompt_n, `${saved.tokens} tokens saved`);
  const folder = join(dir, 'state', 'kv-cache', 'org%2Ftiny%3Aq');
  t.equal(one.cache.dir, folder, 'in state_dir, under the encoded name');
  t.match(slotFiles(folder), [/^slot-\d+-0\.bin$/, /^slot-\d+-2\.bin$/], 'slot 0 (used last) and slot 2; slot 1 is left out');
  const again = await saveSlots({ base: one.base }, one.cache);
  t.equal(again.count, 2);
  t.equal(slotFiles(folder).length, 2, 'a second save replaces the first: still two files');
  t.comment(`save of 2 slots (${saved.tokens} tokens, ${slotFiles(folder).length} files): ${saved.ms} ms, then ${again.ms} ms`);

  await one.stop();
  const gone = await saveSlots({ base: one.base }, one.cache, { timeoutMs: 5000 });
  t.match(gone, { count: 0, error: /^saving org\/tiny:q's slots: GET \/slots: .*ECONNREFUSED/ }, 'the server is gone: an error, no exception');
  t.equal(slotFiles(folder).length, 2, 'and the saved files stay');
  t.match(await restoreSlots({ base: one.base }, one.cache, { timeoutMs: 5000 }), { count: 0, error: /ECONNREFUSED/ });

  const two = await start();
  const restored = await restoreSlots({ base: two.base }, two.cache);
  t.equal(restored.error, undefined, describeSlotResult('restored', restored));
  t.equal(restored.count, 2);
  t.equal(restored.tokens, saved.tokens, 'every saved token is back');
  t.comment(`restore of 2 slots (${restored.tokens} tokens): ${restored.ms} ms`);
  const warm = await complete(two.base, `${long} and the next turn of the user`);
  t.equal(warm.id_slot, 0, 'llama-server picked the restored slot by its own prompt similarity');
  t.ok(warm.timings.cache_n >= cold.timings.prompt_n - 2, `the prompt came from the cache (cache_n ${warm.timings.cache_n})`);
  t.ok(warm.timings.prompt_n < 20, `only the new turn was evaluated (prompt_n ${warm.timings.prompt_n} against ${cold.timings.prompt_n})`);

  // A file llama-server refuses is reported and removed; the others still restore.
  writeFileSync(join(folder, `slot-${Date.now() + 60_000}-3.bin`), 'not a slot file');
  const bad = await restoreSlots({ base: two.base }, two.cache);
  t.match(bad, { count: 0, error: /^restoring org\/tiny:q's slots: slot 3: POST \/slots\/\{id\}\?action=restore answered 400: .+ \(slot-\d+-3\.bin\)$/ });
  t.equal(slotFiles(folder).length, 2, 'the bad file is gone');

  // The folder removed under the running server: the save fails, nothing throws.
  rmSync(folder, { recursive: true });
  const lost = await saveSlots({ base: two.base }, two.cache);
  t.equal(lost.count, 0);
  t.match(lost.error, /^saving org\/tiny:q's slots: slots [\d, ]+: POST \/slots\/\{id\}\?action=save answered 500: .+ \(check that .+org%2Ftiny%3Aq exists and llama-server can write there\)$/, 'one line for all slots, saying where to look');
  t.match(await restoreSlots({ base: two.base }, two.cache), { count: 0, tokens: 0, error: undefined }, 'no folder: nothing to restore, no error');
  mkdirSync(folder);
  await two.stop();
});

t.test('a server with many slots, one that cannot save, one that never answers: bounded, no exception', async (t) => {
  const dir = tempDir(t);
  const posted: number[] = [];
  const tasks: Record<number, number> = { 3: 7, 10: 9, 45: 20 };
  let mode: 'ok' | 'no-path' | 'silent' = 'ok';
  const server = createServer((req, res) => {
    if (req.url === '/slots') {
      // Each entry as llama-server writes it, ~2 KiB of settings (with LoRA ids that must not be taken for slots): 48 of them pass 64 KiB.
      const entry = (id: number) => ({ id, n_ctx: 2048, is_processing: false, ...(tasks[id] !== undefined ? { id_task: tasks[id] } : {}), params: { lora: [{ id: 99, scale: 1 }], pad: 'x'.repeat(2000) } });
      return res.end(JSON.stringify(Array.from({ length: 48 }, (_, id) => entry(id))));
    }
    const slot = Number(/^\/slots\/(\d+)\?action=save$/.exec(req.url ?? '')?.[1]);
    posted.push(slot);
    if (mode === 'silent') return; // never answers
    if (mode === 'no-path') return void res.writeHead(501).end(JSON.stringify({ error: { code: 501, message: 'This server does not support slots action. Start it with `--slot-save-path`' } }));
    res.end(JSON.stringify({ id_slot: slot, n_saved: tasks[slot] !== undefined ? 100 : 0 }));
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const endpoint = { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  const cache: SlotCache = { model: 'many', dir, max: 4, addsFlag: true, launch: 'x' };

  const saved = await saveSlots(endpoint, cache);
  t.match(saved, { count: 2, tokens: 200, error: undefined }, 'the two slots with a prompt before the cut of the long list');
  t.same(posted.slice(0, 2), [10, 3], 'the most recently used first');
  t.notOk(posted.includes(99) || posted.includes(45), 'no LoRA id taken for a slot; the slot past the cut is left out');
  t.ok(posted.length > 20 && posted.length < 48, `the ${posted.length} slots read are all tried: keep_cache_max counts the saved ones`);

  mode = 'no-path';
  posted.length = 0;
  const refused = await saveSlots(endpoint, cache);
  t.match(refused, { count: 0, error: "saving many's slots: slot 10: POST /slots/{id}?action=save answered 501: This server does not support slots action. Start it with `--slot-save-path`" });
  t.equal(posted.length, 1, 'a server that cannot save is asked once');

  mode = 'silent';
  const started = Date.now();
  const silent = await saveSlots(endpoint, cache, { timeoutMs: 2000 });
  t.match(silent, { count: 0, error: /^saving many's slots: slot 10: POST \/slots\/\{id\}\?action=save: no answer from .* within \d+ms$/ });
  t.ok(Date.now() - started < 10_000, 'the timeout holds');
});

t.test('a reload that removes the model, or turns keep_cache off, removes its saved slots', async (t) => {
  const { Controller } = await import('../lib/scheduler/controller.js');
  const { fakeDriver } = await import('./support/fake-driver.js');
  const dir = tempDir(t);
  const stateDir = join(dir, 'state');
  const text = (models: string) => `state_dir: ${stateDir}\nmodels:\n${models}`;
  const model = (name: string, keep: boolean) => `  ${name}: { backend: llama-cpp, ${keep ? 'keep_cache: true, ' : ''}cmd: "llama-server -m /m.gguf --port \${PORT}" }\n`;
  const before = parseConfig(text(model('gone', true) + model('off', true) + model('kept', true)), join(dir, 'hub.yaml'));
  const c = new Controller(before, { driver: fakeDriver(), hubCommand: ['hub'], stateDir });
  t.teardown(() => c.shutdown());
  for (const name of ['gone', 'off', 'kept']) {
    mkdirSync(before.models[name].keepCache!.dir, { recursive: true });
    writeFileSync(join(before.models[name].keepCache!.dir, `slot-1-0.bin`), 'kv');
  }
  c.applyConfig(parseConfig(text(model('off', false) + model('kept', true)), join(dir, 'hub.yaml')));
  const files = (name: string) => (existsSync(before.models[name].keepCache!.dir) ? readdirSync(before.models[name].keepCache!.dir).filter((f) => f.endsWith('.bin')) : []);
  await waitFor('the removed and the turned-off models\' files to go', () => files('gone').length === 0 && files('off').length === 0, 10_000);
  t.same(files('kept'), ['slot-1-0.bin'], 'a model that keeps keep_cache keeps its files');
});
