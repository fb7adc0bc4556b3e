// Lines for what the hub reports on its event stream, as the model verbs, `hub stop` and `hub start`
// show them while they wait (and `hub watch` in its frame): made visible, since a reason can quote a backend.
import type { Transition } from '../scheduler/context.js';
import { visible } from './output.js';

/** "demo-small memory loaded → unloaded (evicted for demo-large (operator))". */
export function describeTransition(t: Transition): string {
  return visible(`${t.model} ${t.axis} ${t.from} → ${t.to}${t.reason ? ` (${t.reason})` : ''}`);
}
