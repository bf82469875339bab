// Timeline replay: upload a capture, choose the speed, watch it play, stop it.
import { api, el, fmt, panel } from '../app.js';

export const title = 'Replay';

export function render(main) {
  const file = el('input', { type: 'file', id: 'replay-file', accept: '.pcap,.pcapng,.cap,.zst' });
  const speed = el('select', { id: 'replay-speed' },
    [['1', '1× (as recorded)'], ['10', '10×'], ['100', '100×'], ['0', 'as fast as possible']].map(([v, t]) => el('option', { value: v }, t)));
  const upload = el('button', { class: 'primary', id: 'replay-upload', type: 'submit' }, 'Upload and replay');
  const stop = el('button', { id: 'replay-stop', type: 'button' }, 'Stop');
  const message = el('p', { id: 'replay-message', class: 'muted' });
  const status = el('dl', { class: 'details', id: 'replay-status' });
  const form = el('form', { class: 'filters admin-only' }, file, speed, upload, stop);
  main.append(panel('Replay a capture', form, message), panel('Now playing', status));

  const say = (text, error = false) => { message.textContent = text; message.className = error ? 'error' : 'muted'; };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!file.files.length) return say('Choose a pcap or pcapng file first.', true);
    const body = new FormData();
    body.append('file', file.files[0]);
    body.append('speed', speed.value);
    say('uploading…');
    try {
      const r = await api('/pcap/upload', { method: 'POST', body });
      say(`${r.message} (${fmt.num(r.frames)} packets)`);
    } catch (err) {
      say(err.message, true);
    }
    refresh();
  });
  stop.addEventListener('click', async () => {
    try { await api('/pcap/replay/stop', { method: 'POST' }); say('stopped'); } catch (err) { say(err.message, true); }
    refresh();
  });

  async function refresh() {
    try {
      const d = await api('/debug');
      const s = d.capture.sources;
      const rows = [['mode', d.mode], ['base source', `${s.base.source} (${s.base.state})`],
        ['upload', s.upload ? `${s.upload.source} (${s.upload.state}, ${s.upload.running_secs.toFixed(1)} s)` : 'none'],
        ['uploads replayed', s.uploads_replayed], ['packets (current pipeline)', fmt.num(d.capture.frames)]];
      status.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    } catch (err) {
      status.replaceChildren(el('dd', { class: 'error' }, err.message));
    }
  }
  refresh();
  const timer = setInterval(refresh, 2000);
  return () => clearInterval(timer);
}
