// `${env.NAME}` in hub.yaml: secrets and per-machine values come from the environment.
import { parse as parseYamlScalar } from 'yaml';
import type { RawProblem } from './validate.js';

const ENV_REF = /\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * `${env.X}` holds YAML's flow indicators ({ }): inside a flow map (`{ port: ${env.P} }`) the parser
 * would read it as a nested map. Each reference becomes a plain word before parsing (`refs` finds
 * them again) and its value after, so a reference works anywhere a scalar does and a value never
 * changes the YAML's structure.
 */
export function maskEnvRefs(text: string): { masked: string; refs: RegExp } {
  const nonce = Math.random().toString(36).slice(2, 10);
  return {
    masked: text.replace(ENV_REF, (_ref, name: string) => `hubenv-${nonce}-${name}-ref`),
    refs: new RegExp(`hubenv-${nonce}-([A-Za-z_][A-Za-z0-9_]*)-ref`, 'g'),
  };
}

/** Replaces `${env.NAME}` in every string; a value that is only a reference keeps its YAML type (`port: ${env.P}`). */
export function substituteEnv(value: unknown, at: string[], env: NodeJS.ProcessEnv, problems: RawProblem[], refs: RegExp): unknown {
  if (typeof value === 'string') {
    const whole = new RegExp(`^${refs.source}$`).exec(value);
    const out = value.replace(refs, (_ref, name: string) => {
      const v = env[name];
      if (v === undefined) problems.push({ segments: at, message: `\${env.${name}} is not set; export ${name} or change this value` });
      return v ?? '';
    });
    if (whole && env[whole[1]] !== undefined) {
      let typed: unknown;
      try {
        typed = parseYamlScalar(out);
      } catch {
        typed = out; // YAML syntax in a value is text, never structure
      }
      if (typeof typed === 'number' || typeof typed === 'boolean') return typed;
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...at, String(i)], env, problems, refs));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, [...at, k], env, problems, refs)]));
  }
  return value;
}
