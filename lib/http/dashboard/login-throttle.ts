// Slows key guessing through the dashboard's login form. A right key still has to be right; this only
// bounds how fast wrong ones can be tried, per client and in all, in memory that stays bounded.
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';

/** Different wrong keys allowed per client in LOGIN_WINDOW_MS before the form pauses for that client. */
export const LOGIN_FAILURES_ALLOWED = 5;
/** Different wrong keys allowed from all clients together in LOGIN_WINDOW_MS before the form pauses for everyone. */
export const LOGIN_FAILURES_ALLOWED_TOTAL = 50;
export const LOGIN_WINDOW_MS = 60_000;
/** Clients whose wrong keys are remembered at once; past this, only the hub-wide count sees new ones. */
export const LOGIN_CLIENTS_TRACKED = 10_000;

interface Window {
  since: number;
  /** Short digests of the different wrong keys seen (the keys themselves are not kept). */
  keys: Set<string>;
}

/**
 * Counts wrong keys per guess: a key sent again (a reloaded form, a stale saved password) is not a
 * new guess and does not count twice. Counted per client, where an IPv6 client is its /64 (one host
 * has all of it to pick addresses from), and for the whole hub, so that a guesser with many addresses
 * gets no more than LOGIN_FAILURES_ALLOWED_TOTAL tries a minute either. Windows start at a client's
 * first wrong key and last LOGIN_WINDOW_MS.
 */
export class LoginThrottle {
  private readonly clients = new Map<string, Window>();
  private total: Window = { since: -Infinity, keys: new Set() };

  /** ms until `address` may try again (0: now), and whether the whole hub is paused rather than this client. */
  wait(address: string, now = Date.now()): { ms: number; everyone: boolean } {
    const all = this.remaining(this.total, LOGIN_FAILURES_ALLOWED_TOTAL, now);
    if (all > 0) return { ms: all, everyone: true };
    return { ms: this.clientWaitMs(address, now), everyone: false };
  }

  /** ms until `address` may try again as far as its own wrong keys go (the hub-wide count aside). */
  clientWaitMs(address: string, now = Date.now()): number {
    const own = this.clients.get(clientOf(address));
    return own ? this.remaining(own, LOGIN_FAILURES_ALLOWED, now) : 0;
  }

  /** ms until `address` may try again, or 0. */
  waitMs(address: string, now = Date.now()): number {
    return this.wait(address, now).ms;
  }

  failed(address: string, key: string, now = Date.now()): void {
    const guess = createHash('sha256').update(key).digest('base64url').slice(0, 16);
    const client = clientOf(address);
    if (now - this.total.since >= LOGIN_WINDOW_MS) this.total = { since: now, keys: new Set() };
    let own = this.clients.get(client);
    if (own && now - own.since >= LOGIN_WINDOW_MS) own = undefined;
    if (!own) {
      if (this.clients.size >= LOGIN_CLIENTS_TRACKED) this.forgetExpired(now);
      // Still full: every entry is a live window. None is dropped (that would lift its pause);
      // this client is counted in the hub-wide total only.
      if (this.clients.size < LOGIN_CLIENTS_TRACKED || this.clients.has(client)) this.clients.set(client, (own = { since: now, keys: new Set() }));
    }
    if (own?.keys.has(guess)) return; // the same wrong key again
    own?.keys.add(guess);
    // The hub-wide count is of different (client, key) guesses; its set is bounded by its own limit.
    if (this.total.keys.size <= LOGIN_FAILURES_ALLOWED_TOTAL) this.total.keys.add(`${client} ${guess}`);
  }

  succeeded(address: string): void {
    this.clients.delete(clientOf(address));
  }

  /** How many clients are remembered (for tests of the bound). */
  get tracked(): number {
    return this.clients.size;
  }

  private remaining(w: Window, allowed: number, now: number): number {
    if (now - w.since >= LOGIN_WINDOW_MS || w.keys.size < allowed) return 0;
    return LOGIN_WINDOW_MS - (now - w.since);
  }

  private forgetExpired(now: number): void {
    for (const [client, w] of this.clients) if (now - w.since >= LOGIN_WINDOW_MS) this.clients.delete(client);
  }
}

/** An IPv4 address as it is (IPv4-mapped IPv6 included), an IPv6 address as its /64. */
export function clientOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head, tail = ''] = address.toLowerCase().split('%')[0].split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
