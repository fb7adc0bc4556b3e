// `hub serve` in a process of its own, for figures the bench's own process must not share: the
// hub's memory, its CPU time, and its garbage collector's work, as an operator's hub would have them.
import { spawn, type ChildProcess } from 'node:child_process';
import { HUB_COMMAND } from '../lib/paths.js';

export interface HubProcess {
  child: ChildProcess;
  /** Where it serves, as it printed it (http://127.0.0.1:PORT). */
  origin: string;
  /** SIGTERM, and resolves once it has exited. */
  stop(): Promise<void>;
}

/** Starts `hub serve --config <config>` and resolves once it prints that it serves (within 30 s). */
export async function serveHub(config: string): Promise<HubProcess> {
  const [node, script] = HUB_COMMAND;
  const child = spawn(node, [script, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Its output is read to its end (a pipe left full would block the hub's writes), and kept until it serves.
  let out = '';
  let serving = false;
  const keep = (c: Buffer) => { if (!serving) out += c.toString(); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  };
  let origin: string | undefined;
  for (let tries = 0; !(origin = /\[ok\] .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out)?.[1]); tries++) {
    if (tries > 600 || child.exitCode !== null) {
      await stop();
      throw new Error(`hub serve --config ${config} did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  serving = true;
  return { child, origin, stop };
}
