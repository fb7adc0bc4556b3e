// A streamed chat answer as Anthropic's Messages events: message_start; per content block
// content_block_start, content_block_delta (text_delta for text, input_json_delta for a tool call's
// arguments) and content_block_stop; then message_delta with stop_reason and usage, and
// message_stop. Chat reports input tokens only at the end, so message_start carries 0 and
// message_delta the real count (the Anthropic SDKs take it from there).
import type { ChatUsage } from './chat.js';
import { newId } from './chat.js';
import type { ChatStreamTarget } from './chat-stream.js';
import { stopReasonOf, usageOf, wantsThinking } from './messages.js';

export class MessagesStreamWriter implements ChatStreamTarget {
  private blocks = 0;
  /** The open block: text, thinking, or the chat index of the tool call it carries. */
  private open?: { index: number; tool?: number; thinking?: boolean };
  private readonly thinking: boolean;
  private readonly toolBlocks = new Map<number, number>();

  constructor(private readonly write: (text: string) => void, private readonly request: Record<string, unknown>) {
    this.thinking = wantsThinking(request);
  }

  private event(type: string, fields: object = {}): void {
    this.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...fields })}\n\n`);
  }

  begin(): void {
    this.event('message_start', {
      message: {
        id: newId('msg'), type: 'message', role: 'assistant', model: String(this.request.model), content: [],
        stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 },
      },
    });
  }

  /** Reasoning as a thinking block, when the client asked for thinking (else it is left out, as Anthropic does). */
  reasoning(delta: string): void {
    if (!this.thinking) return;
    if (!this.open?.thinking) {
      this.start({ type: 'thinking', thinking: '', signature: '' });
      this.open!.thinking = true;
    }
    this.event('content_block_delta', { index: this.open!.index, delta: { type: 'thinking_delta', thinking: delta } });
  }

  text(delta: string): void {
    if (!this.open || this.open.tool !== undefined || this.open.thinking) this.start({ type: 'text', text: '' });
    this.event('content_block_delta', { index: this.open!.index, delta: { type: 'text_delta', text: delta } });
  }

  toolStart(index: number, id: string, name: string): void {
    this.start({ type: 'tool_use', id, name, input: {} }, index);
    this.toolBlocks.set(index, this.open!.index);
  }

  toolArgs(index: number, delta: string): void {
    const block = this.toolBlocks.get(index);
    // Calls whose arguments interleave (rare) still land in their own block: clients gather deltas by index.
    if (block !== undefined) this.event('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: delta } });
  }

  end(finish: string | null, usage: ChatUsage | undefined): void {
    this.stop();
    const u = usageOf(usage);
    this.event('message_delta', {
      delta: { stop_reason: stopReasonOf(finish, this.toolBlocks.size > 0), stop_sequence: null },
      usage: { input_tokens: u.input_tokens, output_tokens: u.output_tokens, cache_read_input_tokens: u.cache_read_input_tokens },
    });
    this.event('message_stop');
  }

  error(message: string): void {
    this.event('error', { error: { type: 'api_error', message: `the model's backend reported an error: ${message}` } });
  }

  private start(block: object, tool?: number): void {
    this.stop();
    this.open = { index: this.blocks++, tool };
    this.event('content_block_start', { index: this.open.index, content_block: block });
  }

  private stop(): void {
    if (!this.open) return;
    this.event('content_block_stop', { index: this.open.index });
    this.open = undefined;
  }
}
