// OpenAI's Responses API on the demo backend (POST /v1/responses): what the Vercel AI SDK's default
// `openai('model')` and LangChain's `useResponsesApi` call. JSON, or SSE with the typed `response.*`
// events in the order OpenAI sends them, each with its sequence_number, and `usage` at the end.
import type { ServerResponse } from 'node:http';
import { plan, randomId, textOf, type Generator } from './generate.js';
import { namedEvent, send, startEvents } from './wire.js';

/** The prompt: `instructions` plus `input`, a string or a list of items (messages) with text content. */
function promptOf(body: Record<string, unknown>): string {
  const parts = typeof body.instructions === 'string' ? [body.instructions] : [];
  if (typeof body.input === 'string') parts.push(body.input);
  else if (Array.isArray(body.input)) for (const item of body.input) parts.push(textOf((item as { content?: unknown })?.content));
  return parts.filter(Boolean).join('\n');
}

export async function responses(gen: Generator, res: ServerResponse, body: Record<string, unknown>): Promise<void> {
  const reply = plan(gen, promptOf(body), body.max_output_tokens);
  const left = gen.watch(res);
  const id = randomId('resp');
  const itemId = randomId('msg');
  const createdAt = Math.floor(Date.now() / 1000);
  const usage = (output: number) => ({
    input_tokens: reply.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: reply.promptTokens + output,
  });
  const part = (text: string) => ({ type: 'output_text', text, annotations: [], logprobs: [] });
  const item = (text: string | null) => ({
    id: itemId,
    type: 'message',
    status: text === null ? 'in_progress' : reply.cut ? 'incomplete' : 'completed',
    role: 'assistant',
    content: text === null ? [] : [part(text)],
  });
  const response = (text: string | null) => ({
    id,
    object: 'response',
    created_at: createdAt,
    status: text === null ? 'in_progress' : reply.cut ? 'incomplete' : 'completed',
    error: null,
    incomplete_details: text !== null && reply.cut ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: gen.model,
    output: text === null ? [] : [item(text)],
    parallel_tool_calls: true,
    previous_response_id: body.previous_response_id ?? null,
    store: false,
    temperature: body.temperature ?? 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage: text === null ? null : usage(reply.tokens.length),
    metadata: body.metadata ?? {},
  });

  if (body.stream !== true) {
    let text = '';
    for (const t of reply.tokens) { if (left()) return; text += await gen.step(t); }
    return send(res, 200, response(text));
  }
  startEvents(res);
  let sequence = 0;
  const event = (type: string, fields: object) => namedEvent(res, { type, sequence_number: sequence++, ...fields });
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  event('response.created', { response: response(null) });
  event('response.in_progress', { response: response(null) });
  event('response.output_item.added', { output_index: 0, item: item(null) });
  event('response.content_part.added', { ...at, part: part('') });
  let text = '';
  for (const t of reply.tokens) {
    if (left()) return;
    const delta = await gen.step(t);
    text += delta;
    event('response.output_text.delta', { ...at, delta, logprobs: [] });
  }
  event('response.output_text.done', { ...at, text, logprobs: [] });
  event('response.content_part.done', { ...at, part: part(text) });
  event('response.output_item.done', { output_index: 0, item: item(text) });
  event(reply.cut ? 'response.incomplete' : 'response.completed', { response: response(text) });
  res.end();
}
