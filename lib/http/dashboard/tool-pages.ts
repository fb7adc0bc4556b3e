// Pages for the whole hub: Stop all / Unload all (a confirm page that names the models, then a form
// that works without JavaScript) and the hub's own log, as `hub logs --hub` prints it.
import type Router from '@koa/router';
import type { Context } from 'koa';
import { hubLogFile } from '../../config/names.js';
import { prettyLines } from '../../log.js';
import { tailLines } from '../../runtime/log-tail.js';
import type { Controller } from '../../scheduler/controller.js';
import { configSecrets, inheritedSecrets, maskCache } from '../../secrets.js';
import type { HubState } from '../app.js';
import { bulk, bulkTargets, isBulk, type BulkAction } from '../bulk.js';
import type { HubActions } from '../control-routes.js';
import type { Flash, Flashes } from './flash.js';

const BULK_LABEL: Record<BulkAction, string> = { stop: 'Stop all', unload: 'Unload all' };
const DONE: Record<BulkAction, string> = { stop: 'stopped', unload: 'unloaded' };
const HUB_LOG_LINES = 300;
const maskHubLog = maskCache();

export function toolPages(router: Router<HubState>, controller: Controller, actions: HubActions, page: (ctx: Context, extra: object) => object, flashes: Flashes): void {
  // Stop all / Unload all: a confirm page that names the models, then its form (no script needed).
  router.get('/bulk/:action', async (ctx) => {
    const { action } = ctx.params;
    if (!isBulk(action)) return; // 404 page
    await ctx.render('confirm', page(ctx, { title: `${BULK_LABEL[action]} · modelhub`, action, label: BULK_LABEL[action], models: bulkTargets(controller, action) }));
  });

  router.post('/bulk/:action', async (ctx) => {
    const { action } = ctx.params;
    if (!isBulk(action)) return; // 404 page
    const result = await bulk(controller, action);
    const done = result.models.map((m) => m.model);
    const flash: Flash = result.failed.length
      ? { kind: 'error', text: `${BULK_LABEL[action]}: ${result.failed.length} of ${done.length + result.failed.length} model(s) failed.`, details: [...result.failed.map((f) => `${f.model}: ${f.error}`), ...(done.length ? [`${DONE[action]}: ${done.join(', ')}`] : [])] }
      : { kind: 'ok', text: done.length ? `${BULK_LABEL[action]}: ${done.length} model(s) ${DONE[action]}.` : `${BULK_LABEL[action]}: no model needed it.`, details: done.length ? [done.join(', ')] : [] };
    ctx.status = 303;
    ctx.redirect(`/hub?flash=${flashes.put(flash)}`);
  });

  // The hub's own log, as `hub logs --hub` prints it (the same file and masking as GET /hub/api/logs).
  router.get('/log', async (ctx) => {
    const config = controller.config;
    const mask = maskHubLog(config, () => [...configSecrets(config), ...inheritedSecrets()]);
    const { text } = await tailLines(actions.hubLog ?? hubLogFile(config.log.dir), HUB_LOG_LINES);
    await ctx.render('hub-log', page(ctx, { title: 'Hub log · modelhub', lines: prettyLines(mask(text)), followUrl: '/hub/api/logs?tail=0&follow=1&format=text' }));
  });
}
