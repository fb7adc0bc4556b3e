#!/usr/bin/env node
// The `hub` CLI. The TypeScript sources are compiled to dist/ by `npm install` (the prepare script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/lib/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('[err] modelhub is not built: run `npm install` (or `npm run build`) in the repository first\n');
  process.exit(2);
}
// `hub demo-model` (started for every demo model a hub runs) skips yargs when its arguments are a
// plain start; anything else goes to the full CLI below.
const quick = process.argv[2] === 'demo-model' && (await import(new URL('../dist/lib/cli/demo-quick.js', import.meta.url).href)).runDemoQuickly;
if (!quick || !(await quick(process.argv.slice(3)))) await import(main.href);
