// Templates: one Eta instance over views/ (autoEscape on: `<%= %>` escapes, `<%~ %>` is only used
// for HTML the templates themselves produced), handed to koa-views as a custom engine, because
// koa-views' own eta adapter does not work with eta 4. Fragments (a model's card for the page's
// script) render through the same instance, so the page and its live updates are the same HTML.
import { join, relative } from 'node:path';
import { Eta } from 'eta';
import views from 'koa-views';
import type { Middleware } from 'koa';
import { PACKAGE_ROOT } from '../../paths.js';

export const VIEWS_DIR = join(PACKAGE_ROOT, 'views');

export const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true, autoTrim: [false, 'nl'] });

/** Renders `name` (relative to views/, no extension) with `data` as `it`. */
export const renderView = (name: string, data: object): string => eta.render(`./${name}`, data);

/** koa-views with our engine: ctx.render('index', data) answers text/html. */
export function viewsMiddleware(): Middleware {
  return views(VIEWS_DIR, {
    extension: 'eta',
    map: { eta: 'eta' },
    engineSource: {
      // koa-views passes an absolute path and ctx.state merged with the locals.
      eta: async (path: string, locals: object) => eta.render(`./${relative(VIEWS_DIR, path).replace(/\.eta$/, '')}`, locals),
    },
  });
}
