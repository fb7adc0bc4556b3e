// A fake `nvidia-smi` on PATH for tests: each query is answered with a file the test writes (the
// devices, and the compute processes), a `fail` file makes it fail as a broken driver does, and each
// run is counted. The hub's GPU probe runs it as it would the real one.
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';

export interface FakeNvidiaSmi {
  /** Lines of `index, uuid, name, memory.total MiB, memory.used MiB`. */
  devices(csv: string): void;
  /** Lines of `gpu_uuid, pid, used MiB`. */
  apps(csv: string): void;
  /** While on, every run fails as nvidia-smi does without a driver. */
  failing(on: boolean): void;
  /** How many times it was run. */
  calls(): number;
}

/** Puts the fake first on this process's PATH (children of the hub inherit it). */
export function fakeNvidiaSmi(t: { teardown(fn: () => unknown): void }): FakeNvidiaSmi {
  const dir = tempDir(t);
  writeFileSync(
    join(dir, 'nvidia-smi'),
    `#!/bin/sh
echo "$1" >> "${dir}/calls"
if [ -f "${dir}/fail" ]; then echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2; exit 9; fi
case "$1" in
  --query-gpu=*) cat "${dir}/gpus.csv" ;;
  --query-compute-apps=*) cat "${dir}/apps.csv" ;;
  *) exit 2 ;;
esac
`,
  );
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  writeFileSync(join(dir, 'gpus.csv'), '');
  writeFileSync(join(dir, 'apps.csv'), '');
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path}`;
  t.teardown(() => void (process.env.PATH = path));
  return {
    devices: (csv) => writeFileSync(join(dir, 'gpus.csv'), csv),
    apps: (csv) => writeFileSync(join(dir, 'apps.csv'), csv),
    failing: (on) => (on ? writeFileSync(join(dir, 'fail'), '') : rmSync(join(dir, 'fail'), { force: true })),
    calls: () => (existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').split('\n').filter(Boolean).length : 0),
  };
}
