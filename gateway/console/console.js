// The gateway console: watch channels, publish, look at a channel. It uses only the public HTTP
// API (the same calls as the README's curl examples), with relative URLs so it also works behind
// a path prefix. Every value from the network is shown with textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const GATEWAY_EVENTS = ['gateway.gap', 'gateway.join', 'gateway.leave', 'gateway.revoked'];
const MAX_ROWS = 500;
let source = null;

const names = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);
const token = () => $('token').value.trim();

function authHeaders() {
  return token() ? { Authorization: `Bearer ${token()}` } : {};
}

function setStatus(kind, text) {
  const status = $('status');
  status.className = `status ${kind}`;
  status.textContent = text;
}

function pretty(data) {
  try { return JSON.stringify(JSON.parse(data)); } catch { return data; }
}

function addRow(id, event, data, kind) {
  const row = document.createElement('tr');
  if (kind) row.className = kind;
  for (const text of [new Date().toLocaleTimeString(), id || '', event, data]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.append(cell);
  }
  const body = $('events').tBodies[0];
  body.prepend(row);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

function streamUrl(channels) {
  const query = new URLSearchParams();
  for (const channel of channels) query.append('channel', channel);
  if ($('resume').value.trim()) query.set('lastEventId', $('resume').value.trim());
  if (token()) query.set('access_token', token());
  return `subscribe?${query}`;
}

function subscribe(event) {
  event.preventDefault();
  stop();
  const channels = names($('channels').value);
  if (!channels.length) return;
  source = new EventSource(streamUrl(channels));
  setStatus('connecting', `connecting to ${channels.join(', ')}`);
  source.onopen = () => setStatus('open', `watching ${channels.join(', ')}`);
  source.onerror = () => {
    // EventSource reconnects by itself (with Last-Event-ID) unless the answer was an HTTP error.
    const closed = source && source.readyState === EventSource.CLOSED;
    setStatus(closed ? 'error' : 'connecting', closed ? 'refused (see the Channel panel)'
      : 'reconnecting');
    if (closed) addRow('', 'error', 'the gateway refused the stream (bad channel, token or rights?)', 'gap');
  };
  source.onmessage = (e) => addRow(e.lastEventId, 'message', pretty(e.data));
  for (const name of [...GATEWAY_EVENTS, ...names($('event-names').value)]) {
    source.addEventListener(name, (e) => addRow(e.lastEventId, name, pretty(e.data),
      name === 'gateway.gap' ? 'gap' : name.startsWith('gateway.') ? 'signal' : ''));
  }
  $('stop').disabled = false;
}

function stop() {
  if (source) source.close();
  source = null;
  $('stop').disabled = true;
  setStatus('idle', 'not subscribed');
}

async function answerText(response) {
  const text = await response.text();
  return `HTTP ${response.status}\n${pretty(text)}`;
}

async function publish(event) {
  event.preventDefault();
  const out = $('pub-result');
  const channel = $('pub-channel').value.trim();
  const eventName = $('pub-event').value.trim();
  const headers = { 'Content-Type': 'application/json', ...authHeaders() };
  if ($('pub-key').value.trim()) headers['Idempotency-Key'] = $('pub-key').value.trim();
  const query = eventName ? `?event=${encodeURIComponent(eventName)}` : '';
  try {
    const response = await fetch(`publish/${encodeURIComponent(channel)}${query}`,
      { method: 'POST', headers, body: $('pub-data').value });
    out.className = response.ok ? 'result' : 'result error';
    out.textContent = await answerText(response);
  } catch (error) {
    out.className = 'result error';
    out.textContent = String(error);
  }
}

async function show(target, url, missing) {
  const out = $(target);
  try {
    const response = await fetch(url, { headers: authHeaders() });
    if (response.status === 404 && missing) {
      out.className = 'result';
      out.textContent = missing;
      return;
    }
    out.className = response.ok ? 'result' : 'result error';
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 1); } catch { /* not JSON */ }
    out.textContent = response.ok ? shown : `HTTP ${response.status}\n${shown}`;
  } catch (error) {
    out.className = 'result error';
    out.textContent = String(error);
  }
}

function info(event) {
  event.preventDefault();
  const channel = encodeURIComponent($('info-channel').value.trim());
  show('info-result', `channels/${channel}`, 'not served by this gateway (404)');
  show('presence-result', `channels/${channel}/presence`, 'not served by this gateway (404)');
  show('history-result', `history/${channel}?limit=20`, null);
}

function clear() {
  $('events').tBodies[0].replaceChildren();
}

$('watch-form').addEventListener('submit', subscribe);
$('stop').addEventListener('click', stop);
$('clear').addEventListener('click', clear);
$('publish-form').addEventListener('submit', publish);
$('info-form').addEventListener('submit', info);
