// Per-model policy in hub.yaml, normalized: `api_keys` on a model or a group (keys that may use only
// those models), `params` (body fields set, filled or removed before forwarding) and `log.capture`.
// All of it is worked out here, once per config, so that a request to a model without any of it pays
// nothing (http/auth.ts and http/params.ts read the results).
import { nonEmpty } from './auth.js';
import type { ModelFile } from './schema.js';
import type { GroupConfig, HubConfig, ModelConfig, NamedKey, ParamsPolicy, ScopedKey } from './types.js';

type Problem = (segments: string[], message: string) => void;

/** The model's own keys (or those of defaults), then its group's. Undefined when there are none. */
export function modelKeys(name: string, own: ModelFile, merged: ModelFile, group: GroupConfig | undefined): NamedKey[] | undefined {
  const where = own.api_keys !== undefined ? `models.${name}.api_keys` : 'defaults.api_keys';
  const keys = [...nonEmpty(merged.api_keys, where), ...(group?.apiKeys ?? [])];
  return keys.length ? keys : undefined;
}

/** Every key listed under models and groups, once, with every model it opens; a hub-wide key stays hub-wide. */
export function scopedKeys(models: Record<string, ModelConfig>, auth: HubConfig['auth']): ScopedKey[] {
  const hubWide = new Set([...auth.apiKeys, ...auth.adminKeys]);
  const byKey = new Map<string, ScopedKey>();
  for (const m of Object.values(models)) {
    for (const { key, name } of m.apiKeys ?? []) {
      if (hubWide.has(key)) continue;
      const scoped = byKey.get(key) ?? { key, name, models: [] };
      byKey.set(key, scoped);
      if (!scoped.models.includes(m.name)) scoped.models.push(m.name);
    }
  }
  return [...byKey.values()];
}

/** Names that would break the request or the hub if a policy touched them. */
const RESERVED: Record<string, string> = {
  model: 'the hub routes by "model"; to send the backend another name use served_model',
  __proto__: 'not a field a JSON body can carry safely',
};

/** params: set / default / strip, checked (a field in two of them, or a reserved one, is refused). */
export function paramsPolicy(params: ModelFile['params'], at: string[], problem: Problem): ParamsPolicy | undefined {
  if (params === undefined) return undefined;
  const policy: ParamsPolicy = { set: params.set ?? {}, default: params.default ?? {}, strip: [...new Set(params.strip ?? [])] };
  const lists: Array<[keyof ParamsPolicy, string[]]> = [
    ['set', Object.keys(policy.set)],
    ['default', Object.keys(policy.default)],
    ['strip', policy.strip],
  ];
  const seen = new Map<string, string>();
  for (const [list, fields] of lists) {
    fields.forEach((field, i) => {
      const where = list === 'strip' ? [...at, 'params', 'strip', String(i)] : [...at, 'params', list, field];
      if (field === '') problem(where, 'a field name cannot be empty');
      else if (Object.hasOwn(RESERVED, field)) problem(where, `"${field}" cannot be changed by params: ${RESERVED[field]}`);
      else if (seen.has(field)) problem(where, `"${field}" is also under params.${seen.get(field)}; name each field in one of set, default, strip`);
      else seen.set(field, list);
    });
  }
  return lists.some(([, fields]) => fields.length) ? policy : undefined;
}
