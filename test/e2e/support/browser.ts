import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium, driven over CDP by playwright-core; no browser download anywhere. */
export const CHROMIUM = '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** undefined when Chromium can run here; else the reason, printed loudly (a failure under CI=true). */
export function browserSkipReason(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `BROWSER TESTS SKIPPED: no ${CHROMIUM} (apt-get install chromium)`;
  if (process.env.CI === 'true') throw new Error(reason);
  process.stderr.write(`\n${reason}\n\n`);
  return reason;
}

export interface Browser {
  page: Page;
  /** Uncaught exceptions and console errors (CSP violations among them) seen so far. */
  errors: string[];
  close(): Promise<void>;
}

/** A fresh headless Chromium with its own throw-away profile, one page open. */
export async function openBrowser(viewport = { width: 1440, height: 900 }): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'portolan-chromium-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
    const page = context.pages()[0] ?? (await context.newPage());
    const opened = context;
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    return {
      page,
      errors,
      async close() {
        await opened.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await context?.close();
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
}
