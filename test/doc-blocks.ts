// The fenced blocks of a Markdown file, and the convention the docs follow (README and docs/):
//   ```yaml / ```yml                 a hub config: must pass `hub check`
//   ```sh ```bash ```shell ```zsh     runnable against a hub started from the shipped hub.yaml on
//   ```js ```javascript ```mjs        127.0.0.1:8080 (the test rewrites that address to its own hub)
//   ```console                        a terminal transcript (`$ ` prompts plus output): not run
//   anything else (```text, ```ini, ```json, …)  shown, not run
// A runnable block that cannot run in a test (needs a GPU backend, a daemon, a global install) has
// `<!-- sample: not run (reason) -->` on the line right above its fence.

export type Kind = 'config' | 'shell' | 'js' | 'other';

export interface Block {
  file: string;
  /** Line of the opening fence (1-based). */
  line: number;
  lang: string;
  kind: Kind;
  body: string;
  /** The reason given by a `<!-- sample: not run (reason) -->` marker, if any. */
  notRun?: string;
}

const KINDS: Record<string, Kind> = {
  yaml: 'config', yml: 'config',
  sh: 'shell', bash: 'shell', shell: 'shell', zsh: 'shell',
  js: 'js', javascript: 'js', mjs: 'js',
};

const FENCE = /^( *)(`{3,}|~{3,})\s*([\w+-]*)[^`]*$/;
const MARKER = /^\s*<!--\s*sample:\s*not run\s*\((.+)\)\s*-->\s*$/;

/** Every fenced block, indented ones (inside list items) included, with its indentation removed. */
export function blocksOf(file: string, text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (lines[j].trim().startsWith(fence[0].repeat(fence.length)) && lines[j].trim().replace(/[`~]/g, '') === '') break;
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
    }
    const marker = i > 0 ? MARKER.exec(lines[i - 1]) : null;
    const name = lang.toLowerCase();
    blocks.push({ file, line: i + 1, lang: name, kind: KINDS[name] ?? 'other', body: body.join('\n') + '\n', notRun: marker?.[1] });
    i = j;
  }
  return blocks;
}

/** What is wrong with a block by the convention alone (before anything runs), or undefined. */
export function conventionProblem(b: Block): string | undefined {
  if (b.kind === 'shell' && /^\$ /m.test(b.body)) {
    return 'has a `$ ` prompt: a transcript belongs in a ```console block; a runnable ```sh block holds only commands';
  }
  if (b.kind === 'shell' && b.notRun === undefined && /(^|[;&|]\s*)(npm|pnpm|yarn)\s+(install|i|ci|add)\b/m.test(b.body)) {
    return 'installs packages: mark it <!-- sample: not run (reason) --> (a test must not install anything)';
  }
  if (b.notRun !== undefined && b.kind !== 'shell' && b.kind !== 'js' && b.lang !== 'python' && b.lang !== 'py') {
    return `has a "sample: not run" marker, but a \`\`\`${b.lang || '(no language)'} block never runs; drop the marker`;
  }
  return undefined;
}

/** The sample pointed at another hub: 127.0.0.1:8080 / localhost:8080 become `hostPort`. */
export const retarget = (body: string, hostPort: string) => body.replace(/\b(127\.0\.0\.1|localhost):8080\b/g, hostPort);
