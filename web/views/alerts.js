// Alert center: a timeline with severity colours and readable evidence, live arrivals,
// acknowledgement one by one or in bulk, and an unacknowledged filter.
import { api, el, fmt, subscribe } from '../app.js';

export const title = 'Alerts';

// A device rule's target is a station's MAC: it links to the device's page.
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function evidence(value) {
  if (value == null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : v)).join(', ');
  return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
}

export function render(main, params) {
  const onlyOpen = el('input', { type: 'checkbox', id: 'only-open' });
  onlyOpen.checked = params.get('open') === '1';
  const bulk = el('button', { id: 'ack-selected', class: 'admin-only', disabled: true }, 'Acknowledge selected');
  const all = el('button', { id: 'ack-all', class: 'admin-only' }, 'Acknowledge all shown');
  const status = el('span', { class: 'muted' });
  const list = el('div', { id: 'alert-list' });
  main.append(el('section', { class: 'panel wide' }, el('h2', {}, 'Alerts'),
    el('div', { class: 'filters' }, el('label', {}, onlyOpen, ' unacknowledged only'), bulk, all, status), list));

  const alerts = new Map();
  const selected = new Set();

  const acknowledge = async (ids) => {
    for (const id of ids) {
      try {
        await api(`/alerts/${id}/acknowledge`, { method: 'POST' });
        const a = alerts.get(id);
        if (a) a.acknowledged = true;
        selected.delete(id);
      } catch (e) {
        status.textContent = e.message;
        status.className = 'error';
      }
    }
    window.dispatchEvent(new CustomEvent('tapir-ack', { detail: ids }));
    draw();
  };

  const draw = () => {
    const shown = [...alerts.values()]
      .filter((a) => !onlyOpen.checked || !a.acknowledged)
      .sort((a, b) => b.timestamp - a.timestamp || b.id - a.id);
    bulk.disabled = selected.size === 0;
    status.textContent = `${shown.length} alerts`;
    status.className = 'muted';
    list.replaceChildren(...shown.map((a) => el('article', { class: `alert ${a.severity}${a.acknowledged ? ' acked' : ''}`, 'data-id': a.id },
      el('header', {},
        el('input', { type: 'checkbox', checked: selected.has(a.id), disabled: a.acknowledged,
          onchange: (e) => { if (e.target.checked) selected.add(a.id); else selected.delete(a.id); bulk.disabled = selected.size === 0; } }),
        el('span', { class: `sev sev-${a.severity}` }, a.severity),
        el('strong', {}, a.alert_type.replace('_', ' ')),
        el('span', {}, a.source_device ? `${a.source_ip} (${a.source_device}) → ` : `${a.source_ip} → `,
          MAC.test(a.target) ? el('a', { href: `#/devices?mac=${a.target}` }, a.target) : a.target),
        el('span', { class: 'muted' }, `${fmt.time(a.timestamp)} · ${a.count} events`),
        a.acknowledged ? el('span', { class: 'muted' }, 'acknowledged')
          : el('button', { class: 'ack admin-only', onclick: () => acknowledge([a.id]) }, 'Acknowledge')),
      el('div', {}, a.description),
      el('dl', {}, Object.entries(a.evidence || {}).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, evidence(v))])))));
  };

  onlyOpen.addEventListener('change', () => { history.replaceState(null, '', `#/alerts?open=${onlyOpen.checked ? 1 : 0}`); draw(); });
  bulk.addEventListener('click', () => acknowledge([...selected]));
  all.addEventListener('click', () => acknowledge([...alerts.values()].filter((a) => !a.acknowledged).map((a) => a.id)));

  api('/alerts?limit=500').then(({ alerts: list }) => { for (const a of list) alerts.set(a.id, a); draw(); })
    .catch((e) => { status.textContent = e.message; status.className = 'error'; });
  return subscribe('alerts', (msg) => { for (const a of msg.alerts) alerts.set(a.id, a); draw(); });
}
