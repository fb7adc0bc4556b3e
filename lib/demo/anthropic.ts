// Anthropic's Messages API on the demo backend (POST /v1/messages and /v1/messages/count_tokens),
// which coding agents and the Anthropic SDK speak and llama-server and vLLM serve too: JSON, or SSE
// from message_start to message_stop with `usage`.
import type { ServerResponse } from 'node:http';
import { plan, randomId, textOf, type Generator } from './generate.js';
import { countTokens } from './text.js';
import { namedEvent, send, startEvents } from './wire.js';

/** The prompt: `system` (a string or text blocks) and every message's text. */
function promptOf(body: Record<string, unknown>): string {
  const parts = [textOf(body.system)];
  if (Array.isArray(body.messages)) for (const m of body.messages) parts.push(textOf((m as { content?: unknown })?.content));
  return parts.filter(Boolean).join('\n');
}

export function countMessageTokens(res: ServerResponse, body: Record<string, unknown>): void {
  send(res, 200, { input_tokens: countTokens(promptOf(body)) });
}

export async function messages(gen: Generator, res: ServerResponse, body: Record<string, unknown>): Promise<void> {
  const reply = plan(gen, promptOf(body), body.max_tokens);
  const left = gen.watch(res);
  const stopReason = reply.cut ? 'max_tokens' : 'end_turn';
  const message = (text: string | null, output: number) => ({
    id: randomId('msg'),
    type: 'message',
    role: 'assistant',
    model: gen.model,
    content: text === null ? [] : [{ type: 'text', text }],
    stop_reason: text === null ? null : stopReason,
    stop_sequence: null,
    usage: { input_tokens: reply.promptTokens, output_tokens: output, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });

  if (body.stream !== true) {
    let text = '';
    for (const t of reply.tokens) { if (left()) return; text += await gen.step(t); }
    return send(res, 200, message(text, reply.tokens.length));
  }
  startEvents(res);
  namedEvent(res, { type: 'message_start', message: message(null, 1) });
  namedEvent(res, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  namedEvent(res, { type: 'ping' });
  for (const t of reply.tokens) {
    if (left()) return;
    const text = await gen.step(t);
    namedEvent(res, { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } });
  }
  namedEvent(res, { type: 'content_block_stop', index: 0 });
  namedEvent(res, { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: reply.tokens.length } });
  namedEvent(res, { type: 'message_stop' });
  res.end();
}
