// Assembles a running hub: its state_dir (see runtime/state-dir.ts), the controller, the HTTP server on
// the configured address, plus reload and shutdown. `hub serve` and the tests both start hubs here.
import type { Transition } from './scheduler/context.js';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { listenOrigin } from './config/listen-origin.js';
import { loadConfig } from './config/load.js';
import type { HubConfig } from './config/types.js';
import { createApp, createHttpServer } from './http/app.js';
import { applyTimeouts } from './http/connections.js';
import type { Logger } from './log.js';
import { HUB_COMMAND, VERSION } from './paths.js';
import { realDriver, type Driver } from './runtime/driver.js';
import { MemoryMonitor } from './runtime/memory-monitor.js';
import type { RotateSettings } from './runtime/log-file.js';
import { StateDir } from './runtime/state-dir.js';
import { Controller } from './scheduler/controller.js';
import type { ConfigDiff } from './scheduler/reload.js';

export interface RunningHub {
  controller: Controller;
  /** What models are measured and estimated to hold (measured(), estimated()), and the GPUs. */
  memory: MemoryMonitor;
  server: Server;
  /** e.g. http://127.0.0.1:8080 (no /v1) */
  origin: string;
  /** Re-reads the config file and applies the difference; throws ConfigError (running config kept). */
  reload(): ConfigDiff;
  /** Graceful: refuse new requests, drain, stop every backend, close the socket. */
  close(): Promise<void>;
  /** Resolves once close() has finished, however it was started (signal, API). */
  closed: Promise<void>;
  /**
   * The end without close(), for a second signal or an error nothing caught: SIGKILL to every
   * backend's process group at once, and the runtime file removed. The caller exits next.
   */
  killNow(): void;
}

export interface StartOptions {
  log: Logger;
  driver?: Driver;
  drainTimeoutMs?: number;
  /** Shows a warning to the user (`hub serve` prints `[warn]` lines); it is logged either way. */
  warn?: (message: string) => void;
  /** Shows a notice to the user (`hub serve` prints `[info]` lines), e.g. a model moved to a free port. */
  info?: (message: string) => void;
  /** Sees every transition from the first (preloads start while the hub starts). */
  onTransition?: (t: Transition) => void;
  /** Where `log` writes the hub's own log, for GET /hub/api/logs (default: hub.log in log.dir). */
  hubLog?: string;
  /** `hub serve --host/--port`: win over listen in the config, at start and on every reload. */
  listen?: { host?: string; port?: number };
}

/**
 * Starts a hub. First it takes over config.stateDir: if a hub still runs there this throws, and
 * backends an earlier hub left running (it was killed hard) are stopped, so their ports are free.
 */
export async function startHub(config: HubConfig, options: StartOptions): Promise<RunningHub> {
  const { log } = options;
  const overridden = (c: HubConfig): HubConfig => {
    c.listen = { host: options.listen?.host ?? c.listen.host, port: options.listen?.port ?? c.listen.port };
    return c;
  };
  overridden(config);
  const warn = (message: string) => {
    options.warn?.(message);
    log.warn(options.warn ? { shown: true } : {}, message);
  };
  const state = await StateDir.open(config.stateDir, { warn, stopTimeoutMs: (model) => config.models[model]?.stopTimeoutMs ?? 10_000 });
  const controller: Controller = new Controller(config, { driver: recording(options.driver ?? realDriver, state, (): RotateSettings => controller.config.log.rotate), hubCommand: HUB_COMMAND, drainTimeoutMs: options.drainTimeoutMs, stateDir: config.stateDir });
  controller.on('transition', (t) => log.info(t, `${t.model} ${t.axis} ${t.from} -> ${t.to} (${t.reason})`));
  const memory = new MemoryMonitor({
    config: () => controller.config,
    // A driver that cannot measure its processes (a test's fake one) has pids /proc knows nothing of.
    models: () => ((options.driver ?? realDriver).residentBytes ? controller.holders() : []),
    stateDir: config.stateDir,
    hubCommand: HUB_COMMAND,
    log: { warn, info: (message) => log.info(message) },
    gpusRead: () => controller.gpusChanged(),
  });
  controller.on('transition', (t) => memory.noteTransition(t));
  // memory: auto models are planned with what the monitor measured (or estimated).
  controller.sizeOf = (name) => memory.sizeOf(name);
  // Models with gpus: are placed on the devices listed, or with gpus: auto on what nvidia-smi reports
  // (read once before the first request can need it).
  controller.gpuRooms = () => memory.gpuRooms();
  if (config.gpus?.auto) {
    await memory.sample(true);
    if (!memory.gpuRooms().length) warn('gpus: auto found no GPU (nvidia-smi is not on PATH, or did not answer): models with gpus: are refused until it does; install the NVIDIA driver, or list the devices under gpus');
  }
  if (options.onTransition) controller.on('transition', options.onTransition);
  controller.on('bug', (message) => log.error(`internal error, please report it: ${message}`));
  controller.on('notice', (message) => {
    options.info?.(message);
    log.info(options.info ? { shown: true } : {}, message);
  });

  const reload = (): ConfigDiff => {
    const current = controller.config;
    const previousPorts = new Map(controller.holders().flatMap((m) => (m.config.port === undefined ? [] : [[m.name, m.config.port] as const])));
    const next = overridden(loadConfig(current.path, { previousPorts }));
    if (next.listen.host !== current.listen.host || next.listen.port !== current.listen.port) {
      log.warn({ listen: next.listen }, 'listen changed in the config; it applies when the hub restarts');
      next.listen = current.listen;
    }
    const diff = controller.applyConfig(next);
    void memory.refreshEstimates();
    if (next.gpus?.auto) void memory.sample(true); // gpus: auto just added: read the devices now, not in 5 s
    applyTimeouts(server, next.limits);
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
      memory.close();
      state.release();
      markClosed();
    })());

  const server = createHttpServer(createApp(controller, log, { reload, shutdown: () => void close(), hubLog: options.hubLog, memory }).handle, () => controller.config.limits, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = listenOrigin(config.listen.host, port);
  try {
    state.announce({ url: origin, config: config.path, version: VERSION });
  } catch (err) {
    warn(`cannot write the runtime file in ${config.stateDir} (${(err as Error).message}); the hub runs, but other commands will not find it`);
  }
  void controller.preload();
  return { controller, server, origin, memory, reload, close, closed, killNow: () => { state.killChildren(); state.release(); } };
}

/**
 * The driver, with every spawned process recorded in the state dir until it exits, and its log rotated
 * by the current config's `log.rotate`. Spread, not rebuilt, so that it keeps whatever else the driver
 * offers.
 */
function recording(base: Driver, state: StateDir, rotate: () => RotateSettings): Driver {
  return {
    ...base,
    spawn: (spec) => {
      const handle = base.spawn({ ...spec, rotate: spec.rotate ?? rotate() });
      const pid = handle.pid;
      if (pid !== undefined) {
        state.recordChild(spec.model, pid);
        void handle.exited.then(() => state.forgetChild(pid));
      }
      return handle;
    },
  };
}
