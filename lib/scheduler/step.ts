// The whole behaviour of one model as a pure function: step(state, event, now) → (state, effects).
// Requests arriving and finishing, operator actions, capacity granted or refused by the group's
// coordinator, process and memory results, timers, reloads and shutdown all come in as events; what
// must happen in the world (spawn, signal, memory call, probe, admit or refuse a waiter, arm a timer,
// publish a transition) goes out as effects, which the model's actor (actor.ts) carries out after the
// new state is committed. Both lifecycle axes still move only through machine.ts's table.
//
// After the event itself is applied, `reconcile` drives the model towards what its state asks for:
// a pending stop or unload once drained, a launch change once idle, a retired model's stop, and the
// waiters' wish to be served (start, load, admit). So every event, whatever it is, ends in the same
// one place that decides what happens next.
import type { ModelConfig } from '../config/types.js';
import { HubError, plural } from '../errors.js';
import type { ExitInfo } from '../runtime/child.js';
import type { Transition } from './context.js';
import type { Placement } from './placement.js';
import { backoffMs, describeFailure, failureKind, failureKindReason } from './failure.js';
import { transition, type Effect as MachineEffect, type MachineEvent } from './machine.js';
import { admitsAtOnce, backingOff, cloneState, deadlines, idleSteps, isCounted, isReady, isRemote, requestsWaiting, type Down, type ModelState, type TimerName, type WaitPolicy, type WaiterKind } from './state.js';
import { showUrl } from './show-url.js';

/** How a request ended, for the crash backoff: only a good answer from the backend proves it healthy. */
export type Outcome = 'answered' | 'failed' | 'abandoned';

/** After SIGKILL, how long a child may take to be reaped before the hub gives up on it. */
export const KILL_GRACE_MS = 5000;

export type ActorEvent =
  | { type: 'arrive'; id: number; kind: WaiterKind }
  | { type: 'finish'; outcome: Outcome }
  /** A waiter gave up (its client left). */
  | { type: 'leave'; id: number }
  | { type: 'down'; to: 'unload' | 'stop'; reason: string; drainMs: number; force?: boolean; id?: number }
  | { type: 'granted'; /** The model waited for room (it was not granted when it first asked). */ afterWait?: boolean; placement?: Placement }
  | { type: 'refused'; error: HubError }
  | { type: 'spawned'; gen: number }
  | { type: 'spawn-failed'; gen: number; message: string }
  | { type: 'probed'; gen: number; ready: boolean }
  | { type: 'exited'; gen: number; exit: ExitInfo; tail: string[] }
  | { type: 'memory-done'; gen: number; op: 'load' | 'unload'; error?: string }
  | { type: 'remote-checked'; up: boolean }
  /** A forward to a remote model failed: check its health again before the next request. */
  | { type: 'remote-failed'; message: string }
  | { type: 'timer'; name: TimerName }
  | { type: 'configure'; config: ModelConfig; memoryControl: boolean; policy: WaitPolicy }
  | { type: 'relaunch'; config: ModelConfig }
  | { type: 'retire' }
  | { type: 'shutdown' }
  | { type: 'hold'; on: boolean }
  /** Its auto-assigned port was taken: it starts on this one from now on (a reload keeps it). */
  | { type: 'port-moved'; port: number }
  | { type: 'reset-backoff' };

/** How long an admitted request waited, split by what it waited for. */
export interface Waited {
  /** For the model to start or load. */
  coldStartMs?: number;
  /** For room in its group (other models yielding, draining, unloading). */
  swapMs?: number;
  /** All waiting that was not the model's own start: room in the group, a free slot. */
  queueMs?: number;
}

export type ActorEffect =
  | MachineEffect
  | { kind: 'probe'; gen: number; delayMs: number }
  | { kind: 'check-remote' }
  | { kind: 'admit'; id: number; waited: Waited }
  | { kind: 'resolve'; ids: number[] }
  | { kind: 'reject'; ids: number[]; error: HubError }
  | { kind: 'publish'; transition: Transition }
  | { kind: 'record-load'; what: 'start' | 'wake'; ms: number }
  | { kind: 'bug'; message: string }
  | { kind: 'arm'; name: TimerName; at?: number };

export interface StepResult {
  state: ModelState;
  effects: ActorEffect[];
}

const TIMERS: TimerName[] = ['idle', 'expire', 'drain', 'kill-bound'];

export function step(s: ModelState, e: ActorEvent, now: number): StepResult {
  return (e.type === 'arrive' ? quickAdmit(s, e, now) : e.type === 'finish' ? quickFinish(s, e, now) : undefined) ?? fullStep(s, e, now);
}

/** step() without its shortcuts: every event applied, then reconciled (the shortcuts must agree with it). */
export function fullStep(s: ModelState, e: ActorEvent, now: number): StepResult {
  const d = cloneState(s);
  d.waiting = [...s.waiting];
  d.owed = [...s.owed];
  d.down = s.down && { ...s.down, waiters: [...s.down.waiters] };
  const fx: ActorEffect[] = [];
  apply(d, e, now, fx);
  reconcile(d, now, fx);
  d.owed = d.owed.filter((id) => d.waiting.some((w) => w.id === id));
  armTimers(s, d, e, now, fx);
  return { state: d, effects: fx };
}

// The two steps every request takes, on a ready model that nobody waits for and nothing is pending on
// (nearly every request): only the counters and the idle clock change, so the state is copied once and
// not reconciled. A test holds them equal to fullStep on random states.
const quiet = (s: ModelState) => isReady(s) && !s.shuttingDown && s.waiting.length === 0 && s.owed.length === 0 && s.pending === undefined && !s.retired;

function quickAdmit(s: ModelState, e: Extract<ActorEvent, { type: 'arrive' }>, now: number): StepResult | undefined {
  if (e.kind !== 'request' || !quiet(s) || s.inflight >= s.config.maxConcurrency) return undefined;
  const d = cloneState(s);
  d.inflight = s.inflight + 1;
  d.idleSince = undefined;
  d.reserved = false;
  const fx: ActorEffect[] = [{ kind: 'admit', id: e.id, waited: {} }];
  armTimers(s, d, e, now, fx);
  return { state: d, effects: fx };
}

function quickFinish(s: ModelState, e: Extract<ActorEvent, { type: 'finish' }>, now: number): StepResult | undefined {
  if (!quiet(s) || s.inflight === 0) return undefined;
  const d = cloneState(s);
  d.inflight = s.inflight - 1;
  d.served = s.served + 1;
  d.lastUsedAt = now;
  if (e.outcome === 'answered') d.failures = 0;
  if (d.inflight === 0) d.idleSince = now;
  d.reserved = false;
  const fx: ActorEffect[] = [];
  armTimers(s, d, e, now, fx);
  return { state: d, effects: fx };
}

/** Arms, moves or clears each timer whose deadline the step changed (before: s, after: d). */
function armTimers(s: ModelState, d: ModelState, e: ActorEvent, now: number, fx: ActorEffect[]): void {
  const before = deadlines(s);
  const after = deadlines(d);
  for (const name of TIMERS) {
    const fired = e.type === 'timer' && e.name === name;
    // A timer that just fired and is still due made no progress (a drain deadline while the process
    // is still starting, say): firing it again would spin. Any later event reconciles past deadlines.
    if (fired && after[name] !== undefined && after[name]! <= now) fx.push({ kind: 'arm', name, at: undefined });
    else if (fired || before[name] !== after[name]) fx.push({ kind: 'arm', name, at: after[name] });
  }
}

function apply(d: ModelState, e: ActorEvent, now: number, fx: ActorEffect[]): void {
  switch (e.type) {
    case 'arrive':
      return arrive(d, e.id, e.kind, now, fx);
    case 'finish':
      d.inflight--;
      d.served++;
      d.lastUsedAt = now;
      if (e.outcome === 'answered') d.failures = 0;
      if (d.inflight === 0) d.idleSince = now;
      return;
    case 'leave': {
      // The client went away while it waited: it leaves the queue (and no longer counts for a start).
      const before = d.waiting.length;
      d.waiting = d.waiting.filter((w) => w.id !== e.id);
      if (d.waiting.length < before) fx.push({ kind: 'reject', ids: [e.id], error: new HubError('bad_request', `the client closed the connection while its request waited for model ${d.name}; nothing was sent to the backend`) });
      return;
    }
    case 'down':
      return down(d, e, now, fx);
    case 'granted':
      // Everyone who wanted the room has left since it was planned: the grant goes unused (and the
      // next plan, which sees nobody waiting, gives it to someone else).
      if (!d.waiting.length) return;
      d.reserved = true;
      if (e.placement) d.placement = e.placement;
      // Only a grant that had to wait for room (others yielding or unloading) was a wait for a swap.
      d.grantedAt = e.afterWait ? now : undefined;
      d.owed = d.waiting.filter((w) => w.kind === 'request').map((w) => w.id);
      return;
    case 'refused':
      return rejectAll(d, fx, e.error);
    case 'spawned':
      if (e.gen === d.proc.gen && d.proc.process === 'starting') {
        d.startedAt = now;
        // start_timeout counts from the spawn: waiting for a predecessor of the same name (removed by a
        // reload and still finishing) or for a free port is not the backend being slow.
        d.startDeadline = now + d.config.startTimeoutMs;
        fx.push({ kind: 'probe', gen: e.gen, delayMs: 0 }); // a server may be up at once (a restart of a warm one)
      }
      return;
    case 'spawn-failed':
      d.spawnError = e.message;
      move(d, { type: 'spawn-failed', gen: e.gen }, now, fx);
      return;
    case 'probed':
      return probed(d, e.gen, e.ready, now, fx);
    case 'exited':
      move(d, { type: 'exited', gen: e.gen }, now, fx, d.proc.process === 'running' ? 'crash' : d.reason, { exit: e.exit, tail: e.tail });
      return;
    case 'memory-done':
      return memoryDone(d, e, now, fx);
    case 'remote-checked':
      d.checking = false;
      if (e.up) return void move(d, { type: 'remote-up' }, now, fx);
      return remoteDown(d, now, fx, `remote model ${d.name} at ${showUrl(d.config.url!)} is not answering its health check; make sure that server is up`, true);
    case 'remote-failed':
      return remoteDown(d, now, fx, e.message, false);
    case 'timer':
      return timer(d, e.name, now, fx);
    case 'configure':
      d.config = e.config;
      d.memoryControl = e.memoryControl;
      d.policy = e.policy;
      return;
    case 'relaunch':
      if ((d.proc.process === 'stopped' || d.proc.process === 'failed') && !d.down) {
        d.config = e.config;
        d.failures = 0;
        d.retryAt = 0;
      } else d.pending = e.config;
      return;
    case 'retire':
      d.retired = true;
      d.pending = undefined;
      if (d.proc.process !== 'running' && d.proc.process !== 'starting') rejectAll(d, fx, removedError(d));
      return;
    case 'shutdown':
      d.shuttingDown = true;
      return rejectAll(d, fx, shuttingDownError());
    case 'hold':
      d.held = e.on;
      return;
    case 'port-moved':
      d.config = { ...d.config, port: e.port };
      return;
    case 'reset-backoff':
      d.failures = 0;
      d.retryAt = 0;
      return;
  }
}

function arrive(d: ModelState, id: number, kind: WaiterKind, now: number, fx: ActorEffect[]): void {
  if (d.shuttingDown) return void fx.push({ kind: 'reject', ids: [id], error: shuttingDownError() });
  if (kind === 'start' || kind === 'load') {
    d.failures = 0; // an operator start is a deliberate retry
    d.retryAt = 0;
  }
  if (kind !== 'request') {
    if (isReady(d)) fx.push({ kind: 'resolve', ids: [id] });
    else d.waiting.push({ id, kind, at: now });
    return;
  }
  if (backingOff(d, now)) return void fx.push({ kind: 'reject', ids: [id], error: backoffError(d, now) });
  if (admitsAtOnce(d)) return admit(d, { id, kind, at: now }, now, fx);
  const slots = d.config.maxConcurrency;
  const queued = requestsWaiting(d);
  // max_queue bounds requests waiting behind other requests of this model, not one waiting for its start.
  const ahead = d.inflight + queued;
  if (ahead >= slots && ahead - slots >= d.config.maxQueue) {
    const why = slots === 1 ? 'its one slot is busy' : `all ${slots} of its slots are busy`;
    const behind = ahead - slots;
    return void fx.push({ kind: 'reject', ids: [id], error: new HubError('model_busy', `model ${d.name} cannot take this request now: ${why} and ${plural(behind, 'request')} already ${behind === 1 ? 'waits' : 'wait'} behind them (max_queue ${d.config.maxQueue}); retry shortly`, { retryAfterMs: 1000 }) });
  }
  d.waiting.push({ id, kind, at: now });
}

function admit(d: ModelState, w: { id: number; kind?: WaiterKind; at: number }, now: number, fx: ActorEffect[]): void {
  d.inflight++;
  d.idleSince = undefined;
  const waited: Waited = {};
  if (now > w.at) {
    const granted = d.grantedAt !== undefined && d.grantedAt > w.at ? d.grantedAt : undefined;
    if (granted !== undefined) waited.swapMs = granted - w.at;
    if (d.upAt !== undefined && d.upAt > w.at) waited.coldStartMs = d.upAt - Math.max(w.at, granted ?? w.at);
    const queue = now - w.at - (waited.coldStartMs ?? 0);
    if (queue >= 1) waited.queueMs = queue; // under a millisecond is the hub's own turnaround, not a queue
  }
  fx.push({ kind: 'admit', id: w.id, waited });
}

function down(d: ModelState, e: Extract<ActorEvent, { type: 'down' }>, now: number, fx: ActorEffect[]): void {
  if (e.force) {
    rejectAll(d, fx, new HubError('model_start_failed', `model ${d.name} was stopped (${e.reason}) while this request waited for it; send the request again to start it`));
    d.reserved = false;
  }
  const drainUntil = now + e.drainMs;
  if (!d.down) d.down = { to: e.to, reason: e.reason, drainUntil, waiters: [], force: e.force ?? false };
  else {
    if (e.to === 'stop' && d.down.to !== 'stop') Object.assign(d.down, { to: 'stop', reason: e.reason });
    d.down.drainUntil = Math.min(d.down.drainUntil, drainUntil);
    d.down.force ||= e.force ?? false;
  }
  if (e.id !== undefined) d.down.waiters.push(e.id);
}

function probed(d: ModelState, gen: number, ready: boolean, now: number, fx: ActorEffect[]): void {
  if (gen !== d.proc.gen || d.proc.process !== 'starting') return;
  if (ready) {
    if (move(d, { type: 'ready', gen }, now, fx) && d.startedAt !== undefined) fx.push({ kind: 'record-load', what: 'start', ms: now - d.startedAt });
    return;
  }
  if (now >= d.startDeadline) return void move(d, { type: 'start-timeout', gen }, now, fx, 'start timed out');
  // Probe fast at first and back off, so a quick server is seen within milliseconds.
  d.probeDelayMs = Math.min(d.config.health.intervalMs, Math.max(10, d.probeDelayMs * 1.5), d.startDeadline - now);
  fx.push({ kind: 'probe', gen, delayMs: d.probeDelayMs });
}

function memoryDone(d: ModelState, e: Extract<ActorEvent, { type: 'memory-done' }>, now: number, fx: ActorEffect[]): void {
  if (e.op === 'load') {
    if (e.error === undefined) {
      if (move(d, { type: 'loaded', gen: e.gen }, now, fx) && d.loadingSince !== undefined) fx.push({ kind: 'record-load', what: 'wake', ms: now - d.loadingSince });
      return;
    }
    if (move(d, { type: 'load-failed', gen: e.gen }, now, fx, `load failed: ${e.error}`)) {
      rejectAll(d, fx, new HubError('model_start_failed', `model ${d.name} could not load its weights (${e.error}); send the request again, or check ${d.logFile}`, { retryAfterMs: 1000 }));
      d.reserved = false;
    }
    return;
  }
  if (e.error === undefined) return void move(d, { type: 'unloaded', gen: e.gen }, now, fx);
  // The memory must be freed either way: a backend that fails to unload is stopped instead.
  if (move(d, { type: 'unload-failed', gen: e.gen }, now, fx, `unload failed: ${e.error}`) && d.down) {
    d.down.to = 'stop';
    d.down.reason = `${d.down.reason}; unload failed (${e.error})`;
  }
}

function remoteDown(d: ModelState, now: number, fx: ActorEffect[], message: string, failWaiters: boolean): void {
  move(d, { type: 'remote-down' }, now, fx, 'health check failed');
  d.lastError = { message, exitCode: null, signal: null, logTail: [], at: new Date(now).toISOString() };
  if (failWaiters) rejectAll(d, fx, new HubError('backend_unavailable', message));
}

function timer(d: ModelState, name: TimerName, now: number, fx: ActorEffect[]): void {
  if (name === 'idle') {
    const { unloadAt, stopAt } = idleSteps(d);
    // When both are due (equal unload_after and stop_after, or an unload that ran late), stop.
    if (stopAt !== undefined && now >= stopAt) d.down = { to: 'stop', reason: 'idle', drainUntil: Infinity, waiters: [], force: false };
    else if (unloadAt !== undefined && now >= unloadAt) d.down = { to: 'unload', reason: 'idle', drainUntil: Infinity, waiters: [], force: false };
  } else if (name === 'expire' && !isCounted(d)) {
    const late = d.waiting.filter((w) => w.kind === 'request' && w.at + d.policy.maxWaitMs <= now).map((w) => w.id);
    if (!late.length) return;
    d.waiting = d.waiting.filter((w) => !late.includes(w.id));
    const group = d.config.group ?? '';
    const error = new HubError('capacity_exhausted', `model ${d.name} could not be served within max_wait (${d.policy.maxWaitMs / 1000}s) of group ${group}: the group's memory (or the GPUs it may use) was busy with other models; retry, or raise groups.${group}.max_wait`, { retryAfterMs: 2000 });
    fx.push({ kind: 'reject', ids: late, error });
  } else if (name === 'kill-bound' && d.killBoundAt !== undefined && now >= d.killBoundAt) {
    move(d, { type: 'exit-overdue', gen: d.proc.gen }, now, fx, 'did not exit after SIGKILL');
  }
}

/** Drives the model towards what its state asks for; see the file comment. */
function reconcile(d: ModelState, now: number, fx: ActorEffect[]): void {
  for (let round = 0; round < 4; round++) {
    if (d.down) {
      if (!goDown(d, d.down, now, fx)) break;
      continue; // done: look again with the model open
    }
    serve(d, now, fx);
    if (d.pending && d.inflight === 0 && !isMovingProcess(d)) {
      if (d.proc.process === 'stopped' || d.proc.process === 'failed') applyPending(d, now);
      else d.down = { to: 'stop', reason: 'reload', drainUntil: Infinity, waiters: [], force: false };
      continue;
    }
    if (d.retired && d.inflight === 0 && d.waiting.length === 0 && (d.proc.process === 'running' && !isRemote(d))) {
      d.down = { to: 'stop', reason: 'reload', drainUntil: Infinity, waiters: [], force: false };
      continue;
    }
    break;
  }
  if (d.inflight === 0 && d.waiting.length === 0 && d.idleSince === undefined && d.proc.process === 'running') d.idleSince = now;
}

const isMovingProcess = (d: ModelState) => d.proc.process === 'starting' || d.proc.process === 'stopping';

/** Works on a pending stop or unload. Returns true when it is done (and cleared). */
function goDown(d: ModelState, goal: Down, now: number, fx: ActorEffect[]): boolean {
  const drained = d.inflight === 0 || now >= goal.drainUntil;
  const { process, memory } = d.proc;
  if (isRemote(d)) return finishDown(d, goal, now, fx);
  if (process === 'starting' && (goal.force || d.shuttingDown)) move(d, { type: 'stop' }, now, fx, goal.reason);
  else if (process === 'running' && drained) {
    // A stop does not wait for a memory call under way (it may hang); an unload does.
    if (goal.to === 'stop' || !d.memoryControl) move(d, { type: 'stop' }, now, fx, goal.reason);
    else if (memory === 'loaded') move(d, { type: 'unload' }, now, fx, goal.reason);
  }
  const p = d.proc.process;
  const done = p === 'stopped' || p === 'failed' || (goal.to === 'unload' && d.memoryControl && p === 'running' && d.proc.memory === 'unloaded');
  return done ? finishDown(d, goal, now, fx) : false;
}

function finishDown(d: ModelState, goal: Down, now: number, fx: ActorEffect[]): boolean {
  d.down = undefined;
  if (goal.waiters.length) fx.push({ kind: 'resolve', ids: goal.waiters });
  if (d.pending && (d.proc.process === 'stopped' || d.proc.process === 'failed')) applyPending(d, now);
  return true;
}

function applyPending(d: ModelState, now: number): void {
  d.config = d.pending!;
  d.pending = undefined;
  d.failures = 0;
  d.retryAt = 0;
  // A preload model comes back with its new settings (id 0: nobody waits on the answer).
  if (d.config.preload && !d.retired && !d.shuttingDown && !d.waiting.length) d.waiting.push({ id: 0, kind: 'preload', at: now });
}

/** The waiters want the model: admit them if it is ready, else move it towards ready. */
function serve(d: ModelState, now: number, fx: ActorEffect[]): void {
  // Ready, the model holds its room itself: the grant is used up, also when every waiter has left.
  if (isReady(d)) d.reserved = false;
  if (!d.waiting.length) return;
  if (isReady(d)) {
    const ops = d.waiting.filter((w) => w.kind !== 'request').map((w) => w.id);
    const left = [];
    for (const w of d.waiting) {
      if (w.kind !== 'request') continue;
      if (d.inflight < d.config.maxConcurrency) admit(d, w, now, fx);
      else left.push(w);
    }
    d.waiting = left;
    if (ops.length) fx.push({ kind: 'resolve', ids: ops.filter((id) => id !== 0) });
    return;
  }
  if (isRemote(d)) {
    if (!d.checking && d.proc.process !== 'running') {
      d.checking = true;
      fx.push({ kind: 'check-remote' });
    }
    return;
  }
  if (d.retired && d.proc.process !== 'running' && d.proc.process !== 'starting') return rejectAll(d, fx, removedError(d));
  if (backingOff(d, now)) return rejectAll(d, fx, backoffError(d, now));
  if (!isCounted(d)) return; // waits for the coordinator to grant room
  if (d.proc.process === 'stopped' || d.proc.process === 'failed') {
    d.spawnError = undefined;
    d.startError = undefined;
    d.startDeadline = now + d.config.startTimeoutMs;
    d.probeDelayMs = 10;
    move(d, { type: 'start' }, now, fx, reasonOf(d));
  } else if (d.proc.process === 'running' && d.proc.memory === 'unloaded') {
    d.loadingSince = now;
    move(d, { type: 'load' }, now, fx, reasonOf(d));
  }
}

const reasonOf = (d: ModelState): string => {
  const kinds = new Set(d.waiting.map((w) => w.kind));
  return kinds.has('request') ? 'request' : kinds.has('preload') && !kinds.has('start') && !kinds.has('load') ? 'preload' : 'operator';
};

/**
 * One move through the process/memory table, with everything that follows from it: the failure
 * record, ready and up times, transitions to publish, and the table's own effects.
 */
function move(d: ModelState, event: MachineEvent, now: number, fx: ActorEffect[], reason = d.reason, exit?: { exit: ExitInfo; tail: string[] }): boolean {
  const result = transition(d.proc, event);
  if (result.outcome === 'refused') {
    fx.push({ kind: 'bug', message: `model ${d.name}: ${result.why} (refused, state kept)` });
    return false;
  }
  if (result.outcome === 'ignored') return false;
  const before = d.proc;
  const after = (d.proc = result.state);
  d.reason = reason;
  let emitReason = reason;
  if (after.process === 'failed' && before.process !== 'failed' && !isRemote(d)) {
    recordFailure(d, before, event, now, fx, exit);
    emitReason = failureKindReason[failureKind(before, event)];
  }
  if (after.process === 'running' && before.process !== 'running') d.readyAt = now;
  const upNow = after.process === 'running' && after.memory === 'loaded';
  if (upNow && !(before.process === 'running' && before.memory === 'loaded')) {
    d.upAt = now;
    d.servedAtUp = d.served;
    if (d.inflight === 0) d.idleSince = now; // the idle clock of a model nobody uses starts when it comes up
  }
  if (after.process === 'failed' || after.process === 'stopped' || after.process === 'stopping') d.reserved = false;
  if ((after.process === 'failed' || after.process === 'stopped') && d.placement) {
    d.lastDevices = d.placement.devices; // the GPUs are free again; the next start prefers them
    d.placement = undefined;
  }
  const at = new Date(now).toISOString();
  // A start or wake-up says where it was placed and why.
  const placed = d.placement && (after.process === 'starting' || after.memory === 'loading') ? { gpus: d.placement.devices, placement: d.placement.reason } : {};
  if (before.process !== after.process) fx.push({ kind: 'publish', transition: { model: d.name, axis: 'process', from: before.process, to: after.process, reason: emitReason, at, ...placed } });
  if (before.memory !== after.memory) fx.push({ kind: 'publish', transition: { model: d.name, axis: 'memory', from: before.memory, to: after.memory, reason: emitReason, at, ...placed } });
  for (const effect of result.effects) {
    if (effect.kind === 'terminate') d.killBoundAt = now + d.config.stopTimeoutMs + KILL_GRACE_MS;
    fx.push(effect);
  }
  return true;
}

function recordFailure(d: ModelState, before: ModelState['proc'], event: MachineEvent, now: number, fx: ActorEffect[], facts?: { exit: ExitInfo; tail: string[] }): void {
  const kind = failureKind(before, event);
  const tail = facts?.tail ?? [];
  const message = describeFailure(kind, d, { exit: facts?.exit, tail, spawnError: d.spawnError });
  d.lastError = { message, exitCode: facts?.exit.code ?? null, signal: facts?.exit.signal ?? null, logTail: tail, at: new Date(now).toISOString() };
  d.reserved = false;
  if (kind === 'stuck') {
    // Given up on, not a failed start: the next request may start it again. If it was a start that
    // timed out, its waiters still learn that.
    if (before.stopTo === 'failed') rejectAll(d, fx, new HubError('model_start_timeout', describeFailure('timeout', d, { tail })));
    return;
  }
  d.failures++;
  // A crash of a model that was serving may be a one-off: the first one restarts at once.
  const delay = backoffMs(kind === 'crash' ? d.failures - 1 : d.failures);
  d.retryAt = now + delay;
  if (kind === 'crash') return;
  // The waiters learn the cause at once; a short Retry-After, since the backoff protects the machine, not the client's patience.
  d.startError = kind === 'timeout' ? new HubError('model_start_timeout', message) : new HubError('model_start_failed', message, { retryAfterMs: Math.min(Math.max(delay, 1000), RETRY_AFTER_CAP_MS) });
  rejectAll(d, fx, d.startError);
}

/** The longest Retry-After a failed start asks clients for: SDKs obey it, and the cause will not change by waiting. */
export const RETRY_AFTER_CAP_MS = 1000;

function rejectAll(d: ModelState, fx: ActorEffect[], error: HubError): void {
  const ids = d.waiting.map((w) => w.id);
  d.waiting = [];
  d.owed = [];
  if (ids.length) fx.push({ kind: 'reject', ids, error });
}

function backoffError(d: ModelState, now: number): HubError {
  const wait = d.retryAt - now;
  return new HubError('model_start_failed', `${d.lastError!.message}; retrying is allowed in ${Math.ceil(wait / 1000)}s`, { retryAfterMs: Math.min(wait, RETRY_AFTER_CAP_MS) });
}

const shuttingDownError = () => new HubError('hub_shutting_down', 'the hub is shutting down and takes no new requests; retry once it is back');

const removedError = (d: ModelState) => new HubError('model_not_found', `model ${d.name} was removed from the config by a reload; send the request to another model`, { headers: { 'x-should-retry': 'false' } });
