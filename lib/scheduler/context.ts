// The shapes a model's actor shares with the rest of the hub: transitions, errors, and what a spawn
// plan needs to know.
import type { BackendAdapter, BackendModel } from '../backends/index.js';
import type { ModelConfig } from '../config/types.js';
import type { Driver } from '../runtime/driver.js';

/** Who or what caused a transition: "request", "idle", "evicted for X", "operator", "crash", "reload", ... */
export type Reason = string;

export interface Transition {
  model: string;
  axis: 'process' | 'memory';
  from: string;
  to: string;
  reason: Reason;
  at: string;
  /** A start or wake-up of a model with `gpus:`: its devices, and why there. */
  gpus?: number[];
  placement?: string;
}

export interface LastError {
  message: string;
  exitCode: number | null;
  signal: string | null;
  logTail: string[];
  at: string;
}

/** What a spawn plan needs from the hub. */
export interface ModelContext {
  driver: Driver;
  hubCommand: readonly string[];
  /** Something the operator should know that is not a state change (an [info] line in the hub log). */
  notice(message: string): void;
  /** Ports every model (removed ones still stopping included) is configured with. */
  portsInUse(): ReadonlySet<number>;
}

/** What the executor needs to know about its model (the actor provides it). */
export interface ExecutedModel {
  readonly name: string;
  readonly config: ModelConfig;
  readonly remote: boolean;
  readonly target: string;
  /** `target` as errors may show it (a password in the URL masked). */
  readonly shownUrl: string;
  readonly logFile: string;
  readonly adapter: BackendAdapter;
  readonly backendModel: BackendModel;
  /** The GPUs it was placed on (models with `gpus:`): the child sees only these. */
  readonly gpus?: readonly number[];
  /** Its auto-assigned port was taken: from now on it uses this one. */
  movePort(port: number): void;
}
