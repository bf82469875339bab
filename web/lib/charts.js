// Small SVG charts drawn by hand: a doughnut and a line chart.
const NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

export const PALETTE = ['#4fb3ff', '#3ecf8e', '#e5c07b', '#f08c4c', '#c678dd', '#ff5a5f', '#56b6c2', '#98c379', '#d19a66', '#8a99a8'];

/** A doughnut of `entries` ([label, value]) with a legend; returns [svg, legend]. */
export function doughnut(entries) {
  const total = entries.reduce((s, [, v]) => s + v, 0) || 1;
  const chart = svg('svg', { viewBox: '-1.1 -1.1 2.2 2.2', width: 180, height: 180, role: 'img' });
  let angle = -Math.PI / 2;
  entries.forEach(([label, value], i) => {
    const sweep = (value / total) * Math.PI * 2;
    const a0 = angle, a1 = angle + Math.min(sweep, Math.PI * 2 - 1e-4);
    angle += sweep;
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const [x0, y0, x1, y1] = [Math.cos(a0), Math.sin(a0), Math.cos(a1), Math.sin(a1)];
    const path = `M ${x0} ${y0} A 1 1 0 ${large} 1 ${x1} ${y1} L ${x1 * 0.6} ${y1 * 0.6} A 0.6 0.6 0 ${large} 0 ${x0 * 0.6} ${y0 * 0.6} Z`;
    chart.append(svg('path', { d: path, fill: PALETTE[i % PALETTE.length] }, svg('title', {}, `${label}: ${value}`)));
  });
  const legend = document.createElement('div');
  legend.className = 'legend';
  entries.forEach(([label, value], i) => {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = PALETTE[i % PALETTE.length];
    item.append(swatch, `${label} ${((value / total) * 100).toFixed(1)} %`);
    legend.append(item);
  });
  return [chart, legend];
}

/** A line chart of points [{x, y}] with a y-axis label formatter. */
export function line(points, { height = 160, format = String } = {}) {
  const width = 600;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', role: 'img' });
  if (points.length < 2) {
    chart.append(svg('text', { x: 10, y: 20 }, 'waiting for traffic…'));
    return chart;
  }
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const top = Math.max(...ys, 1) * 1.1;
  const px = (x) => ((x - x0) / (x1 - x0 || 1)) * (width - 50) + 45;
  const py = (y) => height - 15 - (y / top) * (height - 25);
  for (const f of [0, 0.5, 1]) {
    chart.append(svg('line', { x1: 45, x2: width, y1: py(top * f), y2: py(top * f), class: 'chart-axis' }));
    chart.append(svg('text', { x: 0, y: py(top * f) + 4 }, format(top * f)));
  }
  const d = points.map((p, i) => `${i ? 'L' : 'M'} ${px(p.x).toFixed(1)} ${py(p.y).toFixed(1)}`).join(' ');
  chart.append(svg('path', { d: `${d} L ${px(x1)} ${py(0)} L ${px(x0)} ${py(0)} Z`, fill: PALETTE[0], 'fill-opacity': 0.15 }));
  chart.append(svg('path', { d, fill: 'none', stroke: PALETTE[0], 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke' }));
  return chart;
}
