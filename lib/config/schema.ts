// The typebox schema of hub.yaml (SPEC §2), as the user writes it: durations and sizes are still
// strings here; load.ts turns a checked document into the normalized HubConfig.
//
// Each leaf carries an `expected` annotation: the validator's raw messages ("must match anyOf") are
// replaced by `expected <expected>, got <value>` so that errors read like the SPEC's example.
import { Type, type Static, type TSchema } from './typebox.js';
import { DURATION_PATTERN, SIZE_PATTERN } from './units.js';

export const BACKENDS = ['openai', 'demo', 'llama-cpp', 'vllm', 'sglang', 'ollama', 'mlx'] as const;
export const ON_FULL = ['evict', 'reject', 'wait'] as const;
export const TRANSLATE_MODES = ['auto', 'always', 'never'] as const;
/** The request log's largest size (log.requests): about 1 KiB each, so at most ~100 MiB. */
export const MAX_LOGGED_REQUESTS = 100_000;
/** keep_cache_max's upper bound: more slots than any llama-server is run with. */
export const MAX_KEEP_CACHE_FILES = 256;
/** A box has at most this many GPUs a model may span, with ids below MAX_GPU_ID. */
export const MAX_GPUS = 64;
export const MAX_GPU_ID = 1023;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

const annotate = <T extends TSchema>(schema: T, expected: string): T => Object.assign(schema, { expected });

const Duration = () =>
  annotate(Type.Union([Type.Number({ minimum: 0 }), Type.String({ pattern: DURATION_PATTERN })]), 'a duration like "5m"');
const IdleDuration = () =>
  annotate(
    Type.Union([Type.Number({ minimum: 0 }), Type.Literal('never'), Type.String({ pattern: DURATION_PATTERN })]),
    'a duration like "5m", 0 or "never"',
  );
const Size = () => annotate(Type.Union([Type.Number({ minimum: 0 }), Type.String({ pattern: SIZE_PATTERN })]), 'a size like "24GiB"');
const Str = () => annotate(Type.String(), 'a string');
const NonEmpty = () => annotate(Type.String({ minLength: 1 }), 'a non-empty string');
const Bool = () => annotate(Type.Boolean(), 'true or false');
const Int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  annotate(Type.Integer({ minimum: min, maximum: max }), `a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}`);
const Port = () => Int(1, 65535);
export const PROGRESS_MODES = ['off', 'comments', 'reasoning'] as const;
const OneOf = <T extends readonly string[]>(values: T) =>
  annotate(Type.Union(values.map((v) => Type.Literal(v))), `one of ${values.join(', ')}`);
const StrList = () => annotate(Type.Array(Str()), 'a list of strings');
const Obj = <P extends Record<string, TSchema>>(props: P, expected: string) =>
  annotate(Type.Object(props, { additionalProperties: false }), expected);
const Opt = Type.Optional;
/** Request body fields and their JSON values (params.set, params.default). */
const FieldMap = () => annotate(Type.Record(Type.String(), Type.Unknown()), 'a map of field: value');

/** Every key a model may have. In `defaults` all of them are optional. */
const modelProperties = {
  backend: Opt(OneOf(BACKENDS)),
  cmd: Opt(annotate(Type.Union([Type.String({ minLength: 1 }), Type.Array(Str(), { minItems: 1 })]), 'a command string or a list of arguments')),
  url: Opt(annotate(Type.String({ pattern: '^https?://' }), 'an http:// or https:// URL')),
  api_key: Opt(Str()),
  forward_auth: Opt(Bool()),
  upstream_control: Opt(Bool()),
  translate: Opt(Obj({ responses: Opt(OneOf(TRANSLATE_MODES)), messages: Opt(OneOf(TRANSLATE_MODES)) }, 'an object with responses and messages')),
  port: Opt(Port()),
  group: Opt(NonEmpty()),
  memory: Opt(annotate(Type.Union([Type.Number({ minimum: 0 }), Type.String({ pattern: SIZE_PATTERN }), Type.Literal('auto')]), 'a size like "24GiB", or auto')),
  aliases: Opt(StrList()),
  served_model: Opt(NonEmpty()),
  env: Opt(annotate(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])), 'a map of NAME: value')),
  cwd: Opt(NonEmpty()),
  idle: Opt(Obj({ unload_after: Opt(IdleDuration()), stop_after: Opt(IdleDuration()) }, 'an object with unload_after and stop_after')),
  preload: Opt(Bool()),
  pinned: Opt(Bool()),
  max_concurrency: Opt(Int(1)),
  max_queue: Opt(Int(0)),
  health: Opt(Obj({ path: Opt(annotate(Type.String({ pattern: '^/' }), 'a path starting with /')), interval: Opt(Duration()) }, 'an object with path and interval')),
  start_timeout: Opt(Duration()),
  stop_timeout: Opt(Duration()),
  // Per-model policy (docs/security.md, docs/config.md): keys that may use only this model, and the
  // request body fields the hub sets, fills or removes before forwarding.
  api_keys: Opt(StrList()),
  params: Opt(
    Obj(
      { set: Opt(FieldMap()), default: Opt(FieldMap()), strip: Opt(StrList()) },
      'an object with set, default, strip',
    ),
  ),
  log: Opt(Obj({ capture: Opt(Bool()) }, 'an object with capture')),
  // A streaming request to a cold model is answered at once, with the load's progress in its stream.
  progress: Opt(OneOf(PROGRESS_MODES)),
  // llama-cpp only: the slots' KV cache is saved before a stop and restored after the next start.
  // vLLM's sleep level when the hub unloads the model: level1 keeps the weights in CPU RAM (fast
  // wake), level2 discards them (frees host RAM too; the wake reads them again).
  memory_release: Opt(OneOf(['level1', 'level2'] as const)),
  keep_cache: Opt(Bool()),
  keep_cache_max: Opt(Int(1, MAX_KEEP_CACHE_FILES)),
  // How many GPUs the model needs (the hub picks them), or which ones (docs/gpus.md).
  gpus: Opt(annotate(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_GPUS }), Type.Array(Type.Integer({ minimum: 0, maximum: MAX_GPU_ID }), { minItems: 1, maxItems: MAX_GPUS })]), 'a number of GPUs like 1, or a list of GPU ids like [0]')),
};

export const ModelSchema = Obj(modelProperties, 'a model: an object with cmd or url');
export const DefaultsSchema = Obj(modelProperties, 'an object of per-model defaults');

export const GroupSchema = Obj(
  { max_loaded: Opt(Int(1)), max_memory: Opt(Size()), on_full: Opt(OneOf(ON_FULL)), swap_hold: Opt(Duration()), max_wait: Opt(Duration()), api_keys: Opt(StrList()) },
  'a group: an object with max_loaded, max_memory, on_full, swap_hold, max_wait, api_keys',
);

export const HubFileSchema = Obj(
  {
    listen: Opt(Obj({ host: Opt(NonEmpty()), port: Opt(Int(0, 65535)) }, 'an object with host and port')),
    state_dir: Opt(NonEmpty()),
    log: Opt(
      Obj(
        {
          level: Opt(OneOf(LOG_LEVELS)),
          dir: Opt(NonEmpty()),
          rotate: Opt(Obj({ size: Opt(Size()), interval: Opt(Duration()), keep: Opt(Int(1)), compress: Opt(Bool()) }, 'an object with size, interval, keep, compress')),
          requests: Opt(Int(0, MAX_LOGGED_REQUESTS)),
        },
        'an object with level, dir, rotate, requests',
      ),
    ),
    auth: Opt(
      Obj(
        { api_keys: Opt(StrList()), admin_keys: Opt(StrList()), allowed_origins: Opt(StrList()), allowed_hosts: Opt(StrList()), trusted_proxies: Opt(StrList()) },
        'an object with api_keys, admin_keys, allowed_origins, allowed_hosts, trusted_proxies',
      ),
    ),
    limits: Opt(
      Obj(
        {
          max_body: Opt(Size()),
          max_body_total: Opt(Size()),
          body_timeout: Opt(Duration()),
          stall_timeout: Opt(Duration()),
          max_connections: Opt(Int(1)),
          header_timeout: Opt(Duration()),
          request_timeout: Opt(Duration()),
        },
        'an object with max_body, max_body_total, body_timeout, stall_timeout, max_connections, header_timeout, request_timeout',
      ),
    ),
    ports: Opt(Obj({ start: Opt(Port()) }, 'an object with start')),
    metrics: Opt(Obj({ backends: Opt(Bool()) }, 'an object with backends')),
    max_memory: Opt(Size()),
    gpus: Opt(
      annotate(
        Type.Union([Type.Literal('auto'), Type.Array(Obj({ id: Int(0, MAX_GPU_ID), memory: Size() }, 'a GPU: an object with id and memory'), { maxItems: MAX_GPU_ID + 1 })]),
        'auto, or a list of GPUs like [{ id: 0, memory: 24GiB }]',
      ),
    ),
    defaults: Opt(DefaultsSchema),
    groups: Opt(annotate(Type.Record(Type.String(), GroupSchema), 'a map of group name: group')),
    models: annotate(Type.Record(Type.String(), ModelSchema), 'a map of model name: model'),
  },
  'a hub config: an object with listen, models, ...',
);

export type HubFile = Static<typeof HubFileSchema>;
export type ModelFile = Static<typeof ModelSchema>;
export type GroupFile = Static<typeof GroupSchema>;
