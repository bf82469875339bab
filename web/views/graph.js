// Network graph: hosts as nodes (sized by bytes), flows as links (width by traffic), laid out
// by a small force simulation on a canvas; nodes can be dragged. Capped to the busiest hosts.
import { api, el, fmt } from '../app.js';

export const title = 'Graph';

const MAX_NODES = 40;

export function render(main) {
  const canvas = el('canvas', { id: 'graph', height: 560 });
  const status = el('span', { class: 'muted' });
  main.append(el('section', { class: 'panel wide' }, el('h2', {}, `Hosts and flows (top ${MAX_NODES} hosts)`), status, canvas));
  const ctx = canvas.getContext('2d');
  let nodes = new Map();
  let links = [];
  let dragging = null;
  let frame = 0;

  const resize = () => {
    canvas.width = canvas.clientWidth * devicePixelRatio;
    canvas.height = 560 * devicePixelRatio;
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  };

  async function load() {
    let { flows } = await api('/flows?limit=2000').catch(() => ({ flows: [] }));
    if (flows.length === 0) {
      // Nothing active (a finished replay): the stored history.
      ({ flows } = await api('/flows?limit=2000&start_time=0').catch(() => ({ flows: [] })));
    }
    const bytes = new Map();
    for (const f of flows) for (const ip of [f.src_ip, f.dst_ip]) bytes.set(ip, (bytes.get(ip) || 0) + f.total_bytes);
    const top = new Set([...bytes.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_NODES).map(([ip]) => ip));
    const w = canvas.clientWidth || 800;
    const next = new Map();
    for (const ip of top) {
      const old = nodes.get(ip);
      next.set(ip, old ? { ...old, bytes: bytes.get(ip) } : { ip, bytes: bytes.get(ip), x: w / 2 + (Math.random() - 0.5) * 200, y: 280 + (Math.random() - 0.5) * 200, vx: 0, vy: 0 });
    }
    nodes = next;
    const pairs = new Map();
    for (const f of flows) {
      if (!top.has(f.src_ip) || !top.has(f.dst_ip) || f.src_ip === f.dst_ip) continue;
      const key = [f.src_ip, f.dst_ip].sort().join(' ');
      pairs.set(key, (pairs.get(key) || 0) + f.total_bytes);
    }
    links = [...pairs.entries()].map(([k, b]) => { const [a, c] = k.split(' '); return { a, b: c, bytes: b }; });
    status.textContent = `${nodes.size} hosts, ${links.length} links from ${flows.length} flows`;
    canvas.dataset.nodes = nodes.size;
  }

  function step() {
    const list = [...nodes.values()];
    const w = canvas.clientWidth || 800, h = 560;
    for (const a of list) {
      for (const b of list) {
        if (a === b) continue;
        const dx = a.x - b.x, dy = a.y - b.y, d2 = Math.max(dx * dx + dy * dy, 25);
        a.vx += (dx / d2) * 250; a.vy += (dy / d2) * 250;
      }
      a.vx += (w / 2 - a.x) * 0.006; a.vy += (h / 2 - a.y) * 0.006;
    }
    for (const l of links) {
      const a = nodes.get(l.a), b = nodes.get(l.b);
      const dx = b.x - a.x, dy = b.y - a.y, d = Math.hypot(dx, dy) || 1, f = (d - 100) * 0.006;
      a.vx += (dx / d) * f; a.vy += (dy / d) * f; b.vx -= (dx / d) * f; b.vy -= (dy / d) * f;
    }
    for (const n of list) {
      if (n === dragging) continue;
      n.vx *= 0.8; n.vy *= 0.8;
      n.x = Math.min(w - 10, Math.max(10, n.x + n.vx)); n.y = Math.min(h - 10, Math.max(10, n.y + n.vy));
    }
    const style = getComputedStyle(document.body);
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = style.getPropertyValue('--muted');
    for (const l of links) {
      const a = nodes.get(l.a), b = nodes.get(l.b);
      ctx.globalAlpha = 0.5;
      ctx.lineWidth = Math.max(0.5, Math.log10(1 + l.bytes) - 2);
      ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
    }
    ctx.globalAlpha = 1;
    const max = Math.max(1, ...list.map((n) => n.bytes));
    for (const n of list) {
      n.r = 4 + 16 * Math.sqrt(n.bytes / max);
      ctx.fillStyle = '#4fb3ff';
      ctx.beginPath(); ctx.arc(n.x, n.y, n.r, 0, Math.PI * 2); ctx.fill();
      ctx.fillStyle = style.getPropertyValue('--text');
      ctx.font = '11px system-ui';
      ctx.fillText(`${n.ip} ${fmt.bytes(n.bytes)}`, n.x + n.r + 3, n.y + 4);
    }
    frame = requestAnimationFrame(step);
  }

  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  canvas.addEventListener('pointerdown', (e) => {
    const [x, y] = at(e);
    dragging = [...nodes.values()].find((n) => Math.hypot(n.x - x, n.y - y) <= (n.r || 8) + 3) || null;
    if (dragging) canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener('pointermove', (e) => { if (dragging) [dragging.x, dragging.y] = at(e); });
  canvas.addEventListener('pointerup', () => { dragging = null; });

  resize();
  window.addEventListener('resize', resize);
  load();
  frame = requestAnimationFrame(step);
  const timer = setInterval(load, 5000);
  return () => { clearInterval(timer); cancelAnimationFrame(frame); window.removeEventListener('resize', resize); };
}
