// The npm `eventsource` package under Node: opens the EventSources listed in config.streams and
// prints every open/message/error as one JSON line on stdout. config.headers (e.g. a Cookie or
// an Origin) go with the requests of streams that have withCredentials set, through the
// package's `fetch` hook; each response's status and CORS headers are printed too.
// Exits when stdin closes. Usage: node node-eventsource.mjs '<config json>'
import { EventSource } from 'eventsource';

const config = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + '\n');

function fetchFor(stream) {
  const extra = stream.withCredentials ? (config.headers ?? {}) : {};
  return async (input, init) => {
    const response = await fetch(input, { ...init, headers: { ...init.headers, ...extra } });
    out({
      stream: stream.name,
      type: 'response',
      status: response.status,
      allowOrigin: response.headers.get('access-control-allow-origin'),
      allowCredentials: response.headers.get('access-control-allow-credentials'),
      lastEventId: init.headers?.['Last-Event-ID'] ?? null,
    });
    return response;
  };
}

const sources = [];
for (const stream of config.streams) {
  const source = new EventSource(stream.url, { fetch: fetchFor(stream) });
  const send = (record) => out({ stream: stream.name, ...record });
  const forward = (e) =>
    send({ type: 'message', event: e.type, lastEventId: e.lastEventId, data: e.data });
  source.onopen = () => send({ type: 'open' });
  source.onmessage = forward;
  source.addEventListener('gateway.gap', forward);
  source.onerror = (e) => send({ type: 'error', readyState: source.readyState, code: e.code ?? null });
  sources.push(source);
}
out({ type: 'ready' });
process.stdin.on('end', () => {
  for (const source of sources) source.close();
  process.exit(0);
});
process.stdin.resume();
