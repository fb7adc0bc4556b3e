// Responses and Messages for a backend that has only Chat Completions: the demo backend started with
// --no-responses --no-messages (it answers 404 there, as llama-server and older vLLM do), and the
// published SDKs on top: openai's client.responses (JSON, stream, stream helper, a tool call), the
// Vercel AI SDK's default openai('m') provider (generateText and streamText, a tool loop), and the
// Anthropic SDK (create, stream, tool_use both ways, countTokens). Also: the hub learns the missing
// API once per process, a per-model `translate:` forces it, backend errors arrive in the client
// API's envelope (also mid-stream), what cannot be translated is a clear 400, and tokens are counted.
import Anthropic from '@anthropic-ai/sdk';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import t from 'tap';
import { demo, getJson, startTestHub } from './helpers.js';

const MODELS = `
models:
  plain: { backend: demo, cmd: "${demo('--no-responses --no-messages --tool-calls')}" }
  forced: { backend: demo, cmd: "${demo('--tool-calls')}", translate: { responses: always, messages: always } }
  crashy: { backend: demo, cmd: "${demo('--no-responses --no-messages --token-rate 100 --crash-after 3')}" }
  thinker: { backend: demo, cmd: "${demo('--no-responses --no-messages --reasoning Pondering')}" }
  raw: { backend: demo, cmd: "${demo('--no-responses')}", translate: { responses: never } }
`;

const weatherSchema = { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] };
const user = (content: string) => [{ role: 'user' as const, content }];

/** How many requests the demo backend of `model` has served (404s included). */
async function backendRequests(origin: string, model: string): Promise<number> {
  return (await getJson(`${origin}/upstream/${model}/demo/stats`)).body.requests;
}

t.test('openai SDK: Responses JSON, stream, stream helper and a tool call, through Chat Completions', async (t) => {
  const { client, origin } = await startTestHub(t, MODELS);

  const first = await client.responses.create({ model: 'plain', input: 'Say hi', instructions: 'be brief' });
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
  const plain = (usage.models ?? usage).find?.((u: { model: string }) => u.model === 'plain') ?? usage.models?.plain;
  t.ok(plain.tokens_in > 0 && plain.tokens_out >= 16 + 4 + 8, `translated requests count their tokens (${JSON.stringify(plain)})`);
});

t.test('Anthropic SDK: create, stream, tool_use both ways and countTokens over a chat-only backend', async (t) => {
  const { origin } = await startTestHub(t, MODELS);
  const client = new Anthropic({ baseURL: origin, apiKey: 'unused', maxRetries: 0 });

  const msg = await client.messages.create({ model: 'plain', max_tokens: 20, system: 'be brief', messages: user('Hello!') });
  t.equal(msg.type, 'message');
  t.match((msg.content[0] as Anthropic.TextBlock).text, /^Hello from plain\./);
  t.equal(msg.stop_reason, 'max_tokens', 'chat "length" is max_tokens');
  t.equal(msg.usage.output_tokens, 20);
  t.ok(msg.usage.input_tokens > 0);

  const stream = client.messages.stream({ model: 'plain', max_tokens: 5, messages: user('Stream please') });
  let text = '';
  const events: string[] = [];
  stream.on('text', (delta) => { text += delta; });
  stream.on('streamEvent', (e) => events.push(e.type));
  const final = await stream.finalMessage();
  t.equal(text, (final.content[0] as Anthropic.TextBlock).text, 'text deltas add up to the final message');
  t.match(text, /^Hello from plain\./);
  t.same(events, ['message_start', 'content_block_start', ...Array(5).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop']);
  t.equal(final.stop_reason, 'max_tokens');
  t.equal(final.usage.output_tokens, 5, 'usage from message_delta');
  t.ok(final.usage.input_tokens > 0, 'input tokens from message_delta');

  const tools = [{ name: 'weather', description: 'the weather in a city', input_schema: weatherSchema }];
  const use = await client.messages.create({ model: 'plain', max_tokens: 64, tools, messages: user('weather in Paris?') });
  t.equal(use.stop_reason, 'tool_use');
  const block = use.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
  t.match(block, { type: 'tool_use', name: 'weather', input: { city: 'demo' } });
  const after = await client.messages.create({
    model: 'plain', max_tokens: 64, tools,
    messages: [...user('weather in Paris?'), { role: 'assistant', content: use.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: block.id, content: 'sunny' }] }],
  });
  t.equal(after.stop_reason, 'max_tokens');
  t.match((after.content[0] as Anthropic.TextBlock).text, /^Hello from plain\./, 'the tool result goes back as a tool message');

  const streamedUse = await client.messages.stream({ model: 'plain', max_tokens: 64, tools, tool_choice: { type: 'tool', name: 'weather' }, messages: user('weather?') }).finalMessage();
  t.equal(streamedUse.stop_reason, 'tool_use');
  t.same(streamedUse.content.map((b) => b.type === 'tool_use' && [b.name, b.input]), [['weather', { city: 'demo' }]], 'input_json_delta pieces make the input');

  const thinking = await client.messages.stream({ model: 'thinker', max_tokens: 3000, thinking: { type: 'enabled', budget_tokens: 2000 }, messages: user('Hello!') }).finalMessage();
  t.same(thinking.content.map((b) => b.type), ['thinking', 'text'], 'with thinking asked for, reasoning is a thinking block');
  t.equal((thinking.content[0] as Anthropic.ThinkingBlock).thinking, 'Pondering');
  const noThinking = await client.messages.create({ model: 'thinker', max_tokens: 3, messages: user('Hello!') });
  t.same(noThinking.content.map((b) => b.type), ['text'], 'and left out without');

  const count = await client.messages.countTokens({ model: 'plain', messages: user('three words here') });
  t.equal(count.input_tokens, 3, 'count_tokens from the backend\'s prompt_tokens');
});

/** A stand-in OpenAI-style server that fails in set ways (there is no such mode in the demo backend). */
async function failingServer(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.url === '/health') return res.end('ok');
      if (req.url !== '/v1/chat/completions') { res.writeHead(404); return res.end('not here'); }
      const prompt = JSON.stringify(JSON.parse(body).messages);
      if (prompt.includes('too long')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { message: 'the request exceeds the available context size', type: 'invalid_request_error', code: 400 } }));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ id: 'x', choices: [{ index: 0, delta: { content: 'Hel' }, finish_reason: null }] })}\n\n`);
      res.end(`data: ${JSON.stringify({ error: { message: 'out of memory', code: 'oom' } })}\n\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('errors: the backend\'s in the client API\'s envelope (also mid-stream); untranslatable requests are a 400 that starts nothing', async (t) => {
  const url = await failingServer(t);
  const { origin, client, spawns } = await startTestHub(t, `${MODELS}  failing: { url: "${url}", translate: { responses: always, messages: always } }\n`);
  const anthropic = new Anthropic({ baseURL: origin, apiKey: 'unused', maxRetries: 0 });

  const tooLong = await anthropic.messages.create({ model: 'failing', max_tokens: 5, messages: user('too long') }).catch((e: unknown) => e);
  t.type(tooLong, Anthropic.BadRequestError, 'a backend 400 is the SDK\'s BadRequestError');
  t.match((tooLong as Error).message, /exceeds the available context size/);
  t.match((tooLong as InstanceType<typeof Anthropic.BadRequestError>).error, { type: 'error', error: { type: 'invalid_request_error' } });
  const tooLongOpenAI = await client.responses.create({ model: 'failing', input: 'too long' }).catch((e: unknown) => e);
  t.type(tooLongOpenAI, OpenAI.BadRequestError);
  t.equal((tooLongOpenAI as InstanceType<typeof OpenAI.BadRequestError>).code, 'backend_error', 'a numeric backend code becomes a string one');

  const midStream = await (async () => {
    const s = anthropic.messages.stream({ model: 'failing', max_tokens: 5, messages: user('hi') });
    await s.finalMessage();
  })().then(() => undefined, (e: unknown) => e);
  t.match(String(midStream), /out of memory/, 'an in-band backend error ends the Anthropic stream as an error');
  const openaiStream = await client.responses.create({ model: 'failing', input: 'hi', stream: true });
  const raised = await (async () => { for await (const _ of openaiStream) void _; })().then(() => undefined, (e: unknown) => e);
  t.match(String(raised), /out of memory/, 'and the Responses stream too');

  const crash = await (async () => {
    const s = anthropic.messages.stream({ model: 'crashy', max_tokens: 50, messages: user('hi') });
    await s.finalMessage();
  })().then(() => undefined, (e: unknown) => e);
  t.match(String(crash), /the backend of model crashy closed the connection in the middle of its answer/, 'a crash mid-stream: the hub\'s in-band error in Anthropic\'s shape');

  const doc = await anthropic.messages.create({ model: 'forced', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] }).catch((e: unknown) => e);
  t.type(doc, Anthropic.BadRequestError);
  t.match((doc as InstanceType<typeof Anthropic.BadRequestError>).error, { error: { type: 'invalid_request_error' } });
  t.match(((doc as InstanceType<typeof Anthropic.BadRequestError>).error as { error: { message: string } }).error.message, /^messages\[0\]\.content\[0\]: a content block of type "document" cannot be sent to this model: its backend has no \/v1\/messages/);
  const search = await client.responses.create({ model: 'forced', input: 'x', tools: [{ type: 'web_search' }] }).catch((e: unknown) => e);
  t.type(search, OpenAI.BadRequestError);
  t.match((search as Error).message, /tools\[0\] of type "web_search"/);
  t.equal((search as InstanceType<typeof OpenAI.BadRequestError>).param, 'tools');
  const stored = await client.responses.create({ model: 'forced', input: 'x', previous_response_id: 'resp_1' }).catch((e: unknown) => e);
  t.match((stored as Error).message, /previous_response_id/);
  t.equal(spawns('forced'), 0, 'none of them started the model');
});
