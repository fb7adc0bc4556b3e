// OpenAI's Responses API ⇄ Chat Completions, as pure functions on JSON: a Responses request becomes
// a chat request (instructions → system message, input items → messages, function tools, output
// limits, text.format → response_format), and a chat answer becomes a Responses object (a message
// item and function_call items, status from finish_reason, usage). The streaming half is in
// responses-stream.ts.
import {
  copyFields, firstChoice, isObject, malformed, newId, reasoningOf, unsupported,
  type ChatCompletion, type ChatContentPart, type ChatMessage, type ChatRequest, type ChatToolCall, type ChatUsage,
} from './chat.js';
import { recallItem, rememberItem } from './item-store.js';

const API = '/v1/responses';

export function responsesToChat(body: Record<string, unknown>): ChatRequest {
  if (body.previous_response_id != null) throw unsupported(API, '"previous_response_id" (a conversation the server stored)', 'previous_response_id');
  if (body.conversation != null) throw unsupported(API, '"conversation" (a conversation the server stored)', 'conversation');
  if (body.background === true) throw unsupported(API, '"background": true', 'background');
  const messages: ChatMessage[] = [];
  if (typeof body.instructions === 'string' && body.instructions) messages.push({ role: 'system', content: body.instructions });
  if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input });
  else if (Array.isArray(body.input)) body.input.forEach((item, i) => addItem(messages, item, `input[${i}]`));
  else if (body.input !== undefined) throw malformed('"input" must be a string or a list of input items', 'input');

  const chat: ChatRequest = { model: String(body.model), messages };
  if (typeof body.max_output_tokens === 'number') chat.max_tokens = body.max_output_tokens;
  copyFields(body, chat, ['temperature', 'top_p', 'parallel_tool_calls', 'user', 'top_logprobs']);
  if (chat.top_logprobs !== undefined) chat.logprobs = true;
  const effort = isObject(body.reasoning) ? body.reasoning.effort : undefined;
  if (typeof effort === 'string') chat.reasoning_effort = effort;
  if (Array.isArray(body.tools) && body.tools.length > 0) chat.tools = body.tools.map(toolOf);
  if (body.tool_choice !== undefined) chat.tool_choice = toolChoiceOf(body.tool_choice);
  const format = isObject(body.text) && isObject(body.text.format) ? body.text.format : undefined;
  if (format?.type === 'json_schema') {
    chat.response_format = { type: 'json_schema', json_schema: { name: format.name ?? 'response', schema: format.schema, strict: format.strict ?? undefined, description: format.description ?? undefined } };
  } else if (format?.type === 'json_object') chat.response_format = { type: 'json_object' };
  if (body.stream === true) Object.assign(chat, { stream: true, stream_options: { include_usage: true } });
  return chat;
}

function addItem(messages: ChatMessage[], raw: unknown, where: string): void {
  if (!isObject(raw)) throw malformed(`${where}: an input item must be an object`, 'input');
  let item = raw;
  if (item.type === 'item_reference') {
    const found = recallItem(String(item.id));
    if (!isObject(found)) {
      throw malformed(`${where}: the item_reference "${String(item.id)}" is unknown to the hub (it keeps the recent items it produced, and its backend stores none); send the item itself (the Vercel AI SDK does with providerOptions.openai.store = false)`, 'input');
    }
    item = found;
  }
  const type = item.type ?? (item.role !== undefined ? 'message' : undefined);
  const last = messages.at(-1);
  switch (type) {
    case 'message': {
      const role = item.role;
      if (role === 'system' || role === 'developer') return void messages.push({ role: 'system', content: textOnly(item.content, where) });
      if (role === 'user') return void messages.push({ role: 'user', content: userContent(item.content, where) });
      if (role === 'assistant') {
        const text = textOnly(item.content, where);
        if (last?.role === 'assistant' && !last.tool_calls) last.content = (last.content ?? '') + text;
        else messages.push({ role: 'assistant', content: text });
        return;
      }
      throw malformed(`${where}: unknown role ${JSON.stringify(role)}; use user, assistant, system or developer`, 'input');
    }
    case 'function_call': {
      const call: ChatToolCall = { id: String(item.call_id ?? item.id), type: 'function', function: { name: String(item.name), arguments: String(item.arguments ?? '') } };
      if (last?.role === 'assistant') (last.tool_calls ??= []).push(call);
      else messages.push({ role: 'assistant', content: null, tool_calls: [call] });
      return;
    }
    case 'function_call_output':
      return void messages.push({ role: 'tool', tool_call_id: String(item.call_id), content: typeof item.output === 'string' ? item.output : textOnly(item.output, `${where}.output`) });
    case 'reasoning':
      return; // the model's own earlier reasoning: chat templates drop it too
  }
  throw unsupported(API, `${where}: an input item of type ${JSON.stringify(type)}`, 'input');
}

/** Text parts joined; anything else in a place that only takes text is refused. */
function textOnly(content: unknown, where: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw malformed(`${where}: "content" must be a string or a list of parts`, 'input');
  return content.map((part, i) => {
    if (isObject(part) && typeof part.text === 'string' && ['input_text', 'output_text', 'text'].includes(String(part.type))) return part.text;
    if (isObject(part) && part.type === 'refusal' && typeof part.refusal === 'string') return part.refusal;
    throw unsupported(API, `${where}.content[${i}]: a part of type ${JSON.stringify(isObject(part) ? part.type : typeof part)} here`, 'input');
  }).join('');
}

function userContent(content: unknown, where: string): string | ChatContentPart[] {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw malformed(`${where}: "content" must be a string or a list of parts`, 'input');
  const parts = content.map((part, i): ChatContentPart => {
    if (isObject(part) && part.type === 'input_text' && typeof part.text === 'string') return { type: 'text', text: part.text };
    if (isObject(part) && part.type === 'input_image' && typeof part.image_url === 'string') {
      return { type: 'image_url', image_url: { url: part.image_url, ...(typeof part.detail === 'string' ? { detail: part.detail } : {}) } };
    }
    const kind = isObject(part) ? (part.type === 'input_image' ? 'an input_image by file_id' : `a part of type ${JSON.stringify(part.type)}`) : 'a part that is not an object';
    throw unsupported(API, `${where}.content[${i}]: ${kind}`, 'input');
  });
  return parts.every((p) => p.type === 'text') ? parts.map((p) => (p as { text: string }).text).join('\n') : parts;
}

function toolOf(tool: unknown, i: number) {
  if (isObject(tool) && tool.type === 'function' && typeof tool.name === 'string') {
    const fn: Record<string, unknown> = { name: tool.name, parameters: tool.parameters ?? { type: 'object', properties: {} } };
    copyFields(tool, fn, ['description', 'strict']);
    return { type: 'function', function: fn };
  }
  throw unsupported(API, `tools[${i}] of type ${JSON.stringify(isObject(tool) ? tool.type : typeof tool)} (only "function" tools exist in Chat Completions)`, 'tools');
}

function toolChoiceOf(choice: unknown): unknown {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice;
  if (isObject(choice) && choice.type === 'function' && typeof choice.name === 'string') return { type: 'function', function: { name: choice.name } };
  throw unsupported(API, `"tool_choice": ${JSON.stringify(choice)}`, 'tool_choice');
}

// ---- the answer ----

export interface ResponseState {
  id: string;
  createdAt: number;
  model: string;
  request: Record<string, unknown>;
  output: Array<Record<string, unknown>>;
  /** The chat finish_reason; undefined while in progress. */
  finish?: string | null;
  usage?: ChatUsage;
}

/** Responses `usage` from chat usage (null when the backend reported none). */
export function usageOf(usage: ChatUsage | undefined) {
  if (!usage || typeof usage.prompt_tokens !== 'number') return null;
  const output = usage.completion_tokens ?? 0;
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.prompt_tokens + output,
  };
}

/** A response that stopped on a limit or a filter is "incomplete", and says why (what clients map to their finish reasons). */
const INCOMPLETE: Record<string, string> = { length: 'max_output_tokens', content_filter: 'content_filter' };

export function responseObject(s: ResponseState) {
  const done = s.finish !== undefined;
  const incomplete = done && s.finish ? INCOMPLETE[s.finish] : undefined;
  const r = s.request;
  return {
    id: s.id,
    object: 'response',
    created_at: s.createdAt,
    status: !done ? 'in_progress' : incomplete ? 'incomplete' : 'completed',
    error: null,
    incomplete_details: incomplete ? { reason: incomplete } : null,
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    model: s.model,
    output: s.output,
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: null,
    store: false,
    temperature: r.temperature ?? 1,
    text: r.text ?? { format: { type: 'text' } },
    tool_choice: r.tool_choice ?? 'auto',
    tools: r.tools ?? [],
    top_p: r.top_p ?? 1,
    truncation: 'disabled',
    usage: done ? usageOf(s.usage) : null,
    metadata: r.metadata ?? {},
  };
}

export const messageItem = (id: string, text: string, status: string) => ({
  id, type: 'message', status, role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
});

export const reasoningItem = (id: string, text: string) => ({ id, type: 'reasoning', summary: [{ type: 'summary_text', text }] });

export const functionCallItem = (id: string, call: ChatToolCall, status: string) => ({
  id, type: 'function_call', status, call_id: call.id, name: call.function.name, arguments: call.function.arguments,
});

/** A whole chat answer as a Responses object; its items are kept for later item_references. */
export function chatToResponse(completion: ChatCompletion, request: Record<string, unknown>) {
  const choice = firstChoice(completion);
  const output: Array<Record<string, unknown>> = [];
  const status = choice.finish_reason === 'length' ? 'incomplete' : 'completed';
  const thought = reasoningOf(choice.message);
  if (thought) output.push(reasoningItem(newId('rs'), thought));
  const text = choice.message?.content;
  if (typeof text === 'string' && text !== '') output.push(messageItem(newId('msg'), text, status));
  for (const call of choice.message?.tool_calls ?? []) output.push(functionCallItem(newId('fc'), call, 'completed'));
  for (const item of output) rememberItem(String(item.id), item);
  const createdAt = completion.created ?? Math.floor(Date.now() / 1000);
  // The model as the client named it (a server may report a file path): as the streamed answer does.
  return responseObject({ id: newId('resp'), createdAt, model: String(request.model ?? completion.model), request, output, finish: choice.finish_reason ?? null, usage: completion.usage });
}
