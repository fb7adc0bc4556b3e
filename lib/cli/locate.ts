// Finding the hub a command talks to: --url, then $HUB_URL, then the runtime file the hub keeps in
// its state_dir (a stale one, whose process is gone, means "not running"), then the config's listen.
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { existsSync } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import { listenOrigin } from '../config/listen-origin.js';
import type { HubConfig } from '../config/types.js';
import { readConfigText } from '../config/yaml-file.js';
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
  /** The local config, when it loads (read only when needed: validating it is most of a command's start-up). */
  config(): Promise<HubConfig | undefined>;
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

export async function locateHub(args: HubArgs, env = process.env): Promise<LocatedHub> {
  const local = localConfig(args.config);
  // The runtime file first: a running hub is found without validating the whole config.
  let stateDir = local.path ? quickStateDir(local.path) : defaultStateDir();
  let runtime = stateDir ? readRuntime(stateDir) : undefined;
  const config = runtime?.alive || explicitUrl(args, env) ? undefined : await local.get();
  if (config) {
    stateDir = config.stateDir;
    runtime = readRuntime(stateDir);
  }
  const live = runtime?.alive ? runtime : undefined;
  const explicit = explicitUrl(args, env);
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
    const { listen, path } = config;
    origin = listenOrigin(listen.host, listen.port);
    source = `listen in ${path}`;
  } else {
    origin = DEFAULT_ORIGIN;
    source = 'the default address';
  }
  const pid = live && originOf(live.url) === origin ? live.pid : undefined;
  const notRunning = () => {
    const stale = runtime && !runtime.alive ? `; the runtime file in ${stateDir} names hub pid ${runtime.pid}, which is gone` : '';
    return `no hub is running at ${origin} (nothing answers there; address from ${source}${stale}); ${START_HINT}`;
  };
  // The README's shell exports both: the admin key is the one the control API wants.
  const apiKey = args.apiKey ?? (env.HUB_ADMIN_KEY || env.HUB_API_KEY || undefined);
  return { client: new HubClient(origin, apiKey, notRunning), pid, stateDir, config: local.get, source };
}

const explicitUrl = (args: HubArgs, env: NodeJS.ProcessEnv) => args.url ?? (env.HUB_URL || undefined);

/** The config file's path (undefined when there is none), and the config itself on first use (undefined when it has errors). */
function localConfig(explicit?: string): { path?: string; get(): Promise<HubConfig | undefined> } {
  const path = configPath(explicit);
  let loaded: { config?: HubConfig } | undefined;
  const get = async () => {
    if (!path) return undefined;
    if (!loaded) {
      try {
        loaded = { config: (await import('../config/load.js')).loadConfig(path) };
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        loaded = {}; // a config with errors must not hide a running hub: `hub reload` reports them from the hub
      }
    }
    return loaded.config;
  };
  return { path, get };
}

/**
 * The config file `hub serve` would read: --config, $HUB_CONFIG, ./hub.yaml, ~/.config/modelhub/hub.yaml
 * (config/load.ts findConfigPath, which the CLI test compares this with). Repeated here because
 * importing config/load.js compiles the whole schema, about half of a command's start-up time.
 */
export function configPath(explicit?: string, env = process.env, cwd = process.cwd()): string | undefined {
  const candidates = explicit ? [explicit] : env.HUB_CONFIG ? [env.HUB_CONFIG] : [resolve(cwd, 'hub.yaml'), resolve(homedir(), '.config/modelhub/hub.yaml')];
  const found = candidates.find((c) => existsSync(c));
  return found === undefined ? undefined : resolve(cwd, found);
}

/**
 * state_dir as loadConfig resolves it (relative to the file, ~ for home), read from the YAML alone:
 * cheap, and it works for a file that does not validate. Undefined when only loadConfig can tell
 * (the value comes from the environment).
 */
function quickStateDir(path: string): string | undefined {
  let raw: unknown;
  try {
    raw = parseYaml(readConfigText(path), { uniqueKeys: false }); // bounded: see config/yaml-file.ts
  } catch {
    return undefined;
  }
  const value = (raw as { state_dir?: unknown } | null)?.state_dir ?? '~/.local/state/modelhub';
  if (typeof value !== 'string' || value.includes('${')) return undefined;
  if (value === '~' || value.startsWith('~/')) return resolve(homedir(), value.slice(2));
  return isAbsolute(value) ? value : resolve(dirname(path), value);
}

function defaultStateDir(): string {
  return resolve(homedir(), '.local/state/modelhub');
}
