// The processes the bench starts beside its own: `hub serve`, for figures the bench's process must not
// share (the hub's memory, its CPU time, its garbage collector's work, as an operator's hub has them),
// and small helper servers (a backend, a pipe proxy) that print the port they listen on.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { HUB_COMMAND } from '../lib/paths.js';

export interface Started {
  child: ChildProcess;
  /**
   * SIGTERM, then SIGKILL if it has not exited within 10 s; resolves once it has exited. (A hub that
   * needed SIGKILL leaves its models' processes running: each has a process group of its own.)
   */
  stop(): Promise<void>;
}

export interface HubProcess extends Started {
  /** Where it serves, as it printed it (http://127.0.0.1:PORT). */
  origin: string;
}

/** The path of a script of the bench (compiled, beside this one). */
export const benchScript = (name: string) => fileURLToPath(new URL(`./${name}`, import.meta.url));

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const late = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(late);
  };
}

/**
 * Starts `hub serve --config <config>` and resolves once it prints that it serves (within 30 s). Its
 * output goes to `<config>.out`, not through the bench's process, which would otherwise read the hub's
 * request log while it measures it.
 */
export async function serveHub(config: string): Promise<HubProcess> {
  const [node, script] = HUB_COMMAND;
  const outPath = `${config}.out`;
  const out = openSync(outPath, 'w');
  const child = spawn(node, [script, 'serve', '--config', config], { stdio: ['ignore', out, out] });
  closeSync(out);
  let failed: Error | undefined;
  child.once('error', (err) => { failed = err; });
  const stop = stopper(child);
  const printed = () => { try { return readFileSync(outPath, 'utf8'); } catch { return ''; } };
  let origin: string | undefined;
  for (let tries = 0; !(origin = /\[ok\] .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(printed())?.[1]); tries++) {
    if (tries > 600 || failed || child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`hub serve --config ${config} did not start${failed ? ` (${failed.message})` : ''}:\n${printed()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, origin, stop };
}

/** `node <bench script> ...args`, a server that prints its port on its first line; resolves with that port (30 s at most). */
export async function helper(name: string, args: string[]): Promise<Started & { port: number }> {
  const child = spawn(process.execPath, [benchScript(name), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = stopper(child);
  let timer: NodeJS.Timeout | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim())));
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`${name} exited (${code})`)));
      timer = setTimeout(() => reject(new Error(`${name} printed no port within 30 s`)), 30_000);
    });
    return { child, port, stop };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A port free right now on 127.0.0.1 (the system's choice). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
