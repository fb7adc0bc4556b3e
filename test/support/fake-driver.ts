// A Driver with fake processes and a fake backend, so the scheduler's state machines can be driven
// fast and deterministically: nothing is spawned, nothing listens, every call is recorded. With a
// FakeClock, each model's backend can be made slow or stubborn (slow start or stop, SIGTERM ignored,
// slow or hanging memory calls, a spawn that throws) to reproduce the interleavings real ones cause.
import type { BackendAdapter } from '../../lib/backends/index.js';
import { tqdmStage } from '../../lib/backends/adapter.js';
import type { ModelConfig } from '../../lib/config/types.js';
import type { ExitInfo, SpawnSpec } from '../../lib/runtime/child.js';
import type { Driver, ProcessHandle } from '../../lib/runtime/driver.js';
import { realClock, type Clock } from '../../lib/runtime/clock.js';

export interface Behaviour {
  /** From spawn until the backend answers its readiness probe. */
  readyAfterMs: number;
  /** From SIGTERM until it exits (SIGKILL at stop_timeout ends it anyway). */
  stopTakesMs: number;
  /** Only SIGKILL (at stop_timeout) ends it. */
  ignoresTerm: boolean;
  /** How long a memory call takes; Infinity: it hangs until the process dies. */
  memoryTakesMs: number;
  /** The next spawn throws, as when the log folder cannot be created. */
  spawnThrows: boolean;
  /** Exits with this code before it is ready. */
  failsToStart?: number;
  /** Survives even SIGKILL (a process in uninterruptible sleep): it never exits. */
  unkillable?: boolean;
}

const defaults = (): Behaviour => ({ readyAfterMs: 0, stopTakesMs: 0, ignoresTerm: false, memoryTakesMs: 0, spawnThrows: false });

export class FakeProcess implements ProcessHandle {
  exit?: ExitInfo;
  readonly exited: Promise<ExitInfo>;
  readonly spawnedAt: number;
  /** Weights in memory (the backend's own view). */
  loaded = true;
  signals: string[] = [];
  outputChunks = 0;
  private outputListeners: Array<(text: string) => void> = [];
  private readonly outputTaps = new Set<(text: string) => void>();
  private resolveExit!: (e: ExitInfo) => void;

  constructor(readonly spec: SpawnSpec, readonly pid: number, readonly model: string, private readonly clock: Clock, readonly behaviour: Behaviour, private readonly onExit: (p: FakeProcess) => void) {
    this.spawnedAt = clock.now();
    this.exited = new Promise((r) => { this.resolveExit = r; });
    if (behaviour.failsToStart !== undefined) clock.after(behaviour.readyAfterMs / 2, () => this.crash(behaviour.failsToStart));
  }
  logTail(): string[] {
    return [`fake ${this.model} log`];
  }
  onNextOutput(listener: (text: string) => void): () => void {
    this.outputListeners.push(listener);
    return () => { this.outputListeners = this.outputListeners.filter((l) => l !== listener); };
  }
  onOutput(listener: (text: string) => void): () => void {
    this.outputTaps.add(listener);
    return () => this.outputTaps.delete(listener);
  }
  /** Simulates output (a server saying it listens, a progress bar redrawn). */
  print(text = 'output\n'): void {
    this.outputChunks++;
    for (const tap of this.outputTaps) tap(text);
    const listeners = this.outputListeners;
    this.outputListeners = [];
    for (const l of listeners) l(text);
  }
  /** Simulates the process dying on its own. */
  crash(code = 1): void {
    this.die({ code, signal: null });
  }
  stop(timeoutMs: number): Promise<ExitInfo> {
    if (this.exit || this.signals.length) return this.exited;
    this.signals.push('SIGTERM');
    const { ignoresTerm, stopTakesMs } = this.behaviour;
    const killed = ignoresTerm || stopTakesMs > timeoutMs;
    const ms = killed ? timeoutMs : stopTakesMs;
    const end = () => {
      if (killed) this.signals.push('SIGKILL');
      if (!this.behaviour.unkillable) this.die({ code: null, signal: killed ? 'SIGKILL' : 'SIGTERM' });
    };
    if (ms <= 0) end();
    else this.clock.after(ms, end);
    return this.exited;
  }
  private die(e: ExitInfo): void {
    if (this.exit) return;
    this.exit = e;
    this.onExit(this);
    this.resolveExit(e);
  }
}

export interface FakeDriver extends Driver {
  /** Every process ever spawned, in order. */
  spawned: FakeProcess[];
  /** The live process of a model. */
  live(model: string): FakeProcess | undefined;
  /** Memory calls in order, e.g. "unload a", "load b". */
  calls: string[];
  /** Spawns made while another process of the same model was still alive (must stay empty). */
  duplicates: string[];
  /** How a model's backend behaves from now on (mutable). */
  behaviour(model: string): Behaviour;
  /** Ports that something outside the hub holds. */
  takenPorts: Set<number>;
  /** Called whenever a fake process exits. */
  onExit(fn: (p: FakeProcess) => void): void;
  /** While set, memory calls wait for it (to catch requests arriving mid-unload or mid-load). */
  memoryGate?: Promise<void>;
  /** Makes memory calls wait until the returned function is called. */
  holdMemory(): () => void;
  /** Models whose readiness stays false until released with `release(model)`. */
  hold(model: string): void;
  release(model: string): void;
}

export function fakeDriver(options: { memoryControl?: (m: ModelConfig) => boolean; clock?: Clock } = {}): FakeDriver {
  const clock = options.clock ?? realClock;
  const spawned: FakeProcess[] = [];
  const held = new Set<string>();
  const calls: string[] = [];
  const duplicates: string[] = [];
  const behaviours = new Map<string, Behaviour>();
  const exitHooks: Array<(p: FakeProcess) => void> = [];
  const takenPorts = new Set<number>();
  let nextPid = 1000;
  const behaviour = (model: string) => behaviours.get(model) ?? behaviours.set(model, defaults()).get(model)!;
  const modelOf = (spec: SpawnSpec) => spec.model;
  const live = (model: string) => [...spawned].reverse().find((p) => p.model === model && !p.exit);
  const find = (base: string) => spawned.find((p) => !p.exit && base.endsWith(`:${/--port (\d+)/.exec(p.spec.argv.join(' '))?.[1]}`));

  /** A memory call: takes its time on the clock; the connection drops if the process dies first. */
  const memoryCall = (p: FakeProcess, what: 'load' | 'unload') =>
    new Promise<void>((resolve, reject) => {
      calls.push(`${what} ${p.model}`);
      void p.exited.then(() => reject(new Error('socket hang up')));
      const finish = () => void Promise.resolve(driver.memoryGate).then(() => { if (!p.exit) { p.loaded = what === 'load'; resolve(); } });
      const ms = p.behaviour.memoryTakesMs;
      if (ms === Infinity) return;
      if (ms <= 0) finish();
      else clock.after(ms, finish);
    });

  const withMemory: BackendAdapter = {
    kind: 'fake',
    progress: tqdmStage, // reads what a test prints the way vLLM's bars are read
    readyLine: /^fake ready$/m, // a line a test prints to say it serves (no probe needed)
    isReady: async (endpoint) => {
      const p = find(endpoint.base);
      return Boolean(p && !held.has(p.model) && p.behaviour.failsToStart === undefined && clock.now() >= p.spawnedAt + p.behaviour.readyAfterMs);
    },
    memory: {
      paths: [],
      unload: async (endpoint) => memoryCall(live404(endpoint.base), 'unload'),
      load: async (endpoint) => memoryCall(live404(endpoint.base), 'load'),
      isLoaded: async (endpoint) => find(endpoint.base)?.loaded,
    },
  };
  const live404 = (base: string) => {
    const p = find(base);
    if (!p) throw new Error('connect ECONNREFUSED');
    return p;
  };
  const withoutMemory: BackendAdapter = { kind: 'fake', isReady: withMemory.isReady, progress: tqdmStage };

  const driver: FakeDriver = {
    clock,
    spawned,
    calls,
    duplicates,
    live,
    behaviour,
    onExit: (fn) => exitHooks.push(fn),
    holdMemory: () => {
      let open!: () => void;
      driver.memoryGate = new Promise((r) => { open = r; });
      return open;
    },
    hold: (m) => held.add(m),
    release: (m) => held.delete(m),
    spawn(spec) {
      const model = modelOf(spec);
      const b = behaviour(model);
      if (b.spawnThrows) {
        b.spawnThrows = false;
        throw new Error(`EACCES: permission denied, mkdir '/var/log/${model}'`);
      }
      if (live(model)) duplicates.push(`${model}: spawned while pid ${live(model)!.pid} is alive`);
      const p = new FakeProcess(spec, nextPid++, model, clock, b, (dead) => exitHooks.forEach((fn) => fn(dead)));
      spawned.push(p);
      return p;
    },
    adapter: (m) => ((options.memoryControl?.(m) ?? true) ? withMemory : withoutMemory),
    portTaken: async (port) => takenPorts.has(port),
    findFreePort: async (from, avoid) => {
      let port = from;
      while (avoid.has(port) || takenPorts.has(port)) port++;
      return port;
    },
    describePortHolder: async (port) => (takenPorts.has(port) ? 'pid 4242 (some-other-server)' : undefined),
    takenPorts,
  };
  return driver;
}
