// Per-model policy: keys listed under a model or a group open only those models (a hub-wide key still
// opens every one), /v1/models lists for such a key only its models, and params set / default / strip
// rewrite the JSON body the backend receives on every route. Clients are the real openai and
// Anthropic SDKs; the demo backend echoes what it received (/v1/echo) or answers by it (max_tokens).
import t from 'tap';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { ConfigError } from '../lib/config/errors.js';
import { parseConfig } from '../lib/config/load.js';
import { demo, getJson, postJson, startTestHub } from './helpers.js';

const HUB_KEY = 'sk-policy-hub-0b8e44';
const CHAT_KEY = 'sk-policy-chat-51d2aa';
const TEAM_KEY = 'sk-policy-team-c3f90e';

t.test('keys scoped to models and groups, on a hub with keys', async (t) => {
  const h = await startTestHub(t, `
auth: { api_keys: ["${HUB_KEY}"] }
groups:
  team: { api_keys: ["${TEAM_KEY}"] }
models:
  chat: { backend: demo, cmd: "${demo()}", api_keys: ["${CHAT_KEY}"], aliases: [chat-alias] }
  team-a: { backend: demo, cmd: "${demo()}", group: team }
  team-b: { backend: demo, cmd: "${demo()}", group: team }
  other: { backend: demo, cmd: "${demo()}" }
`);
  const client = (apiKey: string) => new OpenAI({ baseURL: h.base, apiKey, maxRetries: 0 });
  const ids = async (apiKey: string) => (await client(apiKey).models.list()).data.map((m) => m.id).sort();
  const ask = (apiKey: string, model: string) => client(apiKey).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

  t.same(await ids(HUB_KEY), ['chat', 'chat-alias', 'other', 'team-a', 'team-b'], 'a hub-wide key sees every model');
  t.same(await ids(CHAT_KEY), ['chat', 'chat-alias'], 'a model key sees only its model');
  t.same(await ids(TEAM_KEY), ['team-a', 'team-b'], 'a group key sees the group');

  t.equal((await ask(CHAT_KEY, 'chat')).model, 'chat', 'a model key uses its model');
  t.equal((await ask(CHAT_KEY, 'chat-alias')).model, 'chat', 'and its aliases');
  t.equal((await ask(TEAM_KEY, 'team-b')).model, 'team-b', 'a group key uses the group');
  t.equal((await ask(HUB_KEY, 'chat')).model, 'chat', 'a hub-wide key still works on a model with keys');
  t.equal((await ask(HUB_KEY, 'other')).model, 'other');

  for (const [key, model] of [[CHAT_KEY, 'other'], [CHAT_KEY, 'team-a'], [TEAM_KEY, 'chat']]) {
    const err = await ask(key, model).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof OpenAI.NotFoundError, `${model} is not found for a key that may not use it`);
    const e = err as InstanceType<typeof OpenAI.NotFoundError>;
    t.equal(e.code, 'model_not_found');
    t.notMatch(e.message, new RegExp(model === 'chat' ? 'chat-alias|"chat", ' : 'other,|team-a,'), 'the list of models is the key\'s own');
  }
  const refused = await postJson(`${h.origin}/v1/chat/completions`, { model: 'other', messages: [] }, { authorization: `Bearer ${CHAT_KEY}` });
  t.match(refused.body.error.message, /available models: chat, chat-alias$/);
  t.equal((await getJson(`${h.origin}/v1/models/other`, { headers: { authorization: `Bearer ${CHAT_KEY}` } })).status, 404, 'GET /v1/models/{id} too');
  t.equal((await getJson(`${h.origin}/upstream/other/health`, { headers: { authorization: `Bearer ${CHAT_KEY}` } })).status, 404, '/upstream too');
  t.equal((await getJson(`${h.origin}/upstream/chat/health`, { headers: { authorization: `Bearer ${CHAT_KEY}` } })).status, 200);

  const anthropic = new Anthropic({ baseURL: h.origin, apiKey: CHAT_KEY, maxRetries: 0 });
  const err = await anthropic.messages.create({ model: 'other', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof Anthropic.NotFoundError, 'Anthropic clients get their own envelope');
  t.equal((await anthropic.messages.create({ model: 'chat', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })).model, 'chat');

  t.equal((await getJson(`${h.origin}/hub/api/status`, { headers: { authorization: `Bearer ${CHAT_KEY}` } })).status, 401, 'a model key never opens /hub');
  const wrong = await ask('sk-nobody', 'chat').then(() => undefined, (e: unknown) => e);
  t.ok(wrong instanceof OpenAI.AuthenticationError, 'an unknown key is still a 401');
});

t.test('on a hub without keys, a model with keys needs one of them', async (t) => {
  const h = await startTestHub(t, `
models:
  locked: { backend: demo, cmd: "${demo()}", api_keys: ["${CHAT_KEY}"] }
  open: { backend: demo, cmd: "${demo()}" }
`);
  const anon = new OpenAI({ baseURL: h.base, apiKey: 'anything', maxRetries: 0 });
  const keyed = new OpenAI({ baseURL: h.base, apiKey: CHAT_KEY, maxRetries: 0 });
  t.same((await anon.models.list()).data.map((m) => m.id), ['open'], 'without its key the locked model is not listed');
  t.same((await keyed.models.list()).data.map((m) => m.id).sort(), ['locked', 'open'], 'its key adds it to the open ones');
  const err = await anon.chat.completions.create({ model: 'locked', messages: [{ role: 'user', content: 'hi' }] }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof OpenAI.AuthenticationError, '401 without the key');
  t.match((err as Error).message, /models\.locked\.api_keys/);
  t.equal((await keyed.chat.completions.create({ model: 'locked', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).model, 'locked');
  t.equal((await anon.chat.completions.create({ model: 'open', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).model, 'open', 'the other models stay open');
});

t.test('params: set, default and strip, as the backend receives them, on every route', async (t) => {
  const h = await startTestHub(t, `
models:
  tuned:
    backend: demo
    cmd: "${demo()}"
    params:
      set: { max_tokens: 3, max_output_tokens: 3, temperature: 0.2 }
      default: { top_p: 0.9, stop: ["END"] }
      strip: [user, logit_bias]
  untouched: { backend: demo, cmd: "${demo()}" }
`);
  const echo = async (model: string, body: object, raw?: string) => {
    const res = await fetch(`${h.origin}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ?? JSON.stringify({ model, ...body }) });
    const seen = (await res.json()) as { headers: Record<string, string>; body: string };
    return { received: JSON.parse(seen.body), length: Number(seen.headers['content-length']), bytes: Buffer.byteLength(seen.body) };
  };
  const sent = await echo('tuned', { temperature: 1.5, top_p: 0.5, user: 'alice', logit_bias: { 1: 2 }, messages: [{ role: 'user', content: 'ü' }] });
  t.same(sent.received, { model: 'tuned', temperature: 0.2, top_p: 0.5, messages: [{ role: 'user', content: 'ü' }], stop: ['END'], max_tokens: 3, max_output_tokens: 3 }, 'set overrides, default fills only what is absent, strip removes');
  t.equal(sent.length, sent.bytes, 'Content-Length is the rewritten body\'s');
  const nulls = await echo('tuned', { top_p: null });
  t.equal(nulls.received.top_p, 0.9, 'a null counts as absent');
  const raw = '{"model":"untouched",  "user":"bob", "temperature":1.5}';
  t.equal((await echo('untouched', {}, raw)).received.user, 'bob', 'a model without params gets the body as sent');
  const plain = await fetch(`${h.origin}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
  t.equal(((await plain.json()) as { body: string }).body, raw, 'byte for byte');

  const client = new OpenAI({ baseURL: h.base, apiKey: 'x', maxRetries: 0 });
  const chat = await client.chat.completions.create({ model: 'tuned', messages: [{ role: 'user', content: 'a long answer please' }], max_tokens: 50 });
  t.equal(chat.usage?.completion_tokens, 3, '/v1/chat/completions: the backend got max_tokens 3');
  const completion = await client.completions.create({ model: 'tuned', prompt: 'once upon a time', max_tokens: 50 });
  t.equal(completion.usage?.completion_tokens, 3, '/v1/completions');
  const response = await client.responses.create({ model: 'tuned', input: 'tell me more', max_output_tokens: 50 });
  t.equal(response.max_output_tokens, 3, '/v1/responses');
  const stream = await client.chat.completions.create({ model: 'tuned', messages: [{ role: 'user', content: 'stream it' }], stream: true, stream_options: { include_usage: true } });
  let usage: number | undefined;
  for await (const chunk of stream) usage = chunk.usage?.completion_tokens ?? usage;
  t.equal(usage, 3, 'streams too');
  const anthropic = new Anthropic({ baseURL: h.origin, apiKey: 'x', maxRetries: 0 });
  const message = await anthropic.messages.create({ model: 'tuned', max_tokens: 50, messages: [{ role: 'user', content: 'hi there friend' }] });
  t.equal(message.usage.output_tokens, 3, '/v1/messages');
});

t.test('bad policy config: every problem with its path', async (t) => {
  const problems = (yaml: string) => {
    try {
      parseConfig(yaml, '/tmp/hub.yaml', { env: {} });
    } catch (err) {
      if (err instanceof ConfigError) return err.message;
      throw err;
    }
    return '';
  };
  const message = problems(`
log: { requests: -1 }
groups:
  g: { api_keys: "one-key" }
models:
  a:
    url: http://127.0.0.1:9
    api_keys: [1]
    params:
      set: { model: other, temperature: 1 }
      default: { temperature: 0.5 }
      strip: [user, user2, stream, ""]
      drop: [x]
    log: { capture: "yes" }
  b: { url: "http://127.0.0.1:9", params: { set: [1] } }
`);
  t.match(message, /log\.requests.*whole number from 0 to 100000/);
  t.match(message, /groups\.g\.api_keys.*list of strings/);
  t.match(message, /models\.a\.api_keys\[0\].*string/);
  t.match(message, /models\.a\.params.*drop/);
  t.match(message, /models\.a\.log\.capture.*true or false/);
  t.match(message, /models\.b\.params\.set.*map of field: value/);
  const cross = problems(`
models:
  a:
    url: http://127.0.0.1:9
    params: { set: { model: x, temperature: 1 }, default: { temperature: 0.5 }, strip: [temperature, ""] }
`);
  t.match(cross, /models\.a\.params\.set\.model: "model" cannot be changed by params.*served_model/);
  t.match(cross, /models\.a\.params\.default\.temperature: "temperature" is also under params\.set/);
  t.match(cross, /models\.a\.params\.strip\[0\]: "temperature" is also under params\.set/);
  t.match(cross, /models\.a\.params\.strip\[1\]: a field name cannot be empty/);
  t.equal(problems(`
log: { requests: 0 }
models:
  a: { url: "http://127.0.0.1:9", api_keys: ["k"], params: { strip: [user] }, log: { capture: true } }
`), '', 'a valid policy loads');
});
