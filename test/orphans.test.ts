// No orphan, ever: a hub killed with SIGKILL leaves records, and the next hub stops exactly the
// backends they prove are still the same processes; a hub still running keeps its state_dir; closing
// the terminal of `hub serve` shuts it down cleanly; a second SIGTERM kills the backends at once; and a
// closed stdout or stderr crashes neither the hub nor the CLI. Real processes, sockets and a real pty.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../lib/config/load.js';
import { startHub } from '../lib/hub.js';
import { silentLogger } from '../lib/log.js';
import { HUB_BIN, PACKAGE_ROOT, demo, freePortRange, getJson, postJson, spawnHub, tempDir, waitFor, type Spawned } from './helpers.js';

type Teardown = Parameters<typeof tempDir>[0];

/** Field 3 (state) and 22 (start time) of /proc/<pid>/stat; undefined when there is no such process. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], start: fields[19] };
  } catch {
    return undefined;
  }
}

/** A file's text, or '' when it does not exist (so that a test reports what is missing and goes on). */
const readText = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const readJson = (path: string): unknown => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined);

/** Running, not a zombie: orphans are re-parented to a pid 1 that may never reap them. */
const running = (pid: number) => { const s = procStat(pid); return s !== undefined && s.state !== 'Z' && s.state !== 'X'; };

/** Whether `pid` ends within 3 s (a killed process is not gone the instant the signal is sent). */
const gone = (pid: number) => waitFor(`pid ${pid} to end`, () => !running(pid), 3000).then(() => true, () => false);

/** Kills, at teardown, every backend a hub recorded in `dir` that is still that process. */
function killRecordedAtTeardown(t: Teardown, dir: string): void {
  t.teardown(() => {
    const children = join(dir, 'children');
    if (!existsSync(children)) return;
    for (const name of readdirSync(children).filter((n) => n.endsWith('.json'))) {
      const rec = JSON.parse(readFileSync(join(children, name), 'utf8')) as { pgid: number; pid: number; start_ticks: string };
      if (procStat(rec.pid)?.start === rec.start_ticks) try { process.kill(-rec.pgid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
}

/** A state dir + config with one preloaded demo model (and optional extra YAML under models:). */
async function setup(t: Teardown, models = ''): Promise<{ dir: string; config: string }> {
  const dir = tempDir(t);
  killRecordedAtTeardown(t, dir);
  const portsStart = await freePortRange(4);
  const config = join(dir, 'hub.yaml');
  writeFileSync(config, `listen: { port: 0 }\nstate_dir: ${dir}\nports: { start: ${portsStart} }\nmodels:\n  warm: { backend: demo, cmd: "${demo()}", preload: true }\n${models}`);
  return { dir, config };
}

/** The exit of a spawned hub, or 'still running' after `ms` (then it is killed). */
async function exitWithin(hub: Spawned, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve('still running'), ms); });
  const result = await Promise.race([hub.exited, late]);
  clearTimeout(timer);
  if (result === 'still running') hub.child.kill('SIGKILL');
  return result;
}

const urlIn = (output: string) => /\[ok\] .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(output)?.[1];
const models = async (url: string) => (await getJson(`${url}/hub/api/status`)).body.models as Array<{ name: string; process: string; pid: number | null }>;
/** The pid of a running model, killed (with its group) at teardown if it is still that process. */
async function runningPid(t: Teardown, url: string, name = 'warm'): Promise<number> {
  const pid = await waitFor(`${name} to be running`, async () => (await models(url)).find((m) => m.name === name && m.process === 'running')?.pid);
  const start = procStat(pid)?.start;
  t.teardown(() => { if (procStat(pid)?.start === start) try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } });
  return pid;
}
const chat = (url: string) =>
  postJson(`${url}/v1/chat/completions`, { model: 'warm', messages: [{ role: 'user', content: 'hi' }] }).catch((err: Error) => ({ status: 0, body: err.message }));

t.test('a hub killed with SIGKILL: its backend is stopped by the next hub, which says so', async (t) => {
  const { dir, config } = await setup(t);
  const first = spawnHub(t, ['serve', '--config', config]);
  const url = await waitFor('the first hub to serve', () => urlIn(first.output()));
  const pid = await runningPid(t, url);
  t.match(readJson(join(dir, 'runtime.json')), { pid: first.child.pid, url, config, version: /^\d+\.\d+\.\d+/ });
  t.match(readJson(join(dir, 'children', `${pid}.json`)), { model: 'warm', pid, pgid: pid, hub_pid: first.child.pid, start_ticks: procStat(pid)!.start });

  const refused = spawnHub(t, ['serve', '--config', config]);
  t.same(await exitWithin(refused, 15_000), { code: 1, signal: null }, 'a second hub on the same state_dir refuses to start');
  t.match(refused.output(), `[err] cannot start the hub: another hub (pid ${first.child.pid}, ${url}) is running with state_dir ${dir}; stop it first (kill ${first.child.pid}, or POST ${url}/hub/api/shutdown), or give this hub another state_dir`);
  t.ok(running(pid), "and leaves the running hub's backend alone");
  t.equal((await getJson(`${url}/health`)).status, 200);

  first.child.kill('SIGKILL');
  await first.exited;
  t.ok(running(pid), 'the backend outlived the killed hub');

  const second = spawnHub(t, ['serve', '--config', config]);
  const url2 = await waitFor('the second hub to serve', () => urlIn(second.output()));
  t.match(second.output(), `[warn] model warm (pid ${pid}) was still running, left over by an earlier hub (pid ${first.child.pid}) that did not stop cleanly; stopped it\n`);
  t.notOk(running(pid), 'the leftover is gone');
  const reply = await chat(url2);
  t.equal(reply.status, 200, 'the model answers through the second hub');
  t.match(reply.body, { choices: [{ message: { content: /^Hello from warm\./ } }] });
  const pid2 = await runningPid(t, url2);
  t.not(pid2, pid);

  // Nobody reads its output any more: log lines, a reload message and the stop must not kill it.
  second.child.stdout!.destroy();
  second.child.stderr!.destroy();
  t.equal((await chat(url2)).status, 200);
  second.child.kill('SIGHUP');
  t.equal((await chat(url2)).status, 200, 'still serving after writes to a closed stdout and stderr');

  second.child.kill('SIGTERM');
  t.same(await exitWithin(second, 15_000), { code: 0, signal: null }, 'a clean stop');
  t.notOk(running(pid2));
  t.notOk(existsSync(join(dir, 'runtime.json')), 'removes the runtime file');
  t.same(existsSync(join(dir, 'children')) && readdirSync(join(dir, 'children')), [], 'and every child record');
});

t.test('a record whose pid now belongs to another process (other start time) is left alone', async (t) => {
  const { dir, config } = await setup(t);
  const sleeper = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  t.teardown(() => { try { process.kill(-sleeper.pid!, 'SIGKILL'); } catch { /* gone */ } });
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const realStart = procStat(sleeper.pid!)!.start;
  mkdirSync(join(dir, 'children'));
  const record = (pid: number, start: string) => ({ model: 'warm', pid, pgid: pid, start_ticks: start, boot_id: bootId, hub_pid: 999_999_999, hub_start_ticks: '1', spawned_at: new Date().toISOString() });
  writeFileSync(join(dir, 'children', `${sleeper.pid}.json`), JSON.stringify(record(sleeper.pid!, String(Number(realStart) - 100))));
  writeFileSync(join(dir, 'runtime.json'), JSON.stringify({ pid: sleeper.pid, start_ticks: '1', boot_id: bootId, url: 'http://127.0.0.1:1', config, version: '0.0.0' }));

  const warnings: string[] = [];
  const hub = await startHub(loadConfig(config), { log: silentLogger(), warn: (w) => warnings.push(w) });
  t.teardown(() => hub.close());
  t.same(warnings, [], 'no warning: that process was never ours');
  t.ok(running(sleeper.pid!), 'the process holding the recycled pid was not signalled');
  t.notOk(existsSync(join(dir, 'children', `${sleeper.pid}.json`)), 'the stale record is gone');
  t.match(readJson(join(dir, 'runtime.json')), { pid: process.pid }, 'the dead hub it named did not block the start');
});

// Closing a terminal window hangs up its pty: the session leader gets SIGHUP, and every later write to
// the terminal fails with EIO. python3's pty module gives `hub serve` a real controlling terminal.
const PTY = `
import json, os, pty, select, signal, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
print(json.dumps({"hub_pid": pid}), flush=True)
while True:  # relay the terminal until the test says "close"
    ready, _, _ = select.select([fd, sys.stdin], [], [], 60)
    if not ready or sys.stdin in ready:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
os.close(fd)
def give_up(*_):
    os.kill(pid, signal.SIGKILL)
signal.signal(signal.SIGALRM, give_up)
signal.alarm(30)
_, status = os.waitpid(pid, 0)
print("\\n" + json.dumps({"code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}), flush=True)
`;

t.test('closing the terminal of `hub serve` shuts it down cleanly and stops its backends (kill -HUP still reloads)', { skip: spawnSync('python3', ['--version']).status === 0 ? false : 'needs python3' }, async (t) => {
  const { dir, config } = await setup(t);
  const py = spawn('python3', ['-c', PTY, process.execPath, HUB_BIN, 'serve', '--config', config], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  py.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const pyExited = new Promise((resolve) => py.once('exit', resolve));
  const hubPid = Number(await waitFor('the hub pid', () => /"hub_pid": (\d+)/.exec(out)?.[1]));
  // Once python has exited it has reaped the hub; before that, the hub is still its child.
  t.teardown(() => { if (py.exitCode === null && py.signalCode === null) { try { process.kill(hubPid, 'SIGKILL'); } catch { /* gone */ } py.kill('SIGKILL'); } });
  const url = await waitFor('the serving line on the terminal', () => urlIn(out));
  const pid = await runningPid(t, url);
  process.kill(hubPid, 'SIGHUP');
  await waitFor('a reload: the terminal is still open', () => out.includes('[ok] SIGHUP: config reloaded (no changes)'));

  py.stdin.end('close\n');
  await pyExited;
  const result = JSON.parse(out.trim().split('\n').at(-1)!);
  t.same(result, { code: 0, signal: null }, 'the hub exits 0 (no EIO crash, no abort)');
  t.notOk(running(pid), 'the backend is gone');
  const log = readText(join(dir, 'logs', 'hub.log'));
  t.match(log, 'SIGHUP: the terminal was closed: draining in-flight requests and stopping models');
  t.match(log, '"msg":"stopped"');
  t.notMatch(log, /EIO|"level":[56]0|\n\s+at /, 'no error in the hub log');
  t.notOk(existsSync(join(dir, 'runtime.json')));
});

t.test('a second SIGTERM while stopping kills the backends at once', async (t) => {
  const { dir, config } = await setup(t, `  stubborn: { backend: demo, cmd: "${demo('--ignore-sigterm')}", preload: true, stop_timeout: 20s }\n`);
  const hub = spawnHub(t, ['serve', '--config', config]);
  const url = await waitFor('the hub to serve', () => urlIn(hub.output()));
  const pid = await runningPid(t, url, 'stubborn');
  hub.child.kill('SIGTERM');
  await waitFor('the graceful stop to begin', () => hub.output().includes('SIGTERM: draining'));
  const t0 = Date.now();
  hub.child.kill('SIGTERM');
  t.same(await exitWithin(hub, 15_000), { code: 1, signal: null });
  t.ok(Date.now() - t0 < 10_000, 'without waiting for stop_timeout');
  t.match(hub.output(), '[warn] SIGTERM again: stopping every model now (SIGKILL) and exiting');
  // SIGKILL was sent before the hub exited; the kernel takes a moment to end the process (and init to reap it).
  t.ok(await gone(pid), 'the backend that ignored SIGTERM is gone');
  t.notOk(existsSync(join(dir, 'runtime.json')), 'the runtime file is removed');
});

t.test('an uncaught error in `hub serve`: it logs it, stops every backend, exits 1', async (t) => {
  const { dir, config } = await setup(t, `  stubborn: { backend: demo, cmd: "${demo('--ignore-sigterm')}", preload: true, stop_timeout: 60s }\n`);
  // Node's own --require, not a hook in the product: a module that throws in the hub when told to.
  const preload = join(dir, 'throw-on-usr2.cjs');
  writeFileSync(preload, "if (process.argv.includes('serve')) process.on('SIGUSR2', () => { throw new Error('boom from the test'); });\n");
  const hub = spawnHub(t, ['serve', '--config', config], { NODE_OPTIONS: `--require ${preload}` });
  const url = await waitFor('the hub to serve', () => urlIn(hub.output()));
  const pids = [await runningPid(t, url), await runningPid(t, url, 'stubborn')];
  hub.child.kill('SIGUSR2');
  t.same(await exitWithin(hub, 20_000), { code: 1, signal: null });
  t.match(hub.output(), /\[err\] internal error: boom from the test; stopping every model and exiting/);
  t.ok(await gone(pids[0]), 'the backend is gone');
  t.ok(await gone(pids[1]), 'so is the one that ignored SIGTERM (killed once the graceful close ran out of time)');
  t.match(readText(join(dir, 'logs', 'hub.log')), /"level":60,.*"msg":"uncaught error"/);
  t.notOk(existsSync(join(dir, 'runtime.json')), 'the runtime file is removed');
});

t.test('`hub check` with a closed stdout ends quietly: no EPIPE stack trace', async (t) => {
  const script = 'set -o pipefail; failed=0; for json in "" "" --json; do "$0" "$1" check --config "$2" $json | head -c1 >/dev/null || failed=$((failed+1)); done; exit $failed';
  const run = spawnSync('bash', ['-c', script, process.execPath, HUB_BIN, join(PACKAGE_ROOT, 'hub.yaml')], { encoding: 'utf8', timeout: 60_000 });
  t.equal(run.stderr, '', 'nothing on stderr');
  t.equal(run.status, 0, 'every run exited 0');
});
