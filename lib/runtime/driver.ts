// The seam between the scheduler and the operating system. The scheduler only talks to a Driver,
// so its state machines can be exercised with fake processes; this file is the real one.
import { connect } from 'node:net';
import { adapterFor, type BackendAdapter } from '../backends/index.js';
import type { ModelConfig } from '../config/types.js';
import { ChildProcess, type ExitInfo, type SpawnSpec } from './child.js';
import { realClock, type Clock } from './clock.js';

export interface ProcessHandle {
  readonly pid: number | undefined;
  readonly exited: Promise<ExitInfo>;
  readonly exit?: ExitInfo;
  logTail(lines?: number): string[];
  stop(timeoutMs: number): Promise<ExitInfo>;
}

export interface Driver {
  /** Time for every lifecycle timer and deadline (a fake one in tests). */
  readonly clock: Clock;
  /** Starts a process; throws when it cannot even try (e.g. its log file cannot be created). */
  spawn(spec: SpawnSpec): ProcessHandle;
  /** How to talk to the model's server: readiness and (where it exists) memory control. */
  adapter(model: ModelConfig): BackendAdapter;
  /** True when something already accepts connections on this loopback port. */
  portInUse(port: number): Promise<boolean>;
}

export const realDriver: Driver = {
  clock: realClock,
  spawn: (spec) => new ChildProcess(spec),
  adapter: (model) => adapterFor(model.backend),
  portInUse: (port) =>
    new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    }),
};
