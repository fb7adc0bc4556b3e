// The board's search box, state filter and sort (views/partials/toolbar.eta), for app.js: the board
// narrows as the operator types, and the query stays in the URL, so a reload shows the same view.
// Without this script the same form is sent and the server filters (lib/http/dashboard/board-query.ts).

const onModelPage = document.getElementById('board')?.dataset.page === 'model';

const searchBox = document.getElementById('board-q');
const stateBox = document.getElementById('board-state');

/** The same rule as the server's (lib/http/dashboard/board-query.ts, matches). */
export function matches(el) {
  const q = searchBox?.value.trim().toLowerCase() ?? '';
  if (q && !(el.dataset.search ?? '').includes(q)) return false;
  const p = el.dataset.process;
  switch (stateBox?.value ?? 'all') {
    case 'running': return p === 'running';
    case 'loaded': return p === 'running' && el.dataset.memory === 'loaded';
    case 'stopped': return p === 'stopped';
    case 'failed': return p === 'failed';
    case 'grouped': return (el.dataset.group ?? '') !== '';
    default: return true;
  }
}

/** Hides what does not match, says how many do, and keeps the query in the URL (a reload shows the same). */
export function applyFilter() {
  if (!searchBox || onModelPage) return;
  const all = [...document.querySelectorAll('#models article.model, #models tr.model-row')];
  let shown = 0;
  for (const el of all) {
    el.hidden = !matches(el);
    if (!el.hidden) shown++;
  }
  const count = document.getElementById('shown-count');
  if (count) count.textContent = shown === all.length ? String(all.length) : `${shown} of ${all.length}`;
  const none = document.getElementById('no-match');
  if (none) none.hidden = !(shown === 0 && all.length > 0);
  const url = new URL(location.href);
  const q = searchBox.value.trim();
  if (q) url.searchParams.set('q', q);
  else url.searchParams.delete('q');
  if (stateBox.value !== 'all') url.searchParams.set('state', stateBox.value);
  else url.searchParams.delete('state');
  url.searchParams.delete('flash');
  if (url.href !== location.href) history.replaceState(null, '', url);
  for (const a of document.querySelectorAll('[data-view-link], #model-table th a')) {
    const link = new URL(a.href);
    for (const k of ['q', 'state']) url.searchParams.has(k) ? link.searchParams.set(k, url.searchParams.get(k)) : link.searchParams.delete(k);
    a.href = link.pathname + link.search;
  }
}

searchBox?.addEventListener('input', applyFilter);
stateBox?.addEventListener('change', applyFilter);
// A new sort is a new order from the server: the form is sent (the page is its answer).
document.getElementById('board-sort')?.addEventListener('change', (e) => e.target.form.requestSubmit());
searchBox?.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && searchBox.value) {
    searchBox.value = '';
    applyFilter();
  }
});
// "/" jumps to the search box, as on many sites.
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || !searchBox || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target instanceof HTMLElement && e.target.closest('input, textarea, select, [contenteditable]')) return;
  e.preventDefault();
  searchBox.focus();
  searchBox.select();
});
