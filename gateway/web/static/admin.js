// Parley's admin dashboard: live gateway statistics, dead letters with
// retry/discard, and recent audit events, refreshed every few seconds.
import { Session, qs } from '/api.js';
import { el, $, setText, ago } from '/dom.js';

const REFRESH_MS = 3000;
const session = new Session();
let timer = 0;

session.onSignedOut = () => showLogin();

function show(id) {
  for (const s of ['#admin-login', '#admin-denied', '#admin-dashboard']) $(s).hidden = s !== id;
}

function showLogin() {
  clearInterval(timer);
  show('#admin-login');
  $('#admin-username').focus();
}

async function enter() {
  if (!session.user) session.user = (await session.api('GET', '/v1/users/me')).user;
  const roles = session.user.roles || [];
  if (!roles.includes('admin')) {
    setText($('#denied-user'), session.user.username);
    show('#admin-denied');
    return;
  }
  show('#admin-dashboard');
  await refresh();
  clearInterval(timer);
  timer = setInterval(() => { refresh(); }, REFRESH_MS);
}

async function refresh() {
  const results = await Promise.allSettled([loadStats(), loadDeadLetters(), loadEvents()]);
  const failed = results.find((r) => r.status === 'rejected');
  setText($('#admin-error'), failed ? failed.reason.message : '');
  setText($('#admin-updated'), 'Updated ' + new Date().toLocaleTimeString());
}

async function loadStats() {
  const s = await session.api('GET', '/v1/admin/stats');
  setText($('#stat-connections'), String(s.connections ?? 0));
  setText($('#stat-online'), String(s.online_users ?? 0));
  setText($('#stat-channels'), String(s.channels ?? 0));
  setText($('#stat-mps'), Number(s.messages_per_second || 0).toFixed(1));
  $('#nodes-body').replaceChildren(...(s.nodes || []).map((n) => el('tr', { 'data-node-id': n.node_id },
    el('td', {}, n.node_id), el('td', {}, String(n.connections)), el('td', {}, String(n.users)),
    el('td', {}, String(n.channels)), el('td', {}, ago(n.updated_at)))));
  if (!(s.nodes || []).length) $('#nodes-body').append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No gateway has reported yet.')));
}

async function loadDeadLetters() {
  const resp = await session.api('GET', '/v1/admin/dead-letters' + qs({ page_size: 50 }));
  const list = resp.dead_letters || [];
  $('#dlq-body').replaceChildren(...list.map((d) => {
    const ev = d.event || {};
    return el('tr', { 'data-dead-letter-id': d.id },
      el('td', {}, ago(d.failed_at)),
      el('td', {}, `${ev.type || ''} ${ev.id ? '(' + ev.id + ')' : ''}`),
      el('td', {}, d.consumer || ''),
      el('td', {}, String(d.deliveries || '')),
      el('td', {}, d.reason || ''),
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'small primary', onclick: () => act('POST', `/v1/admin/dead-letters/${d.id}:retry`, {}), 'aria-label': `Retry ${ev.type || d.id}` }, 'Retry'), ' ',
        el('button', { type: 'button', class: 'small', onclick: () => act('DELETE', `/v1/admin/dead-letters/${d.id}`), 'aria-label': `Discard ${ev.type || d.id}` }, 'Discard')));
  }));
  if (!list.length) $('#dlq-body').append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No dead letters. Every event was handled.')));
}

async function loadEvents() {
  const resp = await session.api('GET', '/v1/admin/events' + qs({ page_size: 20 }));
  const list = resp.events || [];
  $('#events-body').replaceChildren(...list.map((e) => el('tr', {},
    el('td', {}, e.timestamp ? new Date(e.timestamp).toLocaleString() : ''),
    el('td', {}, e.type || ''), el('td', {}, e.source || ''), el('td', {}, e.subject_id || ''))));
  if (!list.length) $('#events-body').append(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No events yet.')));
}

async function act(method, path, body) {
  try {
    await session.api(method, path, body ? { body } : {});
    await refresh();
  } catch (err) {
    setText($('#admin-error'), err.message);
  }
}

async function boot() {
  $('#admin-login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setText($('#admin-login-error'), '');
    try {
      await session.login($('#admin-username').value.trim(), $('#admin-password').value);
      await enter();
    } catch (err) {
      setText($('#admin-login-error'), err.status === 401 ? 'Wrong username or password.' : err.message);
    }
  });
  const out = async () => { try { await session.logout(); } catch { /* local sign-out anyway */ } showLogin(); };
  $('#admin-logout').addEventListener('click', out);
  $('#denied-logout').addEventListener('click', out);
  if (session.refreshToken) {
    try {
      await session.refresh();
      await enter();
      return;
    } catch { /* fall through to the login form */ }
  }
  showLogin();
}

boot();
