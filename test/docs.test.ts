// Docs that work when pasted. Every block of README.md and docs/*.md is held to the convention in
// doc-blocks.ts: each config block passes the checker `hub check` runs (a `${env.X}` gets a
// placeholder value, since the docs pass secrets that way), and each shell and JS
// sample runs against a live hub started from the shipped hub.yaml, with 127.0.0.1:8080 rewritten to
// that hub's address. A sample that fails, hangs, or prints a hub error fails the test.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseDocument } from 'yaml';
import { ConfigError } from '../lib/config/errors.js';
import { loadConfig } from '../lib/config/load.js';
import { blocksOf, conventionProblem, retarget, type Block } from './doc-blocks.js';
import { freePort, freePortRange, HUB_BIN, PACKAGE_ROOT, spawnHub, tempDir, waitFor } from './helpers.js';

const run = promisify(execFile);
const files = ['README.md', ...readdirSync(join(PACKAGE_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const blocks = files.flatMap((file) => blocksOf(file, readFileSync(join(PACKAGE_ROOT, file), 'utf8')));
const where = (b: Block) => `${b.file}:${b.line}`;
const output = (err: { stderr?: string; stdout?: string; message?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`.trim() || String(err.message);

t.test('the block reader and the convention', async (t) => {
  const sample = [
    'text', '```yaml', 'models: {}', '```', '- item:', '', '  ```sh', '  curl http://127.0.0.1:8080/v1/models', '  ```',
    '<!-- sample: not run (needs a GPU) -->', '```bash', 'vllm serve x', '```', '```console', '$ hub check', '[ok] fine', '```',
    '```sh', '$ curl x', '```', '<!-- sample: not run (x) -->', '```text', 'x', '```',
  ].join('\n');
  const got = blocksOf('x.md', sample);
  t.same(got.map((b) => [b.line, b.kind, b.notRun]), [[2, 'config', undefined], [7, 'shell', undefined], [11, 'shell', 'needs a GPU'], [14, 'other', undefined], [18, 'shell', undefined], [22, 'other', 'x']]);
  t.equal(got[1].body, 'curl http://127.0.0.1:8080/v1/models\n', 'an indented block loses its indentation');
  t.equal(retarget(got[1].body, '127.0.0.1:4321'), 'curl http://127.0.0.1:4321/v1/models\n');
  t.match(conventionProblem(got[4]), /```console/, 'a prompt in a runnable block');
  t.match(conventionProblem(got[5]), /never runs/, 'a marker on a block that never runs');
  t.equal(conventionProblem(got[2]), undefined);
  t.match(conventionProblem(blocksOf('y.md', '```sh\nnpm install openai\n```\n')[0]), /installs packages/, 'an unmarked install');
});

t.test('every block follows the convention', async (t) => {
  for (const b of blocks) {
    const problem = conventionProblem(b);
    t.notOk(problem, `${where(b)} (\`\`\`${b.lang}) ${problem ?? 'ok'}`);
  }
  t.ok(blocks.some((b) => b.kind === 'shell' && !b.notRun) && blocks.some((b) => b.kind === 'js' && !b.notRun), 'there are samples to run');
});

t.test('every config block in the docs passes the checker hub check runs', async (t) => {
  // In-process (loadConfig is what `hub check` runs; the test below runs the real command once):
  // one process per block would cost a second of CPU each on a small machine.
  const dir = tempDir(t);
  const configs = blocks.filter((b) => b.kind === 'config');
  for (const [i, b] of configs.entries()) {
    const path = join(dir, `block-${i}.yaml`);
    writeFileSync(path, b.body);
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [, name] of b.body.matchAll(/\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}/g)) env[name] = `placeholder-${name.toLowerCase()}`;
    try {
      loadConfig(path, { env });
      t.pass(`${where(b)} is a valid config`);
    } catch (err) {
      t.fail(`${where(b)} is not a valid config:\n${err instanceof ConfigError ? err.message : String(err)}`);
    }
  }
  t.ok(configs.length >= 10, `${configs.length} blocks checked`);
});

t.test('a config block that is broken fails the check (the test can fail)', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'broken.yaml');
  writeFileSync(path, 'models:\n  a: { cmd: "x --port ${PORT}", group: gpu0 }\n');
  const err = await run(process.execPath, [HUB_BIN, 'check', '--config', path], { env: { ...process.env, NO_COLOR: '1' } }).then(() => undefined, (e) => e);
  t.match(err && output(err), 'group "gpu0" is not defined');
  t.equal(err?.code, 2);
});

t.test('every shell and JS sample runs against a hub started from the shipped hub.yaml', async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const config = parseDocument(readFileSync(join(PACKAGE_ROOT, 'hub.yaml'), 'utf8'));
  config.setIn(['listen', 'port'], port);
  config.setIn(['state_dir'], join(dir, 'state'));
  config.setIn(['ports'], config.createNode({ start: await freePortRange(4) }));
  writeFileSync(join(dir, 'hub.yaml'), config.toString());
  const hub = spawnHub(t, ['serve', '--config', join(dir, 'hub.yaml')], { NO_COLOR: '1' });
  const origin = `http://127.0.0.1:${port}`;
  await waitFor('the hub to answer', () => fetch(`${origin}/health`).then((r) => r.ok, () => false), 15_000);
  symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(dir, 'node_modules')); // so samples import the installed packages

  // Never one that breaks the convention (e.g. an unmarked `npm install`): the test above says why.
  const samples = blocks.filter((b) => (b.kind === 'shell' || b.kind === 'js') && b.notRun === undefined && !conventionProblem(b));
  for (const [i, b] of samples.entries()) {
    const body = retarget(b.body, `127.0.0.1:${port}`);
    const options = { cwd: dir, timeout: 30_000, env: { ...process.env, NO_COLOR: '1' } };
    let result: { stdout: string; stderr: string };
    try {
      if (b.kind === 'shell') {
        result = await run('bash', ['-e', '-o', 'pipefail', '-c', body], options);
      } else {
        const file = join(dir, `sample-${i}.mjs`);
        writeFileSync(file, body);
        result = await run(process.execPath, [file], options);
      }
    } catch (err) {
      t.fail(`${where(b)} (\`\`\`${b.lang}) failed:\n${output(err as object)}\n--- sample ---\n${body}`);
      continue;
    }
    const printed = result.stdout + result.stderr;
    // curl -s exits 0 on an HTTP error: a hub error in the output is a failed sample too.
    const error = /"error"\s*:\s*\{|"type"\s*:\s*"error"/.test(printed);
    t.notOk(error, `${where(b)} (\`\`\`${b.lang}) ran${error ? `, but printed an error:\n${printed}` : ''}`);
  }
  t.ok(samples.length >= 5, `${samples.length} samples ran`);
  t.equal(hub.child.exitCode, null, 'the hub is still up after all of them');
});
