// GET /metrics of the demo backend: a few series in Prometheus text format, the way llama-server
// (--metrics) and vLLM expose theirs, so that the hub's `metrics.backends` can be tried and tested
// without a GPU. DEMO_METRICS=off in the model's env makes it answer 404, like a server without
// metrics; DEMO_METRICS=hang makes it never answer.
import type { ServerResponse } from 'node:http';
import type { DemoStats } from './server.js';

export function demoMetrics(res: ServerResponse, stats: DemoStats): void {
  const mode = process.env.DEMO_METRICS;
  if (mode === 'hang') return; // the hub's short timeout must cut it
  if (mode === 'off') {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'this demo backend runs with DEMO_METRICS=off', type: 'invalid_request_error', code: 'not_found' } }));
    return;
  }
  const text = [
    '# HELP demo_requests_total Requests the demo backend served.',
    '# TYPE demo_requests_total counter',
    `demo_requests_total{served_model="${stats.model}"} ${stats.requests}`,
    '# HELP demo_tokens_generated_total Tokens generated since start.',
    '# TYPE demo_tokens_generated_total counter',
    `demo_tokens_generated_total ${stats.tokens}`,
    '# HELP demo_memory_allocated_bytes Bytes held for the "weights".',
    '# TYPE demo_memory_allocated_bytes gauge',
    `demo_memory_allocated_bytes ${stats.allocated_bytes}`,
    '',
  ].join('\n');
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
