// Model names as users write them (`llama3.2:3b`, `Qwen2.5-7B-Instruct`, `org/model`): what is a
// valid name, how two names are told apart, and how a name becomes a file name. A name is never
// trusted where it meets the file system or a URL: file names come from `fileNameOf`, URL segments
// from encodeURIComponent.
import { join } from 'node:path';
import type { ModelConfig } from './types.js';

/** Longest model name or alias, in characters (Unicode code points). */
export const MAX_NAME_LENGTH = 128;

// Whitespace, separators and every "other" character (controls, invisible format characters such as
// zero-width spaces, surrogates, private-use and unassigned code points).
const UNPRINTABLE = /[\s\p{Z}\p{C}]/u;

/** What is wrong with `name` as a model name or alias, or undefined when it is fine. */
export function nameProblem(kind: 'model name' | 'alias', name: string): string | undefined {
  if (name === '') return `${kind} must not be empty`;
  const bad = UNPRINTABLE.exec(name);
  if (bad) {
    const code = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `${kind} ${JSON.stringify(name)} contains ${/\s/.test(bad[0]) ? 'whitespace' : 'an invisible or control character'} (U+${code}); use printable characters without spaces`;
  }
  const length = [...name].length;
  if (length > MAX_NAME_LENGTH) return `${kind} is ${length} characters long; the limit is ${MAX_NAME_LENGTH}`;
  // A URL segment of "." or ".." is resolved away by every HTTP client before it is sent.
  if (name === '.' || name === '..') return `${kind} ${JSON.stringify(name)} cannot be used in URLs; choose a name with other characters`;
  return undefined;
}

/**
 * The key two names collide under: names and aliases that differ only by case are refused together,
 * so that a case-insensitive lookup finds at most one model (and file names of two models never
 * collide on a case-insensitive file system).
 */
export const caseKey = (name: string): string => name.normalize('NFC').toLowerCase();

// A name that would give the hub's own log file its name (hub.log): escaped like any other byte.
const RESERVED_FILE_STEMS = new Set(['hub']);

/**
 * The file name stem for a model name: ASCII letters, digits, `_` and `-` are kept, as are dots that
 * do not start the name; every other byte of the name's UTF-8 is written `%XX` (upper-case hex),
 * `%` included. Reversible (decodeURIComponent gives the name back), so two names never share a
 * file; no `/`, no leading dot, never `.` or `..`. `llama3.2:3b` → `llama3.2%3A3b`, `org/model` →
 * `org%2Fmodel`, `../x` → `%2E.%2Fx`. The name `hub` (in any case) becomes `%68ub`, since `hub.log`
 * is the hub's own log.
 */
export function fileNameOf(name: string): string {
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    const keep = /[A-Za-z0-9_-]/.test(c) || (c === '.' && out !== '');
    out += keep ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (RESERVED_FILE_STEMS.has(name.toLowerCase())) out = `%${name.charCodeAt(0).toString(16).toUpperCase()}${out.slice(1)}`;
  return out;
}

/** The inverse of fileNameOf. */
export const nameOfFile = (stem: string): string => decodeURIComponent(stem);

/** `<log.dir>/<encoded name>.log`: where a model's output goes. */
export const modelLogFile = (logDir: string, name: string): string => join(logDir, `${fileNameOf(name)}.log`);

/** The hub's own log, beside the models' logs in log.dir. */
export const hubLogFile = (logDir: string): string => join(logDir, 'hub.log');

/**
 * Names and aliases share one namespace: a request's `model` must point at exactly one model, also
 * when it is looked up without regard to case. Reports each alias that is not a valid name, is
 * another model's, or differs from another name or alias only by case.
 */
export function checkNameClashes(models: ModelConfig[], problem: (segments: string[], message: string) => void): void {
  const owners = new Map<string, { id: string; model: string }>();
  for (const m of models) {
    const other = owners.get(caseKey(m.name));
    if (other) problem(['models', m.name], `model name "${m.name}" differs from "${other.id}" (model ${other.model}) only by case; names and aliases must differ by more than case`);
    else owners.set(caseKey(m.name), { id: m.name, model: m.name });
  }
  for (const m of models) {
    m.aliases.forEach((alias, i) => {
      const at = ['models', m.name, 'aliases', String(i)];
      const bad = nameProblem('alias', alias);
      if (bad) return problem(at, bad);
      const other = owners.get(caseKey(alias));
      if (other === undefined) owners.set(caseKey(alias), { id: alias, model: m.name });
      else if (other.id === alias && other.model !== m.name) problem(at, `"${alias}" is already used by model ${other.model}; names and aliases must be unique`);
      else if (other.id !== alias) problem(at, `"${alias}" differs from "${other.id}" (${other.id === other.model ? 'the name of model' : 'an alias of model'} ${other.model}) only by case; names and aliases must differ by more than case`);
    });
  }
}
