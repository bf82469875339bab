// Network graph: hosts as nodes (sized by bytes), flows as links (width by traffic), laid out
// by a force simulation and fitted into the canvas, labelled by name where one is known
// (the address otherwise), optionally grouped and coloured by application. Labels are
// placed so that none overlaps another or a node; one that finds no room is left out and
// shown on hover. Nodes can be dragged. Capped to the busiest hosts.
import { api, el, fmt } from '../app.js';
import { PALETTE } from '../lib/charts.js';

export const title = 'Graph';

const MAX_NODES = 40;
const HEIGHT = 560;
// Room kept free at the canvas edges (nodes are fitted inside it, never pinned to it).
const MARGIN = 24;
const LABEL_MAX = 30;

export function render(main) {
  const canvas = el('canvas', { id: 'graph', height: HEIGHT });
  const status = el('span', { class: 'muted' });
  const group = el('input', { type: 'checkbox', id: 'graph-group' });
  const tools = el('div', { class: 'graph-tools' }, el('label', {}, group, ' group by application'), status);
  main.append(el('section', { class: 'panel wide' }, el('h2', {}, `Hosts and flows (top ${MAX_NODES} hosts)`), tools, canvas));
  const ctx = canvas.getContext('2d');
  let nodes = new Map();
  let links = [];
  let dragging = null;
  let hover = null;
  let frame = 0;
  // Simulation heat: it cools as the layout settles and warms on new data or a drag.
  let heat = 1;
  // World → canvas: scale and offsets, refitted every frame.
  let view = { s: 1, ox: 0, oy: 0 };

  const size = () => [canvas.clientWidth || 800, HEIGHT];
  const resize = () => {
    canvas.width = size()[0] * devicePixelRatio;
    canvas.height = HEIGHT * devicePixelRatio;
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
  };
  group.addEventListener('change', () => { heat = 1; });

  async function load() {
    let { flows } = await api('/flows?limit=2000').catch(() => ({ flows: [] }));
    if (flows.length === 0) {
      // Nothing active (a finished replay): the stored history.
      ({ flows } = await api('/flows?limit=2000&start_time=0').catch(() => ({ flows: [] })));
    }
    const bytes = new Map();
    // Per server address, the bytes by name and by application its flows were seen with.
    const names = new Map();
    const apps = new Map();
    const tally = (map, ip, key, n) => {
      if (!key) return;
      const m = map.get(ip) || new Map();
      m.set(key, (m.get(key) || 0) + n);
      map.set(ip, m);
    };
    for (const f of flows) {
      for (const ip of [f.src_ip, f.dst_ip]) bytes.set(ip, (bytes.get(ip) || 0) + f.total_bytes);
      tally(names, f.dst_ip, f.server_name, f.total_bytes);
      tally(apps, f.dst_ip, f.app && !f.app_guessed ? `${f.app}\u0000${f.category}` : null, f.total_bytes);
    }
    const best = (m) => (m ? [...m.entries()].sort((a, b) => b[1] - a[1])[0][0] : null);
    const top = [...bytes.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_NODES).map(([ip]) => ip);
    const next = new Map();
    top.forEach((ip, i) => {
      const old = nodes.get(ip);
      const [app, category] = (best(apps.get(ip)) || '\u0000').split('\u0000');
      // New nodes start on a spiral around the centre: no two on one spot.
      const angle = i * 2.4, radius = 30 * Math.sqrt(i + 1);
      next.set(ip, {
        ip, bytes: bytes.get(ip), name: best(names.get(ip)), app: app || null, category: category || null,
        x: old ? old.x : Math.cos(angle) * radius, y: old ? old.y : Math.sin(angle) * radius,
        vx: 0, vy: 0,
      });
    });
    const changed = next.size !== nodes.size || top.some((ip) => !nodes.has(ip));
    nodes = next;
    const pairs = new Map();
    for (const f of flows) {
      if (!next.has(f.src_ip) || !next.has(f.dst_ip) || f.src_ip === f.dst_ip) continue;
      const key = [f.src_ip, f.dst_ip].sort().join(' ');
      pairs.set(key, (pairs.get(key) || 0) + f.total_bytes);
    }
    links = [...pairs.entries()].map(([k, b]) => { const [a, c] = k.split(' '); return { a, b: c, bytes: b }; });
    status.textContent = `${nodes.size} hosts, ${links.length} links from ${flows.length} flows`;
    canvas.dataset.nodes = nodes.size;
    if (changed) heat = 1;
  }

  // One step of a Fruchterman–Reingold layout in world units (ideal distance `k`), with a
  // pull to the centre, and with grouping a pull towards the centre of each application.
  function simulate() {
    const list = [...nodes.values()];
    if (list.length === 0) return;
    const k = 70;
    for (const a of list) { a.fx = -a.x * 0.02; a.fy = -a.y * 0.02; }
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i], b = list[j];
        let dx = a.x - b.x, dy = a.y - b.y;
        let d = Math.hypot(dx, dy);
        if (d < 0.01) { dx = (i - j) * 0.01; dy = 0.01; d = Math.hypot(dx, dy); }
        const f = (k * k) / d;
        a.fx += (dx / d) * f; a.fy += (dy / d) * f; b.fx -= (dx / d) * f; b.fy -= (dy / d) * f;
      }
    }
    for (const l of links) {
      const a = nodes.get(l.a), b = nodes.get(l.b);
      const dx = b.x - a.x, dy = b.y - a.y, d = Math.hypot(dx, dy) || 0.01, f = (d * d) / k / 4;
      a.fx += (dx / d) * f; a.fy += (dy / d) * f; b.fx -= (dx / d) * f; b.fy -= (dy / d) * f;
    }
    if (group.checked) {
      const centres = new Map();
      for (const n of list.filter((n) => n.app)) {
        const c = centres.get(n.app) || { x: 0, y: 0, n: 0 };
        c.x += n.x; c.y += n.y; c.n += 1;
        centres.set(n.app, c);
      }
      for (const n of list.filter((n) => n.app && centres.get(n.app).n > 1)) {
        const c = centres.get(n.app);
        n.fx += (c.x / c.n - n.x) * 0.5; n.fy += (c.y / c.n - n.y) * 0.5;
      }
    }
    // Each node moves at most `heat` × 20 world units a step.
    const limit = 20 * heat;
    for (const n of list) {
      if (n === dragging) continue;
      const f = Math.hypot(n.fx, n.fy) || 1;
      const step = Math.min(f, limit);
      n.x += (n.fx / f) * step; n.y += (n.fy / f) * step;
    }
    heat = Math.max(0.02, heat * 0.97);
  }

  // Fits the world's bounding box into the canvas inside its margins, keeping the aspect.
  function fit(list, w, h) {
    if (dragging) return;
    const xs = list.map((n) => n.x), ys = list.map((n) => n.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const s = Math.min((w - 2 * MARGIN - 120) / Math.max(x1 - x0, 1), (h - 2 * MARGIN) / Math.max(y1 - y0, 1), 2);
    view = { s, ox: MARGIN + 60 + ((w - 2 * MARGIN - 120) - (x1 - x0) * s) / 2 - x0 * s, oy: MARGIN + ((h - 2 * MARGIN) - (y1 - y0) * s) / 2 - y0 * s };
  }
  const toCanvas = (n) => [n.x * view.s + view.ox, n.y * view.s + view.oy];

  const labelOf = (n) => {
    const text = n.name || n.ip;
    return text.length > LABEL_MAX ? `…${text.slice(-(LABEL_MAX - 1))}` : text;
  };
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  function draw() {
    const [w, h] = size();
    const list = [...nodes.values()];
    if (list.length) fit(list, w, h);
    const style = getComputedStyle(document.body);
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = style.getPropertyValue('--muted');
    for (const l of links) {
      const [ax, ay] = toCanvas(nodes.get(l.a)), [bx, by] = toCanvas(nodes.get(l.b));
      ctx.globalAlpha = 0.45;
      ctx.lineWidth = Math.max(0.5, Math.log10(1 + l.bytes) - 2);
      ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke();
    }
    ctx.globalAlpha = 1;
    const max = Math.max(1, ...list.map((n) => n.bytes));
    const categories = [...new Set(list.map((n) => n.category).filter(Boolean))].sort();
    const drawn = [];
    for (const n of list) {
      n.r = 4 + 12 * Math.sqrt(n.bytes / max);
      const [x, y] = toCanvas(n);
      n.cx = x; n.cy = y;
      ctx.fillStyle = group.checked && n.category ? PALETTE[categories.indexOf(n.category) % PALETTE.length] : '#4fb3ff';
      ctx.beginPath(); ctx.arc(x, y, n.r, 0, Math.PI * 2); ctx.fill();
      drawn.push({ x: x - n.r, y: y - n.r, w: 2 * n.r, h: 2 * n.r });
    }
    // Labels, busiest first, each where it overlaps nothing drawn or placed.
    ctx.font = '11px system-ui';
    ctx.fillStyle = style.getPropertyValue('--text');
    const placed = [];
    const layout = [];
    for (const n of [...list].sort((a, b) => b.bytes - a.bytes)) {
      const text = labelOf(n);
      const tw = ctx.measureText(text).width, th = 13;
      const spots = [
        { x: n.cx + n.r + 3, y: n.cy - th / 2 }, { x: n.cx - n.r - 3 - tw, y: n.cy - th / 2 },
        { x: n.cx - tw / 2, y: n.cy - n.r - 2 - th }, { x: n.cx - tw / 2, y: n.cy + n.r + 2 },
        { x: n.cx + n.r + 3, y: n.cy - n.r - th }, { x: n.cx + n.r + 3, y: n.cy + n.r },
        { x: n.cx - n.r - 3 - tw, y: n.cy - n.r - th }, { x: n.cx - n.r - 3 - tw, y: n.cy + n.r },
      ].map((p) => ({ ...p, w: tw, h: th }));
      const spot = spots.find((r) => r.x >= 0 && r.y >= 0 && r.x + r.w <= w && r.y + r.h <= h
        && !placed.some((p) => overlaps(p, r)) && !drawn.some((d) => overlaps(d, r)));
      if (spot || n === hover) {
        const r = spot || spots[0];
        ctx.fillText(text, r.x, r.y + th - 3);
        if (spot) placed.push(r);
      }
      layout.push({ ip: n.ip, name: n.name, app: n.app, x: n.cx, y: n.cy, r: n.r, label: spot ? { text, x: spot.x, y: spot.y, w: spot.w, h: spot.h } : null });
    }
    if (hover && !nodes.has(hover.ip)) hover = null;
    canvas.dataset.layout = JSON.stringify({ width: w, height: h, heat, nodes: layout });
  }

  function tick() {
    simulate();
    draw();
    frame = requestAnimationFrame(tick);
  }

  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  const nodeAt = ([x, y]) => [...nodes.values()].find((n) => Math.hypot(n.cx - x, n.cy - y) <= (n.r || 8) + 3) || null;
  canvas.addEventListener('pointerdown', (e) => {
    dragging = nodeAt(at(e));
    if (dragging) canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener('pointermove', (e) => {
    const p = at(e);
    if (dragging) {
      dragging.x = (p[0] - view.ox) / view.s;
      dragging.y = (p[1] - view.oy) / view.s;
      heat = Math.max(heat, 0.3);
    } else {
      hover = nodeAt(p);
    }
  });
  canvas.addEventListener('pointerup', () => { dragging = null; });

  resize();
  window.addEventListener('resize', resize);
  load();
  frame = requestAnimationFrame(tick);
  const timer = setInterval(load, 5000);
  return () => { clearInterval(timer); cancelAnimationFrame(frame); window.removeEventListener('resize', resize); };
}
