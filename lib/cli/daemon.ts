// `hub start` and `hub stop`: the hub as a background daemon. `start` runs `hub serve` detached (its
// own session, so closing the terminal does not reach it) with stdout and stderr appended to
// <log.dir>/hub.out, and waits on the hub's own signs of life: the runtime file naming the new
// process, GET /health, then the status of each preload model. `stop` asks POST /hub/api/shutdown and
// waits for the process to be gone; only if it outlives --timeout do signals follow (SIGTERM, then
// SIGKILL), and after a SIGKILL the backends it recorded are stopped the way the next hub would.
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import logUpdate from 'log-update';
import { parseDuration } from '../config/units.js';
import { HUB_COMMAND } from '../paths.js';
import { processGone, readRuntime, StateDir } from '../runtime/state-dir.js';
import type { ModelStatus } from '../scheduler/status.js';
import type { Transition } from '../scheduler/context.js';
import { loadOrReport } from './check.js';
import { errorMessage, type HubClient } from './client.js';
import { listenArgs, type Args } from './commands.js';
import { CliError, plural } from './errors.js';
import { locateHub } from './locate.js';
import { EXIT, say, visible } from './output.js';
import { describeTransition } from './progress.js';
import { fetchStatus } from './status.js';
import { usualStartTimes } from './start-history.js';
import { span } from './table.js';

/** After SIGTERM, how long the hub gets before SIGKILL (it is already past its graceful bound). */
const TERM_GRACE_MS = 5000;

function durationOption(name: string, value: unknown): number {
  const ms = parseDuration(/^\d+(\.\d+)?$/.test(String(value)) ? Number(value) : value);
  if (ms === undefined) throw new CliError(EXIT.usage, `--${name}: expected a duration like "30s" or "2m", got ${JSON.stringify(value)}`);
  return ms;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it returns a value; undefined at the deadline. */
async function poll<T>(check: () => T | undefined | Promise<T | undefined>, deadline: number): Promise<T | undefined> {
  while (Date.now() < deadline) {
    const v = await check();
    if (v !== undefined) return v;
    await pause(50);
  }
  return undefined;
}

export async function start(a: Args): Promise<number> {
  listenArgs(a); // a bad --port is a usage error before anything else
  const config = loadOrReport(a.config);
  if (!config) return EXIT.usage;
  const timeoutMs = durationOption('timeout', a.timeout);
  const running = readRuntime(config.stateDir);
  if (running?.alive) {
    if (a.json) say.json({ already_running: true, pid: running.pid, url: `${running.url}/v1`, dashboard: `${running.url}/hub` });
    else say.ok(`already running at ${running.url}/v1 (pid ${running.pid}); dashboard ${running.url}/hub`);
    return EXIT.ok;
  }
  mkdirSync(config.log.dir, { recursive: true });
  const usual = usualStartTimes(join(config.log.dir, 'hub.log')); // before this hub adds to it
  const outPath = join(config.log.dir, 'hub.out');
  const out = openSync(outPath, 'a');
  const offset = fstatSync(out).size;
  const [node, ...hubArgs] = HUB_COMMAND;
  const { host, port } = listenArgs(a);
  const listen = [...(host !== undefined ? ['--host', host] : []), ...(port !== undefined ? ['--port', String(port)] : [])];
  const child = spawn(node, [...hubArgs, 'serve', '--config', config.path, ...listen], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.once('exit', (code, signal) => { exited = { code, signal }; });
  const pid = child.pid!;
  // What `hub serve` printed for people (its [ok]/[warn]/[err] lines), not its JSON log records.
  const printed = () => readFileSync(outPath).subarray(offset).toString('utf8').split('\n').filter((l) => /^\[(ok|info|warn|err)\] /.test(l));
  const deadline = Date.now() + timeoutMs;
  const tty = process.stdout.isTTY === true && !a.json;

  const died = () => {
    for (const line of printed()) safeLine(line);
    say.err(`the hub exited before it was up (${exited!.signal ?? `exit code ${exited!.code}`}); its output is in ${outPath}`);
    return exited!.code === EXIT.usage ? EXIT.usage : EXIT.failed;
  };

  const url = await poll(() => (exited ? null : readRuntime(config.stateDir)?.pid === pid ? readRuntime(config.stateDir)!.url : undefined), deadline);
  if (!url) {
    if (exited) return died();
    child.unref();
    say.err(`the hub (pid ${pid}) did not come up within ${span(timeoutMs)}; it may still be starting: see ${outPath}, or stop it with hub stop`);
    return EXIT.failed;
  }
  const { client } = await locateHub({ ...a, url });
  const healthy = await poll(async () => (exited ? false : (await client.call('GET', '/health').catch(() => undefined))?.status === 200 ? true : undefined), deadline);
  if (exited) return died();
  child.unref(); // from here on the hub's fate is its own: this command may exit while it runs
  if (!healthy) {
    say.err(`the hub (pid ${pid}) does not answer GET ${url}/health within ${span(timeoutMs)}; see ${outPath}`);
    return EXIT.failed;
  }
  for (const line of printed().filter((l) => l.startsWith('[warn]') || l.startsWith('[err]'))) safeLine(line);
  const preload = Object.values(config.models).filter((m) => m.preload).map((m) => m.name);
  const { failed, unfollowed } = preload.length ? await waitForPreload(client, preload, deadline, tty, usual) : { failed: [], unfollowed: [] };
  // The hub is up either way (GET /health needs no key): not seeing its models is no failure of the start.
  if (unfollowed.length) {
    say.warn(`could not follow the start of ${plural(unfollowed.length, 'preload model')} (${unfollowed.join(', ')}) ${a.apiKey || process.env.HUB_ADMIN_KEY || process.env.HUB_API_KEY ? 'with the admin key given: the hub refused it' : 'without an admin key'}; the hub goes on starting ${unfollowed.length === 1 ? 'it' : 'them'}: see hub status --api-key KEY (or set HUB_ADMIN_KEY)`);
  }
  if (a.json) say.json({ already_running: false, pid, url: `${url}/v1`, dashboard: `${url}/hub`, output: outPath, preload_failed: failed, preload_unfollowed: unfollowed });
  else {
    say.ok(`modelhub is running at ${url}/v1 (pid ${pid})`);
    say.info(`dashboard ${url}/hub · output ${outPath} · stop it with hub stop`);
  }
  return failed.length ? EXIT.failed : EXIT.ok;
}

function safeLine(line: string): void {
  const m = /^\[(ok|info|warn|err)\] (.*)$/.exec(line);
  if (m) say[m[1] as 'ok' | 'info' | 'warn' | 'err'](m[2]);
}

/**
 * Waits until each preload model is ready (or failed), with a live line on a terminal. Returns the
 * failed ones, and those it could not follow because the hub wants an admin key this command lacks.
 */
async function waitForPreload(client: HubClient, names: string[], deadline: number, tty: boolean, usual: Map<string, number>): Promise<{ failed: string[]; unfollowed: string[] }> {
  const since = Date.now();
  const seen = new Set<string>();
  const failed = new Map<string, string>();
  const ready = (m: ModelStatus) => m.process === 'running' && (m.kind === 'remote' || m.memory === 'loaded');
  let pending = names;
  while (pending.length && Date.now() < deadline) {
    let body;
    try {
      body = await fetchStatus(client);
    } catch (err) {
      if (!(err instanceof CliError && err.answer?.status === 401)) throw err;
      if (tty) logUpdate.done();
      return { failed: [...failed.keys()], unfollowed: pending };
    }
    const models = body.models.filter((m) => names.includes(m.name));
    for (const m of models) {
      if (!seen.has(m.name) && ready(m)) {
        seen.add(m.name);
        if (tty) logUpdate.clear();
        say.ok(`${m.name} is ready${m.started_at && m.ready_at ? ` (started in ${span(Date.parse(m.ready_at) - Date.parse(m.started_at))})` : ''}`);
      } else if (m.process === 'failed' && !failed.has(m.name)) {
        failed.set(m.name, m.last_error ?? 'failed');
        if (tty) logUpdate.clear();
        say.err(`${m.name} failed to start: ${m.last_error ?? 'no error recorded'}`);
      }
    }
    pending = names.filter((n) => !seen.has(n) && !failed.has(n));
    // Elapsed since the model's own start when the hub reports it (it may have begun before /health answered).
    const elapsed = (n: string) => span(Date.now() - (Date.parse(models.find((m) => m.name === n)?.started_at ?? '') || since));
    const progress = pending.map((n) => `${n} … ${elapsed(n)}${usual.has(n) ? ` (usually ${span(usual.get(n)!)})` : ''}`);
    if (tty && pending.length) logUpdate(`[info] starting ${visible(progress.join(', '))}`);
    if (pending.length) await pause(100);
  }
  if (tty) logUpdate.done();
  for (const n of pending) say.err(`${n} is not ready after ${span(Date.now() - since)}; the hub goes on starting it (see hub status)`);
  return { failed: [...failed.keys(), ...pending], unfollowed: [] };
}

export async function stop(a: Args): Promise<number> {
  const hub = await locateHub(a);
  const timeoutMs = durationOption('timeout', a.timeout);
  const { client, pid } = hub;
  const before = await fetchStatus(client); // exit 3 here when nothing answers
  const inflight = before.models.reduce((n, m) => n + m.in_flight + m.queued, 0);
  const live = before.models.filter((m) => m.kind === 'managed' && m.process !== 'stopped').map((m) => m.name);
  // The models not yet stopped, as the last status and the transitions since show them: what a
  // SIGKILL cuts short, said on its line.
  const up = (state: string) => state !== 'stopped' && state !== 'failed'; // failed: its process has exited
  const running = new Set(before.models.filter((m) => m.kind === 'managed' && up(m.process)).map((m) => m.name));
  const abort = new AbortController();
  const events = await client.events((event, data) => {
    if (event === 'status') {
      running.clear();
      for (const m of (data as { models: ModelStatus[] }).models) if (m.kind === 'managed' && up(m.process)) running.add(m.name);
    }
    if (event !== 'transition') return;
    const t = data as Transition;
    say.info(describeTransition(t));
    if (t.axis === 'process') running[up(t.to) ? 'add' : 'delete'](t.model);
  }, abort.signal).catch(() => undefined);
  const answer = await client.call('POST', '/hub/api/shutdown');
  if (answer.status >= 300 && answer.body?.error?.code !== 'hub_shutting_down') {
    abort.abort();
    throw new CliError(EXIT.failed, `the hub refused to shut down: ${errorMessage(answer)}`);
  }
  const waits = [inflight && `${plural(inflight, 'request')} in flight or queued`, live.length && `${plural(live.length, 'model')} to stop (${live.join(', ')})`].filter(Boolean);
  say.info(`shutting down the hub at ${client.origin}${pid ? ` (pid ${pid})` : ''}${waits.length ? `: waiting for ${waits.join(' and ')}` : ''}`);
  const started = Date.now();
  try {
    if (pid === undefined) {
      // No pid (the hub is on another machine, or has no runtime file here): gone is when it stops answering.
      const gone = await poll(async () => client.call('GET', '/health').then(() => undefined, () => true), started + timeoutMs);
      if (!gone) throw new CliError(EXIT.failed, `the hub at ${client.origin} still answers after ${span(timeoutMs)}; without its pid (no runtime file for it here) it cannot be signalled from here`);
      say.ok(`stopped (${span(Date.now() - started)})`);
      return EXIT.ok;
    }
    if (await poll(() => (processGone(pid) ? true : undefined), started + timeoutMs)) {
      await events?.closed;
      say.ok(`stopped (pid ${pid}, ${span(Date.now() - started)})`);
      return EXIT.ok;
    }
    say.warn(`the hub (pid ${pid}) has not exited after ${span(timeoutMs)}: sending SIGTERM`);
    signal(pid, 'SIGTERM');
    if (await poll(() => (processGone(pid) ? true : undefined), Date.now() + Math.min(TERM_GRACE_MS, timeoutMs))) {
      say.ok(`stopped after SIGTERM (pid ${pid})`);
      return EXIT.ok;
    }
    const cut = running.size ? `; ${plural(running.size, 'model')} had not stopped: ${[...running].join(', ')}` : '';
    say.warn(`the hub (pid ${pid}) is still running: sending SIGKILL${cut}`);
    signal(pid, 'SIGKILL');
    await poll(() => (processGone(pid) ? true : undefined), Date.now() + 5000);
    // A killed hub cannot stop its backends: stop the ones it recorded, as the next hub would (each
    // is checked to be the recorded process, so a reused pid is never hit).
    const config = await hub.config();
    if (hub.stateDir) await StateDir.open(hub.stateDir, { warn: say.warn, stopTimeoutMs: (m) => config?.models[m]?.stopTimeoutMs ?? 10_000 });
    say.ok(`stopped with SIGKILL (pid ${pid}); its backends were stopped too`);
    return EXIT.ok;
  } finally {
    abort.abort();
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}
