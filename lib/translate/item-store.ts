// The output items of recent translated Responses answers, by id. The Vercel AI SDK sends an earlier
// answer's message back as {"type": "item_reference", "id"} (it assumes the server stored it, as
// OpenAI's does by default); a backend without the Responses API stores nothing, so the hub keeps
// what it produced, bounded by count and size, and resolves such references from here.

const MAX_ITEMS = 2000;
const MAX_BYTES = 8 * 1024 * 1024;
/** A single item bigger than this is not kept (a reference to it then gets a clear 400). */
const MAX_ITEM_BYTES = 256 * 1024;

const items = new Map<string, { item: unknown; bytes: number }>();
let bytes = 0;

export function rememberItem(id: string, item: unknown): void {
  const size = JSON.stringify(item).length;
  if (size > MAX_ITEM_BYTES) return;
  forgetItem(id);
  items.set(id, { item, bytes: size });
  bytes += size;
  // Map order is insertion order: the oldest go first.
  for (const [old] of items) {
    if (items.size <= MAX_ITEMS && bytes <= MAX_BYTES) break;
    forgetItem(old);
  }
}

export function recallItem(id: string): unknown {
  return items.get(id)?.item;
}

function forgetItem(id: string): void {
  const had = items.get(id);
  if (!had) return;
  bytes -= had.bytes;
  items.delete(id);
}
