// `npm run build`: compiles into a fresh folder, then swaps it in for dist/ with two renames. A hub
// running from this checkout loads modules lazily and spawns `hub demo-model` from dist/, so it must
// never see dist/ half-built or gone; a build with type errors leaves the old dist/ in place.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const fresh = join(root, `dist.build-${process.pid}`);
const old = join(root, `dist.old-${process.pid}`);
const dist = join(root, 'dist');

rmSync(fresh, { recursive: true, force: true });
/** A failed step leaves the old dist/ in place. */
const abandon = () => {
  rmSync(fresh, { recursive: true, force: true });
  process.exit(1);
};
try {
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', fresh], { stdio: 'inherit' });
} catch {
  abandon();
}
// TypeBox as one module instead of ~680 (lib/config/typebox.ts says why): tsc's re-exports replaced
// by their bundle. Nothing else is bundled: the rest of dist/ is what tsc wrote.
const typebox = join(fresh, 'lib', 'config', 'typebox.js');
try {
  await build({ entryPoints: [typebox], outfile: typebox, allowOverwrite: true, bundle: true, format: 'esm', platform: 'node', logLevel: 'warning' });
  rmSync(`${typebox}.map`, { force: true }); // tsc's map, of the re-exports
} catch {
  abandon();
}
if (existsSync(dist)) renameSync(dist, old);
renameSync(fresh, dist);
rmSync(old, { recursive: true, force: true });
