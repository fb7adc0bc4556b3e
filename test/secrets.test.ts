// The small pure pieces behind robustness.test.ts: secret masking, error serialization for the hub
// log, YAML alias limits as config errors, /upstream path normalization, hop-by-hop stripping.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { ConfigError } from '../lib/config/errors.js';
import { parseConfig } from '../lib/config/load.js';
import { HubError } from '../lib/errors.js';
import { forwardable } from '../lib/http/hop-by-hop.js';
import { normalize } from '../lib/http/upstream-guard.js';
import { createLogger } from '../lib/log.js';
import { describePortHolder } from '../lib/runtime/ports.js';
import { configSecrets, createMask, inheritedSecrets, isSecretEnvName, launchSecrets, LineMasker, maskArgv } from '../lib/secrets.js';

t.test('patterns: flag values, secret-looking keys, bearer tokens, URL passwords', async (t) => {
  const mask = createMask();
  const cases: Array<[string, string]> = [
    ['vllm serve m --api-key sk-123 --port 8000', 'vllm serve m --api-key *** --port 8000'],
    ['server --api-key=sk-123 -c 8192', 'server --api-key=*** -c 8192'],
    ['x --hf-token hf_abc --token-rate 20', 'x --hf-token *** --token-rate 20'],
    ['x --password "two words" --secret s3', 'x --password *** --secret ***'],
    ['x --api-key --port 1', 'x --api-key --port 1'],
    ['env: HF_TOKEN=hf_abc OPENAI_API_KEY=sk-9 PLAIN=ok', 'env: HF_TOKEN=*** OPENAI_API_KEY=*** PLAIN=ok'],
    ["Namespace(api_key='sk-1', port=8000)", "Namespace(api_key='***', port=8000)"],
    ['{"api_key": ["sk-1"], "max_tokens": 16}', '{"api_key": ["***"], "max_tokens": 16}'],
    ['x-api-key: abc123', 'x-api-key: ***'],
    ['Authorization: Bearer abc.def-ghi', 'Authorization: Bearer ***'],
    ['proxy http://user:hunter22@host:8080/x', 'proxy http://user:***@host:8080/x'],
    ['llama_model_loader: tokenizer.ggml.tokens arr[str,32000] = ["<unk>"]', 'llama_model_loader: tokenizer.ggml.tokens arr[str,32000] = ["<unk>"]'],
    ['n_tokens = 512, max_tokens: 16, --token-rate 20', 'n_tokens = 512, max_tokens: 16, --token-rate 20'],
    ["print_info: BOS token        = 1 '<s>'", "print_info: BOS token        = 1 '<s>'"],
    ['api_key = sk-1; GET /v1/x?token=abc', 'api_key = ***; GET /v1/x?token=***'],
    ['listening on http://127.0.0.1:8080', 'listening on http://127.0.0.1:8080'],
  ];
  for (const [input, expected] of cases) t.equal(mask(input), expected, input);
});

t.test('exact known secrets are masked in any form; short ones only by the patterns', async (t) => {
  const mask = createMask(['sk-live-abc123def', 'abc', 'hunter22']);
  t.equal(mask("args: {'api': ['sk-live-abc123def']} and sk-live-abc123def-suffix"), "args: {'api': ['***']} and ***-suffix");
  t.equal(mask('abc is too short to hunt for; hunter22 is not'), 'abc is too short to hunt for; *** is not');
  t.equal(createMask(['a.b*c(d)e']).call(null, 'x a.b*c(d)e y'), 'x *** y', 'regex characters are literal');
});

t.test('argv: --flag value and --flag=value; launch and config secrets', async (t) => {
  const argv = ['vllm', 'serve', '--api-key', 'k1', '--token=k2', '--port', '8000', '--api-key', '--verbose'];
  t.same(maskArgv(argv), ['vllm', 'serve', '--api-key', '***', '--token=***', '--port', '8000', '--api-key', '--verbose']);
  t.same(launchSecrets(argv, { HF_TOKEN: 'hf', Db_Password: 'pw', MY_SECRET_X: 's', CUDA_VISIBLE_DEVICES: '0', OPENAI_KEY: 'ok' }), ['k1', 'k2', 'hf', 'pw', 's', 'ok']);
  for (const name of ['HF_TOKEN', 'api_key', 'MY_SECRET', 'DB_PASSWORD', 'PASSWD', 'keyring']) t.ok(isSecretEnvName(name), name);
  for (const name of ['CUDA_VISIBLE_DEVICES', 'PATH', 'OLLAMA_KEEP_ALIVE']) t.notOk(isSecretEnvName(name), name);
  t.same(inheritedSecrets({ GITHUB_TOKEN: 'gh', HOME: '/root', X: undefined }), ['gh']);

  const config = parseConfig(
    `auth: { api_keys: [hub-key-1], admin_keys: [admin-key-1] }
models:
  a: { cmd: [srv, --port, "\${PORT}", --api-key, argv-key-1], env: { HF_TOKEN: env-tok-1, PLAIN: not-secret } }
  b: { url: "http://10.0.0.7:8000", api_key: remote-key-1 }
`,
    '/tmp/hub.yaml',
    { env: {} },
  );
  t.same(configSecrets(config).sort(), ['admin-key-1', 'argv-key-1', 'env-tok-1', 'hub-key-1', 'remote-key-1']);
});

t.test('a stream is masked a line at a time: a secret split across chunks is still found', async (t) => {
  const masker = new LineMasker(createMask(['sk-live-abc123def']));
  let out = masker.push(Buffer.from('first line\nthe key is sk-live-'));
  out += masker.push(Buffer.from('abc123def and --api-key sk'));
  out += masker.push(Buffer.from('-2\nprogress 50%\rprogress 100%\r'));
  out += masker.push(Buffer.from([0xc3])); // the first byte of "é"
  out += masker.push(Buffer.from([0xa9, 0x0a]));
  out += masker.push('unfinished Bearer tok');
  t.equal(out, 'first line\nthe key is *** and --api-key ***\nprogress 50%\rprogress 100%\ré\n');
  t.equal(masker.flush(), 'unfinished Bearer ***');
  const long = new LineMasker(createMask(), 10);
  t.equal(long.push('0123456789abc'), '0123456789abc', 'a line that never ends is passed on once past the limit');
});

t.test('the hub log keeps the message and stack of whatever was thrown', async (t) => {
  const out = new PassThrough();
  const lines: Array<Record<string, any>> = [];
  out.on('data', (c: Buffer) => lines.push(...c.toString().trim().split('\n').map((l) => JSON.parse(l))));
  const log = createLogger('info', out);
  const noStack = new Error('no stack here');
  noStack.stack = undefined;
  log.error({ err: noStack }, 'a');
  log.error({ err: Object.assign(new Error('with code', { cause: new Error('the cause') }), { code: 'EX' }) }, 'b');
  log.error({ err: 'a string' }, 'c');
  log.error({ error: new URIError('URI malformed') }, 'd');
  await new Promise((r) => setImmediate(r));
  t.match(lines[0].err, { message: 'no stack here', name: 'Error', stack: /no stack here/ });
  t.match(lines[1].err, { message: 'with code', code: 'EX', stack: /Error: with code\n\s+at /, cause: { message: 'the cause' } });
  t.match(lines[2].err, { message: 'a string' });
  t.match(lines[3].error, { message: 'URI malformed', name: 'URIError', stack: /URIError/ });
});

t.test('YAML the parser refuses is a ConfigError naming the file', async (t) => {
  const bomb = `models:\n  a: &x { url: "http://h" }\n${Array.from({ length: 120 }, (_, i) => `  m${i}: *x\n`).join('')}`;
  const err = (() => { try { parseConfig(bomb, '/etc/modelhub/hub.yaml', { env: {} }); } catch (e) { return e; } })();
  t.type(err, ConfigError);
  t.match((err as ConfigError).message, /^hub\.yaml: uses YAML aliases \(\*name\) too often .* put the shared settings under defaults:/);
  const fewer = `models:\n  a: &x { url: "http://h" }\n${Array.from({ length: 20 }, (_, i) => `  m${i}: *x\n`).join('')}`;
  t.equal(Object.keys(parseConfig(fewer, '/tmp/hub.yaml', { env: {} }).models).length, 21, 'a normal use of aliases is fine');
  const deep = (() => { try { parseConfig(`a: ${'['.repeat(20000)}${']'.repeat(20000)}`, '/tmp/hub.yaml', { env: {} }); } catch (e) { return e; } })();
  t.type(deep, ConfigError, 'so is nesting too deep for the parser');
});

t.test('upstream_control is a per-model key, off by default', async (t) => {
  const c = parseConfig('models:\n  a: { url: "http://h" }\n  b: { url: "http://h", upstream_control: true }\n', '/tmp/hub.yaml', { env: {} });
  t.equal(c.models.a.upstreamControl, false);
  t.equal(c.models.b.upstreamControl, true);
});

t.test('/upstream paths as the backend router sees them', async (t) => {
  const cases: Array<[string, string]> = [
    ['/sleep', '/sleep'], ['//sleep', '/sleep'], ['/sleep/', '/sleep'], ['/%73leep', '/sleep'], ['/x/../wake_up', '/wake_up'],
    ['/./SLEEP', '/sleep'], ['/', '/'], ['/%E0%A4%A', '/%e0%a4%a'], ['/v1/models', '/v1/models'],
  ];
  for (const [raw, expected] of cases) t.equal(normalize(raw), expected, raw);
});

t.test('hop-by-hop headers, including those named in Connection', async (t) => {
  const headers: Record<string, string> = {
    connection: 'keep-alive, X-Listed, content-length', 'keep-alive': 'timeout=5', 'x-listed': '1', te: 'trailers', trailer: 'x',
    upgrade: 'h2c', 'proxy-authorization': 'Basic x', 'proxy-authenticate': 'Basic', 'proxy-connection': 'keep-alive',
    'content-length': '10', 'content-type': 'application/json', 'x-kept': 'yes',
  };
  const copy = { ...headers };
  t.same(forwardable(headers), { 'content-length': '10', 'content-type': 'application/json', 'x-kept': 'yes' });
  t.same(headers, copy, 'the message\'s own headers are left as they were');
  t.same(forwardable({ connection: 'Keep-Alive', 'x-a': '1', authorization: 'k' }, (n) => n === 'authorization'), { 'x-a': '1' }, 'and what the caller leaves out');
});

t.test('504 model_start_timeout tells SDKs not to retry', async (t) => {
  t.equal(new HubError('model_start_timeout', 'x').headers['x-should-retry'], 'false');
  t.equal(new HubError('model_start_failed', 'x', { retryAfterMs: 1000 }).headers['x-should-retry'], undefined, 'a start failure with Retry-After may be retried');
  t.match(new HubError('forbidden', 'x').toJSON(), { error: { code: 'forbidden', type: 'permission_error' } });
  t.equal(new HubError('forbidden', 'x').status, 403);
});

t.test('a port holder is named with its secrets masked', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const holder = spawn(process.execPath, ['-e', "const s = require('net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port))", '--', '--api-key', 'sk-holder-123'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => holder.kill());
  const [chunk] = (await once(holder.stdout!, 'data')) as [Buffer];
  const described = await describePortHolder(Number(chunk.toString()));
  t.match(described, /--api-key \*\*\*\)$/);
  t.notMatch(described, /sk-holder-123/);
});

t.test("a remote model's URL password is masked in the errors clients and operators see", async (t) => {
  const { freePort, startTestHub, postJson } = await import('./helpers.js');
  const port = await freePort(); // nothing listens there
  const h = await startTestHub(t, `
models:
  far: { backend: openai, url: "http://user:pw-secret-4242@127.0.0.1:${port}" }
`);
  const chat = await postJson(`${h.base}/chat/completions`, { model: 'far', messages: [{ role: 'user', content: 'hi' }] });
  t.ok(chat.status >= 500, `the unreachable remote answers ${chat.status}`);
  t.match(chat.body.error.message, /remote model far at http:\/\/user:\*\*\*@127\.0\.0\.1:\d+/, 'the URL is named, its password masked');
  const start = await postJson(`${h.origin}/hub/api/models/far/start`, {});
  t.equal(start.status, 502, 'an operator start checks the remote server');
  const far = h.hub.controller.status().models.find((m) => m.name === 'far')!;
  t.equal(far.process, 'failed');
  t.match(far.last_error, /^remote model far at http:\/\/user:\*\*\*@127\.0\.0\.1:\d+ is not answering its health check/, 'status says why it is down');
  const unload = await postJson(`${h.origin}/hub/api/models/far/unload`, {});
  t.equal(unload.status, 409, 'the hub cannot unload a server it does not run');
  t.match(unload.body.error.message, /is remote \(http:\/\/user:\*\*\*@/);
  const everything = JSON.stringify([chat.body, start.body, unload.body, h.hub.controller.status()]);
  t.notOk(everything.includes('pw-secret-4242'), 'the password is in no answer and not in status');
});
