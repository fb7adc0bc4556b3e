// keep_cache on a llama.cpp model, as the actor carries it out: before each start the cache folder
// is made ready (files saved under other launch settings removed, `--slot-save-path` added where the
// command sets none); once the process is ready, before its first request, the last saved slots are
// read back; before the hub stops a process that was ready, its slots are saved. Nothing here fails
// a start or a stop: a save or restore that fails is logged and the model serves cold.
import type { Endpoint } from '../backends/adapter.js';
import { describeSlotResult, prepareSlotCache, restoreSlots, saveSlots, type SlotCache } from '../backends/llama-slots.js';
import type { ModelConfig } from '../config/types.js';

export class SlotKeeper {
  private cache?: SlotCache;
  /** The process generation that became ready (only a ready process has slots worth saving). */
  private readyGen?: number;

  constructor(
    private readonly name: () => string,
    private readonly notice: (message: string) => void,
  ) {}

  /** Before a spawn: what to append to the command. */
  async prepare(config: ModelConfig): Promise<string[]> {
    this.cache = undefined;
    if (!config.keepCache) return [];
    const prepared = await prepareSlotCache(config);
    if (prepared.error) this.notice(`model ${this.name()}: ${prepared.error}`);
    if (prepared.cleared) this.notice(`model ${this.name()}: removed ${prepared.cleared} saved cache file(s) of other launch settings`);
    this.cache = prepared.cache;
    return prepared.args;
  }

  /** The process of generation `gen` is ready: its slots get the last save back first. */
  async restore(endpoint: Endpoint, gen: number, timeoutMs: number): Promise<void> {
    this.readyGen = gen;
    if (!this.cache || timeoutMs <= 0) return;
    const r = await restoreSlots(endpoint, this.cache, { timeoutMs });
    if (r.count || r.error) this.notice(`model ${this.name()}: ${describeSlotResult('restored', r)}`);
  }

  /** Before the process of generation `gen` is stopped: its slots are saved if it was ever ready. */
  async save(endpoint: Endpoint, gen: number, timeoutMs: number): Promise<void> {
    if (!this.cache || this.readyGen !== gen || timeoutMs <= 0) return;
    const r = await saveSlots(endpoint, this.cache, { timeoutMs });
    if (r.count || r.error) this.notice(`model ${this.name()}: ${describeSlotResult('saved', r)}`);
  }
}
