// limits.stall_timeout: a client that reads nothing of a proxied answer for that long is cut. Until
// it is, its request counts in flight and holds the model's slot, so an unload, an idle stop or a
// reload restart (which drain in-flight requests first) would wait on it forever.
//
// "Reads nothing" is measured by backpressure: the answer is relayed (or piped) from the backend, which
// pauses the backend's side whenever the client's socket will take no more (its kernel buffers are
// full), resuming it on 'drain'. A client is stalled once a pause has lasted stall_timeout with no
// drain. A slow reader drains now and then and is never cut; a backend that is merely slow to
// produce (a long prompt) never causes a pause.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { watchdog, type Watch } from './watchdog.js';

const stalled = new WeakSet<ServerResponse>();

/** Whether this response was cut because its client stopped reading (for the request log). */
export const wasCutForStalling = (res: ServerResponse): boolean => stalled.has(res);

/** For an answer piped from `source`: watched at each of its pauses (see pausedAt). */
export function cutWhenStalled(res: ServerResponse, source: Readable, stallMs: number): void {
  if (!(stallMs > 0) || res.destroyed) return;
  let watch: Watch | undefined;
  source.on('pause', () => { watch = pausedAt(res, stallMs, watch); });
}

/**
 * The answer's source paused because its client took no more: the client is cut unless a drain comes
 * within stallMs. Watched (by the shared watchdog) only from the first pause, which makes the watch
 * (most answers never pause); later pauses pass it back.
 */
export function pausedAt(res: ServerResponse, stallMs: number, watch: Watch | undefined): Watch | undefined {
  if (!(stallMs > 0) || res.destroyed) return watch;
  watch ??= watchStalls(res);
  watch.dueAt = performance.now() + stallMs;
  watchdog.add(watch);
  return watch;
}

/** The watch of an answer that paused: overdue unless a drain comes first. */
function watchStalls(res: ServerResponse): Watch {
  const watch: Watch = {
    dueAt: Infinity,
    fire: () => {
      if (!res.writableNeedDrain) return;
      stalled.add(res);
      res.destroy(); // 'close' follows: the slot is released, the backend request aborted
    },
  };
  res.on('drain', () => { watch.dueAt = Infinity; });
  res.once('close', () => watchdog.delete(watch));
  return watch;
}
