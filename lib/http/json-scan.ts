// Finds the top-level "model" of a JSON request body without building the body. A byte-level scanner
// fed chunk by chunk as the body arrives: it checks the JSON grammar and steps over every value
// (strings, numbers, nested arrays and objects) without building it, remembering only the top-level
// keys it passes and where the last top-level "model" value lies, so that a served_model rewrite can
// splice in a new value at those byte offsets.
//
// Why not JSON.parse, or a library: JSON.parse builds the whole value in one synchronous pass (seconds
// for 30 MiB of `[{},{},…]`, stalling every stream the hub is forwarding), and JSON.stringify of it
// for a rewrite recurses (deep nesting overflows the stack). Streaming JSON parsers (jsonparse,
// stream-json, …) still build every value and cannot skip one. Stepping over values is a small state
// machine, so the hub keeps its own instead of taking a parser it would use a tenth of.
//
// Bytes are not checked as UTF-8: like JSON.parse over the body decoded as UTF-8 (invalid sequences
// become U+FFFD), malformed UTF-8 inside a string is not an error. Nesting depth is not limited (the
// stack is one bit per level).

/** Where the last top-level "model" value is, and the string it holds (undefined: not a string). */
export interface ModelSpan {
  model: string | undefined;
  /** Byte offsets in the body: the value starts at `start` (its opening quote) and ends before `end`. */
  start: number;
  end: number;
}

export type ScanResult =
  | { valid: false; message: string }
  | { valid: true; object: boolean; span?: ModelSpan; stream: boolean };

// States between bytes.
const VALUE = 0, VALUE_OR_END = 1, KEY_OR_END = 2, KEY = 3, COLON = 4, AFTER = 5, STRING = 6, ESCAPE = 7, UNICODE = 8, NUMBER = 9, LITERAL = 10, DONE = 11, FAILED = 12;
const OBJECT = 1; // container kinds on the bit stack (array = 0)
// Number grammar: 0 after '-', 1 a leading 0, 2 integer digits, 3 after '.', 4 fraction, 5 after e, 6 after its sign, 7 exponent.
const NUMBER_ENDS = [false, true, true, false, true, false, false, true];
const LITERALS: Record<number, Buffer> = { 0x74: Buffer.from('true'), 0x66: Buffer.from('false'), 0x6e: Buffer.from('null') };
/** Enough raw bytes for "model" however it is escaped (\u006d… is 30), and for a model id. */
const KEY_CAP = 32;
const MODEL_CAP = 4096;

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

export class JsonModelScanner {
  private state = VALUE;
  private offset = 0; // bytes before the current chunk
  private stack = new Uint8Array(64);
  private depth = 0;
  private top = -1; // the first byte of the top-level value
  private numberState = 0;
  private literal = LITERALS[0x74];
  private literalAt = 0;
  private unicodeLeft = 0;
  private error?: string;
  /** What is kept of the string being scanned: 0 nothing, 1 a top-level key, 2 a top-level "model" value. */
  private role = 0;
  private isKey = false;
  private captured: Buffer[] = [];
  private capturedBytes = 0;
  private captureFrom = 0;
  private keyIsModel = false;
  private keyIsStream = false;
  /** The last top-level "stream" value was the literal true (what load progress in the stream asks for). */
  private stream = false;
  private modelStart = 0;
  private span?: ModelSpan;

  write(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    this.captureFrom = 0;
    while (i < n && this.state !== FAILED) {
      const c = chunk[i];
      switch (this.state) {
        case STRING: {
          while (i < n) {
            const d = chunk[i];
            if (d === 0x22 || d === 0x5c || d < 0x20) break;
            i++;
          }
          if (i === n) break;
          const d = chunk[i];
          if (d === 0x22) this.endString(chunk, i);
          else if (d === 0x5c) this.state = ESCAPE;
          else this.fail(`Bad control character in string literal in JSON at position ${this.offset + i}`);
          i++;
          break;
        }
        case ESCAPE:
          if (c === 0x75) { this.state = UNICODE; this.unicodeLeft = 4; }
          else if (c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74) this.state = STRING;
          else this.fail(`Bad escaped character in JSON at position ${this.offset + i}`);
          i++;
          break;
        case UNICODE:
          if (!isHex(c)) this.fail(`Bad Unicode escape in JSON at position ${this.offset + i}`);
          else if (--this.unicodeLeft === 0) this.state = STRING;
          i++;
          break;
        case NUMBER: {
          const next = numberStep(this.numberState, c);
          if (next >= 0) { this.numberState = next; i++; }
          else if (NUMBER_ENDS[this.numberState]) this.valueDone(); // c belongs to what follows
          else { this.fail(unexpected(c, this.offset + i)); i++; }
          break;
        }
        case LITERAL:
          if (c !== this.literal[this.literalAt]) this.fail(unexpected(c, this.offset + i));
          else if (++this.literalAt === this.literal.length) this.valueDone();
          i++;
          break;
        default:
          if (!isSpace(c)) this.structural(c, chunk, i);
          i++;
      }
    }
    if (this.role !== 0 && (this.state === STRING || this.state === ESCAPE || this.state === UNICODE)) this.capture(chunk.subarray(this.captureFrom, n));
    this.offset += n;
  }

  end(): ScanResult {
    if (this.state === NUMBER && NUMBER_ENDS[this.numberState] && this.depth === 0) this.state = DONE;
    if (this.state === FAILED) return { valid: false, message: this.error! };
    if (this.state !== DONE) return { valid: false, message: 'Unexpected end of JSON input' };
    return { valid: true, object: this.top === 0x7b, span: this.span, stream: this.stream };
  }

  /** A byte outside strings, numbers and literals. */
  private structural(c: number, chunk: Buffer, i: number): void {
    const at = this.offset + i;
    switch (this.state) {
      case VALUE_OR_END:
        if (c === 0x5d) return this.pop();
        return this.value(c, chunk, i);
      case VALUE:
        return this.value(c, chunk, i);
      case KEY_OR_END:
      case KEY:
        if (c === 0x7d && this.state === KEY_OR_END) return this.pop();
        if (c !== 0x22) return this.fail(`Expected ${this.state === KEY_OR_END ? "property name or '}'" : 'double-quoted property name'} in JSON at position ${at}`);
        this.isKey = true;
        this.startString(this.depth === 1 ? 1 : 0, i);
        return;
      case COLON:
        if (c !== 0x3a) return this.fail(`Expected ':' after property name in JSON at position ${at}`);
        this.state = VALUE;
        return;
      case AFTER: {
        const inObject = this.kind() === OBJECT;
        if (c === 0x2c) this.state = inObject ? KEY : VALUE;
        else if (c === (inObject ? 0x7d : 0x5d)) this.pop();
        else this.fail(`Expected ',' or '${inObject ? '}' : ']'}' after ${inObject ? 'property value' : 'array element'} in JSON at position ${at}`);
        return;
      }
      default: // DONE
        this.fail(`Unexpected non-whitespace character after JSON at position ${at}`);
    }
  }

  private value(c: number, chunk: Buffer, i: number): void {
    if (this.depth === 0) this.top = c;
    const isModel = this.keyIsModel && this.depth === 1;
    this.keyIsModel = false;
    if (this.keyIsStream && this.depth === 1) this.stream = c === 0x74; // a `t` is `true`, or the scan fails
    this.keyIsStream = false;
    if (isModel && c !== 0x22) this.span = { model: undefined, start: this.offset + i, end: -1 };
    if (c === 0x22) this.startString(isModel ? 2 : 0, i);
    else if (c === 0x7b) this.push(OBJECT);
    else if (c === 0x5b) this.push(0);
    else if (c === 0x2d || isDigit(c)) { this.state = NUMBER; this.numberState = c === 0x2d ? 0 : c === 0x30 ? 1 : 2; }
    else if (LITERALS[c]) { this.state = LITERAL; this.literal = LITERALS[c]; this.literalAt = 1; }
    else this.fail(unexpected(c, this.offset + i));
  }

  private startString(role: number, i: number): void {
    this.state = STRING;
    this.role = role;
    if (role === 0) return;
    this.captured = [];
    this.capturedBytes = 0;
    this.captureFrom = i + 1;
    if (role === 2) this.modelStart = this.offset + i;
  }

  private endString(chunk: Buffer, i: number): void {
    const role = this.role;
    const isKey = this.isKey;
    this.role = 0;
    this.isKey = false;
    if (role === 0) return isKey ? void (this.state = COLON) : this.valueDone();
    this.capture(chunk.subarray(this.captureFrom, i));
    const raw = Buffer.concat(this.captured);
    this.captured = [];
    if (role === 1) {
      const key = this.capturedBytes <= KEY_CAP ? decode(raw) : undefined;
      this.keyIsModel = key === 'model';
      this.keyIsStream = key === 'stream';
      this.state = COLON;
      return;
    }
    const model = this.capturedBytes <= MODEL_CAP ? decode(raw) : `${raw.subarray(0, 256).toString('utf8')}…`;
    this.span = { model, start: this.modelStart, end: this.offset + i + 1 };
    this.valueDone();
  }

  private capture(bytes: Buffer): void {
    const cap = this.role === 1 ? KEY_CAP : MODEL_CAP;
    if (this.capturedBytes <= cap) this.captured.push(bytes.subarray(0, cap + 1 - this.capturedBytes));
    this.capturedBytes += bytes.length;
  }

  private valueDone(): void {
    this.state = this.depth === 0 ? DONE : AFTER;
  }

  private push(kind: number): void {
    if (this.depth >> 3 >= this.stack.length) {
      const grown = new Uint8Array(this.stack.length * 2);
      grown.set(this.stack);
      this.stack = grown;
    }
    const byte = this.depth >> 3, bit = 1 << (this.depth & 7);
    this.stack[byte] = kind === OBJECT ? this.stack[byte] | bit : this.stack[byte] & ~bit;
    this.depth++;
    this.state = kind === OBJECT ? KEY_OR_END : VALUE_OR_END;
  }

  private pop(): void {
    this.depth--;
    this.valueDone();
  }

  private kind(): number {
    const d = this.depth - 1;
    return d >= 0 && this.stack[d >> 3] & (1 << (d & 7)) ? OBJECT : 0;
  }

  private fail(message: string): void {
    this.state = FAILED;
    this.error = message;
  }
}

function numberStep(state: number, c: number): number {
  const digit = isDigit(c);
  switch (state) {
    case 0: return c === 0x30 ? 1 : digit ? 2 : -1;
    case 1: return c === 0x2e ? 3 : c === 0x65 || c === 0x45 ? 5 : -1;
    case 2: return digit ? 2 : c === 0x2e ? 3 : c === 0x65 || c === 0x45 ? 5 : -1;
    case 3: return digit ? 4 : -1;
    case 4: return digit ? 4 : c === 0x65 || c === 0x45 ? 5 : -1;
    case 5: return c === 0x2b || c === 0x2d ? 6 : digit ? 7 : -1;
    default: return digit ? 7 : -1; // 6, 7
  }
}

/** A captured string's bytes (without quotes) as the string JSON.parse would give. */
function decode(raw: Buffer): string {
  if (!raw.includes(0x5c)) return raw.toString('utf8');
  return JSON.parse(`"${raw.toString('utf8')}"`) as string;
}

function unexpected(c: number, at: number): string {
  const shown = c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
  return `Unexpected token ${shown} in JSON at position ${at}`;
}
