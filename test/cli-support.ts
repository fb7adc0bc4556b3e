// Fixtures for the CLI tests: the built `hub` run as a user runs it (a subprocess, its own env), a
// temp config for a daemon with teardown that leaves no process behind, and a real pseudo-terminal
// (util-linux `script`) for the commands that draw on one.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HUB_BIN, demo, freePort, freePortRange, tempDir, waitFor } from './helpers.js';

type Teardown = Parameters<typeof tempDir>[0];

export interface CliResult { code: number | null; out: string; err: string }

/** Env without the variables that would point the CLI at some other hub or config. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['HUB_URL', 'HUB_API_KEY', 'HUB_ADMIN_KEY', 'HUB_CONFIG', 'NO_COLOR', 'FORCE_COLOR']) delete env[k];
  return { ...env, ...extra };
}

/** `hub <args>` to completion (bounded: a hung command fails the test instead of hanging it). */
export function hub(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HUB_BIN, ...args], { env: cleanEnv(options.env), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`hub ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000}ms:\n${out}${err}`)); }, options.timeoutMs ?? 30_000);
    // 'close', not 'exit': only then has all of its output been read (under load 'exit' comes first).
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

/** A long-running `hub <args>` (logs -f) whose output is read while it runs. */
export function hubRunning(t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [HUB_BIN, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code))); // with all its output read
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return { child, output: () => out, exited };
}

/** A command in a real pseudo-terminal (40×120 unless `cols` says); `write` types into it (\x03 is Ctrl-C). */
export function inPty(t: Teardown, command: string, env: NodeJS.ProcessEnv = {}, cols = 120) {
  const child = spawn('script', ['-qfec', `stty rows 40 cols ${cols}; exec ${command}`, '/dev/null'], { env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code))); // with all its output read
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return { output: () => out, write: (s: string) => child.stdin.write(s), exited };
}

/** Running and not a zombie (field 3 of /proc/<pid>/stat). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export interface DaemonSetup { dir: string; config: string; stateDir: string; port: number; origin: string; write(models: string): void }

/**
 * A temp config on a free port with its own state_dir and log.dir, `models:` from the caller (`@DIR@`
 * stands for the temp folder). At
 * teardown whatever still runs is stopped: the hub named by the runtime file (SIGTERM, SIGKILL after
 * 15 s), then every backend recorded in state_dir (SIGKILL to its group).
 */
export async function daemonSetup(t: Teardown, head: string, models: string): Promise<DaemonSetup> {
  const dir = tempDir(t);
  const port = await freePort();
  const portsStart = await freePortRange(8);
  const stateDir = join(dir, 'state');
  const config = join(dir, 'hub.yaml');
  const write = (m: string) => writeFileSync(config, `listen: { host: 127.0.0.1, port: ${port} }\nstate_dir: ${stateDir}\nports: { start: ${portsStart} }\n${head}\nmodels:\n${m}`.replaceAll('@DIR@', dir));
  write(models);
  t.teardown(async () => {
    const runtime = join(stateDir, 'runtime.json');
    if (existsSync(runtime)) {
      const { pid } = JSON.parse(readFileSync(runtime, 'utf8')) as { pid: number };
      if (alive(pid)) {
        process.kill(pid, 'SIGTERM');
        await waitFor(`hub ${pid} to exit`, () => !alive(pid), 15_000).catch(() => process.kill(pid, 'SIGKILL'));
      }
    }
    killRecorded(stateDir);
  });
  return { dir, config, stateDir, port, origin: `http://127.0.0.1:${port}`, write };
}

/** The pids of the backends recorded in state_dir/children. */
export function recordedPids(stateDir: string): number[] {
  const children = join(stateDir, 'children');
  if (!existsSync(children)) return [];
  return readdirSync(children).filter((n) => /^\d+\.json$/.test(n)).map((n) => Number(n.slice(0, -5)));
}

/** SIGKILL to the group of each recorded backend that is still that process (same start time). */
function killRecorded(stateDir: string): void {
  for (const pid of recordedPids(stateDir)) {
    try {
      const rec = JSON.parse(readFileSync(join(stateDir, 'children', `${pid}.json`), 'utf8')) as { pgid: number; start_ticks: string };
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] === rec.start_ticks) process.kill(-rec.pgid, 'SIGKILL');
    } catch { /* gone */ }
  }
}

/** A model cmd: a shell snippet, then the demo backend (exec'd, so the pid is the backend's). */
export const shThenDemo = (script: string, flags: string[] = []) =>
  JSON.stringify(['sh', '-c', `${script} exec "$@"`, 'sh', '${HUB}', 'demo-model', '--port', '${PORT}', '--model', '${MODEL}', ...flags]);

/** The hub's pid from the `(pid N)` of `hub start`'s URL line. */
export const startedPid = (r: { out: string }) => Number(/\(pid (\d+)\)/.exec(r.out)?.[1]);

/**
 * The daemon of the CLI flow tests (cli-verbs, cli): group g holds one model loaded (small, preloaded,
 * and big; evict when full), broken fails its start (exit 7), and chatter prints 200 lines once
 * @DIR@/GO exists, to be followed across rotations of its 4 KiB log.
 */
export function flowDaemon(t: Teardown): Promise<DaemonSetup> {
  const go = '$GO_FILE';
  return daemonSetup(
    t,
    'log: { rotate: { size: 4KiB, keep: 3, compress: false } }\ngroups:\n  g: { max_loaded: 1, on_full: evict }',
    `  small: { backend: demo, cmd: "${demo('--load-time 100ms')}", group: g, preload: true }
  big: { backend: demo, cmd: "${demo('--load-time 100ms')}", group: g }
  broken: { backend: demo, cmd: "${demo('--load-time 50ms --fail-start 7')}" }
  chatter: { backend: demo, env: { GO_FILE: @DIR@/GO }, cmd: ${shThenDemo(`(while [ ! -e "${go}" ]; do sleep 0.05; done; i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo "chatter-line-$i padding-padding-padding"; sleep 0.005; done; echo chatter-done) &`)} }
`,
  );
}
