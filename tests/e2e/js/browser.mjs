// Headless Debian Chromium through playwright-core, as every browser script here opens it: a
// throw-away profile, the config's cookies, one page whose `window.report(record)` and console
// and page errors print JSON lines through `out`. `close()` ends the browser and the profile.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export async function openPage(config, out, profilePrefix) {
  const userDataDir = mkdtempSync(join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: config.executablePath ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const close = async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  try {
    if (config.cookies?.length) await context.addCookies(config.cookies);
    const page = context.pages()[0] ?? (await context.newPage());
    await page.exposeFunction('report', out);
    page.on('console', (message) => out({ type: 'console', text: message.text() }));
    page.on('pageerror', (error) => out({ type: 'pageerror', text: String(error) }));
    return { page, close };
  } catch (error) {
    await close();
    throw error;
  }
}
