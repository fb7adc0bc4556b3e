// Anthropic's Messages API ⇄ Chat Completions, as pure functions on JSON: `system` becomes a system
// message, content blocks become chat content (images as image_url parts, tool_use blocks as
// tool_calls, tool_result blocks as tool messages), tools and tool_choice are mapped, and a chat
// answer becomes a Message with text and tool_use blocks and Anthropic's stop_reason. The streaming
// half is in messages-stream.ts.
import {
  copyFields, firstChoice, isObject, malformed, newId, parseArguments, reasoningOf, unsupported,
  type ChatCompletion, type ChatContentPart, type ChatMessage, type ChatRequest, type ChatToolCall, type ChatUsage,
} from './chat.js';

const API = '/v1/messages';

export function messagesToChat(body: Record<string, unknown>): ChatRequest {
  const messages: ChatMessage[] = [];
  if (body.system !== undefined && body.system !== null) {
    const system = typeof body.system === 'string' ? body.system : textBlocks(body.system, 'system');
    if (system) messages.push({ role: 'system', content: system });
  }
  if (!Array.isArray(body.messages)) throw malformed('"messages" must be a list of messages', 'messages');
  body.messages.forEach((m, i) => addMessage(messages, m, `messages[${i}]`));

  const chat: ChatRequest = { model: String(body.model), messages };
  if (typeof body.max_tokens === 'number') chat.max_tokens = body.max_tokens;
  copyFields(body, chat, ['temperature', 'top_p', 'top_k']);
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length > 0) chat.stop = body.stop_sequences;
  if (Array.isArray(body.tools) && body.tools.length > 0) chat.tools = body.tools.map(toolOf);
  if (isObject(body.tool_choice)) {
    const c = body.tool_choice;
    if (c.type === 'auto') chat.tool_choice = 'auto';
    else if (c.type === 'any') chat.tool_choice = 'required';
    else if (c.type === 'none') chat.tool_choice = 'none';
    else if (c.type === 'tool' && typeof c.name === 'string') chat.tool_choice = { type: 'function', function: { name: c.name } };
    else throw unsupported(API, `"tool_choice": ${JSON.stringify(c)}`, 'tool_choice');
    if (c.disable_parallel_tool_use === true) chat.parallel_tool_calls = false;
  }
  if (isObject(body.metadata) && typeof body.metadata.user_id === 'string') chat.user = body.metadata.user_id;
  if (body.stream === true) Object.assign(chat, { stream: true, stream_options: { include_usage: true } });
  return chat;
}

/** count_tokens as a chat request that generates one token: the backend's prompt_tokens is the count. */
export function countTokensToChat(body: Record<string, unknown>): ChatRequest {
  const chat = messagesToChat({ ...body, stream: false, max_tokens: 1 });
  delete chat.tool_choice;
  return chat;
}

function addMessage(messages: ChatMessage[], m: unknown, where: string): void {
  if (!isObject(m) || (m.role !== 'user' && m.role !== 'assistant')) throw malformed(`${where}: a message must be an object with role "user" or "assistant"`, 'messages');
  if (typeof m.content === 'string') return void messages.push({ role: m.role, content: m.content });
  if (!Array.isArray(m.content)) throw malformed(`${where}: "content" must be a string or a list of content blocks`, 'messages');
  if (m.role === 'assistant') {
    let text = '';
    const calls: ChatToolCall[] = [];
    m.content.forEach((block, i) => {
      const at = `${where}.content[${i}]`;
      if (!isObject(block)) throw malformed(`${at}: a content block must be an object`, 'messages');
      if (block.type === 'text') text += String(block.text ?? '');
      else if (block.type === 'tool_use') calls.push({ id: String(block.id), type: 'function', function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) } });
      else if (block.type === 'thinking' || block.type === 'redacted_thinking') return; // earlier reasoning: chat templates drop it too
      else throw unsupported(API, `${at}: a content block of type ${JSON.stringify(block.type)}`, 'messages');
    });
    messages.push({ role: 'assistant', content: text || (calls.length ? null : ''), ...(calls.length ? { tool_calls: calls } : {}) });
    return;
  }
  // A user turn: tool results become tool messages, which must directly follow the assistant's calls.
  const parts: ChatContentPart[] = [];
  m.content.forEach((block, i) => {
    const at = `${where}.content[${i}]`;
    if (!isObject(block)) throw malformed(`${at}: a content block must be an object`, 'messages');
    if (block.type === 'text') parts.push({ type: 'text', text: String(block.text ?? '') });
    else if (block.type === 'image') parts.push(imagePart(block.source, at));
    else if (block.type === 'tool_result') {
      const content = typeof block.content === 'string' ? block.content : block.content === undefined ? '' : textBlocks(block.content, `${at}.content`);
      messages.push({ role: 'tool', tool_call_id: String(block.tool_use_id), content: block.is_error === true ? `Error: ${content}` : content });
    } else throw unsupported(API, `${at}: a content block of type ${JSON.stringify(block.type)}`, 'messages');
  });
  if (parts.length === 0) return;
  messages.push({ role: 'user', content: parts.every((p) => p.type === 'text') ? parts.map((p) => (p as { text: string }).text).join('\n') : parts });
}

function imagePart(source: unknown, at: string): ChatContentPart {
  if (isObject(source) && source.type === 'base64' && typeof source.media_type === 'string' && typeof source.data === 'string') {
    return { type: 'image_url', image_url: { url: `data:${source.media_type};base64,${source.data}` } };
  }
  if (isObject(source) && source.type === 'url' && typeof source.url === 'string') return { type: 'image_url', image_url: { url: source.url } };
  throw unsupported(API, `${at}: an image whose source is ${JSON.stringify(isObject(source) ? source.type : source)} (base64 and url images are translated)`, 'messages');
}

function textBlocks(blocks: unknown, where: string): string {
  if (!Array.isArray(blocks)) throw malformed(`${where} must be a string or a list of text blocks`, where.split(/[.[]/)[0]);
  return blocks.map((b, i) => {
    if (isObject(b) && b.type === 'text' && typeof b.text === 'string') return b.text;
    throw unsupported(API, `${where}[${i}]: a block of type ${JSON.stringify(isObject(b) ? b.type : typeof b)} here`, where.split(/[.[]/)[0]);
  }).join('\n');
}

function toolOf(tool: unknown, i: number) {
  if (isObject(tool) && typeof tool.name === 'string' && (tool.type === undefined || tool.type === 'custom')) {
    const fn: Record<string, unknown> = { name: tool.name, parameters: tool.input_schema ?? { type: 'object', properties: {} } };
    copyFields(tool, fn, ['description']);
    return { type: 'function', function: fn };
  }
  throw unsupported(API, `tools[${i}] of type ${JSON.stringify(isObject(tool) ? tool.type : typeof tool)} (a tool Anthropic runs; only tools with an input_schema are translated)`, 'tools');
}

// ---- the answer ----

const STOP: Record<string, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', function_call: 'tool_use', content_filter: 'refusal' };

/** Anthropic's stop_reason for a chat finish_reason; a reply with tool calls stops for them whatever the backend said. */
export function stopReasonOf(finish: string | null | undefined, hasToolCalls: boolean): string {
  if (hasToolCalls && finish !== 'length') return 'tool_use';
  return (finish && STOP[finish]) || 'end_turn';
}

export const usageOf = (usage: ChatUsage | undefined) => ({
  input_tokens: usage?.prompt_tokens ?? 0,
  output_tokens: usage?.completion_tokens ?? 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
});

/** Whether the client asked for thinking blocks (Anthropic sends them only then). */
export const wantsThinking = (request: Record<string, unknown>) => isObject(request.thinking) && request.thinking.type !== 'disabled';

export function chatToMessage(completion: ChatCompletion, request: Record<string, unknown>) {
  const choice = firstChoice(completion);
  const content: Array<Record<string, unknown>> = [];
  const thought = reasoningOf(choice.message);
  if (thought && wantsThinking(request)) content.push({ type: 'thinking', thinking: thought, signature: '' });
  const text = choice.message?.content;
  if (typeof text === 'string' && text !== '') content.push({ type: 'text', text });
  const calls = choice.message?.tool_calls ?? [];
  for (const call of calls) content.push({ type: 'tool_use', id: call.id || newId('toolu'), name: call.function.name, input: parseArguments(call.function.arguments) });
  return {
    id: newId('msg'),
    type: 'message',
    role: 'assistant',
    model: String(request.model ?? completion.model), // as the client named it, as the streamed answer does
    content,
    stop_reason: stopReasonOf(choice.finish_reason, calls.length > 0),
    stop_sequence: null,
    usage: usageOf(completion.usage),
  };
}
