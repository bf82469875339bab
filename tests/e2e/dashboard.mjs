// End-to-end: the dashboard in Debian's Chromium against a running `tapir demo`.
// Usage: node dashboard.mjs BASE_URL SCREENSHOT_DIR UPLOAD_PCAP
// Each view must render real data; acknowledging in the UI must reach the API; an upload in
// the replay view must produce its alerts; no console errors; no request leaves the appliance.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [base, shots, pcap] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const origin = new URL(base).origin;
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`); };
const apiGet = async (path) => (await fetch(`${base}${path}`)).json();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const consoleErrors = [];
const foreign = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('request', (r) => { const u = new URL(r.url()); if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) || u.origin.replace(/^ws/, 'http') === origin) return; foreign.push(r.url()); });

const view = async (name) => {
  await page.goto(`${base}/#/${name}`);
  await page.waitForSelector(`nav a.active[data-view="${name}"]`);
};
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

try {
  // Dashboard: live numbers, the doughnut, talkers with countries; first render time.
  const started = Date.now();
  await view('dashboard');
  await page.waitForSelector('#card-pps .value');
  const firstRender = Date.now() - started;
  console.log(`first render ${firstRender} ms`);
  check(firstRender < 1000, `first render under 1 s (${firstRender} ms)`);
  await page.waitForFunction(() => document.querySelectorAll('.legend span').length > 1, null, { timeout: 15000 });
  await page.waitForFunction(() => [...document.querySelectorAll('table td')].some((td) => /^[A-Z][a-z]/.test(td.textContent) && td.cellIndex === 1), null, { timeout: 15000 });
  check(true, 'dashboard shows protocols and talkers with a country');
  await shot('dashboard');

  // Alert center: the demo's scanner (45.33.32.156) appears; acknowledging reaches the API.
  await view('alerts');
  await page.waitForFunction(() => [...document.querySelectorAll('.alert')].some((a) => a.textContent.includes('45.33.32.156') && a.textContent.includes('port scan')), null, { timeout: 30000 });
  check(true, 'the scanner appears in the alert center');
  const id = await page.$eval('.alert:not(.acked) button.ack', (b) => b.closest('.alert').dataset.id);
  await page.click(`.alert[data-id="${id}"] button.ack`);
  await page.waitForSelector(`.alert.acked[data-id="${id}"]`);
  const stored = (await apiGet('/alerts?limit=1000')).alerts.find((a) => String(a.id) === id);
  check(stored && stored.acknowledged === true, `acknowledging alert ${id} in the UI acknowledged it in the API`);
  await shot('alerts');

  // Sessions: flows listed, details on click.
  await view('sessions');
  await page.waitForSelector('#flows-table tbody tr', { timeout: 15000 });
  await page.click('#flows-table tbody tr');
  await page.waitForSelector('.details dl');
  check((await page.textContent('.details')).includes('Community ID'), 'sessions list flows and show details');
  await shot('sessions');

  // Map: countries shaded, the country table names one.
  await view('map');
  await page.waitForSelector('#map svg path.hot', { timeout: 15000 });
  const countries = await page.$$eval('#country-table tbody tr', (rows) => rows.map((r) => r.cells[0].textContent));
  check(countries.length > 0 && countries.every((c) => c.length > 2), `the map shades countries (${countries.slice(0, 3).join(', ')})`);
  await shot('map');

  // Graph: nodes laid out.
  await view('graph');
  await page.waitForFunction(() => Number(document.querySelector('#graph')?.dataset.nodes) > 2, null, { timeout: 15000 });
  check(true, 'the graph draws hosts');
  await shot('graph');

  // Replay: upload a real nmap SYN scan (MANIFEST: 192.168.1.10 scans 192.168.1.25).
  await view('replay');
  await page.setInputFiles('#replay-file', pcap);
  await page.selectOption('#replay-speed', '0');
  await page.click('#replay-upload');
  await page.waitForFunction(() => /replaying/.test(document.querySelector('#replay-message').textContent), null, { timeout: 20000 });
  let found = false;
  for (let i = 0; i < 60 && !found; i++) {
    const { alerts } = await apiGet('/alerts?limit=1000');
    found = alerts.some((a) => a.alert_type === 'port_scan' && a.source_ip === '192.168.1.10');
    if (!found) await new Promise((r) => setTimeout(r, 500));
  }
  check(found, 'the uploaded capture produced its port scan alert');
  await shot('replay');

  // A phone-sized screen and the light theme.
  await page.setViewportSize({ width: 390, height: 844 });
  await view('dashboard');
  await page.click('#theme');
  check(await page.$eval('html', (h) => h.dataset.theme === 'light'), 'the light theme is available');
  await shot('phone-light');
} catch (e) {
  failures.push(String(e));
  console.log(`FAIL ${e}`);
  await shot('failure').catch(() => {});
}
check(consoleErrors.length === 0, `no console errors ${consoleErrors.join(' | ')}`);
check(foreign.length === 0, `no requests to other hosts ${foreign.join(' ')}`);
await browser.close();
process.exit(failures.length ? 1 : 0);
