// A model's effective config (defaults, its group's keys and its own settings merged, as the hub uses
// them) written back as the YAML an operator would put under `models:` in hub.yaml: the file's keys
// (snake_case), durations like "30s", sizes like "4GiB", cmd as a command line, idle steps that are off
// as "never". Every string is masked (secrets as ***). A test loads the result back as a config.
import { stringify } from 'yaml';
import type { ModelConfig } from '../../config/types.js';

const SIZES: Array<[string, number]> = [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]];
const DURATIONS: Array<[string, number]> = [['h', 3_600_000], ['m', 60_000], ['s', 1000]];

/** The largest unit that says the value exactly ("1536MiB", not a rounded "1.5GiB"). */
export function exactSize(bytes: number): string | number {
  for (const [unit, n] of SIZES) if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  return bytes;
}

export function exactDuration(ms: number): string {
  for (const [unit, n] of DURATIONS) if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  return `${ms}ms`;
}

const idle = (ms: number) => (ms === 0 ? 'never' : exactDuration(ms));

/** One argument as the shell-like cmd string splits it back (single quotes when it needs any). */
function quoteArg(arg: string): string {
  if (/^[\w@%+=:,./{}$-]+$/.test(arg) && !/\$(?!\{(PORT|MODEL|HUB)\})/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export const commandLine = (argv: readonly string[]) => argv.map(quoteArg).join(' ');

/** The model's settings in hub.yaml's words, every string passed through `mask`. */
export function modelYaml(c: ModelConfig, mask: (s: string) => string): string {
  const entry: Record<string, unknown> = { backend: c.backend };
  if (c.argv) entry.cmd = commandLine(c.argv);
  if (c.url) entry.url = c.url;
  if (c.apiKey) entry.api_key = c.apiKey;
  if (c.forwardAuth) entry.forward_auth = true;
  if (c.upstreamControl) entry.upstream_control = true;
  if (c.translate && (c.translate.responses !== 'auto' || c.translate.messages !== 'auto')) entry.translate = { ...c.translate };
  if (c.port !== undefined) entry.port = c.port;
  if (c.group) entry.group = c.group;
  if (c.memory) entry.memory = exactSize(c.memory);
  if (c.aliases.length) entry.aliases = [...c.aliases];
  if (c.servedModel) entry.served_model = c.servedModel;
  if (Object.keys(c.env).length) entry.env = { ...c.env };
  if (c.cwd) entry.cwd = c.cwd;
  entry.idle = { unload_after: idle(c.idle.unloadAfterMs), stop_after: idle(c.idle.stopAfterMs) };
  if (c.preload) entry.preload = true;
  if (c.pinned) entry.pinned = true;
  // No limit is what leaving the key out says.
  if (Number.isFinite(c.maxConcurrency)) entry.max_concurrency = c.maxConcurrency;
  if (Number.isFinite(c.maxQueue)) entry.max_queue = c.maxQueue;
  entry.health = { ...(c.health.path ? { path: c.health.path } : {}), interval: exactDuration(c.health.intervalMs) };
  entry.start_timeout = exactDuration(c.startTimeoutMs);
  entry.stop_timeout = exactDuration(c.stopTimeoutMs);
  if (c.apiKeys?.length) entry.api_keys = c.apiKeys.map((k) => k.key);
  if (c.params) entry.params = { ...(Object.keys(c.params.set).length ? { set: c.params.set } : {}), ...(Object.keys(c.params.default).length ? { default: c.params.default } : {}), ...(c.params.strip.length ? { strip: c.params.strip } : {}) };
  if (c.capture) entry.log = { capture: true };
  return stringify({ [c.name]: maskStrings(entry, mask) }, { lineWidth: 0 });
}

function maskStrings(v: unknown, mask: (s: string) => string): unknown {
  if (typeof v === 'string') return mask(v);
  if (Array.isArray(v)) return v.map((x) => maskStrings(x, mask));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, maskStrings(x, mask)]));
  return v;
}
