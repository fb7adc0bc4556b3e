// Deterministic "model output" for the demo backend: the same prompt always gives the same tokens,
// and the reply names the model so a caller can tell which backend answered.

const WORDS = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing', 'elit', 'sed', 'do', 'eiusmod', 'tempor'];

export function hashText(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Token strings of a reply: "Hello from <model>." then words picked by the prompt's hash. */
export function replyTokens(model: string, prompt: string, count: number): string[] {
  const lead = ['Hello', ' from', ` ${model}`, '.'];
  const seed = hashText(prompt);
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(i < lead.length ? lead[i] : ` ${WORDS[(seed + i) % WORDS.length]}`);
  return out;
}

/** A rough token count (words), good enough for `usage` numbers. */
export const countTokens = (text: string): number => text.split(/\s+/).filter(Boolean).length;

/** A unit-length embedding derived from the text's hash. */
export function embed(text: string, dim: number): number[] {
  let state = hashText(text) || 1;
  const v: number[] = [];
  for (let i = 0; i < dim; i++) {
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5; state >>>= 0;
    v.push(state / 0xffffffff - 0.5);
  }
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => Math.fround(x / norm));
}

export function promptOf(body: Record<string, unknown>): string {
  if (Array.isArray(body.messages)) {
    return body.messages
      .map((m) => (typeof m?.content === 'string' ? m.content : Array.isArray(m?.content) ? m.content.map((p: { text?: string }) => p.text ?? '').join(' ') : ''))
      .join('\n');
  }
  if (typeof body.prompt === 'string') return body.prompt;
  if (Array.isArray(body.prompt)) return body.prompt.join('\n');
  return '';
}
