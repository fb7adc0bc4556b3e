// A response the hub writes itself to one client, for as long as the client stays: the SSE events
// and a followed log. What is written cannot wait for a slow reader (state changes and log lines
// keep coming), so what the reader has not taken yet is bounded: once more than `limitBytes` is
// queued for it, it gets one last message saying it fell behind, and its connection is closed.
import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';

/** How much may be queued for one subscriber before it is dropped. */
export const SUBSCRIBER_LIMIT_BYTES = 2 ** 20;

/** How long a dropped subscriber has to read its last message before the connection is cut. */
const DROP_GRACE_MS = 10_000;

export interface SubscriberOptions {
  /** The last message for a subscriber that fell behind. */
  farewell: string;
  /** Called once when the subscription ends, however it ends (to unsubscribe from the source). */
  onEnd: () => void;
  limitBytes?: number;
}

export class Subscriber {
  /** The response body (Koa pipes it to the client). */
  readonly body = new PassThrough();
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly options: SubscriberOptions,
  ) {
    res.once('close', () => this.stop());
  }

  /** Bytes written for this client and not yet taken by its connection: ours, the pipe's, the socket's. */
  get backlog(): number {
    return this.body.writableLength + this.body.readableLength + this.res.writableLength;
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Queues `chunk`; false once the subscription is over (the client left, or fell behind and was dropped). */
  write(chunk: string | Buffer): boolean {
    if (this.ended) return false;
    if (chunk.length === 0) return true;
    if (this.backlog + chunk.length > (this.options.limitBytes ?? SUBSCRIBER_LIMIT_BYTES)) {
      this.drop();
      return false;
    }
    this.body.write(chunk);
    return true;
  }

  /** Ends the response normally, after `last`. */
  end(last?: string): void {
    if (this.ended) return;
    this.stop();
    this.body.end(last);
  }

  private drop(): void {
    this.stop();
    // The connection goes too: an EventSource reconnects (and gets a fresh status), and a kept-alive
    // connection is no use to a client this far behind.
    const socket = this.res.socket;
    this.res.once('finish', () => socket?.end());
    this.body.end(this.options.farewell);
    // A reader that stopped reading will never take it: cut the connection so its queue is freed.
    const timer = setTimeout(() => this.res.destroy(), DROP_GRACE_MS);
    timer.unref();
    this.res.once('close', () => clearTimeout(timer));
  }

  private stop(): void {
    if (this.ended) return;
    this.ended = true;
    this.options.onEnd();
  }
}
