// Assembles a running hub: controller + HTTP server on the configured address, plus reload and
// shutdown. `hub serve` and the tests both start hubs through here.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { loadConfig } from './config/load.js';
import type { HubConfig } from './config/types.js';
import { createApp, createHttpServer } from './http/app.js';
import type { Logger } from './log.js';
import { HUB_COMMAND } from './paths.js';
import { realDriver, type Driver } from './runtime/driver.js';
import { Controller } from './scheduler/controller.js';
import type { ConfigDiff } from './scheduler/reload.js';

export interface RunningHub {
  controller: Controller;
  server: Server;
  /** e.g. http://127.0.0.1:8080 (no /v1) */
  origin: string;
  /** Re-reads the config file and applies the difference; throws ConfigError (running config kept). */
  reload(): ConfigDiff;
  /** Graceful: refuse new requests, drain, stop every backend, close the socket. */
  close(): Promise<void>;
  /** Resolves once close() has finished, however it was started (signal, API). */
  closed: Promise<void>;
}

export interface StartOptions {
  log: Logger;
  driver?: Driver;
  drainTimeoutMs?: number;
}

export async function startHub(config: HubConfig, options: StartOptions): Promise<RunningHub> {
  const { log } = options;
  const controller = new Controller(config, { driver: options.driver ?? realDriver, hubCommand: HUB_COMMAND, drainTimeoutMs: options.drainTimeoutMs });
  controller.on('transition', (t) => log.info(t, `${t.model} ${t.axis} ${t.from} -> ${t.to} (${t.reason})`));
  controller.on('bug', (message) => log.error(`internal error, please report it: ${message}`));
  controller.on('notice', (message) => log.info(message));

  const reload = (): ConfigDiff => {
    const current = controller.config;
    const previousPorts = new Map(controller.holders().flatMap((m) => (m.config.port === undefined ? [] : [[m.name, m.config.port] as const])));
    const next = loadConfig(current.path, { previousPorts });
    if (next.listen.host !== current.listen.host || next.listen.port !== current.listen.port) {
      log.warn({ listen: next.listen }, 'listen changed in the config; it applies when the hub restarts');
      next.listen = current.listen;
    }
    const diff = controller.applyConfig(next);
    log.info(diff, 'config reloaded');
    return diff;
  };

  let closing: Promise<void> | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => { markClosed = resolve; });
  const close = () =>
    (closing ??= (async () => {
      // Keep listening while draining, so late requests get a clear 503 instead of a refused connection.
      await controller.shutdown();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await done;
      markClosed();
    })());

  const server = createHttpServer(createApp(controller, log, { reload, shutdown: () => void close() }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  void controller.preload();
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  return { controller, server, origin: `http://${host}:${port}`, reload, close, closed };
}
