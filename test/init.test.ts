// `hub init`: the arithmetic (KV cache, memory, context, names) on its own, then the built CLI as a
// user runs it, on GGUF files this test writes (tiny-gguf.ts, with chosen header values) and fake
// model servers on a temporary PATH: what it finds and says, the file it writes (which `hub check`
// passes) and the no-overwrite rule. A real llama-server answering through the config init wrote:
// init-llama.test.ts.
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { SLUG } from '../lib/config/load.js';
import { chooseContext, estimateMemory, fileStem, formatMemory, formatParameters, kvCacheBytes, nameFrom, uniqueName } from '../lib/init/estimate.js';
import { renderCmd } from '../lib/init/render.js';
import { hub } from './cli-support.js';
import { tempDir } from './helpers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

t.test('the arithmetic: KV cache, context, memory, names', async (t) => {
  // Llama 3 8B: 32 layers, 8 KV heads of 128 = 1 GiB of f16 KV cache at 8192 tokens (llama.cpp says the same).
  const llama8b = { layers: 32, heads: 32, kvHeads: 8, embedding: 4096 };
  t.equal(kvCacheBytes(llama8b, 8192), GiB, 'Llama 3 8B at 8192 tokens: 1 GiB');
  t.equal(kvCacheBytes(llama8b, 4096), GiB / 2, 'linear in the context');
  t.equal(kvCacheBytes({ layers: 2, heads: 4, embedding: 64 }, 2048), 2048 * 2 * 4 * 32 * 2, 'no head_count_kv: as many KV heads as heads');
  t.equal(kvCacheBytes({ layers: 3, heads: 8, kvHeads: [8, 0, 2], embedding: 1024 }, 100), 100 * (8 + 0 + 2) * 256 * 2, 'a KV head count per layer is summed');
  t.equal(kvCacheBytes({ layers: 1, heads: 8, kvHeads: 4, embedding: 2048, keyLength: 192, valueLength: 128 }, 10), 10 * 4 * (192 + 128) * 2, 'key_length / value_length win over embedding / heads');

  t.same(chooseContext(131072).context, 8192, 'a long trained context is capped at 8192');
  t.match(chooseContext(131072).why, /trained for 131072, capped at 8192/);
  t.same(chooseContext(2048), { context: 2048, why: 'its trained context (2048) fits under 8192' });
  t.equal(chooseContext(undefined).context, 8192, 'no context in the header: the default');
  t.equal(chooseContext(32768, 4096).context, 4096, '--context moves the cap');

  // Qwen2.5 7B Q4_K_M: a 4.36 GiB file, 448 MiB of KV at 8192, 10% margin: 5.24 GiB, written 5.25GiB.
  const qwen = estimateMemory(4_683_073_536, kvCacheBytes({ layers: 28, heads: 28, kvHeads: 4, embedding: 3584 }, 8192));
  t.equal(qwen.kv, 448 * MiB);
  t.equal(qwen.margin, Math.ceil(4_683_073_536 * 0.1), 'margin: 10% of the weights');
  t.equal(formatMemory(qwen.total), '5.25GiB', 'rounded up to the next 256 MiB');
  const tiny = estimateMemory(500_000, MiB);
  t.equal(tiny.margin, 128 * MiB, 'margin: at least 128 MiB');
  t.equal(formatMemory(tiny.total), '256MiB');
  t.equal(formatMemory(6 * GiB), '6GiB');
  t.equal(formatMemory(768 * MiB), '768MiB');

  t.equal(formatParameters(7_615_616_512), '7.6B');
  t.equal(formatParameters(494_032_768), '494M');
  t.equal(formatParameters(127_552), '128K');

  t.equal(nameFrom('Qwen2.5-7B-Instruct-Q4_K_M'), 'qwen2.5-7b-instruct-q4_k_m', 'a file name as people type it');
  t.equal(nameFrom('Meta Llama 3.1 8B Instruct'), 'meta-llama-3.1-8b-instruct', 'general.name: spaces become dashes');
  t.equal(nameFrom('__odd..name--(v2)__'), 'odd.name-v2', 'no doubled or dangling separators');
  t.equal(nameFrom('模型'), '', 'nothing usable: empty (the caller falls back)');
  const long = nameFrom(`${'very-long-model-name-'.repeat(6)}q8_0`);
  t.ok(long.length <= 64 && SLUG.test(long), `a long name is cut at a separator (${long})`);
  for (const raw of ['A B', 'x__y', '-lead', 'trail.', 'Mixtral-8x7B-v0.1.Q5_K_M', 'é-ü']) {
    const n = nameFrom(raw);
    t.ok(n === '' || SLUG.test(n), `${raw} → ${n} is a valid model name`);
  }
  t.equal(fileStem('Big-Model-Q8_0-00001-of-00003.gguf'), 'Big-Model-Q8_0', 'the split suffix is not part of the name');
  const taken = new Set<string>();
  t.same(['tiny', 'tiny', 'tiny'].map((n) => uniqueName(n, taken)), ['tiny', 'tiny-2', 'tiny-3'], 'the same name twice gets a number');

  t.equal(renderCmd(['/usr/bin/llama-server', '-m', '/m/a.gguf', '--port', '${PORT}']), '/usr/bin/llama-server -m /m/a.gguf --port ${PORT}', 'plain words: one line');
  t.equal(renderCmd(['llama-server', '-m', '/my models/a #1.gguf']), '["llama-server", "-m", "/my models/a #1.gguf"]', 'a path with spaces or # : a quoted list');
});

/** A folder of GGUF files with chosen headers, and a PATH of fake servers. */
function machine(dir: string) {
  const models = join(dir, 'models');
  const bin = join(dir, 'bin');
  for (const d of [models, join(models, 'nested', 'deeper'), join(models, 'a'), join(models, 'split'), bin]) mkdirSync(d, { recursive: true });
  const qwen = join(models, 'Qwen2.5-7B-Instruct-Q4_K_M.gguf');
  writeTinyGguf(qwen, { header: { name: 'Qwen2.5 7B Instruct', contextLength: 32768, blockCount: 28, embeddingLength: 3584, headCount: 28, headCountKv: 4, fileType: 15 } });
  writeTinyGguf(join(models, 'nested', 'deeper', 'tiny.gguf'), { seed: 1 });
  writeTinyGguf(join(models, 'a', 'tiny.gguf'), { seed: 2, header: { name: null } });
  writeTinyGguf(join(models, 'split', 'big-00001-of-00002.gguf'), { seed: 3, header: { name: 'Big' } });
  writeTinyGguf(join(models, 'split', 'big-00002-of-00002.gguf'), { seed: 4 });
  writeTinyGguf(join(models, 'huge.gguf'), { seed: 5, header: { contextLength: 8192, blockCount: 10000, embeddingLength: 65536, headCount: 64, headCountKv: 64 } });
  writeTinyGguf(join(models, 'nomic-embed-text-v1.5.Q8_0.gguf'), { seed: 7, header: { architecture: 'nomic-bert', name: 'nomic-embed-text-v1.5', meta: { 'nomic-bert.pooling_type': 1 } } });
  writeTinyGguf(join(models, 'mmproj-model-f16.gguf'), { seed: 6, header: { architecture: 'clip' } });
  writeFileSync(join(models, 'corrupt.gguf'), Buffer.from('GGUF\x03\x00\x00\x00this is not a header at all', 'latin1'));
  writeFileSync(join(models, 'truncated.gguf'), readFileSync(qwen).subarray(0, 3000));
  writeFileSync(join(models, 'notes.txt'), 'not a model');
  for (const program of ['llama-server', 'vllm', 'ollama']) {
    writeFileSync(join(bin, program), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, program), 0o755);
  }
  writeFileSync(join(bin, 'sglang'), 'not executable'); // a file on PATH that cannot run is not a server
  return { models, bin, qwen };
}

t.test('hub init on a folder of GGUF files, with fake servers on PATH', async (t) => {
  const dir = tempDir(t);
  const { models, bin, qwen } = machine(dir);
  const output = join(dir, 'conf', 'hub.yaml');
  const env = { PATH: bin, HOME: dir };
  const r = await hub(['init', models, '--output', output, '--max-memory', '8GiB'], { env, cwd: dir });
  t.equal(r.code, 0, `exits 0\n${r.out}${r.err}`);

  t.match(r.out, `[ok] found llama-server at ${join(bin, 'llama-server')} (llama-cpp backend`);
  t.match(r.out, `[ok] found vllm at ${join(bin, 'vllm')}`);
  t.match(r.out, `[ok] found ollama at ${join(bin, 'ollama')}`);
  t.match(r.out, /\[info\] not on PATH: sglang, mlx-openai-server, mlx_lm\.server, whisper-server\n/, 'says what it did not find (sglang is there but not executable)');
  t.match(r.out, /\[info\] 9 GGUF files in /, 'split parts count once');
  t.match(r.out, /\[ok\] qwen2\.5-7b-instruct-q4_k_m: .*Qwen2\.5-7B-Instruct-Q4_K_M\.gguf \(llama, 128K parameters, Q4_K_M\); context 8192: trained for 32768, capped at 8192.*; memory 768MiB = .* file \+ 448MiB KV cache \(8192 tokens, f16\) \+ 128MiB margin/, 'each model: what was read and why');
  t.match(r.out, /\[ok\] tiny: .*context 2048: its trained context \(2048\) fits under 8192; memory 256MiB/);
  t.match(r.out, /\[info\] .*mmproj-model-f16\.gguf: a multimodal projector \(mmproj\), not a model on its own; to use it, add --mmproj/);
  t.match(r.err, /\[warn\] .*corrupt\.gguf: not a readable GGUF file \(.+\); left out/, 'a corrupt file: a clear warning naming it');
  t.match(r.err, /\[warn\] .*truncated\.gguf: the header runs past the end of the file .*truncated, or still downloading; left out/);
  t.match(r.err, /\[warn\] huge: needs \d+(\.\d+)?(GiB|MiB), more than the group's 8GiB; kept outside the group/);
  t.match(r.out, /\[info\] group local: max_memory 8GiB \(--max-memory 8GiB\)/);
  t.match(r.out, `[ok] wrote ${output}: 6 models, group local of 8GiB`);
  t.match(r.out, /\[info\] next: hub check --config conf\/hub\.yaml, then hub serve --config conf\/hub\.yaml, and ask it: curl /);
  t.notMatch(r.out + r.err, /\[err\]/);

  const text = readFileSync(output, 'utf8');
  const config = parse(text) as { groups: Record<string, unknown>; models: Record<string, Record<string, unknown>> };
  t.same(Object.keys(config.models).sort(), ['big', 'huge', 'nomic-embed-text-v1.5.q8_0', 'qwen2.5-7b-instruct-q4_k_m', 'tiny', 'tiny-2'], 'every model once, named from its file; the second tiny.gguf gets -2');
  t.same(config.models['qwen2.5-7b-instruct-q4_k_m'], {
    backend: 'llama-cpp',
    cmd: `${join(bin, 'llama-server')} -m ${qwen} --port \${PORT} -c 8192`,
    group: 'local',
    memory: '768MiB',
    aliases: ['qwen2.5-7b-instruct'],
  }, 'llama-server found on PATH by its full path, the file, the port placeholder, the context; general.name as an alias');
  t.match(config.models.tiny.cmd, / -c 2048$/);
  t.notOk(config.models.tiny.aliases, 'no general.name, no alias');
  t.notOk(config.models['tiny-2'].aliases, 'a general.name two files share is neither one\'s alias');
  t.match(config.models.big.cmd, /big-00001-of-00002\.gguf --port/, 'a split model runs from its first part');
  t.match(config.models['nomic-embed-text-v1.5.q8_0'], { cmd: / -c 2048 --embeddings$/, aliases: ['nomic-embed-text-v1.5'] }, 'an embedding model (pooling_type set) is served with --embeddings');
  t.match(r.out, /\[ok\] nomic-embed-text-v1\.5\.q8_0: .*\(nomic-bert, 128K parameters, Q8_0, embeddings\)/, 'its quantization read from the file name when the header has no file_type');
  t.notOk(config.models.huge.group, 'a model bigger than the budget stays outside the group');
  t.same(config.groups, { local: { max_memory: '8GiB', on_full: 'evict' } });
  t.notMatch(text, /demo-model|demo-small/, 'no demo models when real ones were found');
  t.match(text, /# vllm found at .*\n {2}# my-vllm-model:\n {2}# {3}backend: vllm/, 'a commented sample for each other server found');
  t.match(text, /# ollama found at /);
  t.match(text, /# -c 8192: trained for 32768/, 'the file says why, too');

  // hub check, and a second init that must leave the file alone, at once.
  const before = statSync(output).mtimeMs;
  const [check, again] = await Promise.all([hub(['check', '--config', output], { env }), hub(['init', models, '--output', output], { env, cwd: dir })]);
  t.equal(check.code, 0, `hub check passes on what init wrote\n${check.out}${check.err}`);
  t.match(check.out, /is valid: 6 models \(6 managed, 0 remote\), 1 group/);
  t.equal(check.err, '', 'and has no warning (llama-server is on PATH)');

  // Never replaced without --force: exit 2, the file as it was.
  t.equal(again.code, 2, 'an existing file: exit 2');
  t.match(again.err, `[err] ${output} already exists; hub init never replaces a config without --force (or write elsewhere with --output PATH)`);
  t.equal(readFileSync(output, 'utf8'), text, 'the file is untouched');
  t.equal(statSync(output).mtimeMs, before);

  const forced = await hub(['init', models, '--output', output, '--force', '--context', '4096', '--max-memory', '8GiB'], { env, cwd: dir });
  t.equal(forced.code, 0, '--force replaces it');
  const replaced = parse(readFileSync(output, 'utf8')) as typeof config;
  t.match(replaced.models['qwen2.5-7b-instruct-q4_k_m'], { cmd: / -c 4096$/, memory: '512MiB' }, '--context 4096: half the KV cache (224 MiB), less memory');
  t.equal((await hub(['check', '--config', output], { env })).code, 0, 'and it passes hub check');
});

t.test('no GGUF and no server: the demo models, and what to do', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'models'));
  mkdirSync(join(dir, 'bin'));
  const env = { PATH: join(dir, 'bin'), HOME: dir };
  const none = tempDir(t);
  // Independent runs at once: each CLI start costs seconds on a busy machine.
  const [r, bare] = await Promise.all([
    hub(['init'], { env, cwd: dir }),
    hub(['init', '--output', join(none, 'x.yaml')], { env: { PATH: join(dir, 'bin'), HOME: none }, cwd: none }),
  ]);
  t.equal(r.code, 0, `exits 0\n${r.out}${r.err}`);
  t.match(r.out, `[info] no folder given: looking in ${join(dir, 'models')}`, 'no folder: the usual places that exist');
  t.match(r.out, '[info] not on PATH: llama-server, vllm, sglang, mlx-openai-server, mlx_lm.server, ollama, whisper-server');
  t.match(r.out, '[info] 0 GGUF files in');
  t.match(r.err, /\[warn\] no GGUF model found in .*: wrote the demo models so that the hub works now; run hub init --force with the folders that hold your \.gguf files/);
  t.match(r.out, `[ok] wrote ${join(dir, 'hub.yaml')}: the demo models`);
  t.match(r.out, /next: hub check, then hub serve, and ask it: curl .*"model": "demo-small"/, 'hub.yaml in the current folder needs no --config');
  const config = parse(readFileSync(join(dir, 'hub.yaml'), 'utf8')) as { models: Record<string, unknown> };
  t.same(Object.keys(config.models), ['demo-small', 'demo-large']);
  const check = await hub(['check'], { env, cwd: dir });
  t.equal(check.code, 0, `hub check passes\n${check.out}${check.err}`);

  t.equal(bare.code, 0);
  t.match(bare.out, /no folder given, and none of ~\/models, .* exists; name the folders that hold your \.gguf files: hub init ~\/models/);
});

t.test('a GGUF file but no llama-server: written anyway, with a warning; one model needs no group', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'models'));
  mkdirSync(join(dir, 'bin'));
  writeTinyGguf(join(dir, 'models', 'solo.gguf'));
  const env = { PATH: join(dir, 'bin'), HOME: dir };
  const output = join(dir, 'hub.yaml');
  const r = await hub(['init', join(dir, 'models'), '--output', output], { env, cwd: dir });
  t.equal(r.code, 0, `${r.out}${r.err}`);
  t.match(r.err, '[warn] llama-server is not on PATH: the models are written with `llama-server` and will fail to start until it is installed');
  t.match(r.out, '[info] one model: no group needed');
  const config = parse(readFileSync(output, 'utf8')) as { groups?: unknown; models: Record<string, { cmd: string; aliases?: string[]; group?: string }> };
  t.equal(config.groups, undefined, 'no groups');
  t.match(config.models.solo, { cmd: /^llama-server -m .*solo\.gguf --port \$\{PORT\} -c 2048$/, aliases: ['modelhub-tiny-random'] });
  const check = await hub(['check', '--config', output], { env });
  t.equal(check.code, 0, 'hub check passes');
  t.match(check.err, /llama-server is not found on PATH; starting solo will fail/, 'and warns the same');
});

t.test('bad input: a clear error, nothing written', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'file.gguf'), 'x');
  const env = { PATH: dir, HOME: dir };
  const out = join(dir, 'out.yaml');
  const [missing, context, memory] = await Promise.all([
    hub(['init', join(dir, 'nope'), join(dir, 'file.gguf'), '--output', out], { env }),
    hub(['init', dir, '--context', '12', '--output', out], { env }),
    hub(['init', dir, '--max-memory', 'lots', '--output', out], { env }),
  ]);
  t.equal(missing.code, 2);
  t.match(missing.err, `[err] ${join(dir, 'nope')} does not exist; ${join(dir, 'file.gguf')} is not a folder; name folders that hold .gguf files`, 'every bad folder at once');
  t.equal(context.code, 2);
  t.match(context.err, '[err] --context must be a whole number of tokens, 256 or more (got 12)');
  t.equal(memory.code, 2);
  t.match(memory.err, '[err] --max-memory must be a size like 24GiB (got lots)');
  t.throws(() => statSync(out), 'nothing was written');
});
