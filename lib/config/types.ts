// The normalized, validated configuration every other layer reads. Durations are milliseconds,
// sizes are bytes, paths are absolute; nothing here needs checking again.
import type { BACKENDS, LOG_LEVELS, ON_FULL, TRANSLATE_MODES } from './schema.js';

export type BackendKind = (typeof BACKENDS)[number];
export type OnFull = (typeof ON_FULL)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
/** Whether the hub translates an API to Chat Completions: as the backend kind says and learns (auto), always, or never. */
export type TranslateMode = (typeof TRANSLATE_MODES)[number];

export interface ModelConfig {
  name: string;
  backend: BackendKind;
  /** Launch argv with `${PORT}`, `${MODEL}` and `${HUB}` still in place (runtime fills them). Managed models only. */
  argv?: string[];
  /** Base URL of a remote model (no process). */
  url?: string;
  apiKey?: string;
  forwardAuth: boolean;
  /** /upstream may reach the backend's memory-control endpoints (off: the hub owns its memory). */
  upstreamControl: boolean;
  /** Responses and Messages requests sent to the backend as Chat Completions (docs/clients.md); absent = auto. */
  translate?: { responses: TranslateMode; messages: TranslateMode };
  /** The port the backend listens on: set in the file, or assigned from `ports.start`. Managed models only. */
  port?: number;
  portIsExplicit: boolean;
  group?: string;
  /** Declared memory in bytes; 0 when not declared (and with `memory: auto`). */
  memory: number;
  /** `memory: auto`: planned with what the model was measured to hold (or its estimate), not a declared size. */
  memoryAuto: boolean;
  aliases: string[];
  servedModel?: string;
  env: Record<string, string>;
  cwd?: string;
  /** 0 disables the step. */
  idle: { unloadAfterMs: number; stopAfterMs: number };
  preload: boolean;
  pinned: boolean;
  maxConcurrency: number;
  maxQueue: number;
  health: { path?: string; intervalMs: number };
  startTimeoutMs: number;
  stopTimeoutMs: number;
  /** Keys that may use this model (its own, or from defaults, then its group's); absent when none. */
  apiKeys?: NamedKey[];
  /** Fields set, filled or removed in the JSON body before forwarding; absent when none (no rewrite). */
  params?: ParamsPolicy;
  /** log.capture: the request log keeps this model's request and response bodies (bounded). */
  capture: boolean;
  /** A streaming request that must wait for a load gets its progress in the stream (off by default). */
  progress: ProgressMode;
  /** keep_cache (llama-cpp with cmd only): where llama-server's slots are saved across a stop; absent when off. */
  keepCache?: KeepCache;
  /** memory_release (vLLM, and the demo backend that speaks its API): the sleep level of an unload. */
  memoryRelease?: 'level1' | 'level2';
  /** gpus: the devices it needs (the coordinators place it and set CUDA_VISIBLE_DEVICES); absent: not placed. */
  gpus?: GpuNeed;
}

/** A model's `gpus:`: any `count` devices, or exactly the ones in `only`. */
export interface GpuNeed {
  count: number;
  only?: number[];
}

/** The hub's `gpus:`: found with nvidia-smi (`auto`), or listed with their memory. */
export interface GpuConfig {
  auto: boolean;
  /** Listed devices (empty with auto: those come from nvidia-smi at run time). */
  devices: Array<{ id: number; memory: number }>;
}

/** backends/llama-slots.ts saves and restores the slots; config/keep-cache.ts works this out. */
export interface KeepCache {
  /** Absolute folder of the slot files: the command's own --slot-save-path, else `<state_dir>/kv-cache/<encoded name>`. */
  dir: string;
  /** true: the command sets no --slot-save-path, and the hub adds `--slot-save-path <dir>` when it starts it. */
  addsFlag: boolean;
  /** keep_cache_max: at most this many slots are saved (the most recently used first). */
  max: number;
}

export type ProgressMode = 'off' | 'comments' | 'reasoning';

/** A key and where hub.yaml lists it (`auth.api_keys[0]`): the name the request log shows, never the key. */
export interface NamedKey {
  key: string;
  name: string;
}

/** A key listed under a model or group: the models it opens (and no other). */
export interface ScopedKey extends NamedKey {
  models: string[];
}

export interface ParamsPolicy {
  /** Always written, over what the client sent. */
  set: Record<string, unknown>;
  /** Written when the client sent no such field (or null). */
  default: Record<string, unknown>;
  /** Removed when the client sent them. */
  strip: string[];
}

export interface GroupConfig {
  name: string;
  maxLoaded: number;
  maxMemory: number;
  onFull: OnFull;
  /** While another model's requests wait, the loaded one keeps admitting this long before it yields (0 = at once). */
  swapHoldMs: number;
  /** No request for a model of this group waits longer than this for room (then 429). */
  maxWaitMs: number;
  /** Keys that may use only this group's models. */
  apiKeys: NamedKey[];
}

/** How much the hub takes from one client (docs/limits.md). */
export interface Limits {
  maxBodyBytes: number;
  /** All request bodies held in memory at once. */
  maxBodyTotalBytes: number;
  /** A request body that sends nothing for this long is dropped; 0 = never. */
  bodyTimeoutMs: number;
  /** A client that reads nothing of a proxied answer for this long is cut; 0 = never. */
  stallTimeoutMs: number;
  /** Client connections open at once; past it only /health is answered (http/connections.ts). */
  maxConnections: number;
  /** A request's headers must have arrived within this of its start (never 0). */
  headerTimeoutMs: number;
  /** A whole request, body included, must have arrived within this; 0 = no bound. */
  requestTimeoutMs: number;
}

export interface HubConfig {
  /** Absolute path of the file this came from. */
  path: string;
  listen: { host: string; port: number };
  stateDir: string;
  log: {
    level: LogLevel;
    dir: string;
    rotate: { sizeBytes: number; intervalMs: number; keep: number; compress: boolean };
    /** How many finished requests the request log keeps in memory (0: no request log). */
    requests: number;
  };
  /**
   * Keys are never empty strings; adminKeys is apiKeys when none are set. Origins are as browsers send
   * them (`https://app.example.com:8443`), hosts bare and lower case; trusted proxies are addresses or
   * CIDR ranges (`10.0.0.0/8`). See config/auth.ts.
   */
  auth: {
    apiKeys: string[];
    adminKeys: string[];
    /** Where each key of apiKeys and adminKeys is listed (same order), for the request log. */
    apiKeyNames: string[];
    adminKeyNames: string[];
    /** Keys listed under models and groups, each with every model it opens. */
    scopedKeys: ScopedKey[];
    allowedOrigins: string[];
    allowedHosts: string[];
    trustedProxies: string[];
  };
  limits: Limits;
  ports: { start: number };
  /** backends: /metrics also carries each running backend's own metrics, labelled with its model. */
  metrics: { backends: boolean };
  /** Hub-wide memory budget in bytes; Infinity when not set. */
  maxMemory: number;
  /** The devices models with `gpus:` are placed on; absent when the config lists none. */
  gpus?: GpuConfig;
  groups: Record<string, GroupConfig>;
  /** In file order. */
  models: Record<string, ModelConfig>;
}

export const isRemote = (m: ModelConfig): boolean => m.url !== undefined;
