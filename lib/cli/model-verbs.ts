// `hub start-model | stop-model | load-model | unload-model <names..>`: one POST per name to
// /hub/api/models/{name}/{verb}, in order (several models to load go in one POST /hub/api/load, so
// they are loaded together or refused at once), while the event stream shows every state change the hub
// makes on the way (evictions of other models included). A failure is reported and the next name is
// still tried; the exit code is 1 if any failed.
import type { Transition } from '../scheduler/context.js';
import type { LoadProgress } from '../scheduler/progress.js';
import type { ModelStatus } from '../scheduler/status.js';
import { errorMessage } from './client.js';
import type { Args } from './commands.js';
import { plural } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say } from './output.js';
import { describeTransition, ProgressView } from './progress.js';
import { span } from './table.js';

/** How long an outcome line waits for the event stream to show the state the POST answered with. */
const STREAM_LAG_MS = 500;

type Verb = 'start' | 'stop' | 'load' | 'unload';
const DONE: Record<Verb, string> = { start: 'started', stop: 'stopped', load: 'loaded', unload: 'unloaded' };

interface Outcome { model: string; action: Verb; ok: boolean; process?: string; memory?: string; error?: string; code?: string; ms: number }

export async function modelVerb(verb: Verb, a: Args): Promise<number> {
  const { client } = await locateHub(a);
  const names = a.names as string[];
  const wait = a.wait !== false;
  const abort = new AbortController();
  // What the event stream has shown so far, per model: the answer to a POST can overtake the last
  // transitions on the stream, and the progress lines should come before the outcome line.
  const seen = new Map<string, { process: string; memory: string }>();
  let caughtUp: (() => void) | undefined;
  let streaming = false;
  const view = new ProgressView(process.stdout.isTTY === true);
  if (wait && !a.json) {
    // Progress is a courtesy: without the stream (an older hub, a proxy that buffers) the verbs still work.
    streaming = await client.events((event, data) => {
      if (event === 'status') for (const m of (data as { models: ModelStatus[] }).models) seen.set(m.name, { process: m.process, memory: m.memory });
      if (event === 'progress' && names.includes((data as LoadProgress).model)) view.show(data as LoadProgress);
      if (event !== 'transition') return;
      const t = data as Transition;
      if (t.from === 'starting' || t.from === 'loading') view.end(t.model);
      view.line(() => say.info(describeTransition(t)));
      seen.set(t.model, { ...(seen.get(t.model) ?? { process: '', memory: '' }), [t.axis]: t.to });
      caughtUp?.();
    }, abort.signal).then(() => true, () => false);
  }
  const showsState = async (name: string, process: string, memory: string) => {
    const deadline = Date.now() + STREAM_LAG_MS;
    while (streaming && Date.now() < deadline) {
      const s = seen.get(name);
      if (s && s.process === process && s.memory === memory) return;
      await new Promise<void>((resolve) => {
        caughtUp = resolve;
        setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
    }
  };
  const outcomes: Outcome[] = [];
  try {
    if (verb === 'load' && new Set(names).size > 1) {
      // Loaded together, or refused at once: one by one, the last could evict the first.
      const started = Date.now();
      const query = names.map((n) => `model=${encodeURIComponent(n)}`).join('&');
      const answer = await client.call('POST', `/hub/api/load?${query}${wait ? '' : '&wait=false'}`);
      const ms = Date.now() - started;
      const ok = answer.status === 200 || answer.status === 202;
      if (!ok) {
        for (const name of names) outcomes.push({ model: name, action: verb, ok, error: errorMessage(answer), code: answer.body?.error?.code, ms });
        if (!a.json) say.err(errorMessage(answer));
      } else {
        const states = new Map<string, { process: string; memory: string }>((answer.body.models ?? []).filter((m: unknown) => typeof m === 'object').map((m: { model: string; process: string; memory: string }) => [m.model, m]));
        for (const name of names) {
          const st = states.get(name);
          outcomes.push({ model: name, action: verb, ok, process: st?.process, memory: st?.memory, ms });
          if (a.json) continue;
          if (!wait) say.ok(`${name}: load accepted; follow it with hub watch or hub status`);
          else {
            if (st) await showsState(name, st.process, st.memory);
            say.ok(`${name} loaded in ${span(ms)} (process ${st?.process}, memory ${st?.memory})`);
          }
        }
      }
    } else for (const name of names) {
      const started = Date.now();
      const answer = await client.call('POST', `/hub/api/models/${encodeURIComponent(name)}/${verb}${wait ? '' : '?wait=false'}`);
      const ms = Date.now() - started;
      const ok = answer.status === 200 || answer.status === 202;
      const outcome: Outcome = ok
        ? { model: name, action: verb, ok, process: answer.body.process, memory: answer.body.memory, ms }
        : { model: name, action: verb, ok, error: errorMessage(answer), code: answer.body?.error?.code, ms };
      outcomes.push(outcome);
      if (a.json) continue;
      if (ok && wait) await showsState(name, answer.body.process, answer.body.memory);
      if (!ok) say.err(`${name}: ${outcome.error}`);
      else if (!wait) say.ok(`${name}: ${verb} accepted; follow it with hub watch or hub status`);
      else say.ok(`${name} ${DONE[verb]} in ${span(ms)} (process ${outcome.process}, memory ${outcome.memory})`);
    }
  } finally {
    abort.abort();
    view.done();
  }
  const failed = outcomes.filter((o) => !o.ok);
  if (a.json) say.json(outcomes);
  else if (names.length > 1 && failed.length) say.err(`${failed.length} of ${plural(names.length, 'model')} failed: ${failed.map((o) => o.model).join(', ')}`);
  return failed.length ? EXIT.failed : EXIT.ok;
}
