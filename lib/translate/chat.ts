// The Chat Completions shapes the translators write and read, and what they share: the hub turns a
// Responses or Messages request into one of these for a backend that only speaks Chat Completions
// (see docs/clients.md, "Translation"), and the backend's answer back.
import { HubError } from '../errors.js';

export type ChatContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail?: string } };

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string | ChatContentPart[] }
  | { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage: boolean };
  max_tokens?: number;
  [field: string]: unknown;
}

export interface ChatUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

/** A non-streamed Chat Completions answer, as far as the translators read it. */
export interface ChatCompletion {
  id?: string;
  model?: string;
  created?: number;
  choices?: Array<{ message?: { content?: string | null; tool_calls?: ChatToolCall[]; reasoning_content?: string | null; reasoning?: string | null }; finish_reason?: string | null }>;
  usage?: ChatUsage;
}

/** A 400 for what the hub cannot express in Chat Completions, naming it and what to do instead. */
export function unsupported(api: string, what: string, param?: string): HubError {
  return new HubError('bad_request', `${what} cannot be sent to this model: its backend has no ${api}, and the hub translates such requests to /v1/chat/completions, which has no equivalent. Leave it out, or use a backend that serves ${api}`, { param });
}

/** A 400 for a request that is not shaped as the API says. */
export function malformed(what: string, param?: string): HubError {
  return new HubError('bad_request', what, { param });
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Request fields that mean the same in both APIs and pass through under the same name. */
export function copyFields(from: Record<string, unknown>, to: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) if (from[name] !== undefined && from[name] !== null) to[name] = from[name];
}

/** The one choice of a Chat Completions answer (n is never set by the translators). */
export function firstChoice(completion: ChatCompletion) {
  return completion.choices?.[0] ?? {};
}

/** A tool call's `arguments` as an object (Anthropic's `input`); text that is not a JSON object is kept under `_raw`. */
export function parseArguments(text: string): Record<string, unknown> {
  if (!text.trim()) return {};
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : { _raw: text };
  } catch {
    return { _raw: text };
  }
}

/** The model's reasoning in a chat message or delta: llama-server and older vLLM say reasoning_content, newer vLLM reasoning. */
export function reasoningOf(m: { reasoning_content?: unknown; reasoning?: unknown } | undefined): string {
  const r = m?.reasoning_content ?? m?.reasoning;
  return typeof r === 'string' ? r : '';
}

export const newId = (prefix: string) => `${prefix}_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
