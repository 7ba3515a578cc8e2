// Drives the gateway's console page (GET /) in headless Debian Chromium through playwright-core:
// subscribe with a resume id (the gateway answers a gap first), see a live event arrive, publish
// from the page, look at the channel panel, and keep a screenshot. Prints one JSON object.
// Usage: node console.mjs '{"url": ..., "channel": ..., "resume": ..., "screenshot": ...}'
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(process.argv[2]);
const userDataDir = mkdtempSync(join(tmpdir(), 'sse-console-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: config.executablePath ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1200, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
const rows = (page) => page.$$eval('#events tbody tr', (trs) => trs.map((tr) => ({
  kind: tr.className, cells: [...tr.cells].map((td) => td.textContent) })));
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (error) => problems.push(String(error)));
  // Chromium logs every non-2xx fetch as an error; the page handles those (a 404 for channel
  // info where this gateway does not serve it, the favicon), so only other errors count.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(m.text());
    }
  });
  page.setDefaultTimeout(10_000);
  await page.goto(config.url);
  const title = await page.textContent('h1');

  await page.fill('#channels', config.channel);
  await page.fill('#resume', config.resume);
  await page.click('#subscribe');
  await page.waitForSelector('#status.open');
  await page.waitForSelector('#events tr.gap');
  await page.waitForFunction((id) => [...document.querySelectorAll('#events td')]
    .some((td) => td.textContent === id), config.expectId);
  const afterResume = await rows(page);

  await page.fill('#pub-channel', config.channel);
  await page.fill('#pub-data', '{"from": "the console"}');
  await page.click('#publish');
  await page.waitForFunction(() => document.querySelector('#pub-result').textContent
    .startsWith('HTTP 202'));
  const published = await page.textContent('#pub-result');
  await page.waitForFunction(() => [...document.querySelectorAll('#events td')]
    .some((td) => td.textContent.includes('the console')));

  await page.fill('#info-channel', config.channel);
  await page.click('#info');
  await page.waitForFunction(() => document.querySelector('#history-result').textContent
    .includes('the console'));
  await page.waitForFunction(() => document.querySelector('#presence-result').textContent !== '');
  const info = await page.textContent('#info-result');
  const presence = await page.textContent('#presence-result');
  const history = await page.textContent('#history-result');
  if (config.screenshot) await page.screenshot({ path: config.screenshot, fullPage: true });
  const status = await page.textContent('#status');
  process.stdout.write(JSON.stringify({
    title, status, afterResume, final: await rows(page), published, info, presence, history,
    problems,
  }) + '\n');
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
