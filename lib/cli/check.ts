// `hub check`: validate a config and print every problem, or a summary of what it defines.
import { basename } from 'node:path';
import { ConfigError, formatProblem } from '../config/errors.js';
import { findConfigPath, loadConfig } from '../config/load.js';
import type { HubConfig } from '../config/types.js';
import { formatBytes, formatDuration } from '../config/units.js';
import { commandWarnings, portWarnings } from '../config/warnings.js';
import { ephemeralPortRange } from '../runtime/ports.js';
import { configSecrets, MASK } from '../secrets.js';
import { plural } from './errors.js';
import { EXIT, say } from './output.js';

/** Loads the config or prints its problems; returns undefined when it is unusable. Warnings are printed and do not stop it. */
export function loadOrReport(explicit?: string): HubConfig | undefined {
  let config: HubConfig;
  try {
    config = loadConfig(findConfigPath(explicit));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const line of err.message.split('\n')) say.err(line);
    say.info(`${plural(err.problems.length, 'problem')}; fix ${err.problems.length === 1 ? 'it' : 'them'} and run hub check again`);
    return undefined;
  }
  for (const w of [...portWarnings(config, ephemeralPortRange()), ...commandWarnings(config)]) say.warn(formatProblem(basename(config.path), w));
  return config;
}

export function check(explicit: string | undefined, json: boolean): number {
  const config = loadOrReport(explicit);
  if (!config) return EXIT.usage;
  if (json) {
    // The normalized config holds the keys and secrets the file took from the environment: masked,
    // since this output ends up in terminals, CI logs and bug reports.
    // Value by value, so that the output stays valid JSON.
    const secrets = configSecrets(config).filter((x) => x.length > 0);
    const masked = (v: string) => secrets.reduce((text, secret) => text.split(secret).join(MASK), v);
    say.json(config, (_k, v: unknown) => (v === Infinity ? null : typeof v === 'string' ? masked(v) : v));
    return EXIT.ok;
  }
  const models = Object.values(config.models);
  const remote = models.filter((m) => m.url).length;
  say.ok(`${config.path} is valid: ${plural(models.length, 'model')} (${models.length - remote} managed, ${remote} remote), ${plural(Object.keys(config.groups).length, 'group')}`);
  say.info(`listen: http://${config.listen.host}:${config.listen.port}/v1   logs: ${config.log.dir}`);
  for (const m of models) {
    const where = m.url ?? `port ${m.port}`;
    const idle = [m.idle.unloadAfterMs && `unload after ${formatDuration(m.idle.unloadAfterMs)}`, m.idle.stopAfterMs && `stop after ${formatDuration(m.idle.stopAfterMs)}`].filter(Boolean).join(', ') || 'never idles out';
    const extras = [m.group && `group ${m.group}`, m.memory && formatBytes(m.memory), m.aliases.length && `aliases ${m.aliases.join(', ')}`, m.pinned && 'pinned', m.preload && 'preload'].filter(Boolean);
    say.info(`  ${m.name}: ${m.backend}, ${where}, ${idle}${extras.length ? `, ${extras.join(', ')}` : ''}`);
  }
  return EXIT.ok;
}
