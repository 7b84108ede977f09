// Parley's web client: one page, plain ES modules, no build step.
import { Session, qs } from '/api.js';
import { RealtimeSocket } from '/socket.js';
import { el, $, $$, setText, ago, timeOf } from '/dom.js';

const PAGE = 50; // history page size
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOW_MS = 4000;
const LAST_CHANNEL_KEY = 'parley.last_channel';

const session = new Session();
const S = {
  me: null,
  channels: new Map(), // id -> channel state
  current: '',
  users: new Map(), // id -> user profile
  userFetches: new Set(),
  presence: new Map(), // user id -> {status, last_seen}
  friends: [],
  outbox: [], // messages not yet acknowledged, in send order
  lastTypingSent: 0,
  pollTimer: 0,
  tickTimer: 0,
  blobURLs: new Map(), // attachment id -> object URL
};

const socket = new RealtimeSocket({
  getToken: async () => {
    if (!session.accessToken || socket.tokenRejected || session.expiresAt - Date.now() < 30000) await session.refresh();
    return session.accessToken;
  },
  onWelcome: () => { onWelcome().catch(showError); },
  onFrame: (f) => onFrame(f),
  onState: (state) => {
    const node = $('#connection-status');
    node.dataset.state = state;
    setText(node, { connecting: 'Connecting…', online: 'Connected', offline: 'Reconnecting…' }[state] || state);
  },
  onAuthFailed: () => signOut(),
});

session.onSignedOut = () => signOut();
// A fresh access token must reach the open WebSocket, which keeps the one
// it authenticated with until told otherwise.
session.onChange = () => {
  if (socket.ready) socket.request({ type: 'authenticate', data: { token: session.accessToken } }).catch(() => {});
};

// ---------- channels ----------

function channelState(c) {
  let ch = S.channels.get(c.id);
  if (!ch) {
    ch = {
      id: c.id, name: '', type: 'public', role: '', unread: 0, lastSeq: 0, lastReadSeq: 0,
      msgs: new Map(), loaded: false, hasMore: true, loading: false, members: [],
      deliveredSeq: 0, readSeq: 0, typing: new Map(), subscribed: false,
    };
    S.channels.set(c.id, ch);
  }
  ch.name = c.name || ch.name;
  ch.type = c.type || ch.type;
  ch.lastSeq = Math.max(ch.lastSeq, Number(c.last_seq || 0));
  return ch;
}

async function loadChannels() {
  let token = '';
  const seen = new Set();
  do {
    const resp = await session.api('GET', '/v1/channels' + qs({ page_size: 100, page_token: token }));
    for (const jc of resp.channels || []) {
      const ch = channelState(jc.channel);
      seen.add(ch.id);
      ch.role = jc.role || ch.role;
      ch.lastReadSeq = Math.max(ch.lastReadSeq, Number(jc.last_read_seq || 0));
      if (!(ch.id === S.current && pageVisible())) ch.unread = Number(jc.unread_count || 0);
    }
    token = resp.next_page_token || '';
  } while (token);
  for (const id of [...S.channels.keys()]) {
    if (!seen.has(id)) S.channels.delete(id);
  }
  await Promise.all([...S.channels.values()].filter((ch) => ch.type !== 'public' && ch.members.length === 0).map(loadMembers));
  renderChannelLists();
  // Channels created by others since the socket synced (a new DM) need a
  // subscription too.
  if (socket.ready) {
    const fresh = [...S.channels.values()].filter((ch) => !ch.subscribed);
    if (fresh.length) syncChannels(fresh).catch(() => {});
  }
}

async function loadMembers(ch) {
  try {
    const resp = await session.api('GET', `/v1/channels/${ch.id}/members` + qs({ page_size: 100 }));
    ch.members = (resp.members || []).map((m) => m.user_id);
    for (const m of resp.members || []) {
      if (m.user_id !== S.me.id) ch.readSeq = Math.max(ch.readSeq, Number(m.last_read_seq || 0));
    }
    ch.deliveredSeq = Math.max(ch.deliveredSeq, ch.readSeq);
    await ensureUsers(ch.members);
  } catch (err) {
    console.warn('members of', ch.id, err);
  }
}

function dmPartner(ch) {
  return ch.members.find((id) => id !== S.me.id) || '';
}

function channelLabel(ch) {
  if (ch.type === 'private') {
    const other = dmPartner(ch);
    return other ? userName(other) : (ch.name || 'Direct message');
  }
  return '#' + (ch.name || ch.id);
}

function renderChannelLists() {
  const chans = [...S.channels.values()].sort((a, b) => channelLabel(a).localeCompare(channelLabel(b)));
  const item = (ch) => {
    const label = channelLabel(ch);
    const btn = el('button', {
      type: 'button', class: 'nav-item', 'data-channel-id': ch.id,
      'aria-current': ch.id === S.current ? 'page' : false,
      onclick: () => openChannel(ch.id),
    });
    if (ch.type === 'private') {
      const other = dmPartner(ch);
      if (other) btn.append(presenceDot(other));
    } else if (ch.type === 'group') {
      btn.title = 'Invite-only group';
    }
    btn.append(el('span', { class: 'name' }, label));
    if (ch.unread > 0 && ch.id !== S.current) {
      btn.append(el('span', { class: 'badge', 'aria-label': `${ch.unread} unread` }, ch.unread > 99 ? '99+' : String(ch.unread)));
    }
    return el('li', {}, btn);
  };
  $('#channel-list').replaceChildren(...chans.filter((c) => c.type !== 'private').map(item));
  $('#dm-list').replaceChildren(...chans.filter((c) => c.type === 'private').map(item));
  document.title = totalUnread() > 0 ? `(${totalUnread()}) Parley` : 'Parley';
}

function totalUnread() {
  let n = 0;
  for (const ch of S.channels.values()) if (ch.id !== S.current) n += ch.unread;
  return n;
}

async function openChannel(id, { push = true } = {}) {
  const ch = S.channels.get(id);
  if (!ch) return;
  S.current = id;
  localStorage.setItem(LAST_CHANNEL_KEY, id);
  if (push && location.pathname !== '/channels/' + id) history.pushState({}, '', '/channels/' + id);
  closeSidebar();
  setText($('#channel-title'), channelLabel(ch));
  $('#composer').hidden = false;
  $('#messages').replaceChildren();
  setText($('#history-status'), '');
  renderChannelHeader();
  renderChannelLists();
  renderTyping();
  if (!ch.loaded) await loadLatest(ch);
  renderMessages({ toBottom: true });
  markRead(ch);
  if (ch.type !== 'private' && ch.members.length === 0) {
    loadMembers(ch).then(() => { fetchPresence(ch.members.slice(0, 50)); renderChannelHeader(); });
  } else {
    fetchPresence(ch.members.slice(0, 50));
  }
  $('#composer-input').focus();
}

async function loadLatest(ch) {
  ch.loading = true;
  try {
    const resp = await session.api('GET', `/v1/channels/${ch.id}/messages` + qs({ limit: PAGE }));
    for (const m of resp.messages || []) addMessage(ch, m, false);
    ch.hasMore = !!resp.has_more;
    ch.loaded = true;
  } catch (err) {
    showError(err);
  } finally {
    ch.loading = false;
  }
}

// loadOlder pages history backwards when the user scrolls to the top.
async function loadOlder() {
  const ch = S.channels.get(S.current);
  if (!ch || !ch.loaded || ch.loading || !ch.hasMore) return;
  const oldest = Math.min(...[...ch.msgs.values()].map((m) => m.seqN));
  if (!Number.isFinite(oldest) || oldest <= 1) { ch.hasMore = false; return; }
  ch.loading = true;
  setText($('#history-status'), 'Loading older messages…');
  try {
    const resp = await session.api('GET', `/v1/channels/${ch.id}/messages` + qs({ before_seq: oldest, limit: PAGE }));
    const scroller = $('#message-scroller');
    const prevHeight = scroller.scrollHeight;
    const prevTop = scroller.scrollTop;
    for (const m of resp.messages || []) addMessage(ch, m, false);
    ch.hasMore = !!resp.has_more;
    if (ch.id === S.current) {
      renderMessages();
      scroller.scrollTop = prevTop + (scroller.scrollHeight - prevHeight);
    }
    setText($('#history-status'), ch.hasMore ? '' : 'This is the beginning of the conversation.');
  } catch (err) {
    setText($('#history-status'), '');
    showError(err);
  } finally {
    ch.loading = false;
  }
}

// ---------- messages ----------

// addMessage stores a message once (deduplicated by id) and reports
// whether it was new.
function addMessage(ch, m, live) {
  if (!m || !m.id) return false;
  m.seqN = Number(m.seq || 0);
  const known = ch.msgs.get(m.id);
  // The sender's pending copy is replaced by the stored one.
  if (m.client_msg_id && m.user_id === S.me.id) {
    const i = S.outbox.findIndex((o) => o.cmid === m.client_msg_id);
    if (i >= 0) {
      const o = S.outbox[i];
      S.outbox.splice(i, 1);
      if (o.previewURL && m.attachment) S.blobURLs.set(m.attachment.id, o.previewURL);
    }
  }
  ch.msgs.set(m.id, m);
  ch.lastSeq = Math.max(ch.lastSeq, m.seqN);
  if (known) return false;
  if (live && m.user_id !== S.me.id && m.seqN > ch.lastReadSeq && !(ch.id === S.current && pageVisible())) {
    ch.unread++;
  }
  if (!S.users.has(m.user_id)) ensureUsers([m.user_id]);
  return true;
}

function pageVisible() {
  return document.visibilityState === 'visible';
}

function sortedMessages(ch) {
  return [...ch.msgs.values()].sort((a, b) => a.seqN - b.seqN);
}

function messageStatus(ch, m) {
  if (m.user_id !== S.me.id) return '';
  if (ch.readSeq >= m.seqN) return 'read';
  if (ch.deliveredSeq >= m.seqN) return 'delivered';
  return 'sent';
}

const STATUS_TEXT = { sending: 'Sending…', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not sent' };

function messageNode(ch, m, pending) {
  const mine = m.user_id === S.me.id;
  const li = el('li', {
    class: 'message' + (mine ? ' mine' : ''),
    'data-key': pending ? 'p:' + m.cmid : m.id,
    'data-user-id': m.user_id,
  });
  if (!pending) li.dataset.seq = String(m.seqN);
  const head = el('div', { class: 'meta' },
    el('span', { class: 'author', 'data-user-id': m.user_id }, userName(m.user_id)),
    el('time', { datetime: m.created_at || '' }, m.created_at ? timeOf(m.created_at) : ''));
  li.append(head);
  const body = el('div', { class: 'message-content' });
  body.textContent = m.deleted ? 'This message was deleted.' : (m.content || '');
  if (m.deleted) li.classList.add('deleted');
  li.append(body);
  if (m.edited_at && !m.deleted) head.append(el('span', { class: 'edited' }, '(edited)'));
  const att = m.attachment;
  if (pending && m.previewURL && m.type === 'image') {
    li.append(el('img', { class: 'attachment-image', src: m.previewURL, alt: m.content || 'image' }));
  } else if (att && !m.deleted) {
    li.append(attachmentNode(att));
  }
  if (mine) li.append(el('span', { class: 'message-status', 'aria-label': 'status' }, ''));
  return li;
}

function attachmentNode(att) {
  const name = att.filename || 'attachment';
  if ((att.content_type || '').startsWith('image/')) {
    const img = el('img', { class: 'attachment-image', alt: name });
    blobURL(att).then((u) => { img.src = u; }).catch(() => { img.alt = name + ' (could not load)'; });
    return img;
  }
  return el('button', {
    type: 'button', class: 'attachment-file',
    onclick: async () => {
      try {
        const a = el('a', { href: await blobURL(att), download: name });
        document.body.append(a);
        a.click();
        a.remove();
      } catch (err) { showError(err); }
    },
  }, `Download ${name}`);
}

// blobURL fetches an attachment with the access token (an <img src> could
// not send it) and keeps one object URL per attachment.
async function blobURL(att) {
  if (S.blobURLs.has(att.id)) return S.blobURLs.get(att.id);
  const url = att.url || `/v1/attachments/${att.id}`;
  const u = URL.createObjectURL(await session.fetchBlob(url));
  S.blobURLs.set(att.id, u);
  return u;
}

// renderMessages reconciles the list with the current channel's messages
// (keyed by id) so existing nodes, focus and scroll position survive.
function renderMessages({ toBottom = false } = {}) {
  const ch = S.channels.get(S.current);
  if (!ch) return;
  const list = $('#messages');
  const scroller = $('#message-scroller');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const existing = new Map();
  for (const node of list.children) existing.set(node.dataset.key, node);
  const wanted = [];
  for (const m of sortedMessages(ch)) {
    let node = existing.get(m.id);
    const version = (m.edited_at || '') + (m.deleted ? 'd' : '');
    if (!node || node.dataset.version !== version) node = messageNode(ch, m, false);
    node.dataset.version = version;
    existing.delete(m.id);
    wanted.push([node, messageStatus(ch, m)]);
  }
  for (const o of S.outbox) {
    if (o.channelId !== ch.id) continue;
    const key = 'p:' + o.cmid;
    let node = existing.get(key);
    if (!node) node = messageNode(ch, { ...o, user_id: S.me.id, created_at: o.createdAt }, true);
    existing.delete(key);
    wanted.push([node, o.state]);
  }
  for (const node of existing.values()) node.remove();
  let prev = null;
  for (const [node, status] of wanted) {
    const expected = prev ? prev.nextSibling : list.firstChild;
    if (expected !== node) list.insertBefore(node, expected);
    if (status) {
      node.dataset.status = status;
      setText(node.querySelector('.message-status'), STATUS_TEXT[status] || '');
    }
    prev = node;
  }
  if (toBottom || atBottom) scroller.scrollTop = scroller.scrollHeight;
  // A short channel never scrolls, so fetch older pages until it does.
  if (ch.loaded && ch.hasMore && !ch.loading && scroller.scrollHeight <= scroller.clientHeight + 10) loadOlder();
}

// ---------- sending ----------

function queueMessage(channelId, fields) {
  const item = {
    cmid: crypto.randomUUID(), channelId, state: 'sending', inflight: false,
    createdAt: new Date().toISOString(), content: '', type: 'text', ...fields,
  };
  S.outbox.push(item);
  if (channelId === S.current) renderMessages({ toBottom: true });
  flushOutbox();
}

// flushOutbox sends every queued message that is not in flight. A message
// whose send failed in transit is resent with the same client_msg_id after
// the reconnect, which the server answers with the first stored copy.
function flushOutbox() {
  if (!socket.ready) return;
  for (const o of S.outbox) {
    if (o.inflight || o.state !== 'sending') continue;
    o.inflight = true;
    if (o.channelId === S.current) {
      clearTimeout(markTimer);
      sendMarkRead(S.channels.get(o.channelId));
    }
    const data = { content: o.content, type: o.type, client_msg_id: o.cmid };
    if (o.attachmentId) data.attachment_id = o.attachmentId;
    socket.request({ type: 'send_message', channel: o.channelId, data }).then((msg) => {
      o.inflight = false;
      const ch = S.channels.get(o.channelId);
      if (ch) addMessage(ch, msg, false);
      const i = S.outbox.indexOf(o);
      if (i >= 0) S.outbox.splice(i, 1);
      if (o.channelId === S.current) { renderMessages(); markRead(ch); }
    }).catch((err) => {
      o.inflight = false;
      if (err.code === 'disconnected') return; // resent after the next welcome
      if (err.code === 'timeout' || err.code === 'rate_limited' || err.code === 'internal') {
        setTimeout(flushOutbox, 1000 + Math.random() * 1000);
        return;
      }
      o.state = 'failed';
      showError(err);
      if (o.channelId === S.current) renderMessages();
    });
  }
}

async function uploadAndSend(file) {
  const ch = S.channels.get(S.current);
  if (!ch || !file) return;
  const isImage = file.type.startsWith('image/');
  const form = new FormData();
  form.append('file', file, file.name);
  try {
    const resp = await session.api('POST', `/v1/channels/${ch.id}/attachments`, { raw: form, timeoutMs: 120000 });
    const att = resp.attachment || {};
    queueMessage(ch.id, {
      content: file.name, type: isImage ? 'image' : 'file', attachmentId: att.id,
      previewURL: isImage ? URL.createObjectURL(file) : '',
    });
  } catch (err) {
    showError(err);
  }
}

// ---------- read state ----------

let markTimer = 0;
function markRead(ch) {
  if (!ch || ch.id !== S.current || !pageVisible()) return;
  if (ch.unread) { ch.unread = 0; renderChannelLists(); }
  clearTimeout(markTimer);
  markTimer = setTimeout(() => sendMarkRead(ch), 150);
}

// sendMarkRead reports the read position now. It must reach the server
// before a message the user sends: the chat service moves a sender's read
// position with their own message without a read receipt, so a mark_read
// arriving after it would publish none and the other side would never see
// "Read" on what this user just answered.
function sendMarkRead(ch) {
  if (!ch || ch.id !== S.current || !pageVisible() || !socket.ready) return;
  if (ch.lastSeq <= ch.lastReadSeq) return;
  const seq = ch.lastSeq;
  ch.lastReadSeq = seq;
  socket.request({ type: 'mark_read', channel: ch.id, data: { seq } })
    .catch((err) => {
      ch.lastReadSeq = Math.min(ch.lastReadSeq, seq - 1);
      console.warn('mark_read failed', err.code, err.message);
    });
}

// ---------- realtime ----------

async function syncChannels(chans) {
  for (let i = 0; i < chans.length; i += 100) {
    const part = chans.slice(i, i + 100);
    const data = { channels: {} };
    for (const ch of part) data.channels[ch.id] = ch.lastSeq;
    const res = await socket.request({ type: 'sync', data });
    for (const ch of part) ch.subscribed = true;
    for (const [id, r] of Object.entries(res.channels || {})) {
      if (r.truncated) await catchUp(id, Number(r.next_after_seq || 0));
    }
  }
}

// catchUp pages the history after seq when a sync was truncated.
async function catchUp(id, afterSeq) {
  const ch = S.channels.get(id);
  if (!ch) return;
  let after = afterSeq;
  for (;;) {
    const resp = await session.api('GET', `/v1/channels/${id}/messages` + qs({ after_seq: after, limit: 100 }));
    const msgs = resp.messages || [];
    for (const m of msgs) addMessage(ch, m, true);
    if (!resp.has_more || msgs.length === 0) break;
    after = Number(msgs[msgs.length - 1].seq);
  }
  if (id === S.current) renderMessages();
  renderChannelLists();
}

async function onWelcome() {
  for (const ch of S.channels.values()) ch.subscribed = false;
  await syncChannels([...S.channels.values()]);
  flushOutbox();
  renderChannelLists();
  const ch = S.channels.get(S.current);
  if (ch) { renderMessages(); markRead(ch); }
  // Presence may have changed while disconnected.
  fetchPresence(presenceTargets());
}

function onFrame(f) {
  const ch = f.channel ? S.channels.get(f.channel) : null;
  switch (f.type) {
    case 'message':
    case 'message_updated':
    case 'message_deleted': {
      if (!ch) { loadChannels().catch(() => {}); return; }
      const isNew = addMessage(ch, f.data, f.type === 'message');
      if (f.data && f.data.user_id) ch.typing.delete(f.data.user_id);
      if (ch.id === S.current) { renderMessages(); renderTyping(); markRead(ch); }
      if (isNew) renderChannelLists();
      break;
    }
    case 'user_typing': {
      if (!ch || f.user_id === S.me.id) return;
      const typing = !(f.data && f.data.typing === false);
      if (typing) ch.typing.set(f.user_id, Date.now() + TYPING_SHOW_MS);
      else ch.typing.delete(f.user_id);
      if (!S.users.has(f.user_id)) ensureUsers([f.user_id]);
      if (ch.id === S.current) renderTyping();
      break;
    }
    case 'user_online':
    case 'user_offline': {
      const d = f.data || {};
      const id = d.user_id || f.user_id;
      if (!id) return;
      S.presence.set(id, { status: d.status || (f.type === 'user_online' ? 'online' : 'offline'), last_seen: d.last_seen });
      renderPresence(id);
      break;
    }
    case 'receipt': {
      const d = f.data || {};
      if (!ch || d.user_id === S.me.id) return;
      const seq = Number(d.seq || 0);
      if (d.kind === 'read') ch.readSeq = Math.max(ch.readSeq, seq);
      ch.deliveredSeq = Math.max(ch.deliveredSeq, seq);
      if (ch.id === S.current) renderMessages();
      break;
    }
    case 'user_joined': {
      if (!ch) return;
      const uid = (f.data && f.data.user_id) || f.user_id;
      if (uid && !ch.members.includes(uid)) ch.members.push(uid);
      ensureUsers([uid]);
      if (ch.id === S.current) renderChannelHeader();
      break;
    }
    case 'user_left': {
      if (!ch) return;
      const uid = (f.data && f.data.user_id) || f.user_id;
      if (uid === S.me.id) { loadChannels().catch(() => {}); return; }
      ch.members = ch.members.filter((x) => x !== uid);
      if (ch.id === S.current) renderChannelHeader();
      break;
    }
    case 'error':
      if (f.data && f.data.code === 'slow_consumer') return; // the close follows; reconnect syncs
      console.warn('server error frame', JSON.stringify(f.data));
      break;
    default:
  }
}

function renderTyping() {
  const ch = S.channels.get(S.current);
  const node = $('#typing-indicator');
  if (!ch) { setText(node, ''); return; }
  const now = Date.now();
  const names = [];
  for (const [uid, until] of ch.typing) {
    if (until < now) ch.typing.delete(uid);
    else names.push(userName(uid));
  }
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  setText(node, text);
}

// sendTyping tells the channel the user is typing, at most once per 2 s
// (the server's limit); a keystroke inside the quiet period schedules one
// trailing frame so a pause-and-resume still shows up for the others.
let typingTimer = 0;
function sendTyping() {
  if (!S.current || !socket.ready) return;
  const wait = S.lastTypingSent + TYPING_SEND_EVERY_MS - Date.now();
  if (wait > 0) {
    if (!typingTimer) {
      typingTimer = setTimeout(() => {
        typingTimer = 0;
        if ($('#composer-input').value.trim() !== '') sendTyping();
      }, wait + 50);
    }
    return;
  }
  S.lastTypingSent = Date.now();
  socket.send({ type: 'user_typing', channel: S.current, data: {} });
}

// ---------- users and presence ----------

function userName(id) {
  if (id === S.me.id) return S.me.display_name || S.me.username;
  const u = S.users.get(id);
  if (u) return u.display_name || u.username;
  return 'someone';
}

async function ensureUsers(ids) {
  const missing = [...new Set(ids)].filter((id) => id && id !== S.me.id && !S.users.has(id) && !S.userFetches.has(id));
  if (!missing.length) return;
  missing.forEach((id) => S.userFetches.add(id));
  try {
    for (let i = 0; i < missing.length; i += 100) {
      const resp = await session.api('GET', '/v1/users:batchGet' + qs({ user_ids: missing.slice(i, i + 100) }));
      for (const u of resp.users || []) S.users.set(u.id, u);
    }
    for (const id of missing) {
      for (const n of $$(`.author[data-user-id="${CSS.escape(id)}"]`)) setText(n, userName(id));
    }
    renderChannelLists();
    if (S.current) {
      const ch = S.channels.get(S.current);
      setText($('#channel-title'), channelLabel(ch));
      renderChannelHeader();
      renderTyping();
    }
  } catch (err) {
    console.warn('users', err);
  } finally {
    missing.forEach((id) => S.userFetches.delete(id));
  }
}

function presenceText(id) {
  const p = S.presence.get(id);
  if (!p) return 'offline';
  if (p.status === 'offline') return p.last_seen ? `offline, last seen ${ago(p.last_seen)}` : 'offline';
  return p.status;
}

function presenceDot(id) {
  const p = S.presence.get(id);
  return el('span', { class: 'presence', 'data-user-id': id, 'data-status': p ? p.status : 'offline', title: presenceText(id) },
    el('span', { class: 'visually-hidden presence-label' }, presenceText(id)));
}

function renderPresence(id) {
  const p = S.presence.get(id);
  for (const n of $$(`.presence[data-user-id="${CSS.escape(id)}"]`)) {
    n.dataset.status = p ? p.status : 'offline';
    n.title = presenceText(id);
    setText(n.querySelector('.presence-label'), presenceText(id));
  }
  for (const n of $$(`.presence-text[data-user-id="${CSS.escape(id)}"]`)) setText(n, presenceText(id));
}

function presenceTargets() {
  const ids = new Set(S.friends.filter((f) => f.state === 'friend').map((f) => f.user.id));
  for (const ch of S.channels.values()) if (ch.type === 'private') ids.add(dmPartner(ch));
  const cur = S.channels.get(S.current);
  if (cur) cur.members.slice(0, 50).forEach((id) => ids.add(id));
  ids.delete(S.me.id);
  ids.delete('');
  return [...ids];
}

async function fetchPresence(ids) {
  await Promise.all(ids.filter((id) => id && id !== S.me.id).map(async (id) => {
    try {
      const resp = await session.api('GET', `/v1/users/${id}/status`);
      const p = resp.presence || {};
      // A live frame that arrived meanwhile is newer than this answer.
      S.presence.set(id, { status: p.status || 'offline', last_seen: p.last_seen });
      renderPresence(id);
    } catch { /* unknown presence stays offline */ }
  }));
}

function renderChannelHeader() {
  const ch = S.channels.get(S.current);
  const box = $('#channel-presence');
  if (!ch) { box.replaceChildren(); return; }
  if (ch.type === 'private') {
    const other = dmPartner(ch);
    box.replaceChildren(other ? presenceDot(other) : '', other ? el('span', { class: 'presence-text', 'data-user-id': other }, presenceText(other)) : '');
  } else {
    box.replaceChildren(el('span', {}, `${ch.members.length || ''} ${ch.members.length === 1 ? 'member' : ch.members.length ? 'members' : ''}`.trim()));
  }
}

// ---------- friends ----------

async function loadFriends() {
  const all = [];
  let token = '';
  do {
    const resp = await session.api('GET', '/v1/users/me/friends' + qs({ page_size: 100, page_token: token }));
    all.push(...(resp.friends || []));
    token = resp.next_page_token || '';
  } while (token);
  S.friends = all;
  for (const f of all) if (f.user) S.users.set(f.user.id, f.user);
  renderFriends();
}

function renderFriends() {
  const friends = S.friends.filter((f) => f.state === 'friend');
  $('#friend-list').replaceChildren(...friends.map((f) => el('li', { 'data-user-id': f.user.id },
    presenceDot(f.user.id),
    el('span', { class: 'name' }, f.user.display_name || f.user.username),
    el('span', { class: 'presence-text', 'data-user-id': f.user.id }, presenceText(f.user.id)),
    el('button', { type: 'button', class: 'small', onclick: () => messageFriend(f.user.id), 'aria-label': `Message ${f.user.display_name || f.user.username}` }, 'Message'))));
  if (!friends.length) $('#friend-list').append(el('li', { class: 'empty' }, 'No friends yet.'));
  const reqs = S.friends.filter((f) => f.state !== 'friend');
  $('#requests-title').hidden = reqs.length === 0;
  $('#request-list').replaceChildren(...reqs.map((f) => {
    const name = f.user.display_name || f.user.username;
    const li = el('li', { 'data-user-id': f.user.id, 'data-state': f.state }, el('span', { class: 'name' }, name));
    if (f.state === 'incoming') {
      li.append(
        el('button', { type: 'button', class: 'small primary', onclick: () => addFriend(f.user.id), 'aria-label': `Accept ${name}` }, 'Accept'),
        el('button', { type: 'button', class: 'small', onclick: () => removeFriend(f.user.id), 'aria-label': `Decline ${name}` }, 'Decline'));
    } else {
      li.append(el('span', { class: 'muted' }, 'requested'),
        el('button', { type: 'button', class: 'small', onclick: () => removeFriend(f.user.id), 'aria-label': `Cancel request to ${name}` }, 'Cancel'));
    }
    return li;
  }));
}

async function addFriend(id) {
  try {
    await session.api('POST', '/v1/users/me/friends', { body: { user_id: id } });
    await loadFriends();
    fetchPresence([id]);
  } catch (err) { showError(err); }
}

async function removeFriend(id) {
  try {
    await session.api('DELETE', `/v1/users/me/friends/${id}`);
    await loadFriends();
  } catch (err) { showError(err); }
}

async function messageFriend(id) {
  try {
    const resp = await session.api('POST', '/v1/channels', { body: { type: 'private', member_ids: [id] } });
    const ch = channelState(resp.channel);
    if (!ch.members.length) ch.members = [S.me.id, id];
    if (socket.ready && !ch.subscribed) await syncChannels([ch]);
    renderChannelLists();
    await openChannel(ch.id);
  } catch (err) { showError(err); }
}

// ---------- dialogs ----------

function openDialog(id) {
  const d = $(id);
  if (!d.open) d.showModal();
  return d;
}

async function openNewChannel() {
  $('#new-channel-form').reset();
  setText($('#new-channel-error'), '');
  const friends = S.friends.filter((f) => f.state === 'friend');
  $('#new-channel-member-options').replaceChildren(...friends.map((f) => el('label', { class: 'check' },
    el('input', { type: 'checkbox', value: f.user.id }), ' ', f.user.display_name || f.user.username)));
  openDialog('#new-channel-dialog');
}

async function createChannel(ev) {
  ev.preventDefault();
  const name = $('#new-channel-name').value.trim();
  const type = $('#new-channel-type').value;
  const members = type === 'group' ? $$('#new-channel-member-options input:checked').map((i) => i.value) : [];
  if (!name) { setText($('#new-channel-error'), 'A name is required.'); return; }
  try {
    const resp = await session.api('POST', '/v1/channels', { body: { name, type, member_ids: members } });
    const ch = channelState(resp.channel);
    ch.role = 'owner';
    if (socket.ready) await syncChannels([ch]);
    $('#new-channel-dialog').close();
    renderChannelLists();
    await openChannel(ch.id);
  } catch (err) {
    setText($('#new-channel-error'), err.message);
  }
}

async function browse() {
  const q = $('#browse-query').value.trim();
  try {
    const resp = await session.api('GET', '/v1/channels:browse' + qs({ query: q, page_size: 50 }));
    const list = resp.channels || [];
    $('#browse-list').replaceChildren(...list.map((c) => {
      const joined = S.channels.has(c.id);
      return el('li', {},
        el('span', { class: 'name' }, '#' + c.name),
        el('span', { class: 'muted' }, `${Number(c.member_count || 0)} members`),
        el('button', { type: 'button', class: 'small' + (joined ? '' : ' primary'), onclick: () => joinChannel(c) }, joined ? 'Open' : `Join #${c.name}`));
    }));
    if (!list.length) $('#browse-list').append(el('li', { class: 'empty' }, 'No public channels match.'));
  } catch (err) { showError(err); }
}

async function joinChannel(c) {
  try {
    if (!S.channels.has(c.id)) {
      await session.api('POST', `/v1/channels/${c.id}/members`, { body: {} });
      const ch = channelState(c);
      if (socket.ready) await syncChannels([ch]);
    }
    $('#browse-dialog').close();
    renderChannelLists();
    await openChannel(c.id);
  } catch (err) { showError(err); }
}

async function searchUsers(ev) {
  ev.preventDefault();
  const q = $('#user-search-input').value.trim();
  if (!q) return;
  try {
    const resp = await session.api('GET', '/v1/users' + qs({ query: q, page_size: 20 }));
    const users = (resp.users || []).filter((u) => u.id !== S.me.id);
    $('#user-search-results').replaceChildren(...users.map((u) => {
      const rel = S.friends.find((f) => f.user.id === u.id);
      const name = u.display_name || u.username;
      let action;
      if (!rel) action = el('button', { type: 'button', class: 'small primary', onclick: async () => { await addFriend(u.id); searchUsers(ev); } }, `Add ${name}`);
      else if (rel.state === 'incoming') action = el('button', { type: 'button', class: 'small primary', onclick: async () => { await addFriend(u.id); searchUsers(ev); } }, `Accept ${name}`);
      else action = el('span', { class: 'muted' }, rel.state === 'friend' ? 'friend' : 'requested');
      return el('li', {}, el('span', { class: 'name' }, name), el('span', { class: 'muted' }, '@' + u.username), action);
    }));
    if (!users.length) $('#user-search-results').append(el('li', { class: 'empty' }, 'Nobody found.'));
  } catch (err) { showError(err); }
}

async function searchMessages(ev) {
  ev.preventDefault();
  const q = $('#search-input').value.trim();
  if (!q) return;
  const list = $('#search-results');
  list.replaceChildren(el('li', { class: 'empty' }, 'Searching…'));
  openDialog('#search-dialog');
  try {
    const resp = await session.api('GET', '/v1/messages:search' + qs({ query: q, page_size: 50 }));
    const msgs = resp.messages || [];
    await ensureUsers(msgs.map((m) => m.user_id));
    list.replaceChildren(...msgs.map((m) => {
      const ch = S.channels.get(m.channel_id);
      return el('li', {}, el('button', {
        type: 'button', class: 'result',
        onclick: () => { $('#search-dialog').close(); openChannel(m.channel_id); },
      }, el('span', { class: 'muted' }, `${ch ? channelLabel(ch) : 'channel'} · ${userName(m.user_id)} · ${timeOf(m.created_at)}`),
      el('span', { class: 'result-text' }, m.content || '')));
    }));
    if (!msgs.length) list.replaceChildren(el('li', { class: 'empty' }, 'No messages match.'));
  } catch (err) {
    list.replaceChildren(el('li', { class: 'error' }, err.message));
  }
}

let prefs = {};
async function openSettings() {
  setText($('#settings-error'), '');
  try {
    const resp = await session.api('GET', '/v1/users/me/notification-preferences');
    prefs = resp.preferences || {};
  } catch (err) {
    setText($('#settings-error'), err.message);
    prefs = {};
  }
  $('#pref-direct').checked = !!prefs.direct;
  $('#pref-group').checked = !!prefs.group;
  $('#pref-public').checked = !!prefs.public;
  $('#pref-mentions').checked = !!prefs.mentions;
  $('#pref-email-digest').checked = !!prefs.email_digest;
  const qh = prefs.quiet_hours || {};
  $('#pref-quiet-enabled').checked = !!qh.enabled;
  $('#pref-quiet-start').value = qh.start || '';
  $('#pref-quiet-end').value = qh.end || '';
  $('#pref-quiet-tz').value = qh.time_zone || '';
  openDialog('#settings-dialog');
}

async function saveSettings(ev) {
  ev.preventDefault();
  const next = {
    ...prefs,
    direct: $('#pref-direct').checked,
    group: $('#pref-group').checked,
    public: $('#pref-public').checked,
    mentions: $('#pref-mentions').checked,
    email_digest: $('#pref-email-digest').checked,
    quiet_hours: {
      enabled: $('#pref-quiet-enabled').checked,
      start: $('#pref-quiet-start').value || '22:00',
      end: $('#pref-quiet-end').value || '07:00',
      time_zone: $('#pref-quiet-tz').value.trim(),
    },
  };
  try {
    const resp = await session.api('PUT', '/v1/users/me/notification-preferences', { body: { preferences: next } });
    prefs = resp.preferences || next;
    $('#settings-dialog').close();
  } catch (err) {
    setText($('#settings-error'), err.message);
  }
}

// ---------- shell ----------

function showError(err) {
  const node = $('#chat-view').hidden ? $('#auth-error') : $('#chat-error');
  setText(node, err && err.message ? err.message : String(err));
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => setText(node, ''), 8000);
}

function closeSidebar() {
  $('#sidebar').classList.remove('open');
  $('#sidebar-toggle').setAttribute('aria-expanded', 'false');
}

function showAuth() {
  $('#chat-view').hidden = true;
  $('#auth-view').hidden = false;
  $('#login-username').focus();
}

async function startChat() {
  S.me = session.user;
  if (!S.me) S.me = (await session.api('GET', '/v1/users/me')).user;
  $('#auth-view').hidden = true;
  $('#chat-view').hidden = false;
  setText($('#me-name'), S.me.display_name || S.me.username);
  await Promise.all([loadChannels(), loadFriends()]);
  fetchPresence(presenceTargets());
  socket.start();
  const fromPath = location.pathname.startsWith('/channels/') ? decodeURIComponent(location.pathname.slice('/channels/'.length)) : '';
  const saved = localStorage.getItem(LAST_CHANNEL_KEY) || '';
  const first = [...S.channels.keys()][0] || '';
  const target = [fromPath, saved, first].find((id) => id && S.channels.has(id));
  if (target) await openChannel(target, { push: fromPath !== target });
  clearInterval(S.pollTimer);
  // Channels others add us to and friend requests have no realtime frame
  // of their own, so poll for them.
  S.pollTimer = setInterval(() => {
    loadChannels().catch(() => {});
    loadFriends().then(() => fetchPresence(presenceTargets().filter((id) => !S.presence.has(id)))).catch(() => {});
  }, 15000);
  clearInterval(S.tickTimer);
  S.tickTimer = setInterval(() => {
    renderTyping();
    for (const id of S.presence.keys()) renderPresence(id);
  }, 1000);
}

function signOut() {
  socket.stop();
  clearInterval(S.pollTimer);
  clearInterval(S.tickTimer);
  S.channels.clear();
  S.outbox = [];
  S.current = '';
  S.me = null;
  session.accessToken = '';
  localStorage.removeItem(LAST_CHANNEL_KEY);
  $('#messages').replaceChildren();
  showAuth();
}

function wire() {
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setText($('#auth-error'), '');
    try {
      await session.login($('#login-username').value.trim(), $('#login-password').value);
      await startChat();
    } catch (err) {
      setText($('#auth-error'), err.status === 401 ? 'Wrong username or password.' : err.message);
    }
  });
  $('#register-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setText($('#auth-error'), '');
    const username = $('#register-username').value.trim();
    try {
      await session.register({
        username,
        display_name: $('#register-display-name').value.trim() || username,
        email: $('#register-email').value.trim(),
        password: $('#register-password').value,
      });
      await startChat();
    } catch (err) {
      setText($('#auth-error'), err.message);
    }
  });
  $('#logout-button').addEventListener('click', async () => {
    try { await session.logout(); } catch { /* signed out locally anyway */ }
    signOut();
  });
  $('#composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('#composer-input');
    const text = input.value.trim();
    if (!text || !S.current) return;
    input.value = '';
    if (socket.ready) socket.send({ type: 'user_typing', channel: S.current, data: { typing: false } });
    queueMessage(S.current, { content: text, type: 'text' });
  });
  $('#composer-input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('#composer').requestSubmit();
    }
  });
  $('#composer-input').addEventListener('input', sendTyping);
  $('#file-input').addEventListener('change', (ev) => {
    const f = ev.target.files && ev.target.files[0];
    ev.target.value = '';
    if (f) uploadAndSend(f);
  });
  $('#message-scroller').addEventListener('scroll', () => {
    if ($('#message-scroller').scrollTop < 80) loadOlder();
  });
  $('#sidebar-toggle').addEventListener('click', () => {
    const open = $('#sidebar').classList.toggle('open');
    $('#sidebar-toggle').setAttribute('aria-expanded', String(open));
  });
  $('#search-form').addEventListener('submit', searchMessages);
  $('#new-channel-button').addEventListener('click', openNewChannel);
  $('#new-channel-form').addEventListener('submit', createChannel);
  $('#browse-button').addEventListener('click', () => { openDialog('#browse-dialog'); browse(); });
  $('#browse-form').addEventListener('submit', (ev) => { ev.preventDefault(); browse(); });
  $('#browse-query').addEventListener('input', browse);
  $('#add-friend-button').addEventListener('click', () => { openDialog('#friend-dialog'); $('#user-search-input').focus(); });
  $('#user-search-form').addEventListener('submit', searchUsers);
  $('#settings-button').addEventListener('click', openSettings);
  $('#settings-form').addEventListener('submit', saveSettings);
  for (const b of $$('dialog [data-close]')) b.addEventListener('click', () => b.closest('dialog').close());
  document.addEventListener('visibilitychange', () => {
    if (pageVisible() && S.current) markRead(S.channels.get(S.current));
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && $('#sidebar').classList.contains('open')) closeSidebar();
  });
  window.addEventListener('popstate', () => {
    const id = location.pathname.startsWith('/channels/') ? location.pathname.slice('/channels/'.length) : '';
    if (id && S.channels.has(id)) openChannel(id, { push: false });
  });
}

async function boot() {
  wire();
  if (session.refreshToken) {
    try {
      await session.refresh();
      await startChat();
      return;
    } catch (err) {
      if (err.status && err.status !== 401) showError(err);
    }
  }
  showAuth();
}

boot();
