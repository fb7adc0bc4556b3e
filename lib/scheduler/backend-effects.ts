// What an actor does to its backend and asks of it: spawn the process, stop it, probe it for
// readiness, load or unload its memory, check a remote's health. Each of these ends by sending what
// came of it to the actor as an event (spawned, exited, probed, memory-done, remote-checked); none
// changes the model's state itself, so every change still goes through the actor's step.
import { within } from '../runtime/clock.js';
import type { ProcessHandle } from '../runtime/driver.js';
import type { ActorContext, ModelActor } from './actor.js';
import { SlotKeeper } from './slot-keeper.js';
import { planSpawn, type SpawnPlan } from './spawn-plan.js';

/** The least time between two readiness probes when output makes them come early. */
const PROBE_SPACING_MS = 2;

/** One per actor: its child process, and the calls that reach its backend. */
export class BackendEffects {
  /** The process spawned last, and the generation it was spawned for. */
  current?: { gen: number; handle: ProcessHandle };
  /** When the last readiness probe was sent, and how much the child had printed by then (see probe). */
  private lastProbe?: { at: number; outputChunks: number | undefined };
  /** Generations whose terminate came while their spawn was still being prepared. */
  private cancelledSpawns = new Set<number>();
  private readonly slots: SlotKeeper;

  constructor(private readonly actor: ModelActor, private readonly ctx: ActorContext) {
    this.slots = new SlotKeeper(() => actor.name, (message) => ctx.notice(message));
  }

  async spawn(gen: number): Promise<void> {
    let plan: SpawnPlan;
    try {
      await this.ctx.predecessor(this.actor); // removed and added back: the old one goes first
      plan = await this.ctx.portLock(() => planSpawn(this.spawnTarget(), this.ctx, this.actor.state.reason));
    } catch (err) {
      plan = { error: `${(err as Error).message}; fix that and send the request again` };
    }
    if (!('error' in plan) && this.actor.state.config.keepCache) plan.spec.argv = [...plan.spec.argv, ...(await this.slots.prepare(this.actor.state.config))];
    if (this.cancelledSpawns.delete(gen)) return this.actor.send({ type: 'exited', gen, exit: { code: null, signal: 'SIGTERM' }, tail: [] });
    let handle: ProcessHandle;
    try {
      if ('error' in plan) throw Object.assign(new Error(plan.error), { advice: true });
      handle = this.ctx.driver.spawn(plan.spec);
    } catch (err) {
      this.current = undefined; // the failure must not quote the previous run's log
      const e = err as Error & { advice?: boolean };
      return this.actor.send({ type: 'spawn-failed', gen, message: e.advice ? e.message : `${e.message}; fix that and send the request again` });
    }
    this.current = { gen, handle };
    void handle.exited.then((exit) => this.actor.send({ type: 'exited', gen, exit, tail: handle.logTail(20) }));
    this.actor.send({ type: 'spawned', gen });
  }

  /** What planSpawn needs; a port it moves goes through the step like any other change. */
  private spawnTarget() {
    const actor = this.actor;
    return {
      name: this.actor.name,
      get config() {
        return actor.state.config;
      },
      remote: false,
      target: this.actor.target,
      shownUrl: this.actor.shownUrl,
      logFile: this.actor.logFile,
      adapter: this.actor.adapter,
      backendModel: this.actor.backendModel,
      gpus: this.actor.state.placement?.devices,
      movePort: (port: number) => this.actor.send({ type: 'port-moved', port }),
    };
  }

  terminate(gen: number): void {
    const child = this.current;
    if (child?.gen === gen && !child.handle.exit) {
      const stopMs = this.actor.state.config.stopTimeoutMs;
      if (!this.actor.state.config.keepCache) return void child.handle.stop(stopMs);
      // keep_cache: the slots are saved first, within half of stop_timeout (the stop's own bound
      // covers both), then the process gets what is left to exit.
      const began = this.ctx.driver.clock.now();
      void this.slots.save({ base: this.actor.target, agent: this.actor.agent }, gen, stopMs / 2).finally(() => {
        if (!child.handle.exit) void child.handle.stop(Math.max(0, stopMs - (this.ctx.driver.clock.now() - began)));
      });
    } else if (child?.gen !== gen) this.cancelledSpawns.add(gen); // still being prepared: it will not be spawned
  }

  async probe(gen: number, delayMs: number): Promise<void> {
    const clock = this.ctx.driver.clock;
    let announced = false;
    const child = this.current?.gen === gen ? this.current.handle : undefined;
    if (delayMs > 0) {
      // Probe when the delay is up, or as soon as the backend prints something: servers announce that
      // they listen, and that line is the moment to look (no probe interval is added to the cold start).
      // Probes stay PROBE_SPACING_MS apart, so a backend that prints while it loads is not flooded.
      const earliest = (this.lastProbe?.at ?? -Infinity) + PROBE_SPACING_MS;
      const soon = () => Math.min(delayMs, Math.max(0, earliest - clock.now()));
      const printedSinceLastProbe = child?.outputChunks !== undefined && child.outputChunks !== this.lastProbe?.outputChunks;
      const readyLine = this.actor.adapter.readyLine;
      await new Promise<void>((resolve) => {
        let timer = clock.after(printedSinceLastProbe ? soon() : delayMs, () => { cancel?.(); resolve(); });
        const cancel = printedSinceLastProbe ? undefined : child?.onNextOutput?.((text) => {
          timer.cancel();
          if (readyLine?.test(text)) announced = true;
          const wait = announced ? 0 : soon();
          if (wait > 0) timer = clock.after(wait, resolve);
          else resolve(); // a timer of 0 still costs the next turn of timers (~1 ms): look now
        });
      });
    }
    if (this.actor.state.proc.gen !== gen || this.actor.state.proc.process !== 'starting') return;
    this.lastProbe = { at: clock.now(), outputChunks: child?.outputChunks };
    const endpoint = { base: this.actor.target, agent: this.actor.agent };
    // A server that printed its ready line is ready: no round trip to ask it. The line may also come
    // while a probe is on its way (a probe is sent every health.interval while it loads): whichever
    // says ready first.
    const line = announced ? undefined : readyLineOf(child, this.actor.adapter.readyLine);
    const asked = this.actor.adapter.isReady(endpoint, this.actor.backendModel).catch(() => false);
    const ready = announced || (await (line ? Promise.race([asked, line.seen]) : asked));
    line?.cancel();
    // keep_cache: the saved slots go back in before the first request is let through.
    if (ready && this.actor.state.config.keepCache) await this.slots.restore(endpoint, gen, this.actor.state.startDeadline - clock.now());
    this.actor.send({ type: 'probed', gen, ready });
  }

  async checkRemote(): Promise<void> {
    const config = this.actor.state.config;
    const up = await this.actor.adapter.isReady({ base: config.url!, apiKey: config.apiKey }, this.actor.backendModel).catch(() => false);
    this.actor.send({ type: 'remote-checked', up });
  }

  async callMemory(op: 'load' | 'unload', gen: number): Promise<void> {
    const control = this.actor.adapter.memory!;
    const endpoint = { base: this.actor.target, agent: this.actor.agent };
    const limitMs = this.actor.state.config.startTimeoutMs;
    let error: string | undefined;
    try {
      const answered = await within(this.ctx.driver.clock, limitMs, (async () => {
        await control[op](endpoint, this.actor.backendModel);
        const loaded = await control.isLoaded(endpoint, this.actor.backendModel);
        if (loaded === (op === 'unload')) throw new Error(`it still reports its memory as ${op === 'unload' ? 'loaded' : 'unloaded'}`);
        return true;
      })());
      if (!answered) error = `no answer within ${limitMs / 1000}s`;
    } catch (err) {
      error = (err as Error).message;
    }
    this.actor.send({ type: 'memory-done', gen, op, error });
  }
}

/** Resolves true when the child prints a line matching `pattern` (other output is waited past). */
function readyLineOf(child: ProcessHandle | undefined, pattern: RegExp | undefined): { seen: Promise<boolean>; cancel(): void } | undefined {
  if (!child?.onNextOutput || !pattern) return undefined;
  let cancel = () => {};
  const seen = new Promise<boolean>((resolve) => {
    const wait = () => {
      cancel = child.onNextOutput!((text) => (pattern.test(text) ? resolve(true) : wait()));
    };
    wait();
  });
  return { seen, cancel: () => cancel() };
}
