// The parts of TypeBox the config check uses, from one module. `npm run build` bundles this file
// into one (scripts/build.mjs): TypeBox ships ~680 small ES modules, and importing them one by one
// took ~28 MB of resident memory for good (the module loader's own records of each); bundled, ~4 MB,
// and an idle hub holds ~15 MB less. Import TypeBox only from here: a second copy would not know this
// one's schemas (test/typebox-bundle.test.ts checks).
export { default as Type } from 'typebox';
export type { Static, TSchema } from 'typebox';
export { Settings } from 'typebox/system';
export { default as Value } from 'typebox/value';
export { Compile, type Validator } from 'typebox/compile';
