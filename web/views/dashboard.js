// Dashboard: live packets/s, bandwidth, sessions and drops; protocol doughnut; bandwidth
// line, live or over a range of stored history; top talkers with their name and country;
// the top applications and categories of the live window.
import { api, el, fmt, panel, subscribe } from '../app.js';
import { doughnut, line } from '../lib/charts.js';

export const title = 'Dashboard';

export function render(main) {
  const cards = el('div', { class: 'cards' });
  const protocols = el('div');
  const bandwidth = el('div');
  // Live: the last 5 minutes from /ws/metrics; a range: /history from the store.
  const RANGES = [['live', 0], ['1 h', 3600], ['24 h', 86400], ['7 d', 7 * 86400], ['30 d', 30 * 86400], ['1 y', 365 * 86400]];
  let range = 0;
  const bandwidthTitle = el('h2', { id: 'bandwidth-title' }, 'Bandwidth (bytes/s)');
  const picker = el('div', { class: 'range-picker', id: 'range-picker' });
  const showHistory = async () => {
    try {
      // The newest stored minute first: a replayed capture's history lies in its own time.
      const latest = await api('/history?metric=bytes&by=total');
      const to = latest.series[0]?.points.length ? latest.to : Math.floor(Date.now() / 1000);
      const h = await api(`/history?metric=bytes&by=total&from=${Math.max(0, to - range)}&to=${to}`);
      const points = (h.series[0]?.points || []).map(([x, v]) => ({ x, y: v / h.step }));
      bandwidthTitle.textContent = `Bandwidth (bytes/s, ${h.tier} averages)`;
      bandwidth.replaceChildren(line(points, { format: fmt.bytes }));
      bandwidth.dataset.tier = h.tier;
    } catch (e) {
      bandwidth.replaceChildren(el('p', { class: 'muted' }, `no history: ${e.message}`));
    }
  };
  const drawPicker = () => picker.replaceChildren(...RANGES.map(([label, secs]) => el('button', {
    class: secs === range ? 'active' : '',
    'data-range': secs,
    onclick: () => {
      range = secs;
      drawPicker();
      if (range) showHistory();
      else bandwidthTitle.textContent = 'Bandwidth (bytes/s)';
    },
  }, label)));
  drawPicker();
  const talkers = el('div', { class: 'scroll' });
  const apps = el('div', { class: 'scroll', id: 'top-apps' });
  const categories = el('div', { id: 'top-categories' });
  main.append(
    el('section', { class: 'panel wide' }, cards),
    panel('Protocols', protocols),
    el('section', { class: 'panel span2' }, bandwidthTitle, picker, bandwidth),
    el('section', { class: 'panel wide' }, el('h2', {}, 'Top talkers'), talkers),
    el('section', { class: 'panel span2' }, el('h2', {}, 'Top applications'), apps),
    panel('Categories', categories),
  );
  let series = new Map();
  let dropped = 0;

  const card = (label, value, id) => el('div', { class: 'card', id }, el('div', { class: 'value' }, value), el('div', { class: 'label' }, label));
  const update = (m) => {
    for (const p of m.bandwidth_series || []) series.set(p.timestamp, p);
    const keep = [...series.keys()].sort((a, b) => a - b).slice(-300);
    series = new Map(keep.map((k) => [k, series.get(k)]));
    cards.replaceChildren(
      card('packets/s', fmt.num(m.packets_per_sec), 'card-pps'),
      card('bandwidth', `${fmt.bytes(m.bytes_per_sec)}/s`, 'card-bw'),
      card('active sessions', fmt.num(m.active_sessions), 'card-sessions'),
      card('dropped packets', fmt.num(m.packets_dropped ?? dropped), 'card-dropped'),
      card('packets seen', fmt.num(m.total_packets), 'card-total'),
    );
    const entries = Object.entries(m.protocol_counts || {}).sort((a, b) => b[1] - a[1]);
    protocols.replaceChildren(...(entries.length ? doughnut(entries) : [el('p', { class: 'muted' }, 'no packets yet')]));
    // From the first second with traffic: a fresh start should not draw minutes of zeros.
    const points = [...series.values()];
    const first = points.findIndex((p) => p.bytes > 0);
    const shown = first < 0 ? [] : points.slice(first);
    if (!range) {
      bandwidth.replaceChildren(line(shown.map((p) => ({ x: p.timestamp, y: p.bytes })), { format: fmt.bytes }));
      delete bandwidth.dataset.tier;
    }
  };
  const showTalkers = (list) => {
    talkers.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'host'), el('th', {}, 'country'), el('th', { class: 'num' }, 'bytes'),
        el('th', { class: 'num' }, 'sent'), el('th', { class: 'num' }, 'received'), el('th', { class: 'num' }, 'packets'))),
      el('tbody', {}, list.map((t) => el('tr', {},
        // The name beside the address, never instead of it.
        el('td', {}, el('a', { href: `#/host?ip=${encodeURIComponent(t.ip)}` }, t.ip), t.device ? el('span', { class: 'host-name device-label' }, t.device) : '',
          t.name ? el('span', { class: 'host-name' }, t.name) : ''),
        el('td', {}, t.country || t.country_code || t.scope || '–'),
        el('td', { class: 'num' }, fmt.bytes(t.bytes)),
        el('td', { class: 'num' }, fmt.bytes(t.bytes_sent)),
        el('td', { class: 'num' }, fmt.bytes(t.bytes_received)),
        el('td', { class: 'num' }, fmt.num(t.packets)))))));
  };

  // A bar of `share` of the cell's width (set through the style object: the page's CSP
  // refuses style attributes).
  const bar = (share) => {
    const b = el('i', { class: 'bar' });
    b.style.width = `${(100 * share).toFixed(1)}%`;
    return b;
  };
  // Applications of the live window, by bytes; a port-guessed one is marked with '?'.
  const showApps = (u) => {
    const rows = u.apps.slice(0, 10);
    const max = Math.max(1, ...rows.map((a) => a.bytes));
    apps.replaceChildren(rows.length ? el('table', { id: 'apps-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'application'), el('th', {}, 'category'), el('th', {}, ''),
        el('th', { class: 'num' }, 'bytes'), el('th', { class: 'num' }, 'flows'), el('th', { class: 'num' }, 'hosts'))),
      el('tbody', {}, rows.map((a) => el('tr', {},
        el('td', { title: a.guessed ? 'guessed from the port' : '' }, a.app + (a.guessed ? ' ?' : '')),
        el('td', { class: 'muted' }, a.category),
        el('td', { class: 'bar-cell' }, bar(a.bytes / max)),
        el('td', { class: 'num' }, fmt.bytes(a.bytes)), el('td', { class: 'num' }, fmt.num(a.flows)),
        el('td', { class: 'num' }, fmt.num(a.hosts))))))
      : el('p', { class: 'muted' }, 'no named traffic yet'));
    const entries = u.categories.slice(0, 8).map((c) => [c.category, c.bytes]);
    categories.replaceChildren(...(entries.length ? doughnut(entries) : [el('p', { class: 'muted' }, '–')]));
  };
  const refreshApps = () => api('/apps').then(showApps).catch((e) => {
    apps.replaceChildren(el('p', { class: 'muted' }, e.message));
  });

  api('/stats').then((s) => { dropped = s.packets_dropped; update(s); }).catch(() => {});
  const refreshTalkers = () => api('/top-talkers?limit=10&with_geo=true').then(showTalkers).catch(() => {});
  refreshTalkers();
  refreshApps();
  const timer = setInterval(() => { refreshTalkers(); refreshApps(); }, 5000);
  const unsubscribe = subscribe('metrics', update);
  return () => { clearInterval(timer); unsubscribe(); };
}
