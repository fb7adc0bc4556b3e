// `hub serve`: run the hub in the foreground. SIGINT/SIGTERM (or POST /hub/api/shutdown) drain and
// stop every backend, and a second one stops them at once. SIGHUP, and with --watch any change to the
// config file, reload it; but a SIGHUP that comes from closing the hub's terminal shuts it down. An
// error nothing caught stops the backends before the hub exits: only SIGKILL can leave them running,
// and the next hub on the same state_dir stops those (see runtime/state-dir.ts).
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isLoopbackHost } from '../config/auth.js';
import { ConfigError } from '../config/errors.js';
import { hubLogFile } from '../config/names.js';
import type { HubConfig } from '../config/types.js';
import { startHub, type RunningHub } from '../hub.js';
import { realmIsOpen } from '../http/auth.js';
import { closeLogFiles, createLogger } from '../log.js';
import { VERSION } from '../paths.js';
import type { ConfigDiff } from '../scheduler/reload.js';
import { exitProcess, terminalHungUp } from '../stdio.js';
import { loadOrReport } from './check.js';
import { plural } from './errors.js';
import { EXIT, say } from './output.js';

/** How long an uncaught error leaves the graceful close before every backend is killed. */
const FATAL_CLOSE_MS = 5000;

export async function serve(explicit: string | undefined, options: { watch?: boolean; host?: string; port?: number } = {}): Promise<number> {
  const config = loadOrReport(explicit);
  if (!config) return EXIT.usage;
  const listen = { host: options.host, port: options.port };
  config.listen = { host: listen.host ?? config.listen.host, port: listen.port ?? config.listen.port };
  const hubLog = hubLogFile(config.log.dir);
  const log = createLogger(config.log.level, process.stdout, { file: hubLog, rotate: config.log.rotate });
  // What the user is told also goes to hub.log: after the terminal is closed, that is all that is left.
  const tell = (kind: 'ok' | 'info' | 'warn' | 'err', message: string) => {
    say[kind](message);
    log[kind === 'err' ? 'error' : kind === 'warn' ? 'warn' : 'info']({ shown: true }, message);
  };
  let exiting: Promise<never> | undefined;
  const exit = (code: number) => (exiting ??= closeLogFiles().then(() => exitProcess(code)));

  let hub: RunningHub | undefined;
  let fatal = false;
  const onFatal = (err: unknown) => {
    if (fatal) return; // the first one is already closing the hub, bounded
    fatal = true;
    log.fatal({ err }, 'uncaught error');
    tell('err', `internal error: ${err instanceof Error ? err.message : String(err)}; stopping every model and exiting (this is a bug: please report it with ${hubLog})`);
    void (async () => {
      if (hub) await Promise.race([hub.close().catch(() => {}), new Promise((r) => setTimeout(r, FATAL_CLOSE_MS))]);
      hub?.killNow();
      await exit(EXIT.failed);
    })();
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);

  try {
    hub = await startHub(config, { log, warn: say.warn, info: say.info, hubLog, listen });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const where = listen.port !== undefined ? 'pass another --port' : `set listen.port in ${config.path} (or pass --port)`;
    if (e.code === 'EADDRINUSE') tell('err', `cannot listen on ${config.listen.host}:${config.listen.port}: the address is in use (another hub?); stop it or ${where}`);
    else tell('err', `cannot start the hub: ${e.message}`);
    await closeLogFiles();
    return EXIT.failed;
  }
  const running = hub;
  const exposed = exposureWarning(config);
  if (exposed) tell('warn', exposed);
  tell('ok', `modelhub ${VERSION} is serving ${plural(Object.keys(config.models).length, 'model')} at ${running.origin}/v1`);
  say.info(`dashboard ${running.origin}/hub · config ${config.path} · logs ${config.log.dir}`);

  // A reload runs from a signal or a file watcher: whatever goes wrong in it is reported, never
  // thrown (nothing would catch it, and the hub would die over a bad edit).
  const reload = (why: string) => {
    try {
      tell('ok', `${why}: config reloaded (${describeDiff(running.reload())})`);
    } catch (err) {
      if (err instanceof ConfigError) {
        tell('err', `${why}: the config has errors; keeping the running config`);
        for (const line of err.message.split('\n')) say.err(line);
        return;
      }
      log.error({ err }, 'reload failed');
      tell('err', `${why}: the reload failed (${err instanceof Error ? err.message : String(err)}); the hub goes on running (this is a bug: please report it with ${hubLog})`);
    }
  };
  if (options.watch) watchConfig(config.path, () => reload(`${basename(config.path)} changed`));

  let stopping = false;
  const shutdown = (why: string, again: 'kill' | 'ignore') => {
    // A shutdown asked for through the API (hub stop) is already the first request to stop: a
    // signal after it is the second one, which stops the models at once.
    if (stopping || running.controller.shuttingDown) {
      if (again === 'ignore') return;
      tell('warn', `${why} again: stopping every model now (SIGKILL) and exiting`);
      running.killNow();
      return void exit(EXIT.failed);
    }
    stopping = true;
    tell('info', `${why}: draining in-flight requests and stopping models`);
    void running.close();
  };
  process.on('SIGINT', () => shutdown('SIGINT', 'kill'));
  process.on('SIGTERM', () => shutdown('SIGTERM', 'kill'));
  // The terminal closing sends SIGHUP too; terminalHungUp() tells it from a `kill -HUP` (see stdio.ts).
  process.on('SIGHUP', () => (terminalHungUp() ? shutdown('SIGHUP: the terminal was closed', 'ignore') : reload('SIGHUP')));

  await running.closed;
  tell('ok', 'stopped');
  // After an uncaught error the close above was the fatal handler's: the exit code must say so.
  return exit(fatal ? EXIT.failed : EXIT.ok); // the file watcher and signal handlers would keep the process alive
}

/**
 * Bound beyond loopback, every route without keys is open to whoever can reach the port. Asks the
 * same question the auth middleware does (realmIsOpen), so the warning cannot disagree with it.
 */
export function exposureWarning(config: HubConfig): string | undefined {
  const { host, port } = config.listen;
  if (isLoopbackHost(host)) return undefined;
  const api = realmIsOpen(config.auth, 'api');
  const admin = realmIsOpen(config.auth, 'admin');
  if (!api && !admin) return undefined;
  const at = `listening on ${host}:${port}`;
  if (admin) return `NOT PROTECTED: ${at} without keys: anyone who can reach this port can use your models and stop, reload or shut down the hub; set auth.api_keys (and auth.admin_keys) in ${config.path}, or listen on 127.0.0.1`;
  return `NOT PROTECTED: ${at} with admin keys only: /v1 and /upstream are open to anyone who can reach this port; set auth.api_keys in ${config.path}`;
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
