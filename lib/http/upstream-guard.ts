// /upstream/{model}/{path} reaches a backend's own server, but not the endpoints that free or
// restore its memory (vLLM /sleep, SGLang /release_memory_occupation, ...): the hub owns those.
// A call behind its back would leave the hub's state wrong — status "loaded" while the backend
// sleeps, and every request failing until the idle timer — so it is refused before anything starts,
// unless the model sets upstream_control: true. Each backend adapter lists its own paths.
import type { Context } from 'koa';
import { HubError } from '../errors.js';
import type { Controller } from '../scheduler/controller.js';

const UPSTREAM = /^\/upstream\/([^/]+)(\/.*)?$/;

/** Throws the refusal for a memory-control path of a model whose memory the hub manages. */
export function upstreamCheck(controller: Controller): (ctx: Context) => void {
  return (ctx) => {
    const match = UPSTREAM.exec(ctx.path);
    if (match) {
      const m = controller.resolve(decode(match[1]));
      // Only where the hub manages the memory: a remote server, or one without memory control, is left alone.
      const paths = m && m.hasMemoryControl && !m.config.upstreamControl ? m.adapter.memory!.paths : [];
      const path = normalize(match[2] ?? '/');
      if (paths.some((p) => p.toLowerCase() === path)) {
        throw new HubError(
          'forbidden',
          `${ctx.method} /upstream/${match[1]}${match[2] ?? ''} is refused: the hub owns the memory of model ${m!.name}, and ${path} would change it behind the hub's back. ` +
            `Use \`hub unload-model ${m!.name}\` / \`hub load-model ${m!.name}\`, or POST /hub/api/models/${encodeURIComponent(m!.name)}/unload (or /load); ` +
            `to allow it anyway, set models.${m!.name}.upstream_control: true`,
        );
      }
    }
  };
}

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // the route answers the malformed escape
  }
};

/**
 * The path as the backend's router will see it: percent-escapes decoded (Starlette routes on the
 * decoded path), repeated slashes and dot segments resolved, no trailing slash, lower case (so
 * that no spelling gets past the check; no backend has two endpoints differing only in case).
 */
export function normalize(raw: string): string {
  const segments: string[] = [];
  for (const s of decode(raw).split('/')) {
    if (s === '..') segments.pop();
    else if (s !== '' && s !== '.') segments.push(s);
  }
  return `/${segments.join('/')}`.toLowerCase();
}
