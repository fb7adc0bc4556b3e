// A streamed chat answer as the Responses API's typed events, in the order OpenAI sends them, each
// `event:`-named with its sequence_number: response.created and .in_progress; per message item
// output_item.added, content_part.added, output_text.delta…, output_text.done, content_part.done,
// output_item.done; per function call output_item.added, function_call_arguments.delta…, .done,
// output_item.done; then response.completed (or .incomplete when a limit cut it) with usage.
import type { ChatUsage } from './chat.js';
import { newId } from './chat.js';
import type { ChatStreamTarget } from './chat-stream.js';
import { rememberItem } from './item-store.js';
import { functionCallItem, messageItem, reasoningItem, responseObject, type ResponseState } from './responses.js';

interface Call { itemId: string; outputIndex: number; callId: string; name: string; args: string; open: boolean }

export class ResponsesStreamWriter implements ChatStreamTarget {
  private sequence = 0;
  private readonly state: ResponseState;
  private message?: { id: string; outputIndex: number; text: string };
  private thought?: { id: string; outputIndex: number; text: string };
  private readonly calls = new Map<number, Call>();

  constructor(private readonly write: (text: string) => void, request: Record<string, unknown>) {
    this.state = { id: newId('resp'), createdAt: Math.floor(Date.now() / 1000), model: String(request.model), request, output: [] };
  }

  private event(type: string, fields: object): void {
    this.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.sequence++, ...fields })}\n\n`);
  }

  begin(): void {
    this.event('response.created', { response: responseObject(this.state) });
    this.event('response.in_progress', { response: responseObject(this.state) });
  }

  /** Reasoning as a reasoning item with one summary_text part (what clients show as reasoning). */
  reasoning(delta: string): void {
    if (!this.thought) {
      this.closeMessage('completed');
      const id = newId('rs');
      this.thought = { id, outputIndex: this.state.output.length, text: '' };
      const item = { id, type: 'reasoning', summary: [] };
      this.state.output.push(item);
      this.event('response.output_item.added', { output_index: this.thought.outputIndex, item });
      this.event('response.reasoning_summary_part.added', { item_id: id, output_index: this.thought.outputIndex, summary_index: 0, part: { type: 'summary_text', text: '' } });
    }
    this.thought.text += delta;
    this.event('response.reasoning_summary_text.delta', { item_id: this.thought.id, output_index: this.thought.outputIndex, summary_index: 0, delta });
  }

  text(delta: string): void {
    this.closeThought();
    if (!this.message) {
      const id = newId('msg');
      this.message = { id, outputIndex: this.state.output.length, text: '' };
      this.state.output.push({ id, type: 'message', status: 'in_progress', role: 'assistant', content: [] }); // a placeholder until it is done
      this.event('response.output_item.added', { output_index: this.message.outputIndex, item: this.state.output[this.message.outputIndex] });
      this.event('response.content_part.added', { item_id: id, output_index: this.message.outputIndex, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
    }
    this.message.text += delta;
    this.event('response.output_text.delta', { item_id: this.message.id, output_index: this.message.outputIndex, content_index: 0, delta, logprobs: [] });
  }

  toolStart(index: number, callId: string, name: string): void {
    this.closeThought();
    this.closeMessage('completed'); // the text before a call is complete; text after it opens a new message
    const call: Call = { itemId: newId('fc'), outputIndex: this.state.output.length, callId, name, args: '', open: true };
    this.calls.set(index, call);
    const item = this.callItem(call, 'in_progress');
    this.state.output.push(item);
    this.event('response.output_item.added', { output_index: call.outputIndex, item });
  }

  toolArgs(index: number, delta: string): void {
    const call = this.calls.get(index);
    if (!call) return;
    call.args += delta;
    this.event('response.function_call_arguments.delta', { item_id: call.itemId, output_index: call.outputIndex, delta });
  }

  end(finish: string | null, usage: ChatUsage | undefined): void {
    const status = finish === 'length' ? 'incomplete' : 'completed';
    this.closeThought();
    this.closeMessage(status);
    for (const call of this.calls.values()) {
      if (!call.open) continue;
      call.open = false;
      this.event('response.function_call_arguments.done', { item_id: call.itemId, output_index: call.outputIndex, name: call.name, arguments: call.args });
      const item = this.callItem(call, 'completed');
      this.state.output[call.outputIndex] = item;
      rememberItem(call.itemId, item);
      this.event('response.output_item.done', { output_index: call.outputIndex, item });
    }
    this.state.finish = finish ?? 'stop';
    this.state.usage = usage;
    const response = responseObject(this.state);
    this.event(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
  }

  /** The Responses stream's in-band error event, in the shape the hub's own in-band errors have. */
  error(message: string, code: string | undefined): void {
    this.event('error', { error: { message: `the model's backend reported an error: ${message}`, type: 'server_error', param: null, code: code ?? 'backend_error' } });
  }

  private closeThought(): void {
    const r = this.thought;
    if (!r) return;
    this.thought = undefined;
    const at = { item_id: r.id, output_index: r.outputIndex, summary_index: 0 };
    this.event('response.reasoning_summary_text.done', { ...at, text: r.text });
    this.event('response.reasoning_summary_part.done', { ...at, part: { type: 'summary_text', text: r.text } });
    const item = reasoningItem(r.id, r.text);
    this.state.output[r.outputIndex] = item;
    rememberItem(r.id, item);
    this.event('response.output_item.done', { output_index: r.outputIndex, item });
  }

  private closeMessage(status: string): void {
    const m = this.message;
    if (!m) return;
    this.message = undefined;
    const at = { item_id: m.id, output_index: m.outputIndex, content_index: 0 };
    this.event('response.output_text.done', { ...at, text: m.text, logprobs: [] });
    this.event('response.content_part.done', { ...at, part: { type: 'output_text', text: m.text, annotations: [], logprobs: [] } });
    const item = messageItem(m.id, m.text, status);
    this.state.output[m.outputIndex] = item;
    rememberItem(m.id, item);
    this.event('response.output_item.done', { output_index: m.outputIndex, item });
  }

  private callItem(call: Call, status: string) {
    return functionCallItem(call.itemId, { id: call.callId, type: 'function', function: { name: call.name, arguments: call.args } }, status);
  }
}
