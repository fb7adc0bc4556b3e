// Reading a backend's streamed Chat Completions answer (SSE, parsed by eventsource-parser) as the
// few things the translators need: text deltas, tool calls opening and their argument pieces, an
// in-band error, and the end with its finish_reason and usage. Servers differ in small ways, all
// taken here: usage in a last chunk without choices (include_usage) or beside finish_reason, a tool
// call's id and name in its first delta only or repeated, the whole call in one delta.
import { createParser, type EventSourceParser } from 'eventsource-parser';
import { isObject, newId, reasoningOf, type ChatCompletion, type ChatUsage } from './chat.js';

export interface ChatStreamTarget {
  /** The model's reasoning (thinking), which servers stream apart from the text. */
  reasoning(delta: string): void;
  text(delta: string): void;
  toolStart(index: number, id: string, name: string): void;
  toolArgs(index: number, delta: string): void;
  /** The answer is over: how it finished (null when the backend never said) and its usage, if reported. */
  end(finish: string | null, usage: ChatUsage | undefined): void;
  /** The backend reported a failure inside its stream; nothing follows. */
  error(message: string, code: string | undefined): void;
}

export class ChatStreamReader {
  private readonly parser: EventSourceParser;
  private readonly tools = new Set<number>();
  private finish: string | null = null;
  private usage?: ChatUsage;
  private over = false;
  /** The backend's own id and model, from its first chunk. */
  meta: { id?: string; model?: string } = {};

  constructor(private readonly target: ChatStreamTarget) {
    this.parser = createParser({ onEvent: (e) => this.event(e.data) });
  }

  feed(text: string): void {
    if (!this.over) this.parser.feed(text);
  }

  /** The backend's stream ended: whatever was not ended by [DONE] ends now. */
  close(): void {
    if (this.over) return;
    this.parser.reset({ consume: true });
    this.done();
  }

  private done(): void {
    if (this.over) return;
    this.over = true;
    this.target.end(this.finish, this.usage);
  }

  private event(data: string): void {
    if (this.over) return;
    if (data.trim() === '[DONE]') return this.done();
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return; // a comment-like or keep-alive line some servers send
    }
    if (!isObject(chunk)) return;
    if (chunk.error !== undefined) {
      const e = isObject(chunk.error) ? chunk.error : { message: String(chunk.error) };
      this.over = true;
      return this.target.error(String(e.message ?? 'the backend reported an error'), e.code === undefined || e.code === null ? undefined : String(e.code));
    }
    this.meta.id ??= typeof chunk.id === 'string' ? chunk.id : undefined;
    this.meta.model ??= typeof chunk.model === 'string' ? chunk.model : undefined;
    if (isObject(chunk.usage)) this.usage = chunk.usage as ChatUsage;
    const choice = Array.isArray(chunk.choices) && isObject(chunk.choices[0]) ? chunk.choices[0] : undefined;
    if (!choice) return;
    const delta = isObject(choice.delta) ? choice.delta : {};
    const thought = reasoningOf(delta);
    if (thought) this.target.reasoning(thought);
    if (typeof delta.content === 'string' && delta.content !== '') this.target.text(delta.content);
    if (Array.isArray(delta.tool_calls)) {
      for (const [position, call] of delta.tool_calls.entries()) {
        if (!isObject(call)) continue;
        const index = typeof call.index === 'number' ? call.index : position;
        const fn = isObject(call.function) ? call.function : {};
        if (!this.tools.has(index)) {
          this.tools.add(index);
          this.target.toolStart(index, typeof call.id === 'string' && call.id ? call.id : newId('call'), String(fn.name ?? ''));
        }
        if (typeof fn.arguments === 'string' && fn.arguments !== '') this.target.toolArgs(index, fn.arguments);
      }
    }
    if (typeof choice.finish_reason === 'string') this.finish = choice.finish_reason;
  }
}

/** A whole (non-streamed) chat answer played into a target, for a backend that answered a stream request with JSON. */
export function replayCompletion(completion: ChatCompletion, target: ChatStreamTarget): void {
  const choice = completion.choices?.[0];
  const thought = reasoningOf(choice?.message ?? undefined);
  if (thought) target.reasoning(thought);
  const text = choice?.message?.content;
  if (typeof text === 'string' && text !== '') target.text(text);
  (choice?.message?.tool_calls ?? []).forEach((call, index) => {
    target.toolStart(index, call.id || newId('call'), call.function.name);
    if (call.function.arguments) target.toolArgs(index, call.function.arguments);
  });
  target.end(choice?.finish_reason ?? null, completion.usage);
}
