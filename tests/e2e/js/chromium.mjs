// Headless Debian Chromium, driven by playwright-core (Playwright's own browser download does
// not work here). Opens pages/streams.html at config.page, opens the EventSources listed in
// config.streams and prints every open/message/error as one JSON line on stdout.
// Exits when stdin closes. Usage: node chromium.mjs '<config json>'
import { openPage } from './browser.mjs';

const config = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + '\n');
const stdinClosed = new Promise((resolve) => {
  process.stdin.on('end', resolve);
  process.stdin.on('close', resolve);
  process.stdin.resume();
});

const { page, close } = await openPage(config, out, 'sse-e2e-chromium-');
try {
  // What the browser itself sends on each (re)connection: the evidence of Last-Event-ID.
  page.on('request', async (request) => {
    if (!request.url().includes('/subscribe')) return;
    const headers = await request.allHeaders();
    out({ type: 'request', url: request.url(), lastEventId: headers['last-event-id'] ?? null });
  });
  await page.goto(config.page);
  await page.evaluate((streams) => window.openStreams(streams), config.streams);
  out({ type: 'ready' });
  await stdinClosed;
} finally {
  await close();
}
