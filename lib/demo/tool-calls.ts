// `--tool-calls`: a deterministic tool call on the demo backend's Chat Completions, so clients' tool
// loops (and the hub's translation of them) can be tested without a real model. A request that offers
// `tools` gets a call of the tool its `tool_choice` names (else the first one), with arguments made
// from the tool's JSON schema; a request whose last message is a tool result gets ordinary text, so a
// loop ends. The call is streamed like llama-server and vLLM stream one: the id and name first, then
// the arguments in pieces, then finish_reason "tool_calls".
import type { ServerResponse } from 'node:http';
import { send } from './wire.js';

interface ChatTool {
  type?: string;
  function?: { name?: string; parameters?: Schema };
}
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  enum?: unknown[];
  items?: Schema;
}

/** Whether this chat request should be answered with a tool call. */
export function wantsToolCall(body: Record<string, unknown>): boolean {
  const tools = body.tools;
  if (!Array.isArray(tools) || tools.length === 0 || body.tool_choice === 'none') return false;
  const last = Array.isArray(body.messages) ? (body.messages.at(-1) as { role?: string } | undefined) : undefined;
  return last?.role !== 'tool';
}

/** A value that satisfies a (simple) JSON schema: the first enum value, "demo", 1, true, [], or an object of its properties. */
export function sampleOf(schema: Schema | undefined): unknown {
  if (!schema || typeof schema !== 'object') return {};
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'string': return 'demo';
    case 'number': case 'integer': return 1;
    case 'boolean': return true;
    case 'array': return [];
    case 'null': return null;
  }
  const out: Record<string, unknown> = {};
  for (const [name, sub] of Object.entries(schema.properties ?? {})) out[name] = sampleOf(sub);
  return out;
}

interface Meta {
  id: string;
  created: number;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export function toolCall(res: ServerResponse, body: Record<string, unknown>, meta: Meta): void {
  const tools = body.tools as ChatTool[];
  const chosen = (body.tool_choice as { function?: { name?: string } } | undefined)?.function?.name;
  const tool = tools.find((t) => t.function?.name === chosen) ?? tools[0];
  const name = tool.function?.name ?? 'tool';
  const args = JSON.stringify(sampleOf(tool.function?.parameters));
  const callId = `call_demo_${meta.id.slice(-8)}`;
  const base = { id: meta.id, created: meta.created, model: meta.model };

  if (body.stream !== true) {
    const message = { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name, arguments: args } }] };
    return send(res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message, finish_reason: 'tool_calls', logprobs: null }], usage: meta.usage });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const chunk = (delta: object, finish: string | null = null) =>
    res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`);
  const half = Math.ceil(args.length / 2);
  chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: callId, type: 'function', function: { name, arguments: '' } }] });
  chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(0, half) } }] });
  chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(half) } }] });
  chunk({}, 'tool_calls');
  if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) {
    res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage: meta.usage })}\n\n`);
  }
  res.end('data: [DONE]\n\n');
}
