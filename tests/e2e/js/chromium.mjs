// Headless Debian Chromium, driven by playwright-core (Playwright's own browser download does
// not work here). Opens pages/streams.html at config.page, opens the EventSources listed in
// config.streams and prints every open/message/error as one JSON line on stdout.
// Exits when stdin closes. Usage: node chromium.mjs '<config json>'
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + '\n');
const stdinClosed = new Promise((resolve) => {
  process.stdin.on('end', resolve);
  process.stdin.on('close', resolve);
  process.stdin.resume();
});

const userDataDir = mkdtempSync(join(tmpdir(), 'sse-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: config.executablePath ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  if (config.cookies?.length) await context.addCookies(config.cookies);
  const page = context.pages()[0] ?? (await context.newPage());
  await page.exposeFunction('report', out);
  page.on('console', (message) => out({ type: 'console', text: message.text() }));
  page.on('pageerror', (error) => out({ type: 'pageerror', text: String(error) }));
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
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
