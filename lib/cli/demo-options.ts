// The options of `hub demo-model` (SPEC §9), apart from the server so that listing them loads nothing.
import type { Options } from 'yargs';

export const demoOptionTable: Record<string, Options> = {
  port: { type: 'number', demandOption: true, describe: 'port to listen on' },
  host: { type: 'string', default: '127.0.0.1', describe: 'address to listen on' },
  model: { type: 'string', default: 'demo', describe: 'model id it reports and names in replies' },
  'load-time': { type: 'string', default: '0ms', describe: 'how long /health answers 503 after start (e.g. 1.5s)' },
  'wake-time': { type: 'string', describe: 'how long /wake_up takes (default: load-time)' },
  'token-rate': { type: 'number', default: 0, describe: 'tokens per second when generating; 0 = as fast as possible' },
  memory: { type: 'string', default: '0', describe: 'RAM held while loaded (e.g. 256MiB); freed by POST /sleep' },
  'max-tokens': { type: 'number', default: 16, describe: 'reply length when the request sets none' },
  'embedding-dim': { type: 'number', default: 8, describe: 'length of the vectors /v1/embeddings returns' },
  'fail-start': { type: 'number', describe: 'exit with this code half-way through loading' },
  'never-ready': { type: 'boolean', default: false, describe: '/health never turns 200' },
  'crash-after': { type: 'number', describe: 'exit (code 1) after generating this many tokens in total' },
  'ignore-sigterm': { type: 'boolean', default: false, describe: 'keep running on SIGTERM (to test SIGKILL escalation)' },
  responses: { type: 'boolean', default: true, describe: 'serve /v1/responses (--no-responses: answer 404, like a server without it)' },
  messages: { type: 'boolean', default: true, describe: 'serve /v1/messages and count_tokens (--no-messages: answer 404)' },
  reasoning: { type: 'string', describe: 'chat replies carry this text as reasoning_content, before the answer (like a reasoning model)' },
  'tool-calls': { type: 'boolean', default: false, describe: 'a chat request that offers tools gets a call of the first one (unless it answers a tool result)' },
};
