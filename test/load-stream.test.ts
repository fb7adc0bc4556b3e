// Progress inside the client's own request (progress: comments | reasoning, or x-hub-progress): a
// streaming request to a cold model is answered at once with an SSE stream that carries the load's
// progress, then the backend's stream. Through the real openai SDK (with comments the content is the
// same as a warm request's), the AI SDK, the Anthropic SDK and curl; a start that fails after the
// stream began ends it with the in-band error; without the option, failures keep their status codes.
import { spawn } from 'node:child_process';
import Anthropic from '@anthropic-ai/sdk';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText } from 'ai';
import OpenAI from 'openai';
import t from 'tap';
import { demo, startTestHub } from './helpers.js';

const MODELS = `
models:
  cold: { backend: demo, progress: comments, cmd: "${demo('--load-time 1500ms --max-tokens 6')}" }
  thinker: { backend: demo, progress: reasoning, cmd: "${demo('--load-time 1500ms --max-tokens 6')}" }
  plain: { backend: demo, cmd: "${demo('--load-time 500ms --max-tokens 6')}" }
  broken: { backend: demo, progress: comments, cmd: "${demo('--load-time 1500ms --fail-start 3')}" }
  streamer: { backend: demo, progress: comments, params: { set: { stream: true } }, cmd: "${demo('--load-time 500ms --max-tokens 6')}" }
`;

const ask = { messages: [{ role: 'user' as const, content: 'Hello!' }], max_tokens: 6 };

async function streamedText(client: OpenAI, model: string): Promise<{ text: string; reasoning: string }> {
  const stream = await client.chat.completions.create({ model, ...ask, stream: true });
  let text = '';
  let reasoning = '';
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
    text += delta?.content ?? '';
    reasoning += delta?.reasoning_content ?? '';
  }
  return { text, reasoning };
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-sN', ...args]);
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.once('error', reject);
    c.once('exit', () => resolve(out));
  });
}

t.test('progress in the stream', async (t) => {
  const h = await startTestHub(t, MODELS);

  t.test('comments: curl sees the load, the openai SDK gets the same content as a warm request', async (t) => {
    const out = await curl([`${h.base}/chat/completions`, '-H', 'content-type: application/json', '-d', JSON.stringify({ model: 'cold', ...ask, stream: true })]);
    t.match(out, /^: modelhub: waiting for cold to load\n\n/, 'the first line comes before the model is up');
    t.match(out, /^: modelhub: loading cold \d+% \(\d+\.\d s[^)]*\): Loading demo weights$/m, 'the backend\'s own stage and percentage');
    t.match(out, /^data: \[DONE\]$/m, 'then the backend\'s stream, to its end');
    await h.hub.controller.stop('cold');
    const cold = await streamedText(h.client, 'cold');
    const warm = await streamedText(h.client, 'cold');
    t.equal(cold.text, warm.text, 'a cold request with progress comments reads exactly as a warm one');
    t.match(cold.text, /^Hello from cold\./);
  });

  t.test('the header asks for it on a model without the setting; off turns it off', async (t) => {
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-progress': 'comments' }, body: JSON.stringify({ model: 'plain', ...ask, stream: true }) });
    t.equal(res.headers.get('x-hub-progress'), 'comments');
    t.match(await res.text(), /^: modelhub: /);
    await h.hub.controller.stop('cold');
    const off = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-progress': 'off' }, body: JSON.stringify({ model: 'cold', ...ask, stream: true }) });
    t.equal(off.headers.get('x-hub-progress'), null);
    t.notMatch(await off.text(), /modelhub:/, 'off: the stream is the backend\'s alone');
    await h.hub.controller.stop('cold');
    const json = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'cold', ...ask }) });
    t.equal(json.headers.get('content-type'), 'application/json', 'a request that does not stream is not turned into a stream');
    t.ok(json.headers.get('x-hub-cold-start-ms'), 'and keeps its cold-start header');
  });

  t.test('"stream" is read where the body scan found it, in large bodies too, and after params rewrote the body', async (t) => {
    // Over 64 KiB, the body is scanned in paced slices; the last top-level "stream" counts, as in JSON.parse.
    const padding = 'x'.repeat(256 * 1024);
    // A JSON text whose top-level "stream" comes twice, `last` last (an object literal cannot say that).
    const big = async (first: boolean, last: boolean) => {
      await h.hub.controller.stop('cold');
      const body = JSON.stringify({ stream: first, model: 'cold', metadata: { padding, stream: first }, ...ask }).replace(/}$/, `,"stream":${last}}`);
      const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return { type: res.headers.get('content-type'), text: await res.text() };
    };
    const streamed = await big(false, true);
    t.match(streamed.text, /^: modelhub: waiting for cold to load\n\n/, 'a large streaming request gets the progress');
    const plain = await big(true, false);
    t.equal(plain.type, 'application/json', 'a large request whose last top-level "stream" is false is not turned into a stream');
    await h.hub.controller.stop('streamer');
    const set = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'streamer', ...ask }) });
    t.match(await set.text(), /^: modelhub: waiting for streamer to load\n\n/, 'params that set stream: true make it a streaming request');
  });

  t.test('reasoning: chat UIs see the load as reasoning_content, then the answer', async (t) => {
    const { text, reasoning } = await streamedText(h.client, 'thinker');
    t.match(reasoning, /^modelhub: waiting for thinker to load\n/);
    t.match(reasoning, /modelhub: loading thinker \d+% .*: Loading demo weights\n/);
    t.match(text, /^Hello from thinker\./, 'the answer follows as content');
  });

  t.test('the AI SDK (Responses API) and the Anthropic SDK read through the comments', async (t) => {
    await h.hub.controller.stop('cold');
    const openai = createOpenAI({ baseURL: h.base, apiKey: 'unused' });
    const streamed = streamText({ model: openai('cold'), prompt: 'Stream please', maxOutputTokens: 4 });
    let text = '';
    for await (const part of streamed.textStream) text += part;
    t.match(text, /^Hello from cold/, 'AI SDK streamText');
    await h.hub.controller.stop('cold');
    const anthropic = new Anthropic({ baseURL: h.origin, apiKey: 'unused', maxRetries: 0 });
    const message = await anthropic.messages.stream({ model: 'cold', max_tokens: 5, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage();
    t.match((message.content[0] as { text: string }).text, /^Hello from cold/, 'Anthropic SDK messages.stream');
  });

  t.test('reasoning on Messages and Responses: the load as a thinking block / reasoning item, then the answer, one well-formed stream', async (t) => {
    await h.hub.controller.stop('thinker');
    const anthropic = new Anthropic({ baseURL: h.origin, apiKey: 'unused', maxRetries: 0 });
    const message = await anthropic.messages.stream({ model: 'thinker', max_tokens: 5, messages: [{ role: 'user', content: 'Hi' }] }).finalMessage();
    t.equal(message.content[0].type, 'thinking', 'Messages: a thinking block first');
    t.match((message.content[0] as { thinking: string }).thinking, /modelhub: loading thinker \d+% .*: Loading demo weights/, 'with the load in it');
    t.equal(message.content[1].type, 'text', 'then the answer as its own block');
    t.match((message.content[1] as { text: string }).text, /^Hello from thinker/);
    t.ok(message.usage.output_tokens > 0, 'the backend\'s usage reaches the client');

    await h.hub.controller.stop('thinker');
    const events = await h.client.responses.create({ model: 'thinker', input: 'Say hi', stream: true, max_output_tokens: 5 });
    let reasoning = '';
    let text = '';
    let final: OpenAI.Responses.Response | undefined;
    const created: string[] = [];
    for await (const e of events) {
      if (e.type === 'response.created') created.push(e.response.id);
      if (e.type === 'response.reasoning_summary_text.delta') reasoning += e.delta;
      if (e.type === 'response.output_text.delta') text += e.delta;
      if (e.type === 'response.completed' || e.type === 'response.incomplete') final = e.response;
    }
    t.equal(created.length, 1, 'Responses: one response.created');
    t.match(reasoning, /modelhub: loading thinker .*Loading demo weights/, 'the load as the reasoning summary');
    t.match(text, /^Hello from thinker/, 'then the answer');
    t.ok(final && ['completed', 'incomplete'].includes(final.status!), `the stream ends with the response (${final?.status})`);
  });

  t.test('a start that fails after the stream began ends it with the in-band error', async (t) => {
    const err = await streamedText(h.client, 'broken').then(() => undefined, (e: unknown) => e);
    t.type(err, OpenAI.APIError, 'the openai SDK raises the in-band error');
    t.match((err as Error).message, /model broken failed to start: .*exit code 3/);
    const out = await curl([`${h.origin}/v1/messages`, '-H', 'content-type: application/json', '-d', JSON.stringify({ model: 'broken', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'Hi' }] })]);
    t.match(out, /^event: error\ndata: \{"type":"error","error":\{"type":"[a-z_]+","message":"model broken failed to start/m, 'Messages: the error in its own event shape');
  });

  t.test('without progress, a failed start keeps its status code', async (t) => {
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hub-progress': 'off' }, body: JSON.stringify({ model: 'broken', ...ask, stream: true }) });
    t.equal(res.status, 503);
    t.match(((await res.json()) as { error: { code: string } }).error.code, 'model_start_failed');
  });
});
