// What a failed start or a crash tells the people waiting for it, and how long the next start waits.
import { describeExit, type ExitInfo } from '../runtime/child.js';
import { mentionsAddressInUse } from '../runtime/ports.js';
import type { ExecutedModel } from './context.js';
import type { MachineEvent, MachineState } from './machine.js';

export type FailureKind = 'start' | 'timeout' | 'crash' | 'spawn' | 'stuck';

/** Restart delay after `n` consecutive failures: 0, then 1 s, 2 s, 4 s … 60 s. */
export const backoffMs = (n: number): number => (n <= 0 ? 0 : Math.min(60_000, 1000 * 2 ** (n - 1)));

/** Which failure it was, from the state the process left and the event that ended it. */
export function failureKind(before: MachineState, event: MachineEvent): FailureKind {
  if (event.type === 'spawn-failed') return 'spawn';
  if (event.type === 'exit-overdue') return 'stuck';
  if (before.process === 'running') return 'crash';
  return before.process === 'stopping' ? 'timeout' : 'start';
}

/** The reason on the transition into `failed`. */
export const failureKindReason: Record<FailureKind, string> = { spawn: 'start failed', start: 'start failed', timeout: 'start timed out', crash: 'crash', stuck: 'did not exit after SIGKILL' };

export function describeFailure(kind: FailureKind, model: Pick<ExecutedModel, "name" | "config" | "logFile">, facts: { exit?: ExitInfo; tail: string[]; spawnError?: string }): string {
  const { name, config, logFile } = model;
  const lines = facts.tail.slice(-8);
  const quoted = lines.length ? `; last log lines:\n${lines.join('\n')}` : '';
  const exit = describeExit(facts.exit ?? { code: null, signal: null });
  switch (kind) {
    case 'spawn':
      return `model ${name} could not be started: ${facts.spawnError}`;
    case 'start': {
      const what = mentionsAddressInUse(facts.tail) ? `its port ${config.port} was already in use when it tried to listen, and it exited` : 'its process exited before it was ready';
      return `model ${name} failed to start: ${what} (${exit})${quoted || `; see ${logFile}`}`;
    }
    case 'timeout':
      return `model ${name} was not ready within start_timeout (${config.startTimeoutMs / 1000}s) and was killed; raise models.${name}.start_timeout if it needs longer, or check ${logFile}`;
    case 'crash':
      return `model ${name} crashed (${exit})${quoted}`;
    case 'stuck':
      return `model ${name} failed: did not exit after SIGKILL (it may be stuck in the kernel, e.g. on a GPU driver call); the hub has given up on it and goes on, but its memory may still be held until that process ends: check it with ps and the driver's tools`;
  }
}
