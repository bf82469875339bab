// End-to-end: the dashboard in Debian's Chromium against a running `tapir demo`.
// Usage: node dashboard.mjs BASE_URL SCREENSHOT_DIR UPLOAD_PCAP ADMIN_TOKEN ADMIN_PASSWORD VIEWER_PASSWORD
// The login comes first (a wrong password is refused); then each view must render real data;
// acknowledging in the UI must reach the API; an upload in the replay view must produce its
// alerts; a viewer sees no controls that change anything; logging out brings the login back;
// no console errors; no request leaves the appliance.
import { mkdirSync } from 'node:fs';
import { apiGetter, checks, launch } from './harness.mjs';

const [base, shots, pcap, token, adminPassword, viewerPassword] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const origin = new URL(base).origin;
const { failures, check } = checks();
const apiGet = apiGetter(base, token);
const { browser, page } = await launch();
const consoleErrors = [];
const foreign = [];
let expectRefusals = false;
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  // The browser logs the deliberate wrong-password answer as a failed resource load.
  if (expectRefusals && /status of 40[13]/.test(m.text())) return;
  consoleErrors.push(m.text());
});
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('request', (r) => { const u = new URL(r.url()); if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) || u.origin.replace(/^ws/, 'http') === origin) return; foreign.push(r.url()); });

const view = async (name) => {
  await page.goto(`${base}/#/${name}`);
  await page.waitForSelector(`nav a.active[data-view="${name}"]`);
};
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

const logIn = async (user, password) => {
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
};

try {
  // The login screen comes first; a wrong password is refused; the right one lets us in.
  await page.goto(`${base}/#/dashboard`);
  await page.waitForSelector('#login-password');
  check(await page.$('#card-pps') === null, 'nothing but the login screen before logging in');
  await shot('login');
  expectRefusals = true;
  await logIn('admin', 'not the password');
  await page.waitForFunction(() => /wrong user name or password/.test(document.querySelector('#login-message').textContent));
  expectRefusals = false;
  check(true, 'a wrong password is refused with a message');
  await logIn('admin', adminPassword);
  await page.waitForSelector('#who-name');
  check((await page.textContent('#who-name')).includes('admin'), 'the header shows who is logged in');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'tapir_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');

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

  // The range picker reads the stored history, at the tier the range calls for.
  await page.click('#range-picker button[data-range="604800"]');
  await page.waitForFunction(() => document.querySelector('#bandwidth-title').textContent.includes('hour averages'), null, { timeout: 15000 });
  await page.click('#range-picker button[data-range="3600"]');
  await page.waitForFunction(() => document.querySelector('#bandwidth-title').textContent.includes('minute averages'), null, { timeout: 15000 });
  check(await page.$('#range-picker button.active[data-range="3600"]') !== null, 'the range picker reads history: hours for a week, minutes for an hour');
  await shot('dashboard-history');
  await page.click('#range-picker button[data-range="0"]');

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

  // Settings: retention shown, IP masking available to the admin.
  await view('settings');
  await page.waitForSelector('#ip-masking');
  check(!(await page.$eval('#ip-masking', (i) => i.disabled)), 'the admin can switch IP masking');
  check(/days/.test(await page.textContent('#settings-retention')), 'data retention is shown in the settings');
  await shot('settings');

  // A phone-sized screen and the light theme.
  await page.setViewportSize({ width: 390, height: 844 });
  await view('dashboard');
  await page.click('#theme');
  check(await page.$eval('html', (h) => h.dataset.theme === 'light'), 'the light theme is available');
  await shot('phone-light');
  await page.setViewportSize({ width: 1280, height: 900 });

  // Logging out brings the login screen back, and the API refuses the old cookie.
  await page.click('#logout');
  await page.waitForSelector('#login-password');
  expectRefusals = true;
  const after = await page.evaluate(async () => (await fetch('/stats')).status);
  expectRefusals = false;
  check(after === 401, `after logout the API answers 401 (${after})`);

  // A viewer reads everything but sees no control that changes anything.
  await logIn('watcher', viewerPassword);
  await page.waitForSelector('#who-name');
  await view('alerts');
  await page.waitForSelector('.alert', { timeout: 30000 });
  const visibleAck = await page.$$eval('button.ack, #ack-all', (bs) => bs.filter((b) => b.offsetParent !== null).length);
  check(visibleAck === 0, 'a viewer sees no acknowledge buttons');
  await view('settings');
  await page.waitForSelector('#ip-masking');
  check(await page.$eval('#ip-masking', (i) => i.disabled), 'a viewer cannot switch IP masking');
  await shot('viewer');
} catch (e) {
  failures.push(String(e));
  console.log(`FAIL ${e}`);
  await shot('failure').catch(() => {});
}
check(consoleErrors.length === 0, `no console errors ${consoleErrors.join(' | ')}`);
check(foreign.length === 0, `no requests to other hosts ${foreign.join(' ')}`);
await browser.close();
process.exit(failures.length ? 1 : 0);
