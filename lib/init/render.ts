// The hub.yaml text `hub init` writes: a plan (models, a group, samples) made into YAML by hand, so
// that each model carries a comment saying what was read from its file and how its numbers were
// reached. Every value that came from outside (paths, names read from a GGUF header) is quoted or
// made a slug here; comments are stripped of line breaks and control characters.
import { formatMemory } from './estimate.js';

export interface PlannedModel {
  name: string;
  aliases: string[];
  /** argv, `${PORT}` as a placeholder. */
  cmd: string[];
  memory: number;
  group?: string;
  /** Lines of comment above the model's keys. */
  notes: string[];
}

export interface PlannedGroup { name: string; maxMemory: number; note: string }

export interface Plan {
  /** Comment lines at the top of the file. */
  header: string[];
  group?: PlannedGroup;
  models: PlannedModel[];
  /** True when no model was found and the demo models stand in. */
  demo: boolean;
  /** Commented samples for servers found on PATH that init cannot fill in (lines, indented for models:). */
  samples: Array<{ title: string; lines: string[] }>;
}

const comment = (text: string) => `# ${text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')}`.trimEnd();

/** A word that reads the same plain in YAML and in a shell-style split: no quoting needed. */
const PLAIN = /^[\w@%+=:,./-]+$|^\$\{PORT\}$/;

/** `cmd:` as one readable line when every word is plain, else a YAML flow list of quoted strings. */
export function renderCmd(argv: string[]): string {
  if (argv.every((a) => PLAIN.test(a)) && !argv[0].startsWith('-')) return argv.join(' ');
  return `[${argv.map((a) => JSON.stringify(a)).join(', ')}]`;
}

const DEMO_MODELS = [
  '  demo-small:',
  '    # the bundled demo backend: a real OpenAI-compatible server with made-up answers (docs/demo-backend.md)',
  '    backend: demo',
  '    cmd: ${HUB} demo-model --port ${PORT} --model ${MODEL} --load-time 300ms --token-rate 200 --memory 64MiB',
  '    memory: 64MiB',
  '    aliases: [gpt-4o-mini]',
  '  demo-large:',
  '    backend: demo',
  '    cmd: ${HUB} demo-model --port ${PORT} --model ${MODEL} --load-time 2500ms --token-rate 30 --memory 512MiB',
  '    memory: 512MiB',
  '    aliases: [gpt-4o]',
];

export function renderConfig(plan: Plan): string {
  const out: string[] = [...plan.header.map(comment)];
  out.push('listen: { host: 127.0.0.1, port: 8080 }');
  out.push('state_dir: ~/.local/state/modelhub        # logs go to <state_dir>/logs', '');
  out.push('defaults:');
  if (plan.demo) {
    out.push('  start_timeout: 60s', '  idle: { unload_after: 5m, stop_after: 30m }');
  } else {
    out.push('  start_timeout: 5m                   # big weights take a while to read from disk');
    out.push('  # llama-server has no memory control: unloading it means stopping it, which frees its memory');
    out.push('  idle: { unload_after: 15m, stop_after: 15m }');
  }
  if (plan.group) {
    out.push('', 'groups:', `  ${comment(plan.group.note)}`);
    out.push(`  ${plan.group.name}: { max_memory: ${formatMemory(plan.group.maxMemory)}, on_full: evict }`);
  }
  out.push('', 'models:');
  if (plan.demo) out.push(...DEMO_MODELS);
  plan.models.forEach((m, i) => {
    if (i > 0) out.push('');
    out.push(`  ${m.name}:`);
    for (const note of m.notes) out.push(`    ${comment(note)}`);
    out.push('    backend: llama-cpp', `    cmd: ${renderCmd(m.cmd)}`);
    if (m.group) out.push(`    group: ${m.group}`);
    out.push(`    memory: ${formatMemory(m.memory)}`);
    if (m.aliases.length) out.push(`    aliases: [${m.aliases.join(', ')}]`);
  });
  for (const sample of plan.samples) {
    out.push('', `  ${comment(sample.title)}`);
    for (const line of sample.lines) out.push(`  # ${line}`);
  }
  return `${out.join('\n')}\n`;
}
