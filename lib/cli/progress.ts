// Lines for what the hub reports on its event stream, as the model verbs, `hub stop` and `hub start`
// show them while they wait (and `hub watch` in its frame): made visible, since a reason can quote a
// backend. A load under way is shown as a bar on a terminal and as a line per stage into a pipe.
import logUpdate from 'log-update';
import type { Transition } from '../scheduler/context.js';
import { howFar, type LoadProgress } from '../scheduler/progress.js';
import { say, visible } from './output.js';

/** "demo-small memory loaded → unloaded (evicted for demo-large (operator))". */
export function describeTransition(t: Transition): string {
  return visible(`${t.model} ${t.axis} ${t.from} → ${t.to}${t.reason ? ` (${t.reason})` : ''}`);
}

/** "m: Loading demo weights 50% (1.2 s of ~2.4 s)": a load under way, as a line. */
function describeProgress(p: LoadProgress): string {
  return visible(`${p.model}: ${p.stage}${howFar(p)}`);
}

/** The same with a bar in front, for a terminal: "[########--------] m: …". */
function progressBar(p: LoadProgress, width = 20): string {
  const filled = p.fraction === null ? 0 : Math.round(Math.min(1, Math.max(0, p.fraction)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${describeProgress(p)}`;
}


/**
 * Shows loads as they go: on a terminal one bar per model, redrawn in place (other lines go above it);
 * into a pipe, a plain line whenever a model's stage changes (a log stays readable).
 */
export class ProgressView {
  private readonly bars = new Map<string, LoadProgress>();
  private readonly stages = new Map<string, string>();

  constructor(private readonly tty: boolean) {}

  show(p: LoadProgress): void {
    if (!this.tty) {
      if (this.stages.get(p.model) === p.stage) return;
      this.stages.set(p.model, p.stage);
      say.info(describeProgress(p));
      return;
    }
    this.bars.set(p.model, p);
    this.draw();
  }

  /** The model's load is over (or failed): its bar goes. */
  end(model: string): void {
    this.stages.delete(model);
    if (this.bars.delete(model) && this.tty) this.draw();
  }

  /** A line that must stay: printed above the bars. */
  line(print: () => void): void {
    if (this.tty && this.bars.size) logUpdate.clear();
    print();
    if (this.tty && this.bars.size) this.draw();
  }

  done(): void {
    if (this.tty && this.bars.size) logUpdate.clear();
    this.bars.clear();
  }

  private draw(): void {
    if (this.bars.size) logUpdate([...this.bars.values()].map((p) => progressBar(p)).join('\n'));
    else logUpdate.clear();
  }
}
