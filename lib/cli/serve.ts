// `hub serve`: run the hub in the foreground. SIGINT/SIGTERM (or POST /hub/api/shutdown) drain and
// stop every backend; SIGHUP, and with --watch any change to the config file, reload it.
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../config/errors.js';
import { startHub, type RunningHub } from '../hub.js';
import { createLogger } from '../log.js';
import { VERSION } from '../paths.js';
import type { ConfigDiff } from '../scheduler/reload.js';
import { loadOrReport } from './check.js';
import { EXIT, say } from './output.js';

export async function serve(explicit: string | undefined, options: { watch?: boolean } = {}): Promise<number> {
  const config = loadOrReport(explicit);
  if (!config) return EXIT.usage;
  const log = createLogger(config.log.level);
  let hub: RunningHub;
  try {
    hub = await startHub(config, { log });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') say.err(`cannot listen on ${config.listen.host}:${config.listen.port}: the address is in use (another hub?); stop it or set listen.port in ${config.path}`);
    else say.err(`cannot start the hub: ${e.message}`);
    return EXIT.failed;
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(config.listen.host);
  if (!loopback && config.auth.apiKeys.length === 0) say.warn(`listening on ${config.listen.host} without auth.api_keys: anyone who can reach this port can use your models`);
  say.ok(`modelhub ${VERSION} is serving ${Object.keys(config.models).length} models at ${hub.origin}/v1`);
  say.info(`status ${hub.origin}/hub/api/status · config ${config.path} · model logs ${config.log.dir}`);

  const reload = (why: string) => {
    try {
      say.ok(`${why}: config reloaded (${describeDiff(hub.reload())})`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      say.err(`${why}: the config has errors; keeping the running config`);
      for (const line of err.message.split('\n')) say.err(line);
    }
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
  if (options.watch) watchConfig(config.path, () => reload(`${basename(config.path)} changed`));

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return say.warn(`${signal} again: still draining requests and stopping models, please wait`);
    stopping = true;
    say.info(`${signal}: draining in-flight requests and stopping models`);
    void hub.close();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  await hub.closed;
  say.ok('stopped');
  process.exit(EXIT.ok); // the file watcher and signal handlers would keep the process alive
}

export function describeDiff(d: ConfigDiff): string {
  const parts = (['added', 'removed', 'restarted', 'updated'] as const).filter((k) => d[k].length).map((k) => `${k}: ${d[k].join(', ')}`);
  return parts.length ? parts.join('; ') : 'no changes';
}

/** Editors replace files rather than write them in place, so watch the folder and debounce. */
function watchConfig(path: string, onChange: () => void): void {
  let timer: NodeJS.Timeout | undefined;
  watch(dirname(path), (_event, file) => {
    if (file !== basename(path)) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, 150);
  });
}
