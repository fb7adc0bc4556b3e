// Measuring memory, piece by piece: the RSS of a whole process tree (a real child that forks a
// grandchild which allocates), the nvidia-smi CSV, the per-model store in state_dir, and the GGUF
// estimate's arithmetic on GGUF files this test writes.
import { spawn } from 'node:child_process';
import t from 'tap';
import { processTree, residentBytes, treeResidentBytes } from '../lib/runtime/resident.js';
import { waitFor } from './helpers.js';

const MiB = 2 ** 20;

/** A node process that forks a grandchild holding `mib` MiB of touched memory; resolves with both pids. */
async function parentWithHungryChild(t: { teardown(fn: () => void): void }, mib: number): Promise<{ parent: number; grandchild: number }> {
  const grandchild = `const b = Buffer.alloc(${mib} * 1048576, 1); console.log('ready ' + process.pid); setInterval(() => b[0]++, 1000);`;
  const parent = `const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: ['ignore', 'inherit', 'inherit'] }); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', parent], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const pid = await waitFor('the grandchild to allocate', () => /ready (\d+)/.exec(out)?.[1]);
  return { parent: child.pid!, grandchild: Number(pid) };
}

t.test('the RSS of a process tree counts a grandchild that allocates', async (t) => {
  const { parent, grandchild } = await parentWithHungryChild(t, 96);
  const tree = processTree(parent);
  t.equal(tree[0], parent, 'the tree starts at the pid asked about');
  t.ok(tree.includes(grandchild), 'the grandchild is found through /proc children files');
  t.ok(processTree(parent, { scan: true }).includes(grandchild), 'and by the scan of every parent pid, where the kernel has no children files');
  const own = residentBytes(parent)!;
  const total = treeResidentBytes(parent)!;
  t.ok(total >= own + 90 * MiB, `the tree holds the grandchild's 96 MiB (${Math.round(own / MiB)} MiB own, ${Math.round(total / MiB)} MiB tree)`);
  t.equal(treeResidentBytes(2 ** 22 + 12345), undefined, 'a pid that does not exist has no figure');
  t.same(processTree(2 ** 22 + 12345), [2 ** 22 + 12345], 'and no children');
});
