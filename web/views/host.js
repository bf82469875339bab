// A host's page (`#/host?ip=…`): where it is, the device holding it, what its flows called
// it, and over a chosen range (1 h to 1 y of stored history, counted back from the newest
// stored minute) its bytes per step, busiest peers, destinations, applications and
// protocols, with a link to its flows.
import { api, el, fmt, panel } from '../app.js';
import { line } from '../lib/charts.js';

export const title = 'Host';

const RANGES = [['1 h', 3600], ['24 h', 86400], ['7 d', 7 * 86400], ['30 d', 30 * 86400], ['1 y', 365 * 86400]];

const perStep = (step) => (!step ? '' : step >= 86400 ? ` per ${step / 86400} d` : step >= 3600 ? ` per ${step / 3600} h` : ` per ${step / 60} min`);

export function render(main, params) {
  const ip = params.get('ip') || '';
  let range = Number(params.get('range')) || 86400;
  const head = el('section', { class: 'panel wide', id: 'host-page' }, el('h2', {}, `Host ${ip}`));
  const picker = el('div', { class: 'range-picker', id: 'host-range' });
  const chart = el('section', { class: 'panel wide', id: 'host-history' }, el('h2', {}, 'Bytes'));
  const tops = el('section', { class: 'panel wide', id: 'host-tops' }, el('h2', {}, 'Peers, destinations and applications'));
  main.append(head, chart, tops);

  const drawPicker = () => picker.replaceChildren(...RANGES.map(([label, secs]) => el('button', {
    class: secs === range ? 'active' : '',
    'data-range': secs,
    onclick: () => { range = secs; history.replaceState(null, '', `#/host?${new URLSearchParams({ ip, range })}`); load(); },
  }, label)));

  const ranking = (caption, rows, link) => el('table', { class: 'ranking' },
    el('thead', {}, el('tr', {}, el('th', {}, caption), el('th', { class: 'num' }, 'bytes'), el('th', { class: 'num' }, 'flows'))),
    el('tbody', {}, (rows || []).map((r) => el('tr', {},
      el('td', { class: 'name-cell' }, link ? el('a', { href: link(r.key) }, r.key) : r.key),
      el('td', { class: 'num' }, fmt.bytes(r.bytes)), el('td', { class: 'num' }, fmt.num(r.flows))))));

  async function load() {
    drawPicker();
    let h;
    try {
      // Ranges count back from the newest stored minute: a replayed capture lies in its own time.
      const latest = await api('/history?metric=bytes&by=total');
      const to = latest.to;
      h = await api(`/hosts/${encodeURIComponent(ip)}?from=${Math.max(0, to - range)}&to=${to}`);
    } catch (e) {
      head.replaceChildren(el('h2', {}, `Host ${ip}`), el('p', { class: 'error' }, e.message));
      return;
    }
    const place = h.place || {};
    const where = place.country ? `${place.country}${place.city ? `, ${place.city}` : ''}` : (place.scope ? `${place.scope} address` : (place.reason || '–'));
    const facts = [
      ['address', h.ip], ['device', h.device || '–'], ['location', where],
      ['network', place.as_org ? `AS${place.asn} ${place.as_org}` : '–'],
      ['named', (h.names || []).map((n) => n.key).join(', ') || '–'],
      ['range', `${fmt.time(h.from)} – ${fmt.time(h.to)}`],
    ];
    head.replaceChildren(el('h2', {}, `Host ${h.device ? `${h.device} (${ip})` : ip}`),
      el('div', { class: 'details' }, el('dl', {}, facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))),
      el('p', {}, el('a', { href: `#/sessions?ip=${encodeURIComponent(ip)}&window=all` }, 'its stored flows ›')));
    const series = h.history?.series[0];
    const points = (series?.points || []).map(([x, y]) => ({ x, y }));
    const per = perStep(h.history?.step);
    chart.replaceChildren(el('h2', {}, `Bytes${per}`), picker,
      points.length >= 2 ? line(points, { format: fmt.bytes })
        : el('p', { class: 'muted' }, series?.total ? `${fmt.bytes(series.total)} in this range, all within one${per.replace(' per', '')} step.` : 'No stored history in this range.'));
    const truncated = h.flows_truncated ? el('p', { class: 'muted' }, `ranked from its newest ${fmt.num(h.flows_read)} flows in the range`) : null;
    tops.replaceChildren(el('h2', {}, 'Peers, destinations and applications'), truncated,
      ranking('peer', h.top_peers, (k) => `#/host?${new URLSearchParams({ ip: k, range })}`),
      ranking('destination', h.destinations), ranking('application', h.apps), ranking('protocol', h.protocols));
  }
  load();
  return null;
}
