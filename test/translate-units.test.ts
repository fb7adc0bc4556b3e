// The translators on their own, without a backend: request mapping (system prompts, tools and tool
// results, images, limits, formats), answer mapping (stop reasons, items), the stream writers' event
// order, the chat stream reader's tolerance of server differences, bad input, and the config key.
import t from 'tap';
import { ConfigError } from '../lib/config/errors.js';
import { parseConfig } from '../lib/config/load.js';
import { HubError } from '../lib/errors.js';
import { ChatStreamReader, type ChatStreamTarget } from '../lib/translate/chat-stream.js';
import { chatToMessage, countTokensToChat, messagesToChat } from '../lib/translate/messages.js';
import { MessagesStreamWriter } from '../lib/translate/messages-stream.js';
import { ResponsesStreamWriter } from '../lib/translate/responses-stream.js';
import { chatToResponse, responsesToChat } from '../lib/translate/responses.js';

const refused = (fn: () => unknown): HubError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof HubError) return err;
    throw err;
  }
  throw new Error('expected a 400');
};

t.test('Messages → chat: system, images, tool_use and tool_result in order, limits, tool_choice', async (t) => {
  const chat = messagesToChat({
    model: 'm', max_tokens: 100, stop_sequences: ['END'], temperature: 0.2, top_k: 5, stream: true,
    system: [{ type: 'text', text: 'be brief' }],
    tools: [{ name: 'weather', description: 'w', input_schema: { type: 'object' } }],
    tool_choice: { type: 'any', disable_parallel_tool_use: true },
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'hmm', signature: 's' }, { type: 'text', text: 'checking' }, { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'sunny' }] }, { type: 'text', text: 'and tomorrow?' }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'boom', is_error: true }] },
    ],
  });
  t.same(chat.messages, [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] },
    { role: 'assistant', content: 'checking', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: 'toolu_1', content: 'sunny' },
    { role: 'user', content: 'and tomorrow?' },
    { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: boom' },
  ], 'tool results first, right after the calls; thinking dropped');
  t.match(chat, { max_tokens: 100, stop: ['END'], temperature: 0.2, top_k: 5, tool_choice: 'required', parallel_tool_calls: false, stream: true, stream_options: { include_usage: true } });
  t.same(chat.tools, [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' }, description: 'w' } }]);
  t.same(messagesToChat({ model: 'm', messages: [], tool_choice: { type: 'tool', name: 'x' } }).tool_choice, { type: 'function', function: { name: 'x' } });
  t.match(countTokensToChat({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }), { max_tokens: 1, stream: undefined });

  t.match(refused(() => messagesToChat({ model: 'm', messages: 'hi' })), { status: 400, param: 'messages', message: /"messages" must be a list/ });
  t.match(refused(() => messagesToChat({ model: 'm', messages: [{ role: 'system', content: 'x' }] })).message, /messages\[0\]: a message must be an object with role "user" or "assistant"/);
  t.match(refused(() => messagesToChat({ model: 'm', messages: [], tools: [{ type: 'web_search_20250305', name: 'web_search' }] })).message, /tools\[0\] of type "web_search_20250305"/);
  t.match(refused(() => messagesToChat({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'f' } }] }] })).message, /an image whose source is "file" \(base64 and url images are translated\)/);
});

t.test('chat → Message: stop reasons, tool_use blocks, usage', async (t) => {
  const reply = (finish: string, message: object) => chatToMessage({ model: 'b', choices: [{ message, finish_reason: finish }], usage: { prompt_tokens: 7, completion_tokens: 3 } }, { model: 'm' });
  t.match(reply('stop', { content: 'hi' }), { type: 'message', role: 'assistant', content: [{ type: 'text', text: 'hi' }], stop_reason: 'end_turn', usage: { input_tokens: 7, output_tokens: 3 } });
  t.equal(reply('length', { content: 'hi' }).stop_reason, 'max_tokens');
  t.equal(reply('content_filter', { content: '' }).stop_reason, 'refusal');
  const call = reply('stop', { content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: 'not json' } }] });
  t.equal(call.stop_reason, 'tool_use', 'a reply with tool calls stops for them (Ollama says "stop")');
  const thinking = chatToMessage({ choices: [{ message: { content: 'x', reasoning_content: 'hmm' }, finish_reason: 'stop' }] }, { model: 'm', thinking: { type: 'enabled', budget_tokens: 2000 } });
  t.same(thinking.content, [{ type: 'thinking', thinking: 'hmm', signature: '' }, { type: 'text', text: 'x' }], 'reasoning as a thinking block when asked for');
  t.same(reply('stop', { content: 'x', reasoning_content: 'hmm' }).content, [{ type: 'text', text: 'x' }], 'and left out when not');
  t.same(call.content, [{ type: 'tool_use', id: 'c1', name: 'f', input: { a: 1 } }, { type: 'tool_use', id: 'c2', name: 'g', input: { _raw: 'not json' } }]);
});

t.test('Responses → chat and back: instructions, items, references, formats, what cannot be translated', async (t) => {
  const chat = responsesToChat({
    model: 'm', instructions: 'be brief', max_output_tokens: 50, reasoning: { effort: 'low' }, stream: true,
    text: { format: { type: 'json_schema', name: 'out', schema: { type: 'object' }, strict: true } },
    tools: [{ type: 'function', name: 'f', parameters: { type: 'object' }, strict: true }],
    tool_choice: { type: 'function', name: 'f' },
    input: [
      { role: 'developer', content: 'rules' },
      { role: 'user', content: [{ type: 'input_text', text: 'see' }, { type: 'input_image', image_url: 'https://x/y.png', detail: 'low' }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'calling' }] },
      { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
      { type: 'function_call', call_id: 'c2', name: 'f', arguments: '{"x":1}' },
      { type: 'function_call_output', call_id: 'c1', output: 'one' },
      { type: 'function_call_output', call_id: 'c2', output: [{ type: 'input_text', text: 'two' }] },
      { type: 'reasoning', summary: [] },
    ],
  });
  t.same(chat.messages, [
    { role: 'system', content: 'be brief' },
    { role: 'system', content: 'rules' },
    { role: 'user', content: [{ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } }] },
    { role: 'assistant', content: 'calling', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }, { id: 'c2', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: 'one' },
    { role: 'tool', tool_call_id: 'c2', content: 'two' },
  ], 'calls join the assistant message before them; outputs become tool messages');
  t.match(chat, {
    max_tokens: 50, reasoning_effort: 'low', stream: true, stream_options: { include_usage: true },
    response_format: { type: 'json_schema', json_schema: { name: 'out', schema: { type: 'object' }, strict: true } },
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' }, strict: true } }],
    tool_choice: { type: 'function', function: { name: 'f' } },
  });

  const answer = chatToResponse({ choices: [{ message: { content: 'partial' }, finish_reason: 'length' }], usage: { prompt_tokens: 4, completion_tokens: 2 } }, { model: 'm' });
  t.match(answer, { object: 'response', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, usage: { input_tokens: 4, output_tokens: 2, total_tokens: 6 } });
  const item = answer.output[0] as { id: string };
  const followUp = responsesToChat({ model: 'm', input: [{ role: 'user', content: 'go on' }, { type: 'item_reference', id: item.id }] });
  t.same(followUp.messages.at(-1), { role: 'assistant', content: 'partial' }, 'an item_reference to an item the hub made resolves');

  t.match(refused(() => responsesToChat({ model: 'm', input: [{ type: 'item_reference', id: 'msg_gone' }] })).message, /the item_reference "msg_gone" is unknown to the hub .*send the item itself/);
  t.match(refused(() => responsesToChat({ model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] })).message, /input\[0\]\.content\[0\]: an input_image by file_id cannot be sent/);
  t.match(refused(() => responsesToChat({ model: 'm', input: [{ type: 'input_file' }] })).message, /input\[0\]: an input item of type "input_file"/);
  t.match(refused(() => responsesToChat({ model: 'm', input: 5 })), { param: 'input', message: /"input" must be a string or a list/ });
  t.match(refused(() => responsesToChat({ model: 'm', input: 'x', tool_choice: { type: 'web_search' } })), { param: 'tool_choice' });
});

t.test('streams: the chat reader takes server differences; the Messages writer orders blocks', async (t) => {
  const seen: unknown[] = [];
  const target: ChatStreamTarget = {
    reasoning: (d) => seen.push(['reasoning', d]),
    text: (d) => seen.push(['text', d]),
    toolStart: (i, id, name) => seen.push(['tool', i, id, name]),
    toolArgs: (i, d) => seen.push(['args', i, d]),
    end: (finish, usage) => seen.push(['end', finish, usage]),
    error: (m, c) => seen.push(['error', m, c]),
  };
  const reader = new ChatStreamReader(target);
  const chunk = (o: object) => `data: ${JSON.stringify(o)}\n\n`;
  const text = chunk({ choices: [{ delta: { role: 'assistant', reasoning_content: 'hmm' } }] }) + chunk({ choices: [{ delta: { reasoning: ' ok' } }] })
    + chunk({ choices: [{ delta: { content: 'Hi' } }] }) + ': keep-alive\n\n'
    + chunk({ choices: [{ delta: { tool_calls: [{ index: 0, id: 'c1', function: { name: 'f', arguments: '{"a":1}' } }] } }] })
    + chunk({ choices: [{ delta: {}, finish_reason: 'tool_calls' }], usage: { prompt_tokens: 3, completion_tokens: 4 } });
  reader.feed(text.slice(0, 17));
  reader.feed(text.slice(17)); // split anywhere
  reader.close(); // no [DONE]: the end of the stream ends it
  t.same(seen, [['reasoning', 'hmm'], ['reasoning', ' ok'], ['text', 'Hi'], ['tool', 0, 'c1', 'f'], ['args', 0, '{"a":1}'], ['end', 'tool_calls', { prompt_tokens: 3, completion_tokens: 4 }]]);

  const events: Array<{ type: string; index?: number; delta?: unknown; content_block?: { type: string } }> = [];
  const writer = new MessagesStreamWriter((s) => events.push(JSON.parse(s.split('data: ')[1])), { model: 'm', thinking: { type: 'enabled', budget_tokens: 1024 } });
  writer.begin();
  writer.reasoning('hmm');
  writer.text('Hi');
  writer.toolStart(0, 'c1', 'f');
  writer.toolArgs(0, '{"a":');
  writer.toolArgs(0, '1}');
  writer.end('stop', { prompt_tokens: 3, completion_tokens: 4 });
  t.same(events.map((e) => [e.type, e.index ?? null, e.content_block?.type ?? null]), [
    ['message_start', null, null], ['content_block_start', 0, 'thinking'], ['content_block_delta', 0, null], ['content_block_stop', 0, null],
    ['content_block_start', 1, 'text'], ['content_block_delta', 1, null], ['content_block_stop', 1, null],
    ['content_block_start', 2, 'tool_use'], ['content_block_delta', 2, null], ['content_block_delta', 2, null], ['content_block_stop', 2, null],
    ['message_delta', null, null], ['message_stop', null, null],
  ]);
  t.match(events.at(-2), { delta: { stop_reason: 'tool_use' }, usage: { input_tokens: 3, output_tokens: 4 } });
  const plain: Array<{ delta?: { stop_reason?: string } }> = [];
  const w2 = new MessagesStreamWriter((s) => plain.push(JSON.parse(s.split('data: ')[1])), { model: 'm' });
  w2.begin();
  w2.reasoning('not asked for: left out');
  w2.text('done');
  w2.end('stop', undefined);
  t.equal(plain.at(-2)?.delta?.stop_reason, 'end_turn', 'chat "stop" is end_turn');
  t.equal(plain.length, 6, 'no thinking block unless the request asked for thinking');

  const typed: Array<{ type: string; item?: { type: string } }> = [];
  const rw = new ResponsesStreamWriter((s) => typed.push(JSON.parse(s.split('data: ')[1])), { model: 'm' });
  rw.begin();
  rw.reasoning('hmm');
  rw.text('Hi');
  rw.end('stop', { prompt_tokens: 1, completion_tokens: 2 });
  t.same(typed.map((e) => e.item ? `${e.type}:${e.item.type}` : e.type), [
    'response.created', 'response.in_progress',
    'response.output_item.added:reasoning', 'response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta',
    'response.reasoning_summary_text.done', 'response.reasoning_summary_part.done', 'response.output_item.done:reasoning',
    'response.output_item.added:message', 'response.content_part.added', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done:message', 'response.completed',
  ], 'reasoning as a reasoning item before the message');
});

t.test('config: translate takes auto, always or never per API', async (t) => {
  const base = 'models:\n  m: { cmd: "srv --port ${PORT}", translate: ';
  t.same(parseConfig(`${base}{ responses: always } }\n`, '/etc/modelhub/hub.yaml').models.m.translate, { responses: 'always', messages: 'auto' });
  try {
    parseConfig(`${base}{ responses: sometimes, chat: never } }\n`, '/etc/modelhub/hub.yaml');
    t.fail('should be refused');
  } catch (err) {
    t.type(err, ConfigError);
    t.match((err as Error).message, /models\.m\.translate\.responses: expected one of auto, always, never, got "sometimes"/);
    t.match((err as Error).message, /models\.m\.translate.*chat/);
  }
});
