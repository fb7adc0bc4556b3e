// Responses for a backend that has only Chat Completions (the demo backend with --no-responses),
// with the published clients on top: openai's client.responses (JSON, stream, stream helper, a tool
// call), LangChain's useResponsesApi, and the Vercel AI SDK's default openai('m') provider (generateText, streamText, a tool loop,
// reasoning). Also: the hub learns the missing API once per process and asks again after a restart,
// `translate: never` passes the server's 404 on, and translated requests count their tokens.
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import t from 'tap';
import { getJson, startTestHub } from './helpers.js';
import { MODELS, backendRequests, weatherSchema } from './support/translation.js';

t.test('openai SDK: Responses JSON, stream, stream helper and a tool call, through Chat Completions', async (t) => {
  const { client, origin } = await startTestHub(t, MODELS);

  const { data: first, response: head } = await client.responses.create({ model: 'plain', input: 'Say hi', instructions: 'be brief' }).withResponse();
  t.equal(head.headers.get('x-hub-translated'), 'chat-completions', 'the answer says it was translated');
  t.equal(first.status, 'completed');
  t.match(first.output_text, /^Hello from plain\./, 'output_text');
  t.ok(first.usage!.input_tokens > 0, 'input tokens');
  t.equal(first.usage!.output_tokens, 16, 'output tokens');
  const afterFirst = await backendRequests(origin, 'plain');
  t.equal(afterFirst, 2, 'the first request found /v1/responses missing (404), then went as a chat completion');
  await client.responses.create({ model: 'plain', input: 'again' });
  t.equal(await backendRequests(origin, 'plain'), afterFirst + 1, 'learned: the next one goes straight to chat');
  t.equal((await fetch(`${origin}/hub/api/models/plain/stop`, { method: 'POST' })).status, 200);
  await client.responses.create({ model: 'plain', input: 'after a restart' });
  t.equal(await backendRequests(origin, 'plain'), 2, 'a new process (maybe a new server version) is asked again');

  const raw = await client.responses.create({ model: 'raw', input: 'x' }).catch((e: unknown) => e);
  t.type(raw, OpenAI.NotFoundError, 'translate: { responses: never } passes the server\'s 404 on');
  t.equal((raw as InstanceType<typeof OpenAI.NotFoundError>).headers?.get('x-hub-translated'), null);
  t.match((raw as Error).message, /demo-model has no POST \/v1\/responses/);

  const events = await client.responses.create({ model: 'plain', input: [{ role: 'user', content: 'Say hi' }], stream: true, max_output_tokens: 6 });
  const types: string[] = [];
  const sequence: number[] = [];
  let streamed = '';
  let final: OpenAI.Responses.Response | undefined;
  for await (const e of events) {
    types.push(e.type);
    sequence.push(e.sequence_number);
    if (e.type === 'response.output_text.delta') streamed += e.delta;
    if (e.type === 'response.incomplete' || e.type === 'response.completed') final = e.response;
  }
  t.same(types, [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    ...Array(6).fill('response.output_text.delta'),
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete',
  ], 'typed events in order; max_output_tokens cut it');
  t.same(sequence, types.map((_, i) => i), 'sequence numbers count up from 0');
  t.equal(final?.incomplete_details?.reason, 'max_output_tokens');
  t.equal(streamed, (final?.output[0] as { content: Array<{ text: string }> }).content[0].text, 'the deltas add up to the final text');
  t.equal(final?.usage?.output_tokens, 6, 'usage in the last event');

  const done = await client.responses.stream({ model: 'plain', input: 'again' }).finalResponse();
  t.match(done.output_text, /^Hello from plain\./, 'the SDK stream helper assembles the response');

  const call = await client.responses.create({ model: 'plain', input: 'weather in Paris?', tools: [{ type: 'function', name: 'weather', parameters: weatherSchema, strict: false }] });
  const fc = call.output.find((o) => o.type === 'function_call');
  t.match(fc, { type: 'function_call', name: 'weather', status: 'completed' }, 'a function_call item');
  t.same(JSON.parse(fc!.arguments), { city: 'demo' });
  const answer = await client.responses.create({
    model: 'plain',
    input: [{ role: 'user', content: 'weather in Paris?' }, fc!, { type: 'function_call_output', call_id: fc!.call_id, output: 'sunny' }],
    tools: [{ type: 'function', name: 'weather', parameters: weatherSchema, strict: false }],
  });
  t.match(answer.output_text, /^Hello from plain\./, 'the tool result goes back, the model answers in text');

  const langchain = new ChatOpenAI({ model: 'plain', apiKey: 'unused', configuration: { baseURL: `${origin}/v1` }, useResponsesApi: true });
  const reply = await langchain.invoke('Hello!');
  t.match(reply.text, /^Hello from plain\./, 'LangChain with useResponsesApi');
  t.equal(reply.usage_metadata?.output_tokens, 16);
  let lcText = '';
  for await (const chunk of await langchain.stream('Stream please')) lcText += chunk.text;
  t.match(lcText, /^Hello from plain\./, 'and streaming');
});

t.test('Vercel AI SDK default provider: generateText, streamText and a tool loop over a chat-only backend', async (t) => {
  const { base, hub } = await startTestHub(t, MODELS);
  const openai = createOpenAI({ baseURL: base, apiKey: 'unused' });

  const result = await generateText({ model: openai('plain'), prompt: 'Hello!' });
  t.match(result.text, /^Hello from plain\./);
  t.equal(result.usage.outputTokens, 16);
  t.equal(result.finishReason, 'stop', 'chat "stop" is a completed response');

  const streamed = streamText({ model: openai('plain'), prompt: 'Stream please', maxOutputTokens: 4 });
  let text = '';
  for await (const delta of streamed.textStream) text += delta;
  t.equal(text, 'Hello from plain.');
  t.equal((await streamed.usage).outputTokens, 4);
  t.equal(await streamed.finishReason, 'length', 'chat "length" is an incomplete response, which the SDK reports as length');

  const thought = await generateText({ model: openai('thinker'), prompt: 'Hello!' });
  t.equal(thought.reasoningText, 'Pondering', 'reasoning_content arrives as reasoning');
  t.match(thought.text, /^Hello from thinker\./);
  const thoughtStream = streamText({ model: openai('thinker'), prompt: 'Stream please' });
  let reasoning = '';
  for await (const part of thoughtStream.fullStream) if (part.type === 'reasoning-delta') reasoning += part.text;
  t.equal(reasoning, 'Pondering', 'streamed as reasoning deltas');
  t.match(await thoughtStream.text, /^Hello from thinker\./);

  const calls: unknown[] = [];
  const weather = tool({ description: 'the weather in a city', inputSchema: jsonSchema<{ city: string }>(weatherSchema), execute: async ({ city }) => { calls.push(city); return `sunny in ${city}`; } });
  const loop = await generateText({ model: openai('plain'), prompt: 'weather in Paris?', tools: { weather }, stopWhen: stepCountIs(3) });
  t.equal(loop.steps.length, 2, 'a tool step, then an answer');
  t.equal(loop.steps[0].finishReason, 'tool-calls');
  t.same(loop.steps[0].toolCalls.map((c) => [c.toolName, c.input]), [['weather', { city: 'demo' }]]);
  t.same(calls, ['demo'], 'the tool ran once');
  t.match(loop.text, /^Hello from plain\./, 'the final text');

  const streamedLoop = streamText({ model: openai('forced'), prompt: 'weather?', tools: { weather }, stopWhen: stepCountIs(3) });
  const parts: string[] = [];
  for await (const part of streamedLoop.fullStream) if (part.type === 'tool-call' || part.type === 'tool-result' || part.type === 'finish-step') parts.push(part.type);
  t.same(parts, ['tool-call', 'tool-result', 'finish-step', 'finish-step'], 'streamed: the call, its result, two steps');
  t.match(await streamedLoop.text, /^Hello from forced\./);

  const usage = (await getJson(`${hub.origin}/hub/api/usage`)).body;
  const plain = usage.models.find((u: { model: string }) => u.model === 'plain');
  t.ok(plain.tokens_in > 0 && plain.tokens_out >= 16 + 4 + 8, `translated requests count their tokens (${JSON.stringify(plain)})`);
});
