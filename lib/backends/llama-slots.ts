// keep_cache for llama-server: its slots' KV cache (the prompts it has already evaluated) written to
// files before the hub stops the process, and read back into the next process before it gets its
// first request, so a conversation that comes back after a swap is not evaluated again.
//
// llama-server does the work (`POST /slots/{id}?action=save|restore` with a file name inside its
// --slot-save-path); the hub picks the slots, names the files and bounds them. Nothing here throws:
// a save or restore that fails is reported in the result, the caller logs it, and the model serves
// cold. A cache is only worth restoring into a process launched the same way, so each folder records
// the launch settings its files were saved under (llama-slot-files.ts, which also makes the folder).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_PROBE_BODY, probe, type Endpoint } from './adapter.js';
import { removeSlotFiles, slotFiles, type SlotCache, type SlotFile } from './llama-slot-files.js';

// What the caller needs besides saving and restoring, in one import.
export { clearSavedCache, prepareSlotCache, type PreparedSlotCache, type SlotCache } from './llama-slot-files.js';

export interface SlotResult {
  /** Slots whose cache was written (saveSlots) or read back (restoreSlots); 0 when none. */
  count: number;
  /** Tokens in them. */
  tokens: number;
  /** How long it took, in ms. */
  ms: number;
  /** What went wrong, for the log: set when some or all of it failed. */
  error?: string;
}

export interface SlotOptions {
  /** The whole save or restore must finish within this (each call gets what is left). Default 60 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
/** GET /slots is a small JSON list: answered at once by a server that is up. */
const LIST_TIMEOUT_MS = 10_000;
/**
 * Before the hub stops the process: writes the slots that hold a prompt, the most recently used
 * first, at most keep_cache_max of them; then removes the files of earlier saves. When nothing could
 * be saved the earlier files stay (they still describe a prefix of what the process held).
 */
export async function saveSlots(endpoint: Endpoint, cache: SlotCache, options: SlotOptions = {}): Promise<SlotResult> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const result: SlotResult = { count: 0, tokens: 0, ms: 0 };
  const done = (error?: string) => Object.assign(result, { ms: Date.now() - started }, error ? { error: `saving ${cache.model}'s slots: ${error}` } : {});
  const slots = await listSlots(endpoint, deadline);
  if ('error' in slots) return done(slots.error);
  // Later than every file there, also when the clock went back.
  const earlier = await slotFiles(cache.dir).catch(() => [] as SlotFile[]);
  const generation = Math.max(Date.now(), ...earlier.map((f) => f.generation + 1));
  const errors: Failure[] = [];
  for (const slot of byRecentUse(slots.list)) {
    if (result.count >= cache.max) break;
    const filename = `slot-${generation}-${slot.id}.bin`;
    const answer = await slotAction(endpoint, slot.id, 'save', filename, deadline);
    if ('error' in answer) {
      errors.push({ slot: slot.id, text: answer.error });
      if (answer.fatal) break;
      continue;
    }
    const saved = Number(answer.body.n_saved ?? 0);
    if (saved > 0) {
      result.count++;
      result.tokens += saved;
    } else {
      await rm(join(cache.dir, filename), { force: true }).catch(() => {}); // an empty slot: nothing worth a file
    }
  }
  if (result.count > 0) await removeSlotFiles(cache.dir, (f) => f.generation !== generation).catch((err: Error) => errors.push({ text: `removing earlier files: ${err.message}` }));
  // llama-server says only "Unable to save slot" when it cannot write the file.
  const unwritable = errors.some((e) => /answered 5\d\d/.test(e.text)) ? ` (check that ${cache.dir} exists and llama-server can write there)` : '';
  return done(errors.length ? joinFailures(errors) + unwritable : undefined);
}

/**
 * After the process is ready and before its first request: reads the last save back into the
 * slots (each into the slot it came from where that exists). A file llama-server refuses is
 * removed, so that it does not fail every start.
 */
export async function restoreSlots(endpoint: Endpoint, cache: SlotCache, options: SlotOptions = {}): Promise<SlotResult> {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const result: SlotResult = { count: 0, tokens: 0, ms: 0 };
  const done = (error?: string) => Object.assign(result, { ms: Date.now() - started }, error ? { error: `restoring ${cache.model}'s slots: ${error}` } : {});
  let files: SlotFile[];
  try {
    files = await slotFiles(cache.dir);
  } catch (err) {
    return done(`cannot read ${cache.dir}: ${(err as Error).message}`);
  }
  const last = Math.max(0, ...files.map((f) => f.generation));
  files = files.filter((f) => f.generation === last).sort((a, b) => a.slot - b.slot).slice(0, cache.max);
  if (!files.length) return done();
  const slots = await listSlots(endpoint, deadline);
  if ('error' in slots) return done(slots.error);
  const errors: Failure[] = [];
  for (const [file, slot] of assignSlots(files, slots.list.map((s) => s.id))) {
    const answer = await slotAction(endpoint, slot, 'restore', file.name, deadline);
    if ('error' in answer) {
      errors.push({ slot, text: `${answer.error} (${file.name})` });
      if (answer.fatal) break;
      if (answer.status === 400) await rm(join(cache.dir, file.name), { force: true }).catch(() => {});
      continue;
    }
    const restored = Number(answer.body.n_restored ?? 0);
    if (restored > 0) {
      result.count++;
      result.tokens += restored;
    }
  }
  return done(errors.length ? joinFailures(errors) : undefined);
}

/** One line for the log: what a save or restore did. */
export function describeSlotResult(op: 'saved' | 'restored', r: SlotResult): string {
  const what = `${op} ${r.count} slot${r.count === 1 ? '' : 's'} (${r.tokens} tokens) in ${r.ms} ms`;
  return r.error ? `${what}; ${r.error}${op === 'restored' ? ' (the model serves cold)' : ''}` : what;
}

interface Slot {
  id: number;
  /** llama-server numbers tasks in order: the slot that ran the latest one was used last. */
  idTask?: number;
}

async function listSlots(endpoint: Endpoint, deadline: number): Promise<{ list: Slot[] } | { error: string }> {
  const timeoutMs = Math.min(LIST_TIMEOUT_MS, deadline - Date.now());
  if (timeoutMs <= 0) return { error: 'out of time before listing the slots' };
  try {
    const res = await probe(endpoint, '/slots', { timeoutMs });
    if (res.status !== 200) return { error: `GET /slots answered ${res.status}: ${res.body.slice(0, 200)}` };
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch (err) {
      if (Buffer.byteLength(res.body) < MAX_PROBE_BODY - 4) throw err;
      const list = slotsOfCutList(res.body);
      return list.length ? { list } : { error: `GET /slots answered more than ${MAX_PROBE_BODY} bytes, in which no slot could be read` };
    }
    if (!Array.isArray(body)) return { error: 'GET /slots did not answer a list' };
    return { list: body.filter((s) => Number.isInteger(s?.id)).map((s) => ({ id: s.id as number, idTask: Number.isInteger(s.id_task) ? (s.id_task as number) : undefined })) };
  } catch (err) {
    return { error: `GET /slots: ${(err as Error).message}` };
  }
}

/**
 * The slots of a /slots answer cut at MAX_PROBE_BODY (each slot carries its sampling settings, ~2 KiB,
 * so a server with dozens of slots answers more): the slots whose entry begins before the cut, read
 * by the way llama-server writes an entry, `{"id":N,"n_ctx":…` with its `id_task` inside. Slots after
 * the cut are left out of this save.
 */
function slotsOfCutList(text: string): Slot[] {
  const starts = [...text.matchAll(/\{"id":(\d+),"n_ctx":/g)];
  return starts.map((m, i) => {
    const task = /"id_task":(\d+)/.exec(text.slice(m.index, starts[i + 1]?.index));
    return { id: Number(m[1]), idTask: task ? Number(task[1]) : undefined };
  });
}

const byRecentUse = (slots: Slot[]): Slot[] => [...slots].sort((a, b) => (b.idTask ?? -1) - (a.idTask ?? -1) || a.id - b.id);

type ActionAnswer = { body: Record<string, unknown> } | { error: string; status?: number; fatal: boolean };

/** One save or restore. `fatal`: the server is gone, out of time, or cannot do slot actions at all. */
async function slotAction(endpoint: Endpoint, slot: number, action: 'save' | 'restore', filename: string, deadline: number): Promise<ActionAnswer> {
  const timeoutMs = deadline - Date.now();
  if (timeoutMs <= 0) return { error: 'out of time: the whole save or restore took longer than its timeout', fatal: true };
  try {
    const res = await probe(endpoint, `/slots/${slot}?action=${action}`, { method: 'POST', body: { filename }, timeoutMs });
    if (res.status < 200 || res.status >= 300) {
      return { error: `POST /slots/{id}?action=${action} answered ${res.status}: ${errorText(res.body)}`, status: res.status, fatal: res.status === 501 || res.status === 404 };
    }
    return { body: JSON.parse(res.body) as Record<string, unknown> };
  } catch (err) {
    return { error: `POST /slots/{id}?action=${action}: ${(err as Error).message}`, fatal: true };
  }
}

interface Failure {
  slot?: number;
  text: string;
}

/** "slots 0, 2: <what went wrong>; slot 3: <something else>": each distinct failure once. */
function joinFailures(failures: Failure[]): string {
  const slotsBy = new Map<string, number[]>();
  for (const f of failures) slotsBy.set(f.text, [...(slotsBy.get(f.text) ?? []), ...(f.slot === undefined ? [] : [f.slot])]);
  return [...slotsBy].map(([text, ids]) => (ids.length ? `slot${ids.length > 1 ? 's' : ''} ${ids.join(', ')}: ${text}` : text)).join('; ');
}

/** llama-server's error envelope's message, else the start of the body. */
function errorText(body: string): string {
  try {
    const message = (JSON.parse(body) as { error?: { message?: unknown } }).error?.message;
    if (typeof message === 'string') return message;
  } catch {
    // not JSON: shown as it is
  }
  return body.slice(0, 200);
}

/** Each file into the slot it was saved from when the new process has that slot, else into a free one. */
function assignSlots(files: SlotFile[], ids: number[]): Array<[SlotFile, number]> {
  const free = new Set(ids);
  const pairs: Array<[SlotFile, number]> = [];
  const rest: SlotFile[] = [];
  for (const f of files) {
    if (free.delete(f.slot)) pairs.push([f, f.slot]);
    else rest.push(f);
  }
  for (const f of rest) {
    const id = free.values().next();
    if (id.done) break;
    free.delete(id.value);
    pairs.push([f, id.value]);
  }
  return pairs;
}
