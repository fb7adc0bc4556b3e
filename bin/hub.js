#!/usr/bin/env node
// The `hub` CLI. The TypeScript sources are compiled to dist/ by `npm install` (the prepare script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/lib/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('[err] modelhub is not built: run `npm install` (or `npm run build`) in the repository first\n');
  process.exit(2);
}
await import(main.href);
