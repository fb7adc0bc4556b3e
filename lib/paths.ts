// Where the installed package lives (this file is compiled to dist/lib/paths.js).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What `${HUB}` expands to in a model's cmd: this hub's own CLI, with nothing needed on PATH. */
export const HUB_COMMAND: readonly string[] = [process.execPath, join(PACKAGE_ROOT, 'bin', 'hub.js')];

export const VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
