// The control API (SPEC §3.3) — the part the core needs: status and per-model start/stop.
// Each handler is a thin call into the controller.
import Router from '@koa/router';
import { VERSION } from '../paths.js';
import type { Controller } from '../scheduler/controller.js';
import type { HubState } from './app.js';

export function controlRoutes(controller: Controller): Router<HubState> {
  const router = new Router<HubState>({ prefix: '/hub/api' });

  router.get('/status', (ctx) => {
    const { config } = controller;
    ctx.body = {
      hub: {
        version: VERSION,
        uptime_s: Math.round((Date.now() - controller.startedAt) / 1000),
        config: config.path,
        url: `http://${config.listen.host}:${config.listen.port}/v1`,
        shutting_down: controller.shuttingDown,
      },
      ...controller.status(),
    };
  });

  router.post('/models/:name/:action', async (ctx) => {
    const { name, action } = ctx.params;
    const wait = ctx.query.wait !== 'false';
    controller.get(name); // 404 for an unknown model, before anything starts
    let run: Promise<void>;
    if (action === 'start') run = controller.start(name);
    else if (action === 'stop') run = controller.stop(name);
    else return; // 404 envelope
    if (!wait) {
      run.catch(() => {}); // the outcome shows up in status and events
      ctx.status = 202;
      ctx.body = { model: name, action, accepted: true };
      return;
    }
    await run;
    const m = controller.get(name);
    ctx.body = { model: name, action, process: m.process, memory: m.memory };
  });

  return router;
}
