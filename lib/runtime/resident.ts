// How much host memory a backend holds, as the kernel counts it: VmRSS from /proc/<pid>/status (Linux),
// summed over the backend's whole process tree. Servers such as vLLM fork workers that hold most of
// the memory, so the pid the hub started is only part of the answer. GPU memory is not visible here
// (see gpu.ts). Sync and cheap: status reads call it, a few small /proc reads per process.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** A tree larger than this is cut: a backend with hundreds of processes is not what we measure. */
export const MAX_TREE = 256;

/** Resident bytes of `pid` alone, or undefined where /proc is not there or the process is gone. */
export function residentBytes(pid: number): number | undefined {
  try {
    const line = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return line ? Number(line[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resident bytes of `pid` and every process below it, or undefined when `pid` itself cannot be read.
 * Pages a forked child still shares with its parent count in both (RSS, not PSS): reading PSS
 * (smaps_rollup) walks every page table and is too slow for a status read.
 */
export function treeResidentBytes(pid: number): number | undefined {
  const own = residentBytes(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const child of processTree(pid).slice(1)) total += residentBytes(child) ?? 0;
  return total;
}

const recent = new Map<number, { at: number; bytes: number | undefined }>();

/**
 * treeResidentBytes, reused for a second: every status read asks for every running model, and a
 * dashboard or `hub watch` reads often (a tree costs a few /proc reads per thread of each process).
 */
export function recentTreeResidentBytes(pid: number, maxAgeMs = 1000): number | undefined {
  const now = Date.now();
  const hit = recent.get(pid);
  if (hit && now - hit.at < maxAgeMs) return hit.bytes;
  if (recent.size > 4096) recent.clear(); // pids of ended processes: bounded, not tracked
  const bytes = treeResidentBytes(pid);
  recent.set(pid, { at: now, bytes });
  return bytes;
}

/**
 * `pid` and its descendants, parents before children, at most MAX_TREE of them. Children come from
 * /proc/<pid>/task/<tid>/children (one small read per thread); a kernel without that file
 * (CONFIG_PROC_CHILDREN off), or `scan: true`, is answered by one scan of every process's parent.
 */
export function processTree(pid: number, options: { scan?: boolean } = {}): number[] {
  const childrenOf = options.scan || !hasChildrenFile() ? scanParents() : childrenFromTasks;
  const tree = [pid];
  const seen = new Set(tree);
  for (let i = 0; i < tree.length && tree.length < MAX_TREE; i++) {
    for (const kid of childrenOf(tree[i])) {
      if (seen.has(kid) || tree.length >= MAX_TREE) continue;
      seen.add(kid);
      tree.push(kid);
    }
  }
  return tree;
}

let childrenFile: boolean | undefined;
const hasChildrenFile = () => (childrenFile ??= existsSync(`/proc/${process.pid}/task/${process.pid}/children`));

/** A process or thread that ends meanwhile has nothing to read: no children. */
function childrenFromTasks(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const kids: number[] = [];
  for (const tid of tids) {
    try {
      for (const word of readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ')) if (word.trim()) kids.push(Number(word));
    } catch {
      // the thread ended
    }
  }
  return kids;
}

/** Every process's parent, read once: a lookup of children by parent pid. */
function scanParents(): (pid: number) => number[] {
  const byParent = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    // no /proc: no children
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue;
    }
    // The command name (2nd field) is in parentheses and may hold spaces or ')': read after the last one.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = byParent.get(ppid) ?? [];
    list.push(Number(entry));
    byParent.set(ppid, list);
  }
  return (pid) => byParent.get(pid) ?? [];
}
