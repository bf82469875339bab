// Devices: every station of the segment (name or label, vendor, addresses, first and last
// seen, today's usage, a "new" badge), searchable and sortable; and one device's page (its
// names, addresses over time, usage, flows and alerts; an admin sets its label or marks it
// known). `#/devices?mac=…` opens a device's page.
import { api, el, fmt, panel, session } from '../app.js';
import { line } from '../lib/charts.js';

export const title = 'Devices';

const SORTS = [['last_seen', 'last seen'], ['first_seen', 'first seen'], ['name', 'name'], ['vendor', 'vendor'], ['bytes', 'usage'], ['mac', 'MAC']];
const STATES = [['all', 'all devices'], ['new', 'new only'], ['known', 'known only']];

const todayBytes = (d) => d.today.bytes_sent + d.today.bytes_received;
const vendorOf = (d) => d.vendor || (d.randomized ? 'private (randomised) MAC' : 'unknown vendor');

export function render(main, params) {
  const mac = params.get('mac');
  return mac ? renderDevice(main, mac) : renderList(main, params);
}

function renderList(main, params) {
  const text = el('input', { placeholder: 'name, MAC, vendor or address', value: params.get('q') || '', size: 26, id: 'device-search' });
  const state = el('select', { id: 'device-state' }, STATES.map(([v, t]) => el('option', { value: v }, t)));
  const sort = el('select', { id: 'device-sort' }, SORTS.map(([v, t]) => el('option', { value: v }, `by ${t}`)));
  state.value = params.get('state') || 'all';
  sort.value = params.get('sort') || 'last_seen';
  const status = el('span', { class: 'muted' });
  const table = el('div', { class: 'scroll' });
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(); } },
    text, state, sort, el('button', { class: 'primary', type: 'submit' }, 'Apply'), status);
  main.append(el('section', { class: 'panel wide' }, el('h2', {}, 'Devices'), form, table));
  state.addEventListener('change', () => load());
  sort.addEventListener('change', () => load());

  async function load() {
    const q = new URLSearchParams({ sort: sort.value, limit: '1000' });
    if (text.value.trim()) q.set('q', text.value.trim());
    if (state.value !== 'all') q.set('state', state.value);
    history.replaceState(null, '', `#/devices?${new URLSearchParams({ q: text.value.trim(), state: state.value, sort: sort.value })}`);
    try {
      const body = await api(`/devices?${q}`);
      const learning = body.learning ? ` · learning the network until ${fmt.time(body.learning_until)}` : '';
      status.textContent = `${body.count} of ${body.total} devices, ${body.new} new${learning}`;
      status.className = 'muted';
      table.replaceChildren(el('table', { id: 'devices-table' },
        el('thead', {}, el('tr', {}, ['device', 'vendor', 'addresses', 'first seen', 'last seen', 'today', 'total'].map((t, i) => el('th', { class: i >= 5 ? 'num' : '' }, t)))),
        el('tbody', {}, body.devices.map((d) => el('tr', { class: 'clickable', 'data-mac': d.mac, onclick: () => { location.hash = `#/devices?mac=${d.mac}`; } },
          el('td', {},
            el('span', { class: 'device-name' }, d.name || d.mac),
            d.new ? el('span', { class: 'badge new-badge', title: 'first seen after the learning period' }, 'new') : null,
            d.known ? el('span', { class: 'muted' }, ' ✓') : null,
            el('span', { class: 'host-name' }, d.name ? d.macs.join(', ') : (d.macs.length > 1 ? d.macs.slice(1).join(', ') : ''))),
          el('td', { class: 'name-cell', title: vendorOf(d) }, vendorOf(d)),
          el('td', { class: 'name-cell' }, d.addresses.map((a) => a.ip).slice(-3).join(', ')),
          el('td', { class: 'num' }, fmt.time(d.first_seen)),
          el('td', { class: 'num' }, fmt.time(d.last_seen)),
          el('td', { class: 'num' }, fmt.bytes(todayBytes(d))),
          el('td', { class: 'num' }, fmt.bytes(d.bytes)))))));
    } catch (e) {
      status.textContent = e.message;
      status.className = 'error';
    }
  }
  load();
  const timer = setInterval(load, 10000);
  return () => clearInterval(timer);
}

function renderDevice(main, mac) {
  const head = el('section', { class: 'panel wide', id: 'device-page' }, el('h2', {}, `Device ${mac}`));
  const usage = panel('Usage');
  const chart = el('section', { class: 'panel wide', id: 'device-history' }, el('h2', {}, 'Bytes over the last day'));
  const tops = panel('Destinations and applications');
  const addresses = panel('Addresses');
  const names = panel('Names');
  const flows = el('section', { class: 'panel wide' }, el('h2', {}, 'Recent flows'));
  const alerts = el('section', { class: 'panel wide' }, el('h2', {}, 'Alerts'));
  main.append(head, usage, addresses, names, chart, tops, flows, alerts);

  const facts = (d) => [
    ['MAC', d.macs.join(', ') + (d.randomized ? ' (randomised by its OS)' : '')],
    ['vendor', vendorOf(d)],
    ['name', d.name || '–'],
    ['first seen', fmt.time(d.first_seen)], ['last seen', fmt.time(d.last_seen)],
    ['DHCP fingerprint', d.dhcp_fingerprint || '–'], ['vendor class', d.vendor_class || '–'],
    ['client id', d.client_id || '–'], ['DUID', d.duid || '–'],
    ['role', [d.dhcp_server && 'DHCP server', d.router && 'IPv6 router'].filter(Boolean).join(', ') || '–'],
  ];

  const editor = (d) => {
    const label = el('input', { id: 'device-label', placeholder: 'label', value: d.label || '', maxlength: 64, size: 24 });
    const known = el('input', { id: 'device-known', type: 'checkbox', checked: d.known });
    const note = el('span', { class: 'muted' });
    const save = async (e) => {
      e.preventDefault();
      try {
        await api(`/devices/${mac}`, { method: 'POST', json: { label: label.value.trim() || null, known: known.checked } });
        note.textContent = 'saved';
        load();
      } catch (err) { note.textContent = err.message; note.className = 'error'; }
    };
    return el('form', { class: 'filters admin-only', onsubmit: save },
      label, el('label', {}, known, ' known'), el('button', { class: 'primary', type: 'submit' }, 'Save'), note);
  };

  async function load() {
    let d;
    try {
      d = await api(`/devices/${mac}`);
    } catch (e) {
      head.replaceChildren(el('h2', {}, `Device ${mac}`), el('p', { class: 'error' }, e.message));
      return;
    }
    head.replaceChildren(
      el('h2', {}, el('a', { href: '#/devices' }, 'Devices'), ` › ${d.name || mac}`, d.new ? el('span', { class: 'badge new-badge' }, 'new') : null),
      el('div', { class: 'details' }, el('dl', {}, facts(d).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))),
      session.role === 'admin' ? editor(d) : null);
    usage.replaceChildren(el('h2', {}, 'Usage'), el('div', { class: 'cards' },
      [['today ↑', fmt.bytes(d.today.bytes_sent)], ['today ↓', fmt.bytes(d.today.bytes_received)],
        ['sent', fmt.bytes(d.bytes_sent)], ['received', fmt.bytes(d.bytes_received)],
        ['packets', fmt.num(d.packets)], ['flows opened', fmt.num(d.flows)]]
        .map(([k, v]) => el('div', { class: 'card' }, el('div', { class: 'value' }, v), el('div', { class: 'label' }, k)))));
    const points = (d.history?.series[0]?.points || []).map(([x, y]) => ({ x, y }));
    const step = d.history?.step;
    const per = !step ? '' : step >= 86400 ? ` per ${step / 86400} d` : step >= 3600 ? ` per ${step / 3600} h` : ` per ${step / 60} min`;
    // One bucket (a short capture, a device seen for minutes) is a figure, not a line.
    const total = d.history?.series[0]?.total ?? 0;
    chart.replaceChildren(el('h2', {}, `Bytes${per}`), points.length >= 2 ? line(points, { format: fmt.bytes })
      : el('p', { class: 'muted' }, total ? `${fmt.bytes(total)} in the last day, all within one${per.replace(' per', '')} step.` : 'No stored history in the last day.'));
    const ranking = (title, rows) => el('table', { class: 'ranking' },
      el('thead', {}, el('tr', {}, el('th', {}, title), el('th', { class: 'num' }, 'bytes'), el('th', { class: 'num' }, 'flows'))),
      el('tbody', {}, (rows || []).map((r) => el('tr', {}, el('td', { class: 'name-cell' }, r.key),
        el('td', { class: 'num' }, fmt.bytes(r.bytes)), el('td', { class: 'num' }, fmt.num(r.flows))))));
    tops.replaceChildren(el('h2', {}, 'Destinations and applications'),
      ranking('destination', d.destinations), ranking('application', d.apps), ranking('peer', d.top_peers));
    addresses.replaceChildren(el('h2', {}, 'Addresses'), el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'address'), el('th', { class: 'num' }, 'first seen'), el('th', { class: 'num' }, 'last seen'))),
      el('tbody', {}, [...d.addresses].reverse().map((a) => el('tr', {},
        el('td', {}, el('a', { href: `#/sessions?ip=${encodeURIComponent(a.ip)}&window=all` }, a.ip)),
        el('td', { class: 'num' }, fmt.time(a.first_seen)), el('td', { class: 'num' }, fmt.time(a.last_seen)))))));
    names.replaceChildren(el('h2', {}, 'Names'), d.names.length === 0 ? el('p', { class: 'muted' }, 'It has not named itself.')
      : el('table', { id: 'device-names' }, el('tbody', {}, d.names.map((n) => el('tr', {},
        el('td', {}, n.name), el('td', { class: 'muted' }, n.source), el('td', { class: 'num' }, fmt.time(n.last_seen)))))));
    flows.replaceChildren(el('h2', {}, 'Recent flows'), d.recent_flows.length === 0 ? el('p', { class: 'muted' }, 'No stored flows.')
      : el('div', { class: 'scroll' }, el('table', {},
        el('thead', {}, el('tr', {}, ['flow', 'name', 'application', 'bytes', 'last seen'].map((t) => el('th', {}, t)))),
        el('tbody', {}, d.recent_flows.map((f) => el('tr', {},
          el('td', {}, `${f.src_ip}:${f.src_port} → ${f.dst_ip}:${f.dst_port} ${f.protocol}`),
          el('td', { class: 'name-cell' }, f.server_name || ''), el('td', { class: 'muted' }, f.app || ''),
          el('td', { class: 'num' }, fmt.bytes(f.total_bytes)), el('td', { class: 'num' }, fmt.time(f.last_seen))))))));
    alerts.replaceChildren(el('h2', {}, 'Alerts'), d.alerts.length === 0 ? el('p', { class: 'muted' }, 'No alerts about it.')
      : el('div', {}, d.alerts.map((a) => el('div', { class: `alert ${a.severity}` },
        el('header', {}, el('span', { class: `sev sev-${a.severity}` }, a.severity), el('strong', {}, a.alert_type), el('span', { class: 'muted' }, fmt.time(a.timestamp))),
        el('div', {}, a.description)))));
  }
  load();
  return null;
}
