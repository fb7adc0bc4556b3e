// A model's load as it goes, for whoever waits for it: the stage and fraction the backend's own log
// shows (its adapter reads the lines: vLLM's and SGLang's progress bars, llama.cpp's stage lines, the
// demo backend's bar), and an estimate from the model's usual load time where the log tells less
// (ETA = usual duration − elapsed). One watch per actor, fed after every step: it runs while the model
// starts (spawn to ready) or wakes (a memory load), and reports at most a few times a second.
import type { LoadStage } from '../backends/adapter.js';
import type { Clock, Timer } from '../runtime/clock.js';

export interface LoadProgress {
  model: string;
  /** `start`: spawn to ready; `wake`: loading the weights of a running process. */
  what: 'start' | 'wake';
  stage: string;
  /** 0–1, from the backend's log (`source: backend`) or from the usual load time (`estimate`); null when neither tells. */
  fraction: number | null;
  /** Milliseconds left by the usual load time (or, without one, by the backend's own fraction); null when unknown. */
  eta_ms: number | null;
  elapsed_ms: number;
  source: 'backend' | 'estimate' | 'none';
}

/** At most this often per model (a progress bar redraws ten times a second). */
const PROGRESS_EVERY_MS = 250;
/** Without news from the backend, the estimate is sent again this often. */
const TICK_MS = 500;
/** A line longer than this without an end is not a progress line: its start is dropped. */
const MAX_LINE = 4096;

export interface ProgressHost {
  readonly model: string;
  readonly clock: Clock;
  /** The adapter's reader of log lines, where it has one. */
  parse(line: string): LoadStage | undefined;
  /** The model's usual duration for this kind of load, where known. */
  usualMs(what: 'start' | 'wake'): number | undefined;
  emit(progress: LoadProgress): void;
}

type Tap = (listener: (text: string) => void) => () => void;

interface Run {
  what: 'start' | 'wake';
  since: number;
  stage?: LoadStage;
  /** When the backend first named the current stage (its fraction is extrapolated from then). */
  stageSince?: number;
  partial: string;
  lastEmit: number;
  untap?: () => void;
  timer?: Timer;
  /** A report held back by the rate limit, due when it may go. */
  trailing?: Timer;
}

export class ProgressWatch {
  private run?: Run;

  constructor(private readonly host: ProgressHost) {}

  /** What the model does now (after a step): a load under way since `since`, or nothing. */
  sync(what: 'start' | 'wake' | undefined, since: number | undefined, tap: Tap | undefined): void {
    if (what === undefined || since === undefined) return this.stop();
    if (this.run?.what !== what || this.run.since !== since) {
      this.stop();
      this.run = { what, since, partial: '', lastEmit: -Infinity };
      this.arm();
      this.emit(true);
    }
    if (!this.run.untap && tap) this.run.untap = tap((text) => this.read(text));
  }

  /** Where the load is now; undefined when none is under way. */
  get current(): LoadProgress | undefined {
    return this.run && this.snapshot(this.run);
  }

  stop(): void {
    this.run?.untap?.();
    this.run?.timer?.cancel();
    this.run?.trailing?.cancel();
    this.run = undefined;
  }

  private arm(): void {
    const run = this.run!;
    run.timer = this.host.clock.after(TICK_MS, () => {
      if (this.run !== run) return;
      this.emit(false);
      this.arm();
    });
  }

  private read(text: string): void {
    const run = this.run;
    if (!run) return;
    const lines = (run.partial + text).split(/\r\n|\r|\n/);
    const last = lines.pop()!;
    run.partial = last.length > MAX_LINE ? '' : last;
    // A bar is redrawn as "\r<bar>" and ends only at the next redraw: its latest state is read too.
    if (run.partial) lines.push(run.partial);
    let changed = false;
    for (const line of lines) {
      const stage = this.host.parse(line);
      if (!stage) continue;
      if (stage.stage !== run.stage?.stage) {
        changed = true;
        run.stageSince = this.host.clock.now();
      }
      run.stage = stage;
    }
    if (changed || lines.length) this.emit(changed);
  }

  private emit(stageChanged: boolean): void {
    const run = this.run!;
    const now = this.host.clock.now();
    // A new stage is news even right after the last report; still, never more than ten a second.
    const gap = stageChanged ? PROGRESS_EVERY_MS / 2.5 : PROGRESS_EVERY_MS;
    if (now - run.lastEmit < gap) {
      // Too soon: the latest state goes out once the gap is over (a bar's last redraw is not lost).
      run.trailing ??= this.host.clock.after(run.lastEmit + gap - now, () => {
        run.trailing = undefined;
        if (this.run === run) this.emit(stageChanged);
      });
      return;
    }
    run.trailing?.cancel();
    run.trailing = undefined;
    run.lastEmit = now;
    this.host.emit(this.snapshot(run));
  }

  private snapshot(run: Run): LoadProgress {
    const elapsed = Math.max(0, this.host.clock.now() - run.since);
    const usual = this.host.usualMs(run.what);
    const told = run.stage?.fraction;
    const stage = run.stage?.stage ?? (run.what === 'start' ? 'starting' : 'loading');
    const left = usual === undefined ? undefined : Math.max(0, usual - elapsed);
    if (told !== undefined) {
      const inStage = this.host.clock.now() - (run.stageSince ?? run.since);
      const extrapolated = told >= 0.1 && told < 1 ? (inStage * (1 - told)) / told : undefined;
      return this.out(run, stage, told, left ?? extrapolated, elapsed, 'backend');
    }
    if (usual !== undefined && usual > 0) return this.out(run, stage, Math.min(0.99, elapsed / usual), left, elapsed, 'estimate');
    return this.out(run, stage, undefined, undefined, elapsed, 'none');
  }

  private out(run: Run, stage: string, fraction: number | undefined, eta: number | undefined, elapsed: number, source: LoadProgress['source']): LoadProgress {
    const round = (x: number | undefined) => (x === undefined ? null : Math.round(x));
    return { model: this.host.model, what: run.what, stage, fraction: fraction === undefined ? null : Math.round(fraction * 1000) / 1000, eta_ms: round(eta), elapsed_ms: Math.round(elapsed), source };
  }
}

/** " 45% (1.2 s of ~2.6 s)": how far a load is, as the CLI, the dashboard and in-stream progress say it. */
export function howFar(p: LoadProgress): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const percent = p.fraction === null ? '' : ` ${Math.floor(p.fraction * 100)}%`;
  const total = p.eta_ms === null ? '' : ` of ~${s(p.elapsed_ms + p.eta_ms)}`;
  return `${percent} (${s(p.elapsed_ms)}${total})`;
}
