// hub.yaml parsing and validation: good files normalize as documented, bad files report every
// problem at once with its path, and `hub check` prints them (exit 2) or a summary (exit 0).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ConfigError } from '../lib/config/errors.js';
import { DEFAULT_PORTS_START, loadConfig, parseConfig } from '../lib/config/load.js';
import { resolveCommand } from '../lib/config/command.js';
import { portWarnings } from '../lib/config/warnings.js';
import { ephemeralPortRange } from '../lib/runtime/ports.js';
import { HUB_BIN, PACKAGE_ROOT, tempDir } from './helpers.js';

const run = promisify(execFile);

function problems(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(yaml, '/etc/modelhub/hub.yaml', { env });
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

t.test('the shipped hub.yaml is valid and defines demo models', async (t) => {
  const config = loadConfig(join(PACKAGE_ROOT, 'hub.yaml'));
  const models = Object.values(config.models);
  t.ok(models.length >= 2, 'at least two demo models');
  t.ok(models.every((m) => m.backend === 'demo' && m.argv?.[0] === '${HUB}'), 'all run the bundled demo backend');
  t.same(models.map((m) => m.port), models.map((_, i) => 20100 + i), 'ports assigned from the default ports.start in file order');
  t.equal(config.listen.port, 8080);
});

t.test('the SPEC example normalizes durations, sizes, commands and paths', async (t) => {
  const yaml = `
listen: { host: 127.0.0.1, port: 8080 }
state_dir: ./state
log: { level: debug, rotate: { size: 10MiB, interval: 1d, keep: 7, compress: true } }
auth:
  api_keys: ["\${env.HUB_API_KEY}"]
limits: { max_body: 32MiB }
ports: { start: 20100 }
max_memory: 64GiB
defaults:
  start_timeout: 120s
  stop_timeout: 10
  idle: { unload_after: 10m, stop_after: 1h }
groups:
  gpu0: { max_loaded: 2, max_memory: 24GiB, on_full: evict }
models:
  qwen-7b:
    backend: llama-cpp
    cmd: llama-server -m "/models/qwen 7b.gguf" --port \${PORT} -c 8192
    group: gpu0
    memory: 9GiB
    aliases: [gpt-4o-mini]
    served_model: qwen
    env: { CUDA_VISIBLE_DEVICES: "0" }
    cwd: models
    idle: { unload_after: 5m, stop_after: never }
    preload: true
    max_concurrency: 4
    max_queue: 64
    health: { path: /health, interval: 100ms }
  big-vllm:
    backend: vllm
    cmd: [vllm, serve, /models/big, --port, "\${PORT}", --enable-sleep-mode]
    env: { VLLM_SERVER_DEV_MODE: 1 }
    group: gpu0
    memory: 20GiB
  lab-box:
    url: http://10.0.0.7:8000/
    api_key: \${env.LAB_KEY}
`;
  const c = parseConfig(yaml, '/etc/modelhub/hub.yaml', { env: { HUB_API_KEY: 'k1', LAB_KEY: 'lab' } });
  t.same(c.auth.apiKeys, ['k1']);
  t.same(c.auth.adminKeys, ['k1'], 'admin keys default to api keys');
  t.equal(c.stateDir, '/etc/modelhub/state', 'relative to the config file');
  t.equal(c.log.dir, '/etc/modelhub/state/logs', 'log dir defaults to <state_dir>/logs');
  t.equal(c.log.rotate.sizeBytes, 10 * 2 ** 20);
  t.equal(c.log.rotate.intervalMs, 86_400_000);
  t.equal(c.limits.maxBodyBytes, 32 * 2 ** 20);
  t.equal(c.maxMemory, 64 * 2 ** 30);
  t.same(c.groups.gpu0, { name: 'gpu0', maxLoaded: 2, maxMemory: 24 * 2 ** 30, onFull: 'evict', swapHoldMs: 3000, maxWaitMs: 300_000, apiKeys: [] });
  const q = c.models['qwen-7b'];
  t.same(q.argv, ['llama-server', '-m', '/models/qwen 7b.gguf', '--port', '${PORT}', '-c', '8192', '--alias', 'qwen-7b'], 'split like a shell, quotes honoured; llama-server is given --alias <name>');
  t.same(resolveCommand(q.argv!, { port: 20100, model: 'qwen-7b', hub: ['node', 'hub'] }).slice(3, 5), ['--port', '20100']);
  t.equal(q.memory, 9 * 2 ** 30);
  t.same(q.idle, { unloadAfterMs: 300_000, stopAfterMs: 0 }, '"never" disables a step');
  t.equal(q.startTimeoutMs, 120_000, 'from defaults');
  t.equal(q.stopTimeoutMs, 10_000, 'a bare number is seconds');
  t.equal(q.cwd, '/etc/modelhub/models');
  t.equal(q.health.intervalMs, 100);
  t.equal(q.port, 20100);
  t.equal(q.servedModel, 'qwen');
  const v = c.models['big-vllm'];
  t.same(v.env, { VLLM_SERVER_DEV_MODE: '1' });
  t.equal(v.port, 20101);
  t.same(v.idle, { unloadAfterMs: 600_000, stopAfterMs: 3_600_000 }, 'idle from defaults');
  const lab = c.models['lab-box'];
  t.equal(lab.url, 'http://10.0.0.7:8000', 'trailing slash dropped');
  t.equal(lab.apiKey, 'lab');
  t.equal(lab.port, undefined, 'remote models get no port');
});

t.test('${env.X}: substituted, typed when it is the whole value, and an unset one is named', async (t) => {
  const c = parseConfig('listen: { port: "${env.P}" }\nmodels: { a: { url: "http://h:${env.P}" } }', 'hub.yaml', { env: { P: '9000' } });
  t.equal(c.listen.port, 9000);
  t.equal(c.models.a.url, 'http://h:9000');
  t.same(problems('models:\n  a:\n    url: http://x\n    api_key: ${env.LAB_KEY}\n'), [
    'hub.yaml:4: models.a.api_key: ${env.LAB_KEY} is not set; export LAB_KEY or change this value',
  ]);
});

t.test('a bad file reports every problem at once, each with its path', async (t) => {
  const yaml = `listn: { port: 8080 }
groups:
  gpu0: { max_loaded: 0, on_full: panic }
models:
  qwen-7b:
    cmd: llama-server --port \${PORT}
    group: gpu0
    idle: { unload_after: soon }
    idel: 5m
    memory: lots
    backend: llamacpp
    max_concurrency: 0
  Big Model:
    cmd: x --port \${PORT}
  both:
    cmd: x --port \${PORT}
    url: http://x
  neither:
    backend: openai
  piped:
    cmd: server --port \${PORT} | tee log
  placeholder:
    cmd: server --port \${PORT} --name \${NAME}
  portless:
    cmd: server --listen 9999
  grouped:
    cmd: s --port \${PORT}
    group: gpu1
    aliases: [qwen-7b]
`;
  const lines = problems(yaml);
  const expected = [
    'hub.yaml:1: listn: unknown key; did you mean "listen"?',
    'hub.yaml:3: groups.gpu0.max_loaded: expected a whole number from 1, got 0',
    'hub.yaml:3: groups.gpu0.on_full: expected one of evict, reject, wait, got "panic"',
    'hub.yaml:8: models.qwen-7b.idle.unload_after: expected a duration like "5m", 0 or "never", got "soon"',
    'hub.yaml:9: models.qwen-7b.idel: unknown key; did you mean "idle"?',
    'hub.yaml:10: models.qwen-7b.memory: expected a size like "24GiB", or auto, got "lots"',
    'hub.yaml:11: models.qwen-7b.backend: expected one of openai, demo, llama-cpp, vllm, sglang, ollama, mlx, got "llamacpp"',
    'hub.yaml:12: models.qwen-7b.max_concurrency: expected a whole number from 1, got 0',
  ];
  // In the same run, the cross-field checks on what the schema accepted (memory: lots was refused,
  // so nothing is said about it fitting its group).
  const crossToo = [
    'hub.yaml:14: models.Big Model: model name "Big Model" contains whitespace (U+0020); use printable characters without spaces',
    'hub.yaml:16: models.both: has both cmd and url; keep cmd for a managed model or url for a remote one',
    'hub.yaml:19: models.neither: needs either cmd (a command the hub runs) or url (a server it forwards to)',
    'hub.yaml:21: models.piped.cmd: contains the shell operator "|", but cmd is not run through a shell; wrap it in a script, or use [sh, -c, "..."]',
    'hub.yaml:23: models.placeholder.cmd: unknown placeholder ${NAME}; use ${PORT}, ${MODEL}, ${HUB} or ${env.NAME}',
    'hub.yaml:25: models.portless.cmd: does not pass ${PORT} to the server; add e.g. `--port ${PORT}` (or use ${PORT} in env), or set port: to the port it listens on',
    'hub.yaml:28: models.grouped.group: group "gpu1" is not defined under groups; did you mean "gpu0"?',
    'hub.yaml:29: models.grouped.aliases[0]: "qwen-7b" is already used by model qwen-7b; names and aliases must be unique',
  ];
  for (const line of [...expected, ...crossToo]) t.ok(lines.includes(line), line);
  t.equal(lines.length, expected.length + crossToo.length, `every problem in one run, once each (got:\n${lines.join('\n')})`);

  // With the schema satisfied, the cross-field checks still report theirs, all at once.
  const fixed = yaml
    .replace('listn', 'listen').replace('max_loaded: 0, on_full: panic', 'max_loaded: 1, max_memory: 8GiB').replace('soon', '5m')
    .replace('idel: 5m', 'pinned: true').replace('memory: lots', 'memory: 9GiB').replace('llamacpp', 'llama-cpp').replace('max_concurrency: 0', 'max_concurrency: 1');
  const cross = problems(fixed);
  const crossExpected = [
    'hub.yaml:10: models.qwen-7b.memory: 9GiB is more than group gpu0\'s max_memory (8GiB); it could never be loaded',
    'hub.yaml:14: models.Big Model: model name "Big Model" contains whitespace (U+0020); use printable characters without spaces',
    'hub.yaml:16: models.both: has both cmd and url; keep cmd for a managed model or url for a remote one',
    'hub.yaml:19: models.neither: needs either cmd (a command the hub runs) or url (a server it forwards to)',
    'hub.yaml:21: models.piped.cmd: contains the shell operator "|", but cmd is not run through a shell; wrap it in a script, or use [sh, -c, "..."]',
    'hub.yaml:23: models.placeholder.cmd: unknown placeholder ${NAME}; use ${PORT}, ${MODEL}, ${HUB} or ${env.NAME}',
    'hub.yaml:25: models.portless.cmd: does not pass ${PORT} to the server; add e.g. `--port ${PORT}` (or use ${PORT} in env), or set port: to the port it listens on',
    'hub.yaml:28: models.grouped.group: group "gpu1" is not defined under groups; did you mean "gpu0"?',
    'hub.yaml:29: models.grouped.aliases[0]: "qwen-7b" is already used by model qwen-7b; names and aliases must be unique',
  ];
  for (const line of crossExpected) t.ok(cross.includes(line), line);
  t.equal(cross.length, crossExpected.length, `no other problems (got:\n${cross.join('\n')})`);
});

t.test('a cmd refused for an unset ${env.X} is still a cmd: no false "is remote" problem about its port', async (t) => {
  delete process.env.MODELHUB_TEST_UNSET_VAR;
  t.same(problems('models:\n  q: { backend: demo, cmd: "x --port ${PORT} ${env.MODELHUB_TEST_UNSET_VAR}", port: 30001 }\n'), [
    'hub.yaml:2: models.q.cmd: ${env.MODELHUB_TEST_UNSET_VAR} is not set; export MODELHUB_TEST_UNSET_VAR or change this value',
  ]);
  t.same(problems('models:\n  r: { url: "http://127.0.0.1:9", port: 30001 }\n'), ['hub.yaml:2: models.r.port: only applies to models with cmd; r is remote (url)'], 'a remote model with a port still is one');
});

t.test('invalid YAML and a missing models key are reported with where', async (t) => {
  t.match(problems('models:\n  a: { url: http://x\n'), [/^hub\.yaml:\d+: not valid YAML: /]);
  t.same(problems('listen: { port: 1 }\n'), ['hub.yaml:1: models: missing; this key is required']);
  t.same(problems('models: { a: { url: "http://x", memory: 2GiB } }\nmax_memory: 1GiB\n'), [
    "hub.yaml:1: models.a.memory: 2GiB is more than the hub's max_memory (1GiB); it could never be loaded",
  ]);
  t.match(problems('models:\n  a: { url: http://x }\n  a: { url: http://y }\n'), [/not valid YAML: Map keys must be unique/]);
});

t.test('ports stay with their models across reloads; explicit ports are honoured', async (t) => {
  const first = parseConfig('ports: { start: 5000 }\nmodels:\n  b: { cmd: "s --port ${PORT}" }\n  c: { cmd: "s --port ${PORT}" }\n', 'hub.yaml');
  t.same([first.models.b.port, first.models.c.port], [5000, 5001]);
  const previous = new Map(Object.values(first.models).map((m) => [m.name, m.port!]));
  const second = parseConfig('ports: { start: 5000 }\nmodels:\n  a: { cmd: "s --port ${PORT}" }\n  b: { cmd: "s --port ${PORT}" }\n  c: { cmd: "s --port ${PORT}" }\n  d: { cmd: "s", port: 5003 }\n', 'hub.yaml', { previousPorts: previous });
  t.same([second.models.a.port, second.models.b.port, second.models.c.port, second.models.d.port], [5002, 5000, 5001, 5003]);
  t.match(problems('models:\n  a: { cmd: s, port: 7000 }\n  b: { cmd: s, port: 7000 }\n'), ['hub.yaml:3: models.b.port: port 7000 is also used by model a']);
});

t.test('ports.start defaults to 20100, below the ephemeral range, and auto-assigned ports start there', async (t) => {
  const c = parseConfig('models:\n  a: { cmd: "s --port ${PORT}" }\n  b: { cmd: "s", port: 20101 }\n  c: { cmd: "s --port ${PORT}" }\n  r: { url: "http://x" }\n', 'hub.yaml');
  t.equal(c.ports.start, 20100);
  t.equal(DEFAULT_PORTS_START, 20100);
  t.same([c.models.a.port, c.models.b.port, c.models.c.port, c.models.r.port], [20100, 20101, 20102, undefined], 'from 20100 in file order, skipping the explicit 20101');
});

t.test('auto-assigned ports inside the ephemeral range are a warning, not an error', async (t) => {
  const linux = { low: 32768, high: 60999 };
  const two = (start: string) => parseConfig(`${start}models:\n  a: { cmd: "s --port \${PORT}" }\n  b: { cmd: "s --port \${PORT}" }\n  e: { cmd: s, port: 50000 }\n  r: { url: "http://x" }\n`, 'hub.yaml');
  t.same(portWarnings(two(''), linux), [], 'the default start: nothing to say');
  t.same(portWarnings(two('ports: { start: 32766 }\n'), linux), [], 'ports that end right below the range: fine');
  t.same(portWarnings(two('ports: { start: 47850 }\n'), linux), [{
    path: 'ports.start',
    message: "47850 puts 2 auto-assigned ports (47850–47851) inside the OS's ephemeral port range (32768–60999), where any outgoing connection may hold one and make that model fail to start; set ports.start to 20100 or another value below the range",
  }], 'names the ports, the range and what to do; the explicit 50000 is left alone');
  t.match(portWarnings(two('ports: { start: 32767 }\n'), linux), [{ message: /^32767 puts auto-assigned port 32768 inside/ }], 'a start that runs into the range');
  t.match(portWarnings(two(''), { low: 1024, high: 60999 }), [{ message: /; set ports\.start above 60999$/ }], 'a range that leaves no room below');

  const dir = tempDir(t);
  const file = join(dir, 'hub.yaml');
  const inside = ephemeralPortRange().low + 100; // inside this machine's range, whatever it is
  writeFileSync(file, `ports: { start: ${inside} }\nmodels:\n  a: { cmd: "s --port \${PORT}" }\n`);
  const out = await run(process.execPath, [HUB_BIN, 'check', '--config', file]);
  t.match(out.stderr, new RegExp(`^\\[warn\\] hub\\.yaml: ports\\.start: ${inside} puts auto-assigned port ${inside} inside the OS's ephemeral port range`), 'hub check prints it as [warn]');
  t.match(out.stdout, /^\[ok\] .*hub\.yaml is valid/, 'and the config is still valid (exit 0)');
});

t.test('hub check prints a summary (exit 0) or every problem (exit 2)', async (t) => {
  const dir = tempDir(t);
  const good = await run(process.execPath, [HUB_BIN, 'check', '--config', join(PACKAGE_ROOT, 'hub.yaml')]);
  t.match(good.stdout, /^\[ok\] .*hub\.yaml is valid: 3 models \(3 managed, 0 remote\)/);
  t.match(good.stdout, /demo-small: demo, port 20100/);
  t.equal(good.stderr, '', 'no warnings for the shipped config');

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'models:\n  a:\n    cmd: s --port ${PORT}\n    idle: { stop_after: soon }\n    prelod: true\n');
  const err = await run(process.execPath, [HUB_BIN, 'check', '--config', bad]).then(() => undefined, (e: { code: number; stderr: string; stdout: string }) => e);
  t.ok(err, 'hub check fails');
  t.equal(err!.code, 2, 'exit code 2 for a config error');
  t.match(err!.stderr, '[err] bad.yaml:4: models.a.idle.stop_after: expected a duration like "5m", 0 or "never", got "soon"');
  t.match(err!.stderr, '[err] bad.yaml:5: models.a.prelod: unknown key; did you mean "preload"?');
  t.match(err!.stdout, '[info] 2 problems');

  const keyed = join(dir, 'keyed.yaml');
  writeFileSync(keyed, 'auth: { api_keys: ["${env.TEST_HUB_KEY}"] }\nmodels:\n  r: { url: "http://x", api_key: remote-secret-42 }\n');
  const json = await run(process.execPath, [HUB_BIN, 'check', '--json', '--config', keyed], { env: { ...process.env, TEST_HUB_KEY: 'sk-hub-key-123456' } });
  t.match(JSON.parse(json.stdout), { auth: { apiKeys: ['***'] }, models: { r: { apiKey: '***' } } }, 'hub check --json prints the normalized config');
  t.notMatch(json.stdout, /sk-hub-key-123456|remote-secret-42/, 'with its keys masked');

  const missing = await run(process.execPath, [HUB_BIN, 'check', '--config', join(dir, 'nope.yaml')]).then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.equal(missing?.code, 2);
  t.match(missing?.stderr, /no config file found/);
});

t.test('schema and cross-field problems come in one run, once each', async (t) => {
  const yaml = [
    'groups: { gpu: { max_loaded: x } }',
    'models:',
    '  a: { cmd: "x --port ${PORT}", group: gpu0, idle: { unload_afterr: 5m } }',
    '  b: { backend: nope }',
    '  c: { cmd: 5 }',
    '  d: { cmd: "x --port ${PORT}", port: "high" }',
    '  e: { url: http://h, group: gpu }',
  ].join('\n');
  t.same(problems(yaml), [
    'hub.yaml:1: groups.gpu.max_loaded: expected a whole number from 1, got "x"',
    'hub.yaml:3: models.a.idle.unload_afterr: unknown key; did you mean "unload_after"?',
    'hub.yaml:4: models.b.backend: expected one of openai, demo, llama-cpp, vllm, sglang, ollama, mlx, got "nope"',
    'hub.yaml:5: models.c.cmd: expected a command string or a list of arguments, got 5',
    'hub.yaml:6: models.d.port: expected a whole number from 1 to 65535, got "high"',
    'hub.yaml:3: models.a.group: group "gpu0" is not defined under groups; did you mean "gpu"?',
    'hub.yaml:4: models.b: needs either cmd (a command the hub runs) or url (a server it forwards to)',
  ], 'c has no second "needs cmd" problem, d no "does not pass ${PORT}"');
  t.same(problems('listen: { port: "${env.NOPE}" }\nmodels: { a: { url: http://h } }'), [
    'hub.yaml:1: listen.port: ${env.NOPE} is not set; export NOPE or change this value',
  ], 'an unset variable is reported once, not again as a bad port');
});

t.test('${env.X} works inside flow maps and lists, and its value never changes the YAML', async (t) => {
  const c = parseConfig('listen: { host: 127.0.0.1, port: ${env.P} }\nmodels: { a: { url: http://h, api_key: ${env.K}, aliases: [${env.A}] } }', 'hub.yaml', {
    env: { P: '9001', K: 'k: {x}, y', A: 'gpt' },
  });
  t.equal(c.listen.port, 9001, 'typed as a number');
  t.equal(c.models.a.apiKey, 'k: {x}, y', 'YAML syntax in a value stays text');
  t.same(c.models.a.aliases, ['gpt']);
});

t.test('hub check warns when a command is not found on PATH, and runs nothing', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'hub.yaml');
  const marker = join(dir, 'ran');
  writeFileSync(path, `models:\n  q: { cmd: "no-such-server-xyz --port \${PORT}" }\n  r: { cmd: "./run.sh --port \${PORT}" }\n  s: { cmd: [sh, -c, "touch ${marker}", "\${PORT}"] }\n`);
  const { stdout, stderr } = await run(process.execPath, [HUB_BIN, 'check', '--config', path], { env: { ...process.env, NO_COLOR: '1' } });
  const out = stdout + stderr;
  t.match(out, 'models.q.cmd: no-such-server-xyz is not found on PATH; starting q will fail until it is installed (or give its full path)');
  t.match(out, 'models.r.cmd: ./run.sh does not exist or is not executable');
  t.notMatch(out, 'models.s.cmd', 'sh is found');
  t.match(out, /is valid: 3 models/, 'a warning, not an error');
  const { existsSync } = await import('node:fs');
  t.notOk(existsSync(marker), 'nothing was run');
});

t.test('a reload with one problem says "1 problem"', async (t) => {
  const { startTestHub } = await import('./helpers.js');
  const { hub } = await startTestHub(t, 'models:\n  a: { url: "http://127.0.0.1:9" }\n');
  const { writeFileSync: write } = await import('node:fs');
  write(hub.controller.config.path, 'models:\n  a: { url: "http://127.0.0.1:9", idel: 5m }\n');
  const res = await fetch(`${hub.origin}/hub/api/reload`, { method: 'POST' });
  t.equal(res.status, 422);
  t.match(((await res.json()) as { error: { message: string } }).error.message, /^the config has 1 problem; the running config stays/);
});
