// Dashboard logins: the admin key is asked for once, checked with checkKey, and exchanged for a
// random session id kept only in this process's memory. The cookie carries that id, never the key.
// A session ends at logout, after SESSION_TTL_MS without use, when the hub restarts, or when a reload
// changes auth.admin_keys (the key it was opened with may be gone).
import { createHash, randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type { AuthConfig } from '../auth.js';

export const SESSION_COOKIE = 'modelhub_session';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_SESSIONS = 1000;

interface Session {
  expires: number;
  keys: string;
}

/** Identifies a set of admin keys (a digest: the keys themselves are not kept here), once per config. */
const tags = new WeakMap<AuthConfig, string>();
function keyTag(auth: AuthConfig): string {
  let tag = tags.get(auth);
  if (tag === undefined) tags.set(auth, (tag = createHash('sha256').update(JSON.stringify(auth.adminKeys)).digest('base64url')));
  return tag;
}

export class Sessions {
  private readonly sessions = new Map<string, Session>();

  open(auth: AuthConfig, now = Date.now()): string {
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, { expires: now + SESSION_TTL_MS, keys: keyTag(auth) });
    return id;
  }

  /** Whether `id` names a live session under the current keys; a use extends it. */
  valid(id: string | undefined, auth: AuthConfig, now = Date.now()): boolean {
    if (!id) return false;
    const s = this.sessions.get(id);
    if (!s) return false;
    if (s.expires <= now || s.keys !== keyTag(auth)) {
      this.sessions.delete(id);
      return false;
    }
    s.expires = now + SESSION_TTL_MS;
    return true;
  }

  close(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }
}

export function setSessionCookie(ctx: Context, id: string | null): void {
  ctx.cookies.set(SESSION_COOKIE, id, {
    httpOnly: true,
    sameSite: 'strict',
    path: '/hub',
    secure: ctx.protocol === 'https',
    overwrite: true,
    ...(id === null ? { maxAge: 0 } : {}),
  });
}
