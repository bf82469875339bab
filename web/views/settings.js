// Settings: privacy (IP masking), data retention, the account, API tokens.
import { api, el, fmt, panel, session } from '../app.js';
import { passwordForm } from './login.js';

export const title = 'Settings';

export function render(main) {
  const privacy = el('div', { class: 'stack', id: 'settings-privacy' });
  const retention = el('dl', { class: 'details', id: 'settings-retention' });
  const tokens = el('div', { class: 'stack', id: 'settings-tokens' });
  const notify = el('div', { class: 'stack', id: 'settings-notify' });
  const intel = el('div', { class: 'stack', id: 'settings-intel' });
  main.append(
    panel('Privacy', privacy),
    panel('Data retention', retention),
    wide(panel('Notifications', notify)),
    wide(panel('Threat lists', intel)),
    panel('Your account', el('p', {}, `Logged in as ${session.user} (${session.role}).`),
      session.authEnabled && session.csrf ? passwordForm() : el('p', { class: 'muted' }, 'No password applies to this session.')),
  );
  if (session.role === 'admin' && session.authEnabled) main.append(panel('API tokens', tokens));

  // Their tables have many columns: the whole row of the grid, scrolling sideways if need be.
  function wide(section) { section.classList.add('wide', 'scroll-x'); return section; }
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
    showNotify(s.notify || []);
    showIntel(s.intel || []);
  }

  // Targets come from [[notify]] in the config; secrets read "set" or "unset", never their value.
  function showNotify(targets) {
    const admin = session.role === 'admin' && session.authEnabled;
    if (!targets.length) {
      notify.replaceChildren(el('p', { class: 'muted' }, 'No targets yet. Add one below, or [[notify]] entries in the config (see the README\'s recipes).'),
        ...(admin ? [targetForm()] : []));
      return;
    }
    const result = el('p', { id: 'notify-result', class: 'muted' });
    const rows = targets.map((t) => {
      const c = t.counters || {};
      const test = el('button', { type: 'button', class: 'notify-test', disabled: session.role !== 'admin' }, 'Send test');
      test.addEventListener('click', async () => {
        test.disabled = true;
        result.textContent = `Sending a test to ${t.name}…`;
        try {
          const r = await api('/notify/test', { method: 'POST', json: { target: t.name } });
          result.textContent = r.ok ? `${t.name} answered ${r.status}: ${r.answer || 'OK'}` : `${t.name} failed: ${r.error}`;
          result.className = r.ok ? 'notice' : 'error';
        } catch (err) { result.textContent = err.message; result.className = 'error'; }
        test.disabled = session.role !== 'admin';
      });
      const remove = t.origin === 'dashboard' && admin
        ? el('button', { type: 'button', class: 'notify-remove', onclick: async () => {
          if (!confirm(`Remove the target ${t.name}?`)) return;
          try { showNotify((await api(`/notify/targets/${encodeURIComponent(t.name)}`, { method: 'DELETE' })).targets); } catch (err) { alert(err.message); }
        } }, 'Remove')
        : el('span', { class: 'muted' }, t.origin === 'config' ? 'config file' : '');
      return el('tr', {}, el('td', {}, t.name), el('td', {}, t.kind), el('td', {}, `${t.min_severity}+`),
        el('td', {}, `${t.rate_per_minute}/min`), el('td', {}, fmt.num(c.sent ?? 0)), el('td', {}, fmt.num(c.failed ?? 0)),
        el('td', {}, fmt.num(c.dropped ?? 0)), el('td', {}, c.last_error || ''), el('td', {}, test, ' ', remove));
    });
    notify.replaceChildren(
      el('table', { id: 'notify-targets' }, el('thead', {}, el('tr', {}, ...['name', 'kind', 'severity', 'rate', 'sent', 'failed', 'dropped', 'last error', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows)),
      result, ...(admin ? [targetForm()] : []));
  }

  // Adds (or, under an existing name, changes) a target kept with the credentials. Secrets
  // left empty keep their saved values.
  function targetForm() {
    const input = (name, attrs = {}) => el('input', { name, id: `notify-${name}`, placeholder: name.replace('_', ' '), ...attrs });
    const select = (name, options, value) => el('select', { name, id: `notify-${name}` },
      ...options.map((o) => el('option', { value: o, selected: o === value }, o)));
    const fields = [
      input('name', { required: true }),
      select('kind', ['ntfy', 'telegram', 'slack', 'discord', 'gotify', 'webhook', 'email'], 'ntfy'),
      input('url', { placeholder: 'url (topic, webhook or server)' }),
      input('token', { type: 'password', autocomplete: 'off' }),
      input('chat_id'),
      select('min_severity', ['low', 'medium', 'high', 'critical'], 'high'),
      input('rate_per_minute', { type: 'number', min: 1, value: 10 }),
      input('smtp_host'), input('smtp_port', { type: 'number' }), select('smtp_security', ['starttls', 'tls', 'none'], 'starttls'),
      input('smtp_user'), input('smtp_password', { type: 'password', autocomplete: 'off' }), input('from'), input('to', { placeholder: 'to (comma-separated)' }),
    ];
    const form = el('form', { class: 'filters', id: 'notify-form' }, ...fields, el('button', { type: 'submit', id: 'notify-save' }, 'Save target'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {};
      for (const f of fields) {
        const v = f.value.trim();
        if (v === '') continue;
        if (f.name === 'to') body.to = v.split(',').map((x) => x.trim()).filter(Boolean);
        else if (f.name === 'rate_per_minute' || f.name === 'smtp_port') body[f.name] = Number(v);
        else body[f.name] = v;
      }
      if (body.kind !== 'email') for (const k of ['smtp_security']) delete body[k];
      try { showNotify((await api('/notify/targets', { method: 'POST', json: body })).targets); } catch (err) { alert(err.message); }
    });
    return form;
  }

  function showIntel(lists) {
    if (!lists.length) {
      intel.replaceChildren(el('p', { class: 'muted' }, 'No lists. Add [[intel.list]] entries to the config.'));
      return;
    }
    const age = (t) => {
      if (!t) return 'never';
      const s = Math.max(0, Date.now() / 1000 - t);
      return s < 3600 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
    };
    const rows = lists.map((l) => el('tr', { class: l.stale ? 'stale' : '' }, el('td', {}, l.name), el('td', {}, l.source),
      el('td', {}, fmt.num(l.entries.networks + l.entries.domains + l.entries.ja4)), el('td', {}, age(l.updated) + (l.stale ? ' (stale)' : '')),
      el('td', {}, fmt.num(l.malformed)), el('td', {}, l.last_error || '')));
    intel.replaceChildren(el('table', { id: 'intel-lists' },
      el('thead', {}, el('tr', {}, ...['list', 'source', 'entries', 'age', 'lines not understood', 'last error'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
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
