// Assembles a running hub: controller + HTTP server on the configured address. `hub serve` and the
// tests both start hubs through here.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { HubConfig } from './config/types.js';
import { createApp, createHttpServer } from './http/app.js';
import type { Logger } from './log.js';
import { HUB_COMMAND } from './paths.js';
import { realDriver, type Driver } from './runtime/driver.js';
import { Controller } from './scheduler/controller.js';

export interface RunningHub {
  controller: Controller;
  server: Server;
  /** e.g. http://127.0.0.1:8080 (no /v1) */
  origin: string;
  /** Graceful: refuse new requests, drain, stop every backend, close the socket. */
  close(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
  driver?: Driver;
  drainTimeoutMs?: number;
}

export async function startHub(config: HubConfig, options: StartOptions): Promise<RunningHub> {
  const controller = new Controller(config, { driver: options.driver ?? realDriver, hubCommand: HUB_COMMAND, drainTimeoutMs: options.drainTimeoutMs });
  controller.on('transition', (t) => options.log.info(t, `${t.model} ${t.axis} ${t.from} -> ${t.to} (${t.reason})`));
  const server = createHttpServer(createApp(controller, options.log));
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
  let closing: Promise<void> | undefined;
  return {
    controller,
    server,
    origin: `http://${host}:${port}`,
    close: () =>
      (closing ??= (async () => {
        // Keep listening while draining, so late requests get a clear 503 instead of a refused connection.
        await controller.shutdown();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      })()),
  };
}
