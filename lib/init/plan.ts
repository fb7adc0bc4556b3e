// From what `hub init` found (GGUF headers, servers on PATH, the machine's RAM) to a Plan for
// render.ts and the lines that tell the user what was found and why. No I/O here.
import { basename } from 'node:path';
import type { FoundBackend } from './backends.js';
import { chooseContext, describeBytes, estimateMemory, fileStem, formatMemory, formatParameters, kvCacheBytes, nameFrom, uniqueName } from './estimate.js';
import type { GgufInfo } from './gguf-info.js';
import type { Plan, PlannedModel } from './render.js';
import type { GgufCandidate } from './scan.js';

export type Level = 'ok' | 'info' | 'warn';
export interface Said { level: Level; text: string }

export interface ReadFile { candidate: GgufCandidate; info?: GgufInfo; error?: string }

export interface PlanInput {
  folders: string[];
  files: ReadFile[];
  backends: FoundBackend[];
  /** The cap on each model's context (--context). */
  contextCap: number;
  /** The group's memory budget (--max-memory, else a share of RAM), and how it was chosen. */
  budget: { bytes: number; why: string };
  now: Date;
}

export const GROUP_NAME = 'local';

export function planConfig(input: PlanInput): { plan: Plan; said: Said[] } {
  const said: Said[] = [];
  const say = (level: Level, text: string) => said.push({ level, text });
  const llama = input.backends.find((b) => b.spec.program === 'llama-server');

  const taken = new Set<string>();
  const models: Array<PlannedModel & { generalName?: string }> = [];
  for (const { candidate, info, error } of input.files) {
    const file = candidate.path;
    if (error || !info) { say('warn', `${file}: ${error ?? 'unreadable'}; left out`); continue; }
    if (candidate.projector || info.architecture === 'clip' || info.type === 'mmproj') {
      say('info', `${file}: a multimodal projector (mmproj), not a model on its own; to use it, add --mmproj ${file} to the cmd of the model it belongs to`);
      continue;
    }
    if (info.type === 'adapter') { say('info', `${file}: a LoRA adapter, not a model; left out (llama-server takes it with --lora)`); continue; }
    if (info.tensorCount === 0) { say('info', `${file}: holds a vocabulary only, no weights; left out`); continue; }
    if (candidate.missingParts?.length) {
      say('warn', `${file}: part 1 of ${candidate.parts}, but ${candidate.missingParts.join(', ')} ${candidate.missingParts.length === 1 ? 'is' : 'are'} missing; left out`);
      continue;
    }
    if (file.includes('${')) { say('warn', `${file}: the path holds "\${", which hub.yaml would read as a placeholder; rename it to serve it`); continue; }

    const name = uniqueName(nameFrom(fileStem(basename(file))) || nameFrom(info.name ?? '') || 'model', taken);
    const { context, why } = chooseContext(info.contextLength, input.contextCap);
    const kv = info.attention ? kvCacheBytes(info.attention, context) : 0;
    const memory = estimateMemory(candidate.size, kv);
    const params = info.parameters === undefined ? undefined : typeof info.parameters === 'number' ? formatParameters(info.parameters) : info.parameters;
    const what = [info.architecture, params && `${params} parameters`, info.quantization, candidate.parts && `${candidate.parts} parts`, info.embedding && 'embeddings'].filter(Boolean).join(', ');
    const kvText = info.attention ? `${describeBytes(kv)} KV cache (${context} tokens, f16)` : 'no KV cache estimate (the header lacks the attention shape)';
    const sum = `${describeBytes(candidate.size)} file + ${kvText} + ${describeBytes(memory.margin)} margin`;
    const cmd = [llama?.path ?? 'llama-server', '-m', file, '--port', '${PORT}', '-c', String(context)];
    if (info.embedding) cmd.push('--embeddings');
    models.push({
      name,
      aliases: [],
      cmd,
      memory: memory.total,
      generalName: info.name,
      notes: [`${basename(file)}: ${what}`, `-c ${context}: ${why}`, `memory: ${sum}, rounded up`],
    });
    say('ok', `${name}: ${file} (${what}); context ${context}: ${why}; memory ${formatMemory(memory.total)} = ${sum}`);
    if (!info.attention) say('warn', `${name}: its header has no attention shape, so memory counts the file only; raise it if the model needs more`);
  }

  // general.name as an alias ("Qwen2.5 7B Instruct" → qwen2.5-7b-instruct), when it names one model only.
  const byAlias = new Map<string, number>();
  for (const m of models) { const a = nameFrom(m.generalName ?? ''); if (a) byAlias.set(a, (byAlias.get(a) ?? 0) + 1); }
  for (const m of models) {
    const a = nameFrom(m.generalName ?? '');
    if (a && a !== m.name && byAlias.get(a) === 1 && !taken.has(a)) { m.aliases.push(a); taken.add(a); }
  }

  // One group when models compete for the same RAM: it lets the hub swap them instead of running out.
  let group: Plan['group'];
  if (models.length >= 2) {
    group = { name: GROUP_NAME, maxMemory: input.budget.bytes, note: `${input.budget.why}; on_full: evict stops the least recently used idle model to make room` };
    for (const m of models) {
      if (m.memory <= input.budget.bytes) m.group = GROUP_NAME;
      else say('warn', `${m.name}: needs ${formatMemory(m.memory)}, more than the group's ${formatMemory(input.budget.bytes)}; kept outside the group (it may not fit in memory: lower its -c or use a smaller quantization)`);
    }
    say('info', `group ${GROUP_NAME}: max_memory ${formatMemory(input.budget.bytes)} (${input.budget.why}); models that do not fit together take turns`);
  } else if (models.length === 1) {
    say('info', 'one model: no group needed (a group budgets memory between models)');
    if (models[0].memory > input.budget.bytes) say('warn', `${models[0].name}: needs ${formatMemory(models[0].memory)}, more than ${formatMemory(input.budget.bytes)} (${input.budget.why}); it may not fit in memory`);
  }

  if (models.length && !llama) say('warn', 'llama-server is not on PATH: the models are written with `llama-server` and will fail to start until it is installed (README, "Real models") or its full path is put in their cmd');

  const demo = models.length === 0;
  if (demo) say('warn', `no GGUF model found in ${input.folders.join(', ') || '(no folder)'}: wrote the demo models so that the hub works now; run hub init --force with the folders that hold your .gguf files, or add models by hand (docs/backends.md)`);

  const samples = input.backends.filter((b) => b.spec.sample).map((b) => ({
    title: `${b.spec.program} found at ${b.path} (${b.spec.serves}); to serve a model with it, uncomment and fill in (docs/backends.md):`,
    lines: b.spec.sample!(b.path),
  }));

  const header = [
    `hub.yaml written by \`hub init\` on ${input.now.toISOString().slice(0, 10)} for this machine.`,
    `Folders looked at: ${input.folders.join(', ') || '(none)'}.`,
    demo
      ? 'No model was found, so the bundled demo models stand in: replace them with yours.'
      : 'Names, contexts and memory were read from each GGUF header (how: docs/init.md); every key: docs/config.md.',
  ];
  return { plan: { header, group, models: models.map(({ generalName: _, ...m }) => m), demo, samples }, said };
}
