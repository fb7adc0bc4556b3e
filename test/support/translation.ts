// What the translation tests share: models on demo backends without the Responses and Messages APIs
// (they answer 404 there, as llama-server and older vLLM do), and small helpers.
import { demo, getJson } from '../helpers.js';

export const MODELS = `
models:
  plain: { backend: demo, cmd: "${demo('--no-responses --no-messages --tool-calls')}" }
  forced: { backend: demo, cmd: "${demo('--tool-calls')}", translate: { responses: always, messages: always } }
  crashy: { backend: demo, cmd: "${demo('--no-responses --no-messages --token-rate 100 --crash-after 3')}" }
  thinker: { backend: demo, cmd: "${demo('--no-responses --no-messages --reasoning Pondering')}" }
  raw: { backend: demo, cmd: "${demo('--no-responses')}", translate: { responses: never } }
`;

export const weatherSchema = { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] };
export const user = (content: string) => [{ role: 'user' as const, content }];

/** How many requests the demo backend of `model` has served (404s included). */
export async function backendRequests(origin: string, model: string): Promise<number> {
  return (await getJson(`${origin}/upstream/${model}/demo/stats`)).body.requests;
}
