// Anthropic's Messages API through the hub, with the published `@anthropic-ai/sdk` (what coding
// agents use): create, stream, countTokens, a cold start, and every hub-made error in Anthropic's
// own envelope, so that the SDK raises its own error classes and retries what it should.
import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import { demo, getJson, postJson, startTestHub, waitFor } from './helpers.js';

const MODELS = `
models:
  claude-local: { backend: demo, cmd: "${demo('--load-time 300ms')}", aliases: [sonnet] }
  slow: { backend: demo, cmd: "${demo('--token-rate 20 --max-tokens 8')}", max_concurrency: 1, max_queue: 0 }
  crashy: { backend: demo, cmd: "${demo('--token-rate 100 --crash-after 3')}" }
`;

const user = (content: string) => [{ role: 'user' as const, content }];

t.test('messages.create (a cold start), messages.stream and countTokens', async (t) => {
  const { origin } = await startTestHub(t, MODELS);
  const client = new Anthropic({ baseURL: origin, apiKey: 'unused', maxRetries: 0 });

  const { data: msg, response } = await client.messages.create({ model: 'sonnet', max_tokens: 1024, messages: user('Hello!') }).withResponse();
  t.ok(Number(response.headers.get('x-hub-cold-start-ms')) >= 250, `the first request started the model (${response.headers.get('x-hub-cold-start-ms')}ms)`);
  t.equal(response.headers.get('x-hub-model'), 'claude-local', 'through its alias');
  t.equal(msg.type, 'message');
  t.match((msg.content[0] as Anthropic.TextBlock).text, /^Hello from claude-local\./);
  t.equal(msg.stop_reason, 'end_turn');
  t.equal(msg.usage.output_tokens, 16);

  const stream = client.messages.stream({ model: 'claude-local', max_tokens: 5, system: 'be brief', messages: user('Stream please') });
  let text = '';
  stream.on('text', (delta) => { text += delta; });
  const final = await stream.finalMessage();
  t.equal(text, (final.content[0] as Anthropic.TextBlock).text, 'text deltas add up to the final message');
  t.match(text, /^Hello from claude-local\./);
  t.equal(final.stop_reason, 'max_tokens', 'cut by max_tokens');
  t.equal(final.usage.output_tokens, 5, 'usage from message_delta');

  const count = await client.messages.countTokens({ model: 'claude-local', messages: user('three words here') });
  t.equal(count.input_tokens, 3);
});

t.test('hub-made errors on /v1/messages* use Anthropic envelope; OpenAI routes keep theirs', async (t) => {
  const { origin, hub } = await startTestHub(t, `limits: { max_body: 1KiB }\n${MODELS}`);
  const client = new Anthropic({ baseURL: origin, apiKey: 'unused', maxRetries: 0 });

  const missing = await client.messages.create({ model: 'nope', max_tokens: 10, messages: user('x') }).catch((e: unknown) => e);
  t.type(missing, Anthropic.NotFoundError, 'an unknown model is the SDK\'s NotFoundError');
  t.match((missing as Error).message, /does not exist; available models: claude-local, sonnet/);
  const raw = await postJson(`${origin}/v1/messages`, { model: 'nope', max_tokens: 10, messages: [] });
  t.same(raw.body, { type: 'error', error: { type: 'not_found_error', message: raw.body.error.message } }, 'the Anthropic envelope, nothing else');
  t.equal(raw.headers.get('x-should-retry'), 'false');
  const openai = await postJson(`${origin}/v1/chat/completions`, { model: 'nope', messages: [] });
  t.equal(openai.body.error.code, 'model_not_found', 'the OpenAI routes keep the OpenAI envelope');

  const cases: Array<[string, Promise<{ status: number; body: any }>, number, string]> = [
    ['not JSON', postJson(`${origin}/v1/messages`, '{"model":'), 400, 'invalid_request_error'],
    ['no model', postJson(`${origin}/v1/messages/count_tokens`, { messages: [] }), 400, 'invalid_request_error'],
    ['too large', postJson(`${origin}/v1/messages`, { model: 'claude-local', messages: user('x'.repeat(2048)) }), 413, 'request_too_large'],
  ];
  for (const [what, reply, status, type] of cases) {
    const { status: got, body } = await reply;
    t.equal(got, status, `${what}: ${status}`);
    t.equal(body.type, 'error', `${what}: Anthropic envelope`);
    t.equal(body.error.type, type, `${what}: ${type}`);
    t.type(body.error.message, 'string');
  }

  // A backend that dies mid-stream: the stream ends with Anthropic's `event: error`.
  const res = await fetch(`${origin}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'crashy', max_tokens: 10, stream: true, messages: user('x') }) });
  const events = await res.text();
  t.match(events, /^event: message_start\n/, 'the stream had started');
  const last = events.trim().split('\n\n').at(-1)!;
  t.match(last, /^event: error\ndata: /, 'in-band failure as an Anthropic error event');
  t.equal(JSON.parse(last.split('data: ')[1]).error.type, 'api_error');
  // A request sent before the hub has seen the exit would go to the dying process (502 before any
  // stream): wait for the crash to be recorded, then the next request restarts the model.
  await waitFor('the hub to see the crash', () => hub.controller.get('crashy').process === 'failed');
  const sdkStream = await client.messages.create({ model: 'crashy', max_tokens: 10, stream: true, messages: user('x') });
  const raised = await (async () => { for await (const _ of sdkStream) void _; })().then(() => undefined, (e: unknown) => e);
  t.ok(raised instanceof Anthropic.APIError, 'the SDK raises the in-band error as an APIError');
  t.match((raised as Error).message, /closed the connection in the middle of its answer/);

  // While the hub drains a stream, new requests are refused with overloaded_error.
  t.equal((await fetch(`${origin}/hub/api/models/slow/start`, { method: 'POST' })).status, 200);
  const draining = fetch(`${origin}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'slow', max_tokens: 8, stream: true, messages: user('x') }) });
  await waitFor('the slow model to be answering', () => hub.controller.get('slow').inflight > 0, 15_000);
  const closing = hub.close();
  const refused = await postJson(`${origin}/v1/messages`, { model: 'claude-local', max_tokens: 10, messages: user('x') });
  t.equal(refused.status, 503);
  t.equal(refused.body.error.type, 'overloaded_error', 'hub_shutting_down');
  await (await draining).text();
  await closing;
});

t.test('keys: x-api-key is accepted; a wrong one is an AuthenticationError', async (t) => {
  const { origin } = await startTestHub(t, `auth: { api_keys: [sk-local] }\n${MODELS}`);
  const good = new Anthropic({ baseURL: origin, apiKey: 'sk-local', maxRetries: 0 });
  const msg = await good.messages.create({ model: 'claude-local', max_tokens: 4, messages: user('hi') });
  t.match((msg.content[0] as Anthropic.TextBlock).text, /^Hello from claude-local\./, 'the SDK sends x-api-key, the hub takes it');
  const bad = new Anthropic({ baseURL: origin, apiKey: 'wrong', maxRetries: 0 });
  const err = await bad.messages.create({ model: 'claude-local', max_tokens: 4, messages: user('hi') }).catch((e: unknown) => e);
  t.type(err, Anthropic.AuthenticationError);
  const raw = await getJson(`${origin}/v1/messages/count_tokens`, { method: 'POST', headers: { 'x-api-key': 'wrong', 'content-type': 'application/json' }, body: '{}' });
  t.same(raw.body.error.type, 'authentication_error');
  t.equal(raw.status, 401);
});

t.test('a 429 from the hub is retried by the SDK after Retry-After', async (t) => {
  const { origin } = await startTestHub(t, MODELS);
  t.equal((await fetch(`${origin}/hub/api/models/slow/start`, { method: 'POST' })).status, 200);
  const statuses: number[] = [];
  const client = new Anthropic({
    baseURL: origin,
    apiKey: 'unused',
    maxRetries: 2,
    fetch: async (input: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(input, init);
      statuses.push(res.status);
      return res;
    },
  });
  const held = postJson(`${origin}/v1/messages`, { model: 'slow', max_tokens: 8, messages: user('hold on') });
  await waitFor('the slow model to be answering', async () => (await getJson(`${origin}/hub/api/status`)).body.models.find((m: { name: string }) => m.name === 'slow')?.in_flight > 0);
  const started = Date.now();
  const msg = await client.messages.create({ model: 'slow', max_tokens: 1, messages: user('me next') });
  t.equal(msg.usage.output_tokens, 1);
  t.same(statuses, [429, 200], 'rate_limit_error, then success');
  t.ok(Date.now() - started >= 950, 'after the Retry-After second');
  t.equal((await held).status, 200);
});

t.test('start failures on /v1/messages: 503 and 504 in Anthropic envelope, with their retry headers', async (t) => {
  const { origin } = await startTestHub(t, `
models:
  broken: { backend: demo, cmd: "${demo('--fail-start 3 --load-time 100ms')}" }
  stuck: { backend: demo, cmd: "${demo('--never-ready')}", start_timeout: 300ms }
`);
  const ask = (model: string) => postJson(`${origin}/v1/messages`, { model, max_tokens: 8, messages: user('x') });
  const failed = await ask('broken');
  t.equal(failed.status, 503);
  t.equal(failed.body.type, 'error');
  t.equal(failed.body.error.type, 'api_error');
  t.match(failed.body.error.message, /exit/, 'the message says how it failed');
  t.ok(Number(failed.headers.get('retry-after')) >= 1, 'retry-after, as on the OpenAI routes');
  const timedOut = await ask('stuck');
  t.equal(timedOut.status, 504);
  t.equal(timedOut.body.error.type, 'api_error');
  t.equal(timedOut.headers.get('x-should-retry'), 'false', 'so the Anthropic SDK does not respawn it either');
  const client = new Anthropic({ baseURL: origin, apiKey: 'unused', maxRetries: 2 });
  const err = await client.messages.create({ model: 'stuck', max_tokens: 8, messages: user('x') }).catch((e: unknown) => e);
  t.type(err, Anthropic.InternalServerError);
  t.equal((err as InstanceType<typeof Anthropic.InternalServerError>).status, 504);
});
