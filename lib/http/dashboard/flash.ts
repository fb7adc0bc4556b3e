// Flash messages for the forms (JavaScript off): a POST does its work, keeps what happened here under
// a random id and answers 303 to the page with ?flash=<id>; the page shows it once. Ids are random,
// so a link cannot make the page show a message the hub did not write. Bounded and short-lived.
import { randomBytes } from 'node:crypto';

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
  details: string[];
}

const TTL_MS = 5 * 60 * 1000;
const MAX = 200;

export class Flashes {
  private readonly items = new Map<string, Flash & { expires: number }>();

  put(flash: Flash, now = Date.now()): string {
    for (const [id, f] of this.items) if (f.expires <= now || this.items.size >= MAX) this.items.delete(id);
    const id = randomBytes(12).toString('base64url');
    this.items.set(id, { ...flash, expires: now + TTL_MS });
    return id;
  }

  /** The message, once: a reload of the page does not show it again. */
  take(id: unknown, now = Date.now()): Flash | undefined {
    if (typeof id !== 'string') return undefined;
    const f = this.items.get(id);
    this.items.delete(id);
    return f && f.expires > now ? { kind: f.kind, text: f.text, details: f.details } : undefined;
  }
}
