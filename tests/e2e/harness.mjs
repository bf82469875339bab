// What the browser tests share: Debian's Chromium launched as this machine allows it (no
// sandbox as root, no background connections, which the closed network refuses), a page at
// desktop size, pass/fail lines, and the API read with a token.
import { chromium } from 'playwright-core';

/** The browser and a 1280×900 page. */
export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  return { browser, page };
}

/** A list of failures and `check(ok, what)`, which prints a line and records a failure. */
export function checks() {
  const failures = [];
  const check = (ok, what) => { if (!ok) failures.push(what); console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`); };
  return { failures, check };
}

/** GET `path` of the API at `base` with a bearer token, as JSON. */
export const apiGetter = (base, token) => async (path) =>
  (await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } })).json();

/** The page's console errors and uncaught exceptions, collected as they happen. */
export function consoleErrors(page) {
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return errors;
}

/**
 * Runs a browser script: `body({ page, check })` with a fresh page; an exception fails the run
 * with a screenshot (`SHOTS/NAME-failure.png`), console errors fail it too, and the process
 * exits 0 only when every check passed.
 */
export async function runChecks(name, shots, body) {
  const { failures, check } = checks();
  const { browser, page } = await launch();
  const errors = consoleErrors(page);
  try {
    await body({ page, check });
  } catch (e) {
    failures.push(String(e));
    console.log(`FAIL ${e}`);
    await page.screenshot({ path: `${shots}/${name}-failure.png`, fullPage: true }).catch(() => {});
  }
  check(errors.length === 0, `no console errors ${errors.join(' | ')}`);
  await browser.close();
  process.exit(failures.length ? 1 : 0);
}
