// Runs the typebox schema over a parsed document and turns its raw errors into user-facing
// problems: one per path, worded from the schema's `expected` annotations, unknown keys with a
// did-you-mean.
import { Compile, Settings, Value, type TSchema, type Validator } from './typebox.js';
import { HubFileSchema } from './schema.js';
import { didYouMean } from './errors.js';

/** A problem located by its path segments (load.ts adds line numbers and formats the path). */
export interface RawProblem {
  segments: string[];
  message: string;
}

interface RawError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

// TypeBox stops after 8 errors by default; a config check should report them all.
Settings.Set({ maxErrors: 10_000 });

/**
 * The schema compiled to one check function, built on first use. A valid config (nearly every load
 * and reload) is then checked without walking it for errors: Value.Errors over 500 models takes
 * ~30-80 ms and allocates ~10 MB, and that garbage alone grows V8's young generation for good (the
 * hub's idle memory was 16 MB larger with 500 models for it). The compiled check takes ~1 ms.
 */
let compiled: Validator | undefined;

export function schemaProblems(doc: unknown): RawProblem[] {
  compiled ??= Compile(HubFileSchema);
  if (compiled.Check(doc)) return [];
  const problems = new Map<string, RawProblem>();
  const add = (segments: string[], message: string) => {
    const key = segments.join('\0');
    if (!problems.has(key)) problems.set(key, { segments, message });
  };
  for (const error of Value.Errors(HubFileSchema, doc) as Iterable<RawError>) {
    // Branch failures inside a union are summarized by the union's own error.
    if (error.schemaPath.includes('/anyOf/') || error.keyword === 'boolean') continue;
    const at = pointerSegments(error.instancePath);
    const schema = schemaAt(error.schemaPath);
    if (error.keyword === 'additionalProperties') {
      const known = Object.keys((schema?.properties as object | undefined) ?? {});
      for (const key of error.params.additionalProperties as string[]) {
        const guess = didYouMean(key, known);
        add([...at, key], `unknown key${guess ? `; did you mean "${guess}"?` : `; expected one of ${known.join(', ')}`}`);
      }
    } else if (error.keyword === 'required') {
      for (const key of (error.params.requiredProperties as string[] | undefined) ?? []) add([...at, key], 'missing; this key is required');
    } else {
      const expected = (schema as { expected?: string } | undefined)?.expected;
      const got = describe(valueAt(doc, at));
      add(at, expected ? `expected ${expected}, got ${got}` : `${error.message}, got ${got}`);
    }
  }
  return [...problems.values()];
}

function pointerSegments(pointer: string): string[] {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function schemaAt(schemaPath: string): Record<string, unknown> | undefined {
  let node: unknown = HubFileSchema as TSchema;
  for (const segment of pointerSegments(schemaPath.replace(/^#/, ''))) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node as Record<string, unknown> | undefined;
}

function valueAt(doc: unknown, segments: string[]): unknown {
  let node = doc;
  for (const s of segments) node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[s] : undefined;
  return node;
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}..."` : text;
}

export const startsWith = (path: string[], prefix: string[]) => prefix.every((s, i) => path[i] === s);

/** A copy of the document without the values the schema refused; undefined when the whole document was. */
export function withoutRefused(value: unknown, refused: string[][]): unknown {
  if (refused.some((r) => r.length === 0 || (r.length === 1 && r[0] === 'models'))) return undefined;
  const copy = structuredClone(value) as Record<string, unknown>;
  for (const segments of refused) {
    // An item of a list is refused with its list (aliases, a cmd list): the checks read lists whole.
    let cut = segments;
    for (let n = segments.length - 1; n > 0; n--) if (Array.isArray(valueAt(copy, segments.slice(0, n)))) cut = segments.slice(0, n);
    const parent = valueAt(copy, cut.slice(0, -1));
    if (parent !== null && typeof parent === 'object') delete (parent as Record<string, unknown>)[cut.at(-1)!];
  }
  return copy;
}
