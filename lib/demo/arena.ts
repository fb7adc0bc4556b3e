// Real RAM for the demo backend's "weights": allocated and touched on load, dropped and
// garbage-collected on sleep, so the process RSS moves the way a real model server's would.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const CHUNK = 16 * 2 ** 20;

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
    for (let left = bytes; left > 0; left -= CHUNK) {
      // fill() touches every page, so the memory is really resident, not just reserved.
      this.chunks.push(Buffer.allocUnsafeSlow(Math.min(CHUNK, left)).fill(0xa5));
    }
  }

  free(): void {
    if (this.chunks.length === 0) return;
    this.chunks = [];
    gc();
  }
}
