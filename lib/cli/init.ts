// `hub init [folders..]`: a hub.yaml for this machine. Looks for model servers on PATH and GGUF files
// in the folders, reads each header, and writes llama-server models with a context and memory worked
// out from it (lib/init/). Never replaces an existing file without --force; the text is validated
// with the same loader `hub check` uses before it is written.
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir, totalmem } from 'node:os';
import { basename, dirname, relative, resolve } from 'node:path';
import { ConfigError, formatProblem } from '../config/errors.js';
import { parseConfig } from '../config/load.js';
import { parseSize } from '../config/units.js';
import { portWarnings } from '../config/warnings.js';
import { findBackends } from '../init/backends.js';
import { DEFAULT_CONTEXT, describeBytes, formatMemory } from '../init/estimate.js';
import { readGgufInfo } from '../init/gguf-info.js';
import { ephemeralPortRange } from '../runtime/ports.js';
import { planConfig, type ReadFile } from '../init/plan.js';
import { renderConfig } from '../init/render.js';
import { scanFolders } from '../init/scan.js';
import type { Args } from './commands.js';
import { CliError, plural } from './errors.js';
import { EXIT, say } from './output.js';

/** Looked at when no folder is given: where people and tools usually keep GGUF files. */
export const DEFAULT_FOLDERS = ['~/models', '~/.cache/llama.cpp', '~/.lmstudio/models', '~/.cache/lm-studio/models'];

/** The group's budget when --max-memory is not given: this share of RAM, leaving the rest to the system. */
const RAM_SHARE = 0.75;

const expand = (p: string) => (p === '~' || p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : resolve(p));

export async function init(args: Args): Promise<number> {
  const output = resolve(String(args.output ?? 'hub.yaml'));
  const force = args.force === true;
  if (existsSync(output) && !force) {
    throw new CliError(EXIT.usage, `${output} already exists; hub init never replaces a config without --force (or write elsewhere with --output PATH)`);
  }
  const contextCap = Number(args.context ?? DEFAULT_CONTEXT);
  if (!Number.isInteger(contextCap) || contextCap < 256) throw new CliError(EXIT.usage, `--context must be a whole number of tokens, 256 or more (got ${String(args.context)})`);
  const budget = memoryBudget(args['max-memory']);

  const folders = chooseFolders((args.folders as string[] | undefined) ?? []);
  const { found, missing } = findBackends();
  for (const b of found) say.ok(`found ${b.spec.program} at ${b.path} (${b.spec.backend} backend: ${b.spec.serves})`);
  if (missing.length) say.info(`not on PATH: ${missing.map((b) => b.program).join(', ')}`);

  const scan = await scanFolders(folders);
  for (const note of scan.notes) say.info(note);
  const files: ReadFile[] = [];
  for (const candidate of scan.files) {
    try {
      files.push({ candidate, info: await readGgufInfo(candidate.path, candidate.size, { split: candidate.parts !== undefined }) });
    } catch (err) {
      files.push({ candidate, error: (err as Error).message });
    }
  }
  say.info(`${plural(scan.files.length, 'GGUF file')} in ${folders.join(', ') || 'no folder'}`);

  const { plan, said } = planConfig({ folders, files, backends: found, contextCap, budget, now: new Date() });
  for (const s of said) say[s.level](s.text);
  const text = renderConfig(plan);

  // What `hub check` would say, before anything is written: a config init cannot load is a bug here.
  try {
    const config = parseConfig(text, output);
    for (const w of portWarnings(config, ephemeralPortRange())) say.warn(formatProblem(basename(output), w));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new CliError(EXIT.failed, `the config hub init made does not pass hub check, so nothing was written (please report this):\n${err.message}`);
  }
  write(output, text, force);

  const count = plan.demo ? 'the demo models' : plural(plan.models.length, 'model');
  say.ok(`wrote ${output}: ${count}${plan.group ? `, group ${plan.group.name} of ${formatMemory(plan.group.maxMemory)}` : ''}`);
  const shown = relative(process.cwd(), output);
  const config = shown === 'hub.yaml' ? '' : ` --config ${shown.startsWith('..') ? output : shown}`;
  const first = plan.demo ? 'demo-small' : plan.models[0].name;
  say.info(`next: hub check${config}, then hub serve${config}, and ask it: curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' -d '{"model": "${first}", "messages": [{"role": "user", "content": "Hello"}]}'`);
  return EXIT.ok;
}

/** The folders given (each must be a folder), or the usual places that exist. */
function chooseFolders(given: string[]): string[] {
  if (given.length === 0) {
    const present = DEFAULT_FOLDERS.map(expand).filter((f) => isFolder(f));
    say.info(present.length ? `no folder given: looking in ${present.join(', ')}` : `no folder given, and none of ${DEFAULT_FOLDERS.join(', ')} exists; name the folders that hold your .gguf files: hub init ~/models`);
    return present;
  }
  const folders = given.map(expand);
  const bad = folders.filter((f) => !isFolder(f));
  if (bad.length) throw new CliError(EXIT.usage, `${bad.map((f) => (existsSync(f) ? `${f} is not a folder` : `${f} does not exist`)).join('; ')}; name folders that hold .gguf files`);
  return folders;
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function memoryBudget(given: unknown): { bytes: number; why: string } {
  if (given !== undefined) {
    const bytes = parseSize(given);
    if (bytes === undefined || bytes <= 0) throw new CliError(EXIT.usage, `--max-memory must be a size like 24GiB (got ${String(given)})`);
    return { bytes, why: `--max-memory ${String(given)}` };
  }
  const ram = totalmem();
  const bytes = Math.max(2 ** 30, Math.floor((ram * RAM_SHARE) / 2 ** 30) * 2 ** 30);
  return { bytes, why: `${RAM_SHARE * 100}% of this machine's ${describeBytes(ram)} of RAM` };
}

/** Without --force the file is created only if it still does not exist; with it, replaced in one rename. */
function write(output: string, text: string, force: boolean): void {
  mkdirSync(dirname(output), { recursive: true });
  try {
    if (!force) {
      writeFileSync(output, text, { flag: 'wx' });
      return;
    }
    const temp = `${output}.init-${process.pid}`;
    writeFileSync(temp, text);
    renameSync(temp, output);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new CliError(EXIT.usage, `${output} appeared while hub init ran; pass --force to replace it`);
    throw new CliError(EXIT.failed, `cannot write ${output}: ${e.message}`);
  }
}
