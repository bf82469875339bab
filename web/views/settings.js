// Settings: privacy (IP masking), data retention, the account, API tokens.
import { api, el, fmt, panel, session } from '../app.js';
import { passwordForm } from './login.js';

export const title = 'Settings';

export function render(main) {
  const privacy = el('div', { class: 'stack', id: 'settings-privacy' });
  const retention = el('dl', { class: 'details', id: 'settings-retention' });
  const tokens = el('div', { class: 'stack', id: 'settings-tokens' });
  main.append(
    panel('Privacy', privacy),
    panel('Data retention', retention),
    panel('Your account', el('p', {}, `Logged in as ${session.user} (${session.role}).`),
      session.authEnabled && session.csrf ? passwordForm() : el('p', { class: 'muted' }, 'No password applies to this session.')),
  );
  if (session.role === 'admin' && session.authEnabled) main.append(panel('API tokens', tokens));

  const dl = (rows) => rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]);
  async function load() {
    let s;
    try { s = await api('/settings'); } catch (err) { privacy.replaceChildren(el('p', { class: 'error' }, err.message)); return; }
    const toggle = el('input', { type: 'checkbox', id: 'ip-masking', checked: s.privacy.ip_masking, disabled: session.role !== 'admin' });
    toggle.addEventListener('change', async () => {
      try { await api('/settings', { method: 'POST', json: { ip_masking: toggle.checked } }); } catch (err) { toggle.checked = !toggle.checked; alert(err.message); }
    });
    privacy.replaceChildren(
      el('label', {}, el('span', {}, toggle, ' Mask IP addresses (show /24 and /48 networks) for everyone')),
      el('p', { class: 'muted' }, `Payload inspection: ${s.privacy.payload_inspection ? 'on' : 'off'}. ${s.privacy.payload_note}.`),
      el('p', { class: 'muted', id: 'names-note' }, `${s.privacy.names_note}.`));
    const r = s.retention;
    retention.replaceChildren(...dl([['flows', `${r.flows_days} days`], ['alerts', `${r.alerts_days} days`],
      ['minute snapshots', `${r.snapshots_days} days`], ['disk budget', fmt.bytes(r.max_disk_mb * 1e6)],
      ['', r.note], ...(s.tls ? [['TLS certificate (SHA-256)', s.tls.fingerprint_sha256]] : []),
      ...(s.auth ? [['sessions', `end after ${s.auth.session_hours} h, or ${s.auth.idle_minutes} min unused`]] : [])]));
  }

  async function loadTokens(created) {
    if (session.role !== 'admin' || !session.authEnabled) return;
    const name = el('input', { id: 'token-name', placeholder: 'what it is for, e.g. prometheus', required: true });
    const role = el('select', { id: 'token-role' }, el('option', { value: 'viewer' }, 'viewer (read only)'), el('option', { value: 'admin' }, 'admin'));
    const form = el('form', { class: 'filters' }, name, role, el('button', { type: 'submit', id: 'token-create' }, 'Create token'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try { const t = await api('/auth/tokens', { method: 'POST', json: { name: name.value, role: role.value } }); loadTokens(t); } catch (err) { alert(err.message); }
    });
    let list = [];
    try { ({ tokens: list } = await api('/auth/tokens')); } catch { /* shown empty */ }
    const rows = list.map((t) => el('tr', {}, el('td', {}, t.name), el('td', {}, t.role), el('td', {}, fmt.time(t.created)),
      el('td', {}, el('button', { type: 'button', onclick: async () => { await api(`/auth/tokens/${t.id}`, { method: 'DELETE' }); loadTokens(); } }, 'Revoke'))));
    tokens.replaceChildren(
      ...(created ? [el('p', { class: 'notice' }, `New token “${created.name}” — copy it now, it is not shown again:`), el('code', { class: 'token', id: 'token-new' }, created.token)] : []),
      form,
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'name'), el('th', {}, 'role'), el('th', {}, 'created'), el('th', {}, ''))), el('tbody', {}, rows)),
      el('p', { class: 'muted' }, 'Send a token as “Authorization: Bearer <token>” (Prometheus: authorization.credentials_file).'));
  }
  load();
  loadTokens();
}
