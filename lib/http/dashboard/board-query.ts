// The board's view, search, state filter and sort, as the page's URL query holds them (/hub?view=table
// &q=llama&state=running&sort=memory&dir=desc): read here, applied by the server (so they work without
// JavaScript and a filtered view can be bookmarked), and applied again by the page's script as the
// operator types. Filtered-out models stay in the page, `hidden`: the live page can show a model the
// moment it starts to match, without fetching the board again.
import type { ModelView } from './view.js';

export const VIEWS = ['cards', 'table'] as const;
export const STATES = ['all', 'running', 'loaded', 'stopped', 'failed', 'grouped'] as const;
export const SORTS = ['config', 'name', 'state', 'memory', 'last_used', 'requests'] as const;
export type View = (typeof VIEWS)[number];
export type StateFilter = (typeof STATES)[number];
export type Sort = (typeof SORTS)[number];

export const STATE_LABEL: Record<StateFilter, string> = { all: 'all', running: 'running', loaded: 'loaded', stopped: 'stopped', failed: 'failed', grouped: 'in a group' };
const SORT_LABEL: Record<Sort, string> = { config: 'config order', name: 'name', state: 'state', memory: 'memory', last_used: 'last used', requests: 'requests' };
/** The first click on a column sorts the way one usually wants it: the most memory, the latest use first. */
const FIRST_DIR: Record<Sort, 'asc' | 'desc'> = { config: 'asc', name: 'asc', state: 'asc', memory: 'desc', last_used: 'desc', requests: 'desc' };

export interface BoardQuery {
  view: View;
  q: string;
  state: StateFilter;
  sort: Sort;
  dir: 'asc' | 'desc';
}

const one = (v: unknown) => (Array.isArray(v) ? v[0] : v);
const pick = <T extends string>(list: readonly T[], v: unknown, fallback: T): T => (list.includes(one(v) as T) ? (one(v) as T) : fallback);

/** The query as the page understands it; an unknown value falls back to the default (a page, not an API). */
export function boardQuery(query: Record<string, unknown>): BoardQuery {
  const sort = pick(SORTS, query.sort, 'config');
  const q = one(query.q);
  return {
    view: pick(VIEWS, query.view, 'cards'),
    q: typeof q === 'string' ? q.trim().slice(0, 200) : '',
    state: pick(STATES, query.state, 'all'),
    sort,
    dir: pick(['asc', 'desc'] as const, query.dir, FIRST_DIR[sort]),
  };
}

/** The URL of the board with this query (defaults left out, so plain /hub stays plain). */
export function boardUrl(q: BoardQuery): string {
  const p = new URLSearchParams();
  if (q.view !== 'cards') p.set('view', q.view);
  if (q.q) p.set('q', q.q);
  if (q.state !== 'all') p.set('state', q.state);
  if (q.sort !== 'config') p.set('sort', q.sort);
  if (q.sort !== 'config' && q.dir !== FIRST_DIR[q.sort]) p.set('dir', q.dir);
  const s = p.toString();
  return s ? `/hub?${s}` : '/hub';
}

/** Whether a model passes the search and the state filter (app.js's `matches` is the same rule). */
export function matches(m: ModelView, q: BoardQuery): boolean {
  if (q.q && !m.search.includes(q.q.toLowerCase())) return false;
  switch (q.state) {
    case 'running': return m.process === 'running';
    case 'loaded': return m.process === 'running' && m.memory === 'loaded';
    case 'stopped': return m.process === 'stopped';
    case 'failed': return m.process === 'failed';
    case 'grouped': return m.group !== '';
    default: return true;
  }
}

/** Running and loaded first, then the states a model passes through, failed, stopped last. */
function stateRank(m: ModelView): number {
  if (m.process === 'running') return m.memory === 'loaded' ? 0 : m.memory === 'unloaded' ? 2 : 1;
  return { starting: 3, stopping: 4, failed: 5, stopped: 6 }[m.process] ?? 7;
}

const KEY: Record<Exclude<Sort, 'config'>, (m: ModelView) => number | string> = {
  name: (m) => m.name,
  state: stateRank,
  memory: (m) => m.memoryBytes,
  last_used: (m) => (m.lastUsedAt ? Date.parse(m.lastUsedAt) : -Infinity),
  requests: (m) => m.requests,
};

export interface SortLink {
  key: Sort;
  label: string;
  href: string;
  /** aria-sort of its column header. */
  ariaSort: 'ascending' | 'descending' | 'none';
}

export interface Board {
  query: BoardQuery;
  models: Array<ModelView & { hidden: boolean }>;
  shown: number;
  total: number;
  sortLinks: SortLink[];
  viewLinks: Array<{ view: View; label: string; href: string; current: boolean }>;
  states: Array<{ value: StateFilter; label: string }>;
  /** The hidden fields the search form carries, so a search keeps the view. */
  keep: Array<{ name: string; value: string }>;
}

/** The models in the query's order, each marked hidden or not, and the links of the view's controls. */
export function board(models: ModelView[], q: BoardQuery): Board {
  const sorted = [...models];
  if (q.sort !== 'config') {
    const key = KEY[q.sort];
    const sign = q.dir === 'asc' ? 1 : -1;
    // Ties keep the config order (Array.prototype.sort is stable).
    sorted.sort((a, b) => {
      const ka = key(a), kb = key(b);
      return (ka < kb ? -1 : ka > kb ? 1 : 0) * sign;
    });
  }
  const rows = sorted.map((m) => ({ ...m, hidden: !matches(m, q) }));
  const shown = rows.filter((m) => !m.hidden).length;
  return {
    query: q,
    models: rows,
    shown,
    total: rows.length,
    sortLinks: SORTS.map((key) => {
      const current = q.sort === key;
      const dir = current ? (q.dir === 'asc' ? 'desc' : 'asc') : FIRST_DIR[key];
      return { key, label: SORT_LABEL[key], href: boardUrl({ ...q, sort: key, dir }), ariaSort: current && key !== 'config' ? (q.dir === 'asc' ? 'ascending' : 'descending') : 'none' };
    }),
    viewLinks: VIEWS.map((view) => ({ view, label: view === 'cards' ? 'Cards' : 'Table', href: boardUrl({ ...q, view }), current: q.view === view })),
    states: STATES.map((value) => ({ value, label: STATE_LABEL[value] })),
    // A sort picked in the form starts in its usual direction; the table's headers flip it.
    keep: q.view !== 'cards' ? [{ name: 'view', value: q.view }] : [],
  };
}
