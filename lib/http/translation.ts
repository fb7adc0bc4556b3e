// Responses and Messages for backends that lack them: which requests the hub sends as Chat
// Completions, decided per model from its `translate:` setting, what its backend kind declares
// (lib/backends), and what the running backend process showed (a 404, 405 or 501 on the API's path,
// learned once per process). The answers are translated back by translated-answer.ts.
import type { ApiSupport } from '../backends/adapter.js';
import type { HubError } from '../errors.js';
import type { ModelRuntime } from '../scheduler/model.js';
import type { ChatRequest } from '../translate/chat.js';
import { countTokensToChat, messagesToChat } from '../translate/messages.js';
import { responsesToChat } from '../translate/responses.js';
import type { HeldBody } from './body.js';
import { passThrough, type Takeover } from './proxy.js';
import { answerTranslated, type TranslatedApi } from './translated-answer.js';

type Family = 'responses' | 'messages';

/** The API a POST path belongs to, if the hub can translate it. */
function apiOf(path: string): TranslatedApi | undefined {
  const p = path.replace(/\/+$/, '').toLowerCase();
  if (p === '/v1/responses') return 'responses';
  if (p === '/v1/messages') return 'messages';
  if (p === '/v1/messages/count_tokens') return 'count_tokens';
  return undefined;
}

const familyOf = (api: TranslatedApi): Family => (api === 'responses' ? 'responses' : 'messages');

/** What one backend process showed: which APIs it lacks (answered 404/405/501) or has. */
interface Learned {
  process: string;
  lacks: Set<Family>;
  has: Set<Family>;
}
const learned = new WeakMap<ModelRuntime, Learned>();

/** One process of a model: a restart (a new pid or start time) may be another server version. */
const processOf = (m: ModelRuntime) => (m.remote ? 'remote' : `${m.pid}@${m.startedAt}`);

function learnedOf(m: ModelRuntime): Learned {
  const proc = processOf(m);
  let l = learned.get(m);
  if (!l || l.process !== proc) learned.set(m, (l = { process: proc, lacks: new Set(), has: new Set() }));
  return l;
}

function support(m: ModelRuntime, family: Family): ApiSupport {
  const mode = m.config.translate?.[family] ?? 'auto';
  if (mode === 'always') return 'translate';
  if (mode === 'never') return 'native';
  const l = learnedOf(m);
  if (l.lacks.has(family)) return 'translate';
  if (l.has.has(family)) return 'native';
  return m.adapter.apis?.[family] ?? 'detect';
}

export interface TranslationPlan {
  api: TranslatedApi;
  mode: 'translate' | 'detect';
  request: Record<string, unknown>;
  chat?: ChatRequest;
  /** Why the request cannot be translated (answered only if it has to be). */
  problem?: HubError;
}

/**
 * Called before the model is started: a request that must be translated but cannot be is refused
 * here (400, saying what), without waking a model for it. Undefined: forward the request as it is.
 */
export function planTranslation(m: ModelRuntime, path: string, body: HeldBody): TranslationPlan | undefined {
  const api = apiOf(path);
  if (!api) return undefined;
  const mode = support(m, familyOf(api));
  if (mode === 'native') return undefined;
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(body.concat().toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined; // the model was found in it, so it is JSON; if not, the backend says what is wrong
  }
  const plan: TranslationPlan = { api, mode, request };
  try {
    plan.chat = api === 'responses' ? responsesToChat(request) : api === 'messages' ? messagesToChat(request) : countTokensToChat(request);
  } catch (err) {
    if (mode === 'translate') throw err;
    plan.problem = err as HubError;
  }
  return plan;
}

/** The request to send once the model is ready: the translation, or (detect) the original that falls back to it. */
export function takeoverFor(plan: TranslationPlan, m: ModelRuntime, originalUrl: string, body: HeldBody): Takeover {
  const family = familyOf(plan.api);
  const proc = processOf(m);
  const translated = (): Takeover => ({
    path: '/v1/chat/completions',
    body: Buffer.from(JSON.stringify(plan.chat)),
    // Only a translation that worked proves the API missing: a 404 for an unknown model says nothing.
    respond: (proxyRes, res) => answerTranslated(plan.api, plan.request, proxyRes, res, () => {
      if (plan.mode === 'detect' && processOf(m) === proc) learnedOf(m).lacks.add(family);
    }),
  });
  if (plan.mode === 'translate') return translated();
  return {
    path: originalUrl,
    body: body.concat(),
    instead: (status) => {
      if (status !== 404 && status !== 405 && status !== 501) {
        // A 5xx may be a server that has the API failing for now; only a clear answer settles it.
        if (status < 500 && processOf(m) === proc) learnedOf(m).has.add(family);
        return undefined;
      }
      return plan.problem ?? translated();
    },
    respond: passThrough,
  };
}
