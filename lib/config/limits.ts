// The `limits` section of hub.yaml, normalized: what one request body, all bodies, a slow or stalled
// client and the connections may take (docs/limits.md).
import type { HubFile } from './schema.js';
import type { Limits } from './types.js';
import { formatBytes, formatDuration, parseDuration, parseSize } from './units.js';

export function limits(file: NonNullable<HubFile['limits']>, problem: (s: string[], msg: string) => void): Limits {
  const maxBodyBytes = parseSize(file.max_body ?? '32MiB')!;
  // Left unset, the total grows with a max_body raised past it, rather than refuse the config.
  const maxBodyTotalBytes = file.max_body_total !== undefined ? parseSize(file.max_body_total)! : Math.max(parseSize('256MiB')!, maxBodyBytes);
  if (maxBodyTotalBytes < maxBodyBytes) {
    problem(['limits', 'max_body_total'], `${formatBytes(maxBodyTotalBytes)} is less than limits.max_body (${formatBytes(maxBodyBytes)}); a body of the largest allowed size could never be held`);
  }
  // Node refuses a header timeout longer than the request timeout (the headers are part of the request).
  const headerTimeoutMs = parseDuration(file.header_timeout ?? '15s')!;
  const requestTimeoutMs = parseDuration(file.request_timeout ?? '5m')!;
  if (headerTimeoutMs === 0) problem(['limits', 'header_timeout'], 'must be more than 0: a client that never finishes its headers would hold its connection for ever');
  else if (requestTimeoutMs > 0 && headerTimeoutMs > requestTimeoutMs) problem(['limits', 'header_timeout'], `is longer than limits.request_timeout (${formatDuration(requestTimeoutMs)}); the headers are part of the request`);
  return {
    maxBodyBytes,
    maxBodyTotalBytes,
    bodyTimeoutMs: parseDuration(file.body_timeout ?? '30s')!,
    stallTimeoutMs: parseDuration(file.stall_timeout ?? '5m')!,
    maxConnections: file.max_connections ?? 4096,
    headerTimeoutMs,
    requestTimeoutMs,
  };
}
