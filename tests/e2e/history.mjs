// End-to-end: stored history in Debian's Chromium, against `tapir replay` of the Mr. X scan
// (7.4k flows over ten minutes, already replayed). Usage: node history.mjs BASE_URL SCREENSHOT_DIR TOKEN
// The sessions view pages through every stored flow exactly once, newest first; the
// scanner's host page draws its bytes per minute over the last hour, summing to what
// /hosts/{ip} answers, and ranks the three hosts it scanned among its peers.
import { mkdirSync } from 'node:fs';
import { apiGetter, runChecks } from './harness.mjs';

const [base, shots, token] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const apiGet = apiGetter(base, token);
const scanner = '10.42.42.253';

const rowKeys = (page) => page.$$eval('#flows-table tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent).join('|')));

await runChecks('history', shots, async ({ page, check }) => {
  const all = await apiGet('/flows?limit=10000&start_time=0');
  check(all.count > 7000, `the API holds the capture's flows (${all.count})`);

  await page.goto(`${base}/#/sessions?window=all`);
  await page.waitForSelector('#flows-table tbody tr', { timeout: 15000 });
  const seen = new Set();
  let duplicates = 0;
  let pages = 0;
  let lastOldest = Infinity;
  let ordered = true;
  for (;;) {
    const keys = await rowKeys(page);
    pages += 1;
    for (const k of keys) { if (seen.has(k)) duplicates += 1; seen.add(k); }
    const times = await page.$$eval('#flows-table tbody tr', (trs) => trs.map((tr) => tr.cells[10].textContent));
    const newest = times.reduce((a, b) => (a > b ? a : b));
    if (newest > lastOldest) ordered = false;
    lastOldest = times.reduce((a, b) => (a < b ? a : b));
    if (await page.$eval('#flows-older', (b) => b.hidden)) break;
    const before = await page.$eval('#flows-page', (s) => s.textContent);
    await page.click('#flows-older');
    await page.waitForFunction((b) => document.querySelector('#flows-page').textContent !== b, before, { timeout: 15000 });
    await page.waitForSelector('#flows-table tbody tr', { timeout: 15000 });
    if (pages > 100) break;
  }
  check(pages >= 15, `the stored flows take ${pages} pages of 500`);
  check(duplicates === 0, `no flow is shown twice across pages (${duplicates})`);
  check(seen.size === all.count, `paging shows every stored flow once (${seen.size} of ${all.count})`);
  check(ordered, 'each page is older than the one before');
  await page.click('#flows-newer');
  await page.waitForFunction(() => /page \d+/.test(document.querySelector('#flows-page').textContent), null, { timeout: 15000 });
  check(/page \d+/.test(await page.$eval('#flows-page', (s) => s.textContent)), '"newer" goes back a page');

  await page.goto(`${base}/#/dashboard`);
  await page.waitForSelector(`a[href="#/host?ip=${scanner}"]`, { timeout: 15000 });
  await page.click(`a[href="#/host?ip=${scanner}"]`);
  await page.waitForSelector('#host-page .details dl', { timeout: 15000 });
  await page.click('#host-range button[data-range="3600"]');
  await page.waitForSelector('#host-history svg', { timeout: 15000 });
  const latest = await apiGet('/history?metric=bytes&by=total');
  const host = await apiGet(`/hosts/${scanner}?from=${latest.to - 3600}&to=${latest.to}`);
  const series = host.history.series[0];
  check(host.history.step === 60 && series.points.length >= 9, `an hour reads minutes (${host.history.step} s, ${series.points.length} points)`);
  const title = await page.$eval('#host-history h2', (h) => h.textContent);
  check(/per 1 min/.test(title), `the chart says its step (${title})`);
  // The line's path has one vertex per point of the API's series.
  const vertices = await page.$eval('#host-history svg path[fill="none"]', (p) => (p.getAttribute('d').match(/[ML]/g) || []).length);
  check(vertices === series.points.length, `the chart draws the ${series.points.length} minutes (${vertices})`);
  const text = await page.$eval('main', (m) => m.textContent);
  const peers = ['10.42.42.25', '10.42.42.50', '10.42.42.56'];
  check(peers.every((p) => text.includes(p)), 'the host page ranks the three scanned hosts among its peers');
  check(!/NaN|undefined/.test(text), 'the host page shows no NaN or undefined');
  await page.screenshot({ path: `${shots}/host-page.png`, fullPage: true });
  await page.click('#host-range button[data-range="604800"]');
  await page.waitForFunction(() => /per 1 h/.test(document.querySelector('#host-history h2').textContent), null, { timeout: 15000 });
  check(/per 1 h/.test(await page.$eval('#host-history h2', (h) => h.textContent)), 'a week reads hours');
});
