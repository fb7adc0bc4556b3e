// The parts of TypeBox the config check uses, from one module. `npm run build` bundles this file
// into one (scripts/build.mjs): TypeBox ships ~680 small ES modules, and loaded one by one they kept
// ~25 MB of the hub's resident memory for good (the module loader's own records of each); bundled,
// ~4 MB. Import TypeBox only from here: a second copy would not know this one's schemas.
export { default as Type } from 'typebox';
export type { Static, TSchema } from 'typebox';
export { Settings } from 'typebox/system';
export { default as Value } from 'typebox/value';
export { Compile, type Validator } from 'typebox/compile';
