// Request bodies against a real `hub serve` process. A refused body's 413 must reach the client: with
// the hub in the client's own process the timing hides the failure, in its own process the openai SDK
// saw "Connection error" for every refused multipart upload. (The hub's memory under many large
// bodies at once is in body-serve-budget.test.ts.)
import t from 'tap';
import OpenAI, { APIError, toFile } from 'openai';
import { demo } from './helpers.js';
import { chat, serve } from './support/serve-limits.js';

t.test('the openai SDK receives the 413 for a multipart upload and a JSON body, every time', async (t) => {
  const small = await serve(t, '{ max_body: 1MiB }', `  fast: { backend: demo, cmd: "${demo()}" }\n`);
  t.equal((await chat(small.origin, 'fast')).status, 200, 'warm');
  const client = new OpenAI({ baseURL: `${small.origin}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  const file = Buffer.alloc(3 * 1024 * 1024, 1);
  for (let run = 1; run <= 10; run++) {
    const upload = await client.audio.transcriptions.create({ model: 'fast', file: await toFile(file, 'clip.wav') }).catch((e: unknown) => e);
    t.ok(upload instanceof APIError && upload.status === 413 && upload.code === 'body_too_large', `multipart run ${run}: ${String(upload)}`);
    const json = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'x'.repeat(3 * 1024 * 1024) }] }).catch((e: unknown) => e);
    t.ok(json instanceof APIError && json.status === 413 && json.code === 'body_too_large', `JSON run ${run}: ${String(json)}`);
    if (run === 1) t.match((json as APIError).message, /limits\.max_body \(1MiB\)/, 'the message names the limit');
  }

});

t.test('max_body 32MiB: fetch with a 40 MiB JSON body receives the 413, every time', async (t) => {
  const { origin } = await serve(t, '{ max_body: 32MiB, max_body_total: 256MiB, body_timeout: 1s }', `  fast: { backend: demo, cmd: "${demo()}" }\n`);
  t.equal((await chat(origin, 'fast')).status, 200, 'fast warm');
  const body = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'x'.repeat(40 * 1024 * 1024) }] });
  for (let run = 1; run <= 10; run++) {
    const res = await fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(
      async (r) => `${r.status} ${((await r.json()) as { error: { code: string } }).error.code}`,
      (e: Error) => `${e.message} ${String((e.cause as Error | undefined)?.message ?? '')}`,
    );
    t.equal(res, '413 body_too_large', `run ${run}`);
  }
});
