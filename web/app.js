// The dashboard shell: the login, hash routing between views, one WebSocket per stream with
// automatic reconnect, the theme, and the shared helpers the views use.
import * as dashboard from './views/dashboard.js';
import * as sessions from './views/sessions.js';
import * as devices from './views/devices.js';
import * as host from './views/host.js';
import * as alerts from './views/alerts.js';
import * as map from './views/map.js';
import * as graph from './views/graph.js';
import * as replay from './views/replay.js';
import * as settings from './views/settings.js';
import * as login from './views/login.js';

const VIEWS = { dashboard, sessions, devices, host, alerts, map, graph, replay, settings };

/** Who is logged in: filled from /auth/session (csrf is sent with every change). */
export const session = { user: null, role: null, csrf: null, authEnabled: true };

/**
 * Calls a JSON endpoint; throws an Error carrying the server's message. `options.json` is
 * sent as a JSON body. Changes carry the CSRF token; a 401 brings the login screen back.
 */
export async function api(path, options = {}) {
  const { json, ...init } = options;
  const headers = new Headers(init.headers || {});
  if (json !== undefined) {
    headers.set('Content-Type', 'application/json');
    init.body = JSON.stringify(json);
  }
  if (init.method && init.method !== 'GET' && session.csrf) headers.set('X-CSRF-Token', session.csrf);
  const response = await fetch(path, { ...init, headers, credentials: 'same-origin' });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 && !path.startsWith('/auth/')) {
    showLogin('Your session has ended. Please log in again.');
  }
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
    throw error;
  }
  return body;
}

/** Creates an element: el('td', {class: 'num'}, 'text', child…). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export function panel(title, ...children) {
  return el('section', { class: 'panel' }, el('h2', {}, title), ...children);
}

export const fmt = {
  bytes(n) {
    if (n == null) return '–';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return `${n.toFixed(n < 10 && i ? 1 : 0)} ${units[i]}`;
  },
  num(n) { return n == null ? '–' : Math.round(n).toLocaleString('en'); },
  time(secs) { return secs == null ? '–' : new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 19); },
  dur(s) { return s == null ? '–' : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(1)} s`; },
};

// Live streams: subscribers per stream, one socket each, reconnecting with back-off.
const streams = {};
const state = { connected: new Set() };

function showConnection() {
  const conn = document.getElementById('conn');
  const open = Object.keys(streams).filter((s) => streams[s].socket?.readyState === 1);
  const wanted = Object.keys(streams).filter((s) => streams[s].subscribers.size > 0 || s === 'alerts');
  const down = wanted.filter((s) => !open.includes(s));
  conn.textContent = down.length === 0 ? '● live' : 'reconnecting…';
  conn.className = down.length === 0 ? 'conn live' : 'conn down';
}

function connect(name) {
  const s = streams[name];
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${proto}//${location.host}/ws/${name}`);
  s.socket = socket;
  socket.onopen = () => { s.delay = 500; showConnection(); };
  socket.onmessage = (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    for (const fn of s.subscribers) fn(data);
  };
  socket.onclose = (e) => {
    showConnection();
    s.socket = null;
    if (!started) return;
    // The server ends a stream whose session ended (1008); a refused handshake is 1006.
    if (e.code === 1008 || e.code === 1006) checkSession();
    setTimeout(() => { if (started) connect(name); }, s.delay);
    s.delay = Math.min(s.delay * 2, 10000);
  };
}

/** Calls `fn` with every message of a stream until the returned function is called. */
export function subscribe(name, fn) {
  if (!streams[name]) {
    streams[name] = { subscribers: new Set(), socket: null, delay: 500 };
    if (started) connect(name);
  }
  streams[name].subscribers.add(fn);
  return () => streams[name].subscribers.delete(fn);
}

// Views: each exports `title` and `render(main, params)`, which returns a cleanup function.
let cleanup = null;
function route() {
  if (!started) return;
  const [name, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const view = VIEWS[name] ? name : 'dashboard';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === view);
  if (cleanup) cleanup();
  const main = document.getElementById('view');
  main.replaceChildren();
  document.title = `tapir · ${VIEWS[view].title}`;
  cleanup = VIEWS[view].render(main, new URLSearchParams(query)) || null;
  showConnection();
}

function initTheme() {
  const saved = localStorage.getItem('tapir-theme');
  if (saved) document.documentElement.dataset.theme = saved;
  document.getElementById('theme').addEventListener('click', () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('tapir-theme', next);
  });
}

// The unacknowledged-alert badge follows the alert stream on every view.
const unacked = new Map();
async function initBadge() {
  const badge = document.getElementById('alert-badge');
  const show = () => {
    const n = [...unacked.values()].filter((a) => !a.acknowledged).length;
    badge.hidden = n === 0;
    badge.textContent = n;
  };
  subscribe('alerts', (msg) => { for (const a of msg.alerts) unacked.set(a.id, a); show(); });
  try {
    const { alerts } = await api('/alerts?limit=1000&unacknowledged_only=true');
    for (const a of alerts) unacked.set(a.id, a);
    show();
  } catch { /* the badge fills from the stream */ }
  window.addEventListener('tapir-ack', (e) => { for (const id of e.detail) unacked.delete(id); show(); });
}

// The new-device counter in the header: devices first seen after the learning period that
// no admin has marked known.
async function refreshNewDevices() {
  const badge = document.getElementById('device-badge');
  try {
    const body = await api('/devices?state=new&limit=1');
    badge.hidden = body.new === 0;
    badge.textContent = body.new;
  } catch { badge.hidden = true; }
}

async function initSource() {
  try {
    const d = await api('/debug');
    const s = d.capture.sources;
    document.getElementById('source').textContent =
      `${d.mode}: ${(s.upload || s.base).source} · tapir ${d.version}`;
  } catch { /* shown when the server answers */ }
}

// Logging in and out.
let started = false;

/** Shows the login screen (with a message) in place of the views. */
export function showLogin(message = '') {
  started = false;
  for (const s of Object.values(streams)) s.socket?.close();
  if (cleanup) { cleanup(); cleanup = null; }
  document.body.dataset.auth = 'out';
  const main = document.getElementById('view');
  main.replaceChildren();
  document.title = 'tapir · Log in';
  login.render(main, { message, onDone: (who) => { Object.assign(session, who); start(); } });
}

/** After a stream closed: is the session still there? If not, ask for a login. */
async function checkSession() {
  try {
    const s = await (await fetch('/auth/session', { credentials: 'same-origin' })).json();
    if (s.auth_enabled && !s.authenticated && started) showLogin('Your session has ended. Please log in again.');
  } catch { /* offline: the streams keep retrying */ }
}

function showUser() {
  const who = document.getElementById('who');
  const out = el('button', { id: 'logout', type: 'button', onclick: async () => {
    try { await api('/auth/logout', { method: 'POST' }); } catch { /* gone already */ }
    session.csrf = null;
    showLogin('You are logged out.');
  } }, 'Log out');
  who.replaceChildren(
    el('span', { id: 'who-name' }, `${session.user} · ${session.role}`),
    session.authEnabled ? out : el('span', { class: 'muted' }, ' (no login: demo)'));
}

function start() {
  if (session.mustChange) {
    const main = document.getElementById('view');
    main.replaceChildren();
    login.renderPasswordChange(main, () => { session.mustChange = false; start(); });
    return;
  }
  started = true;
  document.body.dataset.auth = 'in';
  document.body.dataset.role = session.role;
  showUser();
  route();
  for (const name of Object.keys(streams)) if (!streams[name].socket) connect(name);
  if (!badgeStarted) {
    badgeStarted = true;
    initBadge();
    refreshNewDevices();
    setInterval(() => { if (started) refreshNewDevices(); }, 15000);
  }
  initSource();
}
let badgeStarted = false;

async function boot() {
  initTheme();
  window.addEventListener('hashchange', route);
  let s;
  try {
    s = await (await fetch('/auth/session', { credentials: 'same-origin' })).json();
  } catch {
    document.getElementById('view').replaceChildren(el('p', { class: 'error' }, 'The tapir server does not answer.'));
    return;
  }
  if (s.auth_enabled && !s.authenticated) return showLogin();
  Object.assign(session, {
    user: s.user, role: s.role, csrf: s.csrf_token, authEnabled: s.auth_enabled, mustChange: s.must_change_password,
  });
  start();
}
boot();
