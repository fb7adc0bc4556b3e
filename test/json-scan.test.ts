// The skip-scanner that finds a JSON body's top-level `model` (lib/http/json-scan.ts), checked
// against JSON.parse: the same verdict (valid or not, an object or not, the same `model`) for fixed
// cases, for generated documents with random whitespace, and for random corruptions of them, however
// the bytes are split into chunks; and value offsets that a served_model rewrite can splice at. Also
// whether the top-level "stream" is true (load progress in the stream asks for it).
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { JsonModelScanner, type ScanResult } from '../lib/http/json-scan.js';

function scan(bytes: Buffer, cuts: number[] = []): ScanResult {
  const s = new JsonModelScanner();
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    s.write(bytes.subarray(at, Math.max(at, cut)));
    at = Math.max(at, cut);
  }
  s.write(bytes.subarray(at));
  return s.end();
}

/** What JSON.parse says about the same bytes, in the scanner's terms. */
function reference(bytes: Buffer): { valid: boolean; object?: boolean; model?: unknown; hasModel?: boolean; stream?: boolean } {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { valid: false };
  }
  const object = value !== null && typeof value === 'object' && !Array.isArray(value);
  return { valid: true, object, hasModel: object && Object.hasOwn(value as object, 'model'), model: object ? (value as { model?: unknown }).model : undefined, stream: object && (value as { stream?: unknown }).stream === true };
}

function agrees(bytes: Buffer, result: ScanResult): boolean {
  const ref = reference(bytes);
  if (result.valid !== ref.valid) return false;
  if (!result.valid || !ref.object) return !result.valid || result.object === ref.object;
  if (!result.object || result.stream !== ref.stream) return false;
  if (!ref.hasModel) return result.span === undefined;
  if (typeof ref.model !== 'string') return result.span !== undefined && result.span.model === undefined;
  return result.span?.model === ref.model;
}

const CASES = [
  '{"model":"a"}', ' {"model" : "b\\u0041\\n" , "x":[1,2,{"model":"inner"}]} ', '[1,2]', '{"model": ', '', '   ', ' 12 ', '-', '-0.5e-7',
  '{"a":1,}', '[1,]', '{"mod\\u0065l":"escaped key"}', '{"model":"x","model":"y"}', '{"model":"x","model":7}', '{"a":tru}', 'nul', 'null',
  '{"a":"\u0001"}', '01', '1.', '1e', '1e+', '.5', '{"a":[]} x', '"str"', '{"model":"ünïcødé 😀"}', '{"model":"\\ud83d\\ude00"}',
  '{"a":{"b":[[],{}]},"model":"z"}', '{,}', '{"a" 1}', '[1 2]', '{"a":"\\x"}', '{"a":"\\u12g4"}', '{"model":""}', '{"model":null}',
  '{"model":{"model":"no"}}', '{}', '[]', '{"a":1}}', '[[[]]', '{"model":"a"}\n', '\ufeff{"model":"bom"}', '{"model":"a",}', 'true false',
  '{"model":"s","stream":true}', '{"stream":true,"model":"s","stream":false}', '{"stream":false,"stream":true}', '{"stream":"true"}',
  '{"\u0073tream":true}', '{"a":{"stream":true}}', '{"stream":1}', '{"stream":tru}', '{"stream":null}',
];

t.test('fixed cases agree with JSON.parse at every split point', async (t) => {
  for (const text of CASES) {
    const bytes = Buffer.from(text);
    let ok = true;
    for (let cut = 0; cut <= bytes.length && ok; cut++) ok = agrees(bytes, scan(bytes, [cut]));
    for (let cut = 0; cut + 1 <= bytes.length && ok; cut++) ok = agrees(bytes, scan(bytes, [cut, cut + 1]));
    t.ok(ok, JSON.stringify(text));
  }
});

t.test('error messages name the problem and its position', async (t) => {
  t.same(scan(Buffer.from('{"model": ')), { valid: false, message: 'Unexpected end of JSON input' });
  t.match(scan(Buffer.from('{"model": x}')), { valid: false, message: /Unexpected token 'x' in JSON at position 10/ });
  t.match(scan(Buffer.from('{"a":1,}')), { valid: false, message: /position 7/ });
});

// Any JSON document, printed with random indentation, as the value of a random key of an object that
// may or may not have a top-level "model".
const documents = fc
  .tuple(
    fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constant('stream')), fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.boolean()), { maxKeys: 5 }),
    fc.option(fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })), { nil: undefined }),
    fc.nat(4),
    fc.boolean(),
  )
  .map(([rest, model, indent, modelFirst]) => {
    const obj = modelFirst && model !== undefined ? { model, ...rest } : { ...rest, ...(model === undefined ? {} : { model }) };
    return Buffer.from(JSON.stringify(obj, null, indent));
  });
const cuts = fc.array(fc.nat(400), { maxLength: 6 });

t.test('generated documents agree with JSON.parse however they are chunked', async (t) => {
  fc.assert(fc.property(documents, cuts, (bytes, at) => agrees(bytes, scan(bytes, at))), { numRuns: 1500 });
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 5 }), cuts, (v, at) => {
    const bytes = Buffer.from(JSON.stringify(v) ?? 'null');
    return agrees(bytes, scan(bytes, at));
  }), { numRuns: 1000 });
  t.pass('property held');
});

t.test('corrupted documents get the same verdict as from JSON.parse', async (t) => {
  const junk = [...'{}[]:,"\\ \n-+.eE0123tfnlu', '\u0001', 'x'];
  const corruption = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 }), fc.constantFrom(...junk));
  fc.assert(
    fc.property(documents, fc.array(corruption, { minLength: 1, maxLength: 3 }), cuts, (bytes, changes, at) => {
      let text = bytes.toString('utf8');
      for (const [where, how, what] of changes) {
        const i = text.length ? where % text.length : 0;
        text = how === 0 ? text.slice(0, i) + text.slice(i + 1) : how === 1 ? text.slice(0, i) + what + text.slice(i) : text.slice(0, i);
      }
      const corrupted = Buffer.from(text);
      return agrees(corrupted, scan(corrupted, at));
    }),
    { numRuns: 3000 },
  );
  t.pass('property held');
});

t.test('the model span can be spliced: the result parses to the same object with the new model', async (t) => {
  fc.assert(
    fc.property(documents, fc.string({ maxLength: 10 }), cuts, (bytes, served, at) => {
      const ref = reference(bytes);
      const result = scan(bytes, at);
      if (!ref.valid || !ref.object || typeof ref.model !== 'string' || !result.valid || !result.span) return true;
      const { start, end } = result.span;
      const spliced = Buffer.concat([bytes.subarray(0, start), Buffer.from(JSON.stringify(served)), bytes.subarray(end)]);
      const expected = { ...(JSON.parse(bytes.toString('utf8')) as object), model: served };
      return isDeepStrictEqual(JSON.parse(spliced.toString('utf8')), expected) && JSON.parse(bytes.subarray(start, end).toString('utf8')) === ref.model;
    }),
    { numRuns: 1000 },
  );
  t.pass('property held');
});

t.test('deep nesting and long values are scanned without recursion or building them', async (t) => {
  const depth = 200_000;
  const deep = Buffer.from(`{"input":${'['.repeat(depth)}${']'.repeat(depth)},"model":"m"}`);
  t.match(scan(deep, [1000, 300_000]), { valid: true, object: true, span: { model: 'm' } });
  t.match(scan(Buffer.from(`{"model":"m","input":${'['.repeat(depth)}`)), { valid: false });
  const long = Buffer.from(`{"model":"${'x'.repeat(10_000)}"}`);
  const r = scan(long);
  t.ok(r.valid && r.span && r.span.model!.length < 300 && r.span.end === long.length - 1, 'a huge model value is cut short (it names no model anyway), its span still exact');
});
