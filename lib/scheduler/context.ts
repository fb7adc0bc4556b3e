// What a model's executor is told about its model and the hub, and what it reports: transitions,
// failures, bugs and notices. Shared by the executor, the model runtime and the controller.
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
}

export interface LastError {
  message: string;
  exitCode: number | null;
  signal: string | null;
  logTail: string[];
  at: string;
}

export interface ModelContext {
  driver: Driver;
  logDir: string;
  hubCommand: readonly string[];
  emit(t: Transition): void;
  /** Something that frees or takes capacity changed (memory state, in-flight count). */
  changed(): void;
  /** An event the state machine refused: a bug, reported and not applied. */
  bug(message: string): void;
  /** Something the operator should know that is not a state change (an [info] line in the hub log). */
  notice(message: string): void;
  /** Ports every model (removed ones still stopping included) is configured with. */
  portsInUse(): ReadonlySet<number>;
}

export interface ExecutorContext extends ModelContext {
  /** An operation finished (the model may be idle now). */
  settled(): void;
}

/** What the executor needs to know about its model (ModelRuntime provides it). */
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
  /** Its auto-assigned port was taken: from now on it uses this one. */
  movePort(port: number): void;
}
