// The per-model state machine as a pure function: (state, event) → (state, effects). It knows nothing
// of processes, HTTP or time; the executor (executor.ts) carries out the effects and reports what
// happened as events. Every event names the process generation it belongs to, so a late report about
// an old child (its exit, a readiness probe, a memory call) can never move the current one.
//
// The table below is the whole contract: an event that is not listed for a state is a bug and is
// refused (the state is left as it was); an event listed as `ignore` is a benign race (a readiness
// probe that answered just as a stop began) and changes nothing.

export type ProcessState = 'stopped' | 'starting' | 'running' | 'stopping' | 'failed';
export type MemoryState = 'unloaded' | 'loading' | 'loaded' | 'unloading';

export interface MachineState {
  process: ProcessState;
  memory: MemoryState;
  /** Generation of the current (or last) child; every spawn takes the next one. */
  gen: number;
  /** Where `stopping` ends once the child exits: `stopped` when asked to stop, `failed` after a start timeout. */
  stopTo: 'stopped' | 'failed';
}

/** Requests to move (issued by the executor's operations). */
export type Command = { type: 'start' } | { type: 'stop' } | { type: 'load' } | { type: 'unload' } | { type: 'remote-up' } | { type: 'remote-down' };
/** Reports of what happened to a generation's child. */
export type Observation = {
  type: 'spawn-failed' | 'ready' | 'start-timeout' | 'exited' | 'exit-overdue' | 'loaded' | 'load-failed' | 'unloaded' | 'unload-failed';
  gen: number;
};
export type MachineEvent = Command | Observation;

export type Effect =
  /** Spawn the child of generation `gen` and watch it become ready. */
  | { kind: 'spawn'; gen: number }
  /** SIGTERM the child's process group, SIGKILL after stop_timeout. */
  | { kind: 'terminate'; gen: number }
  /** Call the backend's memory control. */
  | { kind: 'memory'; op: 'load' | 'unload'; gen: number }
  /** The child is gone: drop kept-alive connections to it. */
  | { kind: 'drop-connections' };

export type Step =
  | { outcome: 'applied'; state: MachineState; effects: Effect[] }
  | { outcome: 'ignored'; why: string }
  | { outcome: 'refused'; why: string };

export const initialState = (): MachineState => ({ process: 'stopped', memory: 'unloaded', gen: 0, stopTo: 'stopped' });

type Rule = (s: MachineState, e: MachineEvent) => Step;

const to = (s: MachineState, change: Partial<MachineState>, effects: Effect[] = []): Step => ({ outcome: 'applied', state: { ...s, ...change }, effects });

/** TABLE[event][process state] (memory conditions are checked inside the rule). */
const TABLE: Record<MachineEvent['type'], Partial<Record<ProcessState, Rule | 'ignore'>>> = {
  start: {
    stopped: (s) => to(s, { process: 'starting', memory: 'unloaded', gen: s.gen + 1, stopTo: 'stopped' }, [{ kind: 'spawn', gen: s.gen + 1 }]),
    failed: (s) => to(s, { process: 'starting', memory: 'unloaded', gen: s.gen + 1, stopTo: 'stopped' }, [{ kind: 'spawn', gen: s.gen + 1 }]),
  },
  stop: {
    starting: (s) => to(s, { process: 'stopping', stopTo: 'stopped' }, [{ kind: 'terminate', gen: s.gen }]),
    running: (s) => to(s, { process: 'stopping', stopTo: 'stopped', memory: s.memory === 'unloaded' ? 'unloaded' : 'unloading' }, [{ kind: 'terminate', gen: s.gen }]),
    stopping: 'ignore',
    stopped: 'ignore',
    failed: 'ignore',
  },
  'spawn-failed': {
    starting: (s) => to(s, { process: 'failed' }),
  },
  ready: {
    starting: (s) => to(s, { process: 'running', memory: 'loaded' }), // servers start with their weights in memory
    stopping: 'ignore',
  },
  'start-timeout': {
    starting: (s) => to(s, { process: 'stopping', stopTo: 'failed' }, [{ kind: 'terminate', gen: s.gen }]),
    stopping: 'ignore',
  },
  exited: {
    starting: (s) => to(s, { process: 'failed', memory: 'unloaded' }, [{ kind: 'drop-connections' }]),
    running: (s) => to(s, { process: 'failed', memory: 'unloaded' }, [{ kind: 'drop-connections' }]), // a crash
    stopping: (s) => to(s, { process: s.stopTo, memory: 'unloaded' }, [{ kind: 'drop-connections' }]),
    // The child outlived SIGKILL (uninterruptible sleep) and was given up on; its exit may still come.
    failed: 'ignore',
  },
  // Still there after SIGKILL and a grace period: give up on it so the model, shutdown and close go on.
  'exit-overdue': {
    stopping: (s) => to(s, { process: 'failed', memory: 'unloaded' }, [{ kind: 'drop-connections' }]),
    stopped: 'ignore',
    failed: 'ignore',
  },
  load: {
    running: (s) => (s.memory === 'unloaded' ? to(s, { memory: 'loading' }, [{ kind: 'memory', op: 'load', gen: s.gen }]) : refuse(s, 'load')),
  },
  loaded: memoryResult('loading', 'loaded'),
  'load-failed': memoryResult('loading', 'unloaded'),
  unload: {
    running: (s) => (s.memory === 'loaded' ? to(s, { memory: 'unloading' }, [{ kind: 'memory', op: 'unload', gen: s.gen }]) : refuse(s, 'unload')),
  },
  unloaded: memoryResult('unloading', 'unloaded'),
  'unload-failed': memoryResult('unloading', 'loaded'),
  // Remote models have no child: "running" means "answered its health check".
  'remote-up': {
    stopped: (s) => to(s, { process: 'running', memory: 'loaded' }),
    failed: (s) => to(s, { process: 'running', memory: 'loaded' }),
    running: 'ignore',
  },
  'remote-down': {
    stopped: (s) => to(s, { process: 'failed', memory: 'unloaded' }),
    running: (s) => to(s, { process: 'failed', memory: 'unloaded' }),
    failed: 'ignore',
  },
};

/** A memory call finished: it applies while the process runs; once a stop or crash took over, it is moot. */
function memoryResult(from: MemoryState, result: MemoryState): Partial<Record<ProcessState, Rule | 'ignore'>> {
  const rule: Rule = (s, e) => (s.memory === from ? to(s, { memory: result }) : refuse(s, e.type));
  return { running: rule, stopping: 'ignore', stopped: 'ignore', failed: 'ignore' };
}

function refuse(s: MachineState, type: string): Step {
  return { outcome: 'refused', why: `${type} is not valid in process ${s.process} / memory ${s.memory}` };
}

export function transition(s: MachineState, e: MachineEvent): Step {
  if ('gen' in e && e.gen !== s.gen) return { outcome: 'ignored', why: `${e.type} of generation ${e.gen}, the current one is ${s.gen}` };
  const rule = TABLE[e.type][s.process];
  if (rule === undefined) return refuse(s, e.type);
  if (rule === 'ignore') return { outcome: 'ignored', why: `${e.type} while ${s.process}` };
  return rule(s, e);
}
