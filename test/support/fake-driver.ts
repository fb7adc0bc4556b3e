// A Driver with fake processes and a fake backend, so the scheduler's state machines can be driven
// fast and deterministically: nothing is spawned, nothing listens, every call is recorded.
import type { BackendAdapter } from '../../lib/backends/index.js';
import type { ModelConfig } from '../../lib/config/types.js';
import type { ExitInfo, SpawnSpec } from '../../lib/runtime/child.js';
import type { Driver, ProcessHandle } from '../../lib/runtime/driver.js';
import { realClock, type Clock } from '../../lib/runtime/clock.js';

export class FakeProcess implements ProcessHandle {
  readonly pid: number;
  exit?: ExitInfo;
  readonly exited: Promise<ExitInfo>;
  /** Weights in memory (the backend's own view). */
  loaded = true;
  private resolveExit!: (e: ExitInfo) => void;

  constructor(readonly spec: SpawnSpec, pid: number, readonly model: string) {
    this.pid = pid;
    this.exited = new Promise((r) => { this.resolveExit = r; });
  }
  logTail(): string[] {
    return [`fake ${this.model} log`];
  }
  /** Simulates the process dying on its own. */
  crash(code = 1): void {
    this.die({ code, signal: null });
  }
  stop(): Promise<ExitInfo> {
    this.die({ code: null, signal: 'SIGTERM' });
    return this.exited;
  }
  private die(e: ExitInfo): void {
    if (this.exit) return;
    this.exit = e;
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
  /** While set, memory calls wait for it (to catch requests arriving mid-unload or mid-load). */
  memoryGate?: Promise<void>;
  /** Makes memory calls wait until the returned function is called. */
  holdMemory(): () => void;
  /** Models whose readiness stays false until released with `release(model)`. */
  hold(model: string): void;
  release(model: string): void;
}

export function fakeDriver(options: { memoryControl?: (m: ModelConfig) => boolean; clock?: Clock } = {}): FakeDriver {
  const spawned: FakeProcess[] = [];
  const held = new Set<string>();
  const calls: string[] = [];
  let nextPid = 1000;
  const modelOf = (spec: SpawnSpec) => /--model (\S+)/.exec(spec.argv.join(' '))?.[1] ?? spec.logFile;
  const live = (model: string) => [...spawned].reverse().find((p) => p.model === model && !p.exit);
  const find = (base: string) => spawned.find((p) => !p.exit && base.endsWith(`:${/--port (\d+)/.exec(p.spec.argv.join(' '))?.[1]}`));

  const withMemory: BackendAdapter = {
    kind: 'fake',
    isReady: async (endpoint) => {
      const p = find(endpoint.base);
      return Boolean(p && !held.has(p.model));
    },
    memory: {
      unload: async (endpoint) => { const p = find(endpoint.base)!; calls.push(`unload ${p.model}`); await driver.memoryGate; p.loaded = false; },
      load: async (endpoint) => { const p = find(endpoint.base)!; calls.push(`load ${p.model}`); await driver.memoryGate; p.loaded = true; },
      isLoaded: async (endpoint) => find(endpoint.base)?.loaded,
    },
  };
  const withoutMemory: BackendAdapter = { kind: 'fake', isReady: withMemory.isReady };

  const driver: FakeDriver = {
    clock: options.clock ?? realClock,
    spawned,
    calls,
    live,
    holdMemory: () => {
      let open!: () => void;
      driver.memoryGate = new Promise((r) => { open = r; });
      return open;
    },
    hold: (m) => held.add(m),
    release: (m) => held.delete(m),
    spawn(spec) {
      const p = new FakeProcess(spec, nextPid++, modelOf(spec));
      spawned.push(p);
      return p;
    },
    adapter: (m) => ((options.memoryControl?.(m) ?? true) ? withMemory : withoutMemory),
    portInUse: async () => false,
  };
  return driver;
}
