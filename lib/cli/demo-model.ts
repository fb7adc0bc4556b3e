// `hub demo-model`: the bundled demo backend (SPEC §9) as a command.
import { parseDuration, parseSize } from '../config/units.js';
import { startDemoServer } from '../demo/server.js';

export async function demoModel(a: Record<string, unknown>): Promise<void> {
  const duration = (name: string, v: unknown) => {
    const ms = parseDuration(/^\d+(\.\d+)?$/.test(String(v)) ? Number(v) : v);
    if (ms === undefined) throw new Error(`--${name}: expected a duration like "500ms", got ${JSON.stringify(v)}`);
    return ms;
  };
  const memoryBytes = parseSize(/^\d+$/.test(String(a.memory)) ? Number(a.memory) : a.memory);
  if (memoryBytes === undefined) throw new Error(`--memory: expected a size like "256MiB", got ${JSON.stringify(a.memory)}`);
  await startDemoServer({
    port: a.port as number,
    host: a.host as string,
    model: a.model as string,
    loadTimeMs: duration('load-time', a.loadTime),
    wakeTimeMs: a.wakeTime === undefined ? undefined : duration('wake-time', a.wakeTime),
    tokenRate: a.tokenRate as number,
    memoryBytes,
    maxTokens: a.maxTokens as number,
    embeddingDim: a.embeddingDim as number,
    failStart: a.failStart as number | undefined,
    neverReady: a.neverReady as boolean,
    crashAfter: a.crashAfter as number | undefined,
    ignoreSigterm: a.ignoreSigterm as boolean,
    responses: a.responses !== false,
    messages: a.messages !== false,
    toolCalls: a.toolCalls === true,
    reasoning: typeof a.reasoning === 'string' && a.reasoning ? a.reasoning : undefined,
  });
}
