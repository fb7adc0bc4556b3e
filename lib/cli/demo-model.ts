// `hub demo-model`: the bundled demo backend (SPEC §9) as a command.
import type { Argv } from 'yargs';
import { parseDuration, parseSize } from '../config/units.js';
import { startDemoServer } from '../demo/server.js';

export const demoOptions = (y: Argv) =>
  y
    .option('port', { type: 'number', demandOption: true, describe: 'port to listen on' })
    .option('host', { type: 'string', default: '127.0.0.1' })
    .option('model', { type: 'string', default: 'demo', describe: 'model id it reports and names in replies' })
    .option('load-time', { type: 'string', default: '0ms', describe: 'how long /health answers 503 after start (e.g. 1.5s)' })
    .option('wake-time', { type: 'string', describe: 'how long /wake_up takes (default: load-time)' })
    .option('token-rate', { type: 'number', default: 0, describe: 'tokens per second when generating; 0 = as fast as possible' })
    .option('memory', { type: 'string', default: '0', describe: 'RAM held while loaded (e.g. 256MiB); freed by POST /sleep' })
    .option('max-tokens', { type: 'number', default: 16, describe: 'reply length when the request sets none' })
    .option('embedding-dim', { type: 'number', default: 8 })
    .option('fail-start', { type: 'number', describe: 'exit with this code half-way through loading' })
    .option('never-ready', { type: 'boolean', default: false, describe: '/health never turns 200' })
    .option('crash-after', { type: 'number', describe: 'exit (code 1) after generating this many tokens in total' })
    .option('ignore-sigterm', { type: 'boolean', default: false, describe: 'keep running on SIGTERM (to test SIGKILL escalation)' });

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
  });
}
