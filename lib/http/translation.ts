// Responses and Messages for backends that lack them: which requests the hub sends as Chat
// Completions, decided per model from its `translate:` setting, what its backend kind declares
// (lib/backends), and what the running backend process showed (a 404, 405 or 501 on the API's path,
// learned once per process). The answers are translated back by translated-answer.ts.
import type { ApiSupport } from '../backends/adapter.js';
import { HubError } from '../errors.js';
import type { ModelActor } from '../scheduler/actor.js';
import type { ChatRequest } from '../translate/chat.js';
import { countTokensToChat, messagesToChat } from '../translate/messages.js';
import { responsesToChat } from '../translate/responses.js';
import type { HeldBody } from './body.js';
import { pacedStream } from './pacing.js';
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
const learned = new WeakMap<ModelActor, Learned>();

/** One process of a model: a restart (a new pid or start time) may be another server version. */
const processOf = (m: ModelActor) => (m.remote ? 'remote' : `${m.pid}@${m.startedAt}`);

function learnedOf(m: ModelActor): Learned {
  const proc = processOf(m);
  let l = learned.get(m);
  if (!l || l.process !== proc) learned.set(m, (l = { process: proc, lacks: new Set(), has: new Set() }));
  return l;
}

function support(m: ModelActor, family: Family): ApiSupport {
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
  /** Made before the start when the request must be translated; in detect mode only once the server lacks the API. */
  translation?: Translation;
}

interface Translation {
  request: Record<string, unknown>;
  chat: ChatRequest;
}

/** The request as Chat Completions, or the 400 saying what cannot be translated. */
function translate(api: TranslatedApi, body: HeldBody): Translation {
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(body.concat().toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new HubError('invalid_json', 'the request body is not valid JSON; send a JSON object');
  }
  const chat = api === 'responses' ? responsesToChat(request) : api === 'messages' ? messagesToChat(request) : countTokensToChat(request);
  return { request, chat };
}

/**
 * Called before the model is started: a request that must be translated but cannot be is refused
 * here (400, saying what), without waking a model for it. Undefined: forward the request as it is.
 * In detect mode nothing is parsed yet: a server that has the API gets the bytes as they came.
 */
export function planTranslation(m: ModelActor, path: string, body: HeldBody): TranslationPlan | undefined {
  const api = apiOf(path);
  if (!api) return undefined;
  const mode = support(m, familyOf(api));
  if (mode === 'native') return undefined;
  return { api, mode, translation: mode === 'translate' ? translate(api, body) : undefined };
}

/** The request to send once the model is ready: the translation, or (detect) the original that falls back to it. */
export function takeoverFor(plan: TranslationPlan, m: ModelActor, originalUrl: string, body: HeldBody): Takeover {
  const family = familyOf(plan.api);
  const proc = processOf(m);
  const translated = (t: Translation): Takeover => {
    const bytes = Buffer.from(JSON.stringify(t.chat));
    return {
      path: '/v1/chat/completions',
      length: bytes.length,
      body: () => pacedStream(chunks(bytes)),
      // Only a translation that worked proves the API missing: a 404 for an unknown model says nothing.
      respond: (proxyRes, res) => answerTranslated(plan.api, t.request, proxyRes, res, () => {
        if (plan.mode === 'detect' && processOf(m) === proc) learnedOf(m).lacks.add(family);
      }),
    };
  };
  if (plan.translation) return translated(plan.translation);
  return {
    path: originalUrl,
    length: body.length,
    body: () => body.stream(),
    instead: (status) => {
      if (status !== 404 && status !== 405 && status !== 501) {
        // A 5xx may be a server that has the API failing for now; only a clear answer settles it.
        if (status < 500 && processOf(m) === proc) learnedOf(m).has.add(family);
        return undefined;
      }
      // The client's body is still held here (it is released once an answer is taken).
      try {
        return translated(translate(plan.api, body));
      } catch (err) {
        return err as HubError;
      }
    },
    respond: passThrough,
  };
}

/** A body in socket-sized pieces, so that sending a large one yields to the event loop (pacing.ts). */
function chunks(bytes: Buffer, size = 64 * 1024): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}
