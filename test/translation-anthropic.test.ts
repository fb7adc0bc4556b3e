// Anthropic's Messages API for a backend that has only Chat Completions (the demo backend with
// --no-messages), with the published Anthropic SDK: create, stream, tool_use both ways, thinking,
// countTokens. And errors: a backend's error in the client API's envelope (also mid-stream, for both
// SDKs), a crash mid-stream, and requests that cannot be translated refused with a 400 that starts
// nothing.
import Anthropic from '@anthropic-ai/sdk';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import t from 'tap';
import { startTestHub } from './helpers.js';
import { MODELS, user, weatherSchema } from './support/translation.js';

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
async function failingServer(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; hits: string[] }> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.url === '/health') return res.end('ok');
      hits.push(req.url ?? '');
      if (req.url !== '/v1/chat/completions') { res.writeHead(404); return res.end('not here'); }
      if (JSON.parse(body).model === 'ghost') {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { message: 'The model `ghost` does not exist.', type: 'NotFoundError', code: 404 } }));
      }
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

t.test('errors: the backend\'s in the client API\'s envelope (also mid-stream); untranslatable requests are a 400 that starts nothing', async (t) => {
  const { url, hits } = await failingServer(t);
  const remotes = `  failing: { url: "${url}", translate: { responses: always, messages: always } }\n  ghostly: { url: "${url}", served_model: ghost }\n`;
  const { origin, client, spawns } = await startTestHub(t, `${MODELS}${remotes}`);
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

  // A server without /v1/messages that does not know the model either: the translation's 404 is passed
  // on, and teaches nothing (the next request asks /v1/messages again).
  hits.length = 0;
  for (let i = 0; i < 2; i++) {
    const ghost = await anthropic.messages.create({ model: 'ghostly', max_tokens: 5, messages: user('hi') }).catch((e: unknown) => e);
    t.type(ghost, Anthropic.NotFoundError);
    t.match((ghost as Error).message, /The model `ghost` does not exist/);
  }
  t.same(hits, ['/v1/messages', '/v1/chat/completions', '/v1/messages', '/v1/chat/completions'], 'asked natively each time');

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
