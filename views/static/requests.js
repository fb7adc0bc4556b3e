// The request log page (/hub/requests), live: each request the hub finishes arrives on the events
// stream the rest of the dashboard follows (/hub/api/events, event `request`) and is added at the top
// when it passes the page's filters (the same ones the server applied, kept on the table). Without
// this script the page is the server's rendering, and the filter form reloads it.

const table = document.getElementById('requests');
const body = table.tBodies[0];
const live = document.getElementById('live');
// data-filter-*: the page's own (app.js gives data-since another meaning).
const filter = { model: table.dataset.filterModel, status: table.dataset.filterStatus };
const limit = Number(table.dataset.filterLimit) || 200;
const sinceText = table.dataset.filterSince;
const since = sinceText === '' ? -Infinity : /^\d+$/.test(sinceText) ? Number(sinceText) : Date.parse(sinceText);

function setLive(state, text) {
  if (!live) return;
  live.dataset.state = state;
  live.querySelector('.live-text').textContent = text;
}

function passes(r, at) {
  if (filter.model && r.model !== filter.model) return false;
  const s = filter.status;
  if (/^\d{3}$/.test(s) && r.status !== Number(s)) return false;
  if (/^\dxx$/i.test(s) && Math.floor(r.status / 100) !== Number(s[0])) return false;
  return at >= since;
}

const ms = (v) => (v === undefined || v === null ? '' : `${v} ms`);
/** Waiting for the model's start and for a turn, together (the server's rows: wait()). */
const wait = (r) => (r.queue_ms == null && r.cold_start_ms == null ? '' : `${(r.queue_ms ?? 0) + (r.cold_start_ms ?? 0)} ms`);

function tokensPerSecond(r) {
  if (!r.tokens_out) return '';
  const busy = r.ms - (r.queue_ms ?? 0) - (r.cold_start_ms ?? 0);
  return busy > 0 ? String(Math.round((r.tokens_out / busy) * 10000) / 10) : '';
}

/** The same cells as the server's rows (views/requests.eta), built as text (never as HTML). */
function row(r, at) {
  const time = new Date(at).toISOString();
  const tr = document.createElement('tr');
  const cell = (text, className) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    tr.append(td);
    return td;
  };
  const t = document.createElement('time');
  t.dateTime = time;
  t.textContent = time.slice(11, 23);
  cell('').append(t);
  cell(r.model ?? '');
  cell(`${r.method} ${r.path}`);
  cell(r.key ?? '');
  cell(String(r.status), `s${Math.floor(r.status / 100)}xx`);
  cell(wait(r));
  cell(ms(r.ttfb_ms));
  cell(ms(r.ms));
  cell(r.tokens_in === undefined && r.tokens_out === undefined ? '' : `${r.tokens_in ?? '?'} / ${r.tokens_out ?? '?'}`);
  cell(tokensPerSecond(r));
  const link = document.createElement('a');
  link.href = `/hub/api/requests/${encodeURIComponent(r.id)}`;
  link.textContent = r.id.slice(0, 8);
  cell('').append(link);
  return tr;
}

function add(r) {
  const at = Date.now() - r.ms;
  if (!r.model || !passes(r, at)) return;
  document.getElementById('requests-empty')?.remove();
  body.prepend(row(r, at));
  while (body.rows.length > limit) body.lastElementChild.remove();
}

let source;
function connect() {
  setLive('connecting', 'connecting…');
  source = new EventSource('/hub/api/events');
  source.addEventListener('open', () => setLive('live', 'live'));
  source.addEventListener('request', (e) => add(JSON.parse(e.data)));
  source.addEventListener('unauthorized', () => {
    source.close();
    setLive('ended', 'logged out');
  });
  source.addEventListener('lagging', () => {
    // Requests were missed: the server's list is the complete one.
    source.close();
    location.reload();
  });
  source.addEventListener('error', () => {
    if (source.readyState !== EventSource.CLOSED) return setLive('connecting', 'reconnecting…');
    setLive('down', 'not following (reload the page)');
  });
}

connect();
