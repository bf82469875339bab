// Session explorer: active and historical flows, filtered by IP, server name, application,
// protocol and time window, sortable, with a flow's details on click. A stored window is read
// a page at a time, newest first; "older" continues below the oldest flow shown (a cursor on
// the last-seen time, so that pages stay put while new flows are stored).
import { api, el, fmt, panel } from '../app.js';

export const title = 'Sessions';

const COLUMNS = [
  ['src_ip', 'source'], ['src_port', 'port'], ['dst_ip', 'destination'], ['dst_port', 'port'],
  ['server_name', 'name'], ['app_label', 'application'], ['protocol', 'proto'], ['total_bytes', 'bytes'], ['packet_count', 'packets'],
  ['duration', 'duration'], ['last_seen', 'last seen'], ['state', 'state'], ['tunnel_label', 'tunnel'],
];
const NUMERIC = new Set(['src_port', 'dst_port', 'total_bytes', 'packet_count', 'duration', 'last_seen']);
// A flow seen inside a tunnel names it (type and VNI, key or TEID); a tunnel's outer flow
// says what it carries.
const tunnelLabel = (f) => {
  if (f.tunnel) return [f.tunnel.type, f.tunnel.id].filter((x) => x !== undefined).join(' ');
  return f.carries ? `carries ${f.carries}` : '';
};
const tunnelDetail = (t) => `${t.type}${t.id !== undefined ? ` ${t.id}` : ''}: ${t.src_ip}${t.src_port !== undefined ? `:${t.src_port}` : ''}`
  + ` → ${t.dest_ip}${t.dest_port !== undefined ? `:${t.dest_port}` : ''} ${t.proto}, depth ${t.depth}`;

// An address opens its host page (the click does not also open the flow's details).
const hostLink = (ip) => el('a', { href: `#/host?ip=${encodeURIComponent(ip)}`, onclick: (e) => e.stopPropagation() }, ip);

// The application, marked when it is only the port's usual service.
const appLabel = (f) => (f.app ? `${f.app}${f.app_guessed ? ' ?' : ''}` : '');

const PAGE = 500;
const flowKey = (f) => `${f.id}/${f.first_seen}/${f.last_seen}/${f.src_ip}/${f.dst_ip}`;

const WINDOWS = [['active', 'active now'], ['300', 'last 5 min'], ['3600', 'last hour'], ['86400', 'last day'], ['all', 'all stored']];

export function render(main, params) {
  const ip = el('input', { placeholder: 'IP address', value: params.get('ip') || '', size: 18, id: 'flow-ip' });
  const name = el('input', { placeholder: 'name or domain', value: params.get('name') || '', size: 18, id: 'flow-name' });
  const app = el('input', { placeholder: 'application or category', value: params.get('app') || '', size: 16, id: 'flow-app' });
  const protocol = el('select', { id: 'flow-proto' }, ['', 'TCP', 'UDP', 'ICMP', 'ICMPv6'].map((p) => el('option', { value: p }, p || 'any protocol')));
  const windowSel = el('select', { id: 'flow-window' }, WINDOWS.map(([v, t]) => el('option', { value: v }, t)));
  protocol.value = params.get('protocol') || '';
  windowSel.value = params.get('window') || 'active';
  const status = el('span', { class: 'muted' });
  const newer = el('button', { id: 'flows-newer', type: 'button', hidden: true }, '‹ newer');
  const older = el('button', { id: 'flows-older', type: 'button', hidden: true }, 'older ›');
  const pageInfo = el('span', { class: 'muted', id: 'flows-page' });
  const pager = el('div', { class: 'filters' }, newer, pageInfo, older);
  const table = el('div', { class: 'scroll' });
  const details = el('div', { class: 'details' });
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load(); } },
    ip, name, app, protocol, windowSel, el('button', { class: 'primary', type: 'submit' }, 'Apply'), status);
  main.append(el('section', { class: 'panel wide' }, el('h2', {}, 'Flows'), form, pager, table, details));
  // Pages of a stored window: the end time each page was read up to (newest first), and the
  // flows at the boundary already shown, left out of the next page.
  let pages = [];
  let boundary = new Set();
  newer.addEventListener('click', () => { pages.pop(); load(true); });
  older.addEventListener('click', () => {
    const oldest = Math.min(...flows.map((f) => f.last_seen));
    boundary = new Set(flows.filter((f) => f.last_seen === oldest).map(flowKey));
    // A page whose flows all ended at one instant steps past it.
    pages.push(boundary.size === flows.length ? oldest - 1e-6 : oldest);
    load(true);
  });

  let flows = [];
  let sort = { key: 'last_seen', desc: true };

  const draw = () => {
    const rows = [...flows].sort((a, b) => {
      const [x, y] = [a[sort.key], b[sort.key]];
      const c = NUMERIC.has(sort.key) ? (x ?? 0) - (y ?? 0) : String(x).localeCompare(String(y));
      return sort.desc ? -c : c;
    });
    table.replaceChildren(el('table', { id: 'flows-table' },
      el('thead', {}, el('tr', {}, COLUMNS.map(([k, t]) => el('th', {
        class: NUMERIC.has(k) ? 'num' : '',
        onclick: () => { sort = { key: k, desc: sort.key === k ? !sort.desc : true }; draw(); },
      }, t + (sort.key === k ? (sort.desc ? ' ▾' : ' ▴') : ''))))),
      el('tbody', {}, rows.map((f) => el('tr', { class: 'clickable', onclick: () => showDetails(f) },
        el('td', {}, hostLink(f.src_ip), f.src_device ? el('span', { class: 'host-name' }, f.src_device) : ''),
        el('td', { class: 'num' }, f.src_port),
        el('td', {}, hostLink(f.dst_ip), f.dst_device ? el('span', { class: 'host-name' }, f.dst_device) : ''),
        el('td', { class: 'num' }, f.dst_port),
        el('td', { class: 'name-cell', title: f.name_source ? `from ${f.name_source}` : '' }, f.server_name || ''),
        el('td', { class: 'muted', title: f.category || '' }, f.app_label), el('td', {}, f.protocol),
        el('td', { class: 'num' }, fmt.bytes(f.total_bytes)), el('td', { class: 'num' }, fmt.num(f.packet_count)),
        el('td', { class: 'num' }, fmt.dur(f.duration)), el('td', { class: 'num' }, fmt.time(f.last_seen)),
        el('td', {}, f.state), el('td', { class: 'muted' }, f.tunnel_label))))));
  };

  const showDetails = (f) => {
    const rows = [
      ['flow', `${f.src_ip}:${f.src_port} → ${f.dst_ip}:${f.dst_port} ${f.protocol}`],
      ['bytes', `${fmt.bytes(f.total_bytes)} (→ ${fmt.bytes(f.src_bytes)}, ← ${fmt.bytes(f.dst_bytes)})`],
      ['packets', `${fmt.num(f.packet_count)} (→ ${fmt.num(f.src_packets)}, ← ${fmt.num(f.dst_packets)})`],
      ['duration', fmt.dur(f.duration)], ['first seen', fmt.time(f.first_seen)], ['last seen', fmt.time(f.last_seen)],
      ['rate', `${fmt.bytes(f.bytes_per_sec)}/s`], ['TCP flags', (f.tcp_flags || []).join(', ') || '–'],
      ['state', `${f.state} (${f.end_reason})`], ['Community ID', f.community_id || '–'], ['VLAN', f.vlan ?? '–'],
    ];
    if (f.server_name) rows.push(['server name', `${f.server_name} (from ${f.name_source})`]);
    if (f.app) rows.push(['application', `${f.app} (${f.category})${f.app_guessed ? ', guessed from the port' : ''}`]);
    if (f.ja4) rows.push(['TLS', [f.tls_version, f.alpn && `ALPN ${f.alpn}`, f.tls_cipher && `cipher ${f.tls_cipher}`].filter(Boolean).join(', ')], ['JA4', f.ja4]);
    if (f.http_host) rows.push(['HTTP host', f.http_host]);
    if (f.http_user_agent) rows.push(['User-Agent', f.http_user_agent]);
    if (f.tunnel) rows.push(['tunnel', tunnelDetail(f.tunnel)]);
    if (f.carries) rows.push(['carries', `${f.carries} tunnel (this is its outer flow)`]);
    details.replaceChildren(el('h2', {}, 'Flow details'), el('dl', {}, rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
  };

  async function load(paging = false) {
    if (!paging) { pages = []; boundary = new Set(); }
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (ip.value.trim()) q.set('ip', ip.value.trim());
    if (name.value.trim()) q.set('name', name.value.trim());
    if (app.value.trim()) q.set('app', app.value.trim());
    if (protocol.value) q.set('protocol', protocol.value);
    const w = windowSel.value;
    if (w !== 'active') {
      // Windows count back from the newest packet (packet time: a replayed capture's day).
      const stats = await api('/stats').catch(() => ({}));
      const now = stats.timestamp ?? Date.now() / 1000;
      q.set('start_time', w === 'all' ? '0' : String(Math.max(0, now - Number(w))));
      q.set('end_time', String(pages.length ? pages[pages.length - 1] : now + 1));
    }
    const shown = new URLSearchParams({ ip: ip.value.trim(), name: name.value.trim(), app: app.value.trim(), protocol: protocol.value, window: w });
    history.replaceState(null, '', `#/sessions?${shown}`);
    status.textContent = 'loading…';
    try {
      const body = await api(`/flows?${q}`);
      const page = pages.length ? body.flows.filter((f) => !boundary.has(flowKey(f))) : body.flows;
      flows = page.map((f) => ({ ...f, tunnel_label: tunnelLabel(f), app_label: appLabel(f) }));
      status.textContent = `${flows.length} flows (${body.source})`;
      const stored = w !== 'active';
      newer.hidden = !stored || pages.length === 0;
      older.hidden = !stored || body.count < PAGE || flows.length === 0;
      pageInfo.textContent = stored && (pages.length || body.count >= PAGE) ? `page ${pages.length + 1}, newest first` : '';
      status.className = 'muted';
      draw();
    } catch (e) {
      status.textContent = e.message;
      status.className = 'error';
    }
  }
  load();
  const timer = setInterval(() => { if (windowSel.value === 'active') load(); }, 5000);
  return () => clearInterval(timer);
}
