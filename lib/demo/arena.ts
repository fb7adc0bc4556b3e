// Real RAM for the demo backend's "weights": allocated and touched on load, dropped and
// garbage-collected on sleep, so the process RSS moves the way a real model server's would.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// Chunks above glibc's largest dynamic mmap threshold (32 MiB) are always mmap'ed, so freeing them
// returns the pages to the OS at once. Smaller chunks would raise the threshold and stay in the heap.
const CHUNK = 64 * 2 ** 20;

// Buffers live outside the V8 heap and are only released when collected; without a collection the
// RSS would not drop until V8 happened to run one. This exposes gc() without a command-line flag.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export class Arena {
  private chunks: Buffer[] = [];

  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  allocate(bytes: number): void {
    this.free();
    const count = Math.ceil(bytes / CHUNK);
    for (let i = 0; i < count; i++) {
      const size = Math.floor(bytes / count) + (i === 0 ? bytes % count : 0);
      // fill() touches every page, so the memory is really resident, not just reserved.
      this.chunks.push(Buffer.allocUnsafeSlow(size).fill(0xa5));
    }
    // V8 answers a jump in external memory with a full collection at its next allocation, which
    // would land on the first request after a load; collect now, as part of the load.
    gc();
  }

  free(): void {
    if (this.chunks.length === 0) return;
    this.chunks = [];
    gc();
  }

  /**
   * Frees the memory and resolves once the process really gave it back: V8 returns collected
   * buffers' pages on a background thread, 10–40 ms after gc() on a small VM for 256 MiB. A model
   * server's sleep answers once its memory is free, so the demo's does too (bounded by `maxMs`).
   */
  async release(maxMs = 500): Promise<void> {
    const bytes = this.bytes;
    if (bytes === 0) return;
    const target = process.memoryUsage.rss() - bytes * 0.8;
    this.free();
    const deadline = performance.now() + maxMs;
    while (process.memoryUsage.rss() > target && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
