// Lines for what the hub reports on its event stream, as the model verbs, `hub stop` and `hub start`
// show them while they wait.
import type { Transition } from '../scheduler/model.js';

/** "demo-small memory loaded → unloaded (evicted for demo-large (operator))". */
export function describeTransition(t: Transition): string {
  return `${t.model} ${t.axis} ${t.from} → ${t.to}${t.reason ? ` (${t.reason})` : ''}`;
}
