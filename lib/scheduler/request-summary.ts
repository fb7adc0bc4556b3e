// One request as the access log, the metrics and the events stream see it (the gateway reports it).

export interface RequestSummary {
  id: string;
  model?: string;
  method: string;
  path: string;
  status: number;
  ms: number;
  /** Until the backend's first body byte (proxied requests). */
  ttfb_ms?: number;
  cold_start_ms?: number;
  queue_ms?: number;
  /** Part of queue_ms spent waiting for room in the group (other models yielding and unloading). */
  swap_ms?: number;
  bytes_in?: number;
  bytes_out?: number;
  /** As the backend reported them (prompt/input and completion/output tokens). */
  tokens_in?: number;
  tokens_out?: number;
  /** Set when the response ended before all of it was sent. */
  cut?: 'stalled' | 'closed early';
  /** Who asked: where hub.yaml lists the key sent (`auth.api_keys[0]`), or "session"; never the key. */
  key?: string;
}
