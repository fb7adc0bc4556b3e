// Shared test fixtures: temp dirs, free ports, hubs started in-process on real sockets with real
// demo backends, and polling with deadlines (never bare sleeps).
import './support/untraced-children.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The hub, its config loader and the openai SDK are loaded by startTestHub when it is first called:
// most test files only spawn processes, and importing these costs each of them ~1 s of CPU.
import type OpenAI from 'openai';
import type { RunningHub } from '../lib/hub.js';
import type { Transition } from '../lib/scheduler/context.js';
import { HUB_COMMAND, PACKAGE_ROOT } from '../lib/paths.js';

export { PACKAGE_ROOT };
export const HUB_BIN = join(PACKAGE_ROOT, 'bin', 'hub.js');

export interface Spawned {
  child: import('node:child_process').ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `hub <args>` as a real child process, killed at teardown if still running. */
export function spawnHub(t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [HUB_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  // 'close' (after 'exit'): by then all of its output has been read.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  // A hub still running at teardown gets SIGTERM first, so that it stops its backends; SIGKILL only if
  // it does not exit in time (which would leave them running).
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => { timer = setTimeout(resolve, 15_000); })]);
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => out, exited };
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** `hub serve --config <path> [--watch]` as a real process, once it has printed its URL line: its origin (http://127.0.0.1:port). */
export async function serveHub(t: Teardown, configPath: string, options: { watch?: boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Spawned & { origin: string }> {
  const hub = spawnHub(t, ['serve', ...(options.watch ? ['--watch'] : []), '--config', configPath], options.env);
  const origin = await waitFor('the URL line', () => /\[ok\] .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(hub.output())?.[1], options.timeoutMs);
  return { ...hub, origin };
}

export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'modelhub-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A base port with `count` free ports above it (for ports.start). */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below Linux's ephemeral range (32768+), where outgoing connections would take ports at random.
    const base = 20000 + Math.floor(Math.random() * 12000);
    const free = await Promise.all(Array.from({ length: count }, (_, i) => isFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The shipped demo backend as a model command, with extra flags. */
export const demo = (flags = '') => `\${HUB} demo-model --port \${PORT} --model \${MODEL} ${flags}`.trim();

export interface TestHub {
  hub: RunningHub;
  origin: string;
  base: string;
  client: OpenAI;
  dir: string;
  transitions: Transition[];
  /** How many times a model's process was spawned. */
  spawns(model: string): number;
  close(): Promise<void>;
}

/** Starts a hub in this process on a free port, with the given `models:` (and other top-level) YAML. */
export async function startTestHub(t: Teardown, yaml: string, options: { drainTimeoutMs?: number } = {}): Promise<TestHub> {
  const dir = tempDir(t);
  const portsStart = await freePortRange(8);
  const text = `listen: { host: 127.0.0.1, port: 0 }\nstate_dir: ${dir}\nports: { start: ${portsStart} }\n${yaml}`;
  const path = join(dir, 'hub.yaml');
  writeFileSync(path, text);
  const transitions: Transition[] = [];
  const [{ loadConfig }, { startHub }, { silentLogger }, { default: OpenAIClient }] = await Promise.all([import('../lib/config/load.js'), import('../lib/hub.js'), import('../lib/log.js'), import('openai')]);
  const hub = await startHub(loadConfig(path), { log: silentLogger(), drainTimeoutMs: options.drainTimeoutMs, onTransition: (tr) => transitions.push(tr) });
  t.teardown(() => hub.close());
  const base = `${hub.origin}/v1`;
  return {
    hub,
    origin: hub.origin,
    base,
    dir,
    client: new OpenAIClient({ baseURL: base, apiKey: 'not-needed', maxRetries: 0 }),
    transitions,
    spawns: (model) => transitions.filter((tr) => tr.model === model && tr.axis === 'process' && tr.to === 'starting').length,
    close: () => hub.close(),
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (true) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(100, delay * 2);
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body };
}

export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  getJson(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

export { HUB_COMMAND };
