// Headless Debian Chromium (playwright-core; Playwright's own browser download does not work
// here) showing page.html at config.pageUrl, served by the test on an origin of its choosing
// (a loopback one: Chromium lets only those reach a loopback hub without a permission prompt),
// so every request to the hub is a real cross-origin request. Commands arrive on stdin, one
// JSON object a line:
// {"seq": n, "op": "open" | "close" | "get" | "publish", ...}; each is answered {"type": "done", seq,
// result} or {"type": "failed", seq, error}. Everything the page's EventSources see, and every
// request and response of the hub, is printed as one JSON line. Exits when stdin closes.
// Usage: node page.mjs '<config json>'  (config: pageUrl, hubPath, cookies, executablePath)
import { createInterface } from 'node:readline';
import { openPage } from '../browser.mjs';

const config = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + '\n');
const hubPath = config.hubPath ?? '/.well-known/mercure';
const isHub = (url) => new URL(url).pathname.startsWith(hubPath);

const { page, close } = await openPage(config, out, 'sse-mercure-chromium-');
try {
  // What the browser itself sent (Last-Event-ID, the cookie) and what the hub answered (CORS).
  page.on('request', async (request) => {
    if (!isHub(request.url())) return;
    const headers = await request.allHeaders();
    out({
      type: 'request', method: request.method(), url: request.url(),
      lastEventId: headers['last-event-id'] ?? null,
      cookie: headers['cookie'] ?? null, origin: headers['origin'] ?? null,
    });
  });
  page.on('response', async (response) => {
    if (!isHub(response.url())) return;
    const headers = await response.allHeaders();
    out({
      type: 'response', method: response.request().method(), url: response.url(),
      status: response.status(), allowOrigin: headers['access-control-allow-origin'] ?? null,
      allowCredentials: headers['access-control-allow-credentials'] ?? null,
      link: headers['link'] ?? null,
    });
  });
  await page.goto(config.pageUrl);
  out({ type: 'ready' });
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const { seq, op, ...args } = JSON.parse(line);
    try {
      const result = await page.evaluate(([op, args]) => window.mercure[op](args), [op, args]);
      out({ type: 'done', seq, result: result ?? null });
    } catch (error) {
      out({ type: 'failed', seq, error: String(error) });
    }
  }
} finally {
  await close();
}
