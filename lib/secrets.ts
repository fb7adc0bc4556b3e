// Masking secrets in text the hub shows: a model's command line (the banner in its log), its log
// output (tail and follow), start failures that quote the last log lines, and status.
//
// Two kinds of rules, because neither is enough alone:
// - patterns for what secrets look like wherever they appear: the value after a flag or a key whose
//   name ends in key/token/secret/password (`--api-key X`, `--api-key=X`, `HF_TOKEN=X`,
//   `"api_key": "X"`), `Bearer X`, and a password in a URL;
// - exact strings the hub knows are secret (a model's api_key, values of secret-looking env keys,
//   values after secret flags in its cmd, the hub's own keys), masked in any form a backend prints
//   them, e.g. inside an argparse Namespace dump.
import { StringDecoder } from 'node:string_decoder';
import type { HubConfig, ModelConfig } from './config/types.js';

export const MASK = '***';

/**
 * Known secrets shorter than this are only masked where a pattern finds them: masking every "1" or
 * "true" in a log would make it unreadable, and values that short are not real secrets.
 */
export const MIN_KNOWN_SECRET = 6;

/** Env keys whose values are secret: the name contains KEY, TOKEN, SECRET or PASSWORD (any case). */
export const isSecretEnvName = (name: string): boolean => /key|token|secret|passw(or)?d/i.test(name);

/**
 * A flag or key name that introduces a secret: it ends in key, token, secret, password and the like
 * (`--api-key`, `--hf-token`, `HF_TOKEN`, `api_key`). Names that only contain the word do not count:
 * `--token-rate 20` and `max_tokens: 16` stay readable.
 */
const SECRET_NAME = String.raw`[A-Za-z0-9_.-]*?(?:api[_-]?keys?|key|token|secret|password|passwd|passphrase|credentials?)`;

const isSecretFlag = (arg: string): boolean => new RegExp(String.raw`^--?${SECRET_NAME}$`, 'i').test(arg);

const PATTERNS: Array<[RegExp, string]> = [
  // --api-key X, --api-key=X, -token X (a value that is not itself the next flag)
  [new RegExp(String.raw`(^|[\s"'\[(,])(--?${SECRET_NAME})(=|[ \t]+)(?!-)("[^"\n]*"|'[^'\n]*'|[^\s"',;&\])}]+)`, 'gim'), `$1$2$3${MASK}`],
  // HF_TOKEN=X, token=X, api_key: 'X', "api_key": ["X"]
  [new RegExp(String.raw`(^|[^A-Za-z0-9_.-])(["']?${SECRET_NAME}["']?)([:=][ \t]*)([\[(]?[ \t]*["']?)([^\s"',;&\])}]+)`, 'gim'), `$1$2$3$4${MASK}`],
  // api_key = X: with a space before the = only a compound name counts, so that llama.cpp's
  // "BOS token = 1" stays readable
  [new RegExp(String.raw`(^|[^A-Za-z0-9_.-])([A-Za-z0-9_.-]*[_.-]${SECRET_NAME})([ \t]+[:=][ \t]*)([\[(]?[ \t]*["']?)([^\s"',;&\])}]+)`, 'gim'), `$1$2$3$4${MASK}`],
  // Authorization: Bearer X (also Basic)
  [/\b(Bearer|Basic)([ \t]+)[A-Za-z0-9._~+/=-]+/gi, `$1$2${MASK}`],
  // http://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, `$1${MASK}@`],
];

export type Mask = (text: string) => string;

/** A function that masks the patterns above and every one of `known` (exact strings). */
export function createMask(known: Iterable<string> = []): Mask {
  const exact = [...new Set([...known].filter((s) => s.length >= MIN_KNOWN_SECRET))].sort((a, b) => b.length - a.length);
  const knownRe = exact.length ? new RegExp(exact.map(escapeRegExp).join('|'), 'g') : undefined;
  return (text) => {
    let out = knownRe ? text.replace(knownRe, MASK) : text;
    for (const [re, replacement] of PATTERNS) out = out.replace(re, replacement);
    return out;
  };
}

/** `argv` with the value of every secret flag masked (`--api-key X` and `--api-key=X`), then `mask` applied to each word. */
export function maskArgv(argv: readonly string[], mask: Mask = createMask()): string[] {
  return argv.map((arg, i) => {
    if (i > 0 && isSecretFlag(argv[i - 1]) && !arg.startsWith('-')) return MASK;
    const eq = arg.indexOf('=');
    if (eq > 0 && isSecretFlag(arg.slice(0, eq))) return `${arg.slice(0, eq + 1)}${MASK}`;
    return mask(arg);
  });
}

/** The exact secrets in a launch: values after secret flags in `argv`, and values of secret-looking env keys. */
export function launchSecrets(argv: readonly string[] = [], env: Readonly<Record<string, string>> = {}): string[] {
  const out: string[] = [];
  argv.forEach((arg, i) => {
    if (i > 0 && isSecretFlag(argv[i - 1]) && !arg.startsWith('-')) out.push(arg);
    const eq = arg.indexOf('=');
    if (eq > 0 && isSecretFlag(arg.slice(0, eq))) out.push(arg.slice(eq + 1));
  });
  for (const [name, value] of Object.entries(env)) if (isSecretEnvName(name)) out.push(value);
  return out;
}

/** Secret-looking values of the hub's own environment, which every backend inherits. */
export const inheritedSecrets = (env: NodeJS.ProcessEnv = process.env): string[] =>
  launchSecrets([], Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)));

export const modelSecrets = (m: ModelConfig): string[] => [...launchSecrets(m.argv, m.env), ...(m.apiKey ? [m.apiKey] : []), ...(m.apiKeys ?? []).map((k) => k.key)];

/** Every secret the config holds as an exact string: each model's (see modelSecrets) and the hub's own keys. */
export function configSecrets(config: HubConfig): string[] {
  return [...Object.values(config.models).flatMap(modelSecrets), ...config.auth.apiKeys, ...config.auth.adminKeys, ...config.auth.scopedKeys.map((k) => k.key), ...Object.values(config.groups).flatMap((g) => g.apiKeys.map((k) => k.key))];
}

/**
 * A cache of masks, one per `key` (a config object: a reload replaces it, nothing changes it), built
 * with createMask(secrets()) on first use. Each user keeps its own cache, as its secrets differ.
 */
export function maskCache(): (key: object, secrets: () => Iterable<string>) => Mask {
  const cache = new WeakMap<object, Mask>();
  return (key, secrets) => {
    let mask = cache.get(key);
    if (!mask) cache.set(key, (mask = createMask(secrets())));
    return mask;
  };
}

/**
 * Masking for a byte stream (a followed log): a secret split across two chunks must still be found,
 * so text is passed on a whole line at a time. A line that never ends is passed on in pieces once
 * it is longer than `maxLine`.
 */
export class LineMasker {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(
    private readonly mask: Mask,
    private readonly maxLine = 64 * 1024,
  ) {}

  /** The masked text of every line completed by `chunk` (a line ends at \n or \r). */
  push(chunk: Buffer | string): string {
    const text = this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const end = Math.max(text.lastIndexOf('\n'), text.lastIndexOf('\r')) + 1;
    if (end === 0 && text.length <= this.maxLine) {
      this.partial = text;
      return '';
    }
    const cut = end || text.length;
    this.partial = text.slice(cut);
    return this.mask(text.slice(0, cut));
  }

  /** Whatever is left of an unfinished line, masked. */
  flush(): string {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    return rest ? this.mask(rest) : '';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
