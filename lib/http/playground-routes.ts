// The dashboard's playground: POST /hub/api/models/{name}/chat sends a chat completion to that model
// through the gateway's own forwarding (createForwarder: the same admission, accounting and request
// log as /v1), so the model page can try a model without the dashboard session ever opening /v1.
// Admin realm like the rest of /hub (a session or an admin key); browser requests from other sites are
// refused before this by the Origin and Fetch Metadata checks (browser.ts), as for every dashboard POST.
import Router from '@koa/router';
import { HubError } from '../errors.js';
import type { HubState } from './app.js';
import type { Routed } from './openai-routes.js';

/** The path the playground's request stands for: what the backend is sent and the log's API family. */
const CHAT_PATH = '/v1/chat/completions';

export function playgroundRoutes(routed: Routed): Router<HubState> {
  const router = new Router<HubState>({ prefix: '/hub/api/models' });
  router.post('/:name/chat', async (ctx) => {
    // Like the /v1 routes: a body any page could send without a preflight is not taken as JSON.
    if (/^\s*text\/plain\s*(;|$)/i.test(ctx.get('content-type'))) {
      throw new HubError('unsupported_media_type', `POST ${ctx.path} was sent as text/plain; send the JSON body with "Content-Type: application/json"`);
    }
    await routed(ctx, { model: ctx.params.name, apiPath: CHAT_PATH });
  });
  router.all('/:name/chat', (ctx) => {
    if (ctx.method === 'POST') return;
    throw new HubError('method_not_allowed', `${ctx.method} ${ctx.path} is not served: POST a chat completion body ({"messages": [...], "stream": true}) to try the model`, { headers: { allow: 'POST' } });
  });
  return router;
}
