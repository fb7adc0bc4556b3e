// Reading a request body into memory, within its limits: limits.max_body for one body, the hub-wide
// limits.max_body_total (body-budget.ts) for all of them, limits.body_timeout for a pause between
// bytes. Each chunk is shown to a sink (the `model` finder, request-model.ts) as it arrives, in
// bounded slices, so that no body, however large, holds the event loop. The chunks are kept as they
// came and forwarded from there: never concatenated into one large copy.
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { watchdog, type Watch } from './watchdog.js';
import { formatBytes, formatDuration } from '../config/units.js';
import { HubError } from '../errors.js';
import type { BodyBudget } from './body-budget.js';
import { Feeder, pacedStream, type Sink } from './pacing.js';

export interface BodyLimits {
  /** limits.max_body */
  maxBytes: number;
  /** limits.body_timeout; 0 = none. */
  idleTimeoutMs: number;
  budget: BodyBudget;
}

/**
 * A body of at most this many bytes with a declared length (nearly every chat request) takes the short
 * way: its budget share at once, its bytes shown to the `model` finder as they come without pacing
 * (scanning 64 KiB cannot hold the loop for long), and handed to the proxy as they are.
 */
export const SMALL_BODY_BYTES = 64 * 1024;

/** A refused body is read and dropped up to this many times max_body before the hub answers anyway. */
const DRAIN_FACTOR = 4;
/** ... or for this long at most. */
const DRAIN_MAX_MS = 60_000;

/** A request body held in memory, counted in the body budget until released. */
export class HeldBody {
  constructor(
    private parts: Buffer[],
    private bytes: number,
    private budget: BodyBudget,
    private reserved: number,
  ) {}

  get length(): number {
    return this.bytes;
  }

  /**
   * The body for the proxy's `buffer` option. A small one is written as it is: http-proxy-3 only ever
   * calls `pipe(upstreamRequest)` on it, so no stream is built per request for a few kilobytes.
   */
  stream(): Readable {
    if (this.bytes > SMALL_BODY_BYTES) return pacedStream(this.parts);
    const parts = this.parts;
    const written = {
      pipe<T extends NodeJS.WritableStream>(destination: T): T {
        for (const part of parts) destination.write(part);
        destination.end();
        return destination;
      },
    };
    return written as unknown as Readable;
  }

  /** Replaces bytes [start, end) with `replacement` (a served_model rewrite), without copying the rest. */
  splice(start: number, end: number, replacement: Buffer): void {
    const head: Buffer[] = [];
    const tail: Buffer[] = [];
    let at = 0;
    for (const part of this.parts) {
      const from = at;
      at += part.length;
      if (from < start) head.push(part.subarray(0, Math.min(part.length, start - from)));
      if (at > end) tail.push(part.subarray(Math.max(0, end - from)));
    }
    this.parts = [...head, replacement, ...tail];
    this.bytes += replacement.length - (end - start);
  }

  /** The first `n` bytes (or the whole body, if shorter), copying only those. */
  head(n: number): Buffer {
    const kept: Buffer[] = [];
    let left = n;
    for (const part of this.parts) {
      if (left <= 0) break;
      kept.push(part.length <= left ? part : part.subarray(0, left));
      left -= part.length;
    }
    return Buffer.concat(kept);
  }

  /** The whole body in one buffer: only for small bodies (an error message). */
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }

  /** Drops the bytes and gives their share of the budget back; safe to call more than once. */
  release(): void {
    this.parts = [];
    this.budget.release(this.reserved);
    this.reserved = 0;
  }
}

/**
 * Reads the body of `req`. A body with a declared length takes its whole share of the budget before a
 * byte is read (two half-read bodies can then never starve each other); a chunked one takes it as it
 * arrives. A body over max_body, one refused by the budget (hub_busy) or one that pauses for
 * body_timeout is an error (the promise rejects with the HubError to answer with).
 */
export async function readBody(req: IncomingMessage, limits: BodyLimits, sink?: Sink): Promise<HeldBody> {
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > limits.maxBytes) throw await drainThen(req, tooLarge(limits.maxBytes), limits, 0, declared);
  const { budget } = limits;
  const small = declared !== undefined && declared <= SMALL_BODY_BYTES;
  let reserved = 0;
  if (declared && small && budget.tryTake(declared)) reserved = declared;
  else if (declared) {
    try {
      await budget.take(declared);
    } catch (err) {
      throw await drainThen(req, err as HubError, limits, 0, declared);
    }
    if (req.destroyed || req.socket.destroyed) {
      budget.release(declared); // the client left while waiting for room
      throw incomplete();
    }
    reserved = declared;
  }
  // Nearly every chat request: its few kilobytes came in with its headers, and all `declared` bytes of
  // it already wait in the stream's buffer (Content-Length frames the body, so that is all of it): it
  // is taken from there at once, without listeners, timers or a wait for 'end'. The request's handlers
  // run inside the parser's call that read the headers; one microtask later it has parsed the rest.
  if (small && reserved === declared && req.readableLength < declared) await undefined;
  if (small && reserved === declared && req.readableLength === declared && !req.readableFlowing) {
    const parts = declared === 0 ? [] : [req.read() as Buffer]; // read() gives all that is buffered
    for (const part of parts) sink?.(part);
    return new HeldBody(parts, declared, budget, reserved);
  }

  return new Promise<HeldBody>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    // body_timeout, on the shared watchdog: each chunk only moves the deadline.
    const idleMs = limits.idleTimeoutMs;
    const idle: Watch = { dueAt: Infinity, fire: () => fail(stalled(idleMs), false) };
    const arm = () => {
      if (!(idleMs > 0)) return;
      idle.dueAt = performance.now() + idleMs;
      watchdog.add(idle);
    };
    // The feeder (a backlog of slices) and the budget (no room yet) both stop reading for a while;
    // such a pause is the hub's, not the client's, so it does not count toward body_timeout.
    let holds = 0;
    const hold = () => {
      if (holds++ > 0) return;
      req.pause();
      idle.dueAt = Infinity;
    };
    const unhold = () => {
      if (--holds > 0 || settled) return;
      arm();
      req.resume();
    };
    const feeder = sink && !small ? new Feeder(sink, hold, unhold) : undefined;
    const feed = feeder ? (chunk: Buffer) => feeder.push(chunk) : sink;

    const cleanup = () => {
      settled = true;
      watchdog.delete(idle);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
    };
    const fail = (error: HubError, drain: boolean) => {
      if (settled) return;
      cleanup();
      feeder?.stop();
      chunks.length = 0;
      budget.release(reserved);
      reserved = 0;
      if (drain) void drainThen(req, error, limits, size, declared).then(reject);
      else {
        error.headers.connection = 'close';
        reject(error);
      }
    };
    const grow = (bytes: number) => {
      if (budget.tryTake(bytes)) return void (reserved += bytes);
      hold();
      budget.take(bytes).then(
        () => {
          if (settled) return budget.release(bytes);
          reserved += bytes;
          unhold();
        },
        (busy: HubError) => fail(busy, true),
      );
    };
    const onData = (chunk: Buffer) => {
      if (idle.dueAt !== Infinity) idle.dueAt = performance.now() + idleMs;
      size += chunk.length;
      if (size > limits.maxBytes) return fail(tooLarge(limits.maxBytes), true);
      chunks.push(chunk);
      if (size > reserved) grow(size - reserved);
      feed?.(chunk);
    };
    const onEnd = () => {
      if (settled) return;
      cleanup();
      const done = () => resolve(new HeldBody(chunks, size, budget, reserved));
      if (feeder) void feeder.drained().then(done);
      else done();
    };
    const onClose = () => fail(incomplete(), false);

    arm();
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
    req.once('error', onClose);
  });
}

/**
 * Reads the rest of a refused body and drops it, then gives the error to answer with. The answer waits
 * for the body because a client still sending when the hub closes the connection gets a reset instead
 * of the answer (its kernel drops what it has not read yet). Past DRAIN_FACTOR × max_body, a pause of
 * body_timeout or DRAIN_MAX_MS, the hub answers and closes anyway.
 */
function drainThen(req: IncomingMessage, error: HubError, limits: BodyLimits, read: number, declared: number | undefined): Promise<HubError> {
  error.headers.connection = 'close';
  const bound = DRAIN_FACTOR * limits.maxBytes;
  if (req.complete || req.destroyed || (declared ?? 0) > bound) return Promise.resolve(error);
  return new Promise((resolve) => {
    let seen = read;
    const idleMs = limits.idleTimeoutMs > 0 ? Math.min(limits.idleTimeoutMs, DRAIN_MAX_MS) : DRAIN_MAX_MS;
    const done = () => {
      clearTimeout(idle);
      clearTimeout(deadline);
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      req.off('error', done);
      resolve(error);
    };
    const idle = setTimeout(done, idleMs);
    const deadline = setTimeout(done, DRAIN_MAX_MS);
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      idle.refresh();
      if (seen > bound) done();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.resume();
  });
}

export const tooLarge = (limit: number) =>
  new HubError('body_too_large', `the request body is larger than limits.max_body (${formatBytes(limit)}); send a smaller body or raise limits.max_body in hub.yaml`, {
    headers: { connection: 'close' },
  });

const incomplete = () => new HubError('body_incomplete', 'the connection closed before the request body was complete; send it again');

const stalled = (ms: number) =>
  new HubError('body_incomplete', `the request body stopped arriving (nothing for ${formatDuration(ms)}, limits.body_timeout); send the whole body without pausing, or raise limits.body_timeout in hub.yaml`);
