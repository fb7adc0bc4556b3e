// Finding the hub a command talks to: --url, then $HUB_URL, then the runtime file the hub keeps in
// its state_dir (a stale one, whose process is gone, means "not running"), then the config's listen.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config/errors.js';
import { findConfigPath, loadConfig } from '../config/load.js';
import type { HubConfig } from '../config/types.js';
import { readRuntime } from '../runtime/state-dir.js';
import { HubClient } from './client.js';

export interface HubArgs {
  config?: string;
  url?: string;
  apiKey?: string;
}

export interface LocatedHub {
  client: HubClient;
  /** The hub's pid, when the runtime file names the hub at this URL. */
  pid?: number;
  stateDir?: string;
  /** The local config, when it loads (commands that need it say so themselves). */
  config?: HubConfig;
  configError?: ConfigError;
  /** Where the URL came from, for messages. */
  source: string;
}

const DEFAULT_ORIGIN = 'http://127.0.0.1:8080';
const START_HINT = 'start one with `hub start` (or `hub serve` in the foreground)';

/** A base URL as users paste it (…/v1, a trailing slash) to the hub's origin. */
export function originOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}

export function locateHub(args: HubArgs, env = process.env): LocatedHub {
  const { config, configError, stateDir } = readLocalConfig(args.config);
  const runtime = stateDir ? readRuntime(stateDir) : undefined;
  const live = runtime?.alive ? runtime : undefined;
  const explicit = args.url ?? env.HUB_URL;
  let origin: string;
  let source: string;
  if (explicit) {
    try {
      origin = originOf(explicit);
    } catch {
      throw new ConfigError(args.url ? '--url' : 'HUB_URL', [{ path: '', message: `${JSON.stringify(explicit)} is not a URL; give one like http://127.0.0.1:8080` }]);
    }
    source = args.url ? '--url' : '$HUB_URL';
  } else if (live) {
    origin = originOf(live.url);
    source = `the runtime file in ${stateDir}`;
  } else if (config) {
    const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
    origin = `http://${host}:${config.listen.port}`;
    source = `listen in ${config.path}`;
  } else {
    origin = DEFAULT_ORIGIN;
    source = 'the default address';
  }
  const pid = live && originOf(live.url) === origin ? live.pid : undefined;
  const notRunning = () => {
    const stale = runtime && !runtime.alive ? `; the runtime file in ${stateDir} names hub pid ${runtime.pid}, which is gone` : '';
    return `no hub is running at ${origin} (nothing answers there; address from ${source}${stale}); ${START_HINT}`;
  };
  const apiKey = args.apiKey ?? (env.HUB_API_KEY || undefined);
  return { client: new HubClient(origin, apiKey, notRunning), pid, stateDir, config, configError, source };
}

/**
 * The config, when it loads; otherwise at least its state_dir, read leniently. A config with errors
 * must not hide a running hub: `hub reload` is how the user hears those errors from the hub itself.
 */
function readLocalConfig(explicit?: string): { config?: HubConfig; configError?: ConfigError; stateDir?: string } {
  let path: string;
  try {
    path = findConfigPath(explicit);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { configError: err, stateDir: defaultStateDir() };
  }
  try {
    const config = loadConfig(path);
    return { config, stateDir: config.stateDir };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { configError: err, stateDir: lenientStateDir(path) };
  }
}

/** state_dir as loadConfig resolves it (relative to the file, ~ for home), from a file that does not validate. */
function lenientStateDir(path: string): string {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch {
    return defaultStateDir();
  }
  const value = (raw as { state_dir?: unknown } | null)?.state_dir;
  if (typeof value !== 'string' || value.includes('${')) return defaultStateDir();
  if (value === '~' || value.startsWith('~/')) return resolve(homedir(), value.slice(2));
  return isAbsolute(value) ? value : resolve(dirname(path), value);
}

function defaultStateDir(): string {
  return resolve(homedir(), '.local/state/modelhub');
}
