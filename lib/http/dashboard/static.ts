// The dashboard's stylesheet and script, from views/static/. A fixed list, read once: nothing else
// on disk can be reached through /hub/static/. They hold only code, so they are served without a key
// (the login page needs its stylesheet before anyone has logged in).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from 'koa';
import { HubError } from '../../errors.js';
import { VIEWS_DIR } from './render.js';

const FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'board.js': 'text/javascript; charset=utf-8',
  'requests.js': 'text/javascript; charset=utf-8',
  'playground.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

const cache = new Map<string, Buffer>();

export function serveStatic(ctx: Context): void {
  const name = ctx.path.slice('/hub/static/'.length);
  const type = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
  if (!type || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) {
    throw new HubError('not_found', `there is no dashboard file ${ctx.path}; the dashboard serves ${Object.keys(FILES).map((f) => `/hub/static/${f}`).join(', ')}`);
  }
  let body = cache.get(name);
  if (!body) cache.set(name, (body = readFileSync(join(VIEWS_DIR, 'static', name))));
  ctx.type = type;
  ctx.set('cache-control', 'no-cache'); // small files; revalidated so an upgrade shows at once
  ctx.body = body;
}
