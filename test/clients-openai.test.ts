// The OpenAI-speaking clients people use, as published on npm, against a real hub and real demo
// backends: the official `openai` SDK (chat, streaming with usage, Responses JSON and stream,
// embeddings, audio uploads, error classes, retries that honour Retry-After), the Vercel AI SDK with
// its default provider call (which speaks the Responses API), and LangChain (Chat Completions and
// `useResponsesApi`).
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText } from 'ai';
import OpenAI, { toFile } from 'openai';
import t from 'tap';
import { demo, startTestHub, waitFor } from './helpers.js';

const MODELS = `
models:
  chat-a: { backend: demo, cmd: "${demo('--load-time 100ms')}", aliases: [gpt-4o-mini] }
  slow: { backend: demo, cmd: "${demo('--token-rate 20 --max-tokens 8')}", max_concurrency: 1, max_queue: 0 }
  crashy: { backend: demo, cmd: "${demo('--token-rate 100 --crash-after 3')}" }
`;

/** A fetch that remembers the status of every response, to see retries happen. */
function recordingFetch() {
  const statuses: number[] = [];
  const times: number[] = [];
  const fetcher = async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fetch(input, init);
    statuses.push(res.status);
    times.push(Date.now());
    return res;
  };
  return { statuses, times, fetch: fetcher };
}

t.test('openai SDK: chat, streaming with usage, Responses JSON and stream, embeddings, audio', async (t) => {
  const { client } = await startTestHub(t, MODELS);

  const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello!' }] });
  t.match(chat.choices[0].message.content, /^Hello from chat-a\./, 'an alias reaches its model');
  t.ok(chat.usage!.completion_tokens > 0, 'usage');

  const stream = await client.chat.completions.create({
    model: 'chat-a', messages: [{ role: 'user', content: 'Stream please' }], stream: true, stream_options: { include_usage: true }, max_tokens: 5,
  });
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    usage = chunk.usage ?? usage;
  }
  t.equal(text, 'Hello from chat-a. ' + text.split('. ')[1], 'the streamed text');
  t.equal(usage?.completion_tokens, 5, 'the usage chunk arrives through the hub');

  const response = await client.responses.create({ model: 'chat-a', input: 'Say hi', instructions: 'be brief' });
  t.equal(response.status, 'completed');
  t.match(response.output_text, /^Hello from chat-a\./, 'Responses JSON: output_text');
  t.ok(response.usage!.input_tokens > 0 && response.usage!.output_tokens === 16, 'Responses usage');

  const events = await client.responses.create({ model: 'chat-a', input: [{ role: 'user', content: 'Say hi' }], stream: true, max_output_tokens: 6 });
  const types: string[] = [];
  let streamed = '';
  let final: OpenAI.Responses.Response | undefined;
  for await (const e of events) {
    types.push(e.type);
    if (e.type === 'response.output_text.delta') streamed += e.delta;
    if (e.type === 'response.incomplete' || e.type === 'response.completed') final = e.response;
  }
  t.same([types[0], types[1], types.at(-1)], ['response.created', 'response.in_progress', 'response.incomplete'], 'typed events in order; cut by max_output_tokens');
  t.equal(streamed, final?.output_text ?? (final?.output[0] as { content: Array<{ text: string }> }).content[0].text, 'the deltas add up to the final text');
  t.equal(final?.usage?.output_tokens, 6);

  const helper = client.responses.stream({ model: 'chat-a', input: 'again' });
  const done = await helper.finalResponse();
  t.match(done.output_text, /^Hello from chat-a\./, 'the SDK stream helper assembles the response');

  const emb = await client.embeddings.create({ model: 'chat-a', input: ['a', 'b'] });
  t.equal(emb.data.length, 2);
  t.equal(emb.data[0].embedding.length, 8, 'the SDK decodes its default base64 encoding');

  const audio = Buffer.from('RIFF fake wav bytes');
  const heard = await client.audio.transcriptions.create({ model: 'chat-a', file: await toFile(audio, 'hello.wav', { type: 'audio/wav' }) });
  t.match(heard.text, /^chat-a heard \d+ bytes$/, 'a multipart upload routed by its model field');
  t.ok((heard as unknown as { bytes: number }).bytes > audio.length, 'the whole form arrived');
});

t.test('openai SDK: hub errors are its error classes with string codes; 429 is retried after Retry-After', async (t) => {
  const { base, origin, client, hub } = await startTestHub(t, MODELS);
  // Started first, so the timings below do not include a cold start.
  t.equal((await fetch(`${origin}/hub/api/models/slow/start`, { method: 'POST' })).status, 200);
  const missing = await client.chat.completions.create({ model: 'nope', messages: [] }).catch((e: unknown) => e);
  t.type(missing, OpenAI.NotFoundError, 'an unknown model is a NotFoundError');
  t.equal((missing as InstanceType<typeof OpenAI.NotFoundError>).code, 'model_not_found');
  t.match((missing as Error).message, /available models: chat-a, gpt-4o-mini, slow/);

  const bad = await client.responses.create({ model: '', input: 'x' }).catch((e: unknown) => e);
  t.type(bad, OpenAI.BadRequestError);
  t.equal((bad as InstanceType<typeof OpenAI.BadRequestError>).code, 'model_required');

  // A model answering its only request with max_queue 0: the next one is 429 model_busy with Retry-After: 1.
  const busy = client.chat.completions.create({ model: 'slow', messages: [{ role: 'user', content: 'hold on' }] });
  await waitFor('the slow model to be answering', () => hub.controller.get('slow').inflight > 0);
  await client.chat.completions.create({ model: 'slow', messages: [], max_tokens: 1 }).then(
    () => t.fail('should be busy'),
    (e: unknown) => {
      t.type(e, OpenAI.RateLimitError);
      t.equal((e as InstanceType<typeof OpenAI.RateLimitError>).code, 'model_busy');
      t.equal((e as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after'), '1');
    },
  );
  await busy;

  const held = client.chat.completions.create({ model: 'slow', messages: [{ role: 'user', content: 'hold on' }] });
  await waitFor('the slow model to be answering', () => hub.controller.get('slow').inflight > 0);
  const rec = recordingFetch();
  const retrying = new OpenAI({ baseURL: base, apiKey: 'unused', maxRetries: 2, fetch: rec.fetch });
  const started = Date.now();
  const answer = await retrying.chat.completions.create({ model: 'slow', messages: [], max_tokens: 1 });
  await held;
  t.match(answer.choices[0].message.content, /^Hello/, 'the retry got through');
  t.same(rec.statuses, [429, 200], 'one 429, then success');
  t.ok(rec.times[1] - started >= 950, `the SDK waited the Retry-After second (${rec.times[1] - started}ms)`);
});

t.test('Vercel AI SDK: the default openai(model) provider call (Responses API): generateText and streamText', async (t) => {
  const { base } = await startTestHub(t, MODELS);
  const openai = createOpenAI({ baseURL: base, apiKey: 'unused' });
  const result = await generateText({ model: openai('chat-a'), prompt: 'Hello!' });
  t.match(result.text, /^Hello from chat-a\./);
  t.equal(result.usage.outputTokens, 16);
  t.equal(result.finishReason, 'stop');

  const streamed = streamText({ model: openai('gpt-4o-mini'), prompt: 'Stream please', maxOutputTokens: 4 });
  let text = '';
  for await (const delta of streamed.textStream) text += delta;
  t.equal(text, 'Hello from chat-a.', 'streamed through an alias');
  t.equal((await streamed.usage).outputTokens, 4);
  t.equal(await streamed.finishReason, 'length', 'max_output_tokens cut it, and the SDK says so');

  const chat = await generateText({ model: openai.chat('chat-a'), prompt: 'Hi' });
  t.match(chat.text, /^Hello from chat-a\./, 'and the Chat Completions provider');
});

t.test('LangChain: ChatOpenAI over Chat Completions and with useResponsesApi', async (t) => {
  const { base } = await startTestHub(t, MODELS);
  const configuration = { baseURL: base };
  const chat = new ChatOpenAI({ model: 'chat-a', apiKey: 'unused', configuration });
  t.match((await chat.invoke('Hello!')).text, /^Hello from chat-a\./);

  const responses = new ChatOpenAI({ model: 'chat-a', apiKey: 'unused', configuration, useResponsesApi: true });
  const reply = await responses.invoke('Hello!');
  t.match(reply.text, /^Hello from chat-a\./, 'useResponsesApi');
  t.equal(reply.usage_metadata?.output_tokens, 16);
  let text = '';
  for await (const chunk of await responses.stream('Stream please')) text += chunk.text;
  t.match(text, /^Hello from chat-a\./, 'streaming with useResponsesApi');
});

t.test('words: a GET on a POST route says to POST; a bad control action names the actions; counts read as English', async (t) => {
  const { origin, hub } = await startTestHub(t, MODELS);
  const get = await fetch(`${origin}/v1/chat/completions`);
  t.equal(get.status, 405);
  t.equal(get.headers.get('allow'), 'POST');
  const body = (await get.json()) as { error: { code: string; message: string } };
  t.equal(body.error.code, 'method_not_allowed');
  t.match(body.error.message, /GET \/v1\/chat\/completions is not served: the hub routes POST requests here .*send a POST/);
  t.equal((await fetch(`${origin}/v1/models`)).status, 200, 'the model list is still a GET');

  const bad = await fetch(`${origin}/hub/api/models/chat-a/explode`, { method: 'POST' });
  t.equal(bad.status, 404);
  const why = ((await bad.json()) as { error: { message: string } }).error.message;
  t.match(why, '"explode" is not a model action; the control API has POST /hub/api/models/chat-a/{start|stop|load|unload}');
  t.notMatch(why, '/v1', 'it does not send an operator to the OpenAI API');

  // max_queue 0 and one request answering: "0 requests", and the singular where it is one.
  t.equal((await fetch(`${origin}/hub/api/models/slow/start`, { method: 'POST' })).status, 200);
  const held = fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'slow', messages: [] }) });
  await waitFor('the slow model to be answering', () => hub.controller.get('slow').inflight > 0);
  const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: 'unused', maxRetries: 0 });
  const busy = await client.chat.completions.create({ model: 'slow', messages: [] }).catch((e: Error) => e);
  t.match((busy as Error).message, /and 0 requests already wait behind them \(max_queue 0\)/);
  await (await held).text();
});

t.test('a backend that dies mid-stream: each SDK sees an error, in its API\'s own in-band shape', async (t) => {
  const { base, client } = await startTestHub(t, MODELS);
  const res = await fetch(`${base}/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'crashy', input: 'x', stream: true }) });
  const last = (await res.text()).trim().split('\n\n').at(-1)!;
  t.match(last, /^event: error\ndata: /, 'the Responses stream ends with a typed error event');
  t.match(JSON.parse(last.split('data: ')[1]), { type: 'error', error: { code: 'backend_unavailable' } });

  const stream = await client.responses.create({ model: 'crashy', input: 'x', stream: true });
  const raised = await (async () => { for await (const _ of stream) void _; })().then(() => undefined, (e: unknown) => e);
  t.ok(raised instanceof OpenAI.APIError, 'the openai SDK raises it as an APIError');
  t.match((raised as Error).message, /the backend of model crashy closed the connection in the middle of its answer/);

  const openai = createOpenAI({ baseURL: base, apiKey: 'unused' });
  const errors: unknown[] = [];
  const result = streamText({ model: openai('crashy'), prompt: 'x', onError: ({ error }) => void errors.push(error) });
  for await (const part of result.fullStream) if (part.type === 'error') errors.push(part.error);
  t.ok(errors.length > 0, 'the AI SDK reports an error part');
  t.match(JSON.stringify(errors[0]), /backend_unavailable|crashy/, 'naming what failed');
});
