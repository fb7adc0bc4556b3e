// A resource bound on the request path: under steady load the hub must not copy its requests into V8's
// old generation. A per-request object kept where V8 treats it as long-lived (a WeakMap keyed by the
// response, a closure stored on every request's state) once made the hub promote ~8 KiB per request,
// freed only by full collections: the largest single cost over a bare pipe. Measured here with
// --trace-gc-nvp in a real hub process, with a real demo backend, under 32 connections.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { HUB_BIN, freePortRange, tempDir, waitFor } from './helpers.js';

const REQUESTS = 6000;
const CONNECTIONS = 32;
/** Bytes promoted per request; ~0.8 KiB measured, ~8 KiB with the defect. */
const BOUND = 3 * 1024;

t.test('under load the hub promotes little of each request to the old generation', async (t) => {
  const dir = tempDir(t);
  const ports = await freePortRange(2);
  const config = join(dir, 'hub.yaml');
  writeFileSync(config, `listen: { port: ${ports} }\nstate_dir: ${dir}\nports: { start: ${ports + 1} }\nmodels:\n  plain: { backend: demo, cmd: "\${HUB} demo-model --port \${PORT} --model \${MODEL} --max-tokens 1" }\n`);
  const child = spawn(process.execPath, ['--trace-gc-nvp', HUB_BIN, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM'); // the hub stops its backend on the way out
    await exited;
  });
  const origin = await waitFor('the URL line', () => /\[ok\] .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out)?.[1], 30_000);

  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  t.teardown(() => agent.destroy());
  const body = JSON.stringify({ model: 'plain', messages: [{ role: 'user', content: 'hi' }] });
  const send = () =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${origin}/v1/chat/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
  // The model starts, and the hub's code is warm, before the measured part.
  const warm: number[] = [];
  for (let i = 0; i < 200; i++) warm.push(await send());
  t.same(new Set(warm), new Set([200]), 'the warm-up requests answered 200');
  const from = out.length;
  let left = REQUESTS;
  const statuses: number[] = [];
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (left-- > 0) statuses.push(await send());
  }));
  t.equal(statuses.filter((s) => s === 200).length, REQUESTS, 'every request answered 200');

  const scavenges = out.slice(from).split('\n').filter((line) => / gc=s /.test(line));
  const promoted = scavenges.reduce((sum, line) => sum + Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0), 0);
  t.ok(scavenges.length >= 3, `the load made young-generation collections to measure (${scavenges.length})`);
  t.ok(promoted / REQUESTS < BOUND, `promoted per request: ${Math.round(promoted / REQUESTS)} bytes (bound ${BOUND}) over ${scavenges.length} collections`);
});
