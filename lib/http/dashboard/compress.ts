// The dashboard's pages, fragments and static files go compressed to a browser that accepts it: the
// board with 60 models is ~175 KiB of HTML and ~7 KiB gzipped, and a live card update shrinks about
// 3×. Only whole bodies (strings and buffers) are compressed, off the event loop (zlib's thread
// pool); streams (the event stream, log follows) are left alone, as every /hub/api answer is.
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Context } from 'koa';

/** Below this, compressing saves less than the headers it adds cost. */
const MIN_BYTES = 1024;
const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);
// Quality 4: close to gzip's speed with a smaller result (11, the default, takes ~50× longer).
const BROTLI = { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } };

/** The static files are the same buffers every time: each is compressed once per encoding. */
const done = new WeakMap<Buffer, Map<string, Buffer>>();

const compressible = (type: string) => /^(text\/|application\/json|image\/svg\+xml)/.test(type);

/** Compresses ctx.body in place when the client accepts br or gzip and the body is worth it. */
export async function compressBody(ctx: Context): Promise<void> {
  let body = ctx.body as unknown;
  if (ctx.response.get('content-encoding') || !compressible(ctx.response.type) || ctx.status < 200 || ctx.status === 204 || ctx.status === 304) return;
  // An object is JSON koa would stringify on the way out (a fragment: a card and the summary).
  if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body) && typeof (body as { pipe?: unknown }).pipe !== 'function') body = JSON.stringify(body);
  if (typeof body !== 'string' && !Buffer.isBuffer(body)) return;
  ctx.vary('accept-encoding');
  const raw = typeof body === 'string' ? Buffer.from(body) : body;
  if (raw.length < MIN_BYTES) return;
  const encoding = ctx.acceptsEncodings('br', 'gzip', 'identity');
  if (encoding !== 'br' && encoding !== 'gzip') return;
  let out = Buffer.isBuffer(body) ? done.get(body)?.get(encoding) : undefined;
  if (!out) {
    out = encoding === 'br' ? await brotli(raw, BROTLI) : await gzipped(raw);
    if (Buffer.isBuffer(body)) {
      const byEncoding = done.get(body) ?? new Map<string, Buffer>();
      done.set(body, byEncoding.set(encoding, out));
    }
  }
  ctx.body = out; // the content type stays: koa sets one for a Buffer only when there is none
  ctx.set('content-encoding', encoding);
}
