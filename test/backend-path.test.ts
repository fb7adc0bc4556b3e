// The request path the hub sends to a backend as it is (isNormalPath) must be exactly what a WHATWG URL
// makes of it, which is what http-proxy-3 sends otherwise: checked on seeded random paths built from
// the characters that URLs escape, decode or resolve. Replay a failure with PATH_SEED=<seed>.
import fc from 'fast-check';
import t from 'tap';
import { isNormalPath } from '../lib/http/backend-address.js';

const SEED = Number(process.env.PATH_SEED ?? Date.now() % 2 ** 31);

/** What http-proxy-3 sends for a path it normalizes (its getPath). */
function normalized(path: string): string {
  const u = new URL(path.startsWith('//') ? `http://base.invalid${path}` : path, 'http://base.invalid');
  return `${u.pathname}${u.search}`;
}

t.test(`a path sent as it is is already what a URL makes of it (seed ${SEED})`, async (t) => {
  const chars = [...'/aZ09-._~%2eE?&=+*!$()\',;:@ "<>`{}\\#|^[]é\t'];
  const path = fc.array(fc.constantFrom(...chars), { maxLength: 24 }).map((cs) => `/${cs.join('')}`);
  let plain = 0;
  fc.assert(
    fc.property(path, (p) => {
      if (!isNormalPath(p)) return true;
      plain++;
      return normalized(p) === p;
    }),
    { numRuns: Number(process.env.PATH_RUNS ?? 20_000), seed: SEED },
  );
  t.ok(plain > 1000, `${plain} of the generated paths were sent as they are, each unchanged by a URL`);

  for (const p of ['/v1/chat/completions', '/v1/chat/completions?trace=1&x=%20y', '/v1/models/org:model@v2', '/']) {
    t.ok(isNormalPath(p), `${p} is sent as it is`);
    t.equal(normalized(p), p);
  }
  for (const p of ['/?', '/x?', '/a/../b', '/a/./b', '/a/%2e%2e/b', '/a/%2E/b', '/a b', '/a\\b', '/a/..', '/x?"q"', "/x?it's", '/é']) {
    t.notOk(isNormalPath(p), `${p} goes through the URL (it becomes ${normalized(p)})`);
  }
});
