// What one proxied exchange cost: bytes each way, the time until the backend's first body byte, and
// the token usage the backend reported. Usage is read without holding the answer: a JSON body only by
// its last few kilobytes (the usage object ends it), a stream by its first and last few kilobytes —
// enough for the events that carry usage (OpenAI's last chunk, Responses' `response.completed`,
// Anthropic's `message_start` and `message_delta`).
import type { IncomingMessage } from 'node:http';
import { createParser } from 'eventsource-parser';

/** Kept of the start of a stream (Anthropic reports input tokens in its first event). */
const HEAD_BYTES = 16 * 1024;
/** Kept of the end of a stream or of a long JSON answer. */
const TAIL_BYTES = 64 * 1024;

export interface Usage {
  tokens_in?: number;
  tokens_out?: number;
}

export class Meter {
  bytesIn = 0;
  bytesOut = 0;
  /** ms from the request's start to the backend's first body byte. */
  ttfbMs?: number;
  private reader?: UsageReader;
  private read?: Usage;
  private ended = false;
  /** The start of the answer, for a model with log.capture (absent otherwise: nothing is kept). */
  private captured?: { chunks: Buffer[]; room: number };

  /** Keeps the first `maxBytes` of the answer (log.capture). */
  captureResponse(maxBytes: number): void {
    this.captured = { chunks: [], room: maxBytes };
  }

  get capturing(): boolean {
    return this.captured !== undefined;
  }

  /** What captureResponse kept, as text; undefined when nothing was asked for. */
  capturedResponse(): string | undefined {
    return this.captured && Buffer.concat(this.captured.chunks).toString('utf8');
  }

  constructor(private readonly startedAt: number) {}

  /** Counts a request body that streams through rather than being held. */
  countRequest(req: IncomingMessage): void {
    req.on('data', (chunk: Buffer) => { this.bytesIn += chunk.length; });
  }

  /** Watches the backend's answer as it passes through to the client. */
  watchResponse(res: IncomingMessage): void {
    const type = String(res.headers['content-type'] ?? '').toLowerCase();
    const encoded = res.headers['content-encoding'] && res.headers['content-encoding'] !== 'identity';
    if (!encoded && type.includes('text/event-stream')) this.reader = new StreamUsage();
    else if (!encoded && type.includes('json')) this.reader = new JsonUsage();
    res.on('data', (chunk: Buffer) => {
      if (this.ttfbMs === undefined) this.ttfbMs = performance.now() - this.startedAt;
      this.bytesOut += chunk.length;
      this.reader?.push(chunk);
      if (this.captured !== undefined && this.captured.room > 0) {
        const part = chunk.subarray(0, this.captured.room);
        this.captured.chunks.push(Buffer.from(part)); // a copy: the chunk's memory is the socket's
        this.captured.room -= part.length;
      }
    });
    res.once('end', () => { this.ended = true; });
  }

  /**
   * The token usage the backend reported (empty if none, or if the answer did not end). Read from the
   * kept bytes when first asked, which is after the answer went out: the 'end' listener above runs
   * before the proxy's own, so parsing there held up the end of every response.
   */
  get usage(): Usage {
    if (this.read === undefined) this.read = this.ended && this.reader ? this.reader.result() : {};
    return this.read;
  }
}

interface UsageReader {
  push(chunk: Buffer): void;
  result(): Usage;
}

/** The last `max` bytes of what was pushed, kept as chunks (no copying on each push). */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0].length >= this.max) this.size -= this.chunks.shift()!.length;
  }
  bytes(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max));
  }
}

/**
 * A JSON answer by its tail alone: every API the hub serves puts `usage` at the end of its answer,
 * so nothing but the last TAIL_BYTES is kept, and only the usage object is parsed (never the answer).
 */
class JsonUsage implements UsageReader {
  private readonly tail = new Tail(TAIL_BYTES);
  push(chunk: Buffer): void {
    this.tail.push(chunk);
  }
  result(): Usage {
    return usageInText(this.tail.bytes().toString('utf8'));
  }
}

class StreamUsage implements UsageReader {
  private head: Buffer[] = [];
  private headSize = 0;
  private readonly tail = new Tail(TAIL_BYTES);
  private total = 0;
  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.headSize < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headSize);
      this.head.push(part);
      this.headSize += part.length;
      if (part.length === chunk.length) return;
      chunk = chunk.subarray(part.length);
    }
    this.tail.push(chunk);
  }
  result(): Usage {
    const found: Usage = {};
    const parser = createParser({
      onEvent: (event) => {
        if (!/"usage"\s*:\s*\{/.test(event.data)) return;
        try {
          merge(found, usageOf(JSON.parse(event.data)));
        } catch {
          // a cut-off or non-JSON event carries nothing we can count
        }
      },
    });
    if (this.total - this.headSize <= TAIL_BYTES) {
      parser.feed(Buffer.concat([...this.head, this.tail.bytes()]).toString('utf8')); // nothing was dropped
    } else {
      // The head up to its last complete event, then the tail from its first complete one.
      const head = Buffer.concat(this.head).toString('utf8');
      parser.feed(head.slice(0, lastBoundary(head)));
      parser.reset();
      const tail = this.tail.bytes().toString('utf8');
      const start = /\r?\n\r?\n/.exec(tail);
      if (start) parser.feed(tail.slice(start.index + start[0].length));
    }
    parser.reset({ consume: true }); // a last event without its blank line still counts
    return found;
  }
}

/** Where the last complete event of `text` ends (events end with a blank line, \n or \r\n). */
function lastBoundary(text: string): number {
  const lf = text.lastIndexOf('\n\n');
  const crlf = text.lastIndexOf('\n\r\n');
  return Math.max(lf < 0 ? 0 : lf + 2, crlf < 0 ? 0 : crlf + 3);
}

/** Later reports win: a stream's final usage replaces the partial one of its first event. */
function merge(into: Usage, from: Usage): void {
  if (from.tokens_in !== undefined) into.tokens_in = from.tokens_in;
  if (from.tokens_out !== undefined) into.tokens_out = from.tokens_out;
}

const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);

/** The usage object of an OpenAI, Responses or Anthropic body or event, wherever it sits. */
export function usageOf(body: unknown): Usage {
  if (!body || typeof body !== 'object') return {};
  const b = body as Record<string, unknown>;
  const nested = (b.response ?? b.message) as Record<string, unknown> | undefined; // response.completed, message_start
  const u = (b.usage ?? nested?.usage) as Record<string, unknown> | undefined;
  if (!u || typeof u !== 'object') return {};
  const out: Usage = {};
  const tokensIn = count(u.prompt_tokens) ?? count(u.input_tokens);
  const tokensOut = count(u.completion_tokens) ?? count(u.output_tokens);
  if (tokensIn !== undefined) out.tokens_in = tokensIn;
  if (tokensOut !== undefined) out.tokens_out = tokensOut;
  return out;
}

/**
 * The last `"usage": {...}` object in a piece of JSON text whose start is cut off (the tail of a long
 * answer): found by the key, its extent by balanced braces outside strings, then read by JSON.parse.
 */
export function usageInText(text: string): Usage {
  for (let at = text.lastIndexOf('"usage"'); at >= 0; at = at === 0 ? -1 : text.lastIndexOf('"usage"', at - 1)) {
    const open = text.indexOf('{', at);
    if (open < 0 || !/^"usage"\s*:\s*$/.test(text.slice(at, open))) continue;
    const end = objectEnd(text, open);
    if (end < 0) continue;
    try {
      return usageOf({ usage: JSON.parse(text.slice(open, end + 1)) });
    } catch {
      // not JSON after all: look further back
    }
  }
  return {};
}

function objectEnd(text: string, open: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}
