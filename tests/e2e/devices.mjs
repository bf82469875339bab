// End-to-end: the Devices view in Debian's Chromium, against `tapir replay` of a home LAN
// capture (already replayed). Usage: node devices.mjs BASE_URL SCREENSHOT_DIR TOKEN
// The view lists the API's devices with their vendors and names; the search finds one by
// name; a row opens the device's page with its names and addresses; an admin's label set
// on the page reaches the API and shows in the list.
import { mkdirSync } from 'node:fs';
import { apiGetter, runChecks } from './harness.mjs';

const [base, shots, token] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const apiGet = apiGetter(base, token);

const rows = (page) => page.$$eval('#devices-table tbody tr', (trs) => trs.map((tr) => ({
  mac: tr.dataset.mac, name: tr.querySelector('.device-name').textContent, vendor: tr.cells[1].textContent,
})));

await runChecks('devices', shots, async ({ page, check }) => {
  const listed = (await apiGet('/devices?limit=1000')).devices;
  await page.goto(`${base}/#/devices`);
  await page.waitForSelector('nav a.active[data-view="devices"]');
  await page.waitForSelector('#devices-table tbody tr', { timeout: 15000 });
  const shown = await rows(page);
  check(listed.length >= 8 && shown.length === listed.length, `the view lists the ${listed.length} devices of the API (${shown.length})`);
  const agree = listed.every((d) => shown.some((r) => r.mac === d.mac
    && r.name === (d.name || d.mac) && (d.vendor ? r.vendor === d.vendor : true)));
  check(agree, 'every row has the API\'s name and vendor');
  const named = listed.filter((d) => d.name).map((d) => d.name);
  check(named.includes('Gabrieles-iPad.local') && named.includes('TL-SG116E'), `names from mDNS and DHCP are shown (${named.join(', ')})`);
  check(shown.some((r) => r.vendor === 'Sonos, Inc.'), 'vendors from the IEEE registry are shown');
  await page.screenshot({ path: `${shots}/devices.png`, fullPage: true });

  await page.fill('#device-search', 'ipad');
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction(() => document.querySelectorAll('#devices-table tbody tr').length === 1, null, { timeout: 15000 });
  const found = await rows(page);
  check(found[0].name === 'Gabrieles-iPad.local', `the search finds the iPad (${found[0].name})`);

  await page.click('#devices-table tbody tr');
  await page.waitForSelector('#device-page .details dl', { timeout: 15000 });
  const text = await page.$eval('main', (m) => m.textContent);
  check(text.includes(found[0].mac) && text.includes('Apple, Inc.'), 'the device page shows its MAC and vendor');
  const names = await page.$$eval('#device-names tr', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]));
  check(names.some(([n, source]) => n === 'Gabrieles-iPad.local' && source === 'mdns'), `the device page lists the names it gave itself (${JSON.stringify(names)})`);
  check(/192\.168\.1\.75/.test(text), 'the device page lists its address');
  check(!/NaN|undefined/.test(text), 'the device page shows no NaN or undefined');
  await page.screenshot({ path: `${shots}/device-page.png`, fullPage: true });

  await page.fill('#device-label', 'Kitchen iPad');
  await page.check('#device-known');
  await page.click('#device-page form button[type="submit"]');
  await page.waitForFunction(() => /Kitchen iPad/.test(document.querySelector('#device-page h2')?.textContent || ''), null, { timeout: 15000 });
  const after = await apiGet(`/devices/${found[0].mac}`);
  check(after.label === 'Kitchen iPad' && after.known === true, 'the label and mark reach the API');
  await page.goto(`${base}/#/devices`);
  await page.waitForSelector('#devices-table tbody tr', { timeout: 15000 });
  check((await rows(page)).some((r) => r.name === 'Kitchen iPad'), 'the list shows the label');
});
