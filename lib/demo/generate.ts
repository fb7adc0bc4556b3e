// What every generating endpoint of the demo backend shares, whatever API it speaks: the reply's
// tokens for a prompt, paced at --token-rate, counted, and cut by --crash-after like a real crash.
import type { ServerResponse } from 'node:http';
import { countTokens, replyTokens } from './text.js';

export interface Generator {
  model: string;
  /** Reply length when the request sets none (--max-tokens). */
  defaultMaxTokens: number;
  /** Waits one token's time, counts it, and exits the process when --crash-after says so. */
  step(token: string): Promise<string>;
  /** Counts a client that leaves before the answer is complete; the result says whether it has. */
  watch(res: ServerResponse): () => boolean;
}

export interface Reply {
  tokens: string[];
  promptTokens: number;
  /** The client's own limit cut the reply short of its natural end. */
  cut: boolean;
}

/**
 * The Responses and Messages replies end naturally after --max-tokens tokens; a smaller limit in the
 * request cuts them. (Anthropic clients always send a max_tokens, typically in the thousands, which
 * at the shipped token rates would be a long wait for lorem ipsum.)
 */
export function plan(gen: Generator, prompt: string, requested: unknown): Reply {
  const limit = typeof requested === 'number' && requested > 0 ? Math.floor(requested) : Infinity;
  const count = Math.max(1, Math.min(limit, gen.defaultMaxTokens));
  return { tokens: replyTokens(gen.model, prompt, count), promptTokens: countTokens(prompt), cut: limit < gen.defaultMaxTokens };
}

/** Text out of content that is a string or a list of parts with `text` (both APIs allow either). */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: unknown }) => (typeof p?.text === 'string' ? p.text : '')).join(' ');
  return '';
}

export const randomId = (prefix: string) => `${prefix}_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
