// POST /v1/… is served outside Koa's middleware chain (app.ts): these check that it takes the same
// steps as the chain — a trusted proxy's X-Forwarded-Proto read before the Origin check, a request id
// on every answer, the hub's errors in the envelope with their headers, one log line and `request`
// event each — and that what it does not take (other case, other methods) still gets the chain's answer.
import t from 'tap';
import type { RequestSummary } from '../lib/scheduler/controller.js';
import { demo, startTestHub } from './helpers.js';

t.test('POST /v1 on the gateway\'s own path: the same steps as the middleware chain', async (t) => {
  const h = await startTestHub(t, `auth: { trusted_proxies: [127.0.0.1] }\nmodels:\n  m: { backend: demo, cmd: "${demo()}" }\n`);
  const summaries: RequestSummary[] = [];
  h.hub.controller.on('request', (r: RequestSummary) => summaries.push(r));
  const chat = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  const post = (path: string, headers: Record<string, string> = {}, body = chat, method = 'POST') =>
    fetch(`${h.origin}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body });

  const ok = await post('/v1/chat/completions?trace=1', { 'x-request-id': 'client-chosen' });
  t.equal(ok.status, 200, 'a query string does not change the route');
  t.equal(ok.headers.get('x-request-id'), 'client-chosen', "the client's request id is kept");
  t.equal(ok.headers.get('x-hub-model'), 'm');
  await ok.text();
  t.match(summaries.at(-1), { id: 'client-chosen', method: 'POST', path: '/v1/chat/completions', model: 'm', status: 200 }, 'one request event, after the answer');

  const own = `https://${new URL(h.origin).host}`;
  const viaProxy = await post('/v1/chat/completions', { origin: own, 'x-forwarded-proto': 'https' });
  t.equal(viaProxy.status, 200, "from the trusted proxy over https, the page's https:// Origin is the hub's own");
  await viaProxy.text();
  const foreign = await post('/v1/chat/completions', { origin: own });
  t.equal(foreign.status, 403, 'without X-Forwarded-Proto, https:// is another site');
  t.match(await foreign.json(), { error: { code: 'forbidden', message: /Origin/ } });

  const unknown = await post('/v1/chat/completions', {}, chat.replace('"m"', '"nope"'));
  t.equal(unknown.status, 404);
  t.equal(unknown.headers.get('x-should-retry'), 'false', "the error's own headers go with it");
  t.ok(unknown.headers.get('x-request-id'), 'an error has a request id too');
  t.equal(unknown.headers.get('content-type'), 'application/json; charset=utf-8');
  const text = await unknown.text();
  t.equal(Number(unknown.headers.get('content-length')), Buffer.byteLength(text), 'and its length');
  t.match(JSON.parse(text), { error: { type: 'invalid_request_error', code: 'model_not_found', param: 'model' } });
  const metrics = await (await fetch(`${h.origin}/metrics`)).text();
  t.match(metrics, /modelhub_unrouted_requests_total\{route="\/v1\/chat\/completions",status="404"\} 1/, 'a request no model took is counted as such');

  const messages = await post('/v1/messages', {}, '{not json');
  t.equal(messages.status, 400);
  t.match(await messages.json(), { type: 'error', error: { type: 'invalid_request_error' } }, "/v1/messages errors in Anthropic's envelope");

  const upper = await post('/V1/CHAT/COMPLETIONS');
  t.equal(upper.status, 404, 'another case takes the middleware chain, where no route has it');
  t.match(await upper.json(), { error: { code: 'not_found' } });
  // A listener of the request event that throws: the answer is out already, and the hub goes on.
  const faulty = () => { throw new Error('a listener with a bug'); };
  h.hub.controller.on('request', faulty);
  const answered = await post('/v1/chat/completions');
  t.equal(answered.status, 200, 'the answer is not lost to a listener that throws');
  await answered.text();
  h.hub.controller.off('request', faulty);
  t.equal((await post('/v1/chat/completions')).status, 200, 'and the next request is served');

  const get = await fetch(`${h.origin}/v1/chat/completions`);
  t.equal(get.status, 405, 'other methods take the chain too');
  t.equal(get.headers.get('allow'), 'POST');
});
