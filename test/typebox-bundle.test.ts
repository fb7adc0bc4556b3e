// TypeBox is loaded as one bundled module (lib/config/typebox.ts, bundled by scripts/build.mjs): as its
// ~680 separate ES modules it kept ~15 MB more of an idle hub's resident memory. One import of 'typebox'
// anywhere else would load that copy again (and a second copy does not know the first one's schemas).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []);
}

t.test('TypeBox is imported only through lib/config/typebox.ts', async (t) => {
  const importing = ['lib', 'bench', 'bin', 'test'].flatMap((dir) => sources(dir))
    .filter((file) => /from ['"]typebox(\/[^'"]*)?['"]/.test(readFileSync(join(root, file), 'utf8')))
    .filter((file) => file !== join('lib', 'config', 'typebox.ts'));
  t.same(importing, [], 'no other source imports typebox');
});

t.test('the built lib/config/typebox.js is the bundle, with no import of typebox left', async (t) => {
  const built = readFileSync(join(root, 'dist', 'lib', 'config', 'typebox.js'), 'utf8');
  t.notMatch(built, /from ['"]typebox/, 'nothing is imported from the typebox package at run time');
  t.match(built, /node_modules\/typebox\/build\//, 'its code is in the module itself (esbuild names each part by its file)');
});
