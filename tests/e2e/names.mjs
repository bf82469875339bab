// End-to-end: names in the dashboard, in Debian's Chromium, against `tapir replay` of a
// named capture (already replayed). Usage: node names.mjs BASE_URL SCREENSHOT_DIR TOKEN
// Top talkers show the API's names beside their addresses; the top-applications panel lists
// the API's applications; the sessions view filters by name; the graph labels nodes by name,
// keeps every node inside the canvas and off its borders, and no label overlaps another or a
// node (measured from the positions it drew); grouping by application brings each
// application's nodes together.
import { mkdirSync } from 'node:fs';
import { apiGetter, runChecks } from './harness.mjs';

const [base, shots, token] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const apiGet = apiGetter(base, token);
const view = async (page, name) => {
  await page.goto(`${base}/#/${name}`);
  await page.waitForSelector(`nav a.active[data-view="${name}"]`);
};

// The graph's drawn positions, once the layout has settled.
const settledLayout = async (page) => {
  await page.waitForFunction(() => {
    const l = document.querySelector('#graph')?.dataset.layout;
    return l && JSON.parse(l).heat <= 0.05 && JSON.parse(l).nodes.length > 10;
  }, null, { timeout: 30000 });
  return JSON.parse(await page.$eval('#graph', (c) => c.dataset.layout));
};
const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

await runChecks('names', shots, async ({ page, check }) => {
  // Dashboard: names beside the talkers' addresses, as the API gives them.
  await view(page, 'dashboard');
  const talkers = await apiGet('/top-talkers?limit=10');
  const named = talkers.filter((t) => t.name);
  await page.waitForSelector('.host-name', { timeout: 15000 });
  const shown = await page.$$eval('.host-name', (s) => s.map((x) => [x.parentElement.firstChild.textContent, x.textContent]));
  check(named.length >= 3 && named.every((t) => shown.some(([ip, name]) => ip === t.ip && name === t.name)),
    `top talkers show their names beside their addresses (${named.length} named)`);
  const apps = await apiGet('/apps');
  await page.waitForSelector('#apps-table tbody tr', { timeout: 15000 });
  const appRows = await page.$$eval('#apps-table tbody tr', (rows) => rows.map((r) => r.cells[0].textContent));
  check(apps.apps.length > 3 && appRows[0].startsWith(apps.apps[0].app), `the top-applications panel lists ${appRows.slice(0, 3).join(', ')}`);
  check(await page.$$eval('#top-categories .legend span', (s) => s.length) > 1, 'the categories are drawn');
  await page.screenshot({ path: `${shots}/names-dashboard.png`, fullPage: true });

  // Sessions: filtered by a domain, every row is named under it.
  await view(page, 'sessions');
  await page.selectOption('#flow-window', 'all');
  await page.fill('#flow-name', 'fbcdn.net');
  await page.click('form.filters button[type="submit"]');
  await page.waitForFunction(() => document.querySelectorAll('#flows-table tbody tr').length > 0 && /flows/.test(document.querySelector('form.filters .muted')?.textContent || ''), null, { timeout: 15000 });
  const names = await page.$$eval('#flows-table tbody tr td.name-cell', (tds) => tds.map((td) => td.textContent));
  const want = (await apiGet('/flows?name=fbcdn.net&start_time=0&limit=1000')).count;
  check(names.length === want && names.every((n) => n === 'fbcdn.net' || n.endsWith('.fbcdn.net')), `sessions filter by name (${names.length} of ${want})`);
  await page.screenshot({ path: `${shots}/names-sessions.png`, fullPage: true });

  // Graph: inside the canvas, off its borders, labels by name without overlaps.
  await view(page, 'graph');
  const layout = await settledLayout(page);
  const { width, height, nodes } = layout;
  const inside = nodes.every((n) => n.x - n.r >= 0 && n.y - n.r >= 0 && n.x + n.r <= width && n.y + n.r <= height);
  const offBorders = nodes.every((n) => n.x >= 12 && n.y >= 12 && n.x <= width - 12 && n.y <= height - 12);
  check(inside && offBorders, `the graph's ${nodes.length} nodes stay inside the canvas, off its borders`);
  const labels = nodes.filter((n) => n.label).map((n) => n.label);
  const clash = labels.some((a, i) => labels.some((b, j) => i < j && overlaps(a, b)))
    || labels.some((l) => nodes.some((n) => overlaps(l, { x: n.x - n.r, y: n.y - n.r, w: 2 * n.r, h: 2 * n.r })));
  check(!clash, `no label overlaps another or a node (${labels.length} labels)`);
  check(labels.length >= nodes.length / 2, `most nodes are labelled (${labels.length} of ${nodes.length})`);
  const byName = nodes.filter((n) => n.name && n.label);
  check(byName.length > 5 && byName.every((n) => n.label.text === n.name || (n.label.text.startsWith('…') && n.name.endsWith(n.label.text.slice(1)))),
    `nodes are labelled by name (${byName.length})`);
  await page.screenshot({ path: `${shots}/names-graph.png`, fullPage: true });

  // Grouped by application: nodes of one application sit closer together than others.
  await page.check('#graph-group');
  await page.waitForTimeout(300);
  const grouped = (await settledLayout(page)).nodes.filter((n) => n.app);
  let same = 0, sameN = 0, other = 0, otherN = 0;
  for (const a of grouped) {
    for (const b of grouped) {
      if (a === b) continue;
      const d = Math.hypot(a.x - b.x, a.y - b.y);
      if (a.app === b.app) { same += d; sameN += 1; } else { other += d; otherN += 1; }
    }
  }
  check(sameN > 0 && otherN > 0 && same / sameN < other / otherN,
    `grouping brings an application's nodes together (${(same / sameN).toFixed(0)} px apart, others ${(other / otherN).toFixed(0)} px)`);
  await page.screenshot({ path: `${shots}/names-graph-grouped.png`, fullPage: true });
});
