// Geo map: countries drawn from world-atlas shapes (shipped in web/vendor), shaded by the
// traffic of their hosts, with talker markers; private and special ranges listed apart.
import { api, el, fmt, panel } from '../app.js';
import { svg } from '../lib/charts.js';

export const title = 'Map';

const W = 960, H = 500;
const project = ([lon, lat]) => [((lon + 180) / 360) * W, ((84 - lat) / 144) * H];

/** SVG path of one ring; a jump across the antimeridian starts a new subpath instead of a
 * line across the whole map. */
function pathOf(ring) {
  let prev = null;
  return ring.map((p) => {
    const [x, y] = project(p).map((v) => v.toFixed(1));
    const cmd = prev === null || Math.abs(p[0] - prev) > 180 ? 'M' : 'L';
    prev = p[0];
    return `${cmd}${x},${y}`;
  }).join('') + 'Z';
}

/** TopoJSON → rings of [lon, lat] per geometry (delta-decoded, quantized arcs). */
function decode(topo) {
  const [sx, sy] = topo.transform.scale, [tx, ty] = topo.transform.translate;
  const arcs = topo.arcs.map((arc) => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  const ring = (indexes) => indexes.flatMap((i, n) => {
    const pts = i < 0 ? [...arcs[~i]].reverse() : arcs[i];
    return n ? pts.slice(1) : pts;
  });
  return topo.objects.countries.geometries.map((g) => ({
    id: g.id,
    name: g.properties?.name,
    polygons: g.type === 'Polygon' ? [g.arcs.map(ring)] : g.type === 'MultiPolygon' ? g.arcs.map((p) => p.map(ring)) : [],
  }));
}

let shapes = null;
async function loadShapes() {
  if (!shapes) {
    const [topo, iso] = await Promise.all([api('/vendor/countries-110m.json'), api('/vendor/iso3166.json')]);
    shapes = { countries: decode(topo), iso };
  }
  return shapes;
}

export function render(main) {
  const mapBox = el('div', { id: 'map' });
  const countries = el('div', { class: 'scroll' });
  const local = el('div', { class: 'scroll' });
  main.append(el('section', { class: 'panel wide' }, el('h2', {}, 'Traffic by country'), mapBox),
    panel('Countries', countries), panel('Private and special addresses', local));

  const draw = async () => {
    let data;
    try {
      data = await loadShapes();
    } catch {
      mapBox.replaceChildren(el('p', { class: 'error' }, 'The map data is not built in (run scripts/fetch-web-deps.sh and rebuild).'));
      return;
    }
    const talkers = await api('/top-talkers?limit=500&with_geo=true').catch(() => []);
    const byCode = new Map();
    for (const t of talkers.filter((t) => t.country_code)) {
      const c = byCode.get(t.country_code) || { code: t.country_code, name: t.country, bytes: 0, hosts: [] };
      c.bytes += t.bytes;
      c.hosts.push(t);
      byCode.set(t.country_code, c);
    }
    const numericToCode = new Map(Object.entries(data.iso).map(([code, [numeric]]) => [numeric, code]));
    const max = Math.max(1, ...[...byCode.values()].map((c) => c.bytes));
    const map = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': 'world map' });
    const markers = [];
    for (const country of data.countries) {
      const code = numericToCode.get(country.id);
      const traffic = code && byCode.get(code);
      const d = country.polygons.flatMap((rings) => rings.map(pathOf)).join('');
      const attrs = { d, class: traffic ? 'map-land hot' : 'map-land', 'data-code': code || '' };
      if (traffic) attrs['fill-opacity'] = (0.35 + 0.65 * Math.log1p(traffic.bytes) / Math.log1p(max)).toFixed(2);
      map.append(svg('path', attrs, svg('title', {}, `${country.name}${traffic ? `: ${fmt.bytes(traffic.bytes)}` : ''}`)));
      if (traffic) {
        // A marker at the centre of the country's largest ring when the database has no coordinates.
        const ring = country.polygons.flat().sort((a, b) => b.length - a.length)[0] || [];
        const centre = ring.reduce(([x, y], [lon, lat]) => [x + lon / ring.length, y + lat / ring.length], [0, 0]);
        for (const h of traffic.hosts) markers.push({ at: h.longitude != null ? [h.longitude, h.latitude] : centre, host: h });
      }
    }
    for (const { at, host } of markers) {
      const [x, y] = project(at);
      map.append(svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: (2 + Math.log10(1 + host.bytes)).toFixed(1), class: 'map-marker' },
        svg('title', {}, `${host.ip}${host.name ? ` (${host.name})` : ''} · ${host.city ? `${host.city}, ` : ''}${host.country || host.country_code} · ${fmt.bytes(host.bytes)}`)));
    }
    mapBox.replaceChildren(map);
    const rows = [...byCode.values()].sort((a, b) => b.bytes - a.bytes);
    countries.replaceChildren(el('table', { id: 'country-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'country'), el('th', { class: 'num' }, 'hosts'), el('th', { class: 'num' }, 'bytes'))),
      el('tbody', {}, rows.map((c) => el('tr', {}, el('td', {}, c.name || data.iso[c.code]?.[1] || c.code),
        el('td', { class: 'num' }, c.hosts.length), el('td', { class: 'num' }, fmt.bytes(c.bytes)))))));
    const special = talkers.filter((t) => t.scope);
    local.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'address'), el('th', {}, 'range'), el('th', { class: 'num' }, 'bytes'))),
      el('tbody', {}, special.map((t) => el('tr', {}, el('td', {}, t.ip, t.name ? el('span', { class: 'host-name' }, t.name) : ''), el('td', {}, t.scope), el('td', { class: 'num' }, fmt.bytes(t.bytes)))))));
  };
  draw();
  const timer = setInterval(draw, 10000);
  return () => clearInterval(timer);
}
