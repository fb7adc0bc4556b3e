// A model's whole state as plain data, owned by the pure step function (step.ts) and held by one actor
// per model (actor.ts). Nothing here does I/O or reads a clock: `now` is always passed in. The helpers
// below derive what the rest of the hub asks about a model (ready? holding memory? wanting room? which
// timers should be armed?) from the state alone, so the answers can never drift from it.
import type { ModelConfig } from '../config/types.js';
import type { HubError } from '../errors.js';
import type { LastError } from './context.js';
import type { Placement } from './placement.js';
import { initialState, type MachineState } from './machine.js';

/** Who waits for the model: a request (becomes in flight when admitted) or an operator action. */
export type WaiterKind = 'request' | 'start' | 'load' | 'preload';

export interface Waiter {
  id: number;
  kind: WaiterKind;
  /** When it began to wait (ms on the driver's clock). */
  at: number;
}

/** A move towards less: free the memory (`unload`) or end the process (`stop`), after draining. */
export interface Down {
  to: 'unload' | 'stop';
  reason: string;
  /** In-flight requests may finish until then (Infinity: until they are done). */
  drainUntil: number;
  /** Operator actions waiting for it to be done. */
  waiters: number[];
  /** Operator or shutdown: a start under way is cancelled, its waiters refused. */
  force: boolean;
}

/** Group policy a model's waiters obey (from groups.<g>; ungrouped models wait unbounded). */
export interface WaitPolicy {
  /** No request waits longer than this (Infinity: no bound). */
  maxWaitMs: number;
}

export interface ModelState {
  readonly name: string;
  /** Where its child's output goes (quoted in errors). */
  readonly logFile: string;
  config: ModelConfig;
  /** The backend can free its weights and keep the process (vLLM sleep, SGLang release, …). */
  memoryControl: boolean;
  policy: WaitPolicy;
  /** Both lifecycle axes, moved only through machine.ts's table. */
  proc: MachineState;
  /** Why admission is closed (empty: admitting). */
  closed: string[];
  /** Capacity granted by the coordinator, memory not loaded yet. */
  reserved: boolean;
  /** Models with `gpus:`: the devices its process runs on (from its grant until it stops), and why. */
  placement?: Placement;
  /** The devices it ran on last time (placement is stable where it can be). */
  lastDevices?: number[];
  /** When the current capacity grant came, if it had to wait for room (the swap time each waiter is told). */
  grantedAt?: number;
  inflight: number;
  /** In arrival order. */
  waiting: Waiter[];
  /** Requests this model was loaded for: it is not evicted before they are admitted (minimum residency). */
  owed: number[];
  down?: Down;
  /** A launch change from a reload, applied once the model is idle. */
  pending?: ModelConfig;
  /** Removed by a reload: serves what it accepted, then stops for good. */
  retired: boolean;
  shuttingDown: boolean;
  /** Protected from eviction while an operator's multi-model load completes. */
  held: boolean;
  /** A remote health check is under way. */
  checking: boolean;
  failures: number;
  retryAt: number;
  lastError?: LastError;
  /** What the waiters of the start under way get if it fails. */
  startError?: HubError;
  /** Why the last spawn could not even be tried (quoted by the failure). */
  spawnError?: string;
  startDeadline: number;
  probeDelayMs: number;
  startedAt?: number;
  readyAt?: number;
  /** When it last became running and loaded (the end of a cold start or wake-up). */
  upAt?: number;
  /** `served` at that moment: how many it has served since tells a run of an agent's turns from a one-off. */
  servedAtUp: number;
  /** When the memory load under way began (wake-up time for the load history). */
  loadingSince?: number;
  /** When the model last became idle; undefined while in use. */
  idleSince?: number;
  lastUsedAt?: number;
  served: number;
  /** The SIGKILL deadline's end (stop_timeout plus grace) while stopping. */
  killBoundAt?: number;
  /** Why the process is moving right now (the reason on its transitions). */
  reason: string;
}

/**
 * A copy of the state for a step to change. Every field is written out: V8 copies a literal of known
 * shape in one allocation (~0.05 µs, ~370 B here), where `{ ...s }` of this many fields took ~0.5 µs
 * and ~1.3 KiB, twice per request. The type makes a field added to ModelState but not here an error.
 */
export function cloneState(s: ModelState): ModelState {
  const d: { [K in keyof Required<ModelState>]: ModelState[K] } = {
    name: s.name, logFile: s.logFile, config: s.config, memoryControl: s.memoryControl, policy: s.policy,
    proc: s.proc, closed: s.closed, reserved: s.reserved, placement: s.placement, lastDevices: s.lastDevices,
    grantedAt: s.grantedAt, inflight: s.inflight, waiting: s.waiting, owed: s.owed, down: s.down,
    pending: s.pending, retired: s.retired, shuttingDown: s.shuttingDown, held: s.held, checking: s.checking,
    failures: s.failures, retryAt: s.retryAt, lastError: s.lastError, startError: s.startError,
    spawnError: s.spawnError, startDeadline: s.startDeadline, probeDelayMs: s.probeDelayMs,
    startedAt: s.startedAt, readyAt: s.readyAt, upAt: s.upAt, servedAtUp: s.servedAtUp,
    loadingSince: s.loadingSince, idleSince: s.idleSince, lastUsedAt: s.lastUsedAt, served: s.served,
    killBoundAt: s.killBoundAt, reason: s.reason,
  };
  return d;
}

export function newModelState(config: ModelConfig, memoryControl: boolean, policy: WaitPolicy, logFile: string): ModelState {
  return {
    name: config.name,
    logFile,
    config,
    memoryControl,
    policy,
    proc: initialState(),
    closed: [],
    reserved: false,
    inflight: 0,
    waiting: [],
    owed: [],
    retired: false,
    shuttingDown: false,
    held: false,
    checking: false,
    failures: 0,
    retryAt: 0,
    startDeadline: 0,
    probeDelayMs: 10,
    served: 0,
    servedAtUp: 0,
    reason: '',
  };
}

export const isRemote = (s: ModelState): boolean => s.config.url !== undefined;

/** Running, loaded and taking new requests. */
export const isReady = (s: ModelState): boolean => s.proc.process === 'running' && s.proc.memory === 'loaded' && s.closed.length === 0 && !s.down;

/**
 * Holds memory now or is about to: what capacity planning counts. A start cancelled or timed out is
 * counted until its process has exited: it may have loaded much of its weights by then.
 */
export const isCounted = (s: ModelState): boolean => !isRemote(s) && (s.reserved || s.proc.memory !== 'unloaded' || s.proc.process === 'starting' || stoppingUnready(s));

/** Stopping a process that never became ready (a start cancelled or timed out). */
const stoppingUnready = (s: ModelState): boolean => s.proc.process === 'stopping' && s.startedAt !== undefined && !(s.readyAt !== undefined && s.readyAt >= s.startedAt);

/** Mid-start, mid-load or mid-unload: it cannot be chosen as a victim until that settles. */
export const isMoving = (s: ModelState): boolean =>
  s.proc.process === 'starting' || s.proc.process === 'stopping' || s.proc.memory === 'loading' || s.proc.memory === 'unloading' || (s.reserved && !isReady(s));

export const backingOff = (s: ModelState, now: number): boolean => s.proc.process === 'failed' && s.retryAt > now && s.lastError !== undefined;

/** Needs room granted before it can come up: someone waits, nothing holds memory for it yet. */
export const wantsCapacity = (s: ModelState, now: number): boolean =>
  !isRemote(s) && !isCounted(s) && !s.down && !s.shuttingDown && s.waiting.length > 0 && !backingOff(s, now) && !(s.retired && s.proc.process !== 'running');

/** A request that arrives now is admitted at once: the model is ready, nobody waits, a slot is free. */
export const admitsAtOnce = (s: ModelState): boolean => !s.shuttingDown && isReady(s) && requestsWaiting(s) === 0 && s.inflight < s.config.maxConcurrency;

export const requestsWaiting = (s: ModelState): number => s.waiting.reduce((n, w) => n + (w.kind === 'request' ? 1 : 0), 0);

/** When each idle step is due, from the moment the model became idle; nothing while it is in use. */
export function idleSteps(s: ModelState): { unloadAt?: number; stopAt?: number } {
  const c = s.config;
  if (s.idleSince === undefined || s.inflight > 0 || s.waiting.length > 0 || c.pinned || isRemote(s) || s.proc.process !== 'running' || s.down || s.reserved) return {};
  const { unloadAfterMs, stopAfterMs } = c.idle;
  if (!s.memoryControl) {
    const first = Math.min(...[unloadAfterMs, stopAfterMs].filter((ms) => ms > 0)); // "unload" means stop
    return Number.isFinite(first) ? { stopAt: s.idleSince + first } : {};
  }
  return {
    unloadAt: unloadAfterMs > 0 && s.proc.memory === 'loaded' ? s.idleSince + unloadAfterMs : undefined,
    stopAt: stopAfterMs > 0 ? s.idleSince + stopAfterMs : undefined,
  };
}

export function idleDeadline(s: ModelState): number | undefined {
  const { unloadAt, stopAt } = idleSteps(s);
  const next = Math.min(unloadAt ?? Infinity, stopAt ?? Infinity);
  return Number.isFinite(next) ? next : undefined;
}

export type TimerName = 'idle' | 'expire' | 'drain' | 'kill-bound';

/** The timers the state asks for (absolute times); the actor keeps exactly these armed. */
export function deadlines(s: ModelState): Partial<Record<TimerName, number>> {
  const out: Partial<Record<TimerName, number>> = {};
  const idle = idleDeadline(s);
  if (idle !== undefined) out.idle = idle;
  // max_wait bounds the wait for room in the group; once the model holds capacity its own start or
  // load is what the requests wait for, and start_timeout bounds that.
  if (s.policy.maxWaitMs < Infinity && !isCounted(s)) {
    const oldest = s.waiting.find((w) => w.kind === 'request');
    if (oldest) out.expire = oldest.at + s.policy.maxWaitMs;
  }
  if (s.down && s.inflight > 0 && s.down.drainUntil < Infinity) out.drain = s.down.drainUntil;
  if (s.killBoundAt !== undefined && s.proc.process === 'stopping') out['kill-bound'] = s.killBoundAt;
  return out;
}
