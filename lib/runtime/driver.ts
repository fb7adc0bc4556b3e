// The seam between the scheduler and the operating system. The scheduler only talks to a Driver,
// so its state machines can be exercised with fake processes; this file is the real one.
import { adapterFor, type BackendAdapter } from '../backends/index.js';
import type { ModelConfig } from '../config/types.js';
import { recentTreeResidentBytes } from './resident.js';
import { ChildProcess, type ExitInfo, type SpawnSpec } from './child.js';
import { realClock, type Clock } from './clock.js';
import { describePortHolder, findFreePort, portTaken } from './ports.js';

export interface ProcessHandle {
  readonly pid: number | undefined;
  readonly exited: Promise<ExitInfo>;
  readonly exit?: ExitInfo;
  logTail(lines?: number): string[];
  stop(timeoutMs: number): Promise<ExitInfo>;
  /** Calls `listener` once, at the next output the process prints (a server says "listening" when it is
   *  ready, so a readiness probe then sees it at once); returns a function that cancels it. */
  onNextOutput?(listener: (text: string) => void): () => void;
  /** Every piece of output from now on, until the returned function is called (the load's progress). */
  onOutput?(listener: (text: string) => void): () => void;
  /** How many chunks of output the process has printed so far. */
  readonly outputChunks?: number;
}

export interface Driver {
  /** Time for every lifecycle timer and deadline (a fake one in tests). */
  readonly clock: Clock;
  /** Starts a process; throws when it cannot even try (e.g. its log file cannot be created). */
  spawn(spec: SpawnSpec): ProcessHandle;
  /** How to talk to the model's server: readiness and (where it exists) memory control. */
  adapter(model: ModelConfig): BackendAdapter;
  /** Ports: whether one is taken (by binding), the next free one, and who holds one (see ports.ts). */
  portTaken(port: number): Promise<boolean>;
  findFreePort(from: number, avoid: ReadonlySet<number>): Promise<number>;
  describePortHolder(port: number): Promise<string | undefined>;
  /** Measured resident memory of a process we started and everything it forked, where the platform tells. */
  residentBytes?(pid: number): number | undefined;
}

export const realDriver: Driver = {
  clock: realClock,
  spawn: (spec) => new ChildProcess(spec),
  adapter: (model) => adapterFor(model.backend),
  portTaken,
  findFreePort: (from, avoid) => findFreePort(from, avoid),
  describePortHolder: (port) => describePortHolder(port),
  residentBytes: (pid) => recentTreeResidentBytes(pid),
};
