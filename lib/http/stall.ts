// limits.stall_timeout: a client that reads nothing of a proxied answer for that long is cut. Until
// it is, its request counts in flight and holds the model's slot, so an unload, an idle stop or a
// reload restart (which drain in-flight requests first) would wait on it forever.
//
// "Reads nothing" is measured by backpressure: the answer is piped from the backend, and the pipe
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

export function cutWhenStalled(res: ServerResponse, source: Readable, stallMs: number): void {
  if (!(stallMs > 0) || res.destroyed) return;
  // Watched (by the shared watchdog) only from the first pause: most answers never pause, and pay one
  // listener for it.
  let watch: Watch | undefined;
  source.on('pause', () => {
    watch ??= watchStalls(res);
    watch.dueAt = performance.now() + stallMs;
    watchdog.add(watch);
  });
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
