// API and admin keys: which paths need which key, reading the key a request presents, and comparing
// it in constant time. The middleware reads the config on every request, so a reload that changes
// the keys applies at once. A dashboard login (key in a form, then a session cookie) reuses checkKey.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Context, Middleware } from 'koa';
import type { HubConfig } from '../config/types.js';
import { HubError } from '../errors.js';

export type AuthConfig = HubConfig['auth'];
/** open: no key ever (/health); api: an API or admin key; admin: an admin key. */
export type Realm = 'open' | 'api' | 'admin';

/**
 * Deny by default: any path that is not /health, /hub… or /metrics… needs an API key, so a route
 * added later is guarded without anyone remembering to. Lower-cased because the router matches
 * string routes case-insensitively (`/HUB/api/shutdown` reaches the control API).
 */
export function realmOf(path: string): Realm {
  const p = path.toLowerCase();
  if (p === '/health') return 'open';
  if (under(p, '/hub') || under(p, '/metrics')) return 'admin';
  return 'api';
}

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

/** The keys a request presents: `Authorization: Bearer <key>` (any case of "Bearer") and `x-api-key: <key>`. */
export function presentedKeys(headers: IncomingHttpHeaders): string[] {
  const keys: string[] = [];
  const bearer = /^bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  if (bearer) keys.push(bearer[1]);
  const header = headers['x-api-key'];
  if (typeof header === 'string' && header.trim()) keys.push(header.trim());
  return keys;
}

/**
 * Digests of the keys that open each realm, made once per config object. An admin key also opens
 * the API realm: whoever may stop the hub may use its models. The API realm is open when there are no
 * api_keys, whatever admin_keys says (empty or absent = open). Keys listed under models and groups
 * (scoped) open the API realm too, but only for their models (Scope).
 */
interface Digests {
  api: Buffer[];
  admin: Buffer[];
  /** Every hub-wide key (api and admin), with its name, for telling who asks. */
  hubWide: Array<{ digest: Buffer; name: string }>;
  adminNamed: Array<{ digest: Buffer; name: string }>;
  scoped: Array<{ digest: Buffer; name: string; scope: Scope }>;
}
const digests = new WeakMap<AuthConfig, Digests>();
const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

function digestsOf(auth: AuthConfig): Digests {
  let d = digests.get(auth);
  if (!d) {
    const api = auth.apiKeys.length ? [...new Set([...auth.apiKeys, ...auth.adminKeys])] : [];
    const named = new Map<string, string>();
    auth.apiKeys.forEach((k, i) => named.set(k, auth.apiKeyNames[i]));
    auth.adminKeys.forEach((k, i) => { if (!named.has(k)) named.set(k, auth.adminKeyNames[i]); });
    const apiOpen = auth.apiKeys.length === 0;
    d = {
      api: api.map(digest),
      admin: auth.adminKeys.map(digest),
      hubWide: [...named].map(([key, name]) => ({ digest: digest(key), name })),
      adminNamed: auth.adminKeys.map((key, i) => ({ digest: digest(key), name: auth.adminKeyNames[i] })),
      scoped: auth.scopedKeys.map((k) => ({ digest: digest(k.key), name: k.name, scope: { models: new Set(k.models), orUnlocked: apiOpen } })),
    };
    digests.set(auth, d);
  }
  return d;
}

const keysOf = (auth: AuthConfig, realm: 'api' | 'admin'): Buffer[] => digestsOf(auth)[realm];

/**
 * What a key scoped to models may use: its models, and on a hub whose API is open (no auth.api_keys)
 * also every model without keys of its own. Absent (undefined) on a request: every model.
 */
export interface Scope {
  models: ReadonlySet<string>;
  orUnlocked: boolean;
}

/** A request without a key to a hub whose API is open but has models with keys: the models without. */
const UNLOCKED_ONLY: Scope = { models: new Set(), orUnlocked: true };

/** Whether a request with `scope` may use model `m` (costs one comparison when neither has keys). */
export const mayUse = (scope: Scope | undefined, m: { name: string; apiKeys?: unknown[] }): boolean =>
  scope === undefined || scope.models.has(m.name) || (scope.orUnlocked && m.apiKeys === undefined);

/** Whether `realm` takes requests without a key under this config. */
export const realmIsOpen = (auth: AuthConfig, realm: Realm): boolean => realm === 'open' || keysOf(auth, realm).length === 0;

/**
 * The index in `list` of the entry whose digest is `presented`'s, or -1. Both sides are SHA-256
 * digests, so timingSafeEqual compares equal lengths and the time says nothing about the key's length
 * or content; every entry is compared, with no early exit.
 */
function matchOf(list: ReadonlyArray<{ digest: Buffer }>, presented: Buffer): number {
  let found = -1;
  for (let i = 0; i < list.length; i++) if (timingSafeEqual(presented, list[i].digest)) found = i;
  return found;
}

/** Whether `key` opens `realm` (always true for an open realm, key or not); hub-wide keys only. */
export function checkKey(auth: AuthConfig, realm: Realm, key: string | undefined): boolean {
  if (realm === 'open') return true;
  const allowed = keysOf(auth, realm);
  if (allowed.length === 0) return true;
  if (key === undefined) return false;
  const presented = digest(key);
  let ok = false;
  for (const d of allowed) ok = timingSafeEqual(presented, d) || ok;
  return ok;
}

/** Who a request's key is: its name in hub.yaml and, for a key listed under models, its scope; undefined when no key sent matches. */
function identify(ctx: Context, auth: AuthConfig, realm: 'api' | 'admin'): { name: string; scope?: Scope } | undefined {
  const d = digestsOf(auth);
  for (const key of presentedKeys(ctx.req.headers)) {
    const presented = digest(key);
    const hub = realm === 'admin' ? d.adminNamed : d.hubWide;
    const i = matchOf(hub, presented);
    if (i >= 0) return { name: hub[i].name };
    if (realm === 'admin') continue;
    const j = matchOf(d.scoped, presented);
    if (j >= 0) return { name: d.scoped[j].name, scope: d.scoped[j].scope };
  }
  return undefined;
}

/**
 * 401 invalid_api_key unless the request presents a key for its path's realm. Never logs or echoes a
 * key. `session` tells whether a request carries a live dashboard session, opened by logging in with an
 * admin key: it opens the dashboard's own paths (/hub, /hub/api) only, not the rest of the admin realm
 * (/metrics), whatever a client sends the cookie with.
 */
export function requireKey(auth: () => AuthConfig, session?: (ctx: Context) => boolean): Middleware {
  const check = keyCheck(auth, session);
  return async (ctx, next) => {
    const keyOk = check(ctx);
    ctx.state.stillAllowed = stillAllowed(ctx, auth, session, keyOk);
    await next();
  };
}

/**
 * requireKey's test alone (throws the refusal), for the model-traffic path that runs every check in
 * one pass. It also notes who asks (ctx.state.keyName: the key's place in hub.yaml, or "session") and,
 * for a key scoped to models, what it may use (ctx.state.scope; the routes check it). Returns whether a
 * key was checked and let in (undefined when none was asked for: an open realm, or a session).
 */
export function keyCheck(auth: () => AuthConfig, session?: (ctx: Context) => boolean): (ctx: Context) => boolean | undefined {
  return (ctx) => {
    const realm = realmOf(ctx.path);
    const a = auth();
    if (!realmIsOpen(a, realm)) {
      if (bySession(ctx, realm, session)) {
        ctx.state.keyName = 'session';
        return undefined;
      }
      const who = identify(ctx, a, realm as 'api' | 'admin');
      if (!who) throw refused(realm, ctx.path, presentedKeys(ctx.req.headers).length > 0);
      ctx.state.keyName = who.name;
      if (who.scope) ctx.state.scope = who.scope;
      return true;
    }
    if (realm === 'api' && a.scopedKeys.length > 0) {
      // An open API with models that have keys: a key sent opens its models, none opens the others.
      const who = identify(ctx, a, 'api');
      ctx.state.keyName = who?.name;
      ctx.state.scope = who ? who.scope : UNLOCKED_ONLY;
    }
    return undefined;
  };
}

const bySession = (ctx: Context, realm: Realm, session?: (ctx: Context) => boolean) => realm === 'admin' && under(ctx.path.toLowerCase(), '/hub') && session?.(ctx) === true;

/**
 * A long answer (an event stream, a log follow) asks again before each write: a logout or a reload that
 * removes the key ends it, instead of it going on for as long as the client stays. The key's answer only
 * changes with the keys (a reload makes a new auth object): it is kept until then, so a busy stream does
 * not digest the key again for every event. Only the control API's long answers ask, so model traffic
 * (the lean path) never makes this closure: one kept on every request's state made V8 copy whole
 * requests into the old generation (measured with --trace-gc-nvp: ~7.5 KiB promoted per request
 * instead of ~0.6 KiB).
 */
function stillAllowed(ctx: Context, auth: () => AuthConfig, session: ((ctx: Context) => boolean) | undefined, keyOk: boolean | undefined): () => boolean {
  const realm = realmOf(ctx.path);
  let kept = { auth: auth(), ok: keyOk };
  return () => {
    const now = auth();
    if (realmIsOpen(now, realm) || bySession(ctx, realm, session)) return true;
    if (kept.auth !== now || kept.ok === undefined) kept = { auth: now, ok: realm !== 'open' && identify(ctx, now, realm) !== undefined };
    return kept.ok!;
  };
}

const HOW = 'as "Authorization: Bearer <key>" or "x-api-key: <key>"';

function refused(realm: Realm, path: string, presented: boolean): HubError {
  const message =
    realm === 'admin'
      ? presented
        ? `${path} needs an admin key and the key sent is not one; send a key from auth.admin_keys in hub.yaml ${HOW} (API keys do not open /hub or /metrics)`
        : `${path} needs an admin key; send a key from auth.admin_keys in hub.yaml (auth.api_keys when it has none) ${HOW}`
      : presented
        ? `the API key sent is not valid; send a key from auth.api_keys (or auth.admin_keys) in hub.yaml ${HOW}`
        : `this hub needs an API key; send a key from auth.api_keys in hub.yaml ${HOW} (the OpenAI SDKs send their apiKey as a Bearer token, the Anthropic SDK as x-api-key)`;
  return new HubError('invalid_api_key', message, { headers: { 'www-authenticate': 'Bearer' } });
}
