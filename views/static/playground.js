// The model page's playground: sends the message as a streaming chat request to the hub's
// POST /hub/api/models/{name}/chat (the dashboard's own route; the session never opens /v1), shows the
// answer as its chunks arrive, then the figures: tokens/s, time to first token and the cold start
// (x-hub-cold-start-ms, sent when the model had to start for this request). Text only, never HTML.

const form = document.getElementById('playground-form');
const input = document.getElementById('playground-input');
const send = document.getElementById('playground-send');
const answer = document.getElementById('playground-answer');
const stats = document.getElementById('playground-stats');
form.hidden = false; // without this script, the page's <noscript> note says what to do instead

/** One figure of the stats line, findable by name (data-stat) and read as plain text. */
function figure(name, text) {
  const span = document.createElement('span');
  span.dataset.stat = name;
  span.textContent = text;
  return span;
}

function showStats(parts) {
  stats.replaceChildren();
  parts.forEach((p, i) => {
    if (i > 0) stats.append(' · ');
    stats.append(p);
  });
}

/** Yields each `data:` payload of a server-sent event stream (comments and blank lines skipped). */
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let end;
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 1);
      if (line.startsWith('data:')) yield line.slice(5).trim();
    }
  }
}

async function ask(text) {
  const sent = performance.now();
  const res = await fetch(form.dataset.url, {
    method: 'POST',
    credentials: 'same-origin',
    // Progress off: the answer's headers (the cold start's among them) then come once the model is ready.
    headers: { 'content-type': 'application/json', 'x-hub-progress': 'off' },
    body: JSON.stringify({ messages: [{ role: 'user', content: text }], stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) {
    const body = await res.json().catch(() => undefined);
    throw new Error(body?.error?.message ?? `the hub answered ${res.status}`);
  }
  const answered = performance.now(); // the backend has the request from here on
  const cold = res.headers.get('x-hub-cold-start-ms');
  stats.textContent = 'Streaming…';
  let first;
  let chunks = 0;
  let usage;
  for await (const data of events(res.body)) {
    if (data === '[DONE]') continue;
    const chunk = JSON.parse(data);
    if (chunk.error) throw new Error(chunk.error.message ?? 'the stream ended with an error');
    const delta = chunk.choices?.[0]?.delta?.content;
    if (delta) {
      first ??= performance.now();
      chunks++;
      answer.textContent += delta;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  const done = performance.now();
  const tokens = usage?.completion_tokens ?? chunks;
  const seconds = (done - answered) / 1000;
  showStats([
    figure('tokens', `${tokens} tokens in ${seconds.toFixed(2)} s`),
    figure('tps', `${seconds > 0 ? (tokens / seconds).toFixed(1) : '–'} tokens/s`),
    figure('ttft', `first token after ${Math.round((first ?? done) - sent)} ms`),
    figure('cold', cold === null ? 'no cold start (the model was running)' : `cold start ${cold} ms`),
  ]);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  send.disabled = true;
  answer.textContent = '';
  delete answer.dataset.state;
  stats.textContent = 'Waiting for the model (it starts if it is not running)…';
  ask(text)
    .catch((err) => {
      answer.dataset.state = 'error';
      answer.textContent = err.message;
      stats.textContent = '';
    })
    .finally(() => {
      send.disabled = false;
      send.focus();
    });
});
