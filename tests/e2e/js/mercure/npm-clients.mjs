// Mercure client libraries from npm, used unchanged against the hub:
// * subscriber: @microsoft/fetch-event-source, the client Mercure's documentation recommends
//   when a subscriber must send its token in the Authorization header (EventSource cannot);
// * publisher: the `mercure` package's Publisher (form POST with a Bearer token).
// config: {subscribeUrl, subscriberToken, publisher: {host, port, path, jwt}, updates: [{topics,
// data, id, type}], expect}. Prints open/message/published/error records as JSON lines and
// exits once `expect` messages arrived (or stdin closes).
// Usage: node npm-clients.mjs '<config json>'
import { fetchEventSource } from '@microsoft/fetch-event-source';
import mercure from 'mercure';

// The library targets browsers: it takes its timers from `window` and, when it stops, removes
// its page-visibility listener from `document`. Under Node, give it both (a page never hidden).
globalThis.window ??= globalThis;
globalThis.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };

const config = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + '\n');
const abort = new AbortController();
let received = 0;
let opened;
const open = new Promise((resolve) => { opened = resolve; });

const subscription = fetchEventSource(config.subscribeUrl, {
  headers: { Authorization: `Bearer ${config.subscriberToken}` },
  signal: abort.signal,
  openWhenHidden: true,
  fetch: globalThis.fetch,
  async onopen(response) {
    out({ type: 'open', status: response.status, link: response.headers.get('link') });
    if (response.status !== 200) throw new Error(`subscribe answered ${response.status}`);
    opened();
  },
  onmessage(message) {
    // Unlike EventSource, the library also reports frames without data (the hub's opening
    // `retry:`); they are not updates.
    if (message.data === '' && message.id === '') return;
    out({ type: 'message', id: message.id, event: message.event, data: message.data });
    if (++received >= config.expect) abort.abort();
  },
  onerror(error) {
    out({ type: 'error', error: String(error) });
    throw error; // no retry: a failure is the test's to report
  },
}).catch((error) => {
  out({ type: 'error', error: String(error) });
  opened(); // publish anyway: the test reports what did and did not arrive
});

out({ type: 'ready' });
await open;
const publisher = new mercure.Publisher({ protocol: 'http', ...config.publisher });
for (const update of config.updates) {
  const options = { id: update.id, type: update.type };
  try {
    const answer = await publisher.publish(update.topics, update.data, options);
    out({ type: 'published', id: update.id, answer });
  } catch (error) {
    out({ type: 'error', error: String(error) });
  }
}
await subscription;
out({ type: 'end' });
process.exit(0);
