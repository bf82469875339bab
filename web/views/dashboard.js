// Dashboard: live packets/s, bandwidth, sessions and drops; protocol doughnut; bandwidth
// line; top talkers with their country.
import { api, el, fmt, panel, subscribe } from '../app.js';
import { doughnut, line } from '../lib/charts.js';

export const title = 'Dashboard';

export function render(main) {
  const cards = el('div', { class: 'cards' });
  const protocols = el('div');
  const bandwidth = el('div');
  const talkers = el('div', { class: 'scroll' });
  main.append(
    el('section', { class: 'panel wide' }, cards),
    panel('Protocols', protocols),
    el('section', { class: 'panel span2' }, el('h2', {}, 'Bandwidth (bytes/s)'), bandwidth),
    el('section', { class: 'panel wide' }, el('h2', {}, 'Top talkers'), talkers),
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
    bandwidth.replaceChildren(line(shown.map((p) => ({ x: p.timestamp, y: p.bytes })), { format: fmt.bytes }));
  };
  const showTalkers = (list) => {
    talkers.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'host'), el('th', {}, 'country'), el('th', { class: 'num' }, 'bytes'),
        el('th', { class: 'num' }, 'sent'), el('th', { class: 'num' }, 'received'), el('th', { class: 'num' }, 'packets'))),
      el('tbody', {}, list.map((t) => el('tr', {},
        el('td', {}, t.ip),
        el('td', {}, t.country || t.country_code || t.scope || '–'),
        el('td', { class: 'num' }, fmt.bytes(t.bytes)),
        el('td', { class: 'num' }, fmt.bytes(t.bytes_sent)),
        el('td', { class: 'num' }, fmt.bytes(t.bytes_received)),
        el('td', { class: 'num' }, fmt.num(t.packets)))))));
  };

  api('/stats').then((s) => { dropped = s.packets_dropped; update(s); }).catch(() => {});
  const refreshTalkers = () => api('/top-talkers?limit=10&with_geo=true').then(showTalkers).catch(() => {});
  refreshTalkers();
  const timer = setInterval(refreshTalkers, 5000);
  const unsubscribe = subscribe('metrics', update);
  return () => { clearInterval(timer); unsubscribe(); };
}
