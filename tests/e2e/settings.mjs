// End-to-end: the settings view's notification targets and threat lists in Debian's
// Chromium, against `tapir replay` with a webhook target on loopback and one list.
// Usage: node settings.mjs BASE_URL SCREENSHOT_DIR TOKEN
// The targets table shows the webhook with its counters, "Send test" reports the
// receiver's 200, and the lists table shows the list's entries and age.
import { mkdirSync } from 'node:fs';
import { apiGetter, runChecks } from './harness.mjs';

const [base, shots, token] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const apiGet = apiGetter(base, token);

await runChecks('settings', shots, async ({ page, check }) => {
  const notify = await apiGet('/notify');
  const hook = notify.targets.find((t) => t.name === 'hook');
  check(hook && hook.url === 'set', 'the API shows the webhook, its URL as "set"');

  await page.goto(`${base}/#/settings`);
  await page.waitForSelector('#notify-targets tbody tr', { timeout: 15000 });
  const row = await page.$eval('#notify-targets tbody tr', (tr) => [...tr.cells].map((c) => c.textContent));
  check(row[0] === 'hook' && row[1] === 'webhook', `the targets table lists the webhook (${row.slice(0, 2)})`);
  check(row[4] === String(hook.counters.sent), `its sent count matches the API (${row[4]} vs ${hook.counters.sent})`);
  const html = await page.content();
  check(!html.includes('hook-secret'), 'the page does not show the webhook URL');

  await page.click('#notify-targets .notify-test');
  await page.waitForFunction(() => /answered|failed/.test(document.querySelector('#notify-result').textContent), null, { timeout: 15000 });
  const result = await page.$eval('#notify-result', (p) => p.textContent);
  check(result.startsWith('hook answered 200'), `"Send test" reports the receiver's answer (${result})`);

  await page.waitForSelector('#intel-lists tbody tr', { timeout: 15000 });
  const list = await page.$eval('#intel-lists tbody tr', (tr) => [...tr.cells].map((c) => c.textContent));
  check(list[0] === 'blocklist' && list[2] === '2', `the lists table shows the list and its 2 entries (${list})`);
  check(/min|h|d/.test(list[3]) && !list[3].includes('stale'), `its age is shown, not stale (${list[3]})`);
  await page.screenshot({ path: `${shots}/settings-notify.png`, fullPage: true });
});
