// What one proxied exchange cost: bytes each way, the time until the backend's first body byte, and
// the token usage the backend reported. Usage is read without holding the answer: a JSON body only by
// its last few kilobytes (the usage object ends it), a stream by its first event and its last few —
// the events that carry usage (OpenAI's last chunk, Responses' `response.completed`, Anthropic's
// `message_start` and `message_delta`).
import type { IncomingMessage } from 'node:http';
import { createParser } from 'eventsource-parser';

/** Kept of the start of a stream at most: its first event (Anthropic reports input tokens there). */
const HEAD_BYTES = 16 * 1024;
/** Kept of the end of a long JSON answer, and of a stream's last events at most. */
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
  /** The backend's answer: its usage is read only if it ended (arrived whole). */
  private source?: IncomingMessage;
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

  /** Watches the backend's answer as it passes through to the client (by a listener of its own). */
  watchResponse(res: IncomingMessage): void {
    this.watch(res);
    res.on('data', (chunk: Buffer) => this.count(chunk));
  }

  /** Takes the answer's headers; its body is then handed over chunk by chunk (count). */
  watch(res: IncomingMessage): void {
    const type = String(res.headers['content-type'] ?? '').toLowerCase();
    const encoded = res.headers['content-encoding'] && res.headers['content-encoding'] !== 'identity';
    if (!encoded && type.includes('text/event-stream')) this.reader = new StreamUsage();
    else if (!encoded && type.includes('json')) this.reader = new JsonUsage();
    this.source = res;
  }

  /** One chunk of the answer's body, as it passes. */
  count(chunk: Buffer): void {
    if (this.ttfbMs === undefined) this.ttfbMs = performance.now() - this.startedAt;
    this.bytesOut += chunk.length;
    this.reader?.push(chunk);
    if (this.captured !== undefined && this.captured.room > 0) {
      const part = chunk.subarray(0, this.captured.room);
      this.captured.chunks.push(Buffer.from(part)); // a copy: the chunk's memory is the socket's
      this.captured.room -= part.length;
    }
  }

  /** Bytes of the answer the meter holds now, to read its usage from (log.capture's aside). */
  get heldBytes(): number {
    return this.reader?.held ?? 0;
  }

  /**
   * The token usage the backend reported (empty if none, or if the answer did not end). Read from the
   * kept bytes when first asked, which is after the answer went out: parsing as the answer ended held
   * up the end of every response.
   */
  get usage(): Usage {
    if (this.read === undefined) this.read = this.source?.readableEnded && this.reader ? this.reader.result() : {};
    return this.read;
  }
}

interface UsageReader {
  push(chunk: Buffer): void;
  result(): Usage;
  /** Bytes of the answer held now. */
  readonly held: number;
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
  get held(): number {
    return this.size;
  }
  bytes(): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
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
  get held(): number {
    return this.tail.held;
  }
  result(): Usage {
    // Decoded from the last "usage" key on (a few dozen bytes), not the whole tail: the whole tail only
    // when that one was not the usage object.
    const tail = this.tail.bytes();
    const at = tail.lastIndexOf('"usage"');
    if (at < 0) return {};
    const last = usageInText(tail.toString('utf8', at));
    return last.tokens_in !== undefined || last.tokens_out !== undefined ? last : usageInText(tail.toString('utf8'));
  }
}

/**
 * A stream by its first event and its last few: input tokens may come first (Anthropic's
 * message_start), the final counts last (OpenAI's usage chunk just before [DONE], Anthropic's
 * message_delta before message_stop, Responses' response.completed). The events between pass by:
 * a long answer keeps a few events' chunks, not tens of kilobytes of them for every open stream.
 */
class StreamUsage implements UsageReader {
  private head: Buffer[] = [];
  private headSize = 0;
  /** The first event is whole in the head (or the head is full): the rest goes to the tail. */
  private headDone = false;
  private tail: Buffer[] = [];
  /** Event boundaries in each tail chunk (see boundariesIn). */
  private marks: number[] = [];
  private tailSize = 0;
  private tailBoundaries = 0;
  /** Whether bytes between the head and the tail were let go. */
  private dropped = false;
  /** The last two bytes seen (-1 before any), for a blank line split between two chunks. */
  private p1 = -1;
  private p0 = -1;

  push(chunk: Buffer): void {
    if (!this.headDone) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headSize);
      const straddle = straddleEnd(part, this.p1, this.p0);
      const end = straddle >= 0 ? straddle : firstBoundaryEnd(part);
      const kept = end < 0 ? part : part.subarray(0, end);
      this.remember(kept);
      this.head.push(kept);
      this.headSize += kept.length;
      this.headDone = end >= 0 || this.headSize >= HEAD_BYTES;
      if (kept.length === chunk.length) return;
      chunk = chunk.subarray(kept.length);
    }
    const marks = boundariesIn(chunk, this.p1, this.p0);
    this.remember(chunk);
    this.tail.push(chunk);
    this.marks.push(marks);
    this.tailSize += chunk.length;
    this.tailBoundaries += marks;
    // Keep from the chunk holding the third boundary from the end: the last two events whole (and
    // whatever follows them), however the stream was cut into chunks. And never more than TAIL_BYTES.
    while (this.tail.length > 1 && (this.tailBoundaries - this.marks[0] >= 3 || this.tailSize - this.tail[0].length >= TAIL_BYTES)) {
      this.tailSize -= this.tail.shift()!.length;
      this.tailBoundaries -= this.marks.shift()!;
      this.dropped = true;
    }
  }

  get held(): number {
    return this.headSize + this.tailSize;
  }

  private remember(chunk: Buffer): void {
    if (chunk.length > 1) this.p1 = chunk[chunk.length - 2];
    else if (chunk.length === 1) this.p1 = this.p0;
    if (chunk.length) this.p0 = chunk[chunk.length - 1];
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
    const head = Buffer.concat(this.head).toString('utf8');
    const tail = Buffer.concat(this.tail).toString('utf8');
    if (!this.dropped) {
      parser.feed(head + tail); // nothing was let go
    } else {
      // The head's complete event, then the tail from its first complete boundary on.
      parser.feed(head.slice(0, lastBoundary(head)));
      parser.reset();
      const start = /\r?\n\r?\n/.exec(tail);
      if (start) parser.feed(tail.slice(start.index + start[0].length));
    }
    parser.reset({ consume: true }); // a last event without its blank line still counts
    // A last event longer than the tail (a Responses response.completed with a long output) has lost
    // its start: its usage object, near its end, is still whole.
    if (found.tokens_out === undefined) merge(found, usageInText(tail));
    return found;
  }
}

const [LF, CR] = [10, 13];

/** Where the first event of `chunk` ends (just after its blank line), or -1. */
function firstBoundaryEnd(chunk: Buffer): number {
  const lf = chunk.indexOf('\n\n');
  const crlf = chunk.indexOf('\n\r\n');
  if (lf < 0 && crlf < 0) return -1;
  return lf >= 0 && (crlf < 0 || lf < crlf) ? lf + 2 : crlf + 3;
}

/**
 * Where a blank line begun in the bytes before `chunk` (the last two, p1 then p0; -1 where none)
 * ends in it: just after the byte that completes it, or -1.
 */
function straddleEnd(chunk: Buffer, p1: number, p0: number): number {
  if (p0 === LF && chunk[0] === LF && p1 !== LF) return 1; // \n | \n (an \n\n wholly before was counted then)
  if (p0 === LF && chunk[0] === CR && chunk[1] === LF) return 2; // \n | \r\n
  if (p1 === LF && p0 === CR && chunk[0] === LF) return 1; // \n\r | \n
  return -1;
}

/** How many events end in `chunk` (blank lines, \n\n or \n\r\n, one begun before it included). */
function boundariesIn(chunk: Buffer, p1: number, p0: number): number {
  let n = straddleEnd(chunk, p1, p0) < 0 ? 0 : 1;
  for (let i = chunk.indexOf('\n\n'); i >= 0; i = chunk.indexOf('\n\n', i + 2)) n++;
  for (let i = chunk.indexOf('\n\r\n'); i >= 0; i = chunk.indexOf('\n\r\n', i + 3)) n++;
  return n;
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
