// Model names as users write them (`llama3.2:3b`, `Qwen2.5-7B-Instruct`, `org/model`): which names
// the config takes, how a name becomes a file name (reversibly, never outside log.dir) and a URL
// segment, how case and aliases are matched, and llama-server's `--alias`.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { configProblems } from './support/config-problems.js';
import { withAlias } from '../lib/backends/llama-cpp.js';
import { parseConfig } from '../lib/config/load.js';
import { fileNameOf, MAX_NAME_LENGTH, modelLogFile, nameOfFile, nameProblem } from '../lib/config/names.js';
import { demo, getJson, postJson, startTestHub, waitFor } from './helpers.js';

const problems = configProblems;

t.test('which names are names', async (t) => {
  for (const good of ['llama3.2:3b', 'Qwen2.5-7B-Instruct', 'org/model', 'hf.co/org/Model-GGUF:Q4_K_M', 'modèle-ü', '模型', 'a'.repeat(MAX_NAME_LENGTH), '...', 'a%20b']) {
    t.equal(nameProblem('model name', good), undefined, `${good} is a name`);
  }
  t.equal(nameProblem('model name', 'a b'), 'model name "a b" contains whitespace (U+0020); use printable characters without spaces');
  t.equal(nameProblem('alias', 'tab\there'), 'alias "tab\\there" contains whitespace (U+0009); use printable characters without spaces');
  t.equal(nameProblem('model name', 'zero\u200bwidth'), 'model name "zero\u200bwidth" contains an invisible or control character (U+200B); use printable characters without spaces');
  t.equal(nameProblem('model name', 'bell\x07'), 'model name "bell\\u0007" contains an invisible or control character (U+0007); use printable characters without spaces');
  t.equal(nameProblem('model name', 'a'.repeat(MAX_NAME_LENGTH + 1)), `model name is ${MAX_NAME_LENGTH + 1} characters long; the limit is ${MAX_NAME_LENGTH}`);
  t.equal(nameProblem('model name', '..'), 'model name ".." cannot be used in URLs; choose a name with other characters');
  t.equal(nameProblem('alias', ''), 'alias must not be empty');
});

t.test('a name as a file name: reversible, distinct, never outside the folder', async (t) => {
  const names = ['llama3.2:3b', 'Qwen2.5-7B-Instruct', 'org/model', '../x', '../../etc/passwd', 'a/b', '.', '..', '.hidden', 'hub', 'HUB', 'hub.log', '%41', 'A', 'a\\b', '模型', 'x%2Fy', 'x/y'];
  const files = names.map(fileNameOf);
  t.same(files.slice(0, 4), ['llama3.2%3A3b', 'Qwen2.5-7B-Instruct', 'org%2Fmodel', '%2E.%2Fx'], 'readable where the name is');
  t.equal(new Set(files).size, names.length, 'no two names share a file');
  t.equal(new Set(files.map((f) => f.toLowerCase())).size, names.length, 'not even on a case-insensitive file system (apart from names that differ by case, which the config refuses)');
  names.forEach((name, i) => {
    const file = files[i];
    t.equal(nameOfFile(file), name, `${file} gives ${name} back`);
    t.match(file, /^[A-Za-z0-9_%-][A-Za-z0-9._%-]*$/, `${file}: no slash, no leading dot`);
    t.equal(dirname(modelLogFile('/var/log/modelhub', name)), '/var/log/modelhub', `${name}'s log stays in log.dir`);
  });
  t.not(`${fileNameOf('hub')}.log`, 'hub.log', 'a model named hub does not write the hub\'s own log');
  t.not(`${fileNameOf('Hub')}.log`.toLowerCase(), 'hub.log', 'nor does Hub');
});

t.test('the config takes such names; names and aliases that differ only by case are refused', async (t) => {
  const c = parseConfig('models:\n  llama3.2:3b: { url: "http://a" }\n  org/model: { url: "http://b", aliases: ["gpt-4o", "Org/Model:latest"] }\n  Qwen2.5-7B-Instruct: { url: "http://c" }\n', 'hub.yaml');
  t.same(Object.keys(c.models), ['llama3.2:3b', 'org/model', 'Qwen2.5-7B-Instruct'], 'case preserved');
  t.same(problems('models:\n  Llama: { url: "http://a" }\n  llama: { url: "http://b" }\n'), [
    'hub.yaml:3: models.llama: model name "llama" differs from "Llama" (model Llama) only by case; names and aliases must differ by more than case',
  ]);
  t.same(problems('models:\n  a: { url: "http://a", aliases: [GPT-4o] }\n  b: { url: "http://b", aliases: [gpt-4o, "x y", A] }\n'), [
    'hub.yaml:3: models.b.aliases[0]: "gpt-4o" differs from "GPT-4o" (an alias of model a) only by case; names and aliases must differ by more than case',
    'hub.yaml:3: models.b.aliases[1]: alias "x y" contains whitespace (U+0020); use printable characters without spaces',
    'hub.yaml:3: models.b.aliases[2]: "A" differs from "a" (the name of model a) only by case; names and aliases must differ by more than case',
  ]);
  t.same(problems('models:\n  a: { url: "http://a", aliases: [a2, a2] }\n'), [], 'a model may repeat its own alias');
});

t.test('llama-server is given --alias <name> unless its command sets one', async (t) => {
  t.same(withAlias(['llama-server', '-m', 'x.gguf'], 'llama3.2:3b'), ['llama-server', '-m', 'x.gguf', '--alias', 'llama3.2:3b']);
  t.same(withAlias(['/opt/llama.cpp/build/bin/llama-server', '-m', 'x.gguf'], 'q'), ['/opt/llama.cpp/build/bin/llama-server', '-m', 'x.gguf', '--alias', 'q'], 'by its path too');
  for (const own of [['-a', 'mine'], ['--alias', 'mine'], ['--alias=mine']]) t.same(withAlias(['llama-server', ...own], 'q'), ['llama-server', ...own], `${own[0]} kept`);
  t.same(withAlias(['sh', '-c', 'exec llama-server "$@"', 'sh'], 'q'), ['sh', '-c', 'exec llama-server "$@"', 'sh'], 'a wrapper is left alone');
  const c = parseConfig('models:\n  tiny: { backend: llama-cpp, cmd: "llama-server -m /m.gguf --port ${PORT}" }\n  other: { backend: openai, cmd: "llama-server -m /m.gguf --port ${PORT}" }\n', 'hub.yaml');
  t.same(c.models.tiny.argv!.slice(-2), ['--alias', 'tiny'], 'backend: llama-cpp');
  t.notOk(c.models.other.argv!.includes('--alias'), 'only for backend: llama-cpp');
});

t.test('a live hub: such names through the API, the URLs and the log folder, and the case rule', async (t) => {
  const h = await startTestHub(t, `models:
  org/model: { backend: demo, cmd: "${demo()}", aliases: [Team/Latest] }
  llama3.2:3b: { backend: demo, cmd: "${demo()}" }
  Qwen2.5-7B-Instruct: { backend: demo, cmd: "${demo()}" }
  ../escape: { backend: demo, cmd: "${demo()}" }
`);
  const chat = (model: string) => h.client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
  t.equal((await chat('org/model')).model, 'org/model', 'a name with a slash');
  t.equal((await chat('llama3.2:3b')).model, 'llama3.2:3b', 'a name with a colon');
  t.equal(h.hub.controller.get('Qwen2.5-7B-Instruct').process, 'stopped');
  await chat('qwen2.5-7b-instruct');
  t.equal(h.hub.controller.get('Qwen2.5-7B-Instruct').process, 'running', 'another case finds the one model of that name');
  await chat('team/latest');
  t.equal((await postJson(`${h.base}/chat/completions`, { model: 'qwen2.5', messages: [] })).body.error.code, 'model_not_found', 'no prefix or fuzzy match');

  const entry = await getJson(`${h.base}/models/${encodeURIComponent('org/model')}`);
  t.match(entry.body, { id: 'org/model', hub: { model: 'org/model' } }, 'GET /v1/models/{id} with the slash encoded');
  const upstream = await getJson(`${h.origin}/upstream/${encodeURIComponent('llama3.2:3b')}/v1/models`);
  t.equal(upstream.status, 200, '/upstream/{model}/ with the name encoded');
  const stop = await postJson(`${h.origin}/hub/api/models/${encodeURIComponent('org/model')}/stop`, {});
  t.match(stop.body, { model: 'org/model', process: 'stopped' }, 'the control API');
  const start = await postJson(`${h.origin}/hub/api/models/${encodeURIComponent('ORG/MODEL')}/start`, {});
  t.match(start.body, { model: 'org/model', process: 'running' }, 'the control API takes another case and answers with the name');
  t.equal((await postJson(`${h.origin}/hub/api/models/${encodeURIComponent('../escape')}/start`, {})).status, 200);

  const board = await (await fetch(`${h.origin}/hub`)).text();
  t.match(board, 'href="/hub/models/org%2Fmodel"', 'the dashboard links encode the name');
  const page = await fetch(`${h.origin}/hub/models/org%2Fmodel`);
  t.equal(page.status, 200, 'and the link works');
  t.match(await page.text(), 'modelhub starting org/model', 'the model page shows its log');
  const logs = await fetch(`${h.origin}/hub/api/models/${encodeURIComponent('../escape')}/logs`);
  t.match(await logs.text(), 'modelhub starting ../escape', 'the log API');

  const logDir = join(h.dir, 'logs');
  await waitFor('the log files', () => existsSync(modelLogFile(logDir, '../escape')) && existsSync(modelLogFile(logDir, 'org/model')));
  t.same(readdirSync(logDir).sort(), ['%2E.%2Fescape.log', 'Qwen2.5-7B-Instruct.log', 'llama3.2%3A3b.log', 'org%2Fmodel.log'], 'one file per model in log.dir, named by fileNameOf');
  t.notOk(existsSync(join(h.dir, 'escape.log')), 'nothing outside log.dir');
});
