// What `hub init` writes runs: a real llama.cpp `llama-server` (built once by scripts/llama-server.sh
// and cached outside the repo) found on PATH, a tiny generated GGUF in a folder, `hub init` on it, and
// `hub serve` on the file it wrote answering a chat completion by the model's name and its alias.
// A file of its own: building llama-server on a cold cache takes minutes.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { hub } from './cli-support.js';
import { PACKAGE_ROOT, freePort, freePortRange, postJson, serveHub, tempDir } from './helpers.js';
import { writeTinyGguf } from './support/tiny-gguf.js';

const MiB = 2 ** 20;

// Building llama-server takes ~6 minutes when the cache is empty (CI runs the script before the tests).
t.test('what init writes runs: a real llama-server answers through the hub', { timeout: 15 * 60_000 }, async (t) => {
  const { stdout } = await promisify(execFile)('bash', [join(PACKAGE_ROOT, 'scripts', 'llama-server.sh')], { maxBuffer: 64 * MiB });
  const server = stdout.trim().split('\n').at(-1)!;
  const dir = tempDir(t);
  const models = join(dir, 'models');
  const bin = join(dir, 'bin');
  mkdirSync(models);
  mkdirSync(bin);
  symlinkSync(server, join(bin, 'llama-server'));
  writeTinyGguf(join(models, 'Tiny-Chat-F32.gguf'));
  const output = join(dir, 'hub.yaml');
  const r = await hub(['init', models, '--output', output], { env: { PATH: bin, HOME: dir } });
  t.equal(r.code, 0, `${r.out}${r.err}`);

  // The written file, on a free port and a state_dir of its own; nothing else changed.
  const port = await freePort();
  const text = readFileSync(output, 'utf8')
    .replace(/^listen: .*$/m, `listen: { host: 127.0.0.1, port: ${port} }\nports: { start: ${await freePortRange(4)} }`)
    .replace(/^state_dir: .*$/m, `state_dir: ${join(dir, 'state')}`);
  writeFileSync(output, text);
  // One thread: more are far slower on a 2-core box (llama-server reads LLAMA_ARG_THREADS).
  const h = await serveHub(t, output, { env: { LLAMA_ARG_THREADS: '1' }, timeoutMs: 30_000 });
  const answer = await postJson(`${h.origin}/v1/chat/completions`, { model: 'tiny-chat-f32', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 });
  t.equal(answer.status, 200, JSON.stringify(answer.body));
  t.equal(answer.body.object, 'chat.completion', 'llama-server answered, started by the hub from the config init wrote');
  t.ok(answer.body.usage.completion_tokens > 0);
  const alias = await postJson(`${h.origin}/v1/chat/completions`, { model: 'modelhub-tiny-random', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  t.equal(alias.status, 200, 'general.name works as an alias');
});
