// `progress: reasoning` on the APIs whose streams open with an event of their own (Anthropic's
// Messages, OpenAI's Responses): the hub opens the stream itself, shows the load as the API's
// reasoning (a `thinking` block; a `reasoning` output item with a summary), closes that part, and then
// passes the backend's stream on without its own opening events, every block or item index moved up
// by one (and Responses' sequence numbers continued), so a client reads one well-formed stream whose
// first part is the load.
import type { ServerResponse } from 'node:http';
import { createParser } from 'eventsource-parser';

export interface ReasoningPrefix {
  /** The stream's opening events (written at once). */
  open(): string;
  /** One line of progress. */
  line(text: string): string;
  /** Ends the hub's part, before the backend's stream follows. */
  close(): string;
  /**
   * From now on, what is written to `res` (the backend's stream as it is, or a translation's) is
   * rewritten to follow the hub's part.
   */
  follow(res: ServerResponse): void;
}

const frame = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

export function messagesPrefix(model: string): ReasoningPrefix {
  return {
    open: () =>
      frame('message_start', { type: 'message_start', message: { id: `msg_modelhub_load_${Date.now().toString(36)}`, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } } }) +
      frame('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
    line: (text) => frame('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: `${text}\n` } }),
    close: () => frame('content_block_stop', { type: 'content_block_stop', index: 0 }),
    // The backend's message_start is dropped (the stream has one); its blocks come after the thinking.
    follow: (res) =>
      rewrite(res, (type, data) => {
        if (type === 'message_start') return undefined;
        if (typeof data.index === 'number') data.index += 1;
        return data;
      }),
  };
}

export function responsesPrefix(model: string): ReasoningPrefix {
  let sequence = 0;
  const id = `rs_modelhub_load_${Date.now().toString(36)}`;
  const ev = (type: string, fields: object) => frame(type, { type, sequence_number: sequence++, ...fields });
  const response = { id: `resp_modelhub_load_${Date.now().toString(36)}`, object: 'response', created_at: Math.floor(Date.now() / 1000), status: 'in_progress', model, output: [] };
  let text = '';
  return {
    open: () =>
      ev('response.created', { response }) +
      ev('response.in_progress', { response }) +
      ev('response.output_item.added', { output_index: 0, item: { id, type: 'reasoning', summary: [] } }) +
      ev('response.reasoning_summary_part.added', { item_id: id, output_index: 0, summary_index: 0, part: { type: 'summary_text', text: '' } }),
    line: (line) => {
      text += `${line}\n`;
      return ev('response.reasoning_summary_text.delta', { item_id: id, output_index: 0, summary_index: 0, delta: `${line}\n` });
    },
    close: () =>
      ev('response.reasoning_summary_text.done', { item_id: id, output_index: 0, summary_index: 0, text }) +
      ev('response.reasoning_summary_part.done', { item_id: id, output_index: 0, summary_index: 0, part: { type: 'summary_text', text } }) +
      ev('response.output_item.done', { output_index: 0, item: { id, type: 'reasoning', summary: [{ type: 'summary_text', text }] } }),
    // The backend's response.created and .in_progress are dropped; its items come after the reasoning.
    follow: (res) =>
      rewrite(res, (type, data) => {
        if (type === 'response.created' || type === 'response.in_progress') return undefined;
        if (typeof data.output_index === 'number') data.output_index += 1;
        data.sequence_number = sequence++;
        return data;
      }),
  };
}

/** Rewrites the SSE events written to `res` from now on: each one `change` keeps, as it changed it. */
function rewrite(res: ServerResponse, change: (type: string, data: Record<string, unknown>) => Record<string, unknown> | undefined): void {
  const write = res.write.bind(res) as (chunk: string) => boolean;
  const end = res.end.bind(res) as (chunk?: string) => ServerResponse;
  let ok = true;
  const parser = createParser({
    onEvent: (event) => {
      const head = event.event ? `event: ${event.event}\n` : '';
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(event.data) as Record<string, unknown>;
      } catch {
        ok = write(`${head}data: ${event.data}\n\n`); // not JSON ([DONE], a comment's kin): as it came
        return;
      }
      const kept = change(event.event ?? String(data.type ?? ''), data);
      if (kept) ok = write(`${head}data: ${JSON.stringify(kept)}\n\n`);
    },
  });
  const feed = (chunk: unknown) => {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') parser.feed(Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk));
  };
  res.write = ((chunk: unknown) => {
    feed(chunk);
    return ok;
  }) as ServerResponse['write'];
  res.end = ((chunk?: unknown) => {
    feed(chunk);
    parser.reset({ consume: true }); // a last event without its blank line
    return end();
  }) as ServerResponse['end'];
}
