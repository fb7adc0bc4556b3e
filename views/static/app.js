// modelhub dashboard, progressively enhanced. Without this script every button is a form (POST →
// 303 → flash). With it: buttons call the JSON control API and show a toast; model cards follow
// /hub/api/events live (the server renders each card again as a fragment, so it looks the same);
// times tick; the model page follows the log. No framework, no build step.

import { applyFilter, matches } from './board.js';

const board = document.getElementById('board');
const live = document.getElementById('live');
const toasts = document.getElementById('toasts');
const onModelPage = board?.dataset.page === 'model';
/** Actions under way, by "model action": their buttons stay disabled when the card is redrawn. */
const pending = new Set();
const DONE = { start: 'started', stop: 'stopped', load: 'loaded', unload: 'unloaded' };

// ---- small helpers -----------------------------------------------------------------------------

function ago(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function toast(text, kind = 'ok') {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = text; // never innerHTML: messages quote model names and backend output
  toasts.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 12000 : 5000);
}

function setLive(state, text) {
  if (!live) return;
  live.dataset.state = state;
  live.querySelector('.live-text').textContent = text;
}

/** A model's card, or its row in the table view. */
const cardOf = (name) => [...document.querySelectorAll('article.model, tr.model-row')].find((el) => el.dataset.model === name);
const boardView = () => document.getElementById('models')?.dataset.view ?? 'cards';

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-since]')) el.textContent = ago(now - Date.parse(el.dataset.since));
  for (const el of document.querySelectorAll('[data-ago]')) el.textContent = `${ago(now - Date.parse(el.dataset.ago))} ago`;
  for (const el of document.querySelectorAll('[data-until]')) {
    const left = Date.parse(el.dataset.until) - now;
    el.textContent = left > 0 ? `${el.dataset.prefix ?? ''}${ago(left)}` : (el.dataset.done ?? 'now');
  }
}

async function errorText(res) {
  try {
    const body = await res.json();
    return body.error?.message ?? `${res.status} ${res.statusText}`;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

/** Whether `res` says the session ended (401); if so the page says it, once, and stops following. */
function sessionGone(res) {
  if (res.status !== 401) return false;
  sessionEnded();
  return true;
}

let ended = false;

// A logout in one tab ends the others' at once (the hub's stream tells them too, within a second).
const tabs = 'BroadcastChannel' in window ? new BroadcastChannel('modelhub-session') : null;
tabs?.addEventListener('message', (e) => { if (e.data === 'logged-out' && board) sessionEnded(); });
document.addEventListener('submit', (e) => { if (e.target instanceof HTMLFormElement && e.target.matches('form.logout')) tabs?.postMessage('logged-out'); });

/**
 * The session is gone (the hub restarted, a logout in another tab, a reload that changed the admin
 * keys): retrying cannot help until the operator logs in again, so nothing retries, and a message
 * that stays (not a toast) says so with a link back to this page through the login form.
 */
function sessionEnded() {
  if (ended) return;
  ended = true;
  source?.close();
  setLive('ended', 'logged out');
  const note = document.createElement('div');
  note.className = 'flash flash-error session-ended';
  note.setAttribute('role', 'alert');
  const link = document.createElement('a');
  link.href = `/hub/login?next=${encodeURIComponent(location.pathname)}`;
  link.textContent = 'Log in again';
  note.append('Your dashboard session has ended (the hub restarted, you logged out elsewhere, or its admin keys changed), so this page no longer follows the hub. ', link);
  document.querySelector('main')?.prepend(note);
}

// ---- redrawing cards from fragments ------------------------------------------------------------

/** Redraws to come, by model: when, and its timer. */
const timers = new Map();

/** Redraws a model's card soon; bursts of events for one model become one fetch (the soonest asked for). */
function refresh(name, delay = 120) {
  const at = Date.now() + delay;
  const pending = timers.get(name);
  if (pending && pending.at <= at) return;
  if (pending) clearTimeout(pending.timer);
  timers.set(name, { at, timer: setTimeout(() => {
    timers.delete(name);
    void redraw(name);
  }, delay) });
}

/**
 * A finished request changes a card's counters only. The first after a quiet spell shows at once;
 * under steady traffic a card is fetched again for its requests at most every REQUEST_REDRAW_MS (a
 * fetch a second per busy model cost more than the rest of the page's live updates together). State
 * changes and load progress still redraw at once.
 */
const REQUEST_REDRAW_MS = 10_000;
/** When each model's card is (or was last) redrawn for its requests. */
const requestRedrawAt = new Map();
function refreshAfterRequest(name) {
  const now = Date.now();
  const last = requestRedrawAt.get(name) ?? -Infinity;
  const at = last > now ? last : Math.max(now + 400, last + REQUEST_REDRAW_MS);
  requestRedrawAt.set(name, at);
  refresh(name, at - now); // a redraw already due sooner (a state change) takes this request along
}

/** Where focus was inside an element about to be redrawn, as a selector that finds its like in the new one. */
function focusKey(el) {
  if (el.matches('button[data-action]')) return `button[data-action="${el.dataset.action}"]`;
  if (el.matches('summary')) return 'summary';
  if (el.matches('a[href]')) return `a[href="${CSS.escape(el.getAttribute('href'))}"]`;
  return null;
}

/** Actions started from a focused button, by model: focus goes back to the button (or its card) after redraws. */
const focusAfter = new Map();

function swap(old, html) {
  const tpl = document.createElement('template');
  tpl.innerHTML = html; // server-rendered and escaped by the server's templates
  const next = tpl.content.firstElementChild;
  if (!next) return;
  // Keep the keyboard where it was: a redraw must not drop focus to the page's top, nor close what was open.
  const active = document.activeElement;
  const model = old.dataset.model;
  const wanted = focusAfter.get(model);
  const hadFocus = (active && active !== document.body && old.contains(active)) || (wanted && wanted.until > Date.now() && (!active || active === document.body));
  const key = active && old.contains(active) ? focusKey(active) : wanted ? `button[data-action="${wanted.action}"]` : null;
  const open = new Set([...old.querySelectorAll('details[open]')].map((d) => d.dataset.key ?? ''));
  old.replaceWith(next);
  for (const d of next.querySelectorAll('details')) if (open.has(d.dataset.key ?? '')) d.open = true;
  if (next.matches('article.model, tr.model-row')) next.hidden = !matches(next);
  enhance(next);
  for (const form of next.querySelectorAll('form[data-api]')) {
    const button = form.querySelector('button');
    if (pending.has(`${next.dataset.model} ${button?.dataset.action}`)) disable(button, true);
  }
  if (hadFocus) {
    const target = key && next.querySelector(key);
    if (target && !target.disabled) target.focus({ preventScroll: true });
    else next.focus({ preventScroll: true });
  }
  tick();
}

async function redraw(name) {
  const card = cardOf(name);
  if (!card && !onModelPage) return redrawBoard(); // a model added by a reload
  if (!card) return;
  const query = new URLSearchParams(onModelPage ? { from: 'model' } : boardView() === 'table' ? { view: 'table' } : {});
  // The summary comes only if it changed since the one shown.
  if (summaryTag && document.getElementById('summary')) query.set('summary', summaryTag);
  const res = await fetch(`/hub/fragments/models/${encodeURIComponent(name)}${String(query) ? `?${query}` : ''}`, { headers: { accept: 'application/json' } });
  if (sessionGone(res)) return;
  if (res.status === 404 && !onModelPage) return redrawBoard(); // removed by a reload
  if (!res.ok) return;
  const { card: html, summary, summaryTag: tag } = await res.json();
  const current = cardOf(name);
  if (current) swap(current, html);
  const oldSummary = document.getElementById('summary');
  if (oldSummary && summary) {
    swap(oldSummary, summary);
    summaryTag = tag ?? '';
  }
}

/** The tag of the summary on the page, as the hub named it in a card's fragment ('' before the first). */
let summaryTag = '';

async function redrawBoard() {
  if (!board || onModelPage) return;
  const res = await fetch(`/hub/fragments/board${location.search}`, { headers: { accept: 'text/html' } });
  if (sessionGone(res) || !res.ok) return;
  // The server's own rendering of the same partials: the summary and the models, each swapped whole
  // (the search box between them keeps what is being typed).
  const tpl = document.createElement('template');
  tpl.innerHTML = await res.text();
  summaryTag = ''; // the board's summary has no tag: the next card fragment brings one
  for (const id of ['summary', 'models']) {
    const fresh = tpl.content.getElementById(id);
    const current = document.getElementById(id);
    if (fresh && current) current.replaceWith(fresh);
  }
  applyFilter();
  enhance(board);
  tick();
}

// ---- buttons -----------------------------------------------------------------------------------

function disable(button, busy) {
  if (!button) return;
  button.disabled = busy;
  button.setAttribute('aria-busy', String(busy));
}

document.addEventListener('submit', async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
  event.preventDefault();
  const button = form.querySelector('button');
  const card = form.closest('article.model');
  const model = card?.dataset.model;
  const action = button?.dataset.action ?? 'reload';
  const key = `${model} ${action}`;
  if (pending.has(key)) return;
  pending.add(key);
  if (model && document.activeElement === button) focusAfter.set(model, { action, until: Infinity });
  // A Stop while this page's own Start (or Load) of the model runs cancels it: one message says so.
  const cancels = action === 'stop' && (pending.has(`${model} start`) ? 'start' : pending.has(`${model} load`) ? 'load' : '');
  if (cancels) cancelling.add(model);
  disable(button, true);
  const started = performance.now();
  try {
    const res = await fetch(form.dataset.api, { method: 'POST', headers: { accept: 'application/json' } });
    if (sessionGone(res)) return;
    if (!res.ok) {
      if ((action === 'start' || action === 'load') && cancelling.delete(model)) return; // the Stop's message says it
      toast(`${model ? `Could not ${action} ${model}` : 'Could not reload the config'}: ${await errorText(res)}`, 'error');
      return;
    }
    if (action === 'start' || action === 'load') cancelling.delete(model);
    const body = await res.json();
    const took = ((performance.now() - started) / 1000).toFixed(1);
    if (form.dataset.kind === 'reload') {
      const changed = ['added', 'removed', 'restarted', 'updated'].filter((k) => body[k]?.length).map((k) => `${k}: ${body[k].join(', ')}`);
      toast(changed.length ? `Config reloaded. ${changed.join('; ')}.` : 'Config reloaded: nothing changed.');
      void redrawBoard();
    } else {
      toast(`${model} ${DONE[action] ?? action} in ${took} s: process ${body.process}, memory ${body.memory}.${cancels ? ` The ${cancels} under way was cancelled.` : ''}`);
    }
  } catch (err) {
    toast(`The hub did not answer (${err.message}); is it still running?`, 'error');
  } finally {
    pending.delete(key);
    disable(button, false);
    const f = model && focusAfter.get(model);
    if (f && f.action === action) f.until = Date.now() + 3000; // the redraws that follow keep it
    if (model) refresh(model, 0);
  }
});

/** Models whose Start or Load this page is cancelling with a Stop. */
const cancelling = new Set();

// ---- live events -------------------------------------------------------------------------------

let source;
let connectedOnce = false;
let retryMs = 1000;

/** Whether a model's state in a snapshot differs from what its card shows. */
const moved = (el, m) => el.dataset.process !== m.process || el.dataset.memory !== (m.process === 'stopped' || m.process === 'failed' ? 'unloaded' : m.memory) || m.in_flight > 0 || m.queued > 0;
let laggedAt = -Infinity;

function connect(text = 'connecting…') {
  if (ended) return;
  setLive('connecting', text);
  source = new EventSource('/hub/api/events');
  source.addEventListener('open', () => {
    retryMs = 1000;
    setLive('live', 'live');
  });
  source.addEventListener('status', (e) => {
    // A fresh snapshot. After a drop, events were missed: redraw everything. On the first connection the
    // page was just rendered: only the cards whose state moved in between are fetched, not the board.
    const { models } = JSON.parse(e.data);
    const first = !connectedOnce;
    connectedOnce = true;
    if (onModelPage) models.forEach((m) => cardOf(m.name) && refresh(m.name, 0));
    else if (!first || models.some((m) => !cardOf(m.name))) void redrawBoard();
    else for (const m of models) if (moved(cardOf(m.name), m)) refresh(m.name, 0);
  });
  source.addEventListener('transition', (e) => {
    const t = JSON.parse(e.data);
    refresh(t.model);
    if (onModelPage && cardOf(t.model)) addTransitionRow(t);
  });
  // The hub ends the stream with this once the session is gone (a logout elsewhere, new admin keys).
  source.addEventListener('unauthorized', () => sessionEnded());
  source.addEventListener('progress', (e) => {
    // A start or wake-up under way: the card shows its stage and bar (at most a few redraws a second).
    refresh(JSON.parse(e.data).model, 250);
  });
  source.addEventListener('request', (e) => {
    const r = JSON.parse(e.data);
    if (r.model) refreshAfterRequest(r.model);
  });
  source.addEventListener('lagging', () => {
    // The hub dropped this stream because the page fell behind, so events were lost: open a new one,
    // whose status snapshot redraws the page. At once the first time; after a pause if it keeps
    // happening (a page too slow for the hub's pace should not hammer it).
    source.close();
    const again = performance.now() - laggedAt < 30_000;
    laggedAt = performance.now();
    setLive('connecting', 'fell behind; catching up…');
    setTimeout(() => connect('fell behind; catching up…'), again ? retryMs : 0);
    if (again) retryMs = Math.min(retryMs * 2, 15000);
  });
  source.addEventListener('error', () => {
    // While the hub cannot be reached, or after a dropped stream, EventSource retries by itself.
    if (source.readyState !== EventSource.CLOSED) return setLive('connecting', 'reconnecting…');
    // The hub answered with an error instead of the stream: ask it why (EventSource cannot tell).
    void streamRefused();
  });
}

async function streamRefused() {
  let status = 0;
  try {
    status = (await fetch('/hub/api/status', { headers: { accept: 'application/json' } })).status;
  } catch {
    // unreachable now: retried below like any other refusal
  }
  if (status === 401) return sessionEnded();
  setLive('down', `disconnected; retrying in ${Math.round(retryMs / 1000)} s`);
  setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
}

function addTransitionRow(t) {
  const body = document.querySelector('#transitions tbody');
  if (!body) return;
  const row = document.createElement('tr');
  for (const text of [t.at.slice(11, 23), t.axis, `${t.from} → ${t.to}`, t.reason]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  body.prepend(row);
}

// ---- the model page's log ----------------------------------------------------------------------

const MAX_LOG_CHARS = 400_000;

async function followLog(pre) {
  const state = document.getElementById('log-state');
  const decoder = new TextDecoder();
  while (true) {
    try {
      const res = await fetch(pre.dataset.follow);
      if (sessionGone(res)) return;
      if (!res.ok || !res.body) throw new Error(await errorText(res));
      state.textContent = 'following live';
      let first = true;
      const reader = res.body.getReader();
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
        const text = decoder.decode(value, { stream: true });
        // The stream starts with the same last lines the page showed: replace them, then append
        // (a stream opened with tail=0, data-format="json", only appends).
        pre.textContent = first && !pre.dataset.format ? text : pre.textContent + (first && pre.textContent && !pre.textContent.endsWith('\n') ? '\n' : '') + text;
        first = false;
        if (pre.textContent.length > MAX_LOG_CHARS) pre.textContent = pre.textContent.slice(-MAX_LOG_CHARS / 2);
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      state.textContent = 'log stream ended; reconnecting…';
    } catch (err) {
      state.textContent = `not following (${err.message}); retrying…`;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// ---- start -------------------------------------------------------------------------------------

/** What only works with this script shows once it runs (the copy button). */
function enhance(root) {
  for (const button of root.querySelectorAll('[data-copy]')) button.hidden = false;
}

enhance(document);
document.addEventListener('click', async (event) => {
  const button = event.target.closest?.('[data-copy]');
  if (!button) return;
  const input = document.querySelector(button.dataset.copy);
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select(); // no clipboard API (not a secure context): selected for Ctrl-C
    document.execCommand?.('copy');
  }
  toast(`Copied ${input.value}`);
});

const log = document.getElementById('log');
if (log) {
  log.scrollTop = log.scrollHeight;
  void followLog(log);
}
applyFilter();
if (board) connect();
// The request log page follows the same events with its own small script.
if (document.getElementById('requests')) void import('/hub/static/requests.js');
if (document.getElementById('playground-form')) void import('/hub/static/playground.js');
setInterval(tick, 1000);
tick();
