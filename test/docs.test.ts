// Every YAML block in README.md and docs/ is a config a user may paste: each must pass `hub check`
// (run as a user would, as a real process). `${env.X}` references get a placeholder value, since
// the docs show secrets passed that way.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { HUB_BIN, PACKAGE_ROOT, tempDir } from './helpers.js';

const run = promisify(execFile);
const files = ['README.md', ...readdirSync(join(PACKAGE_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

t.test('every config block in the docs passes hub check', async (t) => {
  const dir = tempDir(t);
  const checks: Array<Promise<void>> = [];
  for (const file of files) {
    const text = readFileSync(join(PACKAGE_ROOT, file), 'utf8');
    for (const match of text.matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
      const line = text.slice(0, match.index).split('\n').length;
      const path = join(dir, `block-${checks.length}.yaml`);
      writeFileSync(path, match[1]);
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
      for (const [, name] of match[1].matchAll(/\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}/g)) env[name] = `placeholder-${name.toLowerCase()}`;
      checks.push(
        run(process.execPath, [HUB_BIN, 'check', '--config', path], { env }).then(
          () => void t.pass(`${file}:${line} is a valid config`),
          (err: { stderr?: string; stdout?: string }) => void t.fail(`${file}:${line} is not a valid config:\n${`${err.stderr ?? ''}${err.stdout ?? ''}`.trim()}`),
        ),
      );
    }
  }
  await Promise.all(checks);
  t.ok(checks.length >= 10, `${checks.length} blocks checked`);
});
