// hub.yaml → HubConfig: find the file, parse YAML, substitute ${env.X}, validate with the schema,
// run the cross-field checks, normalize. Every problem is collected and thrown at once.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { authConfig, nonEmpty } from './auth.js';
import { modelKeys, paramsPolicy, scopedKeys } from './policy.js';
import { ConfigError, didYouMean, joinPath, type ConfigProblem } from './errors.js';
import type { HubFile, ModelFile } from './schema.js';
import type { BackendKind, GroupConfig, HubConfig, ModelConfig } from './types.js';
import { adapterFor } from '../backends/index.js';
import { BACKENDS } from './schema.js';
import { parseDuration, parseIdleDuration, parseSize, formatBytes } from './units.js';
import { schemaProblems, startsWith, withoutRefused, type RawProblem } from './validate.js';
import { splitCommand } from './command.js';
import { maskEnvRefs, substituteEnv } from './env.js';
import { limits } from './limits.js';
import { ConfigTooLarge, duplicateKeys, readConfigText } from './yaml-file.js';
import { checkNameClashes, nameProblem } from './names.js';
import { withAlias } from '../backends/llama-cpp.js';
import { launchProblems } from './launch.js';
import { gpuConfigOf, gpuNeedOf } from './gpus.js';
import { checkKeepCacheDirs, keepCacheOf } from './keep-cache.js';

export const SLUG = /^[a-z0-9]+([._-][a-z0-9]+)*$/;
const DEFAULT_STATE_DIR = '~/.local/state/modelhub';
/**
 * Below Linux's ephemeral range (32768–60999), where the kernel picks local ports for outgoing
 * connections: a port up there can be held at random by any client socket, and a backend then fails
 * to bind it. Also clear of the usual fixed ports (8000, 8080, 11434).
 */
export const DEFAULT_PORTS_START = 20100;
/** The request log's size when log.requests is not set. */
export const DEFAULT_LOGGED_REQUESTS = 1000;

/** SPEC §2 search order: --config, $HUB_CONFIG, ./hub.yaml, ~/.config/modelhub/hub.yaml. */
/** Long enough for an agent's next turn to reach the loaded model, short next to a model load. */
export const DEFAULT_SWAP_HOLD = '3s';
/** Longer than a large model's cold start plus one swap, so only a starved request hits it. */
export const DEFAULT_MAX_WAIT = '5m';

export function findConfigPath(explicit?: string, env = process.env, cwd = process.cwd()): string {
  const candidates = explicit
    ? [explicit]
    : env.HUB_CONFIG
      ? [env.HUB_CONFIG]
      : [resolve(cwd, 'hub.yaml'), resolve(homedir(), '.config/modelhub/hub.yaml')];
  const found = candidates.find((c) => existsSync(c));
  if (found) return resolve(cwd, found);
  const tried = candidates.join(', ');
  throw new ConfigError(explicit ?? 'hub.yaml', [
    { path: '', message: `no config file found (looked for ${tried}); pass --config PATH or set HUB_CONFIG` },
  ]);
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Ports already assigned to models (from the running config) so that reloads keep them. */
  previousPorts?: ReadonlyMap<string, number>;
}

export function loadConfig(path: string, options: LoadOptions = {}): HubConfig {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readConfigText(absolute);
  } catch (err) {
    const message = err instanceof ConfigTooLarge ? err.message : `cannot read ${absolute}: ${(err as Error).message}`;
    throw new ConfigError(basename(absolute), [{ path: '', message }]);
  }
  return parseConfig(text, absolute, options);
}

export function parseConfig(text: string, path: string, options: LoadOptions = {}): HubConfig {
  const file = basename(path);
  const lines = new LineCounter();
  const { masked, refs } = maskEnvRefs(text);
  // Duplicate keys are found by duplicateKeys, in linear time (the package's own check is quadratic).
  const doc = parseDocument(masked, { lineCounter: lines, prettyErrors: true, uniqueKeys: false });
  // One mistake often trips the parser more than once on its line (an unclosed quote is also an
  // unclosed map): the first error of each line is the one that says what to fix.
  const seen = new Set<number | undefined>();
  const firsts = doc.errors.filter((e) => {
    const line = e.linePos?.[0].line;
    if (seen.has(line)) return false;
    seen.add(line);
    return true;
  });
  const syntax = firsts.map((e) => ({ path: '', line: e.linePos?.[0].line, message: `not valid YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '').replace(refs, '${env.$1}')}` }));
  const duplicates = syntax.length ? [] : duplicateKeys(doc, lines).map((d) => ({ path: '', line: d.line, message: `not valid YAML: Map keys must be unique; ${JSON.stringify(d.key)} appears again` }));
  if (syntax.length || duplicates.length) throw new ConfigError(file, [...syntax, ...duplicates]);
  const raw = yamlData(doc, file);
  // Every problem in one run: unset variables, then the schema, then the cross-field checks on
  // what the schema accepted (a value it refused is left out, and not reported twice).
  const problems: RawProblem[] = [];
  const value = substituteEnv(raw, [], options.env ?? process.env, problems, refs);
  const unset = new Set(problems.map((p) => p.segments.join('\0')));
  const schema = schemaProblems(value).filter((p) => !unset.has(p.segments.join('\0')));
  problems.push(...schema);
  const refused = [...unset, ...schema.map((p) => p.segments.join('\0'))].map((k) => (k ? k.split('\0') : []));
  const checkable = withoutRefused(value, refused);
  const config = checkable ? normalize(checkable as HubFile, path, problems, options.previousPorts, (segments) => refused.some((r) => startsWith(r, segments) || startsWith(segments, r))) : undefined;
  if (problems.length || !config) throw new ConfigError(file, problems.map((p) => locate(p, doc, lines)));
  return config;
}

/**
 * The document as plain data. Building it can still fail where parsing did not: the yaml package
 * refuses to expand aliases more than 100 times (a guard against "billion laughs" documents).
 */
function yamlData(doc: Document, file: string): unknown {
  try {
    return doc.toJS() ?? {};
  } catch (err) {
    const message = (err as Error).message;
    const why = /alias/i.test(message)
      ? 'uses YAML aliases (*name) too often (the limit is 100 expansions, against documents that blow up in memory); put the shared settings under defaults: instead of repeating an alias'
      : `cannot be read as YAML data (${message}); check the file`;
    throw new ConfigError(file, [{ path: '', message: why }]);
  }
}

function locate(p: RawProblem, doc: Document, lines: LineCounter): ConfigProblem {
  // The nearest node that exists in the file gives the line (a missing key points at its parent).
  for (let n = p.segments.length; n >= 0; n--) {
    const node = doc.getIn(p.segments.slice(0, n), true);
    if (isNode(node) && node.range) return { path: joinPath(p.segments), message: p.message, line: lines.linePos(node.range[0]).line };
  }
  return { path: joinPath(p.segments), message: p.message };
}

function expandPath(p: string, base: string): string {
  if (p === '~' || p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(base, p);
}

/** `refused(segments)`: the schema refused the value there (or inside it), so the checks below skip it. */
function normalize(file: HubFile, path: string, problems: RawProblem[], previousPorts: ReadonlyMap<string, number> | undefined, refused: (segments: string[]) => boolean): HubConfig {
  const base = dirname(path);
  const problem = (segments: string[], message: string) => problems.push({ segments, message });
  const stateDir = expandPath(file.state_dir ?? DEFAULT_STATE_DIR, base);

  const groups: Record<string, GroupConfig> = {};
  for (const [name, g] of Object.entries(file.groups ?? {})) {
    if (!SLUG.test(name)) problem(['groups', name], slugMessage('group', name));
    groups[name] = {
      name,
      maxLoaded: g.max_loaded ?? Infinity,
      maxMemory: g.max_memory !== undefined ? parseSize(g.max_memory)! : Infinity,
      onFull: g.on_full ?? 'evict',
      swapHoldMs: parseDuration(g.swap_hold ?? DEFAULT_SWAP_HOLD)!,
      maxWaitMs: parseDuration(g.max_wait ?? DEFAULT_MAX_WAIT)!,
      apiKeys: nonEmpty(g.api_keys, `groups.${name}.api_keys`),
    };
  }
  const maxMemory = file.max_memory !== undefined ? parseSize(file.max_memory)! : Infinity;
  const gpus = gpuConfigOf(file, problem);

  const models: Record<string, ModelConfig> = {};
  for (const [name, own] of Object.entries(file.models ?? {})) {
    const at = ['models', name];
    const bad = nameProblem('model name', name);
    if (bad) problem(at, bad);
    if (own === null || typeof own !== 'object') continue; // the schema said what is wrong with it
    const merged = mergeDefaults(file.defaults ?? {}, own);
    const m = model(name, merged, own, base, at, problem, refused);
    m.apiKeys = modelKeys(name, own, merged, m.group ? groups[m.group] : undefined);
    m.params = paramsPolicy(merged.params, own.params !== undefined ? at : ['defaults'], problem);
    m.keepCache = keepCacheOf(m, merged, own, stateDir, at, problem);
    if (merged.memory_release !== undefined) {
      // Only vLLM's sleep API has levels (the demo backend speaks it too); elsewhere it would do nothing.
      if (m.backend === 'vllm' || m.backend === 'demo') m.memoryRelease = merged.memory_release;
      else if (own.memory_release !== undefined) problem([...at, 'memory_release'], `only vllm (and demo) models have sleep levels; backend ${m.backend} frees memory its own way: remove memory_release`);
    }
    m.gpus = gpuNeedOf(m, merged, own, gpus, at, problem);
    if (m.group !== undefined && !groups[m.group] && !refused(['groups', m.group])) {
      const guess = didYouMean(m.group, Object.keys(groups));
      const known = Object.keys(groups);
      problem([...at, 'group'], `group "${m.group}" is not defined under groups${guess ? `; did you mean "${guess}"?` : known.length ? ` (defined: ${known.join(', ')})` : ''}`);
    }
    const group = m.group ? groups[m.group] : undefined;
    if (group && m.memory > group.maxMemory) {
      problem([...at, 'memory'], `${formatBytes(m.memory)} is more than group ${group.name}'s max_memory (${formatBytes(group.maxMemory)}); it could never be loaded`);
    }
    if (m.memory > maxMemory) problem([...at, 'memory'], `${formatBytes(m.memory)} is more than the hub's max_memory (${formatBytes(maxMemory)}); it could never be loaded`);
    models[name] = m;
  }
  checkNameClashes(Object.values(models), problem);
  checkKeepCacheDirs(Object.values(models), problem);
  assignPorts(models, file.ports?.start ?? DEFAULT_PORTS_START, previousPorts, problem);

  const auth = authConfig(file.auth, problem);
  auth.scopedKeys = scopedKeys(models, auth);
  const logDir = expandPath(file.log?.dir ?? resolve(stateDir, 'logs'), base);
  const rotate = file.log?.rotate ?? {};
  return {
    path,
    listen: { host: file.listen?.host ?? '127.0.0.1', port: file.listen?.port ?? 8080 },
    stateDir,
    log: {
      level: file.log?.level ?? 'info',
      dir: logDir,
      rotate: {
        sizeBytes: parseSize(rotate.size ?? '10MiB')!,
        intervalMs: parseDuration(rotate.interval ?? '1d')!,
        keep: rotate.keep ?? 7,
        compress: rotate.compress ?? true,
      },
      requests: file.log?.requests ?? DEFAULT_LOGGED_REQUESTS,
    },
    auth,
    limits: limits(file.limits ?? {}, problem),
    ports: { start: file.ports?.start ?? DEFAULT_PORTS_START },
    metrics: { backends: file.metrics?.backends ?? false },
    maxMemory,
    gpus,
    groups,
    models,
  };
}

/**
 * Without memory control a backend has one idle step, a stop, at the earlier of unload_after and
 * stop_after. A model that sets stop_after itself and no unload_after means "stop after that": the
 * unload_after it would inherit (from defaults, or the built-in 10m) must not cut it short.
 */
const BACKEND_KINDS = new Set<string>(BACKENDS);

function mergeIdle(defaults: ModelFile, own: ModelFile): ModelFile['idle'] {
  const idle = { ...defaults.idle, ...own.idle };
  const kind = (own.backend ?? defaults.backend ?? 'openai') as BackendKind;
  const remote = (own.url ?? defaults.url) !== undefined;
  const stopOnly = own.idle?.stop_after !== undefined && own.idle?.unload_after === undefined;
  if (!remote && stopOnly && BACKEND_KINDS.has(kind) && !adapterFor(kind).memory) idle.unload_after = 0;
  return idle;
}

const slugMessage = (kind: string, name: string) =>
  `${kind} name "${name}" is not a slug: use lower-case letters and digits, with single . _ or - between them (e.g. "${name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+|[._-]+$/g, '')}")`;

function mergeDefaults(defaults: ModelFile, own: ModelFile): ModelFile {
  return {
    ...defaults,
    ...own,
    idle: mergeIdle(defaults, own),
    health: { ...defaults.health, ...own.health },
    env: { ...defaults.env, ...own.env },
    translate: { ...defaults.translate, ...own.translate },
  };
}

function model(name: string, m: ModelFile, own: ModelFile, base: string, at: string[], problem: (s: string[], msg: string) => void, refused: (segments: string[]) => boolean): ModelConfig {
  const commandRefused = refused([...at, 'cmd']) || refused([...at, 'url']) || refused(['defaults', 'cmd']) || refused(['defaults', 'url']);
  if ((m.cmd === undefined) === (m.url === undefined) && !commandRefused) {
    problem(at, m.cmd === undefined ? 'needs either cmd (a command the hub runs) or url (a server it forwards to)' : 'has both cmd and url; keep cmd for a managed model or url for a remote one');
  }
  let argv: string[] | undefined;
  if (m.cmd !== undefined) {
    const split = splitCommand(m.cmd);
    if ('error' in split) problem([...at, 'cmd'], split.error);
    else argv = split.argv;
    const envValues = Object.values(m.env ?? {}).map(String);
    if (argv && m.port === undefined && !refused([...at, 'port']) && !refused(['defaults', 'port']) && ![...argv, ...envValues].some((a) => a.includes('${PORT}'))) {
      problem([...at, 'cmd'], 'does not pass ${PORT} to the server; add e.g. `--port ${PORT}` (or use ${PORT} in env), or set port: to the port it listens on');
    }
  } else if (m.url !== undefined) {
    // Only a model that really is remote: a cmd the checks refused (an unset ${env.X}) says nothing here.
    for (const key of ['cwd', 'env', 'port'] as const) {
      if (own[key] !== undefined) problem([...at, key], `only applies to models with cmd; ${name} is remote (url)`);
    }
  }
  const str = (env: Record<string, string | number | boolean> = {}) => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  const cwd = m.cwd !== undefined ? expandPath(m.cwd, base) : undefined;
  launchProblems(at, argv, m.env ?? {}, refused([...at, 'cwd']) ? undefined : cwd, problem);
  if (argv && m.backend === 'llama-cpp') argv = withAlias(argv, name);
  return {
    name,
    backend: m.backend ?? 'openai',
    argv,
    url: m.url?.replace(/\/+$/, ''),
    apiKey: m.api_key || undefined,
    forwardAuth: m.forward_auth ?? false,
    upstreamControl: m.upstream_control ?? false,
    translate: { responses: m.translate?.responses ?? 'auto', messages: m.translate?.messages ?? 'auto' },
    port: m.port,
    portIsExplicit: m.port !== undefined,
    group: m.group,
    memory: m.memory !== undefined && m.memory !== 'auto' ? parseSize(m.memory)! : 0,
    memoryAuto: m.memory === 'auto',
    aliases: m.aliases ?? [],
    servedModel: m.served_model,
    env: str(m.env),
    cwd,
    idle: {
      unloadAfterMs: parseIdleDuration(m.idle?.unload_after ?? '10m')!,
      stopAfterMs: parseIdleDuration(m.idle?.stop_after ?? '1h')!,
    },
    preload: m.preload ?? false,
    pinned: m.pinned ?? false,
    maxConcurrency: m.max_concurrency ?? Infinity,
    maxQueue: m.max_queue ?? Infinity,
    health: { path: m.health?.path, intervalMs: parseDuration(m.health?.interval ?? '50ms')! },
    startTimeoutMs: parseDuration(m.start_timeout ?? '120s')!,
    stopTimeoutMs: parseDuration(m.stop_timeout ?? '10s')!,
    capture: m.log?.capture ?? false,
    progress: m.progress ?? 'off',
  };
}

/**
 * Gives every managed model without an explicit `port` one from `ports.start` upwards, in file order.
 * Models that had a port in the running config keep it, so a reload never moves a model.
 */
export function assignPorts(
  models: Record<string, ModelConfig>,
  start: number,
  previous: ReadonlyMap<string, number> = new Map(),
  problem: (s: string[], msg: string) => void = () => {},
): void {
  const taken = new Map<number, string>();
  for (const m of Object.values(models)) {
    if (m.port === undefined || m.argv === undefined) continue;
    const other = taken.get(m.port);
    if (other) problem(['models', m.name, 'port'], `port ${m.port} is also used by model ${other}`);
    taken.set(m.port, m.name);
  }
  const auto = Object.values(models).filter((m) => m.argv !== undefined && !m.portIsExplicit);
  for (const m of auto) {
    const kept = previous.get(m.name);
    if (kept !== undefined && !taken.has(kept)) {
      m.port = kept;
      taken.set(kept, m.name);
    }
  }
  // A removed model may still be draining on its port: new models do not take it over.
  for (const [name, port] of previous) if (!taken.has(port)) taken.set(port, name);
  let next = start;
  for (const m of auto) {
    if (m.port !== undefined) continue;
    while (taken.has(next)) next++;
    if (next > 65535) {
      problem(['ports', 'start'], `ran out of ports from ${start}; lower ports.start`);
      return;
    }
    m.port = next;
    taken.set(next, m.name);
  }
}
