// The bundled demo backend (SPEC §9): a small but real OpenAI-compatible HTTP server used by the
// shipped hub.yaml, the tests and the benchmarks. It can be slow to load, stream at a set token rate,
// fail in the ways real servers fail, and sleep/wake like vLLM while really freeing its RAM.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { countMessageTokens, messages } from './anthropic.js';
import { Arena } from './arena.js';
import type { Generator } from './generate.js';
import { demoMetrics } from './metrics.js';
import { responses } from './responses.js';
import { countTokens, embed, promptOf, replyTokens } from './text.js';
import { toolCall, wantsToolCall } from './tool-calls.js';
import { delay, isAnthropicPath, readBody, send, sendError } from './wire.js';

export interface DemoOptions {
  port: number;
  host: string;
  model: string;
  loadTimeMs: number;
  /** Time to wake from sleep; defaults to loadTimeMs. */
  wakeTimeMs?: number;
  /** Tokens per second when generating; 0 = as fast as possible. */
  tokenRate: number;
  memoryBytes: number;
  maxTokens: number;
  embeddingDim: number;
  /** Exit with this code half-way through loading. */
  failStart?: number;
  neverReady: boolean;
  /** Exit (code 1) once this many tokens have been generated in total. */
  crashAfter?: number;
  ignoreSigterm: boolean;
  /** Serve /v1/responses (off: 404, like a server that lacks it). */
  responses?: boolean;
  /** Serve /v1/messages and /v1/messages/count_tokens (off: 404). */
  messages?: boolean;
  /** A chat request that offers tools gets a call of one of them (tool-calls.ts). */
  toolCalls?: boolean;
  /** Chat replies carry this as reasoning_content (streamed before the text), like a reasoning model on llama-server. */
  reasoning?: string;
}

type State = 'loading' | 'ready' | 'sleeping' | 'waking';

export interface DemoStats {
  pid: number;
  model: string;
  state: State;
  started_at: number;
  ready_at: number | null;
  requests: number;
  aborted: number;
  rejected: number;
  tokens: number;
  allocated_bytes: number;
  rss: number;
  /** How long the last POST /sleep and POST /wake_up took inside this server, in ms (null: none yet). */
  last_sleep_ms: number | null;
  /** The level the last POST /sleep asked for (vLLM's: 1 keeps the weights in RAM, 2 discards them). */
  last_sleep_level: number | null;
  last_wake_ms: number | null;
  /** How long the last model request took inside this server, from its arrival to its last byte. */
  last_answer_ms: number | null;
}

const now = () => performance.timeOrigin + performance.now();

export function startDemoServer(o: DemoOptions): Promise<Server> {
  const arena = new Arena();
  let state: State = 'loading';
  const stats = { started_at: performance.timeOrigin, ready_at: null as number | null, requests: 0, aborted: 0, rejected: 0, tokens: 0, last_sleep_ms: null as number | null, last_sleep_level: null as number | null, last_wake_ms: null as number | null, last_answer_ms: null as number | null };
  const say = (msg: string) => process.stdout.write(`demo-model ${o.model}: ${msg}\n`);

  const finishLoading = () => {
    if (o.neverReady) return say('never becoming ready (--never-ready)');
    arena.allocate(o.memoryBytes);
    state = 'ready';
    stats.ready_at = now();
    say(`ready on port ${o.port}`);
  };
  if (o.failStart !== undefined) {
    setTimeout(() => {
      process.stderr.write(`demo-model ${o.model}: simulated start failure (--fail-start ${o.failStart})\n`);
      process.exit(o.failStart);
    }, o.loadTimeMs / 2);
  } else {
    setTimeout(finishLoading, o.loadTimeMs);
    // A progress bar the way vLLM draws one while it loads its shards (the hub reads it from the log).
    const shards = 4;
    const bar = (i: number) => process.stdout.write(`Loading demo weights: ${String(Math.round((i / shards) * 100)).padStart(3)}% Completed | ${i}/${shards}\n`);
    if (!o.neverReady && o.loadTimeMs >= 100) {
      bar(0);
      for (let i = 1; i < shards; i++) setTimeout(() => bar(i), (o.loadTimeMs * i) / shards).unref();
    }
  }
  if (o.ignoreSigterm) process.on('SIGTERM', () => say('ignoring SIGTERM (--ignore-sigterm)'));

  // One token's time, counted; --crash-after ends the process here, mid-answer like a real crash.
  const step = async (token: string) => {
    if (o.tokenRate > 0) await delay(1000 / o.tokenRate);
    stats.tokens++;
    if (o.crashAfter !== undefined && stats.tokens >= o.crashAfter) {
      process.stderr.write(`demo-model ${o.model}: crashing after ${stats.tokens} tokens (--crash-after)\n`);
      // Let what was already written reach the client, like a real server dying mid-stream.
      setTimeout(() => process.exit(1), 20);
      await new Promise(() => {});
    }
    return token;
  };
  const watch = (res: ServerResponse) => {
    let aborted = false;
    res.on('close', () => { if (!res.writableFinished) { aborted = true; stats.aborted++; } });
    return () => aborted;
  };
  const gen: Generator = { model: o.model, defaultMaxTokens: o.maxTokens, step, watch };

  const stat = (): DemoStats => ({ pid: process.pid, model: o.model, state, ...stats, allocated_bytes: arena.bytes, rss: process.memoryUsage.rss() });

  const server = createServer(async (req, res) => {
    try {
      await route(req, res);
    } catch (err) {
      const path = new URL(req.url ?? '/', 'http://demo').pathname;
      if (!res.headersSent) sendError(res, path, 400, 'invalid_request', `demo-model could not handle the request: ${(err as Error).message}`);
      else res.destroy();
    }
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const url = new URL(req.url ?? '/', 'http://demo');
    const body = await readBody(req);
    const key = `${req.method} ${url.pathname}`;
    switch (key) {
      case 'GET /health':
        return send(res, state === 'loading' ? 503 : 200, { status: state === 'loading' ? 'loading' : state === 'ready' ? 'ok' : state });
      case 'GET /demo/stats':
        return send(res, 200, stat());
      case 'GET /metrics':
        return demoMetrics(res, stat());
      case 'GET /is_sleeping':
        return send(res, 200, { is_sleeping: state === 'sleeping' || state === 'waking' });
      case 'POST /sleep':
        if (state === 'ready') {
          const began = performance.now();
          state = 'sleeping';
          await arena.release();
          stats.last_sleep_level = Number(url.searchParams.get('level') ?? 1);
          stats.last_sleep_ms = performance.now() - began;
          say('sleeping, memory freed');
        }
        return send(res, 200, {});
      case 'POST /wake_up':
        if (state === 'sleeping') {
          state = 'waking';
          const began = performance.now();
          await delay(o.wakeTimeMs ?? o.loadTimeMs);
          arena.allocate(o.memoryBytes);
          state = 'ready';
          stats.last_wake_ms = performance.now() - began;
          say('awake, memory allocated');
        }
        return send(res, 200, {});
      case 'GET /demo/echo':
      case 'POST /demo/echo':
      case 'POST /v1/echo':
        return send(res, 200, { method: req.method, path: req.url, headers: req.headers, body: body.toString('utf8') });
    }
    if (state !== 'ready') {
      stats.rejected++;
      return sendError(res, url.pathname, 503, 'model_not_ready', `model ${o.model} is ${state}; retry when GET /health answers 200`);
    }
    stats.requests++;
    res.once('finish', () => { stats.last_answer_ms = performance.now() - arrived; });
    // A server without these APIs answers 404, as llama-server or an older vLLM does.
    const off = (o.responses === false && url.pathname === '/v1/responses') || (o.messages === false && isAnthropicPath(url.pathname));
    if (off) return sendError(res, url.pathname, 404, 'not_found', `demo-model has no ${key} (started with --no-${o.responses === false && url.pathname === '/v1/responses' ? 'responses' : 'messages'})`);
    switch (key) {
      case 'GET /v1/models':
        return send(res, 200, { object: 'list', data: [{ id: o.model, object: 'model', created: Math.floor(stats.started_at / 1000), owned_by: 'modelhub-demo' }] });
      case 'POST /v1/chat/completions':
        return complete(req, res, JSON.parse(body.toString('utf8')), 'chat');
      case 'POST /v1/completions':
        return complete(req, res, JSON.parse(body.toString('utf8')), 'text');
      case 'POST /v1/embeddings':
        return embeddings(res, JSON.parse(body.toString('utf8')));
      case 'POST /v1/responses':
        return responses(gen, res, JSON.parse(body.toString('utf8')));
      case 'POST /v1/messages':
        return messages(gen, res, JSON.parse(body.toString('utf8')));
      case 'POST /v1/messages/count_tokens':
        return countMessageTokens(res, JSON.parse(body.toString('utf8')));
      case 'POST /v1/audio/transcriptions':
      case 'POST /v1/audio/translations':
        // Proves the multipart body arrived byte for byte.
        return send(res, 200, { text: `${o.model} heard ${body.length} bytes`, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    }
    sendError(res, url.pathname, 404, 'not_found', `demo-model has no ${key}`);
  }

  async function complete(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, kind: 'chat' | 'text'): Promise<void> {
    const requested = body.max_completion_tokens ?? body.max_tokens;
    const max = Number(requested ?? o.maxTokens);
    // The request's own limit ends the reply ("length"); without one it ends by itself ("stop").
    const finish = requested === undefined ? 'stop' : 'length';
    const prompt = promptOf(body);
    const tokens = replyTokens(o.model, prompt, Math.max(1, Math.min(max, 4096)));
    const usage = { prompt_tokens: countTokens(prompt), completion_tokens: tokens.length, total_tokens: countTokens(prompt) + tokens.length };
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${Math.random().toString(36).slice(2)}`;
    const created = Math.floor(Date.now() / 1000);
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const left = watch(res);
    if (kind === 'chat' && o.toolCalls && wantsToolCall(body)) return toolCall(res, body, { id, created, model: o.model, usage: { ...usage, completion_tokens: 8, total_tokens: usage.prompt_tokens + 8 } });

    if (body.stream !== true) {
      let text = '';
      for (const t of tokens) { if (left()) return; text += await step(t); }
      const choice = kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: text, ...(o.reasoning ? { reasoning_content: o.reasoning } : {}) }, finish_reason: finish, logprobs: null }
        : { index: 0, text, finish_reason: finish, logprobs: null };
      return send(res, 200, { id, object, created, model: o.model, choices: [choice], usage });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const event = (choices: unknown[], extra: object = {}) =>
      res.write(`data: ${JSON.stringify({ id, object: chunkObject, created, model: o.model, choices, ...extra })}\n\n`);
    if (kind === 'chat' && o.reasoning) event([{ index: 0, delta: { role: 'assistant', content: null, reasoning_content: o.reasoning }, finish_reason: null }]);
    for (const [i, t] of tokens.entries()) {
      if (left()) return;
      const text = await step(t);
      const last = i === tokens.length - 1 ? finish : null;
      event([kind === 'chat' ? { index: 0, delta: i === 0 ? { role: 'assistant', content: text } : { content: text }, finish_reason: last } : { index: 0, text, finish_reason: last }]);
    }
    if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) event([], { usage });
    res.end('data: [DONE]\n\n');
  }

  function embeddings(res: ServerResponse, body: Record<string, unknown>): void {
    const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input ?? '')];
    const dim = typeof body.dimensions === 'number' ? body.dimensions : o.embeddingDim;
    const data = inputs.map((text, index) => {
      const vector = embed(text, dim);
      const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
      return { object: 'embedding', index, embedding };
    });
    const tokens = inputs.reduce((n, t) => n + countTokens(t), 0);
    send(res, 200, { object: 'list', data, model: o.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      say(`listening on http://${o.host}:${o.port} (pid ${process.pid}), loading for ${o.loadTimeMs}ms`);
      resolve(server);
    });
  });
}
