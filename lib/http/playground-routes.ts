// The dashboard's playground: POST /hub/api/models/{name}/chat sends a chat completion to that model
// through the gateway's own forwarding (createForwarder: the same admission, accounting and request
// log as /v1), so the model page can try a model without the dashboard session ever opening /v1.
// Admin realm like the rest of /hub (a session or an admin key); browser requests from other sites are
// refused before this by the Origin and Fetch Metadata checks (browser.ts), as for every dashboard POST.
import Router from '@koa/router';
import { HubError } from '../errors.js';
import type { HubState } from './app.js';
import { realmIsOpen, type AuthConfig, type Scope } from './auth.js';
import type { Routed } from './openai-routes.js';

/** The path the playground's request stands for: what the backend is sent and the log's API family. */
const CHAT_PATH = '/v1/chat/completions';

/** What an open dashboard may try: the models without keys of their own (lookup refuses the others). */
const UNLOCKED_ONLY: Scope = { models: new Set(), orUnlocked: true };

export function playgroundRoutes(routed: Routed, auth: () => AuthConfig): Router<HubState> {
  const router = new Router<HubState>({ prefix: '/hub/api/models' });
  router.post('/:name/chat', async (ctx) => {
    // Like the /v1 routes: a body any page could send without a preflight is not taken as JSON.
    if (/^\s*text\/plain\s*(;|$)/i.test(ctx.get('content-type'))) {
      throw new HubError('unsupported_media_type', `POST ${ctx.path} was sent as text/plain; send the JSON body with "Content-Type: application/json"`);
    }
    // A dashboard without admin keys is open to whoever reaches it: it must not stand in for the keys
    // that /v1 asks for (auth.api_keys, or a model's own api_keys).
    const a = auth();
    if (realmIsOpen(a, 'admin')) {
      if (!realmIsOpen(a, 'api')) {
        throw new HubError('invalid_api_key', `the playground is refused on this hub: its API needs keys (auth.api_keys) but its dashboard has none (auth.admin_keys is empty), so an open dashboard would let anyone use the models; add a key to auth.admin_keys in hub.yaml and log in, or send the request to /v1 with an API key`);
      }
      ctx.state.scope = UNLOCKED_ONLY;
    }
    await routed(ctx, { model: ctx.params.name, apiPath: CHAT_PATH });
  });
  router.all('/:name/chat', (ctx) => {
    if (ctx.method === 'POST') return;
    throw new HubError('method_not_allowed', `${ctx.method} ${ctx.path} is not served: POST a chat completion body ({"messages": [...], "stream": true}) to try the model`, { headers: { allow: 'POST' } });
  });
  return router;
}
